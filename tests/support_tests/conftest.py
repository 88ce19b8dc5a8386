"""Fixtures for the test-infrastructure self-tests (copy or import them elsewhere)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

_ROOT = Path(__file__).resolve().parents[2]
if str(_ROOT) not in sys.path:  # `tests.support` must import however pytest was started
    sys.path.insert(0, str(_ROOT))

from tests.support import prom  # noqa: E402

if TYPE_CHECKING:
    from tests.support.kube import KubeServer

# Skipped on a bare developer machine, never in CI (CI=true): there a missing binary must fail.
requires_prometheus = pytest.mark.skipif(
    not prom.binaries_available() and not os.environ.get("CI"),
    reason="prometheus/promtool/alertmanager missing: run scripts/ci/install-system.sh",
)


@pytest.fixture
def webhook() -> Iterator[prom.WebhookRecorder]:
    with prom.WebhookRecorder() as hook:
        yield hook


@pytest.fixture
def kube() -> Iterator[KubeServer]:
    from tests.support.kube import KubeServer

    with KubeServer() as server:
        yield server
