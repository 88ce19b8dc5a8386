"""The Alertmanager webhook receiver over real HTTP, and fed by a real Alertmanager and Prometheus."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from remediator.cli import app
from remediator.guards import GuardPolicy
from remediator.live.config import ConfigError, ListenSettings, load_config
from remediator.live.ledger import MAX_OPEN_PER_NAMESPACE, MAX_OPEN_PER_SOURCE, Ledger, ReceivedAlert
from remediator.live.loop import Loop
from remediator.live.receiver import Receiver, ReceiverServer, fingerprint, parse_payload
from remediator.live.wiring import make_observer
from remediator.propose.catalog import CatalogProposer
from remediator.rank import RulesRanker
from remediator.snapshot import Alert
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


# ---------------------------------------------------------------------------- hostile or broken senders (issue 15)


def address(srv: ReceiverServer) -> tuple[str, int]:
    host, port = srv.server_address[:2]
    return str(host), int(port)


def request_bytes(method: str, path: str, body: bytes = b"", *, token: str | None = TOKEN,
                  headers: dict[str, str] | None = None, length: str | None = None) -> bytes:
    """One HTTP/1.1 request exactly as given (`length`: the Content-Length header verbatim, None: the body's)."""
    lines = [f"{method} {path} HTTP/1.1", "Host: receiver"]
    if token is not None:
        lines.append(f"Authorization: Bearer {token}")
    lines.append(f"Content-Length: {len(body) if length is None else length}")
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def read_until_closed(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def responses(data: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    """The HTTP responses in `data`, in order: (status, headers with lower-case names, body)."""
    out = []
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
        n = int(headers.get("content-length", "0"))
        out.append((int(status_line.split()[1]), headers, rest[:n]))
        data = rest[n:]
    return out


def exchange(srv: ReceiverServer, data: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    """Send `data` on a fresh connection and read every response until the server closes it."""
    with socket.create_connection(address(srv), timeout=10) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)  # nothing more comes: a server waiting for more closes on EOF
        return responses(read_until_closed(sock))


DEEP = 20_000  # far past the parser's recursion limit, within the 64 KiB body limit


def test_deeply_nested_json_is_a_400_with_the_reason(server: ReceiverServer, ledger: Ledger) -> None:
    status, answer = post(server, None, raw=b'{"version": "4", "alerts": ' + b"[" * DEEP + b"]" * DEEP + b"}")
    assert status == 400 and answer["problems"] == ["body is not JSON we accept: nested too deeply"]
    # Nested less deeply than the parser's limit: that alert alone is refused.
    deep_labels: Any = "x"
    for _ in range(500):
        deep_labels = [deep_labels]
    nested = alert()
    nested["labels"] = deep_labels
    status, answer = post(server, payload(nested, alert("KubeHpaMaxedOut")))
    assert status == 400 and answer["problems"] == ["alerts[0].labels: Input should be a valid dictionary"]
    assert [i.alert.name for i in ledger.incidents()] == ["KubeHpaMaxedOut"]


def test_lone_surrogates_are_a_400_with_the_reason_and_siblings_are_stored(server: ReceiverServer,
                                                                          ledger: Ledger) -> None:
    in_value = alert(pod="cart-\ud800")
    in_name = alert("ServiceLatencyHigh")
    in_name["labels"]["\udfff"] = "x"
    in_annotation = alert("CPUThrottlingHigh")
    in_annotation["annotations"] = {"summary": "\udc80"}
    # json.dumps writes them as \ud800 escapes, as a hostile sender would.
    status, answer = post(server, payload(in_value, in_name, in_annotation, alert("KubeHpaMaxedOut")))
    assert status == 400
    assert answer["problems"] == [
        "alerts[0].labels: 'pod': not valid Unicode: lone surrogate '\\ud800' at position 5",
        "alerts[1].labels: not valid Unicode: lone surrogate '\\udfff' at position 0",
        "alerts[2].annotations: 'summary': not valid Unicode: lone surrogate '\\udc80' at position 0",
    ]
    assert answer["stored"]["received"] == 1
    assert [i.alert.name for i in ledger.incidents()] == ["KubeHpaMaxedOut"]
    envelope = payload(alert())
    envelope["groupKey"] = "\ud83d"
    status, answer = post(server, envelope)
    assert status == 400 and answer["problems"] == ["groupKey: not valid Unicode: lone surrogate '\\ud83d' at "
                                                    "position 0"]


def test_a_bad_alert_never_costs_an_innocent_concurrent_request(server: ReceiverServer, ledger: Ledger) -> None:
    """The red team's run: hostile payloads among 180 innocent concurrent ones; every innocent one is a 200.

    The senders behave as Alertmanager does: a 503 (the worker pool is full) or a connection the
    full server closed is retried. That is load, not a sibling's fault; no answer is ever a 500.
    """
    statuses: dict[str, list[int]] = {"innocent": [], "hostile": []}
    every: list[int] = []
    lock = threading.Lock()

    def send(kind: str, i: int) -> None:
        if kind == "innocent":
            body = payload(alert(pod=f"cart-{i}"))
        else:
            body = payload(alert(pod=f"evil-{i}\ud800"), alert("KubeHpaMaxedOut", pod=f"sibling-{i}"))
        status = 0
        for attempt in range(40):
            try:
                status, _ = post(server, body)
            except (OSError, http.client.HTTPException):  # refused or reset while the pool was full
                status = 0
            with lock:
                every.append(status)
            if status not in (0, 503):
                break
            time.sleep(0.02 * (attempt + 1))
        with lock:
            statuses[kind].append(status)

    jobs = [("innocent", i) for i in range(180)] + [("hostile", i) for i in range(20)]
    threads = [threading.Thread(target=send, args=job) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses["innocent"] == [200] * 180
    assert statuses["hostile"] == [400] * 20
    assert 500 not in every
    names = [i.alert.name for i in ledger.incidents(limit=1000)]
    assert ledger.alert_counts()["alerts"] == 200  # the innocent ones and every valid sibling
    assert names.count("KubeHpaMaxedOut") == 10 and "KubePodCrashLooping" in names  # siblings: per-source cap


def test_an_unstorable_alert_is_rolled_back_alone_in_a_shared_commit(server: ReceiverServer, ledger: Ledger) -> None:
    """An alert the store refuses (text SQLite cannot encode) in the same transaction as innocent requests.

    Parsing refuses such text already, so it reaches the writer directly here; the ledger's lock is
    held meanwhile, so the writer's next transaction is certain to hold it and the HTTP requests.
    """
    writer = server.receiver.writer
    good = parse_payload(payload(alert(pod="cart-first")))
    bad = [ReceivedAlert(Alert("Bad\ud800", {"alertname": "Bad", "namespace": "shop"}, starts_at=1000.0,
                               fingerprint="bad"))] + parse_payload(payload(alert(pod="cart-sibling")))
    statuses: list[int] = []

    def send(i: int) -> None:
        statuses.append(post(server, payload(alert(pod=f"cart-{i}")))[0])

    threads = [threading.Thread(target=send, args=(i,)) for i in range(8)]
    with ledger._lock:
        first = writer.submit(good)  # the writer takes it and waits for the lock
        deadline = time.monotonic() + 10
        while writer._queue.qsize() and time.monotonic() < deadline:
            time.sleep(0.01)
        shared = writer.submit(bad)
        for t in threads:
            t.start()
        while writer._queue.qsize() < 9 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert writer._queue.qsize() == 9  # one transaction will hold all of them
    for t in threads:
        t.join()
    commits = writer.commits
    refused, sibling = shared.result(timeout=10)
    assert first.result(timeout=10)[0].error is None
    assert refused.error is not None and "UnicodeEncodeError" in refused.error and refused.incident_id is None
    assert sibling.error is None and sibling.new
    assert statuses == [200] * 8
    assert commits == 2  # the shared transaction committed: no retry, nothing of the bad alert kept
    assert ledger.alert_counts()["alerts"] == 10


@pytest.mark.parametrize(("length", "status", "message"), [
    ("-1", 400, "Content-Length must be one non-negative decimal integer, not '-1'"),
    ("+12", 400, "not '+12'"),
    ("1_0", 400, "not '1_0'"),
    ("0x10", 400, "not '0x10'"),
    ("268435456", 413, "body of 268435456 bytes exceeds the limit of 65536"),
    ("9" * 5000, 413, "exceeds the limit of 65536"),
])
def test_unusable_content_length_is_refused_before_the_body(server: ReceiverServer, ledger: Ledger, length: str,
                                                            status: int, message: str) -> None:
    """The reply comes while the declared 256 MiB body is still unsent: the server reads none of it."""
    with socket.create_connection(address(server), timeout=10) as sock:
        sock.sendall(request_bytes("POST", "/alerts", length=length, headers={"Content-Type": "application/json"}))
        sock.sendall(b"[" * 65536)  # the start of a body that never ends
        [(got, headers, body)] = responses(read_until_closed(sock))
    assert got == status and message in json.loads(body)["error"] and headers["connection"] == "close"
    assert ledger.alert_counts()["alerts"] == 0


def test_missing_chunked_or_conflicting_lengths_are_refused(server: ReceiverServer) -> None:
    body = json.dumps(payload(alert())).encode()
    no_length = b"POST /alerts HTTP/1.1\r\nHost: r\r\nAuthorization: Bearer " + TOKEN.encode() + b"\r\n\r\n" + body
    [(status, _, answer)] = exchange(server, no_length)
    assert status == 411 and json.loads(answer)["error"] == "Content-Length is required"
    chunked = request_bytes("POST", "/alerts", f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n",
                            headers={"Transfer-Encoding": "chunked"})
    [(status, _, answer)] = exchange(server, chunked)
    assert status == 411 and "Transfer-Encoding is not accepted" in json.loads(answer)["error"]
    twice = request_bytes("POST", "/alerts", body, headers={"Content-Length": "5"})
    [(status, _, answer)] = exchange(server, twice)
    assert status == 400 and "not " in json.loads(answer)["error"]


def test_expect_100_continue_is_answered_only_when_the_body_is_wanted(server: ReceiverServer) -> None:
    with socket.create_connection(address(server), timeout=10) as sock:
        sock.sendall(request_bytes("POST", "/alerts", length="999999999", headers={"Expect": "100-continue"}))
        [(status, _, _)] = responses(read_until_closed(sock))
    assert status == 413  # no "100 Continue" first: the client never sends the body
    body = json.dumps(payload(alert())).encode()
    with socket.create_connection(address(server), timeout=10) as sock:
        sock.sendall(request_bytes("POST", "/alerts", length=str(len(body)), headers={"Expect": "100-continue",
                                                                                      "Connection": "close"}))
        interim = sock.recv(65536)
        assert interim.startswith(b"HTTP/1.1 100 ")
        sock.sendall(body)
        [(status, _, _)] = responses(read_until_closed(sock))
    assert status == 200


def test_the_body_of_a_refused_request_is_never_parsed_as_a_request(server: ReceiverServer, ledger: Ledger) -> None:
    smuggled = request_bytes("POST", "/alerts", json.dumps(payload(alert("Smuggled"))).encode())
    for outer in (request_bytes("POST", "/nope", smuggled),  # 404
                  request_bytes("POST", "/alerts", smuggled, token="wrong"),  # 401
                  request_bytes("GET", "/healthz", smuggled),  # served, body unread
                  request_bytes("GET", "/nope", smuggled)):
        got = exchange(server, outer)
        assert len(got) == 1, got  # one request, one answer, then the connection closes
        assert got[0][0] in (404, 401, 200) and got[0][1]["connection"] == "close"
    assert ledger.alert_counts()["alerts"] == 0
    # Keep-alive still works where the body was read: two pipelined requests, two answers.
    one, two = (request_bytes("POST", "/alerts", json.dumps(payload(alert(pod=f"p{i}"))).encode()) for i in (1, 2))
    assert [r[0] for r in exchange(server, one + two)] == [200, 200]


def test_idle_and_slow_clients_cost_no_threads_and_get_an_answer_or_a_close(ledger: Ledger) -> None:
    srv = ReceiverServer(Receiver(ledger, bearer_token=TOKEN), "127.0.0.1", 0, workers=4, backlog=4,
                         idle_timeout_s=0.5, request_timeout_s=1.5)
    with srv:
        threads = threading.active_count()
        idle = [socket.create_connection(address(srv), timeout=10) for _ in range(60)]
        assert threading.active_count() == threads  # ThreadingHTTPServer had one thread per connection
        outcomes: Counter[int | str] = Counter()
        for sock in idle:
            got = responses(read_until_closed(sock))
            outcomes[got[0][0] if got else "closed idle"] += 1
            sock.close()
        assert set(outcomes) <= {503, "closed idle"} and outcomes[503] > 0, outcomes

        def trickle(sock: socket.socket) -> None:  # slowloris: one byte of headers every 0.1 s, forever
            try:
                sock.sendall(b"POST /alerts HTTP/1.1\r\n")
                while True:
                    sock.sendall(b"X")
                    time.sleep(0.1)
            except OSError:
                return

        with socket.create_connection(address(srv), timeout=10) as slow:
            sender = threading.Thread(target=trickle, args=(slow,))
            sender.start()
            [(status, _, body)] = responses(read_until_closed(slow))
            sender.join()
        assert status == 408 and "not received in time" in json.loads(body)["error"]
        with socket.create_connection(address(srv), timeout=10) as partial:  # half a body, then silence
            partial.sendall(request_bytes("POST", "/alerts", b'{"version"', length="100"))
            [(status, _, _)] = responses(read_until_closed(partial))
        assert status == 408
        assert post(srv, payload(alert()))[0] == 200  # and the receiver is fine
        assert srv.receiver.stats.timeouts >= 2 and srv.receiver.stats.refused == outcomes[503]
    assert ledger.alert_counts()["alerts"] == 1


def test_deduplication_uses_the_fingerprint_of_the_labels_not_the_senders(server: ReceiverServer,
                                                                         ledger: Ledger) -> None:
    shop = alert(namespace="shop", deployment="cart")
    billing = alert(namespace="billing", deployment="invoice")
    billing["fingerprint"] = shop["fingerprint"]  # claims to be the shop alert again
    status, body = post(server, payload(shop, billing))
    assert status == 200 and (body["new"], body["duplicates"]) == (2, 0)
    incidents = ledger.incidents()
    assert {dict(i.alert.labels)["namespace"] for i in incidents} == {"shop", "billing"}
    assert all(i.fingerprint == fingerprint(dict(i.alert.labels)) for i in incidents)
    forged = alert(namespace="shop", deployment="cart")
    forged["fingerprint"] = "0000000000000000"  # a wrong fingerprint does not make a re-send new either
    status, body = post(server, payload(forged))
    assert status == 200 and (body["new"], body["duplicates"]) == (0, 1)


def flood(n: int, *, namespace: str = "load", vary: str = "pod") -> dict[str, Any]:
    return payload(*[alert("KubePodCrashLooping", namespace=namespace, deployment=f"app-{i % 25}"
                           if vary == "deployment" else "app", pod=f"app-{i:05d}") for i in range(n)])


@pytest.fixture
def roomy(ledger: Ledger) -> Iterator[ReceiverServer]:
    with ReceiverServer(Receiver(ledger, bearer_token=TOKEN), "127.0.0.1", 0) as srv:  # the default 1 MiB limit
        yield srv


def offline_loop(ledger: Ledger) -> Loop:
    """The real loop, observing from the alerts' labels alone (no cluster needed to pick the order)."""
    return Loop(ledger, make_observer(None), CatalogProposer(), RulesRanker(), GuardPolicy(), None)


def test_a_flood_from_one_source_opens_few_incidents_and_a_real_one_goes_first(roomy: ReceiverServer,
                                                                              ledger: Ledger) -> None:
    status, body = post(roomy, flood(2000))
    assert status == 200 and body["received"] == 2000 and body["held"] == 2000 - MAX_OPEN_PER_SOURCE
    assert ledger.alert_counts() == {"alerts": 2000, "received": 2000, "incidents": MAX_OPEN_PER_SOURCE}
    status, body = post(roomy, payload(alert("KubeDeploymentReplicasMismatch", namespace="shop", deployment="cart")))
    [real] = body["incidents"]
    status, body = post(roomy, payload(alert("KubePodCrashLooping", namespace="load", deployment="web")))
    [neighbour] = body["incidents"]  # same namespace and alert, another workload: a source of its own
    reports = offline_loop(ledger).tick(time.time() + 1)
    first_round = [r.incident_id for r in reports[:3]]
    assert real in first_round and neighbour in first_round, [r.incident_id for r in reports]


def test_a_held_alert_opens_its_incident_when_its_source_has_room(roomy: ReceiverServer, ledger: Ledger) -> None:
    post(roomy, flood(30))
    opened = [i.id for i in ledger.incidents(status="open")]
    assert len(opened) == MAX_OPEN_PER_SOURCE
    for incident_id in opened:
        ledger.update_incident(incident_id, status="recovered")
    status, body = post(roomy, flood(30))  # Alertmanager's next re-send of the group
    assert status == 200 and (body["new"], body["duplicates"], body["held"]) == (0, 30, 30 - 2 * MAX_OPEN_PER_SOURCE)
    assert len(ledger.incidents(status="open")) == MAX_OPEN_PER_SOURCE
    assert ledger.alert_counts() == {"alerts": 30, "received": 60, "incidents": 2 * MAX_OPEN_PER_SOURCE}


def test_a_namespace_has_a_cap_too(roomy: ReceiverServer, ledger: Ledger) -> None:
    many = payload(*[alert("KubeDeploymentReplicasMismatch", namespace="load", deployment=f"app-{i}")
                     for i in range(MAX_OPEN_PER_NAMESPACE + 50)])
    status, body = post(roomy, many)
    assert status == 200 and body["held"] == 50
    assert len(ledger.incidents(limit=1000, status="open")) == MAX_OPEN_PER_NAMESPACE


def test_default_listens_on_loopback_and_elsewhere_only_with_a_token(tmp_path: Path, ledger: Ledger,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    assert ListenSettings().host == "127.0.0.1"
    monkeypatch.delenv("REMEDIATOR_WEBHOOK_TOKEN", raising=False)
    config = tmp_path / "remediator.yaml"
    config.write_text("store: agent.db\nlisten: {host: 0.0.0.0, port: 0}\n")
    with pytest.raises(ConfigError) as e:
        load_config(config, env={})
    assert ("listen.bearer_token: Value error, listening on '0.0.0.0' (not loopback) needs a bearer token"
            in str(e.value))
    assert load_config(config, env={"REMEDIATOR_WEBHOOK_TOKEN": "t"}).listen.host == "0.0.0.0"
    result = CliRunner().invoke(app, ["run", "--config", str(config)])
    assert result.exit_code == 2 and "needs a bearer token" in result.stderr
    assert not (tmp_path / "agent.db").exists()  # refused before anything started
    with pytest.raises(ValueError, match="refusing to listen on '0.0.0.0' without a bearer token"):
        ReceiverServer(Receiver(ledger), "0.0.0.0", 0)
