"""One operator replica in its own process, for tests that kill it: `python -m tests.kopf_operator.child CONFIG T`.

What `remediator run --config CONFIG` does, on a clock frozen at T (the simulated incident's
time, so that its Prometheus data are current): one decision per incident, no verification
ticks. Writes its receiver's URL to CONFIG's directory as `url-IDENTITY` once it serves;
SIGTERM stops it gracefully (as `serve_forever`), SIGKILL is a crash.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from remediator.live.config import load_config
from remediator.operator.run import Operator


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    path, frozen = Path(sys.argv[1]), float(sys.argv[2])
    config = load_config(path)
    done = threading.Event()

    def _signal(signum: int, frame: Any) -> None:
        done.set()

    signal.signal(signal.SIGTERM, _signal)
    op = Operator(config, clock=lambda: frozen).start()
    (path.parent / f"url-{op.identity}").write_text(op.url)
    try:
        done.wait()
    finally:
        op.stop()


if __name__ == "__main__":
    main()
