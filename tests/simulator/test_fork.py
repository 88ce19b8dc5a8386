"""A forked incident goes exactly as the original would: the contract `RemediationEnv(branches=N)` rests on."""

from __future__ import annotations

import numpy as np
import pytest

from remediator.encoding import encode
from simulator.env import RemediationEnv
from simulator.faults import FAULTS
from simulator.incident import Incident
from simulator.suite import load_suite


def _trajectory(env: RemediationEnv, actions: np.random.Generator, steps: int = 8) -> list[tuple[bytes, float, bool]]:
    out = []
    for _ in range(steps):
        a = int(actions.choice(np.flatnonzero(env.action_masks())))
        obs, reward, terminated, truncated, info = env.step(a)
        out.append((obs.tobytes(), round(reward, 9), bool(info["recovered"])))
        if terminated or truncated:
            break
    return out


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_fork_replays_the_fresh_incident_exactly(fault: str) -> None:
    """From the alert, a fork and a freshly simulated incident of the same spec see the same
    observations and rewards under the same actions, and neither disturbs the other."""
    suite = load_suite("default")
    topology = suite.topology.build()
    for seed in range(3):
        env = RemediationEnv(suite, faults=(fault,))
        env.reset(seed=500 + seed)
        assert env.incident is not None
        spec = env.incident.spec
        origin = env.incident.fork()
        reference = _trajectory(env, np.random.default_rng(seed))
        for _ in range(2):  # two forks of one origin: the first must not leak into the second
            env.incident = origin.fork()
            env._observe()
            assert _trajectory(env, np.random.default_rng(seed)) == reference
        fresh = Incident(topology, spec, suite.horizon_s, suite.dynamics)
        assert encode(fresh.observe()).tobytes() == encode(origin.observe()).tobytes()


def test_branching_env_reuses_each_alert_and_keeps_the_draw() -> None:
    """With branches=3 every incident is explored three times, and the sequence of incidents is
    the one a plain env draws."""
    plain, branched = RemediationEnv("default"), RemediationEnv("default", branches=3)
    plain.reset(seed=9)
    branched.reset(seed=9)
    specs_plain, specs_branched = [], []
    for _ in range(4):
        assert plain.incident is not None
        specs_plain.append(plain.incident.spec)
        plain.reset()
    for _ in range(12):
        assert branched.incident is not None
        specs_branched.append(branched.incident.spec)
        branched.reset()
    assert specs_branched == [s for s in specs_plain for _ in range(3)]


def test_branches_must_be_positive() -> None:
    with pytest.raises(ValueError, match="branches must be at least 1"):
        RemediationEnv("default", branches=0)
