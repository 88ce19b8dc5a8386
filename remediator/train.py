"""Training the ranker's policy in the simulator: SB3 DQN or sb3-contrib MaskablePPO.

One episode is one simulated incident (`simulator.env.RemediationEnv`); the reward is
minus the seconds until verified recovery plus penalties, so the return a policy
maximises is minus its MTTR. The action mask is the set of kinds the catalog proposer
offered: MaskablePPO uses it natively; DQN has no mask, so it learns from the env's
penalty for picking a kind that was not proposed and the mask is applied when ranking
(`remediator.rank.rl`).

This module is wiring, like `remediator.benchmark`: the one other place in `remediator`
that imports the simulator. A run writes three files:

* `OUT.zip` - the SB3 model, with the metadata embedded (`remediator.json`);
* `OUT.json` - the same metadata next to it: suite, seed, algorithm, timesteps, encoder
  version, action list, observation size, hyperparameters, wall time, command line;
* `OUT.png` - the training curve: each episode's recovery time over timesteps.

The policy trains on what it will see when ranking, through one wrapper (`PolicyView`):

* the observation and mask are `remediator.rank.rl.guard_view`'s, so a kind the guards
  refuse outright in this snapshot shows as denied from the first decision, as it does
  when the ranker runs behind the real guards;
* paging a human costs `escalate_cost_s` seconds of reward. The env charges an escalation
  only the time until the human's fix, so handing over an incident that is about to clear
  on its own (a noisy page, a fix already rolling out) would look free; on a real rota it
  costs someone's attention.

    >>> result = train("ppo", "default", timesteps=2048, seed=0, out=Path("/tmp/p.zip"))  # doctest: +SKIP
    >>> result.metadata.train_wall_s                                                     # doctest: +SKIP
    21.4
"""

from __future__ import annotations

import datetime as _dt
import platform
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym

from remediator.actions import ACTION_KINDS
from remediator.rank.rl import ALGOS, PolicyMetadata, embed_metadata, guard_view, metadata_path

__all__ = ["DEFAULT_HYPERPARAMS", "EpisodePoint", "PolicyView", "TrainResult", "TrainingError", "curve_path", "train"]

ESCALATE_COST_S = 120.0  # what a page costs a human's rota, in the reward's seconds

# Chosen for this problem's short episodes (a handful of decisions, returns of -1 to -30).
DEFAULT_HYPERPARAMS: dict[str, dict[str, Any]] = {
    "ppo": {"learning_rate": 3e-4, "n_steps": 1024, "batch_size": 256, "n_epochs": 10, "gamma": 0.99,
            "gae_lambda": 0.95, "ent_coef": 0.01, "clip_range": 0.2, "net_arch": [128, 128],
            "no_fault_cost_s": 600.0, "escalate_cost_s": ESCALATE_COST_S},
    "dqn": {"learning_rate": 5e-4, "buffer_size": 100_000, "learning_starts": 2_000, "batch_size": 128,
            "gamma": 0.99, "train_freq": 4, "gradient_steps": 1, "target_update_interval": 2_000, "n_steps": 3,
            "exploration_fraction": 0.4, "exploration_initial_eps": 1.0, "exploration_final_eps": 0.03,
            "net_arch": [128, 128], "no_fault_cost_s": 600.0, "escalate_cost_s": ESCALATE_COST_S},
}
_POLICY_KWARGS = ("net_arch",)
# Hyperparameters of the reward, not of the algorithm: `no_fault_cost_s` is the env's price on
# changing a healthy service for a noisy alert (simulator.env.PENALTY_S["acted_on_no_fault"]),
# `escalate_cost_s` what a page costs on top of the human's time.
_REWARD_KWARGS = ("no_fault_cost_s", "escalate_cost_s")


class TrainingError(ValueError):
    """Training cannot start: a bad algorithm, suite, budget, output path or hyperparameter."""


@dataclass(frozen=True)
class EpisodePoint:
    """One finished training episode: when it ended and how long recovery took."""

    timestep: int
    recovery_s: float
    recovered: bool
    fault: str


@dataclass
class TrainResult:
    model_path: Path
    metadata_path: Path
    curve_path: Path | None
    metadata: PolicyMetadata
    episodes: list[EpisodePoint] = field(default_factory=list)
    model: Any = None  # the trained SB3 model, as saved


def curve_path(model_path: Path) -> Path:
    """The training-curve PNG written next to a model: `policy.zip` -> `policy.png`."""
    return model_path.with_suffix(".png")


def _recovery_callback(points: list[EpisodePoint]) -> Any:
    from stable_baselines3.common.callbacks import BaseCallback

    class RecoveryCurve(BaseCallback):
        """Records each finished episode's recovery time from the env's final info."""

        def _on_step(self) -> bool:
            for done, info in zip(self.locals["dones"], self.locals["infos"], strict=False):
                if done and "recovery_s" in info:
                    points.append(EpisodePoint(int(self.num_timesteps), float(info["recovery_s"]),
                                               bool(info.get("recovered", False)),
                                               str(info.get("fault", ""))))
            return True

    return RecoveryCurve()


def _make_env(suite: Any, escalate_cost_s: float, branches: int = 1, no_fault_cost_s: float | None = None) -> Any:
    def _init() -> Any:
        from simulator.env import RemediationEnv

        penalties = {"acted_on_no_fault": no_fault_cost_s} if no_fault_cost_s is not None else None
        return PolicyView(RemediationEnv(suite, branches=branches, penalties=penalties), escalate_cost_s)

    return _init


class PolicyView(gym.Wrapper):
    """The env as the ranker sees it (the guards' outright refusals in the observation and
    the mask), with a price on paging a human."""

    def __init__(self, env: Any, escalate_cost_s: float = ESCALATE_COST_S) -> None:
        super().__init__(env)
        self.escalate_cost_s = escalate_cost_s
        self._mask: Any = None

    def _view(self, obs: Any) -> Any:
        inner: Any = self.env.unwrapped
        if inner.snapshot is None:
            return obs
        view, self._mask = guard_view(inner.snapshot, inner.candidates, inner.policy)
        return view

    def reset(self, **kw: Any) -> Any:
        obs, info = self.env.reset(**kw)
        return self._view(obs), info

    def step(self, action: Any) -> Any:
        obs, reward, terminated, truncated, info = self.env.step(action)
        if info.get("kind") == "escalate":
            inner: Any = self.env.unwrapped
            reward = float(reward) - self.escalate_cost_s * inner.reward_scale
        return self._view(obs), reward, terminated, truncated, info

    def action_masks(self) -> Any:
        inner: Any = self.env.unwrapped
        return self._mask if self._mask is not None else inner.action_masks()


def resolve_hyperparams(algo: str, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The algorithm's defaults with `overrides` applied; unknown names are an error."""
    if algo not in ALGOS:
        raise TrainingError(f"unknown algorithm {algo!r}; use one of: {', '.join(ALGOS)}")
    hp = dict(DEFAULT_HYPERPARAMS[algo])
    for k, v in (overrides or {}).items():
        if k not in hp:
            raise TrainingError(f"unknown {algo} hyperparameter {k!r}; known: {', '.join(sorted(hp))}")
        want = type(hp[k])
        if want in (int, float) and (isinstance(v, bool) or not isinstance(v, int | float)):
            raise TrainingError(f"{algo} hyperparameter {k} must be a number, not {v!r}")
        hp[k] = float(v) if want is float else v
    return hp


def train(algo: str, suite: str, timesteps: int, seed: int, out: Path | str, *, n_envs: int = 1,
          subprocess: bool = False, progress_bar: bool = False, hyperparams: Mapping[str, Any] | None = None,
          command: str = "", curve: bool = True, verbose: int = 0,
          branches: int = 1, init: Path | str | None = None
          ) -> TrainResult:
    """Train a policy on `suite` and write the model, its metadata and its training curve.

    `suite` is a shipped suite name or a YAML path (never the evaluation suite: the
    benchmark's numbers would then measure memory, not skill). `n_envs` environments
    step in lockstep (in worker processes when `subprocess`); the result is deterministic
    for a given seed, algorithm, budget, `n_envs` and `branches` (trajectories explored from each
    sampled incident's alert, `simulator.env.RemediationEnv`).

    `init` continues training a policy of the same algorithm and encoder (its weights; the replay
    buffer starts empty) for `timesteps` more, under `hyperparams` (for a DQN, usually a lower
    `exploration_initial_eps`); the metadata counts both runs' steps and names the one it continued.
    A DQN of an older encoder version is widened into this one's layout first (`_widened`).
    """
    out = Path(out)
    hp = resolve_hyperparams(algo, hyperparams)
    if timesteps < 1:
        raise TrainingError(f"--timesteps must be at least 1, not {timesteps}")
    if out.suffix != ".zip":
        raise TrainingError(f"--out must name a .zip file (SB3's model format), not {str(out)!r}")
    if n_envs < 1:
        raise TrainingError(f"n_envs must be at least 1, not {n_envs}")
    if branches < 1:
        raise TrainingError(f"--branches must be at least 1, not {branches}")
    s = training_suite(suite)

    import torch
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecMonitor

    torch.set_num_threads(1)
    fns = [_make_env(s, float(hp["escalate_cost_s"]), branches, float(hp["no_fault_cost_s"])) for _ in range(n_envs)]
    venv = SubprocVecEnv(fns, start_method="fork") if subprocess and n_envs > 1 else DummyVecEnv(fns)
    env = VecMonitor(venv)
    kw = {k: v for k, v in hp.items() if k not in _POLICY_KWARGS + _REWARD_KWARGS}
    policy_kwargs = {k: hp[k] for k in _POLICY_KWARGS if k in hp}
    base: PolicyMetadata | None = None
    model: Any
    if init is not None:
        model, base = _continued(algo, Path(init), env, seed, kw, policy_kwargs)
    elif algo == "ppo":
        from sb3_contrib import MaskablePPO

        model = MaskablePPO("MlpPolicy", env, seed=seed, device="cpu", verbose=verbose,
                            policy_kwargs=policy_kwargs, **kw)
    else:
        from stable_baselines3 import DQN

        model = DQN("MlpPolicy", env, seed=seed, device="cpu", verbose=verbose, policy_kwargs=policy_kwargs,
                    **kw)
    points: list[EpisodePoint] = []
    start, cpu_start = time.perf_counter(), _cpu_s()
    try:
        model.learn(total_timesteps=timesteps, callback=_recovery_callback(points), progress_bar=progress_bar)
    finally:
        env.close()
    wall, cpu = time.perf_counter() - start, _cpu_s() - cpu_start

    out.parent.mkdir(parents=True, exist_ok=True)
    model.save(out)
    tail = points[-max(1, len(points) // 10):] if points else []
    continued = {} if base is None else {"continued_from": {
        "policy": str(init), "created": base.created, "timesteps": base.timesteps, "command": base.command,
        "train_wall_s": base.train_wall_s, "encoder_version": base.encoder_version}}
    meta = PolicyMetadata.current(
        algo=algo, suite=s.name if not Path(suite).suffix else str(suite), seed=seed,
        timesteps=timesteps + (base.timesteps if base else 0),
        train_wall_s=round(wall + (base.train_wall_s if base else 0.0), 1), command=command,
        hyperparams={**hp, "n_envs": n_envs, "branches": branches},
        versions=_versions(), created=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        extra={**continued, "episodes": len(points), "train_cpu_s": round(cpu, 1),
               "final_mttr_s": round(sum(p.recovery_s for p in tail) / len(tail), 1) if tail else None,
               "final_success_rate": round(sum(p.recovered for p in tail) / len(tail), 4) if tail else None})
    embed_metadata(out, meta)
    png = None
    if curve:
        png = curve_path(out)
        plot_curve(points, png, title=f"{algo} on suite {meta.suite}, seed {seed}, {timesteps} steps")
    return TrainResult(out, metadata_path(out), png, meta, points, model)


def _continued(algo: str, init: Path, env: Any, seed: int, kw: Mapping[str, Any],
               policy_kwargs: Mapping[str, Any]) -> tuple[Any, PolicyMetadata]:
    """The model at `init` (checked like any policy: encoder version, actions), set to go on
    training in `env` under the hyperparameters `kw`."""
    from remediator.rank.rl import ModelMismatchError, PolicyError, load_policy

    try:
        _, base = load_policy(init, algo)
    except ModelMismatchError as e:
        if e.field != "encoder_version" or algo != "dqn":
            raise TrainingError(str(e)) from e
        return _widened(init, env, seed, kw, policy_kwargs)
    except PolicyError as e:
        raise TrainingError(str(e)) from e
    arch = base.hyperparams.get("net_arch")
    if policy_kwargs.get("net_arch") not in (None, arch):
        raise TrainingError(f"{init}: its net_arch is {arch}; a continued run keeps it")
    custom = {k: v for k, v in kw.items() if k not in ("n_steps", "buffer_size")}
    if algo == "ppo":
        from sb3_contrib import MaskablePPO

        return MaskablePPO.load(init, env=env, device="cpu", seed=seed, custom_objects=custom), base
    from stable_baselines3 import DQN
    from stable_baselines3.common.utils import LinearSchedule

    with warnings.catch_warnings():  # "n_steps is ignored": the saved n-step buffer keeps its own
        warnings.filterwarnings("ignore", message=".*n_steps.*", category=UserWarning)
        model: Any = DQN.load(init, env=env, device="cpu", seed=seed, custom_objects=custom)
    # Loading keeps the saved schedule; this run explores on its own.
    model.exploration_schedule = LinearSchedule(float(kw["exploration_initial_eps"]),
                                                float(kw["exploration_final_eps"]), float(kw["exploration_fraction"]))
    return model, base


def _widened(init: Path, env: Any, seed: int, kw: Mapping[str, Any],
             policy_kwargs: Mapping[str, Any]) -> tuple[Any, PolicyMetadata]:
    """A DQN of an older encoder version carried into this one's layout (`encoding.widen_index`):
    a new model whose input layer has the old weights in the old features' columns and zeros in the
    new ones, so that it starts out choosing what the old one chose; the rest is copied as is."""
    import torch
    from stable_baselines3 import DQN

    from remediator.encoding import ENCODER_VERSION, widen_index
    from remediator.rank.rl import read_metadata

    base = read_metadata(init)
    if base.algo != "dqn" or base.actions != tuple(k.value for k in ACTION_KINDS):
        raise TrainingError(f"{init}: only a DQN with this code's actions can be widened "
                            f"from encoder version {base.encoder_version} to {ENCODER_VERSION}")
    try:
        columns = widen_index(base.encoder_version)
    except ValueError as e:
        raise TrainingError(f"{init}: {e}") from e
    if len(columns) != base.obs_size:
        raise TrainingError(f"{init}: {base.obs_size} features, but encoder version {base.encoder_version} "
                            f"had {len(columns)}")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*n_steps.*", category=UserWarning)
        old = DQN.load(init, device="cpu")
    arch = base.hyperparams.get("net_arch") or list(policy_kwargs.get("net_arch") or [64, 64])
    model = DQN("MlpPolicy", env, seed=seed, device="cpu", policy_kwargs={**policy_kwargs, "net_arch": arch}, **kw)
    state = old.policy.state_dict()
    for key, value in model.policy.state_dict().items():
        if tuple(value.shape) == tuple(state[key].shape):
            continue
        wide = torch.zeros_like(value)  # an input layer: the old columns moved, the new ones zero
        wide[:, columns] = state[key]
        state[key] = wide
    model.policy.load_state_dict(state)
    return model, base


def training_suite(suite: str) -> Any:
    """The suite to train on (a name or a YAML path), never an evaluation suite: the benchmark's
    numbers would then measure memory, not skill."""
    from simulator.suite import SuiteError, load_suite

    try:
        s = load_suite(suite)
    except SuiteError as e:
        raise TrainingError(str(e)) from e
    if s.name.startswith("eval"):
        raise TrainingError(f"suite {s.name!r} is held out for evaluation; train on another suite "
                            "(for example `default`) so the benchmark measures generalisation")
    if s.name.startswith("validation"):
        raise TrainingError(f"suite {s.name!r} is held out for choosing between policies (train --ray, "
                            "REPRODUCE.md); train on another suite so the choice is not made on memory")
    return s


def _cpu_s() -> float:
    """CPU seconds of this process and its finished children (the env workers, once closed):
    on a shared machine, wall time says more about the neighbours than about the training."""
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for dist in ("stable-baselines3", "sb3-contrib", "torch", "gymnasium", "numpy", "remediator"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            continue
    return out


def plot_curve(points: Sequence[EpisodePoint], path: Path, title: str = "", window: int = 200) -> None:
    """Episode recovery time over training timesteps, with a rolling mean and success rate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(9, 4.5))
    if points:
        x = np.array([p.timestep for p in points])
        y = np.array([p.recovery_s / 60.0 for p in points])
        ok = np.array([p.recovered for p in points], dtype=float)
        ax.scatter(x, y, s=3, alpha=0.15, color="tab:blue", label="episode")
        w = max(1, min(window, len(points) // 5 or 1))
        kernel = np.ones(w) / w
        ax.plot(x[w - 1:], np.convolve(y, kernel, mode="valid"), color="tab:red", lw=2,
                label=f"mean of last {w} episodes")
        ax2 = ax.twinx()
        ax2.plot(x[w - 1:], 100 * np.convolve(ok, kernel, mode="valid"), color="tab:green", lw=1, alpha=0.7)
        ax2.set_ylabel("recovered within horizon (%)", color="tab:green")
        ax2.set_ylim(0, 105)
    ax.set_xlabel("training timesteps (decisions)")
    ax.set_ylabel("recovery time (simulated minutes)")
    ax.set_title(title or "training curve")
    ax.legend(loc="upper right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
