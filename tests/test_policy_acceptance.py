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
    # Against the calibrated rule table (remediator/data/rules.yaml, tuned on the training suite
    # only) the shipped policy has a small edge, not the 0.6-0.85x it had over the old loose
    # table: measured 0.964x overall, 0.895x on crash loops, 0.985x on latency (seed 7). The
    # bounds are those relations with a small margin, so a worse policy fails here.
    assert rl["mttr_s"] <= rules["mttr_s"], (rl["mttr_s"], rules["mttr_s"])
    assert _family(report, "crashloop", "rl") <= 0.92 * _family(report, "crashloop", "rules")
    assert _family(report, "latency", "rl") <= 1.0 * _family(report, "latency", "rules")


@pytest.mark.slow
def test_shipped_policy_on_a_larger_topology() -> None:
    suite = load_suite("eval_large")
    train = load_suite("default")
    assert suite.topology.services >= 3 * train.topology.services
    report = run_benchmark(suite, ["oracle", "rules", "rl"], seed=suite.seed)
    r = report["rankers"]
    assert r["rl"]["mttr_s"] <= 1.25 * r["oracle"]["mttr_s"], (r["rl"]["mttr_s"], r["oracle"]["mttr_s"])
    assert r["rl"]["unsafe_executed"] == 0
    # On the larger graph the calibrated table is ahead: measured rl 1.021x rules (latency 1.055x).
    # This bounds how far behind the policy may fall; it does not claim an edge.
    assert r["rl"]["mttr_s"] <= 1.05 * r["rules"]["mttr_s"], (r["rl"]["mttr_s"], r["rules"]["mttr_s"])
