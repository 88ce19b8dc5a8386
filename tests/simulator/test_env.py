"""The Gymnasium env: check_env for every fault, masks, reward, determinism, topology independence."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from remediator.actions import ACTION_INDEX, ActionKind
from remediator.encoding import OBS_SIZE, encode
from remediator.propose.catalog import CatalogProposer
from remediator.rank import RulesRanker
from simulator.env import RemediationEnv
from simulator.faults import FAULTS
from simulator.incident import Incident, IncidentSpec
from simulator.topology import generate


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_check_env_passes_for_every_fault(fault: str) -> None:
    env = RemediationEnv("default", faults=(fault,))
    check_env(env, skip_render_check=True)
    obs, info = env.reset(seed=3)
    assert info["fault"] == fault
    assert obs.shape == (OBS_SIZE,)
    mask = env.action_masks()
    assert mask[ACTION_INDEX[ActionKind.NOOP]] and mask[ACTION_INDEX[ActionKind.ESCALATE]]


def _rollout(seed: int) -> list[tuple[float, bool]]:
    env = RemediationEnv("default")
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(40):
        a = int(rng.choice(np.flatnonzero(env.action_masks())))
        _, r, term, trunc, _ = env.step(a)
        out.append((r, term or trunc))
        if term or trunc:
            env.reset()
    return out


def test_seeded_episodes_replay_exactly() -> None:
    assert _rollout(5) == _rollout(5)
    assert _rollout(5) != _rollout(6)


def test_return_is_minus_recovery_time_for_waiting() -> None:
    """Noop until the end: the undiscounted return is minus the recovery minutes (no penalties)."""
    env = RemediationEnv("default", faults=("no_fault",), reward_scale=1.0)
    env.reset(seed=4)
    total, done, info = 0.0, False, {}
    while not done:
        _, r, term, trunc, info = env.step(ACTION_INDEX[ActionKind.NOOP])
        total += r
        done = term or trunc
    assert info["recovered"]
    assert total == pytest.approx(-info["recovery_s"])


def test_acting_on_a_no_fault_incident_is_penalised() -> None:
    env = RemediationEnv("default", faults=("no_fault",), reward_scale=1.0)
    env.reset(seed=4)
    mask = env.action_masks()
    kind = next(k for k in (ActionKind.RESTART_ROLLOUT, ActionKind.SCALE_OUT) if mask[ACTION_INDEX[k]])
    _, r_act, *_ = env.step(ACTION_INDEX[kind])
    env.reset(seed=4)
    _, r_wait, *_ = env.step(ACTION_INDEX[ActionKind.NOOP])
    assert r_act < r_wait - 200


def test_the_no_fault_price_is_a_knob_and_unknown_prices_are_refused() -> None:
    """`penalties` sets what acting on a healthy service costs; the same step costs that much more."""
    rewards = []
    for price in (600.0, 1500.0):
        env = RemediationEnv("default", faults=("no_fault",), reward_scale=1.0,
                             penalties={"acted_on_no_fault": price})
        env.reset(seed=4)
        mask = env.action_masks()
        kind = next(k for k in (ActionKind.RESTART_ROLLOUT, ActionKind.SCALE_OUT) if mask[ACTION_INDEX[k]])
        rewards.append(env.step(ACTION_INDEX[kind])[1])
    assert rewards[0] - rewards[1] == pytest.approx(900.0)
    with pytest.raises(ValueError, match="unknown penalty acted_on_nofault"):
        RemediationEnv("default", penalties={"acted_on_nofault": 1.0})


def test_invalid_action_is_penalised_not_executed() -> None:
    env = RemediationEnv("default", faults=("volume_filling",), reward_scale=1.0)
    env.reset(seed=2)
    invalid = int(np.flatnonzero(~env.action_masks())[0])
    _, r, _, _, info = env.step(invalid)
    assert info["kind"] == "noop"
    assert r <= -60.0


def test_observation_size_does_not_depend_on_topology() -> None:
    """A 5-service and a 30-service cluster give the same observation layout,
    and a ranker used on one runs unchanged on the other."""
    proposer, ranker = CatalogProposer(), RulesRanker()
    orders: list[list[ActionKind]] = []
    for n, seed in ((5, 1), (30, 2)):
        topo = generate(n, seed)
        svc = next(s for s in topo.services if s.deps)
        inc = Incident(topo, IncidentSpec(("dependency_outage",), svc.name, seed))
        snap = inc.observe()
        obs = encode(snap)
        assert obs.shape == (OBS_SIZE,)
        assert np.all((obs >= 0) & (obs <= 2))
        candidates = proposer.propose(snap)
        ranked = ranker.rank(snap, candidates)
        # Every candidate it was given, each once, and nothing else.
        assert len(ranked) == len(candidates) and all(any(r.candidate is c for r in ranked) for c in candidates)
        # Aimed at this topology's objects: the dependency restarted is one of this service's.
        restarts = {r.candidate.action.target for r in ranked if r.candidate.kind is ActionKind.RESTART_DEPENDENCY}
        assert restarts and {t.name for t in restarts} <= set(svc.deps), (restarts, svc.deps)
        orders.append([r.candidate.kind for r in ranked])
    # The same fault on a small and a large cluster gets the same decision, in the same order.
    assert orders[0] == orders[1]
