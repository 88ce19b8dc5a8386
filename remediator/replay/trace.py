"""The trace: one incident as recorded, in a versioned JSON document (docs/replay.md).

A trace holds what the agent's observer would have read: the raw samples of every series
the PromQL templates select (under their real metric names and labels, `__name__` included),
the Kubernetes objects around the alert as they stood, and metadata: the alert, the window,
the sampling step, when the agent decided, and the fault with its target when a label says so.

    >>> t = Trace(alert=Alert("ServiceLatencyHigh", {"namespace": "shop", "deployment": "cart"}, starts_at=600.0),
    ...           start=0.0, end=1200.0, step_s=15.0, decide_at=600.0)
    >>> Trace.from_dict(t.to_dict()).alert.name
    'ServiceLatencyHigh'
"""

from __future__ import annotations

import gzip
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from remediator.actions import ObjectRef
from remediator.snapshot import Alert

__all__ = ["FORMAT", "TRACE_VERSION", "Fault", "RecordedSeries", "Trace", "TraceError", "load_trace",
           "save_trace", "trace_paths"]

FORMAT = "remediator-trace"
# Bump when a field changes meaning; readers refuse a version they do not know.
TRACE_VERSION = 1
NO_FAULT = "none"  # fault.kind of a stretch labelled fault-free


class TraceError(ValueError):
    """A trace file that cannot be used: where (file, key) and why."""


@dataclass(frozen=True)
class RecordedSeries:
    """One series as Prometheus returns it: labels with `__name__`, raw (t, value) samples."""

    labels: Mapping[str, str]
    points: Sequence[tuple[float, float]]

    @property
    def name(self) -> str:
        return self.labels.get("__name__", "")


@dataclass(frozen=True)
class Fault:
    """What a label says was wrong: `kind` (a dataset's own name, or `none`), its target workload
    and pod when known, when it was injected."""

    kind: str
    target: ObjectRef | None = None
    pod: str = ""
    injected_at: float | None = None

    @property
    def is_none(self) -> bool:
        return self.kind == NO_FAULT


@dataclass(frozen=True)
class Trace:
    alert: Alert
    start: float
    end: float
    step_s: float
    decide_at: float
    series: tuple[RecordedSeries, ...] = ()
    objects: tuple[dict[str, Any], ...] = ()
    fault: Fault | None = None
    # Families the source never had (a dataset without kube-state-metrics), with why.
    missing: Mapping[str, str] = field(default_factory=dict)
    # How the alert came about: the rule, when it fired, or that none did (imported data).
    alerting: Mapping[str, Any] = field(default_factory=dict)
    source: Mapping[str, Any] = field(default_factory=dict)
    name: str = ""

    def to_dict(self) -> dict[str, Any]:
        a = self.alert
        return {
            "format": FORMAT, "version": TRACE_VERSION, "name": self.name, "source": dict(self.source),
            "alert": {"name": a.name, "labels": dict(a.labels), "annotations": dict(a.annotations),
                      "starts_at": a.starts_at, "status": a.status, "fingerprint": a.fingerprint},
            "window": {"start": self.start, "end": self.end, "step_s": self.step_s, "decide_at": self.decide_at},
            "fault": None if self.fault is None else {
                "kind": self.fault.kind, "pod": self.fault.pod, "injected_at": self.fault.injected_at,
                "target": None if self.fault.target is None else {
                    "kind": self.fault.target.kind, "namespace": self.fault.target.namespace,
                    "name": self.fault.target.name}},
            "alerting": dict(self.alerting), "missing": dict(self.missing),
            "objects": [dict(o) for o in self.objects],
            "series": [{"labels": dict(s.labels), "points": [[t, _num(v)] for t, v in s.points]}
                       for s in self.series],
        }

    @classmethod
    def from_dict(cls, doc: Any, where: str = "trace") -> Trace:
        r = _Reader(where)
        if not isinstance(doc, dict):
            raise TraceError(f"{where}: a trace is a JSON object, not {type(doc).__name__}")
        if doc.get("format") != FORMAT:
            raise TraceError(f"{where}: format: expected {FORMAT!r}, found {doc.get('format')!r}")
        if doc.get("version") != TRACE_VERSION:
            raise TraceError(f"{where}: version: this code reads trace version {TRACE_VERSION}, "
                             f"the file is version {doc.get('version')!r}")
        a = r.mapping(doc, "alert")
        alert = Alert(name=r.text(a, "alert.name"), labels=r.labels(a, "alert.labels"),
                      annotations=r.labels(a, "alert.annotations", optional=True),
                      starts_at=r.number(a, "alert.starts_at"), status=str(a.get("status", "firing")),
                      fingerprint=str(a.get("fingerprint", "")))
        w = r.mapping(doc, "window")
        start, end = r.number(w, "window.start"), r.number(w, "window.end")
        if end < start:
            raise TraceError(f"{where}: window: end {end} is before start {start}")
        series = tuple(r.series(i, s) for i, s in enumerate(r.sequence(doc, "series")))
        objects = tuple(r.obj(i, o) for i, o in enumerate(r.sequence(doc, "objects")))
        return cls(alert=alert, start=start, end=end, step_s=r.number(w, "window.step_s"),
                   decide_at=r.number(w, "window.decide_at"), series=series, objects=objects,
                   fault=r.fault(doc.get("fault")), missing=r.labels(doc, "missing", optional=True),
                   alerting=dict(doc.get("alerting") or {}), source=dict(doc.get("source") or {}),
                   name=str(doc.get("name", "")))


def _num(v: float) -> float | str:
    """JSON has no NaN or infinities: Prometheus' own spellings stand in for them."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return v


class _Reader:
    """Field access that names the key of a bad value."""

    def __init__(self, where: str) -> None:
        self.where = where

    def fail(self, key: str, problem: str) -> TraceError:
        return TraceError(f"{self.where}: {key}: {problem}")

    def mapping(self, doc: Mapping[str, Any], key: str) -> Mapping[str, Any]:
        value = doc.get(key.rsplit(".", 1)[-1])
        if not isinstance(value, dict):
            raise self.fail(key, "missing or not an object")
        return value

    def sequence(self, doc: Mapping[str, Any], key: str) -> Sequence[Any]:
        value = doc.get(key, [])
        if not isinstance(value, list):
            raise self.fail(key, "not a list")
        return value

    def text(self, doc: Mapping[str, Any], key: str) -> str:
        value = doc.get(key.rsplit(".", 1)[-1])
        if not isinstance(value, str) or not value:
            raise self.fail(key, "missing or not a string")
        return value

    def number(self, doc: Mapping[str, Any], key: str) -> float:
        value = doc.get(key.rsplit(".", 1)[-1])
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self.fail(key, f"expected a finite number, found {value!r}")
        return float(value)

    def labels(self, doc: Mapping[str, Any], key: str, optional: bool = False) -> dict[str, str]:
        value = doc.get(key.rsplit(".", 1)[-1])
        if value is None and optional:
            return {}
        if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise self.fail(key, "expected an object of strings")
        return dict(value)

    def series(self, i: int, s: Any) -> RecordedSeries:
        key = f"series[{i}]"
        if not isinstance(s, dict):
            raise self.fail(key, "not an object")
        labels = self.labels(s, f"{key}.labels")
        if not labels.get("__name__"):
            raise self.fail(f"{key}.labels", "needs __name__ (the metric name)")
        points = []
        for j, p in enumerate(s.get("points") or ()):
            try:
                t, v = p
                points.append((float(t), float(v)))
            except (TypeError, ValueError):
                raise self.fail(f"{key}.points[{j}]", f"expected [time, value], found {p!r}") from None
        return RecordedSeries(labels, tuple(sorted(points)))

    def obj(self, i: int, o: Any) -> dict[str, Any]:
        if not isinstance(o, dict) or not isinstance(o.get("kind"), str) or not isinstance(o.get("metadata"), dict):
            raise self.fail(f"objects[{i}]", "a Kubernetes object needs kind and metadata")
        return o

    def fault(self, f: Any) -> Fault | None:
        if f is None:
            return None
        if not isinstance(f, dict) or not isinstance(f.get("kind"), str):
            raise self.fail("fault", "expected null or an object with kind")
        t = f.get("target")
        target = None
        if t is not None:
            if not isinstance(t, dict) or not all(isinstance(t.get(k), str) for k in ("kind", "namespace", "name")):
                raise self.fail("fault.target", "expected {kind, namespace, name}")
            target = ObjectRef(t["kind"], t["namespace"], t["name"])
        at = f.get("injected_at")
        return Fault(f["kind"], target, str(f.get("pod") or ""), float(at) if isinstance(at, (int, float)) else None)


def save_trace(trace: Trace, path: Path | str) -> Path:
    """Write `trace` as JSON (gzip-compressed when the name ends in .gz)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(trace.to_dict(), separators=(",", ":"), allow_nan=False)
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode(), mtime=0))
    else:
        path.write_text(text + "\n")
    return path


def load_trace(path: Path | str) -> Trace:
    path = Path(path)
    try:
        raw = path.read_bytes()
        text = gzip.decompress(raw).decode() if raw[:2] == b"\x1f\x8b" else raw.decode()
    except OSError as e:
        raise TraceError(f"{path}: cannot read it: {e.strerror or e}") from None
    except (UnicodeDecodeError, gzip.BadGzipFile, EOFError) as e:
        raise TraceError(f"{path}: not a trace (neither JSON text nor gzip): {e}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise TraceError(f"{path}: line {e.lineno}, column {e.colno}: not valid JSON: {e.msg}") from None
    return Trace.from_dict(doc, where=str(path))


def trace_paths(items: Sequence[Path | str]) -> list[Path]:
    """Files named, and every *.json / *.json.gz trace in a directory named, sorted."""
    out: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            out += sorted(x for x in p.iterdir() if x.name.endswith((".json", ".json.gz")))
        else:
            out.append(p)
    return out
