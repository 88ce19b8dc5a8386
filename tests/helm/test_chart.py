"""helm/remediator with the real helm binary: lint, render, validate every object, refuse bad values.

Every value set renders objects that kubernetes-validate (strict) accepts; the rendered
configuration loads with the agent's own loader; the runbooks ConfigMap is runbooks/; the
PrometheusRule's rules pass promtool; bad values are refused by values.schema.json.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from remediator.catalog import load_catalog, shipped_runbooks_dir
from remediator.live.config import SECRET_ENV, load_config
from tests.helm.crd import validate_cr
from tests.helm.render import NAMESPACE, RELEASE, config_map_data, lint, one, refusal, render

pytestmark = pytest.mark.slow  # every test runs helm

FULLNAME = f"{RELEASE}-remediator"
K8S = "1.33"
RUNBOOKS = Path(__file__).resolve().parents[2] / "runbooks"

VALUE_SETS: dict[str, dict[str, Any]] = {
    "default": {},
    "namespaced-rbac": {"rbac": {"scope": "namespaced", "namespaces": ["shop", "web"]}},
    "emptydir-ledger": {"ledger": {"persistence": {"enabled": False}, "emptyDir": {"sizeLimit": "512Mi"}},
                        "replicas": 2},
    "monitoring-slack-approve": {
        "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
        "prometheusRule": {"enabled": True, "approvalPendingForMinutes": 20},
        "slack": {"existingSecret": "remediator-slack"},
        "approvalToken": {"existingSecret": "remediator-approval"},
        "prometheusToken": {"existingSecret": "prom-token"},
        "extraEnv": [{"name": "OPENAI_API_KEY", "valueFrom": {"secretKeyRef": {"name": "llm", "key": "key"}}}],
        "image": {"digest": "sha256:" + "a" * 64},
        "ledger": {"persistence": {"enabled": True, "storageClassName": "fast", "size": "5Gi"}},
        "config": {
            "mode": "approve",
            "prometheus": {"url": "https://prometheus.example:9090", "timeout_s": 5, "max_staleness_s": 120},
            "proposer": {"kind": "catalog", "semantic": False},
            "ranker": "rules",
            "listen": {"max_body_bytes": 2097152},
            "kubernetes": {"timeout_s": 20},
            "guards": {"cooldown_s": 900, "approval_risk": "medium", "denied_namespaces": ["kube-*"],
                       "freeze_windows": [{"start": "Fri 18:00", "end": "Mon 08:00", "name": "weekend"}]},
            "slack": {"approvers": ["U024BE7LH"]},
            "approval": {"approvers": ["alice@example.com"], "deadline_s": 600},
            "verify": {"interval_s": 30},
            "executor": {"max_attempts": 3},
        },
    },
    "existing-claim": {"ledger": {"persistence": {"enabled": True, "existingClaim": "ledger-pvc"}},
                       "runbooks": {"enabled": False}},
}
# Kinds of the Prometheus Operator: no schema in kubernetes-validate; checked by the tests below.
OPERATOR_KINDS = {"ServiceMonitor", "PrometheusRule"}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    tmp = tmp_path_factory.mktemp("helm")
    return {name: render(tmp, values) for name, values in VALUE_SETS.items()}


def _pod(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return one(objects, "Deployment")["spec"]["template"]["spec"]


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_lint_strict(tmp_path: Path, name: str) -> None:
    code, out = lint(tmp_path, VALUE_SETS[name])
    assert code == 0 and "0 chart(s) failed" in out, out


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_every_object_validates(rendered: dict[str, list[dict[str, Any]]], name: str) -> None:
    objects = rendered[name]
    kinds = {o["kind"] for o in objects}
    assert {"CustomResourceDefinition", "ServiceAccount", "Role", "ConfigMap", "Deployment", "Service"} <= kinds
    for obj in objects:
        if obj["kind"] in OPERATOR_KINDS:
            continue
        if obj["apiVersion"].startswith("remediator.io/"):
            validate_cr(obj)
            continue
        try:
            kubernetes_validate.validate(obj, K8S, strict=True)
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']}: {e.path}: {e.message}")
        if obj["kind"] not in ("ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
                               "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"):
            assert obj["metadata"].get("namespace") in (NAMESPACE, "shop", "web"), obj["metadata"]


def test_optional_objects_follow_their_switches(rendered: dict[str, list[dict[str, Any]]]) -> None:
    def kinds(name: str) -> list[str]:
        return sorted(o["kind"] for o in rendered[name])

    assert "ServiceMonitor" not in kinds("default") and "PrometheusRule" not in kinds("default")
    assert kinds("monitoring-slack-approve").count("ServiceMonitor") == 1
    assert kinds("default").count("PersistentVolumeClaim") == 1
    assert "PersistentVolumeClaim" not in kinds("emptydir-ledger") + kinds("existing-claim")
    assert kinds("existing-claim").count("ConfigMap") == 1  # runbooks off: the configuration only


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_the_pod_runs_locked_down(rendered: dict[str, list[dict[str, Any]]], name: str) -> None:
    pod = _pod(rendered[name])
    (container,) = pod["containers"]
    assert container["command"] == ["remediator"]
    assert container["args"] == ["run", "--config", "/etc/remediator/config.yaml"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] > 0
    ctx = container["securityContext"]
    assert ctx["readOnlyRootFilesystem"] is True and ctx["allowPrivilegeEscalation"] is False
    assert ctx["capabilities"]["drop"] == ["ALL"]
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_the_rendered_config_loads_with_the_agents_loader(rendered: dict[str, list[dict[str, Any]]], name: str,
                                                          tmp_path: Path) -> None:
    objects = rendered[name]
    text = config_map_data(objects, "config")["config.yaml"]
    pod = _pod(objects)
    (container,) = pod["containers"]
    env = {e["name"]: e for e in container["env"]}
    # The secrets the Deployment passes, as the kubelet would resolve them.
    secret_vars = {n for n, e in env.items() if "secretKeyRef" in e.get("valueFrom", {})} - {"OPENAI_API_KEY"}
    assert secret_vars <= set(SECRET_ENV.values()) | {"SLACK_SIGNING_SECRET"}
    file = tmp_path / "config.yaml"
    file.write_text(text)
    config = load_config(file, env={var: f"secret-{var}" for var in secret_vars})
    # The listen port is the container's, and the receiver's token comes from the Secret.
    port = {p["name"]: p["containerPort"] for p in container["ports"]}["http"]
    assert config.listen.port == port and config.listen.host == "0.0.0.0"
    assert config.listen.bearer_token is not None
    assert config.listen.bearer_token.get_secret_value() == "secret-REMEDIATOR_WEBHOOK_TOKEN"
    service = one(objects, "Service")
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    # The ledger is on the writable volume, not the read-only root filesystem.
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    ledger_dir = str(config.store.parent)
    assert ledger_dir in mounts and not mounts[ledger_dir].get("readOnly")
    assert mounts["/etc/remediator"]["readOnly"] is True
    # What values asked for reaches the agent.
    values = VALUE_SETS[name].get("config", {})
    assert config.mode == values.get("mode", "dry-run")
    for key, value in values.get("guards", {}).items():
        if key != "freeze_windows":
            got = getattr(config.guards, key)
            assert (got.name.lower() if key == "approval_risk" else got) == value, key
    if "slack" in values:
        assert config.slack is not None and config.slack.approvers == values["slack"]["approvers"]
        assert "SLACK_SIGNING_SECRET" in env and "REMEDIATOR_SLACK_WEBHOOK_URL" in env
    if "approval" in values:
        assert config.approval.approvers == values["approval"]["approvers"]
        assert config.approval.deadline_s == values["approval"]["deadline_s"]
        assert env["REMEDIATOR_APPROVAL_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "remediator-approval"


def test_the_runbooks_config_map_is_runbooks_dir(rendered: dict[str, list[dict[str, Any]]], tmp_path: Path) -> None:
    data = config_map_data(rendered["default"], "runbooks")
    on_disk = {p.name: p.read_text() for p in sorted(RUNBOOKS.glob("*.yaml"))}
    assert on_disk and data == on_disk
    for name, text in data.items():
        (tmp_path / name).write_text(text)
    assert {r.alert for r in load_catalog(tmp_path).runbooks} == {r.alert for r in load_catalog().runbooks}


def test_the_runbooks_are_mounted_where_the_agent_looks(rendered: dict[str, list[dict[str, Any]]]) -> None:
    """The mount path is the installed package's `data/runbooks` (catalog.shipped_runbooks_dir) in the image."""
    (container,) = _pod(rendered["default"])["containers"]
    mount = next(m for m in container["volumeMounts"] if m["name"] == "runbooks")
    assert mount["readOnly"] and mount["mountPath"].endswith("/site-packages/remediator/data/runbooks")
    assert shipped_runbooks_dir().parts[-3:] == ("remediator", "data", "runbooks")


def test_extra_runbooks_add_and_replace(tmp_path: Path) -> None:
    mine = "alert: MyAlert\nsummary: mine\nactions:\n  - kind: escalate\n    when: always\n"
    objects = render(tmp_path, {"runbooks": {"extra": {"MyAlert.yaml": mine, "KubeNodeNotReady.yaml": mine}}})
    data = config_map_data(objects, "runbooks")
    assert data["MyAlert.yaml"] == mine and data["KubeNodeNotReady.yaml"] == mine
    assert data["KubePodCrashLooping.yaml"] == (RUNBOOKS / "KubePodCrashLooping.yaml").read_text()


def test_a_config_change_restarts_the_pods(tmp_path: Path) -> None:
    def checksum(values: dict[str, Any]) -> str:
        annotations = one(render(tmp_path, values), "Deployment")["spec"]["template"]["metadata"]["annotations"]
        return str(annotations["checksum/config"])

    assert checksum({}) != checksum({"config": {"mode": "auto"}})


def test_the_service_serves_the_pod(rendered: dict[str, list[dict[str, Any]]]) -> None:
    objects = rendered["monitoring-slack-approve"]
    service, deployment = one(objects, "Service"), one(objects, "Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert deployment["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]
    monitor = one(objects, "ServiceMonitor")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"] == [{"port": "http", "path": "/metrics", "interval": "30s",
                                             "scrapeTimeout": "10s"}]
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}


def test_a_persistent_ledger_is_replaced_not_rolled(rendered: dict[str, list[dict[str, Any]]]) -> None:
    assert one(rendered["default"], "Deployment")["spec"]["strategy"]["type"] == "Recreate"
    assert one(rendered["emptydir-ledger"], "Deployment")["spec"]["strategy"]["type"] == "RollingUpdate"
    claim = next(v for v in _pod(rendered["existing-claim"])["volumes"] if v["name"] == "ledger")
    assert claim == {"name": "ledger", "persistentVolumeClaim": {"claimName": "ledger-pvc"}}


def test_the_prometheus_rule_passes_promtool(rendered: dict[str, list[dict[str, Any]]], tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool missing: run scripts/ci/install-system.sh (make test does)")
    rule = one(rendered["monitoring-slack-approve"], "PrometheusRule")
    file = tmp_path / "rules.yaml"
    file.write_text(yaml.safe_dump(rule["spec"]))
    out = subprocess.run([promtool, "check", "rules", str(file)], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    alerts = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}
    assert alerts["RemediatorApprovalPending"]["for"] == "20m"
    assert all(f'job="{FULLNAME}"' in r["expr"] for r in alerts.values())


def test_the_operator_alerts_fire_on_its_failures(rendered: dict[str, list[dict[str, Any]]], tmp_path: Path) -> None:
    """promtool's rule unit tests over the series the ServiceMonitor scrape carries (job, namespace)."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool missing: run scripts/ci/install-system.sh (make test does)")
    rule = one(rendered["monitoring-slack-approve"], "PrometheusRule")
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rule["spec"]))
    scrape = f'job="{FULLNAME}", namespace="{NAMESPACE}"'
    other = f'job="someone-else", namespace="{NAMESPACE}"'
    tests = {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": [{
        "interval": "1m",
        "input_series": [
            {"series": f"remediator_approvals_pending{{{scrape}}}", "values": "1x40"},
            {"series": f"remediator_observation_failures_total{{{scrape}}}", "values": "0+1x40"},
            {"series": f"remediator_llm_fallbacks_total{{{other}}}", "values": "0+10x40"},  # not ours
            {"series": f"up{{{scrape}}}", "values": "1x40"},
        ],
        "alert_rule_test": [
            {"eval_time": "15m", "alertname": "RemediatorApprovalPending", "exp_alerts": []},
            {"eval_time": "25m", "alertname": "RemediatorApprovalPending",
             "exp_alerts": [{"exp_labels": {"severity": "warning"}, "exp_annotations": {
                 "summary": "A remediation has waited for approval for 20 minutes.",
                 "description": "1 remediations await approval: kubectl get remediations -A"}}]},
            {"eval_time": "30m", "alertname": "RemediatorObservationsFailing",
             "exp_alerts": [{"exp_labels": {"severity": "warning"}, "exp_annotations": {
                 "summary": rule["spec"]["groups"][0]["rules"][1]["annotations"]["summary"],
                 "description": "15 observations failed in the last 15 minutes."}}]},
            {"eval_time": "30m", "alertname": "RemediatorLLMFallbacks", "exp_alerts": []},
            {"eval_time": "30m", "alertname": "RemediatorDown", "exp_alerts": []},
        ],
    }]}
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests, sort_keys=False))
    out = subprocess.run([promtool, "test", "rules", "tests.yaml"], cwd=tmp_path, capture_output=True, text=True,
                         check=False)
    assert out.returncode == 0, out.stdout + out.stderr


# ---------------------------------------------------------------------------- refused values


@pytest.mark.parametrize(("values", "message"), [
    ({"config": {"mode": "yolo"}}, "config.mode"),
    ({"config": {"guards": {"cooldown_s": -1}}}, "config.guards.cooldown_s"),
    ({"config": {"guards": {"approval_risk": "critical"}}}, "config.guards.approval_risk"),
    ({"config": {"guards": {"max_replicas": "many"}}}, "config.guards.max_replicas"),
    ({"config": {"store": "/tmp/ledger.db"}}, "Additional property store is not allowed"),
    ({"config": {"listen": {"host": "0.0.0.0"}}}, "Additional property host is not allowed"),
    ({"config": {"slack": {"webhook_url": "https://hooks.slack.com/x"}}}, "Additional property webhook_url"),
    ({"config": {"prometheus": {"url": None}}}, "url is required"),  # null deletes the default
    ({"config": {"verify": {"interval_s": 0}}}, "config.verify.interval_s"),
    ({"config": {"mystery": 1}}, "Additional property mystery is not allowed"),
    ({"rbac": {"scope": "namespaced"}}, "namespaces"),
    ({"rbac": {"scope": "namespaced", "namespaces": []}}, "rbac.namespaces"),
    ({"rbac": {"scope": "everything"}}, "rbac.scope"),
    ({"rbac": {"namespaces": ["Not_A_Namespace"]}}, "rbac.namespaces.0"),
    ({"replicas": 2}, "replicas"),  # a ReadWriteOnce ledger cannot be shared
    ({"replicas": 0}, "replicas"),
    ({"securityContext": {"readOnlyRootFilesystem": False}}, "readOnlyRootFilesystem"),
    ({"podSecurityContext": {"runAsUser": 0}}, "runAsUser"),
    ({"podSecurityContext": {"runAsNonRoot": False}}, "runAsNonRoot"),
    ({"image": {"pullPolicy": "Sometimes"}}, "image.pullPolicy"),
    ({"image": {"digest": "latest"}}, "image.digest"),
    ({"service": {"port": 0}}, "service.port"),
    ({"webhookToken": {"secretName": ""}}, "webhookToken.secretName"),
    ({"ledger": {"persistence": {"enabled": True, "size": "lots"}}}, "ledger.persistence.size"),
    ({"ledger": {"mountPath": "relative/dir"}}, "ledger.mountPath"),
    ({"runbooks": {"extra": {"../escape.yaml": "alert: X"}}}, "runbooks.extra"),
    ({"serviceMonitor": {"enabled": "yes"}}, "serviceMonitor.enabled"),
    ({"prometheusRule": {"approvalPendingForMinutes": 0}}, "prometheusRule.approvalPendingForMinutes"),
    ({"unknownTopLevel": True}, "Additional property unknownTopLevel is not allowed"),
], ids=lambda v: str(v) if isinstance(v, str) else None)
def test_bad_values_are_refused(tmp_path: Path, values: dict[str, Any], message: str) -> None:
    error = refusal(tmp_path, values)
    assert "values don't meet the specifications of the schema" in error
    assert message in error, error
