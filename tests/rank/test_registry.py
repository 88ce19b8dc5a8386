"""The one ranker registry: the benchmark, the CLI and the live agent build rankers from it."""

from __future__ import annotations

from pathlib import Path

import pytest

from remediator.rank import ProposerOrderRanker, RandomRanker, RulesRanker
from remediator.rank.registry import RankerError, make_ranker


def test_the_baselines_by_name() -> None:
    assert isinstance(make_ranker("rules"), RulesRanker)
    assert isinstance(make_ranker("random", seed=3), RandomRanker)
    assert isinstance(make_ranker("llm"), ProposerOrderRanker)
    with pytest.raises(RankerError, match="unknown ranker 'oracle'; use auto, rules"):
        make_ranker("oracle")  # the benchmark's oracle knows the injected fault: no cluster has one
    with pytest.raises(RankerError, match="x: cannot read the rule thresholds"):
        make_ranker("rules:x")  # `rules:FILE.yaml` names a thresholds file (tests/rank/test_rules.py)
    with pytest.raises(RankerError, match="unknown ranker 'random:x'"):
        make_ranker("random:x")


def test_a_broken_policy_file_is_an_error_except_for_auto(tmp_path: Path) -> None:
    broken = tmp_path / "policy.zip"
    broken.write_bytes(b"not a zip")
    with pytest.raises(RankerError) as named:
        make_ranker(f"dqn:{broken}")
    assert not named.value.names_policy  # the ranker name carried the file
    with pytest.raises(RankerError) as configured:
        make_ranker("rl", policy=str(broken))
    assert configured.value.names_policy  # the configuration's `policy:` key did
    assert isinstance(make_ranker("auto", policy=str(broken)), RulesRanker)
