"""Fixtures for the test-infrastructure self-tests (copy or import them elsewhere)."""

from __future__ import annotations

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

# A missing binary fails the test (tests/support/prom.require_binaries): never a silent skip.
requires_prometheus = pytest.mark.usefixtures("prometheus_binaries")


@pytest.fixture
def prometheus_binaries() -> None:
    prom.require_binaries()


@pytest.fixture
def webhook() -> Iterator[prom.WebhookRecorder]:
    with prom.WebhookRecorder() as hook:
        yield hook


@pytest.fixture
def kube() -> Iterator[KubeServer]:
    from tests.support.kube import KubeServer

    with KubeServer() as server:
        yield server
