"""Calibrating the rule table: a grid search over its thresholds on the training suite only.

Every grid point is the shipped table with four thresholds replaced; each runs on the same
seeded incidents of the training suite (`default`). A point is feasible when it acts on at
most `MAX_NO_FAULT_ACTIONS` of the no-fault incidents (acting on a noisy page is the costly
mistake); the chosen point is the feasible one with the lowest MTTR (ties: fewer no-fault
actions, then grid order). The evaluation suites are refused: a table tuned on them would be
measured on its own training data. `benchmarks/calibrate_rules.py` prints the grid.

    >>> result = calibrate()                         # doctest: +SKIP
    >>> result.chosen.values                         # doctest: +SKIP
    {'rollout_window_s': 900.0, 'oom_ratio': 0.6, 'throttle_ratio': 0.5, 'transient_s': 300.0}
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from remediator.benchmark import run_benchmark
from remediator.rank.rules import RulesRanker
from remediator.rank.thresholds import RuleThresholds, shipped_thresholds
from simulator.suite import Suite, load_suite

__all__ = ["GRID", "MAX_NO_FAULT_ACTIONS", "Calibration", "CalibrationError", "GridPoint", "calibrate"]

MAX_NO_FAULT_ACTIONS = 0.05
# The thresholds searched and their candidate values (3 x 3 x 2 x 2 = 36 points): the loose
# values of the old table (rollouts under an hour, any OOM kill, throttling above 25%) are in
# the grid, so the search, not a choice, rules them out.
GRID: dict[str, tuple[float, ...]] = {
    "rollout_window_s": (900.0, 1800.0, 3600.0),
    "oom_ratio": (0.01, 0.3, 0.6),
    "throttle_ratio": (0.25, 0.5),
    "transient_s": (180.0, 300.0),
}


class CalibrationError(ValueError):
    """A calibration that cannot run: an evaluation suite, or a grid naming no threshold."""


@dataclass(frozen=True)
class GridPoint:
    """One row of the grid: the thresholds searched and what the table did with them."""

    values: dict[str, float]
    mttr_s: float
    success_rate: float
    noop_incident_actions: float
    unsafe_executed: int

    @property
    def feasible(self) -> bool:
        return self.noop_incident_actions <= MAX_NO_FAULT_ACTIONS and self.unsafe_executed == 0


@dataclass(frozen=True)
class Calibration:
    suite: str
    seed: int
    episodes: int
    rows: list[GridPoint]
    chosen: GridPoint | None
    thresholds: RuleThresholds | None  # the base table with the chosen values


def calibrate(suite: str | Suite = "default", seed: int | None = None, episodes: int | None = None,
              grid: Mapping[str, Sequence[float]] = GRID, base: RuleThresholds | None = None,
              progress: Callable[[int, int, GridPoint], None] | None = None) -> Calibration:
    """Run every grid point on the training suite and choose the best feasible one."""
    s = load_suite(suite) if isinstance(suite, str) else suite
    if s.name.startswith("eval"):
        raise CalibrationError(f"suite {s.name!r} is held out for evaluation; calibrate on the training suite")
    base = base or shipped_thresholds()
    known = set(base.as_dict())
    unknown = sorted(set(grid) - known)
    if unknown or not grid:
        raise CalibrationError(f"the grid must name thresholds of the table ({', '.join(sorted(known))}); "
                               f"unknown: {', '.join(unknown) or '(none given)'}")
    seed = s.seed if seed is None else seed
    names = list(grid)
    points = [dict(zip(names, combo)) for combo in itertools.product(*(grid[n] for n in names))]
    rows: list[GridPoint] = []
    for i, values in enumerate(points):
        ranker = RulesRanker(replace(base, **values))
        report = run_benchmark(s, {"rules": lambda inc, r=ranker: r}, seed, episodes)  # type: ignore[misc]
        r = report["rankers"]["rules"]
        row = GridPoint({k: float(v) for k, v in values.items()}, r["mttr_s"], r["success_rate"],
                        r["noop_incident_actions"], r["unsafe_executed"])
        rows.append(row)
        if progress:
            progress(i + 1, len(points), row)
    feasible = [(row.mttr_s, row.noop_incident_actions, i) for i, row in enumerate(rows) if row.feasible]
    chosen = rows[min(feasible)[2]] if feasible else None
    return Calibration(s.name, seed, episodes or s.incidents, rows, chosen,
                       replace(base, **chosen.values) if chosen else None)
