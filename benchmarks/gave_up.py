"""Where a ranker hands over too early: it escalated after a remedy of its own did not work, in an
incident the oracle recovered without a human (issue 14: "when a remedy did not work, it tries the
next plausible one before it escalates").

    .venv/bin/python benchmarks/gave_up.py [--suite eval] [--seed 7] [--rankers rules,rl]

Prints, per ranker, how many incidents that was, the minutes they cost over the oracle's, that cost
as a share of the ranker's whole excess over the oracle, and the faults they came from.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from remediator.actions import PASSIVE_KINDS, ActionKind  # noqa: E402
from remediator.benchmark import run_specs  # noqa: E402
from simulator.runner import EpisodeResult  # noqa: E402
from simulator.suite import load_suite  # noqa: E402

_PASSIVE = {k.value for k in PASSIVE_KINDS}


def gave_up(episode: EpisodeResult, oracle: EpisodeResult) -> bool:
    """It escalated after at least one remedy, where the oracle recovered without escalating."""
    kinds = episode.kinds
    if ActionKind.ESCALATE.value not in kinds:
        return False
    before = kinds[:kinds.index(ActionKind.ESCALATE.value)]
    return (any(k not in _PASSIVE for k in before) and oracle.recovered
            and ActionKind.ESCALATE.value not in oracle.kinds)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--suite", default="eval")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--rankers", default="rules,rl", help="comma-separated, as `remediator benchmark`'s")
    args = ap.parse_args(argv)
    suite = load_suite(args.suite)
    specs = suite.specs(seed=args.seed)
    oracle = run_specs(suite, "oracle", args.seed, specs)
    table = Table(title=f"escalated after a remedy where the oracle needed no human: {args.suite}, seed {args.seed}, "
                        f"{len(specs)} incidents")
    for col in ("ranker", "incidents", "minutes over the oracle", "share of its excess", "faults"):
        table.add_column(col)
    for name in [r for r in args.rankers.split(",") if r]:
        runs = run_specs(suite, name, args.seed, specs)
        excess = sum(e.recovery_s - o.recovery_s for e, o in zip(runs, oracle, strict=True))
        hits = [(e, o) for e, o in zip(runs, oracle, strict=True) if gave_up(e, o)]
        cost = sum(e.recovery_s - o.recovery_s for e, o in hits)
        faults = Counter(e.fault for e, _ in hits)
        table.add_row(name, str(len(hits)), f"{cost / 60:.1f}",
                      f"{cost / excess:.0%}" if excess > 0 else "-",
                      ", ".join(f"{f} {n}" for f, n in faults.most_common()))
    Console(width=200).print(table)  # the faults column stays on one line
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
