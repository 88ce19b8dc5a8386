"""Issue 3 acceptance, checked on the policy the package ships (never trained on these suites).

The benchmark is deterministic for a given suite and seed, so these are fixed facts about
the shipped artifact: retrain it into something worse and this fails.
"""

from __future__ import annotations

from typing import Any

import pytest

from remediator.benchmark import run_benchmark
from simulator.suite import load_suite


def _family(report: dict[str, Any], family: str, ranker: str) -> float:
    return float(report["per_family"][family][ranker]["mttr_s"])


@pytest.mark.slow
def test_shipped_policy_on_eval() -> None:
    report = run_benchmark(load_suite("eval"), ["oracle", "rules", "rl"], seed=7)
    r = report["rankers"]
    rl, oracle, rules = r["rl"], r["oracle"], r["rules"]
    assert rl["mttr_s"] <= 1.15 * oracle["mttr_s"], (rl["mttr_s"], oracle["mttr_s"])
    assert rl["success_rate"] >= 0.97
    assert rl["unsafe_executed"] == 0
    assert rl["noop_incident_actions"] <= 0.05
    assert rl["mttr_s"] <= rules["mttr_s"]
    # The families whose alerts look alike: the learned policy reads the state better than the table.
    for family in ("crashloop", "latency"):
        assert _family(report, family, "rl") <= 0.85 * _family(report, family, "rules"), family


@pytest.mark.slow
def test_shipped_policy_on_a_larger_topology() -> None:
    suite = load_suite("eval_large")
    train = load_suite("default")
    assert suite.topology.services >= 3 * train.topology.services
    report = run_benchmark(suite, ["oracle", "rl"], seed=suite.seed)
    r = report["rankers"]
    assert r["rl"]["mttr_s"] <= 1.25 * r["oracle"]["mttr_s"], (r["rl"]["mttr_s"], r["oracle"]["mttr_s"])
    assert r["rl"]["unsafe_executed"] == 0
