"""A bounded mutation fuzzer over webhook payloads, against the running receiver over real HTTP.

Each payload is built from alerts that are valid, or broken in one of the ways a hostile or
buggy sender breaks them (lone surrogates, deep nesting, wrong types, missing fields, forged
fingerprints, ...), and some whole bodies are then mutated byte by byte. Several senders post
concurrently, so broken and valid alerts share the writer's group commits. The properties:

* every request gets a status: no connection is dropped without one;
* no 500: the store is healthy, so a 500 could only be a sibling's alert failing ours;
* every acknowledged alert (in a 200, or the `stored` part of a 400) is in the ledger, and
  the ledger counts exactly the notifications acknowledged, no more.

Seeded and bounded (`PAYLOADS`, or `BUDGET_S` seconds, whichever comes first); the counts are printed.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from remediator.live.ledger import Ledger
from remediator.live.receiver import Receiver, ReceiverServer, fingerprint

TOKEN = "fuzz-token"
SEED = int(os.environ.get("RECEIVER_FUZZ_SEED", "15"))
PAYLOADS = int(os.environ.get("RECEIVER_FUZZ_PAYLOADS", "5000"))
BUDGET_S = float(os.environ.get("RECEIVER_FUZZ_BUDGET_S", "40"))
SENDERS = 4
MAX_BODY = 256 * 1024

NAMES = ("KubePodCrashLooping", "KubePodNotReady", "KubeDeploymentReplicasMismatch", "CPUThrottlingHigh",
         "KubeHpaMaxedOut", "ServiceLatencyHigh")
TEXT = ("cart", "shop", "billing", "ünïcødé", "日本語", "emoji-🔥", "a b", "", "x" * 300, "quote\"", "back\\slash",
        "nul\x00byte", "tab\tnew\nline", "[/nope]", "\x1b[2J", "%s%n", "' OR 1=1 --")
SURROGATES = ("\ud800", "\udfff", "\udc80", "x\ud83d")


@dataclass
class Sent:
    """One payload and what a correct receiver must make of it."""

    body: bytes
    valid: list[tuple[str, float]] = field(default_factory=list)  # (fingerprint, startsAt) of the valid alerts
    alerts: int = 0
    mutated: bool = False  # bytes changed after building: validity unknown


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def deep(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = [value] if depth % 2 else {"k": value}
    return value


class Fuzzer:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.seen: list[dict[str, Any]] = []  # earlier valid alerts, re-sent as duplicates and resolutions

    def labels(self) -> dict[str, str]:
        r = self.rng
        labels = {"alertname": r.choice(NAMES), "namespace": r.choice(("shop", "billing", "load", "kube-system", ""))}
        optional = ("pod", "deployment", "container", "node", "severity", "job", "instance")
        for name in r.sample(optional, r.randint(0, 4)):
            labels[name] = r.choice(TEXT) + str(r.randint(0, 50))
        return labels

    def valid_alert(self) -> dict[str, Any]:
        r = self.rng
        if self.seen and r.random() < 0.25:
            again = dict(self.seen[r.randrange(len(self.seen))])
            if r.random() < 0.3:
                again["status"], again["endsAt"] = "resolved", iso(1_780_000_000 + r.randint(0, 10_000))
            return again
        starts = 1_770_000_000 + r.randint(0, 1_000_000)
        alert = {"status": "firing", "labels": self.labels(), "annotations": {"summary": r.choice(TEXT)},
                 "startsAt": iso(starts), "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prom/graph",
                 "fingerprint": r.choice(("", "forged", fingerprint({"alertname": "Other"})))}
        if r.random() < 0.2:
            alert["extra"] = {"ignored": [1, 2, 3]}
        self.seen.append(alert)
        return alert

    def broken_alert(self) -> dict[str, Any] | Any:
        r = self.rng
        a = json.loads(json.dumps(self.valid_alert()))
        kind = r.randrange(12)
        if kind == 0:
            a["labels"]["pod"] = r.choice(SURROGATES)
        elif kind == 1:
            a["labels"][r.choice(SURROGATES)] = "v"
        elif kind == 2:
            a["annotations"] = {"summary": r.choice(SURROGATES)}
        elif kind == 3:
            a["labels"].pop("alertname")
        elif kind == 4:
            a["labels"] = deep(r.randint(2, 400))
        elif kind == 5:
            a["startsAt"] = r.choice(("yesterday", "", "12:00", None, "1960-01-01T00:00:00Z", "9999-99-99"))
        elif kind == 6:
            a["status"] = r.choice(("pending", "", None, 1))
        elif kind == 7:
            a["labels"]["severity"] = r.choice((1, None, [], {}, True))
        elif kind == 8:
            a["generatorURL"] = r.choice(SURROGATES)
        elif kind == 9:
            del a[r.choice(("status", "labels", "startsAt"))]
        elif kind == 10:
            return r.choice((None, 1, "alert", [], [a]))
        else:
            a["annotations"] = r.choice((None, "text", ["list"], {"k": 1}))
        return a

    def payload(self) -> Sent:
        r = self.rng
        alerts: list[Any] = []
        valid: list[tuple[str, float]] = []
        for _ in range(r.choice((1, 1, 2, 3, 5, 8, 20, 60))):
            if r.random() < 0.3:
                alerts.append(self.broken_alert())
            else:
                a = self.valid_alert()
                alerts.append(a)
                starts = datetime.fromisoformat(a["startsAt"].replace("Z", "+00:00")).timestamp()
                valid.append((fingerprint(a["labels"]), starts))
        envelope: dict[str, Any] = {"version": "4", "groupKey": "{}:{}", "status": "firing", "receiver": "fuzz",
                                    "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
                                    "externalURL": "http://am", "truncatedAlerts": 0, "alerts": alerts}
        roll = r.random()
        if roll < 0.04:
            envelope["version"] = r.choice(("3", 4, None, ""))
            valid = []
        elif roll < 0.07:
            envelope["alerts"] = r.choice(([], None, {"0": alerts[0]}, "alerts"))
            valid = []
        elif roll < 0.09:
            envelope["groupKey"] = r.choice(SURROGATES)
            valid = []
        elif roll < 0.1:
            envelope["commonAnnotations"] = {"padding": "x" * MAX_BODY}  # a 413, nothing read
            valid = []
        body = json.dumps(envelope).encode()
        if roll > 0.97:
            return Sent(b'{"version": "4", "alerts": ' + b"[" * 5000 + b"]" * 5000 + b"}", [], 1)
        if roll > 0.9:
            return Sent(self.mutate(body), [], len(alerts), mutated=True)
        return Sent(body, valid, len(alerts))

    def mutate(self, body: bytes) -> bytes:
        r = self.rng
        data = bytearray(body)
        for _ in range(r.randint(1, 8)):
            op = r.randrange(4)
            i = r.randrange(len(data))
            if op == 0:
                data[i] = r.randrange(256)
            elif op == 1:
                del data[i:i + r.randint(1, 20)]
            elif op == 2:
                data[i:i] = r.choice((b"\xff", b"\xc3", b"{", b"]", b'"', b"\\ud800", b"\x00", b"\\"))
            else:
                data = data[:i]
            if not data:
                data = bytearray(b"{")
        return bytes(data)


@dataclass
class Results:
    statuses: Counter[int | str] = field(default_factory=Counter)
    acknowledged: int = 0  # notifications the receiver said it stored
    alerts_sent: int = 0
    checked: list[tuple[str, float]] = field(default_factory=list)  # (fingerprint, startsAt) that must be stored
    checked_fingerprints: list[str] = field(default_factory=list)  # from mutated bodies: startsAt unknown
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def sender(url: tuple[str, int], jobs: list[Sent], out: Results) -> None:
    conn: http.client.HTTPConnection | None = None
    for sent in jobs:
        if conn is None:
            conn = http.client.HTTPConnection(*url, timeout=30)
        try:
            conn.request("POST", "/alerts", body=sent.body, headers={"Authorization": f"Bearer {TOKEN}",
                                                                     "Content-Type": "application/json"})
            resp = conn.getresponse()
            text = resp.read()
            status = resp.status
            if resp.getheader("Connection", "").lower() == "close":
                conn.close()
                conn = None
        except (OSError, http.client.HTTPException) as e:
            with out.lock:
                out.statuses["dropped"] += 1
                out.failures.append(f"no status: {type(e).__name__}: {e} for {sent.body[:120]!r}")
            conn = None
            continue
        answer = json.loads(text) if text else {}
        with out.lock:
            out.statuses[status] += 1
            out.alerts_sent += sent.alerts
            if status >= 500:
                out.failures.append(f"{status} {answer} for {sent.body[:200]!r}")
            summary = answer if status == 200 else answer.get("stored") or {}
            out.acknowledged += int(summary.get("received", 0))
            if status == 200 and sent.mutated:
                doc = json.loads(sent.body)  # the receiver took it: it is JSON, and every alert was valid
                out.checked_fingerprints += [fingerprint(a["labels"]) for a in doc["alerts"]]
            elif status in (200, 400) and not sent.mutated:
                if summary.get("received", 0) != len(sent.valid):
                    out.failures.append(f"{status}: stored {summary.get('received')} of {len(sent.valid)} valid "
                                        f"alerts: {answer}")
                out.checked += sent.valid
            elif status != 400 and not (status == 413 and len(sent.body) > MAX_BODY):
                out.failures.append(f"unexpected {status} {answer}")
    if conn is not None:
        conn.close()


@pytest.mark.slow
def test_fuzzed_payloads_get_a_status_no_sibling_500_and_every_acknowledged_alert_is_stored(tmp_path: Path) -> None:
    fuzzer = Fuzzer(SEED)
    jobs = [fuzzer.payload() for _ in range(PAYLOADS)]
    out = Results()
    started = time.monotonic()
    with Ledger(tmp_path / "ledger.db") as ledger:
        receiver = Receiver(ledger, bearer_token=TOKEN, max_body_bytes=MAX_BODY)
        with ReceiverServer(receiver, "127.0.0.1", 0, workers=8) as srv:
            host, port = srv.server_address[:2]
            chunks = [jobs[i::SENDERS] for i in range(SENDERS)]
            deadline = started + BUDGET_S

            def bounded(chunk: list[Sent]) -> Callable[[], None]:
                def run() -> None:
                    for i in range(0, len(chunk), 25):  # in slices, to stop at the time budget
                        if time.monotonic() > deadline:
                            return
                        sender((str(host), int(port)), chunk[i:i + 25], out)
                return run

            threads = [threading.Thread(target=bounded(c)) for c in chunks]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        with sqlite3.connect(tmp_path / "ledger.db") as db:  # a second connection: what is committed
            rows = db.execute("SELECT fingerprint, starts_at, received FROM alerts").fetchall()
    stored = {(fp, starts) for fp, starts, _ in rows}
    fingerprints = {fp for fp, _, _ in rows}
    received = sum(n for _, _, n in rows)
    missing = [k for k in out.checked if k not in stored] + [f for f in out.checked_fingerprints
                                                             if f not in fingerprints]
    requests = sum(out.statuses.values())
    statuses = dict(sorted(out.statuses.items(), key=str))
    print(f"\nreceiver fuzz: seed {SEED}, {requests} payloads ({out.alerts_sent} alerts) in "
          f"{time.monotonic() - started:.1f}s by {SENDERS} senders; statuses {statuses}; "
          f"{out.acknowledged} acknowledged, {len(rows)} distinct alerts stored with {received} notifications; "
          f"{len(out.checked) + len(out.checked_fingerprints)} acknowledged alerts checked, {len(missing)} missing; "
          f"{stats_line(receiver)}")
    assert out.failures == [], "\n".join(out.failures[:5])
    assert out.statuses["dropped"] == 0 and not any(isinstance(s, int) and s >= 500 for s in out.statuses)
    assert missing == []
    assert received == out.acknowledged  # nothing stored that was not acknowledged, nothing acknowledged twice
    assert requests >= min(PAYLOADS, 200)  # the budget still let a real run happen
    assert out.statuses[200] and out.statuses[400]


def stats_line(receiver: Receiver) -> str:
    s = receiver.stats
    return f"{s.new} new, {s.duplicates} duplicates, {s.held} held, {receiver.writer.commits} commits"
