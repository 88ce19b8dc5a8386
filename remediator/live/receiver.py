"""The Alertmanager webhook receiver: every alert on disk before Alertmanager hears 200.

Alertmanager (webhook_config, payload version 4) POSTs groups of alerts, firing and
resolved, and retries on 5xx and network errors. The receiver therefore:

* checks the optional bearer token (constant-time) and the body size (`Content-Length`
  required, larger than `max_body_bytes` is a 413 without reading it);
* validates the payload with pydantic; an envelope that is not a v4 webhook is a 400 naming
  what is wrong. Alerts are validated one by one: the valid alerts of a payload are stored
  and the 400 names the invalid ones, so one bad alert loses nothing else;
* persists the alerts through a group-commit writer (one SQLite transaction, one fsync, for
  all requests that arrived meanwhile) and answers 200 only after the commit; a storage
  failure is a 500, which Alertmanager retries;
* deduplicates by (fingerprint, startsAt): Alertmanager re-sends a group on every change and
  every `repeat_interval`; a duplicate only bumps a counter. A resolved alert closes its
  incident (cancelled when nothing was done yet).

`Receiver.handle()` is the whole behaviour without sockets; `ReceiverServer` serves it (and
`/healthz`, `/readyz`, `/metrics`) from a threaded HTTP server on `listen.host:port`.
"""

from __future__ import annotations

import hmac
import json
import queue
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from remediator.live.ledger import AlertReceipt, Ledger, ReceivedAlert
from remediator.snapshot import Alert

__all__ = ["ALERTS_PATH", "PayloadError", "Receiver", "ReceiverServer", "Response", "fingerprint",
           "parse_payload"]

ALERTS_PATH = "/alerts"
_FNV_OFFSET, _FNV_PRIME = 14695981039346656037, 1099511628211
_SEPARATOR = 0xFF


def fingerprint(labels: Mapping[str, str]) -> str:
    """Alertmanager's fingerprint of a label set (FNV-1a 64 over sorted names and values).

    Used when a payload carries no `fingerprint` (older senders); it equals the one
    Alertmanager computes, so both kinds of payload deduplicate against each other.
    """
    h = _FNV_OFFSET
    for name in sorted(labels):
        for part in (name, labels[name]):
            for byte in part.encode():
                h = ((h ^ byte) * _FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
            h = ((h ^ _SEPARATOR) * _FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


# ---------------------------------------------------------------------------- payload


class _AlertModel(BaseModel):
    model_config = ConfigDict(extra="ignore")
    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = {}
    startsAt: datetime  # noqa: N815 - Alertmanager's field names
    endsAt: datetime | None = None  # noqa: N815
    generatorURL: str = ""  # noqa: N815
    fingerprint: str = ""

    @field_validator("labels")
    @classmethod
    def _named(cls, labels: dict[str, str]) -> dict[str, str]:
        if not labels.get("alertname"):
            raise ValueError("an alert needs an 'alertname' label")
        return labels


class _Envelope(BaseModel):
    model_config = ConfigDict(extra="ignore")
    version: str
    status: Literal["firing", "resolved"] = "firing"
    groupKey: str = ""  # noqa: N815
    receiver: str = ""
    truncatedAlerts: int = 0  # noqa: N815
    alerts: list[Any] = Field(min_length=1)

    @field_validator("version")
    @classmethod
    def _v4(cls, value: str) -> str:
        if value != "4":
            raise ValueError(f"version {value!r} is not supported; Alertmanager sends version 4")
        return value


class PayloadError(ValueError):
    """A webhook payload that is not a valid Alertmanager v4 payload; `problems` name each fault."""

    def __init__(self, problems: Sequence[str], valid: Sequence[ReceivedAlert] = ()) -> None:
        self.problems = list(problems)
        self.valid = list(valid)
        super().__init__("; ".join(self.problems))


def _where(loc: Sequence[Any], prefix: str = "") -> str:
    out = prefix
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "payload"


def _problems(e: ValidationError, prefix: str = "") -> list[str]:
    return [f"{_where(err['loc'], prefix)}: {err['msg'].removeprefix('Value error, ')}" for err in e.errors()]


def _epoch(t: datetime | None) -> float | None:
    if t is None or t.year < 1970:  # Alertmanager sends 0001-01-01 for "no end yet"
        return None
    return t.timestamp()


def parse_payload(body: bytes | str | Any) -> list[ReceivedAlert]:
    """The alerts of an Alertmanager v4 webhook body (bytes, text or parsed JSON).

    Raises `PayloadError`: its `problems` name every fault by path (`alerts[2].labels:
    an alert needs an 'alertname' label`) and its `valid` holds the alerts that were fine.
    """
    if isinstance(body, (bytes, str)):
        try:
            doc = json.loads(body)
        except (ValueError, UnicodeDecodeError) as e:
            raise PayloadError([f"body is not JSON: {e}"]) from None
    else:
        doc = body
    if not isinstance(doc, dict):
        raise PayloadError([f"payload must be a JSON object with 'version' and 'alerts', not {type(doc).__name__}"])
    try:
        env = _Envelope.model_validate(doc)
    except ValidationError as e:
        raise PayloadError(_problems(e)) from None
    valid: list[ReceivedAlert] = []
    problems: list[str] = []
    for i, raw in enumerate(env.alerts):
        try:
            a = _AlertModel.model_validate(raw)
        except ValidationError as e:
            problems += _problems(e, f"alerts[{i}]")
            continue
        starts = _epoch(a.startsAt)
        if starts is None:
            problems.append(f"alerts[{i}].startsAt: {a.startsAt.isoformat()} is before 1970")
            continue
        alert = Alert(name=a.labels["alertname"], labels=a.labels, annotations=a.annotations, starts_at=starts,
                      status=a.status, fingerprint=a.fingerprint or fingerprint(a.labels))
        valid.append(ReceivedAlert(alert, _epoch(a.endsAt), a.generatorURL, env.groupKey))
    if problems:
        raise PayloadError(problems, valid)
    return valid


# ---------------------------------------------------------------------------- group commit


class AlertWriter:
    """Persists batches of alerts from many request threads in shared transactions.

    Each `submit` returns a Future that resolves to the receipts once the transaction that
    holds its alerts has committed. Requests that arrive while a commit is on disk join the
    next transaction, so throughput grows with concurrency while each reply still waits for
    its own data to be durable.
    """

    def __init__(self, ledger: Ledger, *, max_batch: int = 512) -> None:
        self.ledger = ledger
        self.max_batch = max_batch
        self._queue: queue.Queue[tuple[list[ReceivedAlert], Future[list[AlertReceipt]]] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="alert-writer", daemon=True)
        self.commits = 0
        self._thread.start()

    def submit(self, alerts: list[ReceivedAlert]) -> Future[list[AlertReceipt]]:
        fut: Future[list[AlertReceipt]] = Future()
        self._queue.put((alerts, fut))
        return fut

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while sum(len(a) for a, _ in batch) < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            self._commit(batch)
            if stop:
                return

    def _commit(self, batch: list[tuple[list[ReceivedAlert], Future[list[AlertReceipt]]]]) -> None:
        alerts = [a for items, _ in batch for a in items]
        try:
            receipts = self.ledger.record_alerts(alerts)
        except Exception as e:  # noqa: BLE001 - every waiting request must hear about it
            for _, fut in batch:
                fut.set_exception(e)
            return
        self.commits += 1
        start = 0
        for items, fut in batch:
            fut.set_result(receipts[start:start + len(items)])
            start += len(items)


# ---------------------------------------------------------------------------- the receiver


@dataclass(frozen=True)
class Response:
    status: int
    body: dict[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass
class ReceiverStats:
    requests: int = 0
    alerts: int = 0
    new: int = 0
    duplicates: int = 0
    resolved: int = 0
    rejected: int = 0
    unauthorized: int = 0
    too_large: int = 0
    errors: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts: int) -> None:
        with self.lock:
            for k, v in counts.items():
                setattr(self, k, getattr(self, k) + v)


class Receiver:
    """The webhook endpoint's behaviour: authenticate, validate, persist, answer.

    `on_alerts` is called with the receipts after they are durable (the loop wakes up on it).
    """

    def __init__(self, ledger: Ledger, *, bearer_token: str | None = None, max_body_bytes: int = 1 << 20,
                 on_alerts: Callable[[list[AlertReceipt]], None] | None = None, commit_timeout_s: float = 30.0
                 ) -> None:
        self.ledger = ledger
        self.bearer_token = bearer_token
        self.max_body_bytes = max_body_bytes
        self.on_alerts = on_alerts
        self.commit_timeout_s = commit_timeout_s
        self.writer = AlertWriter(ledger)
        self.stats = ReceiverStats()

    def close(self) -> None:
        self.writer.close()

    def authorized(self, headers: Mapping[str, str]) -> bool:
        if not self.bearer_token:
            return True
        given = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
        scheme, _, token = given.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), self.bearer_token.encode())

    def check_size(self, length: int | None) -> Response | None:
        if length is None:
            return Response(411, {"error": "Content-Length is required"})
        if length > self.max_body_bytes:
            self.stats.add(too_large=1)
            return Response(413, {"error": f"body of {length} bytes exceeds the limit of {self.max_body_bytes}"})
        return None

    def handle_alerts(self, headers: Mapping[str, str], body: bytes) -> Response:
        """POST /alerts with the request's headers and body."""
        self.stats.add(requests=1)
        if not self.authorized(headers):
            self.stats.add(unauthorized=1)
            return Response(401, {"error": "a valid bearer token is required"}, {"WWW-Authenticate": "Bearer"})
        too_big = self.check_size(len(body))
        if too_big is not None:
            return too_big
        try:
            alerts = parse_payload(body)
            problems: list[str] = []
        except PayloadError as e:
            alerts, problems = e.valid, e.problems
        receipts: list[AlertReceipt] = []
        if alerts:
            try:
                receipts = self.writer.submit(alerts).result(timeout=self.commit_timeout_s)
            except Exception as e:  # noqa: BLE001 - storage trouble is the server's fault: 500, AM retries
                self.stats.add(errors=1)
                return Response(500, {"error": f"could not persist the alerts: {e}"})
            if self.on_alerts is not None:
                self.on_alerts(receipts)
        new = sum(r.new for r in receipts)
        resolved = sum(r.status == "resolved" for r in receipts)
        summary = {
            "received": len(receipts),
            "new": new,
            "duplicates": len(receipts) - new,
            "resolved": resolved,
            "incidents": sorted({r.incident_id for r in receipts if r.incident_id is not None}),
        }
        self.stats.add(alerts=len(receipts), new=new, duplicates=len(receipts) - new, resolved=resolved)
        if problems:
            self.stats.add(rejected=1)
            return Response(400, {"error": "malformed Alertmanager payload", "problems": problems,
                                  "stored": summary})
        return Response(200, {"status": "ok", **summary})

    def metrics_text(self) -> str:
        s = self.stats
        lines = []
        for name, value, help_ in (
            ("requests", s.requests, "webhook requests received"),
            ("alerts", s.alerts, "alerts persisted (new and duplicates)"),
            ("alerts_new", s.new, "alerts seen for the first time"),
            ("alerts_duplicate", s.duplicates, "alerts merged into an earlier one"),
            ("alerts_resolved", s.resolved, "resolved notifications"),
            ("rejected", s.rejected, "requests answered 400"),
            ("unauthorized", s.unauthorized, "requests answered 401"),
            ("too_large", s.too_large, "requests answered 413"),
            ("errors", s.errors, "requests answered 500"),
            ("commits", self.writer.commits, "ledger transactions of the group-commit writer"),
        ):
            metric = f"remediator_receiver_{name}_total"
            lines += [f"# HELP {metric} {help_}", f"# TYPE {metric} counter", f"{metric} {value}"]
        return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------- HTTP


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body leave in one segment (buffered writes, flushed per request) and without
    # Nagle: otherwise the body waits for the client's delayed ACK, 40 ms a request.
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True
    server: ReceiverServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def _send(self, resp: Response, *, close: bool = False) -> None:
        data = json.dumps(resp.body).encode()
        self.send_response(resp.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in resp.headers.items():
            self.send_header(k, v)
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(data)

    def _send_text(self, status: int, text: str, content_type: str = "text/plain; version=0.0.4") -> None:
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            self._send_text(200, "ok\n", "text/plain")
        elif path == "/readyz":
            ok = self.server.ready()
            self._send_text(200 if ok else 503, "ready\n" if ok else "not ready\n", "text/plain")
        elif path == "/metrics":
            self._send_text(200, self.server.receiver.metrics_text())
        else:
            self._send(Response(404, {"error": f"no such endpoint: GET {path}"}))

    def do_POST(self) -> None:  # noqa: N802
        path = self.path.split("?", 1)[0]
        receiver = self.server.receiver
        length_text = self.headers.get("Content-Length")
        try:
            length = int(length_text) if length_text is not None else None
        except ValueError:
            length = None
        if path not in self.server.alert_paths:
            self._send(Response(404, {"error": f"no such endpoint: POST {path}"}), close=length is None)
            return
        if not receiver.authorized(dict(self.headers.items())):
            receiver.stats.add(requests=1, unauthorized=1)
            self._send(Response(401, {"error": "a valid bearer token is required"}, {"WWW-Authenticate": "Bearer"}),
                       close=True)
            return
        refused = receiver.check_size(length)
        if refused is not None:
            receiver.stats.add(requests=1)
            self._send(refused, close=True)  # the body is never read: drop the connection
            return
        assert length is not None
        body = self.rfile.read(length)
        self._send(receiver.handle_alerts(dict(self.headers.items()), body))


class ReceiverServer(ThreadingHTTPServer):
    """The receiver on a threaded HTTP server. `extra_ready` may veto readiness (e.g. the loop died)."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, receiver: Receiver, host: str = "0.0.0.0", port: int = 8080, *,
                 alert_paths: Sequence[str] = (ALERTS_PATH, "/api/v1/alerts", "/"),
                 extra_ready: Callable[[], bool] | None = None) -> None:
        self.receiver = receiver
        self.alert_paths = tuple(alert_paths)
        self._extra_ready = extra_ready
        super().__init__((host, port), _Handler)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def ready(self) -> bool:
        try:
            self.receiver.ledger.schema_version()
        except Exception:  # noqa: BLE001
            return False
        return self._extra_ready() if self._extra_ready is not None else True

    def start(self) -> ReceiverServer:
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="receiver", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self.receiver.close()

    def __enter__(self) -> ReceiverServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

