"""Simulator throughput: env steps/s, cluster ticks/s and episodes/s on one core.

    taskset -c 0 .venv/bin/python benchmarks/sim_throughput.py [--seconds 10]

One env step is one decision: observe (build the Snapshot from raw series and objects,
encode it), propose with the catalog, judge with the guards, act, and advance the
cluster by the decision interval (4 scrape ticks). The bare cluster tick rate is printed
as the baseline measured in the same run, so the ratio shows what the seam costs.
"""

from __future__ import annotations

import argparse
import random
import time

import numpy as np
from rich.console import Console
from rich.table import Table

from simulator.cluster import Cluster
from simulator.env import RemediationEnv
from simulator.topology import generate


def env_steps(seconds: float, suite: str) -> tuple[float, float, float]:
    env = RemediationEnv(suite)
    env.reset(seed=1)
    rng = np.random.default_rng(1)
    steps = episodes = 0
    ticks0 = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        a = int(rng.choice(np.flatnonzero(env.action_masks())))
        _, _, term, trunc, _ = env.step(a)
        steps += 1
        if term or trunc:
            assert env.incident is not None
            ticks0 += len(env.incident.cluster._frames)
            env.reset()
            episodes += 1
    wall = time.perf_counter() - start
    return steps / wall, episodes / wall, ticks0 / wall


def bare_ticks(seconds: float) -> float:
    topo = generate(12, 3)
    cluster = Cluster(topo, topo.services[0].name, random.Random(1))
    n = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        cluster.step()
        n += 1
    return n / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--suite", default="default")
    args = p.parse_args()
    steps, eps, ticks = env_steps(args.seconds, args.suite)
    bare = bare_ticks(args.seconds / 2)
    t = Table(title=f"simulator throughput, suite {args.suite}, one process")
    for col in ("measure", "per second"):
        t.add_column(col, justify="right")
    t.add_row("env steps (decisions)", f"{steps:,.0f}")
    t.add_row("episodes (incidents)", f"{eps:,.1f}")
    t.add_row("cluster ticks inside the env", f"{ticks:,.0f}")
    t.add_row("bare cluster ticks (baseline)", f"{bare:,.0f}")
    t.add_row("env steps / bare ticks", f"{steps / bare:.3f}")
    t.add_row("goal: env steps", "5,000")
    Console().print(t)


if __name__ == "__main__":
    main()
