"""Importing a labelled per-pod CSV dataset (a slice of the Nezha day) and judging replays of it."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from remediator.rank.registry import make_ranker
from remediator.replay.columnmap import ColumnMapError, load_column_map, shipped_column_map
from remediator.replay.dataset import _time, import_nezha, read_dataset
from remediator.replay.run import observe_trace, replay_trace, summarize
from remediator.replay.trace import load_trace

SLICE = Path(__file__).resolve().parents[1] / "fixtures" / "nezha-slice"


@pytest.fixture(scope="module")
def traces(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("traces")
    result = import_nezha(SLICE, out)
    assert (result.faults, result.fault_free) == (4, 1)
    return {p.name.removesuffix(".json.gz"): p for p in result.traces}


def test_each_labelled_fault_is_one_trace_with_the_alert_its_series_raise(traces: dict[str, Path]) -> None:
    assert sorted(traces) == ["nezha-00-cpu_contention-frontend", "nezha-01-return-frontend",
                              "nezha-02-cpu_consumed-frontend", "nezha-03-exception-frontend", "nezha-nofault-00"]
    cpu = load_trace(traces["nezha-00-cpu_contention-frontend"])
    assert cpu.fault is not None and cpu.fault.kind == "cpu_contention"
    assert cpu.fault.target is not None and cpu.fault.target.name == "frontend"
    a = cpu.alerting
    assert a["fired"] and a["rule"] == "ServiceLatencyHigh" and a["service"] == "frontend"
    assert a["at"] - a["injected_at"] >= 120  # `for: 2m` after the first breached minute, never before the fault
    assert cpu.decide_at == a["at"] == cpu.alert.starts_at
    ret = load_trace(traces["nezha-01-return-frontend"]).alerting
    assert ret["fired"] and ret["rule"] == "ServiceErrorBudgetBurn"  # errors from front_service's success rate
    quiet = load_trace(traces["nezha-nofault-00"])
    assert quiet.fault is not None and quiet.fault.is_none
    assert quiet.alerting["forced"] and not quiet.alerting["fired"]  # nothing fired: a page made up, said so


def test_signals_the_dataset_lacks_are_unknown_not_zero(traces: dict[str, Path]) -> None:
    trace = load_trace(traces["nezha-00-cpu_contention-frontend"])
    assert "kube-state-metrics" in trace.missing
    snap = observe_trace(trace).snapshot
    assert {"available_replicas", "ready_pods", "restarts_per_min", "oom_fraction", "crashloop_fraction",
            "dep_available_ratio"} <= snap.unknown_signals
    assert "node_ready" in snap.unknown_signals  # no node is named and no node condition recorded: not "Ready"
    # What the files do measure is known: CPU and memory against the derived limits, latency, errors.
    assert not {"cpu_ratio", "mem_ratio", "latency_p99_s", "error_ratio"} & snap.unknown_signals
    assert snap.signals.desired_replicas == 1.0  # from the Deployment built from the pod file
    # checkoutservice's success rate is not measured: its errors are unknown, not zero.
    assert snap.dependencies and "dep_error_ratio" in snap.unknown_signals


def test_the_replayed_p99_is_the_csvs_p99_of_those_minutes(traces: dict[str, Path]) -> None:
    trace = load_trace(traces["nezha-00-cpu_contention-frontend"])
    rows = list(csv.DictReader((SLICE / "metric" / "frontend-579b9bff58-t2dbm_metric.csv").open()))
    by_time = {_time(r, "Time", "go", "row"): float(r["PodServerLatencyP99(s)"]) for r in rows}
    at = trace.decide_at
    window = [v for t, v in by_time.items() if at - 120 < t <= at]  # the increments the 2-min rate sees
    p99 = observe_trace(trace).snapshot.signals.latency_p99_s
    assert min(window) - 1e-9 <= p99 <= max(window) + 1e-9


def test_go_time_column_agrees_with_timestamp() -> None:
    row = next(csv.DictReader((SLICE / "metric" / "frontend-579b9bff58-t2dbm_metric.csv").open()))
    assert _time(row, "Time", "go", "row") == float(row["TimeStamp"])


def test_judging_rules_and_random_on_the_slice(traces: dict[str, Path]) -> None:
    rankers = {"rules": make_ranker("rules"), "random": make_ranker("random")}
    results = [replay_trace(load_trace(p), rankers) for p in traces.values()]
    summary = summarize(results, list(rankers))
    alerted = [r for r in results if r.trace.alerting.get("fired")]
    assert summary["rules"]["faults"] == 4 and summary["rules"]["faults_alerted"] == len(alerted) >= 2
    assert summary["rules"]["fault_free"] == 1
    quiet = next(r for r in results if r.trace.fault and r.trace.fault.is_none)
    assert quiet.decisions["rules"].right  # unknown readiness is not "0 of 1 pods ready": no restart
    silent = [r for r in results if r.trace.fault and not r.trace.fault.is_none and not r.trace.alerting["fired"]]
    assert all(not r.decisions for r in silent)  # no alert, nothing woke the agent


def test_column_map_errors_name_file_line_and_key(tmp_path: Path) -> None:
    text = shipped_column_map("nezha").read_text().replace("type: counter", "type: histogram", 1)
    bad = tmp_path / "map.yaml"
    bad.write_text(text)
    with pytest.raises(ColumnMapError) as e:
        load_column_map(bad)
    line = next(i for i, s in enumerate(text.splitlines(), 1) if "histogram" in s)
    assert f"map.yaml:{line}: columns[0].type" in str(e.value)
    assert read_dataset(SLICE).deps["frontend"] == ["checkoutservice", "productcatalogservice"]


def test_benchmark_over_a_trace_directory_keeps_the_contract(traces: dict[str, Path], tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from remediator.cli import app
    from tests.test_cli import _contract

    suite = next(iter(traces.values())).parent
    report_path = tmp_path / "bench.json"
    result = CliRunner().invoke(app, ["benchmark", "--suite", str(suite), "--rankers", "oracle,rules,random",
                                      "--seed", "3", "--json", str(report_path)])
    assert result.exit_code == 0, result.output
    report = json.loads(report_path.read_text())
    assert set(report["rankers"]) == {"rules", "random"}  # the oracle needs an injected fault: not replayable
    assert report["episodes"] == 5 and report["rankers"]["rules"]["faults"] == 4
    assert report["rankers"]["rules"]["noop_incident_actions"] == 0.0
    assert report["per_fault"]["no_fault"]["rules"] == {"mttr_s": None, "episodes": 1, "success_rate": 1.0}
    _contract("benchmark", report_path)
