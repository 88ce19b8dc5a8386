"""The learned ranker: a Stable-Baselines3 policy ordering the proposed candidates.

The policy was trained in the simulator (`remediator train`) on the same observation the
live agent builds (`remediator.encoding.encode`) and over the same discrete action space
(`remediator.actions.ACTION_KINDS`). Both are part of the model's contract, so every saved
model carries a metadata record (encoder version, action list, observation size) and
loading refuses a model that was trained against another contract: a policy reading
feature 17 as "throttling" when the code now puts "latency" there would act confidently
and wrongly.

The ranker scores each candidate by its action kind and never returns a non-candidate:

* DQN: the Q-value of the kind (higher is better). DQN has no native action mask, so the
  mask is applied here, by ordering only the candidates' kinds;
* MaskablePPO: the masked policy's probability of the kind.

What the policy reads is the encoded snapshot plus what the guards say about it
(`guard_view`): a kind the guards refuse outright here (a denied namespace, a protected
workload, a PodDisruptionBudget at its minimum, a missing precondition) is marked as denied
in the observation's history bits and taken off the mask, which is exactly what the policy
met in training after trying such a kind once. Without it the policy could not tell a
`kube-system` workload from any other and would find out only by being refused.

Ranking is one small forward pass, so it calls the networks directly under
`torch.no_grad()` with one intra-op thread rather than going through `model.predict`,
whose input checks and copies cost more than the network itself.

    >>> ranker = load_rl_ranker(None)               # doctest: +SKIP
    >>> ranker.rank(snapshot, candidates)[0]          # doctest: +SKIP
    Ranked(candidate=Candidate(action=Action(kind=<ActionKind.ROLLBACK_ROLLOUT: ...>, ...), score=0.93)
"""

from __future__ import annotations

import json
import warnings
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from remediator.actions import ACTION_INDEX, ACTION_KINDS, PASSIVE_KINDS
from remediator.encoding import ENCODER_VERSION, OBS_SIZE, encode, feature_names
from remediator.guards import Decision, GuardPolicy, judge
from remediator.propose.base import Candidate
from remediator.rank.base import Ranked, by_scores
from remediator.snapshot import Snapshot

__all__ = ["ALGOS", "DEFAULT_POLICY", "METADATA_ENTRY", "ModelMismatchError", "PolicyError", "PolicyMetadata",
           "RLRanker", "guard_view", "load_policy", "load_rl_ranker", "metadata_path", "read_metadata"]

ALGOS: tuple[str, ...] = ("dqn", "ppo")
# The shipped default policy, produced by `remediator train` (see data/policy/REPRODUCE.md).
DEFAULT_POLICY = Path(__file__).resolve().parent.parent / "data" / "policy" / "policy.zip"
# The metadata also travels inside the model zip, so a renamed or copied model keeps it.
METADATA_ENTRY = "remediator.json"


class PolicyError(ValueError):
    """A policy file that cannot be used: missing, unreadable, or not the algorithm asked for."""

    def __init__(self, path: Path | str, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"policy {self.path}: {problem}")


class ModelMismatchError(PolicyError):
    """The model was trained against another observation or action contract than this code's.

    `field` names what differs ("encoder_version", "actions" or "obs_size"); `expected` is
    this code's value, `found` the model's. Retrain with `remediator train` to fix it.
    """

    def __init__(self, path: Path | str, field_name: str, expected: Any, found: Any) -> None:
        self.field = field_name
        self.expected = expected
        self.found = found
        super().__init__(path, f"model was trained with {field_name}={found!r} but this code has "
                               f"{field_name}={expected!r}; retrain it with `remediator train`")


@dataclass(frozen=True)
class PolicyMetadata:
    """What a trained model was trained on and against which contract."""

    algo: str
    suite: str
    seed: int
    timesteps: int
    encoder_version: int
    actions: tuple[str, ...]
    obs_size: int
    train_wall_s: float = 0.0
    command: str = ""
    hyperparams: Mapping[str, Any] = field(default_factory=dict)
    versions: Mapping[str, str] = field(default_factory=dict)
    created: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def current(cls, algo: str, suite: str, seed: int, timesteps: int, **kw: Any) -> PolicyMetadata:
        """Metadata for a model trained now, against this code's encoder and actions."""
        return cls(algo=algo, suite=suite, seed=seed, timesteps=timesteps, encoder_version=ENCODER_VERSION,
                   actions=tuple(k.value for k in ACTION_KINDS), obs_size=OBS_SIZE, **kw)

    def to_json(self) -> str:
        doc = asdict(self)
        doc["actions"] = list(self.actions)
        return json.dumps(doc, indent=2, sort_keys=False) + "\n"

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any], path: Path | str = "?") -> PolicyMetadata:
        try:
            return cls(algo=str(doc["algo"]), suite=str(doc["suite"]), seed=int(doc["seed"]),
                       timesteps=int(doc["timesteps"]), encoder_version=int(doc["encoder_version"]),
                       actions=tuple(str(a) for a in doc["actions"]), obs_size=int(doc["obs_size"]),
                       train_wall_s=float(doc.get("train_wall_s", 0.0)), command=str(doc.get("command", "")),
                       hyperparams=dict(doc.get("hyperparams") or {}),
                       versions=dict(doc.get("versions") or {}), created=str(doc.get("created", "")),
                       extra=dict(doc.get("extra") or {}))
        except (KeyError, TypeError, ValueError) as e:
            raise PolicyError(path, f"metadata is incomplete or malformed ({e!r})") from e

    def check(self, path: Path | str) -> None:
        """Raise ModelMismatchError unless the model fits this code's encoder and action list."""
        if self.algo not in ALGOS:
            raise PolicyError(path, f"unknown algorithm {self.algo!r} in metadata; known: {', '.join(ALGOS)}")
        if self.encoder_version != ENCODER_VERSION:
            raise ModelMismatchError(path, "encoder_version", ENCODER_VERSION, self.encoder_version)
        expected = tuple(k.value for k in ACTION_KINDS)
        if self.actions != expected:
            raise ModelMismatchError(path, "actions", list(expected), list(self.actions))
        if self.obs_size != OBS_SIZE:
            raise ModelMismatchError(path, "obs_size", OBS_SIZE, self.obs_size)


def metadata_path(model_path: Path | str) -> Path:
    """The metadata file written next to a model: `policy.zip` -> `policy.json`."""
    return Path(model_path).with_suffix(".json")


def read_metadata(model_path: Path | str) -> PolicyMetadata:
    """The model's metadata: the copy inside the zip, else the JSON file next to it."""
    path = Path(model_path)
    if not path.is_file():
        raise PolicyError(path, "no such file")
    try:
        with zipfile.ZipFile(path) as z:
            text = z.read(METADATA_ENTRY).decode() if METADATA_ENTRY in z.namelist() else None
    except zipfile.BadZipFile as e:
        raise PolicyError(path, "not a Stable-Baselines3 model (not a zip file)") from e
    if text is None:
        side = metadata_path(path)
        if not side.is_file():
            raise PolicyError(path, f"no metadata (neither {METADATA_ENTRY} inside the zip nor {side.name} "
                                    "next to it); models must be written by `remediator train`")
        text = side.read_text()
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise PolicyError(path, f"metadata is not valid JSON: {e}") from e
    if not isinstance(doc, dict):
        raise PolicyError(path, "metadata is not a JSON object")
    return PolicyMetadata.from_dict(doc, path)


def embed_metadata(model_path: Path | str, meta: PolicyMetadata) -> None:
    """Write the metadata into the model zip (replacing any there) and next to it."""
    path = Path(model_path)
    with zipfile.ZipFile(path) as z:
        entries = {n: z.read(n) for n in z.namelist() if n != METADATA_ENTRY}
        replacing = len(entries) < len(z.namelist())
    if replacing:  # a zip cannot drop an entry: write it again without the old metadata
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
            for name, data in entries.items():
                z.writestr(name, data)
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr(METADATA_ENTRY, meta.to_json())
    metadata_path(path).write_text(meta.to_json())


def load_policy(path: Path | str, algo: str | None = None) -> tuple[Any, PolicyMetadata]:
    """Load an SB3 model after checking its metadata; `algo` None trusts the metadata."""
    path = Path(path)
    meta = read_metadata(path)
    meta.check(path)
    if algo is not None and algo != meta.algo:
        raise PolicyError(path, f"this is a {meta.algo} model, not {algo}; use {meta.algo}:{path}")
    _single_thread()
    try:
        if meta.algo == "dqn":
            from stable_baselines3 import DQN

            with warnings.catch_warnings():  # "n_steps is ignored": it concerns training only
                warnings.filterwarnings("ignore", message=".*n_steps.*", category=UserWarning)
                model: Any = DQN.load(path, device="cpu")
        else:
            from sb3_contrib import MaskablePPO

            model = MaskablePPO.load(path, device="cpu")
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        raise PolicyError(path, f"cannot load the {meta.algo} model: {e}") from e
    n_obs = int(np.prod(model.observation_space.shape))
    if n_obs != OBS_SIZE:
        raise ModelMismatchError(path, "obs_size", OBS_SIZE, n_obs)
    if int(model.action_space.n) != len(ACTION_KINDS):
        raise ModelMismatchError(path, "actions", len(ACTION_KINDS), int(model.action_space.n))
    return model, meta


_DENIED_AT = np.array([feature_names().index(f"denied:{k.value}") for k in ACTION_KINDS])


def guard_view(snapshot: Snapshot, candidates: Sequence[Candidate], policy: GuardPolicy | None
               ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
    """The observation and action mask the policy decides on.

    The encoded snapshot, with each candidate kind the guards deny in this snapshot alone
    (no history: cooldowns and budgets are the agent's business at decision time) marked
    `denied:<kind>` and left off the mask. `policy` None skips the guards.
    """
    obs = encode(snapshot)
    mask = np.zeros(len(ACTION_KINDS), dtype=np.bool_)
    refused = np.zeros(len(ACTION_KINDS), dtype=np.bool_)
    for c in candidates:
        i = ACTION_INDEX[c.kind]
        if (policy is not None and c.kind not in PASSIVE_KINDS
                and judge(c.action, snapshot, (), policy, snapshot.at).decision is Decision.DENY):
            refused[i] = True
        else:
            mask[i] = True
    refused &= ~mask  # a kind offered twice is allowed if any of its candidates is
    obs[_DENIED_AT[refused]] = 1.0
    if not mask.any():  # everything refused and nothing passive offered: rank what there is
        mask = refused
    return obs, mask


def _single_thread() -> None:
    import torch

    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)


class RLRanker:
    """A trained policy as a `Ranker`: candidates in the policy's order, scored by it."""

    def __init__(self, model: Any, metadata: PolicyMetadata, name: str = "rl",
                 guards: GuardPolicy | None = GuardPolicy()) -> None:
        import torch

        self.name = name
        self.guards = guards
        self.metadata = metadata
        self.algo = metadata.algo
        self.model = model
        self._torch = torch
        policy = model.policy
        policy.set_training_mode(False)
        if self.algo == "dqn":
            self._net = policy.q_net
        else:
            self._net = policy
        self._buf = torch.zeros((1, OBS_SIZE), dtype=torch.float32)

    def _raw(self, obs: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        """Q-values (DQN) or logits (PPO) for every action kind."""
        torch = self._torch
        with torch.no_grad():
            self._buf[0] = torch.from_numpy(np.asarray(obs, dtype=np.float32))
            if self.algo == "dqn":
                out = self._net(self._buf)
            else:
                p = self._net
                features = p.extract_features(self._buf, p.pi_features_extractor)
                out = p.action_net(p.mlp_extractor.forward_actor(features))
        return np.asarray(out[0].numpy(), dtype=np.float64)

    def action_scores(self, obs: npt.NDArray[np.float32],
                      mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.float64]:
        """One score per action kind: Q-values (DQN) or masked probabilities (PPO); -inf off the mask."""
        raw = self._raw(obs)
        out = np.full(len(ACTION_KINDS), -np.inf)
        if not mask.any():
            return out
        if self.algo == "dqn":
            out[mask] = raw[mask]
        else:
            z = raw[mask] - raw[mask].max()
            e = np.exp(z)
            out[mask] = e / e.sum()
        return out

    def act(self, obs: npt.NDArray[np.float32], mask: npt.NDArray[np.bool_]) -> int:
        """The best action kind's index among the masked ones (what training's argmax does)."""
        return int(np.argmax(self.action_scores(obs, mask)))

    def rank(self, snapshot: Snapshot, candidates: Sequence[Candidate]) -> list[Ranked]:
        """Every candidate, best first; those the guards refuse here come last."""
        if not candidates:
            return []
        obs, mask = guard_view(snapshot, candidates, self.guards)
        scores = self.action_scores(obs, mask)
        floor = float(scores[mask].min()) - 1.0 if self.algo == "dqn" else 0.0
        return by_scores(candidates, [float(s) if np.isfinite(s) else floor
                                      for s in (scores[ACTION_INDEX[c.kind]] for c in candidates)])


def load_rl_ranker(path: str | Path | None, algo: str | None = None,
                   guards: GuardPolicy | None = GuardPolicy()) -> RLRanker:
    """The RL ranker from a model file; `path` None is the shipped default policy.

    `algo` ("dqn" or "ppo") must match the model's metadata when given; None accepts either.
    `guards` is the policy whose outright refusals the ranker shows the model (`guard_view`).
    """
    if algo is not None and algo not in ALGOS:
        raise PolicyError(path or DEFAULT_POLICY,
                          f"unknown algorithm {algo!r}; use one of {', '.join(ALGOS)}")
    target = Path(path) if path is not None else DEFAULT_POLICY
    if path is None and not target.is_file():
        raise PolicyError(target, "the shipped default policy is missing; train one with `remediator train` "
                                  "(see remediator/data/policy/REPRODUCE.md) or pass dqn:FILE / ppo:FILE")
    model, meta = load_policy(target, algo)
    return RLRanker(model, meta, name="rl" if path is None else meta.algo, guards=guards)
