"""The catalog proposer: runbook order, targets resolved from real snapshots, noop/escalate always."""

from __future__ import annotations

import dataclasses
import math
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from remediator.actions import ACTION_INDEX, ACTION_KINDS, ActionKind, ObjectRef
from remediator.catalog import Runbook, load_catalog
from remediator.propose import Candidate, CatalogProposer, Proposer, candidate_for, candidate_mask
from remediator.snapshot import (
    DEPENDS_ON_ANNOTATION,
    REVISION_ANNOTATION,
    Alert,
    Series,
    Signals,
    Snapshot,
    build_snapshot,
)
from remediator.versions import ConfigDrift, ServiceDrift, config_version, service_version

K = ActionKind
NOW = 10_000.0
NS = "shop"
CART = ObjectRef("Deployment", NS, "cart")
PASSIVE = (K.NOOP, K.ESCALATE)


# ---------------------------------------------------------------------------- a small cluster


def _meta(kind: str, name: str, **extra: Any) -> dict[str, Any]:
    return {"kind": kind, "metadata": {"name": name, "namespace": NS, **extra}}


def _deployment(name: str, replicas: int, *, deps: str = "", claim: str = "") -> dict[str, Any]:
    obj = _meta("Deployment", name, annotations={DEPENDS_ON_ANNOTATION: deps} if deps else {},
                labels={"app": name})
    volumes = [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}] if claim else []
    obj["spec"] = {"replicas": replicas, "template": {"metadata": {"labels": {"app": name}},
                                                      "spec": {"volumes": volumes}}}
    return obj


def _replicaset(name: str, deployment: str, revision: int, created: float) -> dict[str, Any]:
    return _meta("ReplicaSet", name, annotations={REVISION_ANNOTATION: str(revision)},
                 creationTimestamp=created,
                 ownerReferences=[{"kind": "Deployment", "name": deployment}])


def _pod(name: str, rs: str, node: str) -> dict[str, Any]:
    obj = _meta("Pod", name, ownerReferences=[{"kind": "ReplicaSet", "name": rs}])
    obj["spec"] = {"nodeName": node}
    return obj


def _series(name: str, value: float, **labels: str) -> Series:
    return Series(name, {"namespace": NS, **labels}, [(NOW - 60.0, value), (NOW, value)])


def cluster(*, hpa: bool = True, claim: str = "cart-data", deps: str = "db,cache",
            pods: bool = True) -> list[dict[str, Any]]:
    """cart (3 replicas, two revisions) on node-a, depending on db (down) and cache (fine)."""
    objects = [
        _deployment("cart", 3, deps=deps, claim=claim),
        _deployment("db", 1),
        _deployment("cache", 1),
        _replicaset("cart-old", "cart", 1, NOW - 86_400.0),
        _replicaset("cart-new", "cart", 2, NOW - 300.0),
    ]
    if pods:
        objects += [_pod("cart-new-a", "cart-new", "node-a"), _pod("cart-new-b", "cart-new", "node-a")]
    if hpa:
        hpa_obj = _meta("HorizontalPodAutoscaler", "cart-hpa")
        hpa_obj["spec"] = {"scaleTargetRef": {"kind": "Deployment", "name": "cart"}, "maxReplicas": 6}
        objects.append(hpa_obj)
    return objects


def samples(*, spec_history: tuple[float, ...] = (3.0, 3.0)) -> list[Series]:
    """cart-new-b is the worst pod (not ready); db has no replica available."""
    spec = Series("kube_deployment_spec_replicas", {"namespace": NS, "deployment": "cart"},
                  [(NOW - 60.0 * (len(spec_history) - 1 - i), v) for i, v in enumerate(spec_history)])
    return [
        spec,
        _series("kube_deployment_status_replicas_available", 2.0, deployment="cart"),
        _series("kube_pod_status_ready", 1.0, pod="cart-new-a", condition="true"),
        _series("kube_pod_status_ready", 0.0, pod="cart-new-b", condition="true"),
        _series("kube_deployment_spec_replicas", 1.0, deployment="db"),
        _series("kube_deployment_status_replicas_available", 0.0, deployment="db"),
        _series("kube_deployment_spec_replicas", 1.0, deployment="cache"),
        _series("kube_deployment_status_replicas_available", 1.0, deployment="cache"),
    ]


def snap(alert: str, labels: dict[str, str] | None = None, objects: list[dict[str, Any]] | None = None,
         series: list[Series] | None = None) -> Snapshot:
    return build_snapshot(Alert(alert, {"namespace": NS, **(labels or {"deployment": "cart"})},
                                starts_at=NOW - 120.0),
                          series if series is not None else samples(),
                          objects if objects is not None else cluster(), now=NOW)


@pytest.fixture(scope="module")
def proposer() -> CatalogProposer:
    return CatalogProposer()


def kinds(candidates: list[Candidate]) -> list[ActionKind]:
    return [c.action.kind for c in candidates]


def by_kind(candidates: list[Candidate], kind: ActionKind) -> Candidate:
    found = candidate_for(candidates, kind)
    assert found is not None, f"no {kind.value} among {kinds(candidates)}"
    return found


# ---------------------------------------------------------------------------- behaviour


def test_is_a_proposer() -> None:
    assert isinstance(CatalogProposer(), Proposer)


def test_crash_looping_pod_gets_the_runbook_with_resolved_targets(proposer: CatalogProposer) -> None:
    s = snap("KubePodCrashLooping", {"pod": "cart-new-b", "container": "app"})
    assert s.workload == CART and s.pods[0] == "cart-new-b"
    cands = proposer.propose(s)
    assert kinds(cands) == [K.ROLLBACK_ROLLOUT, K.RAISE_MEMORY_LIMIT, K.RESTART_DEPENDENCY,
                            K.RESTART_ROLLOUT, K.DELETE_POD, K.ESCALATE, K.NOOP]
    assert by_kind(cands, K.ROLLBACK_ROLLOUT).action.target == CART
    assert by_kind(cands, K.RAISE_MEMORY_LIMIT).action.params == {"factor": 1.5}
    assert by_kind(cands, K.DELETE_POD).action.target == ObjectRef("Pod", NS, "cart-new-b")
    assert by_kind(cands, K.RESTART_DEPENDENCY).action.target == ObjectRef("Deployment", NS, "db")
    assert by_kind(cands, K.NOOP).action.target == CART
    assert {c.source for c in cands} == {"catalog"}
    scores = [c.score for c in cands]
    assert scores[0] == 1.0 and scores == sorted(scores, reverse=True) and len(set(scores)) == len(scores)
    first = cands[0]
    assert first.rationale.startswith("KubePodCrashLooping runbook step 1: ")
    assert first.action.rationale == first.rationale


def test_kinds_without_a_target_are_skipped(proposer: CatalogProposer) -> None:
    s = snap("KubePodCrashLooping", objects=cluster(pods=False, deps=""), series=samples()[:2])
    assert s.pods == () and s.dependencies == ()
    got = kinds(proposer.propose(s))
    assert K.DELETE_POD not in got and K.RESTART_DEPENDENCY not in got
    assert got == [K.ROLLBACK_ROLLOUT, K.RAISE_MEMORY_LIMIT, K.RESTART_ROLLOUT, K.ESCALATE, K.NOOP]


def test_hpa_maxed_out_targets_the_autoscaler_and_only_if_there_is_one(proposer: CatalogProposer) -> None:
    s = snap("KubeHpaMaxedOut", {"horizontalpodautoscaler": "cart-hpa"})
    cands = proposer.propose(s)
    raise_max = by_kind(cands, K.RAISE_HPA_MAX)
    assert raise_max.action.target == ObjectRef("HorizontalPodAutoscaler", NS, "cart-hpa")
    assert raise_max.action.params == {"factor": 1.5}
    assert kinds(cands) == [K.RAISE_HPA_MAX, K.RAISE_CPU_LIMIT, K.NOOP, K.ESCALATE]

    no_hpa = snap("KubeHpaMaxedOut", objects=cluster(hpa=False))
    assert kinds(proposer.propose(no_hpa)) == [K.RAISE_CPU_LIMIT, K.NOOP, K.ESCALATE]


def test_volume_filling_up_expands_the_claim(proposer: CatalogProposer) -> None:
    s = snap("KubePersistentVolumeFillingUp", {"persistentvolumeclaim": "cart-data"})
    assert s.workload == CART
    cands = proposer.propose(s)
    expand = by_kind(cands, K.EXPAND_VOLUME)
    assert expand.action.target == ObjectRef("PersistentVolumeClaim", NS, "cart-data")
    assert expand.action.params == {"factor": 1.5}
    assert kinds(cands) == [K.EXPAND_VOLUME, K.ESCALATE, K.NOOP]

    no_claim = snap("KubePersistentVolumeFillingUp", objects=cluster(claim=""))
    assert kinds(proposer.propose(no_claim)) == [K.ESCALATE, K.NOOP]


@pytest.mark.parametrize(("used", "minutes", "factor"), [
    (0.75, 300.0, 1.5),        # a slow fill: the runbook's 1.5x lasts far beyond 2 h
    (0.95, math.inf, 1.5),     # full but not growing: the runbook's factor
    (0.8, 30.0, 1.6),          # 0.8 + 0.2/30 * 120: 1.6x lasts 2 h at this rate
    (0.85, 10.0, 2.0),         # would need 2.65x: the runbook's limit (2.0) caps it
])
def test_volume_expansion_is_sized_by_the_fill_rate(proposer: CatalogProposer, used: float, minutes: float,
                                                    factor: float) -> None:
    """A fast fill gets an expansion that lasts twice the verifier's hour, so one expansion suffices."""
    s = snap("KubePersistentVolumeFillingUp", {"persistentvolumeclaim": "cart-data"})
    s = dataclasses.replace(s, signals=dataclasses.replace(s.signals, pvc_used_ratio=used,
                                                           pvc_minutes_to_full=minutes))
    assert by_kind(proposer.propose(s), K.EXPAND_VOLUME).action.params == {"factor": factor}


def test_node_not_ready_is_about_the_node(proposer: CatalogProposer) -> None:
    node_b = {"kind": "Node", "metadata": {"name": "node-b"}}
    s = snap("KubeNodeNotReady", {"node": "node-b"}, objects=[*cluster(pods=False), node_b])
    assert s.workload is None and s.node == "node-b"
    # A node the cluster does not have is no target.
    assert snap("KubeNodeNotReady", {"node": "node-b"}, objects=cluster(pods=False)).node is None
    node = ObjectRef("Node", "", "node-b")
    cands = proposer.propose(s)
    assert kinds(cands) == [K.CORDON_DRAIN_NODE, K.NOOP, K.ESCALATE]
    assert all(c.action.target == node for c in cands)


def test_pod_not_ready_drains_the_pods_node(proposer: CatalogProposer) -> None:
    s = snap("KubePodNotReady", {"pod": "cart-new-b"})
    assert s.node == "node-a"
    cands = proposer.propose(s)
    assert by_kind(cands, K.CORDON_DRAIN_NODE).action.target == ObjectRef("Node", "", "node-a")
    assert by_kind(cands, K.DELETE_POD).action.target == ObjectRef("Pod", NS, "cart-new-b")


def test_restore_replicas_only_below_the_baseline(proposer: CatalogProposer) -> None:
    scaled_down = snap("ServiceErrorBudgetBurn", {"service": "cart"},
                       series=samples(spec_history=(4.0, 4.0, 0.0)))
    assert scaled_down.signals.baseline_replicas == 4.0 and scaled_down.signals.desired_replicas == 0.0
    restore = by_kind(proposer.propose(scaled_down), K.RESTORE_REPLICAS)
    assert restore.action.target == CART and restore.action.params == {"replicas": 4}

    steady = snap("ServiceErrorBudgetBurn", {"service": "cart"})
    assert candidate_for(proposer.propose(steady), K.RESTORE_REPLICAS) is None


def test_restore_replicas_respects_the_runbooks_limit(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text(textwrap.dedent("""\
        alert: Shrunk
        summary: Replicas went missing.
        actions:
          - kind: restore_replicas
            limits: {replicas: {max: 5}}
        verify: {consecutive: 2, timeout_s: 60}
        """))
    s = Snapshot(Alert("Shrunk", {"namespace": NS}), NOW, CART,
                 Signals(desired_replicas=1.0, baseline_replicas=9.7))
    restore = by_kind(CatalogProposer(load_catalog(tmp_path)).propose(s), K.RESTORE_REPLICAS)
    assert restore.action.params == {"replicas": 5}


def test_alert_without_runbook_gets_noop_and_escalate_only(proposer: CatalogProposer) -> None:
    s = snap("SomethingNobodyWroteDown")
    cands = proposer.propose(s)
    assert kinds(cands) == [K.NOOP, K.ESCALATE]
    assert [c.score for c in cands] == [1.0, 0.9]
    assert all(c.action.target == CART for c in cands)
    assert "no runbook for SomethingNobodyWroteDown" in cands[0].rationale


def test_cluster_wide_alert_escalates_on_the_cluster(proposer: CatalogProposer) -> None:
    s = Snapshot(Alert("KubeMemoryOvercommit", {"cluster": "prod"}), NOW, None, Signals())
    cands = proposer.propose(s)
    assert kinds(cands) == [K.ESCALATE, K.NOOP]
    assert {c.action.target for c in cands} == {ObjectRef("Cluster", "", "prod")}


def test_runbook_label_filter_decides(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text(textwrap.dedent("""\
        alert: KubePodCrashLooping
        match: {severity: critical}
        summary: Only the critical ones.
        actions: [{kind: restart_rollout, when: critical crash loop}]
        verify: {consecutive: 2, timeout_s: 60}
        """))
    p = CatalogProposer(load_catalog(tmp_path))
    critical = snap("KubePodCrashLooping", {"deployment": "cart", "severity": "critical"})
    warning = snap("KubePodCrashLooping", {"deployment": "cart", "severity": "warning"})
    assert kinds(p.propose(critical)) == [K.RESTART_ROLLOUT, K.NOOP, K.ESCALATE]
    assert kinds(p.propose(warning)) == [K.NOOP, K.ESCALATE]


def test_match_is_the_seam_for_other_matchers() -> None:
    class Fuzzy(CatalogProposer):
        def _match(self, alert: Alert) -> Runbook | None:
            return self.catalog.get("KubePodCrashLooping") if "Crash" in alert.name else None

    cands = Fuzzy().propose(snap("AppCrashing"))
    assert kinds(cands)[0] is K.ROLLBACK_ROLLOUT


def test_every_shipped_runbook_yields_one_candidate_per_kind_with_noop_and_escalate(
        proposer: CatalogProposer) -> None:
    rich = snap("placeholder", series=samples(spec_history=(5.0, 2.0)))
    # A config and a Service that drifted from their last-known-good versions, a node to uncordon.
    good_cm = config_version({"kind": "ConfigMap", "metadata": {"name": "cart-config", "namespace": NS},
                              "data": {"mode": "ok"}})
    edited_cm = config_version({"kind": "ConfigMap", "metadata": {"name": "cart-config", "namespace": NS},
                                "data": {"mode": "broken"}})
    good_svc, bad_svc = (service_version({"kind": "Service", "metadata": {"name": "cart", "namespace": NS},
                                          "spec": {"selector": sel, "ports": [{"port": 80}]}})
                         for sel in ({"app": "cart"}, {"app": "cart-v2"}))
    for name in load_catalog().alerts:
        s = Snapshot(Alert(name, {"namespace": NS, "deployment": "cart"}), NOW, rich.workload,
                     rich.signals, node=rich.node, pods=rich.pods, hpa=rich.hpa,
                     pvc=rich.pvc, dependencies=rich.dependencies, configs=(edited_cm,),
                     config_drift=(ConfigDrift(edited_cm, good_cm, "edited"),), service=bad_svc,
                     service_drift=ServiceDrift(bad_svc, good_svc, ("selector",)), cordoned_node="node-9")
        cands = proposer.propose(s)
        got = kinds(cands)
        assert len(got) == len(set(got)), name
        assert K.NOOP in got and K.ESCALATE in got, name
        runbook = load_catalog().get(name)
        assert runbook is not None
        # with every target present, nothing the runbook lists is skipped, in its order
        assert [k for k in got if k in runbook.kinds] == list(runbook.kinds), name
        for c in cands:
            assert c.action.kind in ACTION_KINDS
            assert c.action.target.kind == {
                K.DELETE_POD: "Pod", K.CORDON_DRAIN_NODE: "Node", K.RAISE_HPA_MAX: "HorizontalPodAutoscaler",
                K.EXPAND_VOLUME: "PersistentVolumeClaim", K.REVERT_CONFIG: "ConfigMap", K.RESTORE_SERVICE: "Service",
                K.UNCORDON_NODE: "Node"}.get(c.action.kind, "Deployment"), name


def test_proposing_is_deterministic(proposer: CatalogProposer) -> None:
    s = snap("ServiceLatencyHigh", {"service": "cart"})
    assert proposer.propose(s) == proposer.propose(s) == CatalogProposer().propose(s)


# ---------------------------------------------------------------------------- helpers


def test_candidate_mask_and_lookup(proposer: CatalogProposer) -> None:
    cands = proposer.propose(snap("KubeHpaMaxedOut", {"horizontalpodautoscaler": "cart-hpa"}))
    mask = candidate_mask(cands)
    assert mask.dtype == np.bool_ and mask.shape == (len(ACTION_KINDS),)
    assert {ACTION_KINDS[i] for i in np.flatnonzero(mask)} == set(kinds(cands))
    assert mask[ACTION_INDEX[K.RAISE_HPA_MAX]] and not mask[ACTION_INDEX[K.DELETE_POD]]
    assert candidate_for(cands, K.DELETE_POD) is None
    assert by_kind(cands, K.NOOP).kind is K.NOOP
    assert not candidate_mask([]).any()
