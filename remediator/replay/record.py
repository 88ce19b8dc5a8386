"""`remediator record`: an incident from a live Prometheus and Kubernetes API, as a trace.

The queries are the observer's own (`remediator/data/promql.yaml`, the configuration's
`prometheus.queries`, the call-edge queries of `remediator/edges.py` first, over the whole
recording, so that the callees' objects are read and their series recorded too): the same
templates filled with the same values for the same objects,
each read as one raw range `selector[W]` at the window's end, so every sample any observation
in the window reads (its recent and trend windows, the pre-alert baseline) is in the trace
with its own timestamp. A query Prometheus rejects is listed in the trace's `missing`, never fatal.

The Kubernetes objects are read once, when recording: an API server keeps no history, so
a trace recorded long after its incident holds the objects as they are then (docs/replay.md).
"""

from __future__ import annotations

import statistics
import string
import time
from collections.abc import Callable
from typing import Any

from remediator import edges
from remediator.edges import Callee
from remediator.live.observer import MetricQuery, Observer, QueryError, _targets, other_namespaces
from remediator.replay.trace import RecordedSeries, Trace
from remediator.snapshot import Alert, Series, resolve_workload

__all__ = ["RecordError", "record"]


class RecordError(RuntimeError):
    """Nothing can be recorded for this alert (no metrics source, no workload or node)."""


def _step(series: list[RecordedSeries]) -> float:
    """The scrape interval: the median spacing of samples (15 s when nothing tells)."""
    gaps = [b[0] - a[0] for s in series for a, b in zip(s.points, s.points[1:]) if b[0] > a[0]]
    return round(statistics.median(gaps), 3) if gaps else 15.0


def record(observer: Observer, alert: Alert, *, before_s: float, after_s: float, now: float | None = None,
           decide_at: float | None = None, source: dict[str, Any] | None = None,
           progress: Callable[[int, int], None] | None = None) -> Trace:
    """The trace of `alert` over [starts_at - before_s, starts_at + after_s] (the end no later than now)."""
    if observer.metrics is None:
        raise RecordError("no Prometheus configured (prometheus.url)")
    now = time.time() if now is None else now
    objects = observer.objects.fetch(alert)
    workload = resolve_workload(alert, objects)
    if workload is None and not alert.labels.get("node"):
        raise RecordError(f"alert {alert.name} names no workload the cluster has (labels "
                          f"{dict(alert.labels)}); nothing to record")
    w = observer.templates.windows
    start = alert.starts_at - before_s
    end = min(alert.starts_at + after_s, now)
    # Every observation in [start, end] reads back this far, and the baseline before the alert.
    first = min(start - max(w.recent_s, w.trend_s), alert.starts_at - w.baseline_start_s)
    merged: dict[tuple[tuple[str, str], ...], dict[float, float]] = {}
    missing: dict[str, str] = {}
    done = 0

    def run(queries: list[tuple[str, MetricQuery]], values: dict[str, str], total: int, *, optional: bool) -> None:
        nonlocal done
        assert observer.metrics is not None
        templates = [(metric, string.Template(spec.query)) for metric, spec in queries]
        for metric, t in templates:
            if not all(values.get(p) for p in t.get_identifiers()):
                continue
            selector = t.substitute(values)
            try:
                result = observer.metrics.raw(selector, end, end - first)
            except QueryError as e:
                missing.setdefault(metric, str(e))
            else:
                if not result and not optional:  # no mesh, no tracing, another namespace's: no missing signal
                    missing[metric] = f"no series matched {selector}"
                for s in result:
                    labels = {"__name__": metric, **s.labels}
                    merged.setdefault(tuple(sorted(labels.items())), {}).update(s.points)
            done += 1
            if progress:
                progress(done, total)

    # The call edges first, over the whole recording: every callee any observation of the trace
    # can see is a dependency whose objects and series the trace must hold.
    queries = list(observer.templates.for_profile(observer.sli).items())  # the SLI profile's selectors among them
    edge_queries = observer.templates.edge_queries() if workload is not None else []
    total = len(queries) + len(edge_queries)
    callees: tuple[Callee, ...] = ()
    if workload is not None:
        run(edge_queries, _targets(alert, objects, workload), total, optional=True)
        recorded = [Series(dict(k)["__name__"], {n: v for n, v in k if n != "__name__"}, sorted(p.items()))
                    for k, p in merged.items()]
        callees = edges.callees(recorded, workload, since=first, until=end)
        objects = [*objects, *observer.callee_objects(callees, objects)]
    run(queries, _targets(alert, objects, workload, callees), total, optional=False)
    for other in other_namespaces(workload, objects, callees):  # the dependencies in other namespaces, read there
        run(queries, other, total, optional=True)
    series = [RecordedSeries(dict(k), tuple(sorted(p.items()))) for k, p in sorted(merged.items())]
    when = alert.starts_at if decide_at is None else decide_at
    return Trace(alert=alert, start=start, end=end, step_s=_step(series), decide_at=min(max(when, start), end),
                 series=tuple(series), objects=tuple(objects), missing=missing,
                 source={"kind": "prometheus", "recorded_at": now, **(source or {})},
                 name=f"{alert.name}-{workload.name if workload else alert.labels.get('node', '')}")
