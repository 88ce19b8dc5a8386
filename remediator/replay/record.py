"""`remediator record`: an incident from a live Prometheus and Kubernetes API, as a trace.

The queries are the observer's own (`remediator/data/promql.yaml`, the configuration's
`prometheus.queries`): the same templates filled with the same values for the same objects,
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

from remediator.live.observer import Observer, QueryError, _targets
from remediator.replay.trace import RecordedSeries, Trace
from remediator.snapshot import Alert, resolve_workload

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
    values = _targets(alert, objects, workload)
    w = observer.templates.windows
    start = alert.starts_at - before_s
    end = min(alert.starts_at + after_s, now)
    # Every observation in [start, end] reads back this far, and the baseline before the alert.
    first = min(start - max(w.recent_s, w.trend_s), alert.starts_at - w.baseline_start_s)
    queries = observer.templates.for_profile(observer.sli)  # the SLI profile's selectors among them
    templates = [(metric, string.Template(spec.query)) for metric, spec in queries.items()]
    jobs = [(m, t.substitute(values)) for m, t in templates if all(values.get(p) for p in t.get_identifiers())]
    merged: dict[tuple[tuple[str, str], ...], dict[float, float]] = {}
    missing: dict[str, str] = {}
    for i, (metric, selector) in enumerate(jobs):
        try:
            result = observer.metrics.raw(selector, end, end - first)
        except QueryError as e:
            missing[metric] = str(e)
        else:
            if not result:
                missing[metric] = f"no series matched {selector}"
            for s in result:
                labels = {"__name__": metric, **s.labels}
                merged.setdefault(tuple(sorted(labels.items())), {}).update(s.points)
        if progress:
            progress(i + 1, len(jobs))
    series = [RecordedSeries(dict(k), tuple(sorted(p.items()))) for k, p in sorted(merged.items())]
    when = alert.starts_at if decide_at is None else decide_at
    return Trace(alert=alert, start=start, end=end, step_s=_step(series), decide_at=min(max(when, start), end),
                 series=tuple(series), objects=tuple(objects), missing=missing,
                 source={"kind": "prometheus", "recorded_at": now, **(source or {})},
                 name=f"{alert.name}-{workload.name if workload else alert.labels.get('node', '')}")
