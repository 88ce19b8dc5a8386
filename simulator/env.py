"""The Gymnasium environment: one episode is one incident, one step is one decision.

Observation: `remediator.encoding.encode` of the same Snapshot the live agent builds.
Action: an index into `remediator.actions.ACTION_KINDS`; `action_masks()` marks the kinds
the catalog proposer offered for this state (for maskable algorithms such as MaskablePPO).
Reward: minus the simulated seconds each step takes (so the return is minus the recovery
time, escalations included), scaled by `reward_scale`, with penalties for capacity cuts,
guard denials, invalid picks and acting on an incident that needed no action.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
import numpy.typing as npt
from gymnasium import spaces

from remediator.actions import ACTION_KINDS, PASSIVE_KINDS, SPECS, ActionKind
from remediator.agent import decide
from remediator.encoding import OBS_SIZE, encode
from remediator.guards import Decision, GuardPolicy
from remediator.propose.base import Candidate, Proposer
from remediator.propose.catalog import CatalogProposer, candidate_for, candidate_mask
from remediator.rank import ProposerOrderRanker
from remediator.snapshot import Snapshot
from simulator.cluster import TICK_S
from simulator.incident import Incident, IncidentSpec
from simulator.suite import FaultWeight, Suite, load_suite
from simulator.topology import Topology

_AS_CHOSEN = ProposerOrderRanker()  # one candidate: the order is the policy's choice

PENALTY_S: dict[str, float] = {
    "capacity_cut": 30.0,  # a pod deleted or a node drained takes serving capacity away
    "denied": 60.0,  # a guard refused it: a wasted decision and a human's attention
    "invalid": 60.0,  # a kind that was not among the candidates
    # Changed a healthy service for a noisy alert. At 300 s (with half as many no-fault incidents
    # in training) the DQN still rolled back on error blips that followed an unrelated rollout:
    # 7-15% of no-fault incidents on eval seeds 11 and 13.
    "acted_on_no_fault": 600.0,
}


class RemediationEnv(gym.Env[npt.NDArray[np.float32], int]):
    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, suite: Suite | str = "default", *, faults: tuple[str, ...] | None = None,
                 topology: Topology | None = None, policy: GuardPolicy | None = None,
                 proposer: Proposer | None = None, reward_scale: float = 1.0 / 60.0, branches: int = 1,
                 penalties: Mapping[str, float] | None = None) -> None:
        """`branches` > 1 explores that many trajectories from each sampled incident's alert (each
        from an `Incident.fork` of it) before sampling the next: the same incidents, as often each,
        with the run-up to the alert simulated once per `branches` episodes. `penalties` overrides
        prices of `PENALTY_S` (seconds)."""
        super().__init__()
        if branches < 1:
            raise ValueError(f"branches must be at least 1, not {branches}")
        if extra := sorted(set(penalties or {}) - set(PENALTY_S)):
            raise ValueError(f"unknown penalty {', '.join(extra)}; known: {', '.join(PENALTY_S)}")
        self.penalties = {**PENALTY_S, **(penalties or {})}
        self.branches = branches
        self._origin: Incident | None = None  # the alert's state, kept to fork the next branch from
        self._uses = 0
        self.suite = load_suite(suite) if isinstance(suite, str) else suite
        if faults is not None:
            unknown = set(faults) - set(self.suite.faults) - set(_all_faults())
            if unknown:
                raise ValueError(f"unknown fault(s): {sorted(unknown)}")
            self.suite = self.suite.model_copy(
                update={"faults": {f: self.suite.faults.get(f) or FaultWeight(weight=1.0) for f in faults}})
        self.topology = topology or self.suite.topology.build()
        self.policy = policy or GuardPolicy()
        self.proposer = proposer or CatalogProposer()
        self.reward_scale = reward_scale
        self.observation_space = spaces.Box(0.0, 2.0, shape=(OBS_SIZE,), dtype=np.float32)
        self.action_space = spaces.Discrete(len(ACTION_KINDS))  # type: ignore[assignment]
        self._rng = random.Random(0)
        self.incident: Incident | None = None
        self.snapshot: Snapshot | None = None
        self.candidates: list[Candidate] = []

    # ------------------------------------------------------------------ gym API

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[npt.NDArray[np.float32], dict[str, Any]]:
        super().reset(seed=seed)
        if seed is not None:
            self._rng = random.Random(seed)
            self._origin = None  # a new seed starts a new draw of incidents
        spec = (options or {}).get("incident")
        if isinstance(spec, IncidentSpec):
            self.incident = self._new(spec)
        elif self._origin is not None and self._uses < self.branches:
            self.incident = self._origin.fork()
            self._uses += 1
        else:
            self.incident = self._new(self.suite.sample(self._rng, self.topology))
            self._origin = self.incident.fork() if self.branches > 1 else None
            self._uses = 1
        return self._observe(), self._info()

    def _new(self, spec: IncidentSpec) -> Incident:
        return Incident(self.topology, spec, self.suite.horizon_s, self.suite.dynamics)

    def action_masks(self) -> npt.NDArray[np.bool_]:
        return candidate_mask(self.candidates)

    def step(self, action: int) -> tuple[npt.NDArray[np.float32], float, bool, bool, dict[str, Any]]:
        inc, snap = self.incident, self.snapshot
        if inc is None or snap is None:
            raise RuntimeError("call reset() before step()")
        kind = ACTION_KINDS[int(action)]
        start = inc.now
        penalty = 0.0
        cand = candidate_for(self.candidates, kind)
        if cand is None:
            penalty += self.penalties["invalid"]
            cand = candidate_for(self.candidates, ActionKind.NOOP)
            assert cand is not None
        # The loop's own decision step, on the one candidate the policy chose: a denial is the
        # policy's to learn from, so no other candidate steps in (the runner's and the live
        # loop's choice would take the next one).
        choice = decide(snap, [cand], _AS_CHOSEN, inc.executed, self.policy, inc.now)
        verdict = choice.verdicts[0]
        if verdict.decision is Decision.DENY:
            penalty += self.penalties["denied"]
            inc.deny(cand.action)
        else:
            if SPECS[cand.kind].cuts_capacity:
                penalty += self.penalties["capacity_cut"]
            if inc.spec.fault == "no_fault" and cand.kind not in PASSIVE_KINDS:
                penalty += self.penalties["acted_on_no_fault"]
            inc.execute(cand.action, approval=verdict.decision is Decision.NEEDS_APPROVAL)
        # Time spent, capped at the horizon: the return is minus the recovery time.
        elapsed_end = min(inc.elapsed, inc.horizon_s) if not inc.recovered else inc.recovery_s
        elapsed = max(elapsed_end - (start - inc.alert_at), TICK_S if not inc.done else 0.0)
        reward = -(elapsed + penalty) * self.reward_scale
        terminated = inc.recovered or inc.escalated
        truncated = not terminated and inc.elapsed >= inc.horizon_s
        obs = self._observe() if not (terminated or truncated) else self._observe(final=True)
        info = self._info()
        info.update(verdict=verdict.decision.value, reason=verdict.reason, kind=cand.kind.value)
        return obs, float(reward), terminated, truncated, info

    # ------------------------------------------------------------------ helpers

    def _observe(self, final: bool = False) -> npt.NDArray[np.float32]:
        assert self.incident is not None
        self.snapshot = self.incident.observe()
        self.candidates = self.proposer.propose(self.snapshot)
        return encode(self.snapshot)

    def _info(self) -> dict[str, Any]:
        inc = self.incident
        assert inc is not None
        return {"fault": inc.spec.fault, "faults": inc.spec.faults, "variant": inc.spec.variant,
                "alert": inc.alert.name, "recovered": inc.recovered, "escalated": inc.escalated,
                "recovery_s": inc.recovery_s, "unsafe": len(inc.unsafe)}


def _all_faults() -> list[str]:
    from simulator.faults import FAULTS
    return list(FAULTS)


gym.register(id="Remediator-v0", entry_point="simulator.env:RemediationEnv")
