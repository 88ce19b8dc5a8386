"""Simulator throughput on one core: env steps/s, episodes/s, cluster ticks/s, and SB3's own rate.

    taskset -c 0 .venv/bin/python benchmarks/sim_throughput.py [--seconds 10] [--branches 4]

One env step is one decision: observe (build the Snapshot from raw series and objects,
encode it), propose with the catalog, judge with the guards, act, and advance the
cluster by the decision interval (4 scrape ticks). Printed in the same run:
* the bare cluster tick rate, the baseline that shows what the seam costs;
* the env with `branches` trajectories explored from each sampled alert (`Incident.fork`), which
  simulates the run-up to each alert once per `branches` episodes;
* a fresh incident's run-up against a fork of it;
* SB3's DQN learning in the env (its own updates included), in env steps/s.
Random actions make long episodes; a trained policy's are a few decisions, so the run-up, and
with it `branches`, weighs more in training than here.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from simulator.cluster import Cluster
from simulator.env import RemediationEnv
from simulator.incident import Incident
from simulator.topology import generate


def env_steps(seconds: float, suite: str, branches: int = 1) -> tuple[float, float, float]:
    env = RemediationEnv(suite, branches=branches)
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


def run_up_vs_fork(suite: str, n: int = 20) -> tuple[float, float]:
    """Seconds per fresh incident (simulated up to its alert) and per fork of one."""
    env = RemediationEnv(suite)
    rng = random.Random(3)
    specs = [env.suite.sample(rng, env.topology) for _ in range(n)]
    start = time.perf_counter()
    incidents = [Incident(env.topology, s, env.suite.horizon_s, env.suite.dynamics) for s in specs]
    fresh = (time.perf_counter() - start) / n
    start = time.perf_counter()
    for inc in incidents:
        inc.fork()
    return fresh, (time.perf_counter() - start) / n


def sb3_rate(seconds: float, suite: str) -> float:
    """Env steps/s while SB3's DQN learns (the shipped hyperparameters, updates from step 500)."""
    from remediator.train import train

    steps = max(500, int(seconds * 40))
    with tempfile.TemporaryDirectory() as tmp:
        res = train("dqn", suite, steps, 0, Path(tmp) / "p.zip", curve=False,
                    hyperparams={"learning_starts": 500})
    return steps / res.metadata.train_wall_s


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--suite", default="default")
    p.add_argument("--branches", type=int, default=4)
    args = p.parse_args()
    steps, eps, ticks = env_steps(args.seconds, args.suite)
    bsteps, beps, _ = env_steps(args.seconds, args.suite, args.branches)
    bare = bare_ticks(args.seconds / 2)
    fresh, fork = run_up_vs_fork(args.suite)
    sb3 = sb3_rate(args.seconds, args.suite)
    t = Table(title=f"simulator throughput, suite {args.suite}, one process")
    for col in ("measure", "per second"):
        t.add_column(col, justify="right")
    t.add_row("env steps (decisions)", f"{steps:,.0f}")
    t.add_row("episodes (incidents)", f"{eps:,.1f}")
    t.add_row("cluster ticks inside the env", f"{ticks:,.0f}")
    t.add_row("bare cluster ticks (baseline)", f"{bare:,.0f}")
    t.add_row("env steps / bare ticks", f"{steps / bare:.3f}")
    t.add_row(f"env steps, branches={args.branches}", f"{bsteps:,.0f} ({bsteps / steps:.2f}x)")
    t.add_row(f"episodes, branches={args.branches}", f"{beps:,.1f} ({beps / eps:.2f}x)")
    t.add_row("incidents simulated to their alert", f"{1 / fresh:,.1f}")
    t.add_row("forks of an incident at its alert", f"{1 / fork:,.1f} ({fresh / fork:.0f}x)")
    t.add_row("env steps while SB3's DQN learns", f"{sb3:,.0f}")
    t.add_row("goal (issue 14): env steps", "20,000")
    Console().print(t)


if __name__ == "__main__":
    main()
