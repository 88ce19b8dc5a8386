"""`remediator simulate` and `remediator benchmark`: the offline simulator mode."""

from __future__ import annotations

import contextlib
import statistics
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from remediator.commands.common import console, fail, inert, out, progress_bar, ray_adapter, write_json

SuiteOpt = Annotated[str, typer.Option("--suite", help="a shipped suite name (default, eval, ...) or a YAML file")]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="seed for the incidents (default: the suite's own)")]
JsonOpt = Annotated[Path | None, typer.Option("--json", help="write the JSON report here ('-' for stdout)")]


def _suite(name: str):  # type: ignore[no-untyped-def]
    from simulator.suite import SuiteError, load_suite

    try:
        return load_suite(name)
    except SuiteError as e:
        fail(str(e))


def register(app: typer.Typer) -> None:
    @app.command()
    def simulate(suite: SuiteOpt = "default",
                 ranker: Annotated[str, typer.Option("--ranker", help="oracle, rules, random, llm, rl, "
                                                     "dqn:FILE.zip, ppo:FILE.zip")] = "rules",
                 episodes: Annotated[int, typer.Option("--episodes", min=1)] = 20,
                 seed: SeedOpt = None, json: JsonOpt = None) -> None:
        """Run one ranker on simulated incidents and show what it did, incident by incident."""
        from remediator.benchmark import ranker_factory
        from remediator.guards import GuardPolicy
        from remediator.propose.catalog import CatalogProposer
        from remediator.rank.registry import RankerError
        from simulator.incident import Incident
        from simulator.runner import run_episode

        s = _suite(suite)
        seed = s.seed if seed is None else seed
        try:
            label, factory = ranker_factory(ranker, seed)
        except RankerError as e:
            fail(str(e))
        topology = s.topology.build()
        proposer, policy = CatalogProposer(), GuardPolicy()
        table = Table(title=inert(f"{label} on suite {s.name}, seed {seed}"))
        for col in ("#", "fault", "variant", "alert", "recovered", "time", "actions"):
            table.add_column(col)
        rows = []
        with progress_bar() as bar:
            task = bar.add_task(inert(f"simulate {label}"), total=episodes)
            for i, spec in enumerate(s.specs(seed=seed, count=episodes)):
                inc = Incident(topology, spec, s.horizon_s, s.dynamics)
                res = run_episode(inc, factory(inc), proposer, policy)
                rows.append({"fault": "+".join(spec.faults), "variant": spec.variant, "alert": inc.alert.name,
                             "service": spec.service, "recovered": res.recovered, "recovery_s": res.recovery_s,
                             "actions": res.kinds, "guard_denials": res.guard_denials,
                             "unsafe_executed": res.unsafe_executed})
                table.add_row(str(i), inert(rows[-1]["fault"]), inert(spec.variant or "-"), inert(inc.alert.name),
                              "yes" if res.recovered else "[red]no[/]", f"{res.recovery_s / 60:.1f}m",
                              inert(" ".join(k for k in res.kinds if k != "noop") or "noop"))
                bar.advance(task)
        out.print(table)
        times = [r["recovery_s"] for r in rows]
        summary = {"mttr_s": round(statistics.fmean(times), 2),
                   "success_rate": round(sum(r["recovered"] for r in rows) / len(rows), 4),
                   "unsafe_executed": sum(r["unsafe_executed"] for r in rows)}
        out.print(f"MTTR {summary['mttr_s'] / 60:.2f} min, success {summary['success_rate']:.1%}, "
                  f"unsafe executed {summary['unsafe_executed']}")
        write_json(json, {"suite": s.name, "seed": seed, "ranker": label, "episodes": rows, "summary": summary})

    @app.command()
    def benchmark(suite: SuiteOpt = "eval",
                  rankers: Annotated[str, typer.Option("--rankers", help="comma-separated rankers")] =
                  "oracle,rules,llm,random,rl",
                  seed: SeedOpt = None,
                  episodes: Annotated[int | None, typer.Option("--episodes", min=1,
                                                                  help="default: the suite's count")] = None,
                  json: JsonOpt = None,
                  plot: Annotated[Path | None, typer.Option("--plot", help="write a PNG plot here")] = None,
                  use_ray: Annotated[bool, typer.Option("--ray", help="shard the incidents over Ray workers "
                                                        "(pip install 'remediator[ray]')")] = False,
                  address: Annotated[str | None, typer.Option("--address", help="with --ray: a Ray cluster's "
                                                              "HEAD:PORT (default: Ray on this machine)")] = None,
                  workers: Annotated[int | None, typer.Option("--workers", min=1, help="with --ray: tasks in "
                                                              "flight (default: the cluster's CPUs)")] = None,
                  ) -> None:
        """Run every ranker on the same seeded incidents; table, JSON report and plot.

        `--suite DIR` (a directory of traces, e.g. from `remediator import nezha`) judges each
        ranker's first decision on the recorded incidents instead (docs/replay.md)."""
        from remediator.benchmark import plot_report, ranker_factory, run_benchmark
        from remediator.rank.registry import RankerError

        if (address or workers) and not use_ray:
            fail("--address and --workers go with --ray")
        if Path(suite).is_dir():
            _replay_suite(Path(suite), rankers, seed, json)
            return
        s = _suite(suite)
        seed = s.seed if seed is None else seed
        names = [r.strip() for r in rankers.split(",") if r.strip()]
        if not names:
            fail("--rankers names no ranker")
        try:
            for n in names:
                ranker_factory(n, seed)
        except RankerError as e:
            fail(str(e))
        count = episodes or s.incidents
        with progress_bar() as bar, _runner(use_ray, address, workers) as runner:
            tasks = {}

            def advance(label: str, n: int) -> None:
                if label not in tasks:
                    tasks[label] = bar.add_task(inert(f"benchmark {label}"), total=count)
                bar.advance(tasks[label], n)

            report = run_benchmark(s, names, seed, episodes, progress=advance, runner=runner)
        _print_report(report)
        write_json(json, report)
        if plot is not None:
            plot_report(report, plot)
            console.print(f"wrote {inert(plot)}", highlight=False)
        if any(r["unsafe_executed"] for r in report["rankers"].values()):
            console.print("[bold red]unsafe actions were executed[/]")
            raise typer.Exit(1)


@contextlib.contextmanager
def _runner(use_ray: bool, address: str | None, workers: int | None) -> Iterator[Any]:
    """None (the benchmark runs here) or a Ray runner inside a Ray session."""
    if not use_ray:
        yield None
        return
    distributed = ray_adapter()
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(distributed.ray_session(address, num_cpus=workers))
        except (ConnectionError, RuntimeError, ValueError) as e:
            fail(f"--ray: cannot start or join Ray{f' at {address}' if address else ''}: {e}")
        yield distributed.RayRunner(workers=workers)


def _replay_suite(directory: Path, rankers: str, seed: int | None, json: Path | None) -> None:
    from remediator.commands.replay import make_rankers, print_report
    from remediator.replay.report import replay_benchmark
    from remediator.replay.trace import TraceError, trace_paths

    paths = trace_paths([directory])
    if not paths:
        fail(f"--suite {directory}: no traces (*.json, *.json.gz) in it")
    names = [r.strip() for r in rankers.split(",") if r.strip() and r.strip() != "oracle"]
    if not names:
        fail("--rankers names no ranker a replay can run (the oracle needs the simulator's injected fault)")
    made = make_rankers(names, seed=seed or 0)
    with progress_bar() as bar:
        task = bar.add_task(inert(f"replay {directory.name}"), total=len(paths))
        try:
            report = replay_benchmark(paths, made, suite=str(directory), seed=seed or 0,
                                      progress=lambda n: bar.advance(task, n))
        except TraceError as e:
            fail(str(e))
    print_report(report["replay"], list(made))
    write_json(json, report)


def _print_report(report: dict) -> None:  # type: ignore[type-arg]
    t = Table(title=inert(f"suite {report['suite']} · seed {report['seed']} · {report['episodes']} incidents "
                          "(simulated time)"))
    for col in ("ranker", "MTTR", "p95", "success", "actions/inc", "acted on no-fault", "denials", "unsafe"):
        t.add_column(col, justify="right")
    for name, r in report["rankers"].items():
        t.add_row(inert(name), f"{r['mttr_s'] / 60:.2f}m", f"{r['p95_s'] / 60:.1f}m", f"{r['success_rate']:.1%}",
                  f"{r['actions_per_incident']:.2f}", f"{r['noop_incident_actions']:.1%}",
                  str(r["guard_denials"]), str(r["unsafe_executed"]))
    out.print(t)
    f = Table(title="MTTR (minutes) per fault")
    f.add_column("fault")
    names = list(report["rankers"])
    for n in names:
        f.add_column(inert(n), justify="right")
    for fault, by in report["per_fault"].items():
        f.add_row(inert(fault),
                  *(f"{by[n]['mttr_s'] / 60:.1f}" if by.get(n, {}).get("episodes") else "-" for n in names))
    out.print(f)
