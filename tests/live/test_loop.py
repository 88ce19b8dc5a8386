"""End to end: Alertmanager webhook -> observe -> propose -> rank -> guards -> execute -> verify -> ledger.

Real parts only: the receiver over HTTP, a real Prometheus holding a simulated incident's
timeline (backfilled with promtool), the official client against the Kubernetes emulator
(configured through a kubeconfig file, as `remediator run` is), the SQLite ledger. The
loop runs on a simulated clock, one 15 s tick at a time, so nothing sleeps.

The crash test kills a real child process (SIGKILL) while its API call is in flight,
restarts the agent, and checks that the action ran exactly once.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import signal
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp.web
import attrs
import pytest
import yaml
from typer.testing import CliRunner

from remediator.agent import decide
from remediator.encoding import OBS_SIZE
from remediator.guards import GuardPolicy
from remediator.live.config import load_config
from remediator.live.executor import ACTION_ANNOTATION
from remediator.live.ledger import Ledger
from remediator.live.service import Agent
from remediator.propose.catalog import CatalogProposer
from remediator.rank import RulesRanker
from remediator.snapshot import RATE_WINDOW_S, Series, Slo
from simulator.cluster import TICK_S
from simulator.incident import Incident
from tests.live.conftest import requires_prometheus
from tests.live.sim import incident, manifests, merge, prometheus_with
from tests.support.kube import KubeEmulator, KubeServer

ROOT = Path(__file__).resolve().parents[2]


class SimClock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def timeline(inc: Incident, until: float) -> list[Series]:
    """Every sample the simulated cluster produced up to `until` (a Prometheus holding its history)."""
    c = inc.cluster
    while c.now < until:
        c.step()
    windows = [c.series(until=t, alert_start=inc.alert_at) for t in
               [inc.alert_at - 900.0 + 120.0 * i for i in range(int((until - inc.alert_at + 900.0) / 120.0) + 2)]]
    return merge(*windows)


def webhook_payload(inc: Incident, status: str = "firing") -> dict[str, Any]:
    a = inc.alert
    starts = datetime.fromtimestamp(a.starts_at, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    labels = {"alertname": a.name, **a.labels}
    return {"version": "4", "groupKey": f'{{}}:{{alertname="{a.name}"}}', "status": status,
            "receiver": "remediator", "groupLabels": {"alertname": a.name}, "commonLabels": labels,
            "commonAnnotations": {}, "externalURL": "http://alertmanager", "truncatedAlerts": 0,
            "alerts": [{"status": status, "labels": labels, "annotations": dict(a.annotations), "startsAt": starts,
                        "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prom/graph",
                        "fingerprint": a.fingerprint}]}


def post_webhook(url: str, body: dict[str, Any], token: str) -> int:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("POST", "/alerts", body=json.dumps(body), headers={"Authorization": f"Bearer {token}",
                                                                     "Content-Type": "application/json"})
    status = conn.getresponse().status
    conn.close()
    return status


def write_config(tmp_path: Path, kube: KubeServer, prom_url: str, *, mode: str, horizon_s: float,
                 **sections: Any) -> Path:
    """The agent's YAML configuration; `sections` (guards=..., proposer=...) are added as they are."""
    kube.write_kubeconfig(tmp_path / "kubeconfig.yaml")
    config = {
        "kubernetes": {"kubeconfig": "kubeconfig.yaml"},
        "prometheus": {"url": prom_url, "retries": 0, "timeout_s": 5},
        "mode": mode,
        "store": "ledger.db",
        "listen": {"host": "127.0.0.1", "port": 0},
        "ranker": "rules",
        "verify": {"interval_s": TICK_S, "decision_s": 60, "horizon_s": horizon_s, "retry_s": TICK_S},
        "executor": {"backoff_base_s": 0.01, "backoff_max_s": 0.1},
        **sections,
    }
    path = tmp_path / "remediator.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def seed_incident(kube: KubeServer, inc: Incident) -> None:
    objects = inc.cluster.objects()
    kube.seed(*manifests(objects, node_names=[n.name for n in inc.cluster.nodes.values()]))


def drive(agent: Agent, clock: SimClock, incident_id: int, end: float) -> list[Any]:
    reports = []
    while clock.t <= end:
        reports += agent.loop.tick(clock.t)
        inc = agent.ledger.incident(incident_id)
        if inc is None or inc.status != "open":
            break
        clock.t += TICK_S
    return reports


@requires_prometheus
@pytest.mark.parametrize("mode", ["auto", "dry-run"])
def test_alert_to_verified_recovery(tmp_path: Path, mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REMEDIATOR_WEBHOOK_TOKEN", "hook-token")
    inc = incident("scaled_to_zero", after_s=0)
    # What the agent will decide at the alert (the round trip makes its observation the simulator's).
    snap = inc.observe()
    expected = decide(snap, CatalogProposer().propose(snap), RulesRanker(), [], GuardPolicy(), inc.now).candidate
    assert expected is not None and expected.kind.value == "restore_replicas"
    with KubeServer(KubeEmulator()) as kube:
        seed_incident(kube, inc)
        before = kube.get("apps/v1", "Deployment", "shop", "cart")
        kube.emulator.validate = "1.33"
        if mode == "auto":
            inc.execute(expected.action)  # the cluster the agent acts on recovers in the recorded metrics
            inc.advance(600.0)
            assert inc.recovered
        end = inc.alert_at + (900.0 if mode == "auto" else 300.0)
        series = timeline(inc, end)
        with prometheus_with(tmp_path / "p", series) as prom:
            config = load_config(write_config(tmp_path, kube, prom.url, mode=mode, horizon_s=240.0))
            clock = SimClock(inc.alert_at)
            agent = Agent(config, clock=clock).start(worker=False)
            try:
                assert post_webhook(agent.server.url, webhook_payload(inc), "hook-token") == 200
                [incident_row] = agent.ledger.incidents()
                reports = drive(agent, clock, incident_row.id, end)
            finally:
                agent.stop()
        after = kube.get("apps/v1", "Deployment", "shop", "cart")
        posted = [r for r in kube.requests("POST", "/api/v1/namespaces/*/events") if r.status == 201]
        events = [r.body for r in posted if r.query.get("dryRun") != "All"]

    with Ledger(config.store) as ledger:
        row = ledger.incident(incident_row.id)
        assert row is not None
        executions = ledger.executions(incident_id=row.id)
        candidates = ledger.candidates_of(row.id)
        snapshots = ledger.snapshots_of(row.id)
        outcomes = ledger.outcomes_of(row.id)
        experience = ledger.experience()
    first = executions[0]
    assert experience[0]["chosen"] == "restore_replicas" and experience[0]["since_alert_s"] == 0.0
    assert len(experience[0]["observation"]) == OBS_SIZE and "restore_replicas" in experience[0]["candidates"]
    assert experience[0]["executed"] and experience[0]["dry_run"] is (mode == "dry-run")
    assert experience[0]["recovered"] is (mode == "auto")
    assert first.action.describe() == expected.action.describe()
    assert all(c["verdict"] in ("allow", "deny", "needs_approval") and c["reason"] for c in candidates)
    assert sum(c["chosen"] for c in candidates) == len({c["snapshot_id"] for c in candidates})
    assert all(len(s["observation"]) == len(snapshots[0]["observation"]) for s in snapshots if s["observation"])
    assert snapshots[0]["signals"]["desired_replicas"] == 0.0
    assert [r.outcome for r in reports][0] == "acted"
    if mode == "auto":
        assert first.state == "done" and not first.dry_run
        assert after["spec"]["replicas"] == expected.action.params["replicas"]  # type: ignore[index]
        assert after["metadata"]["annotations"][ACTION_ANNOTATION] == first.idempotency_key  # type: ignore[index]
        assert [e["reason"] for e in events][:1] == ["Remediation"]
        assert row.status == "recovered" and row.recovery_s is not None
        # The simulator verifies on ground truth; live verification reads 2-minute rates of scraped,
        # lagged counters, so it confirms later, by at most the rate window plus the healthy streak.
        assert 0 <= row.recovery_s - inc.recovery_s <= RATE_WINDOW_S + Slo().consecutive * TICK_S
        assert outcomes[-1]["recovered"] == 1 and outcomes[-1]["execution_id"] == first.id
    else:
        assert all(e.dry_run for e in executions) and len(executions) >= 2
        assert {k: v for k, v in after.items() if k != "metadata"} == \
            {k: v for k, v in before.items() if k != "metadata"}  # type: ignore[union-attr]
        assert events == [] and posted  # the Events were server-side dry runs too
        # Dry runs change nothing, so the rules escalate once their remedy has been tried in vain.
        assert row.status == "escalated" and row.close_reason, (row.status, row.close_reason)
        assert outcomes[-1]["recovered"] == 0

    result = CliRunner().invoke(_app(), ["history", "--config", str(tmp_path / "remediator.yaml"), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["incidents"][0]["status"] == row.status
    assert doc["incidents"][0]["executions"][0]["action"] == "restore_replicas"


@requires_prometheus
def test_prometheus_down_means_no_action(tmp_path: Path) -> None:
    inc = incident("scaled_to_zero", after_s=0)
    with KubeServer(KubeEmulator()) as kube:
        seed_incident(kube, inc)
        with prometheus_with(tmp_path / "p", timeline(inc, inc.alert_at + 60)) as prom:
            url = prom.url
        # Prometheus is gone now.
        config = load_config(write_config(tmp_path, kube, url, mode="auto", horizon_s=600.0))
        clock = SimClock(inc.alert_at)
        agent = Agent(config, clock=clock).start(worker=False)
        try:
            assert post_webhook(agent.server.url, webhook_payload(inc), "") in (200,)
            reports = drive(agent, clock, 1, inc.alert_at + 60)
        finally:
            agent.stop()
        writes = [r for r in kube.requests() if r.method != "GET"]
    assert {r.outcome for r in reports} == {"observe_failed"}
    assert all("unreachable" in r.detail for r in reports)
    assert writes == []
    with Ledger(config.store) as ledger:
        assert ledger.executions() == []
        assert "no action: Prometheus at" in (ledger.incident(1).note or "")  # type: ignore[union-attr]


@requires_prometheus
def test_kubernetes_errors_mean_no_action_on_stale_objects(tmp_path: Path) -> None:
    inc = incident("scaled_to_zero", after_s=0)
    with KubeServer(KubeEmulator()) as kube:
        seed_incident(kube, inc)
        with prometheus_with(tmp_path / "p", timeline(inc, inc.alert_at + 120)) as prom:
            config = load_config(write_config(tmp_path, kube, prom.url, mode="auto", horizon_s=600.0))
            clock = SimClock(inc.alert_at)
            agent = Agent(config, clock=clock).start(worker=False)
            observer_source = agent.loop.observer.objects
            observer_source.backoff.sleep = lambda s: None  # type: ignore[attr-defined]
            try:
                post_webhook(agent.server.url, webhook_payload(inc), "")
                fault = kube.inject_fault(500, times=10_000, method="GET", path="/apis/apps/v1/*")
                first = agent.loop.tick(clock.t)
                kube.emulator.clear_faults()
                clock.t += TICK_S
                second = agent.loop.tick(clock.t)
            finally:
                agent.stop()
        writes = [r for r in kube.requests() if r.method == "PATCH"]
    assert [r.outcome for r in first] == ["observe_failed"] and "gave up" in first[0].detail
    assert len(fault.hits) >= 2  # retried with backoff before giving up
    assert [r.outcome for r in second] == ["acted"]  # fresh objects, then the action
    assert len(writes) == 2  # scale + annotation, once


# ---------------------------------------------------------------------------- crash in the middle


@attrs.define(kw_only=True)
class HoldingEmulator(KubeEmulator):
    """Holds the first request matching `hold_path`: before it touches the store, or after (reply withheld).

    `held` is set when the request is held; `release` lets it go. A request held *before*
    is answered 503 without being applied (it never reached the store).
    """

    hold_method: str = "PATCH"
    hold_path: str = ""
    hold_when: str = "before"
    held: threading.Event = attrs.field(factory=threading.Event)
    release: threading.Event = attrs.field(factory=threading.Event)

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        matches = (raw_request.method == self.hold_method and raw_request.path == self.hold_path
                   and not self.held.is_set())
        if matches and self.hold_when == "before":
            self.held.set()
            while not self.release.is_set():
                await asyncio.sleep(0.02)
            return aiohttp.web.json_response({"kind": "Status", "code": 503}, status=503)
        response = await super().__call__(raw_request)
        if matches:
            self.held.set()
            while not self.release.is_set():
                await asyncio.sleep(0.02)
        return response


def _agent_process(store: Path, kubeconfig: Path) -> None:
    """The agent's side, in a forked child: record the intent, send the PATCH (held), never finish."""
    from remediator.actions import Action, ActionKind, ObjectRef
    from remediator.live.config import KubernetesSettings
    from remediator.live.executor import KubeExecutor
    from remediator.live.kube import api_client
    from remediator.snapshot import Alert, Signals, Snapshot

    cart = ObjectRef("Deployment", "shop", "cart")
    snap = Snapshot(Alert("KubePodCrashLooping", {"namespace": "shop", "deployment": "cart"}), 0.0, cart, Signals())
    api = api_client(KubernetesSettings(kubeconfig=kubeconfig))
    KubeExecutor(api, Ledger(store), dry_run=False).execute(
        Action(ActionKind.RAISE_MEMORY_LIMIT, cart, {"factor": 2.0}), snap, key="rm-crash-test")


def _fork(target: Any, *args: Any) -> int:
    """A separate process running `target` (forked: it starts with the client already imported)."""
    import kubernetes.client as k

    _ = (k.CoreV1Api, k.AppsV1Api, k.AutoscalingV2Api, k.StorageV1Api, k.CoreV1Event)  # lazy imports, paid once
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 0
        try:
            target(*args)
        except BaseException:  # noqa: BLE001
            code = 1
        os._exit(code)
    return pid


class _Crash:
    """One agent process killed while its PATCH is held by the emulator (`when`: before or after it landed)."""

    path = "/apis/apps/v1/namespaces/shop/deployments/cart"

    def __init__(self, tmp_path: Path, when: str) -> None:
        self.when = when
        self.dir = tmp_path / when
        self.dir.mkdir()
        self.emulator = HoldingEmulator(hold_path=self.path, hold_when=when)
        self.kube = KubeServer(self.emulator).start()
        self.kube.seed_deployment("cart", "shop", replicas=2, limits={"memory": "256Mi", "cpu": "500m"})
        self.kube.emulator.validate = "1.33"
        self.generation = self.kube.get("apps/v1", "Deployment", "shop", "cart")["metadata"]["generation"]  # type: ignore[index]
        self.kubeconfig = self.kube.write_kubeconfig(self.dir / "kubeconfig.yaml")
        self.store = self.dir / "ledger.db"
        self.pid = _fork(_agent_process, self.store, self.kubeconfig)
        self.status: int | None = None

    def alive(self) -> bool:
        if self.status is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = status
        return self.status is None

    def kill(self) -> None:
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)
            _, self.status = os.waitpid(self.pid, 0)

    def kill_when_held(self) -> None:
        try:
            if not self.emulator.held.wait(60):
                raise AssertionError(f"the agent process sent no PATCH (alive: {self.alive()})")
            with Ledger(self.store) as ledger:  # the intent and its inverse are on disk before the call
                [row] = ledger.executions()
                assert row.state == "intent" and row.inverse is not None and row.inverse["reversible"]
                assert "256Mi" in json.dumps(row.inverse["plan"])
            self.kill()
        finally:
            self.kill()
            self.emulator.release.set()
        assert self.status is not None and os.WIFSIGNALED(self.status) and os.WTERMSIG(self.status) == signal.SIGKILL

    def restart_and_check(self) -> None:
        config = self.dir / "remediator.yaml"
        config.write_text(yaml.safe_dump({"kubernetes": {"kubeconfig": str(self.kubeconfig)}, "store": str(self.store),
                                          "mode": "auto", "listen": {"host": "127.0.0.1", "port": 0},
                                          "ranker": "rules"}))
        agent = Agent(load_config(config)).start(worker=False)  # what `remediator run` does first
        agent.stop()
        dep = self.kube.get("apps/v1", "Deployment", "shop", "cart")
        applied = [r for r in self.kube.requests("PATCH", self.path) if r.status == 200]
        assert dep is not None
        assert dep["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"] == "512Mi"
        assert dep["metadata"]["generation"] == self.generation + 1  # one change, not two
        assert dep["metadata"]["annotations"][ACTION_ANNOTATION] == "rm-crash-test"
        assert len(applied) == 1
        with Ledger(self.store) as ledger:
            [row] = ledger.executions()
        assert row.state == "done" and row.result is not None and row.result["resumed"]
        assert row.result["already_applied"] is (self.when == "after")


def test_crash_in_the_middle_never_executes_twice(tmp_path: Path) -> None:
    """Two agent processes, killed with SIGKILL before and after their PATCH landed; each restart
    finishes the action exactly once."""
    crashes = [_Crash(tmp_path, "before"), _Crash(tmp_path, "after")]
    try:
        for crash in crashes:
            crash.kill_when_held()
        for crash in crashes:
            crash.restart_and_check()
    finally:
        for crash in crashes:
            crash.kill()
            crash.kube.stop()


def _app() -> Any:
    from remediator.cli import app

    return app



def test_run_serves_webhooks_and_its_worker_refuses_to_act_blind(tmp_path: Path) -> None:
    """`remediator run` wiring with its worker thread: without metrics it observes, records why, acts on nothing."""
    with KubeServer(KubeEmulator()) as kube:
        kube.seed_deployment("cart", "shop")
        kube.seed({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "cart", "namespace": "shop"},
                   "spec": {"selector": {"app": "cart"}, "ports": [{"port": 80}]}})  # the alert's `service`
        kube.write_kubeconfig(tmp_path / "kubeconfig.yaml")
        (tmp_path / "c.yaml").write_text(yaml.safe_dump({
            "kubernetes": {"kubeconfig": "kubeconfig.yaml"}, "mode": "auto", "store": "ledger.db",
            "listen": {"host": "127.0.0.1", "port": 0}, "ranker": "rules"}))
        agent = Agent(load_config(tmp_path / "c.yaml")).start()
        try:
            payload = webhook_payload(incident("scaled_to_zero", after_s=0))
            payload["alerts"][0]["startsAt"] = datetime.now(tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            assert post_webhook(agent.server.url, payload, "") == 200
            deadline = time.monotonic() + 20
            while not agent.ledger.snapshots_of(1):
                assert time.monotonic() < deadline, "the worker did not observe the incident"
                time.sleep(0.05)
            host, port = agent.server.url.removeprefix("http://").split(":")
            conn = http.client.HTTPConnection(host, int(port), timeout=5)
            conn.request("GET", "/readyz")
            assert conn.getresponse().status == 200
            conn.close()
        finally:
            agent.stop()
        writes = [r for r in kube.requests() if r.method != "GET"]
    with Ledger(tmp_path / "ledger.db") as ledger:
        inc = ledger.incident(1)
        assert inc is not None and inc.status == "open" and "no Prometheus configured" in (inc.note or "")
        assert ledger.executions() == []
    assert writes == []


# ---------------------------------------------------------------------------- a resumed execution is judged again


def _label_cart(kubeconfig: Path, value: str | None) -> None:
    """Another hand changes the workload between the crash and the restart (through the real client)."""
    import kubernetes.client as k

    from remediator.live.config import KubernetesSettings
    from remediator.live.kube import api_client

    k.AppsV1Api(api_client(KubernetesSettings(kubeconfig=kubeconfig))).patch_namespaced_deployment(
        "cart", "shop", {"metadata": {"labels": {"remediator.io/protected": value}}})


def _crashed_intent(agent: Agent, incident_id: int, action: Any, at: float) -> int:
    """The ledger as a crash between recording the intent and the API call leaves it: the
    intent and its inverse on disk, the cluster untouched."""
    executor = agent.loop.executor
    assert executor is not None
    obs = agent.loop.observer.observe(agent.ledger.incident(incident_id).alert, now=at)  # type: ignore[union-attr]
    key = f"crashed-{incident_id}-{at}"
    plan, inverse = executor._plan(action, obs.snapshot, key)
    return agent.ledger.record_intent(incident_id=incident_id, candidate_id=None, action=action, key=key,
                                      dry_run=False, plan=plan, inverse=inverse,
                                      reversible=bool(inverse["reversible"]), inverse_note="",
                                      workload_key=obs.snapshot.workload)


@requires_prometheus
def test_a_resumed_execution_is_judged_again_on_fresh_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Four intents left by a crash: one in a freeze window now in effect, one whose workload
    became protected, one too old, one fine. Only the last is applied."""
    monkeypatch.setenv("REMEDIATOR_WEBHOOK_TOKEN", "hook-token")
    inc = incident("scaled_to_zero", after_s=0)
    snap = inc.observe()
    expected = decide(snap, CatalogProposer().propose(snap), RulesRanker(), [], GuardPolicy(), inc.now).candidate
    assert expected is not None and expected.kind.value == "restore_replicas"
    path = "/apis/apps/v1/namespaces/shop/deployments/cart"
    cases = ("freeze", "protected", "old", "fine")
    with KubeServer(KubeEmulator()) as kube:
        seed_incident(kube, inc)
        series = timeline(inc, inc.alert_at + 300.0)
        with prometheus_with(tmp_path / "p", series) as prom:
            results = {}
            for case in cases:
                case_dir = tmp_path / case
                case_dir.mkdir()
                start = datetime.fromtimestamp(inc.alert_at + 30, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                end = datetime.fromtimestamp(inc.alert_at + 3600, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                freeze = {"freeze_windows": [{"start": start, "end": end, "name": "release freeze"}]}
                config_path = write_config(case_dir, kube, prom.url, mode="auto", horizon_s=600.0,
                                           **({"guards": freeze} if case == "freeze" else {}))
                clock = SimClock(inc.alert_at)
                agent = Agent(load_config(config_path), clock=clock).start(worker=False)
                try:
                    assert post_webhook(agent.server.url, webhook_payload(inc), "hook-token") == 200
                    [row] = agent.ledger.incidents()
                    created = inc.alert_at - (3600.0 if case == "old" else 0.0)
                    exec_id = _crashed_intent(agent, row.id, expected.action, created)
                    if case == "old":
                        with agent.ledger._tx() as db:  # the crash happened an hour ago
                            db.execute("UPDATE executions SET created_at = ? WHERE id = ?", (created, exec_id))
                    if case == "protected":
                        _label_cart(case_dir / "kubeconfig.yaml", "true")
                    clock.t = inc.alert_at + 60.0
                    patches_before = len([r for r in kube.requests("PATCH", path) if r.status == 200])
                    [result] = agent.loop.recover()
                    patches = len([r for r in kube.requests("PATCH", path) if r.status == 200]) - patches_before
                    results[case] = (result, patches, agent.ledger.execution(exec_id), agent.ledger.incident(row.id))
                finally:
                    agent.stop()
                    if case == "protected":
                        _label_cart(case_dir / "kubeconfig.yaml", None)
    reasons = {"freeze": "judged again: freeze: freeze window 'release freeze'",
               "protected": "protected: Deployment/shop/cart carries",
               "old": "the intent is 3660s old (resume_max_age_s 600)"}
    for case, (result, patches, execution, incident_row) in results.items():
        if case == "fine":
            assert result.state == "done" and result.resumed and patches >= 1, (case, result)
            continue
        assert result.state == "abandoned" and patches == 0, (case, result)
        assert execution is not None and execution.state == "abandoned"
        assert reasons[case] in (execution.error or ""), (case, execution.error)
        assert incident_row is not None and incident_row.status == "open"
        assert f"execution {execution.id} abandoned on resume" in (incident_row.note or "")


@requires_prometheus
def test_an_llm_provider_that_refuses_leaves_its_reason_in_the_ledger(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A provider answering 401 (a revoked key): the catalog decides, and the decision's snapshot says why."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Refusing(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = json.dumps({"error": {"message": "Incorrect API key provided", "type": "invalid_request_error",
                                         "code": "invalid_api_key"}}).encode()
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    monkeypatch.setenv("REMEDIATOR_WEBHOOK_TOKEN", "hook-token")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-revoked")
    provider = ThreadingHTTPServer(("127.0.0.1", 0), Refusing)
    threading.Thread(target=provider.serve_forever, daemon=True).start()
    inc = incident("scaled_to_zero", after_s=0)
    try:
        with KubeServer(KubeEmulator()) as kube:
            seed_incident(kube, inc)
            with prometheus_with(tmp_path / "p", timeline(inc, inc.alert_at + 300.0)) as prom:
                llm = {"kind": "llm", "provider": "openai", "model": "gpt-test", "retries": 0,
                       "base_url": f"http://127.0.0.1:{provider.server_address[1]}/v1"}
                path = write_config(tmp_path, kube, prom.url, mode="dry-run", horizon_s=600.0, proposer=llm)
                clock = SimClock(inc.alert_at)
                agent = Agent(load_config(path), clock=clock).start(worker=False)
                try:
                    assert post_webhook(agent.server.url, webhook_payload(inc), "hook-token") == 200
                    [row] = agent.ledger.incidents()
                    [report] = agent.loop.tick(clock.t)
                    snapshots = agent.ledger.snapshots_of(row.id)
                    candidates = agent.ledger.candidates_of(row.id)
                finally:
                    agent.stop()
    finally:
        provider.shutdown()
        provider.server_close()
    assert report.outcome == "acted", report
    [decided] = [s for s in snapshots if s["purpose"] == "decide"]
    note = decided["proposer_note"] or ""
    assert note.startswith("LLM proposer fell back to the catalog after 1 attempt(s): provider error:"), note
    assert "401" in note or "AuthenticationError" in note, note
    assert candidates and all(c["source"] == "catalog" for c in candidates)
