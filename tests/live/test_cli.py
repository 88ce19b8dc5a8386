"""`remediator propose`, `history` and `undo`: the DESIGN §7 contract, offline and against real components."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from remediator.actions import Action, ActionKind, ObjectRef
from remediator.cli import app
from remediator.live.executor import KubeExecutor
from remediator.live.kube import Backoff
from remediator.live.ledger import Ledger
from remediator.live.wiring import PROPOSERS, make_proposer
from remediator.propose.catalog import CatalogProposer
from tests.live.conftest import APP, NS, requires_prometheus, seed_workload, snapshot_for
from tests.live.sim import incident, manifests, observed_series, prometheus_with
from tests.support.kube import KubeServer

CHECK_CONTRACT = Path("/work/shared/tools/check-contract")
runner = CliRunner()


def webhook(*alerts: dict[str, Any]) -> dict[str, Any]:
    return {"version": "4", "groupKey": "{}:{}", "status": "firing", "receiver": "remediator", "groupLabels": {},
            "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://am", "alerts": list(alerts)}


def am_alert(name: str, status: str = "firing", starts: str = "2026-11-26T10:00:00Z", **labels: str) -> dict[str, Any]:
    return {"status": status, "labels": {"alertname": name, **labels}, "annotations": {}, "startsAt": starts,
            "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "", "fingerprint": ""}


def check_contract(doc: dict[str, Any], tmp_path: Path) -> None:
    if not CHECK_CONTRACT.exists():
        pytest.fail(f"{CHECK_CONTRACT} is missing: the contract checker must run")
    path = tmp_path / "propose.json"
    path.write_text(json.dumps(doc))
    proc = subprocess.run([str(CHECK_CONTRACT), "propose", str(path)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_propose_offline_from_the_payload_alone(tmp_path: Path) -> None:
    payload = webhook(am_alert("KubePodCrashLooping", namespace="shop", pod="cart-7d9f8b6c5-x2x1z", container="cart"),
                      am_alert("KubeHpaMaxedOut", namespace="shop", horizontalpodautoscaler="web"),
                      am_alert("KubePodNotReady", status="resolved", namespace="shop", pod="db-1-2"))
    (tmp_path / "alert.json").write_text(json.dumps(payload))
    result = runner.invoke(app, ["propose", "--alert", str(tmp_path / "alert.json"), "--ranker", "rules", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    check_contract(doc, tmp_path)
    assert [a["name"] for a in doc["alerts"]] == ["KubePodCrashLooping", "KubeHpaMaxedOut", "KubePodNotReady"]
    assert doc["mode"] == "offline" and doc["chosen"] == doc["decisions"][0]["chosen"]
    assert {c["alert"] for c in doc["candidates"]} == {0, 1}
    assert doc["decisions"][0]["workload"] == {"kind": "Deployment", "namespace": "shop", "name": "cart"}
    assert "kube_deployment_spec_replicas" in doc["decisions"][0]["missing"]
    assert doc["decisions"][2]["problem"] == "resolved: nothing to do"
    assert all(c["source"] == "catalog" and c["verdict"] in ("allow", "deny", "needs_approval")
               for c in doc["candidates"])
    assert all(c["reason"].startswith("dry-run: ") for c in doc["candidates"] if c["verdict"] == "allow")
    hpa = [c for c in doc["candidates"] if c["alert"] == 1 and c["action"] == "raise_hpa_max"]
    assert hpa and hpa[0]["target"] == {"kind": "HorizontalPodAutoscaler", "namespace": "shop", "name": "web"}


def test_propose_reads_standard_input_and_prints_a_table() -> None:
    payload = json.dumps(webhook(am_alert("ServiceLatencyHigh", namespace="shop", service="cart")))
    result = runner.invoke(app, ["propose", "--alert", "-", "--ranker", "rules"], input=payload)
    assert result.exit_code == 0, result.output
    assert "ServiceLatencyHigh" in result.stdout and "verdict" in result.stdout


@pytest.mark.parametrize(("payload", "problem"), [
    ("{", "body is not JSON"),
    (json.dumps({"version": "4", "alerts": [{"status": "firing", "labels": {}, "startsAt": "2026-01-01T00:00:00Z"}]}),
     "alerts[0].labels: an alert needs an 'alertname' label"),
    (json.dumps({"alerts": []}), "version: Field required"),
])
def test_propose_malformed_payload_exits_2_naming_the_problem(tmp_path: Path, payload: str, problem: str) -> None:
    (tmp_path / "a.json").write_text(payload)
    result = runner.invoke(app, ["propose", "--alert", str(tmp_path / "a.json"), "--json"])
    assert result.exit_code == 2
    assert problem in result.stderr
    assert result.stdout == ""


def test_propose_unknown_proposer_and_missing_file_exit_2(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(json.dumps(webhook(am_alert("X", namespace="shop", deployment="cart"))))
    bad = runner.invoke(app, ["propose", "--alert", str(tmp_path / "a.json"), "--proposer", "oracle"])
    assert bad.exit_code == 2 and "unknown proposer 'oracle'; known: catalog" in bad.stderr
    missing = runner.invoke(app, ["propose", "--alert", str(tmp_path / "nope.json")])
    assert missing.exit_code == 2 and "cannot read it" in missing.stderr


def test_proposers_are_a_registry_others_extend() -> None:
    calls: list[dict[str, Any]] = []

    def fake(settings: dict[str, Any]) -> CatalogProposer:
        calls.append(settings)
        return CatalogProposer()

    PROPOSERS["test-only"] = fake
    try:
        assert isinstance(make_proposer("test-only"), CatalogProposer) and calls == [{}]
    finally:
        del PROPOSERS["test-only"]


def test_config_errors_exit_2_with_file_line_and_key(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(json.dumps(webhook(am_alert("X", namespace="shop", deployment="cart"))))
    (tmp_path / "c.yaml").write_text("mode: dry-run\nguards:\n  cooldown_s: -5\n")
    result = runner.invoke(app, ["propose", "--alert", str(tmp_path / "a.json"), "--config", str(tmp_path / "c.yaml")])
    assert result.exit_code == 2
    assert "c.yaml:3: guards.cooldown_s: Input should be greater than or equal to 0" in result.stderr.replace("\n", "")


@requires_prometheus
def test_propose_with_config_observes_the_live_cluster_and_acts_on_nothing(tmp_path: Path, kube: KubeServer) -> None:
    inc = incident("memory_leak", after_s=60.0)
    kube.seed(*manifests(inc.cluster.objects(), node_names=[n.name for n in inc.cluster.nodes.values()]))
    a = inc.alert
    starts = datetime.fromtimestamp(a.starts_at, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    (tmp_path / "alert.json").write_text(json.dumps(webhook(am_alert(a.name, starts=starts, **a.labels))))
    with prometheus_with(tmp_path / "p", observed_series(inc)) as prom:
        kube.write_kubeconfig(tmp_path / "kubeconfig.yaml")
        (tmp_path / "c.yaml").write_text(yaml.safe_dump({
            "kubernetes": {"kubeconfig": "kubeconfig.yaml"}, "prometheus": {"url": prom.url, "retries": 0},
            "mode": "auto", "store": "ledger.db", "ranker": "rules"}))
        result = runner.invoke(app, ["propose", "--alert", str(tmp_path / "alert.json"), "--config",
                                     str(tmp_path / "c.yaml"), "--at", str(inc.now), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    check_contract(doc, tmp_path)
    assert doc["mode"] == "live" and doc["dry_run"] is False
    assert doc["decisions"][0]["problem"] is None and doc["decisions"][0]["missing"] == []
    chosen = doc["candidates"][doc["chosen"]]
    assert (chosen["action"], chosen["verdict"]) == ("raise_memory_limit", "allow")
    assert [r for r in kube.requests() if r.method != "GET"] == []  # observed, acted on nothing
    assert not (tmp_path / "ledger.db").exists()


def _ledger_with_an_execution(tmp_path: Path, kube: KubeServer, *, dry_run: bool = False) -> tuple[Path, int]:
    seed_workload(kube)
    kube.write_kubeconfig(tmp_path / "kubeconfig.yaml")
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"kubernetes": {"kubeconfig": "kubeconfig.yaml"}, "store": "ledger.db"}))
    with Ledger(tmp_path / "ledger.db") as ledger:
        ex = KubeExecutor(kube.api_client(retries=False), ledger, dry_run=dry_run, backoff=Backoff(base_s=0.01))
        result = ex.execute(Action(ActionKind.SCALE_OUT, ObjectRef("Deployment", NS, APP), {"replicas": 4}),
                            snapshot_for())
    assert result.ok
    return config, result.execution_id


def test_undo_through_the_cli_restores_the_object(tmp_path: Path, kube: KubeServer) -> None:
    config, execution_id = _ledger_with_an_execution(tmp_path, kube)
    assert kube.get("apps/v1", "Deployment", NS, APP)["spec"]["replicas"] == 4  # type: ignore[index]

    result = runner.invoke(app, ["undo", str(execution_id), "--config", str(config), "--json"])

    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["undo_of"] == execution_id and doc["state"] == "done"
    assert kube.get("apps/v1", "Deployment", NS, APP)["spec"]["replicas"] == 2  # type: ignore[index]
    again = runner.invoke(app, ["undo", str(execution_id), "--config", str(config)])
    assert again.exit_code == 2 and "already undone" in again.stderr
    history = runner.invoke(app, ["history", "--config", str(config), "--json"])
    assert history.exit_code == 0
    assert json.loads(history.stdout)["incidents"] == []  # executions outside an incident are not incidents
    unknown = runner.invoke(app, ["undo", "999", "--config", str(config)])
    assert unknown.exit_code == 2 and "no execution 999" in unknown.stderr


def test_undo_of_a_dry_run_explains_why_not(tmp_path: Path, kube: KubeServer) -> None:
    config, execution_id = _ledger_with_an_execution(tmp_path, kube, dry_run=True)
    result = runner.invoke(app, ["undo", str(execution_id), "--config", str(config)])
    assert result.exit_code == 2 and "was a dry run" in result.stderr


def test_history_without_a_ledger_exits_2(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("store: nowhere.db\n")
    result = runner.invoke(app, ["history", "--config", str(tmp_path / "c.yaml")])
    assert result.exit_code == 2 and "no ledger at" in result.stderr
