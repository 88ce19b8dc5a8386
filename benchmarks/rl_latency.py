"""Decision latency of the RL ranker: p50 and p99 over 1,000 decisions.

    .venv/bin/python benchmarks/rl_latency.py [--model rl|dqn:FILE.zip|ppo:FILE.zip] [--decisions 1000]

The decisions are real ones: the raw inputs (alert, metric series, Kubernetes objects,
history) are captured from simulated incidents of a suite first, then replayed through the
timed code. Rows:

* `policy network`: the forward pass alone (encoded observation -> scores);
* `rank`: `RLRanker.rank` (encode the Snapshot, forward pass, order the candidates);
* `snapshot`, `propose`: `build_snapshot` from the raw inputs, the catalog proposer;
* `whole decision`: snapshot -> encode -> propose with the catalog -> rank -> guards
  (`remediator.agent.decide`), what the live agent runs per alert evaluation.

Goals (DESIGN/issue 3): ranking p50 <= 1 ms, whole decision p50 <= 20 ms on this machine.
Figures, not a test: they move with the machine's load.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from remediator.actions import ACTION_INDEX, ACTION_KINDS
from remediator.agent import decide
from remediator.encoding import encode
from remediator.guards import Executed, GuardPolicy
from remediator.propose.catalog import CatalogProposer
from remediator.rank.rl import RLRanker, load_rl_ranker
from remediator.rank.rules import RulesRanker
from remediator.snapshot import Alert, Attempt, Series, build_snapshot
from simulator.cluster import TICK_S
from simulator.incident import Incident
from simulator.suite import load_suite


@dataclass(frozen=True)
class RawDecision:
    """What the observer hands the agent at one decision, before any parsing."""

    alert: Alert
    series: list[Series]
    objects: list[dict[str, Any]]
    now: float
    history: tuple[Attempt, ...]
    executed: tuple[Executed, ...]


def capture(suite_name: str, seed: int, count: int) -> list[RawDecision]:
    """Raw inputs of `count` decisions, from incidents driven by the rules table."""
    suite = load_suite(suite_name)
    topology = suite.topology.build()
    proposer, policy, rules = CatalogProposer(), GuardPolicy(), RulesRanker()
    out: list[RawDecision] = []
    for spec in suite.specs(seed=seed, count=max(count, suite.incidents)):
        inc = Incident(topology, spec, suite.horizon_s)
        while not inc.done and len(out) < count:
            c = inc.cluster
            series = c.series(until=c.now - TICK_S, alert_start=inc.alert_at)
            raw = RawDecision(inc.alert, series, c.objects(), c.now, tuple(inc.attempts), tuple(inc.executed))
            out.append(raw)
            snap = build_snapshot(raw.alert, raw.series, raw.objects, now=raw.now, history=raw.history)
            choice = decide(snap, proposer.propose(snap), rules, inc.executed, policy, inc.now)
            if choice.candidate is None:
                break
            inc.execute(choice.candidate.action)
        if len(out) >= count:
            break
    return out


def timed(fn: Callable[[], object], repeat: int = 1) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat * 1000.0


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q * 100.0))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="rl", help="rl (the shipped policy), dqn:FILE.zip or ppo:FILE.zip")
    ap.add_argument("--decisions", type=int, default=1000)
    ap.add_argument("--suite", default="eval", help="where the decisions come from (nothing is trained here)")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)

    name, _, path = args.model.partition(":")
    ranker: RLRanker = load_rl_ranker(path or None, algo=None if name == "rl" else name)
    console = Console()
    console.print(f"model: {args.model} ({ranker.algo}, trained on {ranker.metadata.suite}, "
                  f"{ranker.metadata.timesteps} steps); torch threads: {torch.get_num_threads()}")
    t0 = time.perf_counter()
    raws = capture(args.suite, args.seed, args.decisions)
    took = time.perf_counter() - t0
    console.print(f"captured {len(raws)} decisions from suite {args.suite} in {took:.1f}s")

    proposer, policy = CatalogProposer(), GuardPolicy()
    prepared = []
    for r in raws:
        snap = build_snapshot(r.alert, r.series, r.objects, now=r.now, history=r.history)
        cands = proposer.propose(snap)
        mask = np.zeros(len(ACTION_KINDS), dtype=np.bool_)
        for c in cands:
            mask[ACTION_INDEX[c.kind]] = True
        prepared.append((r, snap, cands, encode(snap), mask))

    rows: dict[str, list[float]] = {k: [] for k in ("policy network", "rank", "snapshot", "propose",
                                                    "guards (decide - rank)", "whole decision")}
    for r, snap, cands, _obs, _mask in prepared[:50]:  # warm up caches and torch's allocator
        ranker.rank(snap, cands)
        decide(snap, cands, ranker, r.executed, policy, r.now)
    gc.collect()
    for r, snap, cands, obs, mask in prepared:
        rows["policy network"].append(timed(lambda obs=obs, mask=mask: ranker.action_scores(obs, mask)))
        rows["rank"].append(timed(lambda snap=snap, cands=cands: ranker.rank(snap, cands)))
        rows["snapshot"].append(timed(lambda r=r: build_snapshot(r.alert, r.series, r.objects, now=r.now,
                                                                 history=r.history)))
        rows["propose"].append(timed(lambda snap=snap: proposer.propose(snap)))
        d = timed(lambda snap=snap, cands=cands, r=r: decide(snap, cands, ranker, r.executed, policy, r.now))
        rows["guards (decide - rank)"].append(max(d - rows["rank"][-1], 0.0))

        def whole(r: RawDecision = r) -> None:
            s = build_snapshot(r.alert, r.series, r.objects, now=r.now, history=r.history)
            decide(s, proposer.propose(s), ranker, r.executed, policy, r.now)

        rows["whole decision"].append(timed(whole))

    table = Table(title=f"decision latency over {len(prepared)} decisions (milliseconds)")
    for col in ("step", "p50", "p99", "mean", "goal p50"):
        table.add_column(col, justify="right" if col != "step" else "left")
    goals = {"rank": 1.0, "whole decision": 20.0}
    for label, vals in rows.items():
        p50 = percentile(vals, 0.5)
        goal = goals.get(label)
        mark = "" if goal is None else (f"[green]<= {goal:g}[/]" if p50 <= goal else f"[red]> {goal:g}[/]")
        p99, mean = percentile(vals, 0.99), statistics.fmean(vals)
        table.add_row(label, f"{p50:.3f}", f"{p99:.3f}", f"{mean:.3f}", mark)
    console.print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
