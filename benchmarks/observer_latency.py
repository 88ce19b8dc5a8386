"""How long one live observation takes when Prometheus is healthy, and how long it takes to fail when not.

    .venv/bin/python benchmarks/observer_latency.py [--repeat 5] [--retries 1] [--timeout 2] [--parallel 4]

The observer is the real one (`remediator.live.observer.Observer` over `PrometheusSource`),
for an alert on one Deployment with the shipped PromQL templates. What answers it, on 127.0.0.1:

* `healthy`: an HTTP server answering every query with an empty result (no samples): the
  observation succeeds, so the row is the cost of the queries themselves;
* `refused`: nothing listens on the port (Prometheus down, wrong port);
* `dropped`: connections are accepted and closed at once (a crashing proxy);
* `503`: every query answered 503 (Prometheus overloaded): retried with the client's backoff;
* `silent`: connections are accepted and never answered: each attempt waits `--timeout`.

Every failing row must raise `PrometheusUnavailable` (the script exits 1 if one does not, or
if `healthy` fails). The goal that tests/live/test_observer.py once asserted as a timing,
a dead Prometheus failing an observation within 5 s (`silent` excepted: it is bounded by the
timeout, retries and parallelism instead), is reported here, not enforced: the figures move
with the machine's load.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from remediator.live.observer import (  # noqa: E402
    Observer,
    PrometheusSource,
    PrometheusUnavailable,
    StaticObjects,
    objects_from_alert,
)
from remediator.snapshot import Alert  # noqa: E402

GOAL_S = 5.0
ALERT = Alert("KubePodCrashLooping", {"namespace": "shop", "deployment": "cart"}, starts_at=1.0)
EMPTY = json.dumps({"status": "success", "data": {"resultType": "matrix", "result": []}}).encode()


class _Counting:
    connections = 0
    lock = threading.Lock()

    @classmethod
    def seen(cls) -> None:
        with cls.lock:
            cls.connections += 1


def _handler(status: int) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            _Counting.seen()
            body = EMPTY if status == 200 else b""
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_POST = do_GET  # noqa: N815

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def http_server(status: int) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(status))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def socket_server(answer: Callable[[socket.socket], None]) -> Iterator[str]:
    """Accepts connections and hands each to `answer` (close it, or hold it open unanswered)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    held: list[socket.socket] = []

    def loop() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            _Counting.seen()
            held.append(conn)
            answer(conn)

    threading.Thread(target=loop, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()
        for c in held:
            c.close()


@contextmanager
def nothing_listening() -> Iterator[str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # the port was free a moment ago and nobody listens on it now
    yield f"http://127.0.0.1:{port}"


def observe_once(url: str, retries: int, timeout_s: float, parallel: int) -> tuple[float, str]:
    """Seconds one observation took, and how it ended ('ok', 'unavailable' or the exception's name)."""
    source = PrometheusSource(url, retries=retries, timeout_s=timeout_s)
    observer = Observer(source, StaticObjects(objects_from_alert(ALERT)), parallel=parallel)
    start = time.perf_counter()
    try:
        observer.observe(ALERT, now=1000.0)
        outcome = "ok"
    except PrometheusUnavailable:
        outcome = "unavailable"
    except Exception as e:  # noqa: BLE001 - reported as a failed check, not raised
        outcome = type(e).__name__
    took = time.perf_counter() - start
    source.close()
    return took, outcome


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=5, help="observations per row")
    ap.add_argument("--retries", type=int, default=1, help="PrometheusSource retries")
    ap.add_argument("--timeout", type=float, default=2.0, help="PrometheusSource timeout_s")
    ap.add_argument("--parallel", type=int, default=4, help="Observer parallel queries")
    ap.add_argument("--skip-silent", action="store_true", help="leave out the row bounded by the timeout")
    args = ap.parse_args(argv)

    rows: list[tuple[str, Callable[[], Any], str]] = [
        ("healthy", lambda: http_server(200), "ok"),
        ("refused", nothing_listening, "unavailable"),
        ("dropped", lambda: socket_server(lambda c: c.close()), "unavailable"),
        ("503", lambda: http_server(503), "unavailable"),
    ]
    if not args.skip_silent:
        rows.append(("silent", lambda: socket_server(lambda c: None), "unavailable"))
    print(f"observer: retries={args.retries} timeout_s={args.timeout:g} parallel={args.parallel}, "
          f"{args.repeat} observations per row")
    print(f"{'answer':<9} {'median s':>9} {'max s':>8} {'connections':>12}  outcome")
    failed = False
    for name, make, expected in rows:
        times: list[float] = []
        outcomes: set[str] = set()
        _Counting.connections = 0
        for _ in range(args.repeat):
            with make() as url:
                took, outcome = observe_once(url, args.retries, args.timeout, args.parallel)
            times.append(took)
            outcomes.add(outcome)
        ok = outcomes == {expected}
        failed |= not ok
        goal = "" if name in ("healthy", "silent") else (
            f"  (goal {GOAL_S:g}s: {'met' if max(times) <= GOAL_S else 'MISSED'})")
        print(f"{name:<9} {statistics.median(times):>9.3f} {max(times):>8.3f} "
              f"{_Counting.connections / args.repeat:>12.1f}  {','.join(sorted(outcomes))}"
              f"{'' if ok else f' (expected {expected})'}{goal}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
