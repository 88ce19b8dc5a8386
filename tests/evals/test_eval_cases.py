"""Evaluation cases: they load, cover the alerts the agent acts on, and the catalog proposer passes them."""

from __future__ import annotations

import functools
import json
import re
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from evals.cases import CASES_DIR, EvalCase, load_cases
from evals.harness import evaluate, summary
from remediator.actions import ActionKind, ObjectRef
from remediator.catalog import load_catalog
from remediator.guards import Decision, GuardPolicy, judge
from remediator.propose.catalog import CatalogProposer
from remediator.propose.semantic import catalog_proposer

RULES = Path(__file__).resolve().parents[3] / "shared" / "data" / "kube-prometheus-rules"
CASES = load_cases()
IDS = [c.id for c in CASES]


@functools.cache
def proposer() -> CatalogProposer:
    """The catalog proposer as shipped: semantic matching when the embedding model is installed."""
    return catalog_proposer()


def _mark(case: EvalCase) -> object:
    issue = case.expected.get("known_issue")
    return pytest.param(case, id=case.id, marks=[pytest.mark.xfail(reason=issue, strict=True)] if issue else [])


def test_every_kube_prometheus_alert_the_agent_acts_on_has_a_case() -> None:
    if not RULES.is_dir():
        pytest.fail(f"{RULES} is missing: the shared data must sit beside the repository")
    names = set()
    for f in RULES.glob("*-prometheusRule.yaml"):
        names |= set(re.findall(r"^\s*- alert: (\w+)$", f.read_text(), re.M))
    acted_on = names & set(load_catalog().alerts)
    assert len(acted_on) >= 10
    covered = {c.alert.name for c in CASES}
    assert acted_on <= covered, f"no evaluation case for {sorted(acted_on - covered)}"
    assert {c.alert.name for c in CASES} - set(load_catalog().alerts), "no case without a runbook"
    assert "Apache License" in (CASES_DIR / "LICENSE.txt").read_text()


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_cases_are_well_formed(case: EvalCase) -> None:
    assert case.acceptable and case.acceptable <= set(ActionKind)
    assert case.expected.get("description") and case.expected.get("source")
    assert case.snapshot.at == case.now
    spec_workload = (case.spec.get("workload") or {}).get("name")
    issue = case.expected.get("known_issue") or case.expected.get("snapshot_issue")
    if not issue:
        assert (case.snapshot.workload.name if case.snapshot.workload else None) == spec_workload


def test_alert_payloads_are_what_the_receiver_accepts() -> None:
    receiver = pytest.importorskip("remediator.live.receiver")
    for case in CASES:
        received = receiver.parse_payload((case.path / "alert.json").read_text())
        assert [r.alert.name for r in received] == [case.alert.name]
        assert dict(received[0].alert.labels) == dict(case.alert.labels)


def test_the_spec_reaches_the_snapshot_as_real_signals() -> None:
    by_id = {c.id: c for c in CASES}
    oom = by_id["crashlooping-oomkilled"].snapshot.signals
    assert oom.oom_fraction > 0.5 and oom.mem_ratio > 0.95 and oom.restarts_per_min > 0.5
    assert by_id["crashlooping-bad-rollout"].snapshot.signals.rollout_age_s < 3600
    hpa = by_id["hpamaxedout-saturated"].snapshot.signals
    assert hpa.hpa_current == hpa.hpa_max == 6 and hpa.latency_p99_s > 1.0
    assert hpa.request_rate > 2 * hpa.request_rate_baseline
    dep = by_id["crashlooping-dependency-down"].snapshot.signals
    assert dep.dep_available_ratio == 0.0 and dep.error_exit_fraction > 0
    pv = by_id["pvfillingup-critical"].snapshot.signals
    assert pv.pvc_used_ratio > 0.97
    assert by_id["nodenotready"].snapshot.signals.node_ready == 0.0
    zero = by_id["errorbudgetburn-scaled-to-zero"].snapshot.signals
    assert zero.desired_replicas == 0 and zero.baseline_replicas == 3
    assert by_id["memoryovercommit"].snapshot.workload is None


@pytest.mark.parametrize("case", [_mark(c) for c in CASES])
def test_the_catalog_proposer_offers_an_acceptable_action_and_nothing_unsafe(case: EvalCase) -> None:
    out = evaluate(case, proposer())
    assert out.offered, [(c.action.describe(), v.reason) for c, v in zip(out.candidates, out.verdicts)]
    assert out.unsafe == []


def test_catalog_proposer_totals(capsys: pytest.CaptureFixture[str]) -> None:
    outs = [evaluate(c, proposer()) for c in CASES]
    known = {c.id for c in CASES if c.expected.get("known_issue")}
    s = summary(outs)
    with capsys.disabled():
        print(f"\ncatalog proposer on {s['cases']} evaluation cases: {json.dumps(s)}")
    assert {o.case for o in outs if not o.offered} <= known
    assert {o.case for o in outs if o.unsafe} <= known
    assert s["first_choice_acceptable"] >= len(CASES) // 3  # the runbook order alone; ranking does better


def test_expected_files_parse_as_yaml_mappings() -> None:
    for case in CASES:
        doc = yaml.safe_load((case.path / "expected.yaml").read_text())
        assert isinstance(doc, dict) and isinstance(doc["acceptable"], list)


def test_a_stuck_daemonset_rollout_is_rolled_back_when_the_daemonset_resolves_and_escalated_when_not() -> None:
    """KubeDaemonSetRolloutStuck: with the DaemonSet, its ControllerRevisions and a crash-looping pod of the
    new revision in the cluster, the snapshot resolves the DaemonSet and the guards let its rollback through as
    the runbook's first step; when the API server shows no such DaemonSet, nothing is in scope but escalate."""
    by_id = {c.id: c for c in CASES}
    case = by_id["daemonsetrolloutstuck-bad-revision"]
    node_agent = ObjectRef("DaemonSet", "shop", "node-agent")
    s = case.snapshot
    assert s.workload == node_agent and s.workload_kind == "DaemonSet"
    assert s.signals.has_previous_revision == 1.0 and s.signals.available_replicas < s.signals.desired_replicas
    out = evaluate(case, CatalogProposer())
    assert out.first is ActionKind.ROLLBACK_ROLLOUT and out.first_acceptable and out.unsafe == []
    rollback = next(c for c in out.candidates if c.kind is ActionKind.ROLLBACK_ROLLOUT)
    assert rollback.action.target == node_agent
    # The same rollback with no previous revision to go back to is refused by the guards.
    lone = replace(s, signals=replace(s.signals, has_previous_revision=0.0))
    refused = judge(rollback.action, lone, [], GuardPolicy(), case.now)
    assert refused.decision is Decision.DENY and "no previous revision" in refused.reason
    missing = by_id["daemonsetrolloutstuck-not-found"]
    assert missing.snapshot.workload is None
    gone = evaluate(missing, CatalogProposer())
    assert {c.kind for c in gone.candidates} <= {ActionKind.ESCALATE, ActionKind.NOOP}
    assert gone.first is ActionKind.ESCALATE and gone.first_acceptable
