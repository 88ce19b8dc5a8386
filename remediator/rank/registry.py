"""The one registry of rankers by name, for the benchmark, the CLI and the live agent.

    rules | rules:FILE.yaml | random | llm | rl | dqn:FILE.zip | ppo:FILE.zip | auto

`rules` uses the shipped, calibrated thresholds; `rules:FILE.yaml` a thresholds file of one's own
(`remediator/data/rules.yaml` is the template).
`llm` ranks in the proposer's own order (with an LLM proposer: the model's preference).
`rl` is the shipped policy, or `policy` when given; `dqn:`/`ppo:` load a file of that
algorithm. `auto` is the rl policy when it loads, else the rule table (with a warning).
The benchmark adds `oracle`, which knows the simulator's injected fault and is no ranker
a real cluster could have.
"""

from __future__ import annotations

import logging

from remediator.rank.base import Ranker
from remediator.rank.baselines import ProposerOrderRanker, RandomRanker
from remediator.rank.rules import RulesRanker
from remediator.rank.thresholds import RuleThresholdsError, load_thresholds

__all__ = ["RANKER_NAMES", "RankerError", "make_ranker"]

log = logging.getLogger("remediator.rank")

RANKER_NAMES = ("auto", "rules", "rules:FILE.yaml", "random", "llm", "rl", "dqn:FILE.zip", "ppo:FILE.zip")


class RankerError(ValueError):
    """A ranker name that names no ranker, or a policy that cannot be loaded.

    `names_policy` is true when the problem is the policy file given separately (the live
    configuration's `policy:` key) rather than the ranker name itself.
    """

    def __init__(self, message: str, *, names_policy: bool = False) -> None:
        super().__init__(message)
        self.names_policy = names_policy


def make_ranker(spec: str, *, policy: str | None = None, seed: int = 0) -> Ranker:
    base, _, arg = spec.partition(":")
    if base == "rules":
        try:
            return RulesRanker(load_thresholds(arg) if arg else None)
        except RuleThresholdsError as e:
            raise RankerError(str(e)) from e
    if base == "random" and not arg:
        return RandomRanker(seed)
    if base == "llm" and not arg:
        return ProposerOrderRanker()
    if base in ("auto", "rl", "dqn", "ppo"):
        return _learned(base, arg or policy, names_policy=not arg)
    raise RankerError(f"unknown ranker {spec!r}; use {', '.join(RANKER_NAMES)}")


def _learned(base: str, path: str | None, *, names_policy: bool) -> Ranker:
    try:
        from remediator.rank.rl import load_rl_ranker
    except ImportError as e:  # the RL ranker ships with the package; a broken install lands here
        if base == "auto":
            log.warning("the rl ranker is not available (%s); ranking with rules", e)
            return RulesRanker()
        raise RankerError(f"the rl ranker is not available: {e}") from e
    try:
        return load_rl_ranker(path, algo=None if base in ("auto", "rl") else base)
    except (OSError, ValueError) as e:  # PolicyError and ModelMismatchError are ValueErrors
        if base == "auto":
            log.warning("no usable policy (%s); ranking with rules", e)
            return RulesRanker()
        raise RankerError(str(e), names_policy=names_policy) from e
