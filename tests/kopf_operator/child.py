"""One operator replica in its own process, for tests that kill it: `python -m tests.kopf_operator.child CONFIG T`.

What `remediator run --config CONFIG` does, on a clock frozen at T (the simulated incident's
time, so that its Prometheus data are current): one decision per incident, no verification
ticks. Writes its receiver's URL to CONFIG's directory as `url-IDENTITY` once it serves;
SIGTERM stops it gracefully (as `serve_forever`), SIGKILL is a crash.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from remediator.live.config import load_config
from remediator.live.service import serve_until_signalled
from remediator.operator.run import Operator


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    path, frozen = Path(sys.argv[1]), float(sys.argv[2])
    op = Operator(load_config(path), clock=lambda: frozen)

    def start() -> None:
        op.start()
        (path.parent / f"url-{op.identity}").write_text(op.url)

    serve_until_signalled(start, op.stop)


if __name__ == "__main__":
    main()
