"""The chart's ValidatingAdmissionPolicy: a decision written into spec.approval names its writer.

The policy's CEL expression is evaluated with cel-python on the admission request the API
server would build (`object`, `oldObject`, `request.userInfo`), for the cases that matter: a
human approving as themself, a human naming someone else, the operator creating a Remediation,
a later update that leaves the decision as it was.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from tests.helm.render import one, render

BASE = {"apiVersion": "remediator.io/v1alpha1", "kind": "Remediation",
        "metadata": {"name": "incident-1", "namespace": "shop"},
        "spec": {"incidentId": 1, "alert": {"name": "A", "fingerprint": "0123456789abcdef"},
                 "target": {"kind": "Deployment", "namespace": "shop", "name": "cart"}}}


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    objects = render(tmp_path_factory.mktemp("vap"), {})
    binding = one(objects, "ValidatingAdmissionPolicyBinding")
    vap = one(objects, "ValidatingAdmissionPolicy")
    assert binding["spec"]["policyName"] == vap["metadata"]["name"] and binding["spec"]["validationActions"] == ["Deny"]
    [rule] = vap["spec"]["matchConstraints"]["resourceRules"]
    assert rule == {"apiGroups": ["remediator.io"], "apiVersions": ["v1alpha1"], "operations": ["CREATE", "UPDATE"],
                    "resources": ["remediations"]}  # the main resource: the operator's status writes are not matched
    return vap


def _admits(vap: dict[str, Any], user: str, new: dict[str, Any], old: dict[str, Any] | None) -> bool:
    import celpy

    env = celpy.Environment()
    verdicts = []
    for validation in vap["spec"]["validations"]:
        program = env.program(env.compile(validation["expression"]))
        activation = {"object": celpy.json_to_cel(new), "oldObject": celpy.json_to_cel(old),
                      "request": celpy.json_to_cel({"userInfo": {"username": user},
                                                    "operation": "CREATE" if old is None else "UPDATE"})}
        verdicts.append(bool(program.evaluate(activation)))
    return all(verdicts)


def _with_approval(approver: str, decision: str = "approve") -> dict[str, Any]:
    obj = copy.deepcopy(BASE)
    obj["spec"]["approval"] = {"decision": decision, "approver": approver}
    return obj


def test_a_human_approves_as_themself_only(policy: dict[str, Any]) -> None:
    assert _admits(policy, "alice@example.com", _with_approval("alice@example.com"), BASE)
    assert not _admits(policy, "mallory", _with_approval("alice@example.com"), BASE)
    assert not _admits(policy, "mallory", _with_approval("alice@example.com", "deny"), BASE)


def test_the_operator_and_later_updates_pass(policy: dict[str, Any]) -> None:
    sa = "system:serviceaccount:remediator:remediator"
    assert _admits(policy, sa, BASE, None)  # the mirror creates it, with no decision
    assert _admits(policy, sa, BASE, BASE)  # an update without a decision
    decided = _with_approval("alice@example.com")
    relabelled = copy.deepcopy(decided)
    relabelled["metadata"]["labels"] = {"team": "shop"}
    assert _admits(policy, sa, relabelled, decided)  # the decision is left as it was
    assert not _admits(policy, sa, _with_approval("alice@example.com"), None)  # a decision at creation: its writer


def test_the_policy_is_optional(tmp_path: Path) -> None:
    kinds = {o["kind"] for o in render(tmp_path, {"approvals": {"approverIsRequester": False}})}
    assert "ValidatingAdmissionPolicy" not in kinds and "ValidatingAdmissionPolicyBinding" not in kinds
