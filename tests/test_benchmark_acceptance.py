"""Issue 2 acceptance: the eval benchmark orders oracle < rules < random and nothing unsafe runs;
issue 11's: so does every remedy kind it added, fault by fault."""

from __future__ import annotations

import pytest

from remediator.benchmark import run_benchmark
from simulator.suite import load_suite


@pytest.mark.slow
def test_eval_benchmark_orders_rankers_and_stays_safe() -> None:
    suite = load_suite("eval")
    report = run_benchmark(suite, ["oracle", "rules", "random"], seed=7)
    r = report["rankers"]
    assert r["oracle"]["mttr_s"] < r["rules"]["mttr_s"] < r["random"]["mttr_s"]
    assert all(x["unsafe_executed"] == 0 for x in r.values())
    assert len(report["per_fault"]) >= 12 and "no_fault" in report["per_fault"]
    # The suite holds incidents where the tempting action is unsafe, and the guards refused it.
    assert r["random"]["guard_denials"] > 0
    # The faults behind issue 11's remedies: the rule table beats random on each, and the oracle
    # (which hands on a second fault its alert's runbook cannot reach) is never slower than it.
    per_fault = report["per_fault"]
    for fault in NEW_KINDS:
        mttr = {name: per_fault[fault][name]["mttr_s"] for name in ("oracle", "rules", "random")}
        assert mttr["rules"] < mttr["random"], (fault, mttr)
        assert mttr["oracle"] <= mttr["rules"], (fault, mttr)


NEW_KINDS = ("config_edited", "config_edited_crash", "secret_edited", "secret_edited_crash",
             "service_selector_changed", "service_target_port_changed", "node_left_cordoned")
