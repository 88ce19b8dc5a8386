"""The offline benchmark: every ranker on the same seeded incidents, the same loop, one report.

This is wiring, not domain: it is the one place in `remediator` (with the CLI) that
imports the simulator.
"""

from __future__ import annotations

import math
import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from remediator.guards import GuardPolicy
from remediator.propose.base import Proposer
from remediator.propose.catalog import CatalogProposer
from remediator.rank import Ranker
from remediator.rank.registry import make_ranker
from simulator.incident import Incident, IncidentSpec
from simulator.oracle import OracleRanker
from simulator.runner import EpisodeResult, run_episode
from simulator.suite import Suite

RankerFactory = Callable[[Incident], Ranker]
BASE_RANKERS = ("oracle", "rules", "llm", "random")


def ranker_factory(spec: str, seed: int) -> tuple[str, RankerFactory]:
    """`oracle` (knows the injected fault) or any ranker of `remediator.rank.registry`."""
    if spec == "oracle":
        return "oracle", OracleRanker
    ranker = make_ranker(spec, seed=seed)
    return spec, lambda inc: ranker


@dataclass
class RankerReport:
    name: str
    episodes: list[EpisodeResult] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        eps = self.episodes
        times = sorted(e.recovery_s for e in eps)
        no_fault = [e for e in eps if e.fault == "no_fault"]
        return {
            "mttr_s": round(statistics.fmean(times), 2) if times else 0.0,
            "p95_s": round(_percentile(times, 0.95), 2),
            "success_rate": round(sum(e.recovered for e in eps) / len(eps), 4) if eps else 0.0,
            "actions_per_incident": round(statistics.fmean(e.actions for e in eps), 3) if eps else 0.0,
            "noop_incident_actions": round(sum(e.acted_on_no_fault for e in no_fault) / len(no_fault), 4)
            if no_fault else 0.0,
            "guard_denials": sum(e.guard_denials for e in eps),
            "unsafe_executed": sum(e.unsafe_executed for e in eps),
            "wall_s": round(self.seconds, 2),
        }


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    k = max(0, math.ceil(q * len(sorted_values)) - 1)
    return float(sorted_values[k])


def run_benchmark(suite: Suite, rankers: Sequence[str], seed: int, episodes: int | None = None,
                  proposer: Proposer | None = None, policy: GuardPolicy | None = None,
                  progress: Callable[[str, int], None] | None = None) -> dict[str, Any]:
    """Run every ranker on the same incidents; returns the JSON report (DESIGN section 7)."""
    specs: list[IncidentSpec] = suite.specs(seed=seed, count=episodes)
    topology = suite.topology.build()
    proposer = proposer or CatalogProposer()
    policy = policy or GuardPolicy()
    factories = [ranker_factory(r, seed) for r in rankers]
    reports: dict[str, RankerReport] = {}
    for label, factory in factories:
        rep = reports[label] = RankerReport(label)
        start = time.perf_counter()
        for spec in specs:
            incident = Incident(topology, spec, suite.horizon_s)
            rep.episodes.append(run_episode(incident, factory(incident), proposer, policy))
            if progress:
                progress(label, 1)
        rep.seconds = time.perf_counter() - start
    per_fault: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    per_family: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for label, rep in reports.items():
        for key, table in (("fault", per_fault), ("family", per_family)):
            groups: dict[str, list[EpisodeResult]] = defaultdict(list)
            for e in rep.episodes:
                groups[getattr(e, key)].append(e)
            for group, eps in groups.items():
                table[group][label] = {
                    "mttr_s": round(statistics.fmean(e.recovery_s for e in eps), 2),
                    "success_rate": round(sum(e.recovered for e in eps) / len(eps), 4),
                    "episodes": len(eps),
                }
    # Every fault of the suite is listed, also one the drawn incidents missed (0 episodes).
    for fault in suite.faults:
        for label in reports:
            per_fault[fault].setdefault(label, {"mttr_s": None, "success_rate": None, "episodes": 0})
    return {
        "suite": suite.name,
        "seed": seed,
        "episodes": len(specs),
        "horizon_s": suite.horizon_s,
        "rankers": {label: rep.summary() for label, rep in reports.items()},
        "per_fault": {k: per_fault[k] for k in sorted(per_fault)},
        "per_family": {k: per_family[k] for k in sorted(per_family)},
    }


def plot_report(report: dict[str, Any], path: Path) -> None:
    """MTTR and success rate per ranker, overall and per fault family, as one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rankers = list(report["rankers"])
    families = list(report["per_family"])
    fig, axes = plt.subplots(1, 2, figsize=(13, 5), gridspec_kw={"width_ratios": [3, 1]})
    width = 0.8 / max(len(rankers), 1)
    for i, r in enumerate(rankers):
        xs = [j + i * width for j in range(len(families))]
        ys = [(report["per_family"][f].get(r, {}).get("mttr_s") or 0.0) / 60.0 for f in families]
        axes[0].bar(xs, ys, width, label=r)
    axes[0].set_xticks([j + 0.4 - width / 2 for j in range(len(families))], families, rotation=20)
    axes[0].set_ylabel("MTTR (simulated minutes)")
    axes[0].set_title(f"MTTR per fault family — suite {report['suite']}, seed {report['seed']}, "
                      f"{report['episodes']} incidents")
    axes[0].legend()
    succ = [report["rankers"][r]["success_rate"] * 100 for r in rankers]
    mttr = [report["rankers"][r]["mttr_s"] / 60.0 for r in rankers]
    bars = axes[1].bar(rankers, succ, color="tab:green")
    for bar, m in zip(bars, mttr):
        axes[1].annotate(f"MTTR {m:.1f}m", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                         ha="center", va="bottom", fontsize=8)
    axes[1].set_ylim(0, 110)
    axes[1].set_ylabel("recovered within horizon (%)")
    axes[1].set_title("success rate")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
