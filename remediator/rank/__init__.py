"""Rankers order proposed candidates; the learned one lives in `remediator.rank.rl`."""

from remediator.rank.base import Ranked, Ranker, by_scores
from remediator.rank.baselines import ProposerOrderRanker, RandomRanker, RulesRanker, expert_plan

__all__ = ["ProposerOrderRanker", "RandomRanker", "Ranked", "Ranker", "RulesRanker", "by_scores",
           "expert_plan"]
