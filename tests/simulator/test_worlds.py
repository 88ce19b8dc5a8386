"""Suites describe their own worlds: fault ranges, start-up times, an explicit service graph.
Each bad value is refused naming its file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from remediator.actions import Action, ActionKind, ObjectRef
from simulator.cluster import Cluster
from simulator.dynamics import Dynamics
from simulator.faults import FAULTS
from simulator.incident import Incident, IncidentSpec
from simulator.suite import SuiteError, load_suite
from simulator.topology import generate

TOPOLOGY = generate(12, seed=3)


def _first_oom_after_onset(dynamics: Dynamics, seed: int) -> float:
    """Seconds from the leak's onset to the first OOM kill of the alerted workload."""
    inc = Incident(TOPOLOGY, IncidentSpec(("memory_leak",), TOPOLOGY.services[0].name, seed), dynamics=dynamics)
    c = inc.cluster
    for t, _, _, pods in c._frames:
        if t >= inc.onset and any(p[2] > 0 and p[3] == "OOMKilled" for p in pods):
            return t - inc.onset
    while c.now < inc.onset + 7200:
        c.step()
        if any(p.restarts and p.last_reason == "OOMKilled" for p in c.focus.pods):
            return c.now - inc.onset
    return float("inf")


def test_a_faster_leak_reaches_the_limit_sooner() -> None:
    fast = Dynamics(fault_params={"memory_leak": {"tau_s": (20.0, 20.0)}})
    slow = Dynamics(fault_params={"memory_leak": {"tau_s": (900.0, 900.0), "plateau": (1.05, 1.05)}})
    for seed in (1, 2, 3):
        f, d, s = (_first_oom_after_onset(x, seed) for x in (fast, Dynamics(), slow))
        assert f < d < s < float("inf"), (seed, f, d, s)
        assert f <= 120.0 and s >= 600.0, (seed, f, s)


def test_the_default_knobs_are_todays_ranges() -> None:
    leak = FAULTS["memory_leak"].all_knobs()
    assert leak["plateau"].default == (1.1, 1.35) and leak["tau_s"].default == (90.0, 200.0)
    assert leak["lead_s"].default == (540.0, 720.0)
    assert FAULTS["traffic_spike"].all_knobs()["load_at_max"].default == (1.15, 1.45)
    assert Dynamics().pod_startup_s == (5.0, 20.0)


def test_the_pod_start_up_range_is_the_suites() -> None:
    import random

    c = Cluster(TOPOLOGY, TOPOLOGY.services[0].name, random.Random(1), dynamics=Dynamics(pod_startup_s=(120.0, 120.0)))
    pod = c.focus.pods[0]
    c.apply(Action(ActionKind.DELETE_POD, ObjectRef("Pod", c.namespace, pod.name)))
    new = c.focus.pods[-1]
    assert new.ready_at - c.now == pytest.approx(120.0)
    for _ in range(7):  # 105 s: still starting
        c.step()
    assert not next(p for p in c.focus.pods if p.name == new.name).ready
    c.step()
    c.step()
    assert next(p for p in c.focus.pods if p.name == new.name).ready


BASE = "name: x\nfaults: {memory_leak: 1, traffic_spike: 1}\n"


@pytest.mark.parametrize(("body", "line", "key", "needle"), [
    ("faults: {memory_leak: 1}\ncolour: blue\n", 3, "colour", "Extra inputs"),
    ("faults:\n  memory_leak: 1\n  teleport: 2\n", 4, "faults.teleport", "unknown fault(s) teleport"),
    (BASE + "dynamics:\n  pod_startup_s: [20, 5]\n", 4, "dynamics.pod_startup_s", "low > high"),
    (BASE + "dynamics:\n  fault_params:\n    memory_leak:\n      plateau: [1.4, 1.2]\n", 6,
     "dynamics.fault_params.memory_leak.plateau", "low > high"),
    (BASE + "dynamics:\n  fault_params:\n    memory_leak:\n      tau_s: [-5, 3]\n", 6,
     "dynamics.fault_params.memory_leak.tau_s[0]", "greater than or equal to 0"),
    (BASE + "dynamics:\n  fault_params:\n    memory_leak:\n      tau_s: [0, 3]\n", 6,
     "dynamics.fault_params.memory_leak.tau_s", "must be > 0"),
    (BASE + "dynamics:\n  fault_params:\n    traffic_spike:\n      size: [1, 2]\n", 6,
     "dynamics.fault_params.traffic_spike.size", "no knob 'size'; its knobs: lead_s, load_at_max"),
    (BASE + "dynamics:\n  fault_params:\n    teleport: {speed: [1, 2]}\n", 5,
     "dynamics.fault_params.teleport", "unknown fault 'teleport'"),
    (BASE + "dynamics:\n  fault_params:\n    bad_config_rollout: {error_ratio: [0.5, 1.5]}\n", 5,
     "dynamics.fault_params.bad_config_rollout.error_ratio", "must be <= 1"),
    (BASE + "dynamics:\n  fault_params: {}\n  fault_params: {}\n", 5, "dynamics.fault_params", "given twice"),
])
def test_a_bad_value_names_file_line_and_key(tmp_path: Path, body: str, line: int, key: str, needle: str) -> None:
    path = tmp_path / "suite.yaml"
    path.write_text(body if body.startswith("name") else "name: x\n" + body)
    with pytest.raises(SuiteError) as e:
        load_suite(str(path))
    assert f"{path}:{line}: {key}: " in str(e.value) and needle in str(e.value), str(e.value)


def test_no_fault_draws_a_range_that_is_not_a_knob() -> None:
    """Every range an inject() draws from is named, so a suite can move it."""
    import re

    src = Path(__file__).parents[2] / "simulator" / "faults"
    literal = re.compile(r"rng\.uniform\(\s*[-\d.]")
    assert not [p.name for p in src.glob("*.py") if literal.search(p.read_text())]
