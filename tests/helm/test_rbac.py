"""The chart's RBAC is exactly the operator's one table of API calls (remediator/live/rbac.py), in every mode."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from remediator.live import chart, executor, observer, rbac
from remediator.live.executor import ApiCall
from tests.helm.crd import crds
from tests.helm.render import CHART, NAMESPACE, RELEASE, one, refusal, render
from tests.support.kube import BUILTIN_RESOURCES, ResourceSpec

pytestmark = pytest.mark.slow  # every test runs helm

FULLNAME = f"{RELEASE}-remediator"
NAMESPACED = {"rbac": {"scope": "namespaced", "namespaces": ["shop", "web"]}}


def _roles(objects: list[dict[str, Any]]) -> dict[tuple[str, str, str], list[dict[str, Any]]]:
    return {(o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]): o["rules"]
            for o in objects if o["kind"] in ("Role", "ClusterRole")}


def _granted(objects: list[dict[str, Any]]) -> set[ApiCall]:
    return {ApiCall(verb, group, resource)
            for rules in _roles(objects).values() for rule in rules
            for group in rule["apiGroups"] for resource in rule["resources"] for verb in rule["verbs"]}


def _bound(objects: list[dict[str, Any]]) -> dict[tuple[str, str, str], str]:
    """Each binding's role (kind, namespace, name) -> the ServiceAccount it binds (namespace/name)."""
    out = {}
    for o in objects:
        if o["kind"] in ("RoleBinding", "ClusterRoleBinding"):
            ref, (subject,) = o["roleRef"], o["subjects"]
            ns = o["metadata"].get("namespace", "") if ref["kind"] == "Role" else ""
            assert subject["kind"] == "ServiceAccount"
            out[(ref["kind"], ns, ref["name"])] = f"{subject['namespace']}/{subject['name']}"
    return out


def test_the_generated_table_is_current() -> None:
    assert chart.main(["--check"]) == 0, "helm/remediator is stale: run python -m remediator.live.chart"
    table = yaml.safe_load((CHART / chart.RBAC_FILE).read_text())
    assert table == {**rbac.rules(), "secrets": rbac.secret_rules()}


def test_a_stale_table_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    copy = tmp_path / "remediator"
    (copy / "files").mkdir(parents=True)
    (copy / "Chart.yaml").write_text((CHART / "Chart.yaml").read_text())
    (copy / "values.schema.json").write_text((CHART / "values.schema.json").read_text())
    (copy / chart.RBAC_FILE).write_text((CHART / chart.RBAC_FILE).read_text().replace("[get, patch]", "[get]", 1))
    assert chart.main(["--check", "--chart", str(copy)]) == 1
    assert "rbac.yaml is stale" in capsys.readouterr().err
    assert chart.main(["--chart", str(copy)]) == 0 and chart.main(["--check", "--chart", str(copy)]) == 0


def test_the_table_is_every_declared_call() -> None:
    assert set(rbac.api_calls()) == set(observer.API_CALLS) | set(executor.API_CALLS) | set(rbac.OPERATOR_API_CALLS)
    assert set(rbac.secret_api_calls()) == set(observer.SECRET_API_CALLS) | set(executor.SECRET_API_CALLS)
    assert not any(c.resource == "secrets" for c in rbac.api_calls()), "a Secret call outside the opt-in table"
    assert rbac.secret_rules() == [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "patch"]}]


def test_scopes_agree_with_the_api_server() -> None:
    """Cluster-scoped exactly where the API says so (the emulator's resource table, the chart's CRDs)."""
    known = {(key.split("/")[0] if key.count("/") == 2 else "", key.rsplit("/", 1)[-1]): spec
             for key, spec in BUILTIN_RESOURCES.items()}
    for (group, _), crd in crds().items():
        known[(group, crd["spec"]["names"]["plural"])] = ResourceSpec(
            crd["spec"]["names"]["kind"], crd["spec"]["scope"] == "Namespaced", ("status",), builtin=False)
    for call in (*rbac.api_calls(), *rbac.secret_api_calls()):
        base, _, sub = call.resource.partition("/")
        spec = known.get((call.group, base))
        assert spec is not None, f"{call}: not a resource the API serves"
        assert not sub or sub in spec.subresources, f"{call}: {base} has no {sub} subresource"
        assert (rbac.scope_of(call) == "cluster") == (not spec.namespaced), call


def test_cluster_mode_grants_exactly_the_table(tmp_path: Path) -> None:
    objects = render(tmp_path)
    table = rbac.rules()
    assert _roles(objects) == {
        ("ClusterRole", "", FULLNAME): table["cluster"] + table["namespaced"],
        ("Role", NAMESPACE, f"{FULLNAME}-leader"): table["release"],
    }
    assert _granted(objects) == set(rbac.api_calls())
    sa = f"{NAMESPACE}/{one(objects, 'ServiceAccount')['metadata']['name']}"
    assert _bound(objects) == dict.fromkeys(_roles(objects), sa)


@pytest.mark.parametrize("cluster_resources", [False, True])
def test_namespaced_mode_grants_the_table_per_namespace(tmp_path: Path, cluster_resources: bool) -> None:
    values = {"rbac": {**NAMESPACED["rbac"], "clusterScopedResources": cluster_resources}}
    objects = render(tmp_path, values)
    table = rbac.rules()
    want = {("Role", ns, FULLNAME): table["namespaced"] for ns in ("shop", "web")}
    want[("Role", NAMESPACE, f"{FULLNAME}-leader")] = table["release"]
    if cluster_resources:
        want[("ClusterRole", "", FULLNAME)] = table["cluster"]
    assert _roles(objects) == want
    assert _bound(objects) == dict.fromkeys(want, f"{NAMESPACE}/{FULLNAME}")
    cluster_calls = {c for c in rbac.api_calls() if rbac.scope_of(c) == "cluster"}
    assert _granted(objects) == set(rbac.api_calls()) - (set() if cluster_resources else cluster_calls)


@pytest.mark.parametrize("values", [{}, NAMESPACED, {"rbac": {**NAMESPACED["rbac"], "clusterScopedResources": True}}],
                         ids=["cluster", "namespaced", "namespaced+cluster-resources"])
def test_no_wildcards_and_no_secrets(tmp_path: Path, values: dict[str, Any]) -> None:
    for rules in _roles(render(tmp_path, values)).values():
        for rule in rules:
            assert "*" not in rule["apiGroups"] + rule["resources"] + rule["verbs"], rule
            assert "secrets" not in rule["resources"], rule  # revert_config only names Secrets, never reads one
            if "configmaps" in rule["resources"]:  # revert_config reads one by name and writes it back; never lists
                assert set(rule["verbs"]) <= {"get", "patch"}, rule
            assert "resourceNames" not in rule and "nonResourceURLs" not in rule
            assert not {"escalate", "bind", "impersonate", "delete", "deletecollection"} & set(rule["verbs"]), rule


SECRETS_ON = {"secretRevert": {"enabled": True}}


@pytest.mark.parametrize("values", [SECRETS_ON, {**NAMESPACED, **SECRETS_ON}], ids=["cluster", "namespaced"])
def test_secret_reverts_grant_get_and_patch_on_secrets_where_the_namespaced_rules_are(
        tmp_path: Path, values: dict[str, Any]) -> None:
    """The switch on: exactly the opt-in rules added, in the ClusterRole (cluster scope) or in each
    namespace's Role (namespaced), never in the leader's Role; and the agent's config and key follow."""
    objects = render(tmp_path, values)
    table = rbac.rules()
    secret = rbac.secret_rules()
    if "rbac" in values:
        want = {("Role", ns, FULLNAME): table["namespaced"] + secret for ns in ("shop", "web")}
    else:
        want = {("ClusterRole", "", FULLNAME): table["cluster"] + table["namespaced"] + secret}
    want[("Role", NAMESPACE, f"{FULLNAME}-leader")] = table["release"]
    assert _roles(objects) == want
    config = yaml.safe_load(one(objects, "ConfigMap", f"{FULLNAME}-config")["data"]["config.yaml"])
    assert config["secrets"] == {"revert": True, "key_env": "REMEDIATOR_SECRET_KEY"}
    env = {e["name"]: e for e in one(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["REMEDIATOR_SECRET_KEY"]["valueFrom"] == {"secretKeyRef": {"name": "remediator-sealing", "key": "key"}}


def test_secret_reverts_are_off_by_default_and_cannot_be_switched_on_without_their_rbac(tmp_path: Path) -> None:
    objects = render(tmp_path)
    config = yaml.safe_load(one(objects, "ConfigMap", f"{FULLNAME}-config")["data"]["config.yaml"])
    assert config["secrets"]["revert"] is False
    env = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]["env"]
    assert "REMEDIATOR_SECRET_KEY" not in {e["name"] for e in env}
    assert "secrets" in refusal(tmp_path, {"config": {"secrets": {"revert": True}}})


def test_rbac_can_be_left_to_the_cluster_admin(tmp_path: Path) -> None:
    objects = render(tmp_path, {"rbac": {"create": False, "scope": "cluster"},
                                "serviceAccount": {"create": False, "name": "remediator-sa"}})
    assert not _roles(objects) and not _bound(objects)
    assert not [o for o in objects if o["kind"] == "ServiceAccount"]
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "remediator-sa"


def test_a_wildcard_call_is_refused() -> None:
    with pytest.raises(ValueError, match="wildcard"):
        rbac.rules([ApiCall("*", "", "pods")])
