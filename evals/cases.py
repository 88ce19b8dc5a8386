"""Evaluation cases as folders: load one, turn its cluster spec into a real Snapshot.

Each case is a folder (holmesgpt-style) with three files:

- `alert.json` — the Alertmanager v4 webhook payload, exactly what `remediator propose
  --alert` reads (the first firing alert is the incident);
- `context.yaml` — the cluster around it as a compact spec (below), expanded here into the
  Kubernetes objects and raw metric series (real metric names, 15 s samples) that
  `remediator.snapshot.build_snapshot` reads, plus log lines for the LLM prompt;
- `expected.yaml` — the acceptable first actions (`acceptable: [kinds]`), where the alert
  comes from, and for injection cases the attack and the answer a compromised model gives.

The spec (every key optional except `namespace`)::

    namespace: shop
    firing_for_s: 900                    # now = startsAt + this
    workload:                            # the alerted workload
      name: checkout
      kind: Deployment                   # or DaemonSet (revisions are then ControllerRevisions)
      replicas: 3                        # desired now
      baseline_replicas: 3               # desired before the alert (scaled down if more)
      available: 2
      labels: {app: checkout}
      depends_on: [payments]             # the remediator.io/depends-on annotation
      limits: {memory: 268435456, cpu: 0.5}
      revisions: [{revision: 13, age_s: 604800}, {revision: 14, age_s: 1800}]
      hpa: {name: checkout, max: 6, current: 6}
      pvc: {name: checkout-data, capacity: 10737418240, used_ratio: 0.93, growth_per_min: 0.001}
      pdb: {disruptions_allowed: 1}
    pods:
      - {name: checkout-7d9f8b6c5-x2k4q, node: worker-2, ready: false, restarts_per_min: 0.6,
         last_terminated: OOMKilled, waiting: CrashLoopBackOff, memory_ratio: 0.99,
         memory_slope_per_min: 0.0, cpu_ratio: 0.3, throttle_ratio: 0.0}
    nodes: [{name: worker-2, ready: true}]
    traffic: {rps: 50, baseline_rps: 50, error_ratio: 0.07, p99_s: 1.9}
    dependencies: [{name: payments, replicas: 2, available: 0, rps: 20, error_ratio: 0.6, p99_s: 0.2}]
    events: [{object: Pod/checkout-7d9f8b6c5-x2k4q, type: Warning, reason: BackOff, message: "..."}]
    logs: ["..."]
    objects: []                          # extra raw Kubernetes objects, appended as they are

Only the evaluation harness, its tests and `benchmarks/llm_eval.py` use this module.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from remediator.actions import ActionKind, ObjectRef
from remediator.snapshot import (
    DEPENDS_ON_ANNOTATION,
    REVISION_ANNOTATION,
    Alert,
    Series,
    Signals,
    Snapshot,
    SnapshotError,
    build_snapshot,
)

ROOT = Path(__file__).resolve().parent
CASES_DIR = ROOT / "cases"
INJECTION_DIR = ROOT / "injection"
STEP_S = 15.0
HISTORY_S = 2700.0  # series reach back this far from `now` (covers the pre-alert traffic baseline)
_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class CaseError(ValueError):
    """A case folder that cannot be loaded; the message names the file and the problem."""


@dataclass(frozen=True)
class EvalCase:
    """One evaluation case, loaded: the alert, the snapshot built from its spec, what is acceptable."""

    id: str
    path: Path
    payload: Mapping[str, Any]
    alert: Alert
    now: float
    spec: Mapping[str, Any]
    expected: Mapping[str, Any]
    objects: tuple[Mapping[str, Any], ...] = ()
    series: tuple[Series, ...] = ()
    logs: tuple[str, ...] = ()
    snapshot: Snapshot = field(default=None)  # type: ignore[assignment]

    @property
    def acceptable(self) -> frozenset[ActionKind]:
        return frozenset(ActionKind(k) for k in self.expected.get("acceptable", ()))

    @property
    def malicious(self) -> list[dict[str, Any]]:
        return list(self.expected.get("malicious", ()))

    @property
    def scope(self) -> frozenset[ObjectRef]:
        """Every object an action may touch in this case, read from the spec (not from the code under test)."""
        return frozenset(_scope(self.spec, self.alert))


# ---------------------------------------------------------------------------- payload


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def parse_alerts(payload: Mapping[str, Any]) -> list[Alert]:
    """The alerts of an Alertmanager v4 webhook payload (a strict, minimal reading)."""
    if str(payload.get("version")) != "4" or not isinstance(payload.get("alerts"), list):
        raise CaseError("not an Alertmanager v4 webhook payload (version '4' and an alerts list)")
    out = []
    for i, a in enumerate(payload["alerts"]):
        labels = {str(k): str(v) for k, v in (a.get("labels") or {}).items()}
        if not labels.get("alertname"):
            raise CaseError(f"alerts[{i}] has no alertname label")
        out.append(Alert(name=labels["alertname"], labels=labels,
                         annotations={str(k): str(v) for k, v in (a.get("annotations") or {}).items()},
                         starts_at=_epoch(a["startsAt"]), status=a.get("status", "firing"),
                         fingerprint=a.get("fingerprint", "")))
    return out


def webhook(alerts: Sequence[Mapping[str, Any]], receiver: str = "remediator") -> dict[str, Any]:
    """An Alertmanager v4 webhook payload around these alerts (status, labels, annotations, startsAt)."""
    common = set.intersection(*(set(a["labels"].items()) for a in alerts)) if alerts else set()
    body = []
    for a in alerts:
        labels = dict(a["labels"])
        body.append({
            "status": a.get("status", "firing"), "labels": labels, "annotations": dict(a.get("annotations", {})),
            "startsAt": a["startsAt"], "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus-k8s.monitoring.svc:9090/graph?g0.expr=" + labels["alertname"],
            "fingerprint": hashlib.sha256(json.dumps(labels, sort_keys=True).encode()).hexdigest()[:16],
        })
    group = {"alertname": alerts[0]["labels"]["alertname"]} if alerts else {}
    return {
        "version": "4", "groupKey": "{}:" + json.dumps(group, sort_keys=True), "truncatedAlerts": 0,
        "status": "firing", "receiver": receiver, "groupLabels": group, "commonLabels": dict(sorted(common)),
        "commonAnnotations": {}, "externalURL": "http://alertmanager-main.monitoring.svc:9093", "alerts": body,
    }


# ---------------------------------------------------------------------------- spec -> objects, series


def _meta(kind: str, name: str, ns: str, api: str, **extra: Any) -> dict[str, Any]:
    meta = {"name": name, **({"namespace": ns} if ns else {}), **extra}
    return {"apiVersion": api, "kind": kind, "metadata": meta}


def _rs_name(workload: str, revision: int) -> str:
    return f"{workload}-{hashlib.sha256(f'{workload}/{revision}'.encode()).hexdigest()[:9]}"


def _times(now: float) -> list[float]:
    n = int(HISTORY_S // STEP_S)
    return [now - (n - i) * STEP_S for i in range(n + 1)]


def _gauge(name: str, labels: Mapping[str, str], value: float, now: float, *,
           before: float | None = None, switch_at: float | None = None, slope_per_s: float = 0.0) -> Series:
    pts = []
    for t in _times(now):
        v = before if before is not None and switch_at is not None and t < switch_at else value
        pts.append((t, v + slope_per_s * (t - now)))
    return Series(name, dict(labels), pts)


def _counter(name: str, labels: Mapping[str, str], rate: float, now: float, *,
             before: float | None = None, switch_at: float | None = None) -> Series:
    pts, total, prev = [], 1000.0, None
    for t in _times(now):
        if prev is not None:
            r = before if before is not None and switch_at is not None and t <= switch_at else rate
            total += r * (t - prev)
        pts.append((t, total))
        prev = t
    return Series(name, dict(labels), pts)


def _latency_buckets(ns: str, service: str, rps: float, p99: float, now: float) -> list[Series]:
    """Histogram bucket counters whose interpolated p99 is close to `p99`."""
    if rps <= 0:
        return []
    bounds = (*_BUCKETS, math.inf)
    lo, hi = 0.0, _BUCKETS[0]
    for b in _BUCKETS:
        if p99 <= b:
            hi = b
            break
        lo = b
    else:
        lo, hi = _BUCKETS[-2], _BUCKETS[-1]
    x = (p99 - lo) / (hi - lo) if hi > lo else 0.0
    below = max(0.0, (0.99 - x) / (1 - x)) if x < 0.99 else 0.0
    out = []
    for b in bounds:
        # The `below` share sits in the first bucket, the rest in (lo, hi]: interpolation gives p99.
        frac = 1.0 if b >= hi else (below if lo > 0 else 0.0)
        le = "+Inf" if math.isinf(b) else f"{b:g}"
        out.append(_counter("http_request_duration_seconds_bucket", {"namespace": ns, "service": service, "le": le},
                            rps * frac, now))
    return out


def _traffic(ns: str, service: str, t: Mapping[str, Any], now: float, switch_at: float) -> list[Series]:
    rps = float(t.get("rps", 0.0))
    base = float(t.get("baseline_rps", rps))
    err = float(t.get("error_ratio", 0.0))
    out = [
        _counter("http_requests_total", {"namespace": ns, "service": service, "code": "200"}, rps * (1 - err), now,
                 before=base * (1 - err), switch_at=switch_at),
        _counter("http_requests_total", {"namespace": ns, "service": service, "code": "500"}, rps * err, now,
                 before=base * err, switch_at=switch_at),
    ]
    return out + _latency_buckets(ns, service, rps, float(t.get("p99_s", 0.1)), now)


def _controller(w: Mapping[str, Any], kind: str, revisions: Sequence[Mapping[str, Any]], meta: Mapping[str, Any],
                volumes: list[dict[str, Any]], now: float, switch_at: float, objects: list[dict[str, Any]],
                series: list[Series]) -> None:
    """The alerted workload itself (a Deployment or a DaemonSet), its replica series and its revisions
    (ReplicaSets, or ControllerRevisions)."""
    name, ns = str(w["name"]), str(meta["namespace"])
    dep = _meta(kind, name, ns, "apps/v1", labels=meta["labels"], annotations=meta["annotations"])
    replicas = float(w.get("replicas", 1))
    dep["spec"] = {**({"replicas": int(replicas)} if kind == "Deployment" else {}),
                   "selector": {"matchLabels": {"app": name}},
                   "template": {"metadata": {"labels": {"app": name}},
                                "spec": {"containers": [{"name": "app", "image": f"{name}:1"}],
                                         "volumes": volumes}}}
    if kind == "Deployment":
        series.append(_gauge("kube_deployment_spec_replicas", {"namespace": ns, "deployment": name}, replicas,
                             now, before=float(w.get("baseline_replicas", replicas)), switch_at=switch_at))
        series.append(_gauge("kube_deployment_status_replicas_available", {"namespace": ns, "deployment": name},
                             float(w.get("available", replicas)), now))
    else:  # a DaemonSet: one pod per node it schedules on; `replicas` is that number
        dl = {"namespace": ns, "daemonset": name}
        series.append(_gauge("kube_daemonset_status_desired_number_scheduled", dl, replicas, now))
        series.append(_gauge("kube_daemonset_status_number_available", dl, float(w.get("available", replicas)),
                             now))
    objects.append(dep)
    for r in revisions:
        if kind == "Deployment":
            rs = _meta("ReplicaSet", _rs_name(name, int(r["revision"])), ns, "apps/v1",
                       annotations={REVISION_ANNOTATION: str(r["revision"])},
                       creationTimestamp=now - float(r["age_s"]),
                       ownerReferences=[{"apiVersion": "apps/v1", "kind": "Deployment", "name": name}])
        else:
            rs = _meta("ControllerRevision", _rs_name(name, int(r["revision"])), ns, "apps/v1",
                       creationTimestamp=now - float(r["age_s"]),
                       ownerReferences=[{"apiVersion": "apps/v1", "kind": kind, "name": name, "controller": True}])
            rs["revision"] = int(r["revision"])
        objects.append(rs)


def _pod(p: Mapping[str, Any], ns: str, name: str, owner: Mapping[str, Any], limits: Mapping[str, Any], now: float,
         objects: list[dict[str, Any]], series: list[Series]) -> None:
    """One pod of the alerted workload (owned by `owner`) and its series."""
    pod_name = str(p["name"])
    pod = _meta("Pod", pod_name, ns, "v1", labels={"app": name},
                ownerReferences=[{"apiVersion": "apps/v1", **owner}])
    pod["spec"] = {"nodeName": str(p.get("node", "")), "containers": [{"name": "app"}]}
    objects.append(pod)
    pl = {"namespace": ns, "pod": pod_name, "container": "app"}
    series.append(_gauge("kube_pod_status_ready", {"namespace": ns, "pod": pod_name, "condition": "true"},
                         1.0 if p.get("ready", True) else 0.0, now))
    series.append(_counter("kube_pod_container_status_restarts_total", pl,
                           float(p.get("restarts_per_min", 0.0)) / 60.0, now))
    if p.get("last_terminated"):
        series.append(_gauge("kube_pod_container_status_last_terminated_reason",
                             {**pl, "reason": str(p["last_terminated"])}, 1.0, now))
    if p.get("waiting"):
        series.append(_gauge("kube_pod_container_status_waiting_reason",
                             {**pl, "reason": str(p["waiting"])}, 1.0, now))
    mem_limit, cpu_limit = float(limits.get("memory", 0)), float(limits.get("cpu", 0))
    for res, lim in (("memory", mem_limit), ("cpu", cpu_limit)):
        if lim:
            series.append(_gauge("kube_pod_container_resource_limits", {**pl, "resource": res}, lim, now))
    if mem_limit:
        series.append(_gauge("container_memory_working_set_bytes", pl,
                             mem_limit * float(p.get("memory_ratio", 0.4)), now,
                             slope_per_s=mem_limit * float(p.get("memory_slope_per_min", 0.0)) / 60.0))
    if cpu_limit:
        series.append(_counter("container_cpu_usage_seconds_total", pl,
                               cpu_limit * float(p.get("cpu_ratio", 0.2)), now))
    series.append(_counter("container_cpu_cfs_periods_total", pl, 10.0, now))
    series.append(_counter("container_cpu_cfs_throttled_periods_total", pl,
                           10.0 * float(p.get("throttle_ratio", 0.0)), now))


def materialize(spec: Mapping[str, Any], alert: Alert, now: float) -> tuple[list[dict[str, Any]], list[Series]]:
    """The Kubernetes objects and metric series that the spec describes."""
    ns = str(spec["namespace"])
    objects: list[dict[str, Any]] = []
    series: list[Series] = []
    switch_at = alert.starts_at - 300.0
    w = spec.get("workload")
    if w:
        name = str(w["name"])
        labels = {"app": name, **(w.get("labels") or {})}
        annotations = dict(w.get("annotations") or {})
        if w.get("depends_on"):
            annotations[DEPENDS_ON_ANNOTATION] = ",".join(w["depends_on"])
        volumes = [{"name": "data", "persistentVolumeClaim": {"claimName": w["pvc"]["name"]}}] if w.get("pvc") else []
        kind = _workload_kind(w)
        revisions = w.get("revisions") or [{"revision": 1, "age_s": 30 * 86400}]
        _controller(w, kind, revisions, {"namespace": ns, "labels": labels, "annotations": annotations}, volumes,
                    now, switch_at, objects, series)
        newest = _rs_name(name, int(max(revisions, key=lambda r: int(r["revision"]))["revision"]))
        if w.get("hpa"):
            h = w["hpa"]
            hpa = _meta("HorizontalPodAutoscaler", str(h["name"]), ns, "autoscaling/v2")
            hpa["spec"] = {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                           "minReplicas": int(h.get("min", 1)), "maxReplicas": int(h["max"])}
            objects.append(hpa)
            hl = {"namespace": ns, "horizontalpodautoscaler": str(h["name"])}
            series.append(_gauge("kube_horizontalpodautoscaler_status_current_replicas", hl,
                                 float(h.get("current", h["max"])), now))
            series.append(_gauge("kube_horizontalpodautoscaler_spec_max_replicas", hl, float(h["max"]), now))
        if w.get("pvc"):
            p = w["pvc"]
            cap = float(p.get("capacity", 10 * 2**30))
            pvc = _meta("PersistentVolumeClaim", str(p["name"]), ns, "v1")
            pvc["spec"] = {"resources": {"requests": {"storage": str(int(cap))}}}
            objects.append(pvc)
            pl = {"namespace": ns, "persistentvolumeclaim": str(p["name"])}
            series.append(_gauge("kubelet_volume_stats_used_bytes", pl, cap * float(p.get("used_ratio", 0.5)), now,
                                 slope_per_s=cap * float(p.get("growth_per_min", 0.0)) / 60.0))
            series.append(_gauge("kubelet_volume_stats_capacity_bytes", pl, cap, now))
        if w.get("pdb"):
            pdb = _meta("PodDisruptionBudget", f"{name}-pdb", ns, "policy/v1")
            pdb["spec"] = {"selector": {"matchLabels": {"app": name}}}
            pdb["status"] = {"disruptionsAllowed": int(w["pdb"].get("disruptions_allowed", 1))}
            objects.append(pdb)
        owner = {"kind": kind, "name": name, "controller": True}  # a DaemonSet's pods; a Deployment's: its ReplicaSet
        for p in spec.get("pods") or []:
            _pod(p, ns, name, owner if kind != "Deployment" else {"kind": "ReplicaSet", "name": p.get("rs", newest)},
                 w.get("limits") or {"memory": 512 * 2**20, "cpu": 0.5}, now, objects, series)
        if spec.get("traffic"):
            series += _traffic(ns, name, spec["traffic"], now, switch_at)
    for n in spec.get("nodes") or []:
        node = _meta("Node", str(n["name"]), "", "v1")
        node["status"] = {"conditions": [{"type": "Ready", "status": "True" if n.get("ready", True) else "False"}]}
        objects.append(node)
        series.append(_gauge("kube_node_status_condition",
                             {"node": str(n["name"]), "condition": "Ready", "status": "true"},
                             1.0 if n.get("ready", True) else 0.0, now))
    for d in spec.get("dependencies") or []:
        dname = str(d["name"])
        dep = _meta("Deployment", dname, ns, "apps/v1", labels={"app": dname})
        dep["spec"] = {"replicas": int(d.get("replicas", 1)), "selector": {"matchLabels": {"app": dname}},
                       "template": {"metadata": {"labels": {"app": dname}}, "spec": {"containers": [{"name": "app"}]}}}
        objects.append(dep)
        dl = {"namespace": ns, "deployment": dname}
        series.append(_gauge("kube_deployment_spec_replicas", dl, float(d.get("replicas", 1)), now))
        series.append(_gauge("kube_deployment_status_replicas_available", dl,
                             float(d.get("available", d.get("replicas", 1))), now))
        if d.get("rps"):
            series += _traffic(ns, dname, d, now, switch_at)
    for i, e in enumerate(spec.get("events") or []):
        kind, _, obj = str(e["object"]).partition("/")
        ev = _meta("Event", f"{obj}.{i:04x}", ns, "v1")
        ev.update({"involvedObject": {"kind": kind, "name": obj, "namespace": ns}, "type": e.get("type", "Normal"),
                   "reason": e.get("reason", ""), "message": str(e.get("message", "")),
                   "lastTimestamp": now - 60.0 * (len(spec["events"]) - i)})
        objects.append(ev)
    objects += [dict(o) for o in spec.get("objects") or []]
    return objects, series


def snapshot_for(alert: Alert, series: Sequence[Series], objects: Sequence[Mapping[str, Any]], now: float) -> Snapshot:
    """`build_snapshot`, or for an alert tied to no workload or node, a bare snapshot (noop/escalate only)."""
    try:
        return build_snapshot(alert, series, objects, now=now)
    except SnapshotError:
        return Snapshot(alert=alert, at=now, workload=None, signals=Signals(), missing=("workload",))


_WORKLOAD_KINDS = ("Deployment", "DaemonSet")


def _workload_kind(w: Mapping[str, Any]) -> str:
    kind = str(w.get("kind", "Deployment"))
    if kind not in _WORKLOAD_KINDS:
        raise CaseError(f"workload.kind {kind!r}: one of {', '.join(_WORKLOAD_KINDS)}")
    return kind


def _scope(spec: Mapping[str, Any], alert: Alert) -> set[ObjectRef]:
    ns = str(spec["namespace"])
    out: set[ObjectRef] = set()
    w = spec.get("workload")
    if w:
        out.add(ObjectRef(_workload_kind(w), ns, str(w["name"])))
        if w.get("hpa"):
            out.add(ObjectRef("HorizontalPodAutoscaler", ns, str(w["hpa"]["name"])))
        if w.get("pvc"):
            out.add(ObjectRef("PersistentVolumeClaim", ns, str(w["pvc"]["name"])))
        out |= {ObjectRef("Deployment", ns, str(d)) for d in w.get("depends_on") or ()}
        for p in spec.get("pods") or []:
            out.add(ObjectRef("Pod", ns, str(p["name"])))
            if p.get("node"):
                out.add(ObjectRef("Node", "", str(p["node"])))
    if alert.labels.get("node"):
        out.add(ObjectRef("Node", "", alert.labels["node"]))
    return out


# ---------------------------------------------------------------------------- loading


def load_case(path: Path) -> EvalCase:
    path = Path(path)
    try:
        payload = json.loads((path / "alert.json").read_text())
        spec = yaml.safe_load((path / "context.yaml").read_text()) or {}
        expected = yaml.safe_load((path / "expected.yaml").read_text()) or {}
    except (OSError, ValueError, yaml.YAMLError) as e:
        raise CaseError(f"{path}: {e}") from e
    firing = [a for a in parse_alerts(payload) if a.status == "firing"]
    if not firing:
        raise CaseError(f"{path}/alert.json: no firing alert")
    alert = firing[0]
    now = alert.starts_at + float(spec.get("firing_for_s", 900.0))
    objects, series = materialize(spec, alert, now)
    unknown = [k for k in expected.get("acceptable", ()) if k not in {a.value for a in ActionKind}]
    if unknown:
        raise CaseError(f"{path}/expected.yaml: acceptable lists unknown kinds {unknown}")
    case = EvalCase(id=path.name, path=path, payload=payload, alert=alert, now=now, spec=spec, expected=expected,
                    objects=tuple(objects), series=tuple(series), logs=tuple(str(x) for x in spec.get("logs") or ()))
    object.__setattr__(case, "snapshot", snapshot_for(alert, series, objects, now))
    return case


def load_cases(directory: Path = CASES_DIR) -> list[EvalCase]:
    """Every case folder under `directory`, sorted by name."""
    return [load_case(p) for p in sorted(directory.iterdir()) if p.is_dir() and (p / "alert.json").is_file()]
