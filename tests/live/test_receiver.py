"""The Alertmanager webhook receiver over real HTTP, and fed by a real Alertmanager and Prometheus."""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from remediator.live.ledger import Ledger
from remediator.live.receiver import Receiver, ReceiverServer, fingerprint, parse_payload
from tests.live.conftest import requires_prometheus
from tests.support.prom import (
    alert_rule,
    binaries_available,
    start_alertmanager,
    start_prometheus,
    write_rule_file,
)

TOKEN = "s3cret"


def payload(*alerts: dict[str, Any], status: str = "firing", version: str = "4") -> dict[str, Any]:
    return {"version": version, "groupKey": "{}:{}", "status": status, "receiver": "remediator",
            "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://am",
            "truncatedAlerts": 0, "alerts": list(alerts)}


def alert(name: str = "KubePodCrashLooping", *, status: str = "firing", starts: str = "2026-11-26T10:00:00Z",
          ends: str = "0001-01-01T00:00:00Z", **labels: str) -> dict[str, Any]:
    labels = {"alertname": name, "namespace": "shop", "deployment": "cart", **labels}
    return {"status": status, "labels": labels, "annotations": {"summary": "x"}, "startsAt": starts,
            "endsAt": ends, "generatorURL": "http://prom/graph", "fingerprint": fingerprint(labels)}


@pytest.fixture
def server(ledger: Ledger) -> Iterator[ReceiverServer]:
    with ReceiverServer(Receiver(ledger, bearer_token=TOKEN, max_body_bytes=64 * 1024), "127.0.0.1", 0) as srv:
        yield srv


def post(srv: ReceiverServer, body: Any, *, token: str | None = TOKEN, path: str = "/alerts",
         raw: bytes | None = None) -> tuple[int, dict[str, Any]]:
    host, port = srv.server_address[:2]
    conn = http.client.HTTPConnection(str(host), int(port), timeout=10)
    data = raw if raw is not None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    conn.request("POST", path, body=data, headers=headers)
    resp = conn.getresponse()
    text = resp.read()
    conn.close()
    return resp.status, (json.loads(text) if text else {})


def test_firing_alert_is_persisted_before_the_reply(server: ReceiverServer, tmp_path: Path) -> None:
    status, body = post(server, payload(alert()))
    assert status == 200 and body["new"] == 1 and body["incidents"] == [1]
    with Ledger(tmp_path / "ledger.db") as other:  # a second connection: the row is committed
        [inc] = other.incidents()
        assert (inc.alert.name, inc.status, dict(inc.alert.labels)["deployment"]) == ("KubePodCrashLooping", "open",
                                                                                      "cart")


def test_duplicates_merge_and_resolved_closes(server: ReceiverServer, ledger: Ledger) -> None:
    assert post(server, payload(alert()))[0] == 200
    status, body = post(server, payload(alert(), alert("ServiceLatencyHigh")))
    assert status == 200 and (body["new"], body["duplicates"]) == (1, 1)
    assert ledger.alert_counts() == {"alerts": 2, "received": 3, "incidents": 2}
    status, body = post(server, payload(alert(status="resolved", ends="2026-11-26T10:05:00Z"), status="resolved"))
    assert status == 200 and body["resolved"] == 1
    closed = ledger.incident(1)
    assert closed is not None and closed.status == "cancelled" and "before any action" in (closed.close_reason or "")
    assert ledger.incident(2).status == "open"  # type: ignore[union-attr]
    # A late repeat of the firing notification does not reopen anything.
    post(server, payload(alert()))
    assert ledger.incident(1).status == "cancelled"  # type: ignore[union-attr]
    assert ledger.alerts_of(1)[0]["status"] == "resolved"


def test_refires_after_resolution_open_a_new_incident(server: ReceiverServer, ledger: Ledger) -> None:
    post(server, payload(alert()))
    post(server, payload(alert(status="resolved", ends="2026-11-26T10:05:00Z")))
    post(server, payload(alert(starts="2026-11-26T11:00:00Z")))
    assert [i.status for i in reversed(ledger.incidents())] == ["cancelled", "open"]


@pytest.mark.parametrize(("token", "status"), [(None, 401), ("wrong", 401), (TOKEN, 200)])
def test_bearer_token(server: ReceiverServer, ledger: Ledger, token: str | None, status: int) -> None:
    assert post(server, payload(alert()), token=token)[0] == status
    assert ledger.alert_counts()["alerts"] == (1 if status == 200 else 0)


def test_body_size_limit(server: ReceiverServer, ledger: Ledger) -> None:
    big = payload(*[alert(pod=f"cart-{i:05d}") for i in range(400)])
    status, body = post(server, big)
    assert status == 413 and "exceeds the limit of 65536" in body["error"]
    assert ledger.alert_counts()["alerts"] == 0
    assert post(server, payload(alert()))[0] == 200  # the server is fine afterwards


@pytest.mark.parametrize(("body", "problem"), [
    (b"{not json", "body is not JSON"),
    (b"[1, 2]", "payload must be a JSON object"),
    (json.dumps(payload(alert(), version="3")).encode(), "version: version '3' is not supported"),
    (json.dumps({"version": "4", "alerts": []}).encode(), "alerts: List should have at least 1 item"),
    (json.dumps({"version": "4"}).encode(), "alerts: Field required"),
])
def test_malformed_envelope_is_a_400_naming_the_problem(server: ReceiverServer, ledger: Ledger, body: bytes,
                                                        problem: str) -> None:
    status, answer = post(server, None, raw=body)
    assert status == 400
    assert any(problem in p for p in answer["problems"]), answer
    assert ledger.alert_counts()["alerts"] == 0


def test_one_bad_alert_loses_nothing_else(server: ReceiverServer, ledger: Ledger) -> None:
    bad_labels = alert()
    bad_labels["labels"].pop("alertname")
    no_start = alert("ServiceLatencyHigh")
    no_start["startsAt"] = "yesterday"
    status, answer = post(server, payload(alert(), bad_labels, no_start, alert("KubeHpaMaxedOut")))
    assert status == 400
    assert answer["problems"] == ["alerts[1].labels: an alert needs an 'alertname' label",
                                  "alerts[2].startsAt: Input should be a valid datetime or date, input is too short"]
    assert answer["stored"]["received"] == 2
    assert {i.alert.name for i in ledger.incidents()} == {"KubePodCrashLooping", "KubeHpaMaxedOut"}


def test_storage_failure_is_a_500_so_alertmanager_retries(server: ReceiverServer, ledger: Ledger) -> None:
    ledger.close()
    status, body = post(server, payload(alert()))
    assert status == 500 and "could not persist" in body["error"]


def test_health_ready_and_metrics(server: ReceiverServer) -> None:
    post(server, payload(alert()))
    host, port = server.server_address[:2]
    checks = (("/healthz", "ok"), ("/readyz", "ready"), ("/metrics", "remediator_receiver_alerts_new_total 1"))
    for path, expected in checks:
        conn = http.client.HTTPConnection(str(host), int(port), timeout=5)
        conn.request("GET", path)
        resp = conn.getresponse()
        assert resp.status == 200 and expected in resp.read().decode()
        conn.close()


def test_concurrent_posts_share_commits(server: ReceiverServer, ledger: Ledger) -> None:
    def worker(i: int) -> None:
        for j in range(10):
            assert post(server, payload(alert(pod=f"cart-{i}-{j}")))[0] == 200

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert ledger.alert_counts()["alerts"] == 80
    assert server.receiver.writer.commits < 80  # group commit: one fsync served several requests


def test_fingerprint_is_alertmanagers() -> None:
    # Reference values computed by Alertmanager 0.25 (model.LabelSet.Fingerprint), see the live test below.
    assert fingerprint({}) == "cbf29ce484222325"
    parsed = parse_payload(payload({**alert(), "fingerprint": ""}))
    assert parsed[0].alert.fingerprint == fingerprint(alert()["labels"])


@dataclass
class Pipeline:
    receiver: Receiver
    ledger: Ledger
    prometheus: Any
    rules: Any


@pytest.fixture(scope="module", autouse=True)
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline | None]:
    """Prometheus (one alerting rule) -> Alertmanager -> receiver, started with the module.

    Prometheus needs ~5 s to discover its Alertmanager; starting early lets the other tests
    of this module run meanwhile.
    """
    if not binaries_available():
        yield None
        return
    tmp = tmp_path_factory.mktemp("pipeline")
    labels = {"namespace": "shop", "deployment": "cart", "severity": "warning"}

    def rules(expr: str) -> Path:
        return write_rule_file(tmp / "rules.yml", [alert_rule(
            "KubeDeploymentReplicasMismatch", expr, labels=labels,
            annotations={"summary": "cart has fewer replicas than desired"})])

    with ExitStack() as stack:
        ledger = stack.enter_context(Ledger(tmp / "ledger.db"))
        receiver = Receiver(ledger, bearer_token=TOKEN)
        srv = stack.enter_context(ReceiverServer(receiver, "127.0.0.1", 0))
        am = stack.enter_context(start_alertmanager(tmp / "am", f"{srv.url}/alerts", bearer_token=TOKEN))
        prom = stack.enter_context(start_prometheus(tmp / "prom", rule_files=[rules("vector(1)")],
                                                    alertmanager_url=am.url))
        yield Pipeline(receiver, ledger, prom, rules)


@requires_prometheus
def test_real_prometheus_rule_through_real_alertmanager(pipeline: Pipeline) -> None:
    """A Prometheus rule fires, then stops (rules reloaded); Alertmanager delivers both to the receiver."""
    receiver, ledger = pipeline.receiver, pipeline.ledger

    def wait(what: str, done: Any) -> None:
        deadline = time.monotonic() + 30
        while not done():
            assert time.monotonic() < deadline, f"no {what} notification: {receiver.stats}"
            time.sleep(0.1)

    wait("firing", lambda: receiver.stats.new >= 1)
    [inc] = ledger.incidents()
    assert inc.status == "open"
    pipeline.rules("vector(1) > 2")  # the condition clears
    urllib.request.urlopen(urllib.request.Request(f"{pipeline.prometheus.url}/-/reload", method="POST"),
                           timeout=10).close()
    wait("resolved", lambda: receiver.stats.resolved >= 1)
    [inc] = ledger.incidents()
    assert dict(inc.alert.labels) == {"alertname": "KubeDeploymentReplicasMismatch", "namespace": "shop",
                                      "deployment": "cart", "severity": "warning"}
    assert inc.fingerprint == fingerprint(dict(inc.alert.labels))  # Alertmanager's own, recomputed here
    assert inc.status == "cancelled"  # resolved before the loop did anything
    [row] = ledger.alerts_of(inc.id)
    assert row["status"] == "resolved" and row["ends_at"] is not None and row["group_key"]
