"""Alertmanager webhook burst: 10,000 alerts (duplicates included) into the receiver over HTTP.

    .venv/bin/python benchmarks/receiver_burst.py [--alerts 10000] [--duplicates 0.3] [--clients 8]
                                                  [--max-group 20] [--single]

The receiver is the real one (`remediator.live.receiver.ReceiverServer`) on 127.0.0.1 with
a real SQLite ledger (WAL, synchronous=FULL: every reply waits for its fsync). Alerts are
sent as Alertmanager sends them: v4 payloads grouping 1..max-group alerts, from several
concurrent senders, with re-sends of earlier alerts mixed in (Alertmanager repeats a group
on every change and every repeat_interval). `--single` posts one alert per request.

Afterwards the ledger is checked: every distinct alert stored once, every duplicate merged
into it (its `received` count equals the times it was sent), nothing lost, and each distinct
alert either opened an incident or is held by the intake caps (per source and per namespace).
The script exits 1 if any check fails; the speed goal (500 alerts/s) is reported, not enforced.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import random
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from remediator.live.ledger import Ledger  # noqa: E402
from remediator.live.receiver import Receiver, ReceiverServer, fingerprint  # noqa: E402

GOAL = 500.0
ALERTS = ("KubePodCrashLooping", "KubePodNotReady", "KubeDeploymentReplicasMismatch", "CPUThrottlingHigh",
          "KubeHpaMaxedOut", "ServiceErrorBudgetBurn", "ServiceLatencyHigh")


def make_alerts(total: int, dup_share: float, rng: random.Random) -> list[dict[str, Any]]:
    """`total` notifications: distinct alerts plus re-sends of earlier ones, in arrival order."""
    unique = max(1, round(total * (1.0 - dup_share)))
    distinct = []
    for i in range(unique):
        labels = {"alertname": ALERTS[i % len(ALERTS)], "namespace": f"ns-{i % 50}", "pod": f"app-{i}-7d9f8-x{i:05d}",
                  "container": "app", "severity": "warning"}
        distinct.append({"status": "firing", "labels": labels, "annotations": {"summary": f"alert {i}"},
                         "startsAt": "2026-11-26T10:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
                         "generatorURL": "http://prometheus/graph", "fingerprint": fingerprint(labels)})
    stream = list(distinct) + [rng.choice(distinct) for _ in range(total - unique)]
    rng.shuffle(stream)
    return stream


def make_payloads(stream: list[dict[str, Any]], max_group: int, rng: random.Random) -> list[bytes]:
    payloads = []
    i = 0
    while i < len(stream):
        n = rng.randint(1, max_group)
        group = stream[i:i + n]
        i += n
        payloads.append(json.dumps({
            "version": "4", "groupKey": f"{{}}:{{alertname=\"{group[0]['labels']['alertname']}\"}}",
            "status": "firing", "receiver": "remediator", "groupLabels": {}, "commonLabels": {},
            "commonAnnotations": {}, "externalURL": "http://alertmanager", "truncatedAlerts": 0, "alerts": group,
        }).encode())
    return payloads


def send(url: str, payloads: list[bytes], clients: int, token: str) -> tuple[float, list[float], list[int]]:
    host, port = url.removeprefix("http://").split(":")
    lock = threading.Lock()
    queue = list(reversed(payloads))
    latencies: list[float] = []
    statuses: list[int] = []

    def worker() -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
        while True:
            with lock:
                if not queue:
                    break
                body = queue.pop()
            t = time.perf_counter()
            conn.request("POST", "/alerts", body=body, headers=headers)
            resp = conn.getresponse()
            resp.read()
            with lock:
                latencies.append(time.perf_counter() - t)
                statuses.append(resp.status)
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    start = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return time.perf_counter() - start, latencies, statuses


def verify(store: Path, stream: list[dict[str, Any]]) -> list[str]:
    sent = Counter(a["fingerprint"] for a in stream)
    db = sqlite3.connect(store)
    rows = dict(db.execute("SELECT fingerprint, received FROM alerts").fetchall())
    incidents = db.execute("SELECT COUNT(*) FROM incidents").fetchone()[0]
    # Beyond the intake caps (per source, per namespace) an alert is stored but held: no incident yet.
    held = db.execute("SELECT COUNT(*) FROM alerts WHERE incident_id IS NULL").fetchone()[0]
    problems = []
    lost = set(sent) - set(rows)
    if lost:
        problems.append(f"{len(lost)} alerts lost, e.g. {sorted(lost)[:3]}")
    if len(rows) != len(sent):
        problems.append(f"{len(rows)} alert rows for {len(sent)} distinct alerts")
    wrong = [fp for fp, n in sent.items() if rows.get(fp) != n]
    if wrong:
        problems.append(f"{len(wrong)} alerts with a wrong duplicate count, e.g. {wrong[0]}: sent {sent[wrong[0]]}, "
                        f"stored {rows.get(wrong[0])}")
    if sum(rows.values()) != len(stream):
        problems.append(f"{sum(rows.values())} notifications recorded, {len(stream)} sent")
    if incidents + held != len(sent):
        problems.append(f"{incidents} incidents and {held} held alerts for {len(sent)} distinct alerts")
    print(f"ledger: {len(rows)} distinct alerts, {incidents} incidents opened, {held} held by the intake caps")
    return problems


def serve(store: str, ready: Any, stop: Any) -> None:
    """The receiver in its own process (its own interpreter lock), as `remediator run` would be."""
    ledger = Ledger(store)
    receiver = Receiver(ledger, bearer_token="burst", max_body_bytes=4 << 20)
    with ReceiverServer(receiver, "127.0.0.1", 0) as server:
        ready.put(server.url)
        stop.wait()
        ready.put(receiver.writer.commits)
    ledger.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alerts", type=int, default=10_000, help="notifications to send (duplicates included)")
    parser.add_argument("--duplicates", type=float, default=0.3, help="share of re-sent alerts")
    parser.add_argument("--clients", type=int, default=8, help="concurrent senders")
    parser.add_argument("--max-group", type=int, default=20, help="alerts per payload: 1..max-group")
    parser.add_argument("--single", action="store_true", help="one alert per request")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    rng = random.Random(args.seed)
    stream = make_alerts(args.alerts, args.duplicates, rng)
    payloads = make_payloads(stream, 1 if args.single else args.max_group, rng)
    ctx = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "ledger.db"
        ready, stop = ctx.Queue(), ctx.Event()
        server = ctx.Process(target=serve, args=(str(store), ready, stop), daemon=True)
        server.start()
        url = ready.get(timeout=60)
        elapsed, latencies, statuses = send(url, payloads, args.clients, "burst")
        stop.set()
        commits = ready.get(timeout=60)
        server.join(30)
        problems = verify(store, stream)
    bad = Counter(s for s in statuses if s != 200)
    if bad:
        problems.append(f"non-200 answers: {dict(bad)}")
    rate = len(stream) / elapsed
    lat = sorted(latencies)
    distinct = len({a["fingerprint"] for a in stream})
    print(f"sent {len(stream)} alerts ({distinct} distinct, {len(stream) - distinct} duplicates) in {len(payloads)} "
          f"requests from {args.clients} clients")
    print(f"elapsed {elapsed:.2f}s: {rate:.0f} alerts/s, {len(payloads) / elapsed:.0f} requests/s, "
          f"{commits} ledger commits (fsync'd), latency p50 {statistics.median(lat) * 1000:.1f} ms, "
          f"p99 {lat[int(0.99 * (len(lat) - 1))] * 1000:.1f} ms")
    print(f"goal {GOAL:.0f} alerts/s: {'met' if rate >= GOAL else 'NOT met'}")
    if problems:
        for p in problems:
            print(f"FAIL: {p}")
        return 1
    print("all persisted, duplicates merged, none lost")
    return 0


if __name__ == "__main__":
    sys.exit(main())
