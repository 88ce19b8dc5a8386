"""A labelled per-pod CSV dataset (Nezha's Online Boutique day) as traces, one per incident.

`import_dataset` reads the dataset through its column map (`replay.columnmap`) and writes:

* one trace per labelled fault: the series around it, the alert the SLO rules
  (`replay.alerts`) raise from those series (the rule, the service, the minute), or that none
  fired; the agent decides when the alert fires;
* one trace per fault-free hour (`fault.kind == "none"`), with the alert a rule raised there
  (a false alarm) or, when none fired, a page the importer makes up (`alerting.forced`) on the
  entry service so the agent has something to decide on: acting on it is wrong.

What the dataset lacks stays missing: no kube-state-metrics series are invented, so the snapshot
marks replicas, readiness and restarts unknown (`Snapshot.unknown_signals`), never 0. What is
derived says how (`trace.source.derived`): counters summed from per-second rates, limits from
usage over usage-percent, and latency histograms whose p99 is the CSV's p99 of that minute
(`_bucket_counts`; over the snapshot's two-minute rate window the histogram mixes two minutes).
The Kubernetes objects are built from what the files name: a Deployment, ReplicaSet and Pod per
pod file, the call graph as `remediator.io/depends-on`, the SLO as annotations (`_slos`).
"""

from __future__ import annotations

import csv
import json
import math
import re
import statistics
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from remediator.actions import ObjectRef
from remediator.live.observer import Observer, StaticObjects
from remediator.replay.alerts import Fired, first_firing
from remediator.replay.columnmap import ColumnMap, ColumnMapError, load_column_map, shipped_column_map
from remediator.replay.source import TraceMetrics
from remediator.replay.trace import NO_FAULT, Fault, RecordedSeries, Trace, save_trace
from remediator.snapshot import (
    DEPENDS_ON_ANNOTATION,
    REVISION_ANNOTATION,
    SLO_ERROR_ANNOTATION,
    SLO_LATENCY_ANNOTATION,
    Alert,
    Slo,
)

__all__ = ["Dataset", "DatasetError", "ImportResult", "import_dataset", "import_nezha", "read_dataset"]

# Prometheus client libraries' default buckets, with two below 5 ms for the fastest services.
BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, math.inf)
BEFORE_S, AFTER_S = 40 * 60.0, 30 * 60.0  # a trace's window around the decision, as `record`'s default
FAULT_ALERT_WINDOW_S = 10 * 60.0  # a fault's alert counts when it fires this soon (or before the next fault)
QUIET_AFTER_FAULT_S, QUIET_BEFORE_FAULT_S = 15 * 60.0, 5 * 60.0  # fault-free: this far from any fault
STRETCH_S = 60 * 60.0  # fault-free stretches are cut into hours
EVAL_LAG_S = 5.0  # rules are evaluated this long after a scrape
# A service's latency SLO: at least the default, and above its own fault-free tail, so that an
# always-slow service (Online Boutique's frontend) does not page all day.
SLO_QUIET_QUANTILE, SLO_MARGIN = 0.99, 1.2


class DatasetError(ValueError):
    """A dataset (or its column map) that cannot be imported: which file and why."""


@dataclass
class PodData:
    pod: str
    workload: str
    times: list[float]
    columns: dict[str, list[float]]


@dataclass(frozen=True)
class LabelledFault:
    kind: str
    pod: str
    workload: str
    at: float


@dataclass
class Dataset:
    cmap: ColumnMap
    namespace: str
    pods: dict[str, PodData]  # by workload
    success: dict[str, dict[int, float]]  # workload -> minute -> success percent (when measured)
    deps: dict[str, list[str]]
    faults: list[LabelledFault]
    slos: dict[str, Slo] = field(default_factory=dict)
    step_s: float = 60.0  # the median sampling step, set by read_dataset

    @property
    def start(self) -> float:
        return min(p.times[0] for p in self.pods.values())

    @property
    def end(self) -> float:
        return max(p.times[-1] for p in self.pods.values())

    @property
    def entry(self) -> str:
        """The service nothing else calls (the user-facing one): where a made-up page goes."""
        called = {d for ds in self.deps.values() for d in ds}
        roots = sorted(w for w in self.pods if w not in called)
        return roots[0] if roots else sorted(self.pods)[0]


@dataclass
class ImportResult:
    traces: list[Path] = field(default_factory=list)
    faults: int = 0
    alerted: int = 0
    fault_free: int = 0
    fault_free_alerted: int = 0


# ---------------------------------------------------------------------------- reading


def _csv(path: Path) -> list[dict[str, str]]:
    try:
        with path.open(newline="") as f:
            return list(csv.DictReader(f))
    except OSError as e:
        raise DatasetError(f"{path}: cannot read it: {e.strerror or e}") from None


def _number(row: Mapping[str, str], column: str, where: str) -> float:
    try:
        return float(row[column])
    except KeyError:
        raise DatasetError(f"{where}: no column {column!r} (has {', '.join(row)})") from None
    except (TypeError, ValueError):
        raise DatasetError(f"{where}: column {column!r}: {row.get(column)!r} is not a number") from None


_GO_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)(?:\.\d+)? ([+-]\d{4})\b")


def _time(row: Mapping[str, str], column: str, fmt: str, where: str) -> float:
    """Unix seconds from a time column: unix seconds, Go's `time.String()` (truncated to the
    second, as Go's Unix() does) or ISO 8601."""
    if fmt == "unix":
        return _number(row, column, where)
    text = row.get(column)
    if text is None:
        raise DatasetError(f"{where}: no column {column!r} (has {', '.join(row)})")
    try:
        if fmt == "go":
            m = _GO_TIME.match(text)
            if m is None:
                raise ValueError(text)
            return datetime.strptime(f"{m.group(1)} {m.group(2)}", "%Y-%m-%d %H:%M:%S %z").timestamp()
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise DatasetError(f"{where}: column {column!r}: {text!r} is not a {fmt} time") from None


def _one(directory: Path, pattern: str, what: str) -> list[Path]:
    found = sorted(directory.glob(pattern))
    if not found:
        raise DatasetError(f"{directory}: no {what} matches {pattern!r}")
    return found


def _read_pods(directory: Path, cmap: ColumnMap) -> dict[str, PodData]:
    pattern = re.compile(cmap.pods.workload)
    wanted = {c.column for c in cmap.columns} | {x for lim in cmap.limits for x in (lim.usage, lim.percent)}
    if cmap.requests:
        wanted |= {c for c in (cmap.requests.rate, cmap.requests.p99_s, cmap.requests.success_percent) if c}
    out: dict[str, PodData] = {}
    for path in _one(directory, cmap.pods.files, "pod file"):
        rows = _csv(path)
        if not rows:
            continue
        pod = rows[0].get(cmap.pods.pod) or ""
        m = pattern.match(pod)
        if m is None:
            raise DatasetError(f"{path}: pod {pod!r} does not match pods.workload {cmap.pods.workload!r}")
        workload = m.group("workload")
        if workload in out:
            raise DatasetError(f"{path}: a second pod of {workload} ({pod}); one pod per workload is supported")
        times = [_time(r, cmap.pods.time, cmap.pods.time_format, f"{path}:{i + 2}") for i, r in enumerate(rows)]
        order = sorted(range(len(rows)), key=times.__getitem__)
        cols = {c: [_number(rows[i], c, f"{path}:{i + 2}") for i in order] for c in sorted(wanted)}
        out[workload] = PodData(pod, workload, [times[i] for i in order], cols)
    return out


def _read_success(directory: Path, cmap: ColumnMap, pods: Mapping[str, PodData], step: float
                  ) -> dict[str, dict[int, float]]:
    out: dict[str, dict[int, float]] = defaultdict(dict)
    column = cmap.requests.success_percent if cmap.requests else None
    if column:
        for w, p in pods.items():
            out[w] = {round(t / step): v for t, v in zip(p.times, p.columns[column])}
    for sf in cmap.services:
        path = directory / sf.file
        for i, row in enumerate(_csv(path)):
            name = sf.names.get(row.get(sf.service, ""))
            if name is not None and sf.success_percent:
                where = f"{path}:{i + 2}"
                minute = round(_time(row, sf.time, sf.time_format, where) / step)
                out[name][minute] = _number(row, sf.success_percent, where)
    return dict(out)


def _read_deps(directory: Path, cmap: ColumnMap, workloads: set[str]) -> dict[str, list[str]]:
    deps: dict[str, list[str]] = {w: [] for w in workloads}
    if cmap.dependencies is None:
        return deps
    d = cmap.dependencies
    for row in _csv(directory / d.file):
        src, dst = row.get(d.source, ""), row.get(d.target, "")
        if src in workloads and dst in workloads and dst not in deps[src]:  # hosts and callers we lack: skipped
            deps[src].append(dst)
    return {w: sorted(v) for w, v in deps.items()}


def _read_faults(directory: Path, cmap: ColumnMap, pods: Mapping[str, PodData]) -> list[LabelledFault]:
    by_pod = {p.pod: w for w, p in pods.items()}
    out = []
    for path in _one(directory, cmap.faults.files, "fault list"):
        try:
            doc = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise DatasetError(f"{path}: not a readable fault list: {e}") from None
        if not isinstance(doc, dict):
            raise DatasetError(f"{path}: expected an object of hour -> [faults]")
        for hour, items in doc.items():
            for i, f in enumerate(items if isinstance(items, list) else ()):
                where = f"{path}: {hour}[{i}]"
                try:
                    pod, kind, at = str(f["inject_pod"]), str(f["inject_type"]), float(f["inject_timestamp"])
                except (KeyError, TypeError, ValueError):
                    raise DatasetError(f"{where}: needs inject_pod, inject_type and inject_timestamp") from None
                if pod not in by_pod:
                    raise DatasetError(f"{where}: pod {pod!r} has no metric file")
                out.append(LabelledFault(kind, pod, by_pod[pod], at))
    return sorted(out, key=lambda f: f.at)


def read_dataset(directory: Path | str, column_map: Path | str | None = None, *,
                 namespace: str | None = None) -> Dataset:
    directory = Path(directory)
    if not directory.is_dir():
        raise DatasetError(f"{directory}: not a directory")
    try:
        cmap = load_column_map(column_map or shipped_column_map("nezha"))
    except ColumnMapError as e:
        raise DatasetError(str(e)) from None
    pods = _read_pods(directory, cmap)
    if not pods:
        raise DatasetError(f"{directory}: the pod files {cmap.pods.files!r} hold no rows")
    ds = Dataset(cmap, namespace or cmap.namespace, pods, {}, _read_deps(directory, cmap, set(pods)),
                 _read_faults(directory, cmap, pods))
    gaps = [b - a for p in pods.values() for a, b in zip(p.times, p.times[1:]) if b > a]
    ds.step_s = statistics.median(gaps) if gaps else 60.0
    ds.success = _read_success(directory, cmap, pods, ds.step_s)
    ds.slos = _slos(ds)
    return ds


# ---------------------------------------------------------------------------- what is derived


def _quiet(ds: Dataset, t: float) -> bool:
    return not any(f.at - QUIET_BEFORE_FAULT_S <= t <= f.at + QUIET_AFTER_FAULT_S for f in ds.faults)


def _slos(ds: Dataset) -> dict[str, Slo]:
    """Per service: the default SLO, its latency raised above the service's own fault-free tail
    (SLO_QUIET_QUANTILE of the per-minute p99, times SLO_MARGIN). The labels never enter it."""
    default = Slo()
    out = {}
    p99 = ds.cmap.requests.p99_s if ds.cmap.requests else None
    for w, p in ds.pods.items():
        latency = default.latency_p99_s
        if p99:
            quiet = sorted(v for t, v in zip(p.times, p.columns[p99]) if _quiet(ds, t) and math.isfinite(v))
            if quiet:
                tail = quiet[min(len(quiet) - 1, int(SLO_QUIET_QUANTILE * len(quiet)))]
                latency = max(latency, round(tail * SLO_MARGIN, 3))
        out[w] = Slo(error_ratio=default.error_ratio, latency_p99_s=latency, consecutive=default.consecutive)
    return out


def _bucket_counts(p99: float, n: float) -> list[float]:
    """Cumulative counts over BUCKETS_S for `n` requests whose p99 (as histogram_quantile
    interpolates) is `p99`: the mass sits in the bucket holding p99 and the one below it."""
    if n <= 0:
        return [0.0] * len(BUCKETS_S)
    i = next(k for k, b in enumerate(BUCKETS_S) if p99 <= b)
    if math.isinf(BUCKETS_S[i]):  # beyond the last finite bound: histogram_quantile says that bound
        return [0.0] * (len(BUCKETS_S) - 2) + [0.01 * n, n]
    lo = BUCKETS_S[i - 1] if i else 0.0
    f = (p99 - lo) / (BUCKETS_S[i] - lo)
    if i and f <= 0.99:  # m requests at or below lo, the rest in (lo, hi]
        below, at = n * (0.99 - f) / (1 - f), n
    else:  # none below lo, a little above hi
        below, at = 0.0, min(n, 0.99 * n / f) if f > 0 else n
    return [0.0] * max(0, i - 1) + ([below] if i else []) + [at] + [n] * (len(BUCKETS_S) - i - 1)


def _limit(p: PodData, usage: str, percent: str, scale: float) -> float | None:
    ratios = [u * scale / (pc / 100) for u, pc in zip(p.columns[usage], p.columns[percent]) if pc > 0]
    return statistics.median(ratios) if ratios else None


def _quantity(resource: str, value: float) -> str:
    return f"{round(value * 1000)}m" if resource == "cpu" else f"{round(value / 1048576)}Mi"


def dataset_series(ds: Dataset, start: float, end: float) -> list[RecordedSeries]:
    """The series of every pod over [start, end] under real metric names (see the module doc)."""
    out: list[RecordedSeries] = []
    ns, cm, step = ds.namespace, ds.cmap, ds.step_s
    for w, p in sorted(ds.pods.items()):
        keep = [i for i, t in enumerate(p.times) if start <= t <= end]
        if not keep:
            continue
        dts = [p.times[i] - p.times[i - 1] if i else step for i in range(len(p.times))]
        base = {"namespace": ns, "pod": p.pod, "container": w}
        for c in cm.columns:
            values = [v * c.scale for v in p.columns[c.column]]
            if c.type == "counter":  # from the day's first sample, as cAdvisor counts from the container's start
                total, summed = 0.0, []
                for v, dt in zip(values, dts):
                    total += max(v, 0.0) * dt
                    summed.append(total)
                values = summed
            out.append(RecordedSeries({"__name__": c.metric, **base}, tuple((p.times[i], values[i]) for i in keep)))
        for lim in cm.limits:
            value = _limit(p, lim.usage, lim.percent, lim.scale)
            if value is not None:
                out.append(RecordedSeries({"__name__": "kube_pod_container_resource_limits", **base,
                                           "resource": lim.resource, "unit": lim.unit},
                                          tuple((p.times[i], value) for i in keep)))
        out += _request_series(ds, w, p, keep, dts)
    return out


def _request_series(ds: Dataset, w: str, p: PodData, keep: Sequence[int], dts: Sequence[float]
                    ) -> list[RecordedSeries]:
    req = ds.cmap.requests
    if req is None:
        return []
    labels = {"namespace": ds.namespace, "service": w}
    rates = p.columns[req.rate]
    out = []
    success = ds.success.get(w)
    if success:  # a request counter only where errors are measured: otherwise it would claim none
        ok, bad, ok_pts, bad_pts = 0.0, 0.0, [], []
        for i, (r, dt) in enumerate(zip(rates, dts)):
            share = success.get(round(p.times[i] / ds.step_s))
            n = max(r, 0.0) * dt
            s = 1.0 if share is None else min(max(share / 100.0, 0.0), 1.0)
            ok, bad = ok + n * s, bad + n * (1 - s)
            ok_pts.append((p.times[i], ok))
            bad_pts.append((p.times[i], bad))
        for code, pts in (("200", ok_pts), ("500", bad_pts)):
            out.append(RecordedSeries({"__name__": "http_requests_total", **labels, "code": code},
                                      tuple(pts[i] for i in keep)))
    if req.p99_s:
        cum = [0.0] * len(BUCKETS_S)
        per_bucket: list[list[tuple[float, float]]] = [[] for _ in BUCKETS_S]
        for i, (r, dt, q) in enumerate(zip(rates, dts, p.columns[req.p99_s])):
            if math.isfinite(q) and q > 0:
                cum = [a + b for a, b in zip(cum, _bucket_counts(q, max(r, 0.0) * dt))]
            for k in range(len(BUCKETS_S)):
                per_bucket[k].append((p.times[i], cum[k]))
        for k, b in enumerate(BUCKETS_S):
            out.append(RecordedSeries({"__name__": "http_request_duration_seconds_bucket", **labels,
                                       "le": "+Inf" if math.isinf(b) else f"{b:g}"},
                                      tuple(per_bucket[k][i] for i in keep)))
    return out


def dataset_objects(ds: Dataset) -> list[dict[str, Any]]:
    """A Deployment, ReplicaSet and Pod per pod file: what the files name, nothing more (no
    status: the dataset has no kube-state-metrics; no node: the files do not say which)."""
    out: list[dict[str, Any]] = []
    ns = ds.namespace
    for w, p in sorted(ds.pods.items()):
        limits = {lim.resource: _quantity(lim.resource, v) for lim in ds.cmap.limits
                  if (v := _limit(p, lim.usage, lim.percent, lim.scale)) is not None}
        slo = ds.slos.get(w, Slo())
        annotations = {SLO_LATENCY_ANNOTATION: f"{slo.latency_p99_s:g}", SLO_ERROR_ANNOTATION: f"{slo.error_ratio:g}",
                       REVISION_ANNOTATION: "1"}
        if ds.deps.get(w):
            annotations[DEPENDS_ON_ANNOTATION] = ",".join(ds.deps[w])
        labels = {"app": w}
        container = {"name": w, "resources": {"limits": limits}}
        rs = p.pod.rsplit("-", 1)[0]
        out.append({"apiVersion": "apps/v1", "kind": "Deployment",
                    "metadata": {"name": w, "namespace": ns, "labels": labels, "annotations": annotations},
                    "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                             "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}}}})
        out.append({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                    "metadata": {"name": rs, "namespace": ns, "labels": labels,
                                 "annotations": {REVISION_ANNOTATION: "1"},
                                 "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": w,
                                                      "controller": True}]},
                    "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                             "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}}}})
        out.append({"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": p.pod, "namespace": ns, "labels": labels,
                                 "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs,
                                                      "controller": True}]},
                    "spec": {"containers": [container]}})
    return out


# ---------------------------------------------------------------------------- incidents


@dataclass(frozen=True)
class _Stretch:
    name: str
    fault: Fault
    start: float  # rules are evaluated from here
    end: float


def _stretches(ds: Dataset) -> list[_Stretch]:
    out = []
    ns = ds.namespace
    for i, f in enumerate(ds.faults):
        nxt = ds.faults[i + 1].at if i + 1 < len(ds.faults) else math.inf
        out.append(_Stretch(f"{ds.cmap.name}-{i:02d}-{f.kind}-{f.workload}",
                            Fault(f.kind, ObjectRef("Deployment", ns, f.workload), f.pod, f.at),
                            f.at, min(f.at + FAULT_ALERT_WINDOW_S, nxt, ds.end)))
    bounds = [ds.start - QUIET_AFTER_FAULT_S] + [f.at for f in ds.faults] + [ds.end + QUIET_BEFORE_FAULT_S]
    n = 0
    for a, b in zip(bounds, bounds[1:]):
        for seg_lo, seg_hi in _covered(ds, a + QUIET_AFTER_FAULT_S, b - QUIET_BEFORE_FAULT_S):
            lo = max(seg_lo, ds.start + BEFORE_S / 4)
            while seg_hi - lo >= STRETCH_S:
                out.append(_Stretch(f"{ds.cmap.name}-nofault-{n:02d}", Fault(NO_FAULT), lo, lo + STRETCH_S))
                lo, n = lo + STRETCH_S, n + 1
    return out


def _covered(ds: Dataset, lo: float, hi: float) -> list[tuple[float, float]]:
    """The parts of [lo, hi] where every pod has samples (no gap of more than three steps)."""
    times = sorted(t for t in min(ds.pods.values(), key=lambda p: len(p.times)).times if lo <= t <= hi)
    out: list[tuple[float, float]] = []
    for t in times:
        if out and t - out[-1][1] <= 3 * ds.step_s:
            out[-1] = (out[-1][0], t)
        else:
            out.append((t, t))
    return out


def _eval_times(ds: Dataset, start: float, end: float) -> list[float]:
    anchor = min(p.times[0] for p in ds.pods.values())
    k = math.ceil((start - anchor) / ds.step_s)
    out = []
    while (t := anchor + k * ds.step_s + EVAL_LAG_S) <= end + EVAL_LAG_S:
        out.append(t)
        k += 1
    return out


def _trace(ds: Dataset, st: _Stretch, objects: list[dict[str, Any]]) -> Trace:
    ns = ds.namespace
    reach = 900.0 + 600.0  # what an observation reads before its time: the baseline and the trend window
    series = dataset_series(ds, st.start - BEFORE_S - reach, st.end + AFTER_S)
    observer = Observer(TraceMetrics(series), StaticObjects(objects), max_staleness_s=3 * ds.step_s, parallel=1)
    fired: Fired | None = first_firing(observer, ns, sorted(ds.pods), _eval_times(ds, st.start, st.end))
    alerting: dict[str, Any] = {"fired": fired is not None, "injected_at": st.fault.injected_at,
                                "rules": "remediator.replay.alerts.SLO_RULES"}
    if fired is not None:
        alert = fired.alert(ns)
        alerting |= {"rule": fired.rule.alert, "service": fired.service, "at": fired.at,
                     "pending_since": fired.pending_since, "forced": False}
        decide = fired.at
    elif st.fault.is_none:  # a made-up page, so the agent has something to (not) act on
        decide = _eval_times(ds, (st.start + st.end) / 2, st.end)[0]
        alert = Alert("ServiceLatencyHigh", {"namespace": ns, "service": ds.entry, "severity": "warning"},
                      {"summary": "made up by the importer: no rule fired in this fault-free stretch"},
                      starts_at=decide)
        alerting |= {"rule": None, "at": None, "forced": True}
    else:  # nothing fired: the trace keeps the fault; the replay decides nothing on it
        target = st.fault.target.name if st.fault.target else ds.entry
        decide = st.start
        alert = Alert("ServiceLatencyHigh", {"namespace": ns, "service": target},
                      {"summary": "no SLO rule fired on the recorded series"}, starts_at=decide, status="inactive")
        alerting |= {"rule": None, "at": None, "forced": False}
    lo, hi = max(ds.start, decide - BEFORE_S), min(ds.end, decide + AFTER_S)
    kept = tuple(s for s in series if s.points)
    return Trace(alert=alert, start=lo, end=hi, step_s=ds.step_s, decide_at=decide, series=kept,
                 objects=tuple(objects), fault=st.fault, missing=dict(ds.cmap.missing), alerting=alerting,
                 source={"kind": "dataset", "dataset": ds.cmap.name, "derived": _DERIVED,
                         "slo": {w: {"latency_p99_s": s.latency_p99_s, "error_ratio": s.error_ratio}
                                 for w, s in sorted(ds.slos.items())}},
                 name=st.name)


_DERIVED = {
    "counters": "summed from the per-second rate columns over each step",
    "kube_pod_container_resource_limits": "usage / (usage percent / 100), median over the day",
    "http_request_duration_seconds_bucket": "buckets whose interpolated p99 is the CSV's p99 of that minute",
    "http_requests_total": "only where a success rate is measured (the rest: request rate and errors unknown)",
    "objects": "Deployment/ReplicaSet/Pod per pod file; call graph as depends-on; SLO annotations from "
               "the fault-free minutes (max(default, 1.2 x p99 quantile 0.99))",
}


def import_dataset(directory: Path | str, out_dir: Path | str, *, column_map: Path | str | None = None,
                   namespace: str | None = None, progress: Callable[[int, int], None] | None = None
                   ) -> ImportResult:
    """Write one trace per labelled fault and per fault-free hour of the dataset into `out_dir`."""
    ds = read_dataset(directory, column_map, namespace=namespace)
    objects = dataset_objects(ds)
    stretches = _stretches(ds)
    result = ImportResult()
    out = Path(out_dir)
    for i, st in enumerate(stretches):
        trace = _trace(ds, st, objects)
        result.traces.append(save_trace(trace, out / f"{st.name}.json.gz"))
        fired = bool(trace.alerting.get("fired"))
        if st.fault.is_none:
            result.fault_free += 1
            result.fault_free_alerted += fired
        else:
            result.faults += 1
            result.alerted += fired
        if progress:
            progress(i + 1, len(stretches))
    return result


def import_nezha(directory: Path | str, out_dir: Path | str, *, column_map: Path | str | None = None,
                 namespace: str | None = None, progress: Callable[[int, int], None] | None = None
                 ) -> ImportResult:
    return import_dataset(directory, out_dir, column_map=column_map or shipped_column_map("nezha"),
                          namespace=namespace, progress=progress)
