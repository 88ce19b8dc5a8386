"""`remediator record`, `remediator replay` and `remediator import`: recorded incidents (docs/replay.md)."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from remediator.commands.common import console, fail, inert, out, progress_bar, write_json

RankerOpt = Annotated[list[str] | None, typer.Option(
    "--ranker", help="rules, random, llm, rl, dqn:FILE.zip, ppo:FILE.zip (repeatable; default rules and rl)")]
JsonOpt = Annotated[Path | None, typer.Option("--json", help="write the JSON report here ('-' for stdout)")]
DEFAULT_RANKERS = ("rules", "rl")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def duration_s(text: str, flag: str) -> float:
    """`40m`, `1h30m`, `90s` or plain seconds."""
    try:
        return float(text)
    except ValueError:
        pass
    parts = _DURATION.findall(text)
    if not parts or "".join(a + b for a, b in parts) != text.strip():
        fail(f"{flag} {text!r}: expected a duration such as 40m, 1h30m, 90s")
    return sum(float(n) * _UNIT_S[u] for n, u in parts)


def make_rankers(specs: list[str] | None, seed: int = 0) -> dict[str, Any]:
    from remediator.rank.registry import RankerError, make_ranker

    out_: dict[str, Any] = {}
    for spec in specs or list(DEFAULT_RANKERS):
        if spec == "oracle":
            fail("--ranker oracle needs the simulator's injected fault; a trace has only its label")
        try:
            out_[spec] = make_ranker(spec, seed=seed)
        except RankerError as e:
            fail(f"--ranker {spec}: {e}")
    return out_


def register(app: typer.Typer) -> None:
    _register_record(app)
    _register_replay(app)
    imports = typer.Typer(help="Turn a labelled dataset into traces.", no_args_is_help=True)
    _register_import(imports)
    app.add_typer(imports, name="import")


def _alert_from(cfg: Any, alert: str | None, incident: int | None) -> tuple[Any, float | None]:
    """The alert to record (and when the agent decided on it, for an incident from the ledger)."""
    from remediator.commands.live import _ledger, _read_payload

    if (alert is None) == (incident is None):
        fail("give exactly one of --alert PAYLOAD.json and --incident ID")
    if alert is not None:
        firing = [a.alert for a in _read_payload(alert) if a.alert.status == "firing"]
        if not firing:
            fail(f"--alert {alert}: the payload has no firing alert")
        if len(firing) > 1:
            console.print(f"the payload has {len(firing)} firing alerts; recording the first, "
                          f"{inert(firing[0].name)}", highlight=False)
        return firing[0], None
    with _ledger(cfg) as ledger:
        row = ledger.incident(int(incident or 0))
        if row is None:
            fail(f"--incident {incident}: no such incident in {cfg.store}")
        decided = [s["at"] for s in ledger.snapshots_of(row.id) if s["purpose"] == "decide"]
        return row.alert, (min(decided) if decided else None)


def _register_record(app: typer.Typer) -> None:
    @app.command()
    def record(
        config: Annotated[Path, typer.Option("--config", help="the agent's YAML configuration (Prometheus, "
                                                               "Kubernetes, ledger)")],
        out_path: Annotated[Path, typer.Option("--out", help="the trace to write (.json or .json.gz)")],
        alert: Annotated[str | None, typer.Option("--alert", help="an Alertmanager webhook payload ('-': stdin)")]
        = None,
        incident: Annotated[int | None, typer.Option("--incident", help="an incident of the ledger")] = None,
        before: Annotated[str, typer.Option("--before", help="recorded before the alert started")] = "40m",
        after: Annotated[str, typer.Option("--after", help="recorded after it (at most until now)")] = "30m",
    ) -> None:
        """Record an incident from the live Prometheus and Kubernetes API as a trace."""
        from remediator.commands.live import _config, _kube_api
        from remediator.live.config import ConfigError
        from remediator.live.observer import ObservationError
        from remediator.live.wiring import make_observer
        from remediator.replay.record import RecordError
        from remediator.replay.record import record as do_record
        from remediator.replay.trace import save_trace

        before_s, after_s = duration_s(before, "--before"), duration_s(after, "--after")
        cfg = _config(config)
        if cfg.prometheus is None:
            fail(str(cfg.error("prometheus", "recording needs prometheus.url")))
        the_alert, decided = _alert_from(cfg, alert, incident)
        try:
            observer = make_observer(cfg, kube_api=_kube_api(cfg))
        except ConfigError as e:
            fail(str(e))
        with progress_bar() as bar:
            task = bar.add_task(inert(f"record {the_alert.name}"), total=None)

            def progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            try:
                trace = do_record(observer, the_alert, before_s=before_s, after_s=after_s, now=time.time(),
                                  decide_at=decided, source={"prometheus": cfg.prometheus.url}, progress=progress)
            except (RecordError, ObservationError) as e:
                fail(f"cannot record {the_alert.name}: {e}", code=1)
        save_trace(trace, out_path)
        n = sum(len(s.points) for s in trace.series)
        out.print(f"wrote {inert(out_path)}: {len(trace.series)} series, {n} samples, {len(trace.objects)} objects"
                  + (f"; missing: {inert(', '.join(sorted(trace.missing)))}" if trace.missing else ""))


def _register_replay(app: typer.Typer) -> None:
    @app.command()
    def replay(
        traces: Annotated[list[Path], typer.Argument(help="trace files or directories of them")],
        ranker: RankerOpt = None,
        json: JsonOpt = None,
    ) -> None:
        """Replay recorded incidents: each ranker's first decision (exact), then the recording's own course."""
        from remediator.replay.run import replay_trace, summarize
        from remediator.replay.trace import TraceError, load_trace, trace_paths

        paths = trace_paths(traces)
        if not paths:
            fail("no trace files found in " + ", ".join(str(t) for t in traces))
        rankers = make_rankers(ranker)
        results = []
        with progress_bar() as bar:
            task = bar.add_task("replay", total=len(paths))
            for p in paths:
                try:
                    trace = load_trace(p)
                except TraceError as e:
                    fail(str(e))
                results.append(replay_trace(trace, rankers))
                bar.advance(task)
        report = {"traces": [r.to_dict() for r in results], "summary": summarize(results, list(rankers))}
        print_report(report, list(rankers))
        write_json(json, report)


def print_report(report: dict[str, Any], rankers: list[str]) -> None:
    table = Table(title="replay: first decision per trace (exact); recorded course after it")
    for col in ("trace", "fault", "alert (rule, at)", *rankers, "recorded SLO met after"):
        table.add_column(col)
    for t in report["traces"]:
        fault = t["fault"]
        a = t["alerting"]
        when = f"+{a['at'] - a['injected_at']:.0f}s" if a.get("at") is not None and a.get("injected_at") else ""
        alert = (f"{t['alert']['name']} {when}" if a.get("fired", True)
                 else ("none fired" + (f"; page {t['alert']['name']}" if a.get("forced") else "")))
        cells = []
        for r in rankers:
            d = t["exact"]["decisions"].get(r)
            if d is None:
                cells.append("-" if not t["exact"]["problem"] else f"unobservable: {t['exact']['problem'][:40]}")
                continue
            target = d["target"]["name"] if d["target"] else ""
            mark = {True: "✓", False: "✗", None: ""}[d["right"]]
            cells.append(f"{mark} {d['action']} {target}".strip())
        rec = t["recorded_after"]["slo_met_again_after_s"]
        table.add_row(inert(t["trace"]), inert(f"{fault['kind']} {fault['target'] or ''}" if fault else "?"),
                      inert(alert), *[inert(c) for c in cells], f"{rec / 60:.1f} min" if rec is not None else "not met")
    out.print(table)
    summary = Table(title="per ranker")
    for col in ("ranker", "faults", "alerted", "right", "right rate", "right kind, wrong workload",
                "fault-free", "acted on", "acted rate"):
        summary.add_column(col)
    for r in rankers:
        s = report["summary"][r]
        rate = f"{s['right_rate']:.0%}" if s["right_rate"] is not None else "-"
        acted = f"{s['fault_free_acted_rate']:.0%}" if s["fault_free_acted_rate"] is not None else "-"
        summary.add_row(inert(r), str(s["faults"]), str(s["faults_alerted"]), str(s["right"]), rate,
                        str(s["right_kind_wrong_workload"]), str(s["fault_free"]), str(s["fault_free_acted"]), acted)
    out.print(summary)


def _register_import(imports: typer.Typer) -> None:
    @imports.command("nezha")
    def nezha(
        directory: Annotated[Path, typer.Argument(help="a Nezha day: metric/*.csv, metric/dependency.csv and "
                                                       "the *-fault_list.json")],
        out_dir: Annotated[Path, typer.Option("--out", help="the directory to write the traces to")],
        column_map: Annotated[Path | None, typer.Option("--column-map", help="a YAML column map (default: "
                                                                             "Nezha's, shipped)")] = None,
        namespace: Annotated[str, typer.Option("--namespace", help="the namespace of the workloads")] = "hipster",
    ) -> None:
        """Turn a labelled Nezha day into traces: one per labelled fault, one per fault-free stretch."""
        from remediator.replay.dataset import DatasetError, import_nezha

        with progress_bar() as bar:
            task = bar.add_task("import", total=None)

            def progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            try:
                written = import_nezha(directory, out_dir, column_map=column_map, namespace=namespace,
                                       progress=progress)
            except DatasetError as e:
                fail(str(e))
        out.print(f"wrote {len(written.traces)} traces to {inert(out_dir)} "
                  f"({written.faults} labelled faults, {written.alerted} raise an alert; "
                  f"{written.fault_free} fault-free stretches)")
