"""Rankers order proposed candidates; the learned one lives in `remediator.rank.rl`."""

from remediator.rank.base import Ranked, Ranker, by_scores
from remediator.rank.baselines import ProposerOrderRanker, RandomRanker
from remediator.rank.rules import RulesRanker, expert_plan
from remediator.rank.thresholds import RuleThresholds, RuleThresholdsError

__all__ = ["ProposerOrderRanker", "RandomRanker", "Ranked", "Ranker", "RuleThresholds", "RuleThresholdsError",
           "RulesRanker", "by_scores", "expert_plan"]
