"""Simulated incidents as real-component inputs: OpenMetrics for Prometheus, manifests for the emulator."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from remediator.snapshot import Series
from simulator.cluster import TICK_S
from simulator.incident import Incident, IncidentSpec
from simulator.topology import Topology, generate
from tests.support.prom import PrometheusServer, render_openmetrics, start_prometheus
from tests.support.prom import Series as PromSeries

TOPOLOGY: Topology = generate(8, seed=3)


def incident(fault: str, *, seed: int = 11, service: str | None = None, after_s: float = 60.0,
             **dialect: Any) -> Incident:
    """A simulated incident `after_s` seconds after its alert fired; `dialect` as IncidentSpec's
    (sli, sidecar, scrape_labels)."""
    inc = Incident(TOPOLOGY, IncidentSpec((fault,), service or TOPOLOGY.services[0].name, seed=seed, **dialect))
    if after_s:
        inc.advance(after_s)
    return inc


def observed_series(inc: Incident) -> list[Series]:
    """Exactly the samples the simulator's own observation reads now (one scrape of lag)."""
    c = inc.cluster
    return c.series(until=c.now - TICK_S, alert_start=inc.alert_at)


def merge(*groups: Iterable[Series]) -> list[Series]:
    """Union of series (same name and labels: points merged by timestamp)."""
    merged: dict[tuple[str, tuple[tuple[str, str], ...]], dict[float, float]] = {}
    for group in groups:
        for s in group:
            merged.setdefault((s.name, tuple(sorted(s.labels.items()))), {}).update(s.points)
    return [Series(name, dict(labels), sorted(points.items())) for (name, labels), points in merged.items()]


def openmetrics(series: Iterable[Series]) -> str:
    return render_openmetrics(PromSeries(s.name, s.labels, s.points) for s in series)


@contextmanager
def prometheus_with(workdir: Path, series: Sequence[Series]) -> Iterator[PrometheusServer]:
    """A real Prometheus whose TSDB holds `series` (backfilled with promtool before it starts)."""
    workdir.mkdir(parents=True, exist_ok=True)
    om = workdir / "series.om"
    om.write_text(openmetrics(series))
    with start_prometheus(workdir / "prom", backfill=[om]) as prom:
        yield prom


def manifests(objects: Sequence[dict[str, Any]], *, image: str = "app:1", node_names: Iterable[str] = ()
              ) -> list[dict[str, Any]]:
    """The simulator's objects as complete, valid manifests the emulator can store.

    The simulator keeps only what the snapshot builder reads; a Deployment needs containers
    (and a Service in front of it), a Pod needs a spec, and so on. Names, labels, owners and
    annotations are kept, so the observer sees the same incident through the Kubernetes API.
    """
    out: list[dict[str, Any]] = [{"apiVersion": "v1", "kind": "Node", "metadata": {"name": n},
                                  "status": {"conditions": [{"type": "Ready", "status": "True"}]}}
                                 for n in sorted(set(node_names))]
    container = {"name": "app", "image": image, "resources": {"limits": {"memory": "512Mi", "cpu": "1"}}}
    deployments = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Deployment"}
    for o in objects:
        o = copy.deepcopy(o)
        meta = o["metadata"]
        meta.pop("creationTimestamp", None)
        kind = o["kind"]
        if kind == "Deployment":
            # The Service in front of it, as a real cluster has one: SLO alerts name it.
            out.append({"apiVersion": "v1", "kind": "Service", "metadata": {"name": meta["name"],
                                                                          "namespace": meta["namespace"]},
                        "spec": {"selector": {"app": meta["name"]}, "ports": [{"port": 80}]}})
            template = o["spec"]["template"]
            template["spec"] = {"containers": [copy.deepcopy(container)],
                                **({"volumes": template["spec"]["volumes"]} if template["spec"].get("volumes") else {})}
            out.append({"apiVersion": "apps/v1", **o})
        elif kind == "ReplicaSet":
            owner = meta["ownerReferences"][0]["name"]
            labels = {"app": owner, "pod-template-hash": meta["name"].rsplit("-", 1)[-1]}
            meta["labels"] = labels
            meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "Deployment", "name": owner,
                                        "uid": "00000000-0000-0000-0000-000000000000", "controller": True}]
            dep = deployments.get(owner)
            replicas = dep["spec"]["replicas"] if dep is not None else 0
            out.append({"apiVersion": "apps/v1", **o, "spec": {
                "replicas": replicas, "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": {"containers": [copy.deepcopy(container)]}}}})
        elif kind == "Pod":
            rs = meta["ownerReferences"][0]["name"]
            app = rs.rsplit("-", 1)[0]
            meta["labels"] = {"app": app, "pod-template-hash": rs.rsplit("-", 1)[-1]}
            meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs,
                                        "uid": "00000000-0000-0000-0000-000000000001", "controller": True}]
            o["spec"] = {"nodeName": o["spec"]["nodeName"], "containers": [copy.deepcopy(container)]}
            out.append({"apiVersion": "v1", **o})
        elif kind == "HorizontalPodAutoscaler":
            o["spec"]["scaleTargetRef"]["apiVersion"] = "apps/v1"
            out.append({"apiVersion": "autoscaling/v2", **o})
        elif kind == "PodDisruptionBudget":
            out.append({"apiVersion": "policy/v1", **o})
    return out


def written(obj: dict[str, Any], t: float) -> dict[str, Any]:
    """The object as the API server keeps it after a write at `t` (the emulator keeps no managedFields)."""
    stamp = datetime.fromtimestamp(t, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    meta = obj.setdefault("metadata", {})
    meta["managedFields"] = [{"manager": "kubectl", "operation": "Update", "apiVersion": "v1", "time": stamp}]
    return obj
