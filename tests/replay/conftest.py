"""The replay tests use the live path's fixtures (real Prometheus binaries, the emulator)."""

from __future__ import annotations

import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[2]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from tests.live.conftest import ledger, prometheus_binaries  # noqa: E402,F401
