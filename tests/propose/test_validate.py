"""Validation of untrusted proposals: kind, scope and parameters, each drop with its reason."""

from __future__ import annotations

from typing import Any

import pytest

from remediator.actions import ActionKind, ObjectRef
from remediator.catalog import load_catalog
from remediator.propose.validate import IncidentScope, Proposal, ProposalValidator, clean_text
from remediator.snapshot import Alert, Signals, Snapshot

K = ActionKind
NS = "shop"
CART = ObjectRef("Deployment", NS, "cart")
HPA = ObjectRef("HorizontalPodAutoscaler", NS, "cart")
PVC = ObjectRef("PersistentVolumeClaim", NS, "cart-data")
DB = ObjectRef("Deployment", NS, "db")
POD = ObjectRef("Pod", NS, "cart-7d9f8-x2kq1")
NODE = ObjectRef("Node", "", "node-a")
CATALOG = load_catalog()


def snap(alert: str = "KubePodCrashLooping", **signals: Any) -> Snapshot:
    return Snapshot(Alert(alert, {"namespace": NS, "deployment": "cart"}), 1000.0, CART,
                    Signals(**{"desired_replicas": 3, "baseline_replicas": 3, **signals}),
                    node="node-a", pods=("cart-7d9f8-x2kq1", "cart-7d9f8-b9z8y"), hpa=HPA, pvc=PVC,
                    dependencies=(DB,))


def check(*proposals: Proposal, s: Snapshot | None = None, **kw: Any) -> tuple[list[str], list[tuple[str, str]]]:
    out = ProposalValidator(CATALOG, **kw).validate(list(proposals), s or snap())
    return [a.action.describe() for a in out.accepted], [(r.check, r.reason) for r in out.rejections]


def test_a_proposal_inside_the_runbook_scope_and_limits_passes_with_its_rationale() -> None:
    out = ProposalValidator(CATALOG).validate(
        [Proposal("raise_memory_limit", CART, {"factor": 1.8}, "OOMKilled\x00 at\nthe limit", 0.7)], snap())
    (ok,) = out.accepted
    assert ok.action.describe() == "raise_memory_limit(Deployment/shop/cart, factor=1.8)"
    assert ok.action.rationale == "OOMKilled at the limit" and ok.confidence == 0.7
    assert out.rejections == ()


@pytest.mark.parametrize(("proposal", "check_name", "needle"), [
    (Proposal("delete_namespace", ObjectRef("Namespace", "", NS)), "kind", "'delete_namespace' is not an action kind"),
    (Proposal("read_secret", ObjectRef("Secret", NS, "db-creds")), "kind", "is not an action kind"),
    (Proposal("scale_out", CART, {"factor": 1.5}), "kind", "the KubePodCrashLooping runbook offers"),
    (Proposal("restart_rollout", ObjectRef("Deployment", "kube-system", "coredns")), "scope", "not in this incident"),
    (Proposal("restart_rollout", ObjectRef("Deployment", NS, "payments")), "scope", "may target Deployment/shop/cart"),
    (Proposal("delete_pod", ObjectRef("Pod", NS, "cart-zzz")), "scope", "not in this incident"),
    (Proposal("delete_pod", CART), "scope", "delete_pod acts on a Pod, not on Deployment/shop/cart"),
    (Proposal("restart_dependency", ObjectRef("Deployment", NS, "frontend")), "scope", "may target Deployment/shop/db"),
    (Proposal("raise_memory_limit", CART, {"factor": 50}), "params", "outside the runbook's limits"),
    (Proposal("raise_memory_limit", CART, {"factor": "2"}), "params", "is not a number"),
    (Proposal("raise_memory_limit", CART, {"factor": float("nan")}), "params", "is not a number"),
    (Proposal("raise_memory_limit", CART, {"factor": 1.5, "dry_run": False}), "params", "does not take 'dry_run'"),
    (Proposal("restart_rollout", CART, {"force": True}), "params", "does not take 'force'"),
])
def test_each_bad_proposal_is_dropped_with_the_reason(proposal: Proposal, check_name: str, needle: str) -> None:
    accepted, rejected = check(proposal)
    assert accepted == []
    ((name, reason),) = rejected
    assert name == check_name and needle in reason, reason


def test_the_params_schema_binds_where_the_runbook_sets_no_limits() -> None:
    s = snap("ServiceErrorBudgetBurn", desired_replicas=0)
    accepted, rejected = check(Proposal("restore_replicas", CART, {"replicas": 0}), s=s)
    assert accepted == [] and rejected[0][0] == "params" and "greater than or equal to 1" in rejected[0][1]


def test_absolute_counts_must_grow_within_the_runbooks_factor_limit() -> None:
    s = snap("ServiceLatencyHigh", hpa_max=6.0)
    accepted, rejected = check(Proposal("scale_out", CART, {"replicas": 6}),
                               Proposal("raise_hpa_max", HPA, {"max_replicas": 1000}), s=s)
    assert accepted == ["scale_out(Deployment/shop/cart, replicas=6)"]
    assert "max_replicas=1000 is 166.67 times the current 6, above the runbook's factor limit [1.1, 2]" \
        in rejected[0][1]
    accepted, rejected = check(Proposal("scale_out", CART, {"replicas": 2}), s=s)
    assert accepted == [] and "replicas=2 does not grow the current 3" in rejected[0][1]


def test_missing_params_get_the_runbook_default_and_restore_gets_the_baseline() -> None:
    accepted, _ = check(Proposal("raise_memory_limit", CART))
    assert accepted == ["raise_memory_limit(Deployment/shop/cart, factor=1.5)"]
    s = Snapshot(Alert("ServiceErrorBudgetBurn", {"namespace": NS, "service": "cart"}), 0.0, CART,
                 Signals(desired_replicas=0, baseline_replicas=4))
    accepted, _ = check(Proposal("restore_replicas", CART, {"replicas": None}), s=s)
    assert accepted == ["restore_replicas(Deployment/shop/cart, replicas=4)"]


def test_passive_kinds_always_name_the_incident_and_duplicates_are_dropped() -> None:
    accepted, rejected = check(Proposal("escalate", ObjectRef("Deployment", "kube-system", "coredns")),
                               Proposal("noop", ObjectRef("Namespace", "", "prod")),
                               Proposal("escalate", CART))
    assert accepted == ["escalate(Deployment/shop/cart)", "noop(Deployment/shop/cart)"]
    assert rejected == [("duplicate", "duplicate: escalate was already proposed")]


def test_an_alert_without_runbook_may_get_any_kind_but_not_a_high_risk_one() -> None:
    s = snap("MyOwnAlert")
    accepted, rejected = check(Proposal("scale_out", CART, {"replicas": 5}),
                               Proposal("cordon_drain_node", NODE), s=s)
    assert accepted == ["scale_out(Deployment/shop/cart, replicas=5)"]
    assert rejected[0][0] == "kind" and "high risk, and no runbook lists it" in rejected[0][1]


def test_a_matched_runbook_restricts_like_the_alerts_own() -> None:
    crash = CATALOG.get("KubePodCrashLooping")
    s = snap("CartRestarting")
    accepted, rejected = check(Proposal("scale_out", CART, {"replicas": 5}), Proposal("delete_pod", POD), s=s,
                               matcher=lambda alert: crash)
    assert accepted == ["delete_pod(Pod/shop/cart-7d9f8-x2kq1)"]
    assert "KubePodCrashLooping runbook offers" in rejected[0][1]


def test_without_restriction_the_runbook_still_bounds_its_own_kinds() -> None:
    accepted, rejected = check(Proposal("scale_out", CART, {"factor": 1.5}),
                               Proposal("raise_memory_limit", CART, {"factor": 2.5}), restrict_to_runbook=False)
    assert accepted == ["scale_out(Deployment/shop/cart, factor=1.5)"]
    assert "outside the runbook's limits [1.1, 2]" in rejected[0][1]


def test_options_follow_the_runbook_order_and_list_only_existing_targets() -> None:
    v = ProposalValidator(CATALOG)
    kinds = [k for k, _ in v.options(snap())]
    assert kinds[:5] == [K.ROLLBACK_ROLLOUT, K.RAISE_MEMORY_LIMIT, K.RESTART_DEPENDENCY, K.RESTART_ROLLOUT,
                         K.DELETE_POD]
    assert kinds[-2:] == [K.ESCALATE, K.NOOP]
    bare = Snapshot(Alert("KubePodCrashLooping", {"namespace": NS}), 0.0, CART, Signals())
    assert K.DELETE_POD not in [k for k, _ in v.options(bare)]  # no pods observed


def test_scope_of_an_incident_without_workload_is_the_node_or_namespace() -> None:
    s = Snapshot(Alert("KubeNodeNotReady", {"node": "node-b"}), 0.0, None, Signals())
    scope = IncidentScope.of(s)
    assert scope.targets(K.ESCALATE) == (ObjectRef("Node", "", "node-b"),)
    assert scope.targets(K.RESTART_ROLLOUT) == ()
    assert "has no Deployment" in (scope.problem(K.RESTART_ROLLOUT, CART) or "")


def test_clean_text_bounds_and_flattens_untrusted_text() -> None:
    assert clean_text("a\u200bb\n\tc\x1b[31m", 100) == "a b c [31m"
    assert clean_text("x" * 50, 10) == "x" * 9 + "…"
