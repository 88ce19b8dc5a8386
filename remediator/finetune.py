"""Learning from experience: the shipped policy updated from the transitions the ledger logged.

`remediator train --from-ledger DB [--from-traces DIR]` (docs/replay.md, "Learning from the ledger").

The method, for the DQN policy (the shipped one):

1. **Logged transitions.** `Ledger.experience()` has, per decision, the encoded observation the
   ranker saw, the kind that ran, when in the incident it ran and the incident's measured recovery
   time. Consecutive decisions of one incident make transitions; the reward is the env's: minus the
   seconds until the next decision, and for the last one minus the seconds until verified recovery
   (the horizon when it failed: nobody measured when that one recovered),
   times the env's `reward_scale`. An escalation is priced as the env priced it in training: a
   human's expected takeover (`simulator.incident.HUMAN_S`, then one fix) plus the page's cost, not
   the horizon (the horizon made every logged escalation look twice as dear as the simulator
   taught, and fine-tuning then avoided escalating where it should). Dry runs are left out: nothing ran,
   so the recovery time says nothing about the action. Observations of another encoder size are
   left out (and counted). `--from-traces` adds, per trace whose recording met the SLO again, one
   `noop` transition worth the recording's own time to recovery: what waiting cost there.
2. **Offline pre-filling.** The logged transitions, each incident in order (the n-step returns stay
   within it), are put `repeat` times into the DQN's replay buffer, and `offline_steps` gradient steps
   are taken on that buffer alone, the target network synced every `target_every` steps.
3. **Continue in simulation** for `sim_timesteps` on the training suite, with the logged transitions
   still in the buffer and a low exploration rate, so the policy keeps what it knew of the default
   world (it does not forget) while the logged outcomes pull its values.

The model keeps the base policy's encoder version and action list (`PolicyMetadata.check` refuses
it on another encoder, as any model) and its metadata says what it learned from (`extra.fine_tuned`).
"""

from __future__ import annotations

import datetime as _dt
import time
import warnings
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from remediator.actions import ACTION_INDEX, ActionKind
from remediator.encoding import OBS_SIZE
from remediator.rank.rl import DEFAULT_POLICY, PolicyMetadata, embed_metadata, load_policy, metadata_path
from remediator.train import ESCALATE_COST_S, TrainingError, _make_env, _versions, training_suite
from simulator.incident import HUMAN_S

__all__ = ["FineTuneResult", "LoggedTransition", "finetune", "transitions_from_ledger", "transitions_from_traces"]

REWARD_SCALE = 1.0 / 60.0  # simulator.env.RemediationEnv's default: rewards in minutes
HORIZON_S = 1800.0  # what an incident that failed cost: the loop's default horizon
FIX_S = 180.0  # the human's fix once they have taken over (as simulator.incident's takeover advances)
ESCALATED_S = sum(HUMAN_S) / 2 + FIX_S  # an escalated incident's expected wait after the page


@dataclass(frozen=True)
class LoggedTransition:
    obs: npt.NDArray[np.float32]
    action: int
    reward: float
    next_obs: npt.NDArray[np.float32]
    done: bool
    episode: str  # the incident (or trace) it belongs to


@dataclass
class Experience:
    transitions: list[LoggedTransition] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)

    @property
    def episodes(self) -> int:
        return len({t.episode for t in self.transitions})


@dataclass
class FineTuneResult:
    model_path: Path
    metadata: PolicyMetadata
    model: Any = None


def _obs(value: Any) -> npt.NDArray[np.float32] | None:
    if not isinstance(value, list) or len(value) != OBS_SIZE:
        return None
    return np.asarray(value, dtype=np.float32)


def transitions_from_ledger(records: Sequence[Mapping[str, Any]], reward_scale: float = REWARD_SCALE,
                            horizon_s: float = HORIZON_S, escalate_cost_s: float = ESCALATE_COST_S) -> Experience:
    """`Ledger.experience()` records as transitions (see the module doc for the reward)."""
    out = Experience()
    by_incident: dict[int, list[Mapping[str, Any]]] = defaultdict(list)
    for r in records:
        if r.get("dry_run"):
            out.skipped["dry run"] += 1
        elif r.get("chosen") not in {k.value for k in ActionKind}:
            out.skipped["nothing chosen"] += 1
        elif _obs(r.get("observation")) is None:
            out.skipped["observation of another encoder size (or none)"] += 1
        else:
            by_incident[int(r["incident_id"])].append(r)
    for incident, rows in sorted(by_incident.items()):
        rows.sort(key=lambda r: float(r["since_alert_s"]))
        end = rows[0].get("recovery_s")
        if end is None and rows[0].get("recovered"):
            out.skipped["recovered without a recovery time"] += len(rows)
            continue
        escalated = end is None and bool(rows[0].get("escalated"))
        if escalated:  # a human took it: what the simulator's takeover costs on average
            end = float(rows[-1]["since_alert_s"]) + ESCALATED_S
        elif end is None:  # failed: nobody measured when it recovered; it cost the horizon
            end = horizon_s
        for i, r in enumerate(rows):
            last = i == len(rows) - 1
            until = float(end) if last else float(rows[i + 1]["since_alert_s"])
            cost = max(0.0, until - float(r["since_alert_s"])) + (escalate_cost_s if last and escalated else 0.0)
            obs = _obs(r["observation"])
            nxt = obs if last else _obs(rows[i + 1]["observation"])
            assert obs is not None and nxt is not None
            out.transitions.append(LoggedTransition(
                obs, ACTION_INDEX[ActionKind(r["chosen"])], -cost * reward_scale, nxt, last, f"ledger:{incident}"))
    return out


def transitions_from_traces(paths: Sequence[Path], reward_scale: float = REWARD_SCALE) -> Experience:
    """One `noop` transition per trace whose recording met the SLO again: its own time to recovery."""
    from remediator.encoding import encode
    from remediator.live.observer import ObservationError
    from remediator.replay.run import ReplayResult, _follow, trace_observer
    from remediator.replay.trace import load_trace

    out = Experience()
    for p in paths:
        trace = load_trace(p)
        observer = trace_observer(trace)
        try:
            obs = observer.observe(trace.alert, now=trace.decide_at)
        except ObservationError:
            out.skipped["trace not observable"] += 1
            continue
        result = ReplayResult(trace, obs, obs.problem)
        _follow(observer, trace, result)
        if not obs.usable or result.recorded_recovery_s is None:
            out.skipped["trace without a recorded recovery"] += 1
            continue
        x = encode(obs.snapshot)
        waited = max(0.0, result.recorded_recovery_s - obs.snapshot.since_alert_s)
        out.transitions.append(LoggedTransition(x, ACTION_INDEX[ActionKind.NOOP], -waited * reward_scale, x, True,
                                                f"trace:{p.name}"))
    return out


def _prefill(model: Any, experience: Experience, repeat: int) -> None:
    for _ in range(repeat):
        for t in experience.transitions:
            model.replay_buffer.add(t.obs[None, :], t.next_obs[None, :], np.array([t.action]),
                                    np.array([t.reward], dtype=np.float32), np.array([t.done]),
                                    [{"TimeLimit.truncated": False}])


def _offline(model: Any, steps: int, target_every: int) -> None:
    from stable_baselines3.common.utils import polyak_update

    model._current_progress_remaining = 1.0
    done = 0
    while done < steps:
        n = min(target_every, steps - done)
        model.train(gradient_steps=n, batch_size=model.batch_size)
        polyak_update(model.q_net.parameters(), model.q_net_target.parameters(), 1.0)
        done += n


def finetune(experience: Experience, out: Path | str, *, policy: Path | str | None = None, suite: str = "default",
             sim_timesteps: int = 5_000, offline_steps: int = 2_000, repeat: int = 4, target_every: int = 250,
             exploration: float = 0.03, learning_rate: float = 2.5e-4, seed: int = 0,
             sources: Mapping[str, Any] | None = None) -> FineTuneResult:
    """Update the DQN `policy` (default: the shipped one) from `experience`, then `sim_timesteps` in `suite`."""
    out = Path(out)
    if out.suffix != ".zip":
        raise TrainingError(f"--out must name a .zip file (SB3's model format), not {str(out)!r}")
    if not experience.transitions:
        reasons = ", ".join(f"{n} {why}" for why, n in experience.skipped.items()) or "no decisions at all"
        raise TrainingError(f"no usable logged transitions ({reasons})")
    base_path = Path(policy) if policy else DEFAULT_POLICY
    _, base = load_policy(base_path)  # refuses another encoder version or action list
    if base.algo != "dqn":
        raise TrainingError(f"{base_path}: fine-tuning from logged transitions needs a DQN policy, not {base.algo}")
    s = training_suite(suite)

    import torch
    from stable_baselines3 import DQN
    from stable_baselines3.common.logger import configure
    from stable_baselines3.common.vec_env import DummyVecEnv

    torch.set_num_threads(1)
    escalate_cost = float(base.hyperparams.get("escalate_cost_s", ESCALATE_COST_S))
    no_fault_cost = base.hyperparams.get("no_fault_cost_s")  # the base's reward, where it set one
    env = DummyVecEnv([_make_env(s, escalate_cost, no_fault_cost_s=float(no_fault_cost) if no_fault_cost else None)])
    started = time.perf_counter()
    with warnings.catch_warnings():  # "n_steps is ignored": the saved NStepReplayBuffer keeps its own
        warnings.filterwarnings("ignore", message=".*n_steps.*", category=UserWarning)
        model: Any = DQN.load(base_path, env=env, device="cpu", seed=seed,
                              custom_objects={"learning_rate": learning_rate, "learning_starts": 0,
                                              "exploration_initial_eps": exploration,
                                              "exploration_final_eps": exploration})
    model.set_logger(configure(None, []))
    model.exploration_schedule = lambda _progress: exploration
    model.exploration_rate = exploration
    try:
        _prefill(model, experience, repeat)
        _offline(model, offline_steps, target_every)
        if sim_timesteps > 0:
            model.learn(total_timesteps=sim_timesteps, reset_num_timesteps=False)
    finally:
        env.close()
    wall = time.perf_counter() - started
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save(out)
    kinds = Counter(list(ActionKind)[t.action].value for t in experience.transitions)
    meta = PolicyMetadata.current(
        algo="dqn", suite=base.suite, seed=seed, timesteps=base.timesteps + sim_timesteps,
        train_wall_s=round(base.train_wall_s + wall, 1), command=str((sources or {}).get("command", "")),
        hyperparams=dict(base.hyperparams), versions=_versions(),
        created=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        extra={**dict(base.extra), "fine_tuned": {
            "from_policy": str(base_path), "from_policy_created": base.created, **dict(sources or {}),
            "transitions": len(experience.transitions), "episodes": experience.episodes,
            "chosen_kinds": dict(sorted(kinds.items())), "skipped": dict(experience.skipped),
            "method": "DQN replay buffer pre-filled with the logged transitions, offline gradient steps, "
                      "then continued in simulation with them still in the buffer",
            "repeat": repeat, "offline_gradient_steps": offline_steps, "target_every": target_every,
            "sim_suite": s.name, "sim_timesteps": sim_timesteps, "exploration": exploration,
            "learning_rate": learning_rate, "wall_s": round(wall, 1)}})
    embed_metadata(out, meta)
    assert metadata_path(out).is_file()
    return FineTuneResult(out, meta, model)
