"""The chart's CRDs: valid CustomResourceDefinitions, useful columns, and schemas that hold what the operator writes."""

from __future__ import annotations

import copy
import re
from typing import Any

import kubernetes_validate
import pytest

from remediator.actions import ACTION_KINDS, Risk
from remediator.guards import Decision, GuardPolicy
from tests.helm.crd import REPO_ROOT, CRInvalid, crds, schema_paths, validate_cr, version_of

GROUP = "remediator.io"
# GuardPolicy settings that are the cluster's to make, never one namespace's (the CRD's comment says why).
CLUSTER_ONLY_GUARDS = {"allowed_namespaces", "denied_namespaces", "global_budget_per_hour", "resume_max_age_s",
                       "drain_bare_pods", "drain_empty_dir"}


def _schema(kind: str) -> dict[str, Any]:
    return version_of(crds()[(GROUP, kind)], "v1alpha1")["schema"]["openAPIV3Schema"]


def remediation(**status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "remediator.io/v1alpha1", "kind": "Remediation",
        "metadata": {"name": "incident-42", "namespace": "shop"},
        "spec": {
            "incidentId": 42,
            "alert": {"name": "KubePodCrashLooping", "fingerprint": "8f2c1a9b3d4e5f60",
                      "startsAt": "2026-12-02T07:00:00Z"},
            "target": {"kind": "Deployment", "namespace": "shop", "name": "cart"},
            "approval": {"decision": "approve", "approver": "U024BE7LH"},
        },
        "status": {
            "phase": "Verified", "reason": "error rate back under the SLO",
            "action": {"kind": "rollback_rollout", "target": "Deployment/shop/cart", "params": {}},
            "candidates": [
                {"action": "rollback_rollout", "target": "Deployment/shop/cart", "score": 0.82,
                 "verdict": "needs_approval", "reason": "risk: rollback_rollout is high risk"},
                {"action": "scale_out", "target": "Deployment/shop/cart", "score": None, "verdict": "deny",
                 "reason": "cooldown: ..."},
            ],
            "evidence": [{"signal": "error_rate", "value": 0.31, "slo": 0.01},
                         {"signal": "p99_latency_s", "value": None, "slo": None}],
            "dryRun": "Deployment/shop/cart: spec.template replaced by revision 3",
            "approver": "U024BE7LH", "approvedAt": "2026-12-02T07:03:10Z", "recoverySeconds": 412.5,
            "observedGeneration": 2,
            "conditions": [{"type": "Approved", "status": "True", "lastTransitionTime": "2026-12-02T07:03:10Z",
                            "reason": "SlackApproval", "message": "approved by U024BE7LH"}],
            **status,
        },
    }


@pytest.mark.parametrize("key", sorted(crds()))
def test_crd_is_a_valid_custom_resource_definition(key: tuple[str, str]) -> None:
    crd = crds()[key]
    assert kubernetes_validate.validate(crd, "1.33", strict=True)
    assert crd["metadata"]["name"] == f"{crd['spec']['names']['plural']}.{GROUP}"
    assert crd["spec"]["scope"] == "Namespaced"
    version = version_of(crd, "v1alpha1")
    assert version["served"] and version["storage"] and version["subresources"] == {"status": {}}


@pytest.mark.parametrize("key", sorted(crds()))
def test_schema_is_structural(key: tuple[str, str]) -> None:
    """Every field has a type (an API server refuses a non-structural v1 schema)."""
    untyped = [path for path, node in schema_paths(_schema(key[1])) if "type" not in node]
    assert untyped == []


@pytest.mark.parametrize("key", sorted(crds()))
def test_printer_columns_point_at_declared_fields_of_their_type(key: tuple[str, str]) -> None:
    schema = _schema(key[1])
    fields = dict(schema_paths(schema))
    columns = version_of(crds()[key], "v1alpha1")["additionalPrinterColumns"]
    assert columns[-1] == {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
    for column in columns[:-1]:
        path = re.sub(r"\[\d+\]", "[]", column["jsonPath"].lstrip("."))
        node = fields.get(path) or fields.get(path.removesuffix("[]"), {}).get("items")
        assert node is not None, f"{column['name']}: {column['jsonPath']} is not in the schema"
        want = {"integer": "integer", "number": "number", "boolean": "boolean"}.get(node["type"], "string")
        assert column["type"] == want, column


def test_kubectl_get_remediations_shows_phase_action_target_approver_and_recovery() -> None:
    columns = version_of(crds()[(GROUP, "Remediation")], "v1alpha1")["additionalPrinterColumns"]
    shown = {c["jsonPath"] for c in columns if c.get("priority", 0) == 0}
    assert {".status.phase", ".status.action.kind", ".status.action.target", ".status.approver",
            ".status.recoverySeconds", ".metadata.creationTimestamp"} <= shown


def test_a_full_remediation_validates() -> None:
    validate_cr(remediation())


def test_phases_are_the_lifecycle_of_the_issue() -> None:
    phases = _schema("Remediation")["properties"]["status"]["properties"]["phase"]["enum"]
    assert phases == ["Proposed", "AwaitingApproval", "Executing", "Verified", "Failed", "Undone", "Denied", "Expired",
                      "Cancelled"]
    for phase in phases:
        validate_cr(remediation(phase=phase))


def test_verdicts_are_the_guards_decisions() -> None:
    verdicts = (_schema("Remediation")["properties"]["status"]["properties"]["candidates"]["items"]
                ["properties"]["verdict"]["enum"])
    assert verdicts == [d.value for d in Decision]


def _with(path: str, value: Any, *, delete: bool = False) -> dict[str, Any]:
    obj = copy.deepcopy(remediation())
    *parents, leaf = path.split(".")
    node: Any = obj
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    if delete:
        del node[leaf]
    elif leaf.isdigit():
        node[int(leaf)] = value
    else:
        node[leaf] = value
    return obj


@pytest.mark.parametrize(("path", "value", "delete", "where"), [
    ("status.phase", "Running", False, "status.phase"),
    ("status.phase", "verified", False, "status.phase"),
    ("spec.approval.decision", "yes", False, "spec.approval.decision"),
    ("spec.approval.approver", "", False, "spec.approval.approver"),
    ("spec.approval.approver", None, True, "spec.approval"),
    ("spec.incidentId", None, True, "spec"),
    ("spec.incidentId", "42", False, "spec.incidentId"),
    ("spec.incidentId", 0, False, "spec.incidentId"),
    ("spec.alert.fingerprint", "not-hex", False, "spec.alert.fingerprint"),
    ("spec.alert.startsAt", "yesterday", False, "spec.alert.startsAt"),
    ("spec.target.name", None, True, "spec.target"),
    ("status.candidates.0.verdict", "maybe", False, "status.candidates.0.verdict"),
    ("status.action.params", {"replicas": "five"}, False, "status.action.params.replicas"),
    ("status.recoverySeconds", -1, False, "status.recoverySeconds"),
    ("status.approvedAt", "2026-13-02T07:00:00Z", False, "status.approvedAt"),
    ("status.evidence.0.value", "high", False, "status.evidence.0.value"),
    ("status.conditions.0.status", "Yes", False, "status.conditions.0.status"),
    ("status.outcome", "ok", False, "status"),  # a field the CRD does not declare
    ("spec.mode", "auto", False, "spec"),
])
def test_a_remediation_the_crd_refuses(path: str, value: Any, delete: bool, where: str) -> None:
    with pytest.raises(CRInvalid) as refused:
        validate_cr(_with(path, value, delete=delete))
    assert refused.value.path == where


def _cel_rules(kind: str) -> list[tuple[str, dict[str, Any]]]:
    """(field path, rule) of every CEL rule of the CRD's schema."""
    return [(path, rule) for path, node in [("", _schema(kind)), *schema_paths(_schema(kind))]
            for rule in node.get("x-kubernetes-validations", [])]


def _spec_update_allowed(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether the CRD's CEL rules on `spec` admit an update from `old` to `new` (a transition rule sees both)."""
    import celpy

    env = celpy.Environment()
    verdicts = []
    for path, rule in _cel_rules("Remediation"):
        assert path == "spec", path
        program = env.program(env.compile(rule["rule"]))
        verdicts.append(bool(program.evaluate({"self": celpy.json_to_cel(new), "oldSelf": celpy.json_to_cel(old)})))
    return all(verdicts)


def test_cel_rules_compile() -> None:
    import celpy

    env = celpy.Environment()
    rules = _cel_rules("Remediation") + _cel_rules("RemediationPolicy")
    assert len(rules) == 2
    for _, rule in rules:
        env.compile(rule["rule"])
        assert rule["message"]


def test_a_decision_is_final_and_the_incident_fixed() -> None:
    """The CEL rules of spec: approving once is allowed; changing, withdrawing or renaming is not."""
    proposed = {k: v for k, v in remediation()["spec"].items() if k != "approval"}
    approved = {**proposed, "approval": {"decision": "approve", "approver": "alice"}}
    assert _spec_update_allowed(proposed, proposed)
    assert _spec_update_allowed(proposed, approved)
    assert _spec_update_allowed(approved, approved)
    assert not _spec_update_allowed(approved, {**proposed, "approval": {"decision": "deny", "approver": "alice"}})
    assert not _spec_update_allowed(approved, {**proposed, "approval": {"decision": "approve", "approver": "mallory"}})
    assert not _spec_update_allowed(approved, proposed)
    assert not _spec_update_allowed(proposed, {**proposed, "incidentId": 43})
    assert not _spec_update_allowed(proposed, {**proposed, "target": {"kind": "Deployment", "name": "payments"}})
    assert not _spec_update_allowed(proposed, {**proposed, "alert": {**proposed["alert"], "name": "Other"}})


# ---------------------------------------------------------------------------- RemediationPolicy


def _policy_fields() -> dict[str, dict[str, Any]]:
    return _schema("RemediationPolicy")["properties"]["spec"]["properties"]


def test_policy_fields_are_the_guards_own_minus_the_cluster_settings() -> None:
    assert set(_policy_fields()) == set(GuardPolicy.model_fields) - CLUSTER_ONLY_GUARDS
    assert CLUSTER_ONLY_GUARDS <= set(GuardPolicy.model_fields)


def test_policy_field_types_and_bounds_match_the_guards() -> None:
    guards = GuardPolicy.model_json_schema()
    for name, node in _policy_fields().items():
        model = guards["properties"][name]
        if name == "approval_risk":
            assert node["enum"] == [r.name.lower() for r in Risk] + ["none"] and node["nullable"]
            continue
        assert node["type"] == model["type"], name
        assert node.get("minimum") == model.get("minimum"), name
    window = _policy_fields()["freeze_windows"]["items"]
    assert set(window["properties"]) == set(guards["$defs"]["FreezeWindow"]["properties"])
    assert window["required"] == guards["$defs"]["FreezeWindow"]["required"]


@pytest.mark.parametrize("spec", [
    {},
    {"cooldown_s": 900, "approval_risk": "medium", "max_replicas": 10, "dry_run": True},
    {"approval_risk": "none", "freeze_windows": [{"start": "Fri 18:00", "end": "Mon 08:00", "name": "weekend"}]},
    {"approval_risk": None, "breaker_failures": 1, "max_scale_factor": 1.5, "protected_label": "team.io/pinned"},
])
def test_a_policy_the_crd_accepts_is_a_guard_policy(spec: dict[str, Any]) -> None:
    validate_cr({"apiVersion": "remediator.io/v1alpha1", "kind": "RemediationPolicy",
                 "metadata": {"name": "default", "namespace": "shop"}, "spec": spec,
                 "status": {"valid": True, "errors": []}})
    GuardPolicy.model_validate(spec)


@pytest.mark.parametrize(("spec", "where"), [
    ({"cooldown_s": -1}, "spec.cooldown_s"),
    ({"max_replicas": 0}, "spec.max_replicas"),
    ({"max_replicas": 2.5}, "spec.max_replicas"),
    ({"approval_risk": "critical"}, "spec.approval_risk"),
    ({"denied_namespaces": []}, "spec"),  # the cluster's setting, not a namespace's
    ({"freeze_windows": [{"start": "Fri 18:00"}]}, "spec.freeze_windows.0"),
])
def test_a_policy_the_crd_refuses(spec: dict[str, Any], where: str) -> None:
    with pytest.raises(CRInvalid) as refused:
        validate_cr({"apiVersion": "remediator.io/v1alpha1", "kind": "RemediationPolicy",
                     "metadata": {"name": "default", "namespace": "shop"}, "spec": spec})
    assert refused.value.path == where


def test_action_kinds_documented_in_the_crd_exist() -> None:
    doc = _schema("Remediation")["properties"]["status"]["properties"]["action"]["properties"]["kind"]["description"]
    named = re.findall(r"[a-z]+_[a-z_]+", doc)
    assert named and set(named) <= {k.value for k in ACTION_KINDS}


# ---------------------------------------------------------------------------- docs


@pytest.mark.parametrize("kind", ["Remediation", "RemediationPolicy"])
def test_docs_describe_every_field(kind: str) -> None:
    text = (REPO_ROOT / "docs" / "operator.md").read_text()
    documented = set(re.findall(r"`([A-Za-z_.\[\]]+)`", text))
    missing = []
    for path, _ in schema_paths(_schema(kind)):
        top, _, rest = path.partition(".")
        leaf = path.rsplit(".", 1)[-1].removesuffix("[]")
        if top in ("spec", "status") and rest and not {rest, leaf, f"{leaf}[]"} & documented:
            missing.append(path)
    assert missing == []
