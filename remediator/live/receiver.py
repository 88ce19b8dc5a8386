"""The Alertmanager webhook receiver: every alert on disk before Alertmanager hears 200.

Alertmanager (webhook_config, payload version 4) POSTs groups of alerts, firing and
resolved, and retries on 5xx and network errors. The receiver therefore:

* checks the optional bearer token (constant-time) and the framing before it reads a byte
  of the body: `Content-Length` is required (411; `Transfer-Encoding` too is a 411), must be
  one non-negative decimal integer (400), and larger than `max_body_bytes` is a 413. A
  request refused this way closes its connection, so an unread body is never parsed as the
  next request (request smuggling);
* validates the payload with pydantic; an envelope that is not a v4 webhook, a body nested
  too deeply, or text that is not valid Unicode (a lone surrogate) is a 400 naming what is
  wrong. Alerts are validated one by one: the valid alerts of a payload are stored and the
  400 names the invalid ones, so one bad alert loses nothing else;
* persists the alerts through a group-commit writer (one SQLite transaction, one fsync, for
  all requests that arrived meanwhile) and answers 200 only after the commit. An alert the
  store refuses is rolled back alone (a 400 for its own request); a storage failure is a
  500, which Alertmanager retries, and never reaches a request whose alerts were fine;
* deduplicates by (fingerprint, startsAt), where the fingerprint is always the one computed
  here from the labels (Alertmanager's FNV-1a): a sender's own `fingerprint` is ignored, so
  one alert cannot pass itself off as another's duplicate. Alertmanager re-sends a group on
  every change and every `repeat_interval`; a duplicate only bumps a counter. A resolved
  alert closes its incident (cancelled when nothing was done yet);
* caps the open incidents per source and namespace (`remediator.live.ledger`): beyond the
  cap an alert is stored and acknowledged but `held`, opening its incident at a re-send
  once there is room, so a flood from one rule cannot bury a fresh incident elsewhere.

`Receiver.handle_alerts()` is the behaviour without sockets; `ReceiverServer` serves it (and
`/healthz`, `/readyz`, `/metrics`) on `listen.host:port` from a bounded pool of worker
threads, with idle, per-request and write timeouts; when every worker is busy and the
queue is full, a connection gets a 503 at once rather than a thread.
"""

from __future__ import annotations

import hmac
import io
import json
import logging
import queue
import re
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from remediator.live.config import is_loopback
from remediator.live.ledger import AlertReceipt, Ledger, ReceivedAlert
from remediator.snapshot import Alert

__all__ = ["ALERTS_PATH", "PayloadError", "Receiver", "ReceiverServer", "Response", "fingerprint",
           "parse_payload"]

log = logging.getLogger("remediator.live")

ALERTS_PATH = "/alerts"
_FNV_OFFSET, _FNV_PRIME = 14695981039346656037, 1099511628211
_SEPARATOR = 0xFF
_MAX_PROBLEMS = 20  # a reply names this many faults at most: a payload of 10,000 bad alerts gets a short answer
_DIGITS = re.compile(r"[0-9]+")


def fingerprint(labels: Mapping[str, str]) -> str:
    """Alertmanager's fingerprint of a label set (FNV-1a 64 over sorted names and values).

    The receiver keys deduplication on it whatever the payload says: it equals the one
    Alertmanager computes, so honest senders lose nothing, and a dishonest one cannot
    make its alert a duplicate of another's.
    """
    h = _FNV_OFFSET
    for name in sorted(labels):
        for part in (name, labels[name]):
            for byte in part.encode("utf-8", "surrogatepass"):  # never raises: parsing refuses such text
                h = ((h ^ byte) * _FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
            h = ((h ^ _SEPARATOR) * _FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


# ---------------------------------------------------------------------------- payload


def _unicode(text: str) -> str:
    """`text` if it is valid Unicode; JSON's \\ud800 escapes decode to lone surrogates, which no store takes."""
    try:
        text.encode()
    except UnicodeEncodeError as e:
        raise ValueError(f"not valid Unicode: lone surrogate {text[e.start]!a} at position {e.start}") from None
    return text


class _AlertModel(BaseModel):
    model_config = ConfigDict(extra="ignore")
    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = {}
    startsAt: datetime  # noqa: N815 - Alertmanager's field names
    endsAt: datetime | None = None  # noqa: N815
    generatorURL: str = ""  # noqa: N815

    @field_validator("labels")
    @classmethod
    def _named(cls, labels: dict[str, str]) -> dict[str, str]:
        if not labels.get("alertname"):
            raise ValueError("an alert needs an 'alertname' label")
        return labels

    @field_validator("labels", "annotations")
    @classmethod
    def _text(cls, values: dict[str, str]) -> dict[str, str]:
        for name, value in values.items():
            _unicode(name)
            try:
                _unicode(value)
            except ValueError as e:
                raise ValueError(f"{name!a}: {e}") from None
        return values

    @field_validator("generatorURL")
    @classmethod
    def _url(cls, value: str) -> str:
        return _unicode(value)


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

    @field_validator("groupKey", "receiver")
    @classmethod
    def _text(cls, value: str) -> str:
        return _unicode(value)


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


def _parse(body: bytes | str | Any) -> tuple[list[tuple[int, ReceivedAlert]], list[str]]:
    """The valid alerts with their positions in the payload, and the problems of the others."""
    if isinstance(body, (bytes, str)):
        try:
            doc = json.loads(body)
        except RecursionError:
            raise PayloadError(["body is not JSON we accept: nested too deeply"]) from None
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
    valid: list[tuple[int, ReceivedAlert]] = []
    problems: list[str] = []
    for i, raw in enumerate(env.alerts):
        try:
            a = _AlertModel.model_validate(raw)
        except ValidationError as e:
            problems += _problems(e, f"alerts[{i}]")
            continue
        try:
            starts, ends = _epoch(a.startsAt), _epoch(a.endsAt)
        except (ValueError, OverflowError) as e:  # a time that validates yet has no epoch
            problems.append(f"alerts[{i}]: its times cannot be used: {e}")
            continue
        if starts is None:
            problems.append(f"alerts[{i}].startsAt: {a.startsAt.isoformat()} is before 1970")
            continue
        alert = Alert(name=a.labels["alertname"], labels=a.labels, annotations=a.annotations, starts_at=starts,
                      status=a.status, fingerprint=fingerprint(a.labels))
        valid.append((i, ReceivedAlert(alert, ends, a.generatorURL, env.groupKey)))
    return valid, problems


def parse_payload(body: bytes | str | Any) -> list[ReceivedAlert]:
    """The alerts of an Alertmanager v4 webhook body (bytes, text or parsed JSON).

    Raises `PayloadError`: its `problems` name every fault by path (`alerts[2].labels:
    an alert needs an 'alertname' label`) and its `valid` holds the alerts that were fine.
    """
    valid, problems = _parse(body)
    alerts = [a for _, a in valid]
    if problems:
        raise PayloadError(problems, alerts)
    return alerts


# ---------------------------------------------------------------------------- group commit


_Job = tuple[list[ReceivedAlert], Future[list[AlertReceipt]]]


class AlertWriter:
    """Persists batches of alerts from many request threads in shared transactions.

    Each `submit` returns a Future that resolves to the receipts once the transaction that
    holds its alerts has committed. Requests that arrive while a commit is on disk join the
    next transaction, so throughput grows with concurrency while each reply still waits for
    its own data to be durable. When a shared transaction fails, each request's alerts are
    tried again in a transaction of their own: only a request that fails alone hears of it.
    """

    def __init__(self, ledger: Ledger, *, max_batch: int = 512) -> None:
        self.ledger = ledger
        self.max_batch = max_batch
        self._queue: queue.Queue[_Job | None] = queue.Queue()
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

    def _commit(self, batch: list[_Job]) -> None:
        alerts = [a for items, _ in batch for a in items]
        try:
            receipts = self.ledger.record_alerts(alerts)
        except Exception as e:  # noqa: BLE001 - every waiting request must hear about it
            if len(batch) == 1:
                batch[0][1].set_exception(e)
                return
            for job in batch:  # whose fault? each request alone: a sibling's trouble is not ours
                self._commit([job])
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
    held: int = 0
    rejected: int = 0
    unauthorized: int = 0
    too_large: int = 0
    refused: int = 0
    timeouts: int = 0
    errors: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts: int) -> None:
        with self.lock:
            for k, v in counts.items():
                setattr(self, k, getattr(self, k) + v)


def _capped(problems: list[str]) -> list[str]:
    if len(problems) <= _MAX_PROBLEMS:
        return problems
    return problems[:_MAX_PROBLEMS] + [f"... and {len(problems) - _MAX_PROBLEMS} more problems"]


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
            valid, problems = _parse(body)
        except PayloadError as e:
            valid, problems = [], e.problems
        except Exception as e:  # noqa: BLE001 - whatever the body did to the parser, the sender hears why
            valid, problems = [], [f"payload could not be parsed: {type(e).__name__}: {e}"]
        stored: list[AlertReceipt] = []
        if valid:
            try:
                receipts = self.writer.submit([a for _, a in valid]).result(timeout=self.commit_timeout_s)
            except Exception as e:  # noqa: BLE001 - storage trouble is the server's fault: 500, AM retries
                self.stats.add(errors=1)
                return Response(500, {"error": f"could not persist the alerts: {type(e).__name__}: {e}"})
            for (i, _), r in zip(valid, receipts):
                if r.error is not None:
                    problems.append(f"alerts[{i}]: could not be stored: {r.error}")
                else:
                    stored.append(r)
            if self.on_alerts is not None and stored:
                self.on_alerts(stored)
        summary = self._summary(stored)
        if problems:
            self.stats.add(rejected=1)
            return Response(400, {"error": "malformed Alertmanager payload", "problems": _capped(problems),
                                  "stored": summary})
        return Response(200, {"status": "ok", **summary})

    def _summary(self, receipts: list[AlertReceipt]) -> dict[str, Any]:
        new = sum(r.new for r in receipts)
        resolved = sum(r.status == "resolved" for r in receipts)
        held = sum(r.held for r in receipts)
        self.stats.add(alerts=len(receipts), new=new, duplicates=len(receipts) - new, resolved=resolved, held=held)
        return {
            "received": len(receipts),
            "new": new,
            "duplicates": len(receipts) - new,
            "resolved": resolved,
            "held": held,
            "incidents": sorted({r.incident_id for r in receipts if r.incident_id is not None}),
        }

    def metrics_text(self) -> str:
        s = self.stats
        lines = []
        for name, value, help_ in (
            ("requests", s.requests, "webhook requests received"),
            ("alerts", s.alerts, "alerts persisted (new and duplicates)"),
            ("alerts_new", s.new, "alerts seen for the first time"),
            ("alerts_duplicate", s.duplicates, "alerts merged into an earlier one"),
            ("alerts_resolved", s.resolved, "resolved notifications"),
            ("alerts_held", s.held, "alerts stored without an incident: their source was at its cap"),
            ("rejected", s.rejected, "requests answered 400"),
            ("unauthorized", s.unauthorized, "requests answered 401"),
            ("too_large", s.too_large, "requests answered 413"),
            ("refused", s.refused, "connections answered 503: every worker busy"),
            ("timeouts", s.timeouts, "requests that timed out (408 or closed)"),
            ("errors", s.errors, "requests answered 500"),
            ("commits", self.writer.commits, "ledger transactions of the group-commit writer"),
        ):
            metric = f"remediator_receiver_{name}_total"
            lines += [f"# HELP {metric} {help_}", f"# TYPE {metric} counter", f"{metric} {value}"]
        return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------- HTTP


class _DeadlineReader(io.RawIOBase):
    """The connection's input, each read bounded by the idle timeout and what is left of the request's time.

    A per-read timeout alone lets a client trickle one byte a second forever (slowloris).
    """

    def __init__(self, handler: _Handler) -> None:
        self._handler = handler

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        h = self._handler
        left = h.deadline - time.monotonic()
        if left <= 0:
            h.timed_out = True
            raise TimeoutError("the request took longer than its deadline")
        h.connection.settimeout(min(h.server.idle_timeout_s, left))
        try:
            n = int(h.connection.recv_into(buffer))
        except TimeoutError:
            h.timed_out = True
            raise
        h.received += n
        return n


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body leave in one segment (buffered writes, flushed per request) and without
    # Nagle: otherwise the body waits for the client's delayed ACK, 40 ms a request.
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True
    server: ReceiverServer
    deadline = 0.0
    received = 0
    timed_out = False
    responded = False

    def setup(self) -> None:
        super().setup()
        self.rfile.close()  # the plain reader has no deadline; closing it releases its hold on the socket
        self.rfile = io.BufferedReader(_DeadlineReader(self), 64 * 1024)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def handle_one_request(self) -> None:
        self.deadline = time.monotonic() + self.server.request_timeout_s
        self.received, self.timed_out, self.responded = 0, False, False
        self.raw_requestline = b""
        super().handle_one_request()  # a timeout ends there: it closes the connection
        if self.timed_out:
            self.server.receiver.stats.add(timeouts=1)
            if not self.responded and (self.received or self.raw_requestline):
                # Part of a request arrived: say why it goes unanswered. An idle connection just closes.
                try:
                    self._send(Response(408, {"error": "the request was not received in time"}), close=True)
                    self.wfile.flush()
                except OSError:
                    pass

    def handle_expect_100(self) -> bool:
        return True  # "100 Continue" only once the framing, path, token and size are fine (do_POST)

    def send_response(self, code: int, message: str | None = None) -> None:
        self.responded = True
        self.connection.settimeout(self.server.write_timeout_s)  # a client that never reads frees its worker
        super().send_response(code, message)

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

    def _send_text(self, status: int, text: str, content_type: str = "text/plain; version=0.0.4", *,
                   close: bool = False) -> None:
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(data)

    def _framing(self) -> tuple[int | None, Response | None]:
        """The body's declared length (None: none declared), or the answer refusing the request's framing."""
        if self.headers.get("Transfer-Encoding") is not None:
            return None, Response(411, {"error": "Transfer-Encoding is not accepted; send the body with a "
                                                 "Content-Length"})
        values = self.headers.get_all("Content-Length") or []
        if not values:
            return None, None
        texts = {v.strip() for v in values}
        text = next(iter(texts))
        if len(texts) != 1 or not _DIGITS.fullmatch(text):
            return None, Response(400, {"error": "Content-Length must be one non-negative decimal integer, not "
                                                 + ", ".join(repr(v) for v in values)})
        if len(text) > 18:  # more than any limit; int() of a long string would cost time (and may refuse)
            return self.server.receiver.max_body_bytes + 1, None
        return int(text), None

    def _safely(self, handle: Callable[[], None]) -> None:
        """Run `handle`; a bug still answers (500, connection closed) instead of dropping the connection."""
        try:
            handle()
        except OSError:
            raise  # the connection itself failed or timed out: nothing more can be said on it
        except Exception as e:  # noqa: BLE001 - the sender must hear a status whatever went wrong
            log.exception("receiver: %s %s failed", self.command, self.path)
            self.server.receiver.stats.add(errors=1)
            if self.responded:
                self.close_connection = True
            else:
                self._send(Response(500, {"error": f"internal error: {type(e).__name__}"}), close=True)

    def do_GET(self) -> None:  # noqa: N802
        self._safely(self._get)

    def do_POST(self) -> None:  # noqa: N802
        self._safely(self._post)

    def _get(self) -> None:
        path = self.path.split("?", 1)[0]
        length, bad = self._framing()
        close = bad is not None or bool(length)  # a body we do not read must not become the next request
        if path == "/healthz":
            self._send_text(200, "ok\n", "text/plain", close=close)
        elif path == "/readyz":
            ok = self.server.ready()
            self._send_text(200 if ok else 503, "ready\n" if ok else "not ready\n", "text/plain", close=close)
        elif path == "/metrics":
            extra = self.server.metrics() if self.server.metrics is not None else ""
            self._send_text(200, self.server.receiver.metrics_text() + extra, close=close)
        else:
            self._send(Response(404, {"error": f"no such endpoint: GET {path}"}), close=close)

    def _post(self) -> None:
        path = self.path.split("?", 1)[0]
        receiver = self.server.receiver
        # Every refusal below leaves the body unread, so it closes the connection: the body's
        # bytes must never be parsed as a request of their own.
        length, bad = self._framing()
        if bad is not None:
            receiver.stats.add(requests=1, rejected=1)
            self._send(bad, close=True)
            return
        route = self.server.route(path)
        if route is not None:
            self._routed(route, path, length)
            return
        if path not in self.server.alert_paths:
            self._send(Response(404, {"error": f"no such endpoint: POST {path}"}), close=True)
            return
        if not receiver.authorized(dict(self.headers.items())):
            receiver.stats.add(requests=1, unauthorized=1)
            self._send(Response(401, {"error": "a valid bearer token is required"}, {"WWW-Authenticate": "Bearer"}),
                       close=True)
            return
        refused = receiver.check_size(length)
        if refused is not None:
            receiver.stats.add(requests=1)
            self._send(refused, close=True)
            return
        assert length is not None
        if self.headers.get("Expect", "").lower() == "100-continue":
            self.send_response_only(100)
            self.end_headers()
            self.wfile.flush()
        body = self.rfile.read(length)
        if len(body) < length:  # the client closed early: what arrived is not the payload it declared
            receiver.stats.add(requests=1, rejected=1)
            self._send(Response(400, {"error": f"the body ended after {len(body)} of {length} bytes"}), close=True)
            return
        self._send(receiver.handle_alerts(dict(self.headers.items()), body))

    def _routed(self, handler: Route, path: str, length: int | None) -> None:
        """Another endpoint (approvals, Slack): the body read within the size limit, then the handler
        authenticates it itself (a signature covers the raw body)."""
        refused = self.server.receiver.check_size(length)
        if refused is not None:
            self._send(refused, close=True)
            return
        assert length is not None
        body = self.rfile.read(length)
        if len(body) < length:
            self._send(Response(400, {"error": f"the body ended after {len(body)} of {length} bytes"}), close=True)
            return
        self._send(handler(path, dict(self.headers.items()), body))


# Another POST endpoint on the receiver's server: (path, headers, raw body) -> the answer.
Route = Callable[[str, Mapping[str, str], bytes], Response]


_BUSY_BODY = b'{"error": "every receiver worker is busy; retry"}'
_BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
         b"Connection: close\r\nContent-Length: " + str(len(_BUSY_BODY)).encode() + b"\r\n\r\n" + _BUSY_BODY)


class ReceiverServer(HTTPServer):
    """The receiver on an HTTP server with a bounded worker pool. `extra_ready` may veto readiness.

    `workers` threads serve connections; up to `backlog` more wait for one; beyond that a
    connection is answered 503 (Alertmanager retries) and closed at once, so slow or idle
    clients cost a bounded number of threads. A connection idle for `idle_timeout_s`
    closes; a request not received within `request_timeout_s` is answered 408.
    `routes` adds POST endpoints that authenticate their own requests (the approval webhook, Slack).

    Listening on a non-loopback address needs the receiver's bearer token.
    """

    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, receiver: Receiver, host: str = "127.0.0.1", port: int = 8080, *,
                 alert_paths: Sequence[str] = (ALERTS_PATH, "/api/v1/alerts", "/"),
                 routes: Mapping[str, Route] | None = None,
                 extra_ready: Callable[[], bool] | None = None, metrics: Callable[[], str] | None = None,
                 workers: int = 32, backlog: int = 64,
                 idle_timeout_s: float = 10.0, request_timeout_s: float = 30.0, write_timeout_s: float = 10.0) -> None:
        if not is_loopback(host) and not receiver.bearer_token:
            raise ValueError(f"refusing to listen on {host!r} without a bearer token: anyone who can reach it could "
                             "open incidents; set listen.bearer_token (or REMEDIATOR_WEBHOOK_TOKEN), or listen on "
                             "127.0.0.1")
        self.receiver = receiver
        self.alert_paths = tuple(alert_paths)
        self.routes = dict(routes or {})
        self._extra_ready = extra_ready
        self.metrics = metrics  # more exposition text after the receiver's own (the operator's, from the ledger)
        self.idle_timeout_s = idle_timeout_s
        self.request_timeout_s = request_timeout_s
        self.write_timeout_s = write_timeout_s
        self._pending: queue.Queue[tuple[socket.socket, Any] | None] = queue.Queue(maxsize=backlog)
        self._active: set[socket.socket] = set()
        self._active_lock = threading.Lock()
        self._workers: list[threading.Thread] = []  # before binding: a failed bind calls server_close
        super().__init__((host, port), _Handler)
        self._workers = [threading.Thread(target=self._work, name=f"receiver-{i}", daemon=True)
                         for i in range(workers)]
        for t in self._workers:
            t.start()
        self._thread: threading.Thread | None = None

    def route(self, path: str) -> Route | None:
        """The handler of `path`: an exact route, or a prefix route (one ending in "/") it starts with."""
        if path in self.routes:
            return self.routes[path]
        return next((h for prefix, h in self.routes.items() if prefix.endswith("/") and path.startswith(prefix)
                     and path != prefix), None)

    def server_bind(self) -> None:
        # HTTPServer's own looks the host up in DNS (getfqdn), which can hang; nothing here needs the name.
        super(HTTPServer, self).server_bind()
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

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

    # -------------------------------------------------------------- the pool

    def process_request(self, request: Any, client_address: Any) -> None:
        try:
            self._pending.put_nowait((request, client_address))
        except queue.Full:
            self.receiver.stats.add(refused=1)
            try:
                request.settimeout(0.5)  # the accepting thread must not wait on a client
                request.sendall(_BUSY)
            except OSError:
                pass
            self.shutdown_request(request)

    def _work(self) -> None:
        while True:
            item = self._pending.get()
            if item is None:
                return
            request, client_address = item
            with self._active_lock:
                self._active.add(request)
            try:
                self.finish_request(request, client_address)
            except Exception:  # noqa: BLE001 - one connection's trouble is not the worker's
                self.handle_error(request, client_address)
            finally:
                with self._active_lock:
                    self._active.discard(request)
                self.shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("receiver: connection from %s failed", client_address, exc_info=True)

    # -------------------------------------------------------------- lifecycle

    def start(self) -> ReceiverServer:
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="receiver", daemon=True)
        self._thread.start()
        return self

    def server_close(self) -> None:
        """Close the socket and end the pool (also when the server never started); idempotent."""
        super().server_close()
        while True:  # connections still waiting for a worker: closed unanswered, the sender retries
            try:
                item = self._pending.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                self.shutdown_request(item[0])
        with self._active_lock:
            for conn in self._active:  # wake workers blocked on a read
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        alive = [t for t in self._workers if t.is_alive()]
        for _ in alive:
            self._pending.put(None)
        for t in alive:
            t.join(timeout=5)

    def stop(self) -> None:
        if self._thread is not None:
            self.shutdown()
        self.server_close()
        self.receiver.close()

    def __enter__(self) -> ReceiverServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
