"""benchmarks/gave_up.py's count: an escalation after a remedy of its own, where the oracle needed no human."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from simulator.runner import EpisodeResult

_spec = importlib.util.spec_from_file_location("gave_up", Path(__file__).parents[1] / "benchmarks" / "gave_up.py")
assert _spec is not None and _spec.loader is not None
gave_up = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gave_up)


def _ep(*kinds: str, recovered: bool = True) -> EpisodeResult:
    return EpisodeResult(fault="volume_filling", family="storage", variant="", recovered=recovered,
                         recovery_s=300.0, actions=0, acted_on_no_fault=False, guard_denials=0,
                         unsafe_executed=0, kinds=list(kinds))


@pytest.mark.parametrize(("ranker", "oracle", "expected"), [
    (_ep("expand_volume", "noop", "escalate"), _ep("expand_volume", "noop", "expand_volume"), True),
    (_ep("noop", "escalate"), _ep("revert_config"), False),  # no remedy of its own before the page
    (_ep("expand_volume", "noop", "escalate"), _ep("expand_volume", "escalate"), False),  # the oracle paged too
    (_ep("expand_volume", "escalate"), _ep("expand_volume", recovered=False), False),  # nor did it recover
    (_ep("expand_volume", "expand_volume"), _ep("expand_volume"), False),  # no page at all
])
def test_gave_up(ranker: EpisodeResult, oracle: EpisodeResult, expected: bool) -> None:
    assert gave_up.gave_up(ranker, oracle) is expected
