"""Calibrate the `rules` ranker on the training suite: the whole grid as a table, and the chosen row.

    .venv/bin/python benchmarks/calibrate_rules.py [--suite default] [--seed 1] [--episodes N]

The search is `remediator.calibrate.calibrate` (grid `GRID`, constraint: acts on at most 5% of
no-fault incidents, minimise MTTR). The chosen values are what `remediator/data/rules.yaml`
ships; the script prints them as YAML to paste there. It never looks at the evaluation suites.
"""

from __future__ import annotations

import argparse
import time

from rich.console import Console
from rich.table import Table

from remediator.calibrate import GRID, MAX_NO_FAULT_ACTIONS, GridPoint, calibrate
from remediator.rank.thresholds import as_yaml


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--suite", default="default")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--episodes", type=int, default=None)
    args = p.parse_args()
    console = Console(stderr=True)
    start = time.perf_counter()

    def progress(i: int, n: int, row: GridPoint) -> None:
        console.print(f"[{i:2d}/{n}] {row.values} -> MTTR {row.mttr_s / 60:.2f} min, "
                      f"no-fault acted {row.noop_incident_actions:.1%} ({time.perf_counter() - start:.0f}s)",
                      highlight=False)

    result = calibrate(args.suite, args.seed, args.episodes, progress=progress)
    t = Table(title=f"rules calibration on suite {result.suite}, seed {result.seed}, {result.episodes} incidents "
                    f"(feasible: acted on no-fault <= {MAX_NO_FAULT_ACTIONS:.0%})")
    for col in (*GRID, "MTTR", "success", "acted on no-fault", "feasible", "chosen"):
        t.add_column(col, justify="right")
    for row in result.rows:
        t.add_row(*(f"{row.values[k]:g}" for k in GRID), f"{row.mttr_s / 60:.2f}m", f"{row.success_rate:.1%}",
                  f"{row.noop_incident_actions:.1%}", "yes" if row.feasible else "no",
                  "<==" if row is result.chosen else "")
    out = Console(width=150)
    out.print(t)
    if result.chosen is None or result.thresholds is None:
        out.print("no grid point is feasible")
        raise SystemExit(1)
    c = result.chosen
    out.print(f"chosen: {c.values}: MTTR {c.mttr_s / 60:.2f} min, success {c.success_rate:.1%}, "
              f"acted on {c.noop_incident_actions:.1%} of no-fault incidents", highlight=False)
    out.print("as remediator/data/rules.yaml:\n" + as_yaml(result.thresholds), highlight=False)


if __name__ == "__main__":
    main()
