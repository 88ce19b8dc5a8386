"""`remediator benchmark --suite DIR`: a directory of traces as a suite, in the benchmark's JSON contract.

A replay judges decisions, not recoveries: nothing is executed, so there is no MTTR of the
agent to report (`mttr_s` and `p95_s` are null; the recording's own course is in each trace's
`recorded_after`). The contract's fields mean, per ranker:

* `success_rate` — the share of labelled faults that raised an alert on which the ranker's first
  action is a remedy on the faulty workload (`replay.judge`);
* `noop_incident_actions` — the share of fault-free stretches on which it changed anything;
* `actions_per_incident` — the share of decided traces on which it acted (at most one action is judged);
* `guard_denials` — candidates the guards denied before its choice; `unsafe_executed` — 0: nothing runs.

`per_fault` has the same per fault kind (`no_fault` for the fault-free stretches: its
`success_rate` is the share left alone). The whole replay report is under `replay`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from remediator.actions import PASSIVE_KINDS
from remediator.rank.base import Ranker
from remediator.replay.run import ReplayResult, replay_trace, summarize
from remediator.replay.trace import load_trace

__all__ = ["replay_benchmark"]

_PASSIVE = {k.value for k in PASSIVE_KINDS}


def _judged(results: Sequence[ReplayResult], name: str) -> list[ReplayResult]:
    return [r for r in results if name in r.decisions and r.decisions[name].right is not None]


def _rate(hits: int, n: int) -> float:
    return round(hits / n, 4) if n else 0.0


def replay_benchmark(paths: Sequence[Path], rankers: Mapping[str, Ranker], *, suite: str, seed: int,
                     progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    results = []
    for p in paths:
        results.append(replay_trace(load_trace(p), rankers))
        if progress:
            progress(1)
    summary = summarize(results, list(rankers))
    report: dict[str, Any] = {"suite": suite, "seed": seed, "episodes": len(results), "kind": "replay",
                              "rankers": {}, "per_fault": {}}
    for name in rankers:
        judged = _judged(results, name)
        acted = [r for r in judged if r.decisions[name].action not in _PASSIVE]
        s = summary[name]
        report["rankers"][name] = {
            "mttr_s": None, "p95_s": None,
            "success_rate": s["right_rate"] or 0.0,
            "actions_per_incident": _rate(len(acted), len(judged)),
            "noop_incident_actions": s["fault_free_acted_rate"] or 0.0,
            "guard_denials": sum(r.decisions[name].denials for r in judged),
            "unsafe_executed": 0,
            **s,
        }
    kinds = sorted({("no_fault" if r.trace.fault.is_none else r.trace.fault.kind) for r in results
                    if r.trace.fault is not None})
    for kind in kinds or ["no_fault"]:
        report["per_fault"][kind] = {}
        for name in rankers:
            mine = [r for r in _judged(results, name) if r.trace.fault is not None
                    and ("no_fault" if r.trace.fault.is_none else r.trace.fault.kind) == kind]
            report["per_fault"][kind][name] = {"mttr_s": None, "episodes": len(mine),
                                               "success_rate": _rate(sum(bool(r.decisions[name].right)
                                                                         for r in mine), len(mine))}
    report["replay"] = {"traces": [r.to_dict() for r in results], "summary": summary}
    return report
