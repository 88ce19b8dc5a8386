"""`remediator propose`, `history` and `undo`: the DESIGN §7 contract, offline and against real components."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from remediator.actions import Action, ActionKind, ObjectRef
from remediator.cli import app
from remediator.live.config import LiveConfig
from remediator.live.executor import KubeExecutor
from remediator.live.kube import Backoff
from remediator.live.ledger import Ledger, ReceivedAlert
from remediator.live.wiring import WiringError, make_proposer
from remediator.propose.catalog import CatalogProposer
from remediator.propose.registry import PROPOSER_KINDS
from remediator.snapshot import Alert
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
    assert bad.exit_code == 2 and "unknown proposer 'oracle'; known: catalog, llm" in bad.stderr
    missing = runner.invoke(app, ["propose", "--alert", str(tmp_path / "nope.json")])
    assert missing.exit_code == 2 and "cannot read it" in missing.stderr


def test_one_registry_builds_every_proposer_from_the_configs_settings() -> None:
    """`remediator propose` and `remediator run` build proposers from remediator.propose.registry,
    with no registration step to forget: the settings of `proposer:` reach the factory."""
    assert PROPOSER_KINDS == ("catalog", "llm")
    plain = make_proposer(None, LiveConfig.model_validate({"proposer": {"kind": "catalog", "semantic": False}}))
    assert isinstance(plain, CatalogProposer) and plain.matcher is None
    semantic = make_proposer("catalog", LiveConfig.model_validate({"proposer": {"kind": "catalog", "semantic": True}}))
    assert isinstance(semantic, CatalogProposer) and semantic.matcher is not None
    with pytest.raises(WiringError, match="unknown proposer 'oracle'; known: catalog, llm") as err:
        make_proposer("oracle")
    assert err.value.key == "proposer.kind"


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
                            snapshot_for(hpa=False))
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


# ---------------------------------------------------------------------------- configuration errors

SECRET = "s3cr3t-bearer-7f4e9a"  # in every configuration below; it must never be printed
KUBECONFIG = f"""\
apiVersion: v1
kind: Config
clusters: [{{name: c, cluster: {{server: "http://127.0.0.1:9"}}}}]
users: [{{name: u, user: {{token: {SECRET}}}}}]
contexts: [{{name: x, context: {{cluster: c, user: u}}}}]
current-context: x
"""
KUBE = "kubernetes: {kubeconfig: kubeconfig.yaml}\n"
LISTEN = f"listen: {{host: 127.0.0.1, port: 0, bearer_token: {SECRET}}}\n"
PROM = f"prometheus: {{url: 'http://127.0.0.1:9', bearer_token: {SECRET}, queries: promql.yaml}}\n"
UNKNOWN_PLACEHOLDER = 'metrics: {kube_deployment_spec_replicas: {query: "x{a=\\"$nope\\"}"}}\n'


@dataclass(frozen=True)
class BadConfig:
    """A configuration `remediator` cannot use: every command given must exit 2 naming `key` and saying `needle`."""

    id: str
    config: str  # {busy}: a port another socket holds
    key: str
    needle: str
    files: dict[str, str | bytes] = field(default_factory=dict)
    commands: tuple[tuple[str, ...], ...] = (("run",),)


RUN, PROPOSE, HISTORY, UNDO = ("run",), ("propose",), ("history",), ("undo", "1")
BAD_CONFIGS = [
    BadConfig("kubeconfig-binary", KUBE + LISTEN, "kubernetes.kubeconfig", "not a kubeconfig (not UTF-8 text)",
              {"kubeconfig.yaml": bytes(range(128, 256)) * 4}, (RUN, PROPOSE)),
    BadConfig("kubeconfig-not-yaml", KUBE + LISTEN, "kubernetes.kubeconfig", "not valid YAML",
              {"kubeconfig.yaml": f"users: [{{name: u, user: {{token: {SECRET}}}\n"}, (RUN, PROPOSE)),
    BadConfig("kubeconfig-wrong-shape", KUBE + LISTEN, "kubernetes.kubeconfig", "not a kubeconfig",
              {"kubeconfig.yaml": "apiVersion: v1\nclusters: 5\ncontexts: [1]\ncurrent-context: x\n"}, (RUN, PROPOSE)),
    BadConfig("kubeconfig-missing", "kubernetes: {kubeconfig: absent.yaml}\n" + LISTEN, "kubernetes.kubeconfig",
              "absent.yaml does not exist", {}, (RUN, PROPOSE)),
    BadConfig("kubeconfig-unknown-context", "kubernetes: {kubeconfig: kubeconfig.yaml, context: nope}\n" + LISTEN,
              "kubernetes.context", "no context 'nope'", {}, (RUN, PROPOSE)),
    BadConfig("no-kubeconfig-outside-a-cluster", LISTEN, "kubernetes.kubeconfig", "in-cluster service account",
              {}, (RUN, PROPOSE)),
    BadConfig("store-is-a-directory", KUBE + LISTEN + "store: ledger\n", "store", "is a directory",
              {"ledger/keep": ""}, (RUN, HISTORY, UNDO)),
    BadConfig("store-under-a-file", KUBE + LISTEN + "store: kubeconfig.yaml/ledger.db\n", "store",
              "is a file, not a directory", {}, (RUN,)),
    BadConfig("store-unwritable", KUBE + LISTEN + "store: /proc/remediator/ledger.db\n", "store", "cannot create",
              {}, (RUN,)),
    BadConfig("store-not-sqlite", KUBE + LISTEN + "store: ledger.db\n", "store", "is not an SQLite database",
              {"ledger.db": "these are not the pages of an SQLite file\n" * 50}, (RUN, HISTORY, PROPOSE, UNDO)),
    BadConfig("port-in-use", KUBE + f"listen: {{host: 127.0.0.1, port: {{busy}}, bearer_token: {SECRET}}}\n",
              "listen.port", "the port is in use"),
    BadConfig("host-unknown", KUBE + f"listen: {{host: no such host, port: 0, bearer_token: {SECRET}}}\n",
              "listen.host", "cannot listen on no such host"),
    BadConfig("host-not-local", KUBE + f"listen: {{host: 192.0.2.1, port: 0, bearer_token: {SECRET}}}\n",
              "listen.host", "cannot listen on 192.0.2.1"),
    BadConfig("queries-missing", KUBE + LISTEN + PROM, "prometheus.queries", "cannot read the PromQL templates",
              {}, (RUN, PROPOSE)),
    BadConfig("queries-not-a-mapping", KUBE + LISTEN + PROM, "prometheus.queries", "promql.yaml",
              {"promql.yaml": "- 1\n"}, (RUN, PROPOSE)),
    BadConfig("queries-unknown-placeholder", KUBE + LISTEN + PROM, "prometheus.queries", "unknown placeholder",
              {"promql.yaml": UNKNOWN_PLACEHOLDER}, (RUN, PROPOSE)),
    BadConfig("queries-not-yaml", KUBE + LISTEN + PROM, "prometheus.queries", "not valid YAML",
              {"promql.yaml": "metrics: [\n"}, (RUN, PROPOSE)),
    BadConfig("duplicate-mode", "mode: auto\n" + KUBE + LISTEN + "mode: dry-run\n", "mode",
              "given twice (first on line 1)", {}, (RUN, PROPOSE, HISTORY)),
    BadConfig("yaml-syntax-error-on-the-token-line", KUBE + f"listen: {{host: 127.0.0.1, bearer_token: {SECRET}\n",
              "listen", "not valid YAML", {}, (RUN, HISTORY)),
    BadConfig("date-yaml-cannot-build", KUBE + LISTEN + "guards: {freeze_windows: [{start: 2024-13-01, end: x}]}\n",
              "guards.freeze_windows[0].start", "not a valid timestamp value", {}, (RUN, HISTORY)),
    BadConfig("unknown-proposer", KUBE + LISTEN + "proposer: {kind: wizard}\n", "proposer.kind",
              "unknown proposer 'wizard'", {}, (RUN, PROPOSE)),
    BadConfig("unknown-ranker", KUBE + LISTEN + "ranker: wizard\n", "ranker", "unknown ranker 'wizard'",
              {}, (RUN, PROPOSE)),
    BadConfig("policy-missing", KUBE + LISTEN + "ranker: rl\npolicy: absent.zip\n", "policy", "absent.zip",
              {}, (RUN, PROPOSE)),
]


@contextmanager
def deadline(seconds: int) -> Iterator[None]:
    """Fail instead of hanging if `remediator run` unexpectedly starts and serves."""
    def expired(signum: int, frame: Any) -> None:
        raise TimeoutError(f"still running after {seconds}s: the command did not fail")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize("case", BAD_CONFIGS, ids=[c.id for c in BAD_CONFIGS])
def test_a_configuration_that_cannot_be_used_exits_2_naming_the_key_and_no_secret(
        case: BadConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the default store, remediator.db, is relative to the working directory
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    (tmp_path / "kubeconfig.yaml").write_text(KUBECONFIG)
    for name, content in case.files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    (tmp_path / "alert.json").write_text(json.dumps(webhook(am_alert("X", namespace="shop", deployment="cart"))))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        (tmp_path / "c.yaml").write_text(case.config.replace("{busy}", str(busy.getsockname()[1])))
        before = _tree(tmp_path)
        for command in case.commands:
            args = [*command, "--config", "c.yaml"] + (["--alert", "alert.json"] if command == PROPOSE else [])
            with deadline(60):
                result = runner.invoke(app, args)
            output = result.stdout + result.stderr
            assert result.exit_code == 2, f"{command}: {output}"
            assert "Traceback" not in output and result.stdout == ""
            assert re.search(rf"^error: c\.yaml(:\d+)?: {re.escape(case.key)}: ", result.stderr), result.stderr
            assert case.needle in result.stderr.replace("\n", " "), result.stderr
            assert SECRET not in output
            assert _tree(tmp_path) == before, f"{command} left files behind"  # no remediator.db, no -wal


def test_a_failed_start_leaves_no_store_and_keeps_an_existing_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                                  ) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "kubeconfig.yaml").write_text(KUBECONFIG)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        (tmp_path / "c.yaml").write_text(KUBE + f"listen: {{host: 127.0.0.1, port: {port}}}\nstore: data/new/l.db\n")
        result = runner.invoke(app, ["run", "--config", "c.yaml"])
        assert result.exit_code == 2 and "listen.port" in result.stderr
        assert not (tmp_path / "data").exists()  # neither the file nor the directories made for it
        with Ledger(tmp_path / "old.db") as ledger:
            ledger.record_alerts([ReceivedAlert(Alert("KubePodCrashLooping", {"namespace": "shop"}, starts_at=1.0,
                                                      fingerprint="f"))])
        (tmp_path / "c.yaml").write_text(KUBE + f"listen: {{host: 127.0.0.1, port: {port}}}\nstore: old.db\n")
        assert runner.invoke(app, ["run", "--config", "c.yaml"]).exit_code == 2
    with Ledger(tmp_path / "old.db") as ledger:
        assert ledger.alert_counts()["alerts"] == 1  # an existing ledger is never removed


# ---------------------------------------------------------------------------- inert output

# What an alert (or an LLM, or an object name) may carry, and what a terminal must show instead.
HOSTILE = ("[/nope]", "evil\x1b[2J\x1b]0;x\x07", "[link=http://evil]x[/link]")
SHOWN = ("[/nope]", "evil[2J]0;x", "[link=http://evil]x[/link]")
_SGR = re.compile(r"\x1b\[[0-9;]*m")  # Rich's own colours and styles


def on_a_terminal(args: list[str], cwd: Path) -> str:
    """Run the real console script as on a colour terminal (Rich styles, links and all), 400 columns wide."""
    script = Path(sys.executable).parent / "remediator"
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    env.update(FORCE_COLOR="1", TERM="xterm-256color", COLUMNS="400")
    proc = subprocess.run([str(script), *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=600,
                          check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _SGR.search(proc.stdout), "not rendered as on a terminal: the test would prove nothing"
    return proc.stdout + proc.stderr


def assert_inert(output: str) -> None:
    assert "\x1b]" not in output  # no operating system command: no hyperlink (OSC 8), no window title (OSC 0)
    assert "\x07" not in output and "\x1b[2J" not in output
    plain = _SGR.sub("", output)
    assert "\x1b" not in plain  # no escape but Rich's colours
    for text in SHOWN:
        assert text in plain, f"{text!r} is not shown literally"


def test_history_prints_hostile_names_as_literal_inert_text(tmp_path: Path) -> None:
    with Ledger(tmp_path / "ledger.db") as ledger:
        for i, name in enumerate(HOSTILE):
            [receipt] = ledger.record_alerts([ReceivedAlert(Alert(name, {"namespace": "shop", "deployment": name},
                                                                  starts_at=100.0 + i, fingerprint=f"f{i}"))])
            assert receipt.incident_id is not None
            ledger.update_incident(receipt.incident_id, workload=f"Deployment/shop/{name}", status="failed",
                                   close_reason=f"gave up on {name}")
    (tmp_path / "c.yaml").write_text("store: ledger.db\n")

    output = on_a_terminal(["history", "--config", "c.yaml"], tmp_path)

    assert_inert(output)
    assert _SGR.sub("", output).count("gave up on [/nope]") == 1
    doc = json.loads(runner.invoke(app, ["history", "--config", str(tmp_path / "c.yaml"), "--json"]).stdout)
    assert {i["alert"] for i in doc["incidents"]} == set(HOSTILE)  # JSON keeps the data exactly, \u-escaped


def test_propose_table_prints_hostile_alerts_as_literal_inert_text(tmp_path: Path) -> None:
    alerts = [am_alert(name, namespace="shop", deployment="cart", pod="cart-7d9f8b6c5-x2x1z") for name in HOSTILE]
    alerts[0]["annotations"] = {"summary": HOSTILE[2], "description": HOSTILE[1]}
    alerts.append(am_alert("KubePodCrashLooping", namespace="shop", deployment=HOSTILE[2]))  # the object name too
    (tmp_path / "alert.json").write_text(json.dumps(webhook(*alerts)))

    output = on_a_terminal(["propose", "--alert", "alert.json", "--ranker", "rules"], tmp_path)

    assert_inert(output)
    plain = _SGR.sub("", output)
    assert "verdict" in plain and f"Deployment/shop/{HOSTILE[2]}" in plain  # the target as named, "//" intact
    raw = runner.invoke(app, ["propose", "--alert", str(tmp_path / "alert.json"), "--ranker", "rules", "--json"])
    assert raw.exit_code == 0 and [a["name"] for a in json.loads(raw.stdout)["alerts"]][:3] == list(HOSTILE)
    assert raw.stdout.isascii()  # control characters \u-escaped in JSON
