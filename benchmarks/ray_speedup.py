"""The speed-up of the Ray benchmark runner with 2 workers over 1, measured in the same run.

    .venv/bin/python benchmarks/ray_speedup.py [--suite eval] [--rankers oracle,rules,rl] [--address HEAD:PORT]

Starts Ray on this machine with 2 CPUs (or joins `--address`), warms both workers up (each
imports torch and the simulator once), then runs the same benchmark three ways: in this
process without Ray, over Ray with at most 1 task in flight, and with 2 (these two alternate,
`--repeat` times each, the fastest of each counting). The reports must be equal (wall times
aside); the table gives the wall time of each and the speed-up of 2 over 1.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

from rich.console import Console
from rich.table import Table

from remediator.benchmark import run_benchmark
from remediator.distributed import RayRunner, ray_session
from simulator.suite import load_suite


def _timed(fn: Any) -> tuple[dict[str, Any], float]:
    start = time.perf_counter()
    report = fn()
    return report, time.perf_counter() - start


def _strip(report: dict[str, Any]) -> dict[str, Any]:
    for r in report["rankers"].values():
        r.pop("wall_s", None)
    return report


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--suite", default="eval")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--rankers", default="oracle,rules,rl")
    p.add_argument("--shard", type=int, default=10, help="incidents per Ray task")
    p.add_argument("--address", default=None)
    p.add_argument("--repeat", type=int, default=3, help="runs of each, alternating; the fastest counts")
    args = p.parse_args()
    suite, rankers = load_suite(args.suite), args.rankers.split(",")
    console = Console(stderr=True)
    console.print(f"local run: {args.suite}, seed {args.seed}, {suite.incidents} incidents x {len(rankers)} rankers")
    local, t_local = _timed(lambda: run_benchmark(suite, rankers, args.seed))
    with ray_session(args.address, num_cpus=2):
        console.print("warming up 2 Ray workers")
        run_benchmark(suite, ["rules"], args.seed, episodes=4, runner=RayRunner(workers=2, shard=2))
        runs: dict[int, tuple[dict[str, Any], float, int]] = {}
        # 1 and 2 workers alternate, and each keeps its fastest repeat: on a shared machine the
        # neighbours' load comes and goes, and the fastest run is the one they disturbed least.
        for rep in range(args.repeat):
            for workers in (1, 2):
                console.print(f"Ray, {workers} worker(s), repeat {rep + 1}/{args.repeat}")
                runner = RayRunner(workers=workers, shard=args.shard)
                report, secs = _timed(lambda r=runner: run_benchmark(suite, rankers, args.seed, runner=r))
                if workers not in runs or secs < runs[workers][1]:
                    runs[workers] = (report, secs, len(runner.nodes))
    same = all(_strip(dict(runs[w][0])) == _strip(dict(local)) for w in runs)
    t = Table(title=f"benchmark {args.suite} seed {args.seed}, {suite.incidents} incidents, rankers {args.rankers}")
    for col in ("run", f"wall s (best of {args.repeat})", "vs 1 Ray worker", "report equals local"):
        t.add_column(col, justify="right")
    t.add_row("local, no Ray", f"{t_local:.1f}", "", "")
    for w, (_, secs, nodes) in runs.items():
        t.add_row(f"Ray, {w} worker(s), {nodes} node(s)", f"{secs:.1f}", f"{runs[1][1] / secs:.2f}x",
                  "yes" if same else "NO")
    Console().print(t)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    Console().print(f"speed-up of 2 Ray workers over 1: {runs[1][1] / runs[2][1]:.2f}x "
                    f"({os.cpu_count()} CPUs here, load average {load}: a shared machine gives less)", highlight=False)
    if not same:
        raise SystemExit("the Ray reports differ from the local one")


if __name__ == "__main__":
    main()
