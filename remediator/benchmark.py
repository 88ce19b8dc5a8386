"""The offline benchmark: every ranker on the same seeded incidents, the same loop, one report.

This is wiring, not domain: it is the one place in `remediator` (with the CLI) that
imports the simulator.
"""

from __future__ import annotations

import math
import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from remediator.guards import GuardPolicy
from remediator.propose.base import Proposer
from remediator.propose.catalog import CatalogProposer
from remediator.rank import RandomRanker, Ranker
from remediator.rank.registry import make_ranker
from simulator.incident import Incident, IncidentSpec
from simulator.oracle import OracleRanker
from simulator.runner import EpisodeResult, run_episode
from simulator.suite import Suite

RankerFactory = Callable[[Incident], Ranker]
BASE_RANKERS = ("oracle", "rules", "llm", "random")


def ranker_factory(spec: str, seed: int) -> tuple[str, RankerFactory]:
    """`oracle` (knows the injected fault) or any ranker of `remediator.rank.registry`.

    Every incident's result depends on that incident alone (the random ranker draws from a
    stream of its own per incident), so any split of the incidents over workers gives the
    same episodes as one run through them all."""
    if spec == "oracle":
        return "oracle", OracleRanker
    if spec == "random":
        make_ranker(spec)  # the registry stays the one place that knows the names
        return "random", lambda inc: RandomRanker(seed * 1_000_003 + inc.spec.seed)
    ranker = make_ranker(spec, seed=seed)
    return spec, lambda inc: ranker


class EpisodeRunner(Protocol):
    """Runs one ranker on a list of incidents and returns their results in the same order:
    `LocalRunner` here, or `remediator.distributed.RayRunner` over a Ray cluster."""

    def run(self, suite: Suite, ranker: str | RankerFactory, seed: int, specs: Sequence[IncidentSpec],
            proposer: Proposer, policy: GuardPolicy,
            progress: Callable[[int], None] | None = None) -> list[EpisodeResult]: ...


def run_specs(suite: Suite, ranker: str | RankerFactory, seed: int, specs: Sequence[IncidentSpec],
              proposer: Proposer | None = None, policy: GuardPolicy | None = None,
              progress: Callable[[int], None] | None = None) -> list[EpisodeResult]:
    """One ranker (a name, or a factory) on the given incidents of `suite`, in order."""
    factory = ranker_factory(ranker, seed)[1] if isinstance(ranker, str) else ranker
    topology = suite.topology.build()
    proposer = proposer or CatalogProposer()
    policy = policy or GuardPolicy()
    out = []
    for spec in specs:
        incident = Incident(topology, spec, suite.horizon_s, suite.dynamics)
        out.append(run_episode(incident, factory(incident), proposer, policy))
        if progress:
            progress(1)
    return out


class LocalRunner:
    """Every incident in this process, one after the other."""

    def run(self, suite: Suite, ranker: str | RankerFactory, seed: int, specs: Sequence[IncidentSpec],
            proposer: Proposer, policy: GuardPolicy,
            progress: Callable[[int], None] | None = None) -> list[EpisodeResult]:
        return run_specs(suite, ranker, seed, specs, proposer, policy, progress)


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


def run_benchmark(suite: Suite, rankers: Sequence[str] | Mapping[str, RankerFactory], seed: int,
                  episodes: int | None = None, proposer: Proposer | None = None, policy: GuardPolicy | None = None,
                  progress: Callable[[str, int], None] | None = None,
                  runner: EpisodeRunner | None = None) -> dict[str, Any]:
    """Run every ranker on the same incidents; returns the JSON report (DESIGN section 7).

    `rankers` are names (`ranker_factory`), or labels with a factory each (the calibration's
    candidate tables). `runner` runs each ranker's incidents (default: here, in order)."""
    specs: list[IncidentSpec] = suite.specs(seed=seed, count=episodes)
    proposer = proposer or CatalogProposer()
    policy = policy or GuardPolicy()
    runner = runner or LocalRunner()
    if isinstance(rankers, Mapping):
        named: list[tuple[str, str | RankerFactory]] = list(rankers.items())
    else:
        named = [(ranker_factory(r, seed)[0], r) for r in rankers]
    reports: dict[str, RankerReport] = {}
    for label, ranker in named:
        rep = reports[label] = RankerReport(label)
        start = time.perf_counter()
        tick = (lambda n, label=label: progress(label, n)) if progress else None
        rep.episodes = runner.run(suite, ranker, seed, specs, proposer, policy, tick)
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
