"""One simulated incident from alert to recovery: the state the env and the benchmark drive."""

from __future__ import annotations

import copy
import hashlib
import random
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from remediator.actions import Action, ActionKind, ObjectRef
from remediator.guards import Executed
from remediator.slis import DEFAULT_PROFILE, PROFILES
from remediator.snapshot import PROTECTED_LABEL, Alert, Attempt, Series, Slo, Snapshot, SnapshotError, build_snapshot
from remediator.verify import Outcome, RecoveryTracker, unmet
from remediator.versions import ConfigVersion, KnownGood, config_version, service_version
from simulator.alerting import RuleClock
from simulator.cluster import TICK_S, Cluster, Workload, secret_name, true_signals
from simulator.dialect import NO_SLI, SLI_CHOICES, missing_for, rule_labels
from simulator.dynamics import Dynamics
from simulator.faults import FAULTS, Fault
from simulator.faults.base import LEAD, worst_pod
from simulator.safety import unsafe_reason
from simulator.topology import ServiceSpec, Topology

EPOCH = 1_767_225_600.0  # 2026-01-01T00:00:00Z: simulated clocks start here
PRE_ALERT_S = 900.0  # simulated history before the alert fires
# With rule timing (IncidentSpec.alert_for) the fault starts this much later, so a quarter hour of
# healthy history precedes the alert's rule turning true; a rule that has not fired this long after
# the onset fires then (the fault's effect was too mild for it; tests count how often).
RULE_HISTORY_S = 900.0
RULE_MAX_WAIT_S = 3600.0
HORIZON_S = 1800.0
DECISION_S = 60.0  # after acting, wait this long before deciding again
APPROVAL_S = (60.0, 180.0)  # a human answers an approval request within this
HUMAN_S = (600.0, 900.0)  # after an escalation, a human starts fixing within this
VARIANTS = ("", "misleading", "protected", "kube_system", "pdb_at_min")
# Bystanders a real cluster is full of, each pointing a fixed runbook table the wrong way,
# with how often one rides along on any incident: an unrelated rollout in the last hour, an
# old OOM kill still shown as the last termination reason, a working set that sits near its
# limit by design (a JVM heap, a page cache), a CPU limit tight enough to throttle without
# hurting latency, an autoscaler pinned at its maximum on purpose. The `misleading` variant
# carries at least two.
HERRINGS: dict[str, float] = {"unrelated_rollout": 0.2, "old_oom": 0.15, "hot_memory": 0.15,
                              "tight_cpu": 0.25, "hpa_pinned": 0.3}
CONFIG_HERRING = 0.15  # share of incidents whose ConfigMap someone edited harmlessly shortly before the alert


@dataclass(frozen=True)
class IncidentSpec:
    """A seeded incident: which faults hit which service, and how it is dressed."""

    faults: tuple[str, ...]
    service: str
    seed: int
    variant: str = ""
    noise: float = 0.02
    # The cluster's dialect (simulator.dialect): the SLI profile its request metrics come in
    # ("none": no request metric at all), an istio-proxy sidecar in the workload's pods, and the
    # scrape targets' labels on series and alerts, as kube-prometheus-stack leaves them.
    sli: str = "http"
    sidecar: bool = False
    scrape_labels: bool = False
    # The alert fires as its rule would: after its `for:` held (simulator.alerting), not at a
    # fixed moment after the fault's onset.
    alert_for: bool = False
    statefulset: bool = False  # the alerted workload is a StatefulSet
    # The agent reads the Secrets the workload mounts, to digest them (versions.config_digest), as the
    # live observer does with `secrets.revert` on; off (its default RBAC grants no Secret read), it
    # sees only which Secret the pod template names.
    secret_digests: bool = False
    # With digests, the agent also kept the Secret's good values sealed (live: `secrets.revert` with
    # a sealing key), so `revert_config` can put them back.
    secret_revert: bool = False
    # Exporters the cluster's Prometheus lacks (simulator.dialect.MISSING_FAMILIES): their series never
    # reach the agent, unless the alert itself came from one.
    missing: tuple[str, ...] = ()
    # How often Prometheus scrapes (a multiple of the 15 s tick): the series carry those samples only.
    scrape_interval_s: float = TICK_S

    @property
    def fault(self) -> str:
        return self.faults[0]


class Incident:
    def __init__(self, topology: Topology, spec: IncidentSpec, horizon_s: float = HORIZON_S,
                 dynamics: Dynamics | None = None, start: float = EPOCH) -> None:
        """`start`: when the simulated clock begins (incidents logged to one ledger need one timeline)."""
        _check(spec)
        self.spec = spec
        self.horizon_s = horizon_s
        rng = random.Random(spec.seed)
        self.rng = rng
        params = (dynamics or Dynamics()).fault_params
        self.faults: list[Fault] = [FAULTS[f](rng, params.get(f)) for f in spec.faults]
        svc = topology.service(spec.service)
        for fault in self.faults:
            if not fault.suits(svc):
                svc = fault.adapt(svc)
        # Herrings draw from their own stream, so they never shift the incident's own timings.
        hrng = random.Random(spec.seed ^ 0x5EED)
        herrings = {h for h, p in HERRINGS.items() if hrng.random() < p}
        if spec.variant == "misleading":
            herrings |= set(hrng.sample(sorted(HERRINGS), 2))
        self.herrings = tuple(h for h in HERRINGS if h in herrings)
        svc = _dress(svc, self.herrings, hrng, spec.faults)
        namespace = None
        if spec.variant == "protected":
            svc = replace(svc, labels={**svc.labels, PROTECTED_LABEL: "true"})
        elif spec.variant == "kube_system":
            namespace = "kube-system"
        elif spec.variant == "pdb_at_min":
            svc = replace(svc, pdb_min_available=svc.replicas)
        topology = Topology(topology.nodes, tuple(svc if s.name == svc.name else s for s in topology.services))
        self.cluster = c = Cluster(topology, spec.service, rng, noise=spec.noise, namespace=namespace,
                                   start=start, sli=spec.sli, sidecar=spec.sidecar, statefulset=spec.statefulset,
                                   scrape_labels=spec.scrape_labels, dynamics=dynamics,
                                   secret_digests=spec.secret_digests,
                                   secret_revert=spec.secret_revert, scrape_interval_s=spec.scrape_interval_s)
        # The agent reads the profile the cluster speaks; with none, its default finds nothing.
        self.sli = PROFILES.get(spec.sli, DEFAULT_PROFILE)
        self.alert_at = start + PRE_ALERT_S + (RULE_HISTORY_S if spec.alert_for else 0.0)
        # What the agent recorded while the SLO held (here: before any fault), for revert_config/restore_service.
        self.known_good = (_known_good(c),)
        onsets = []
        for i, fault in enumerate(self.faults):
            onsets.append(self.alert_at - fault.draw(LEAD) + 60.0 * i)
            c.at(onsets[-1], partial(fault.inject, c))
        self._red_herrings(hrng)
        self._config_herring(random.Random(spec.seed ^ 0xC0F1), spec.faults)
        self.rule_timed_out = False
        # The rules' clock while the alert waited for its `for:` (None without rule timing).
        self.rule_clock: RuleClock | None = None
        self.onset = onsets[0]
        if spec.alert_for:
            self.alert_at = self._rule_fires(onsets[0])
        while c.now < self.alert_at:
            c.step()
        name, labels = self.faults[0].alert(c)
        if spec.scrape_labels:
            labels = rule_labels(name, labels, node=self._node_of(labels.get("pod")))
        labels.setdefault("severity", "warning")
        fp = hashlib.sha256(f"{name}{sorted(labels.items())}{spec.seed}".encode()).hexdigest()[:16]
        self.alert = Alert(name=name, labels=labels, starts_at=self.alert_at, fingerprint=fp,
                           annotations={"summary": f"{name} on {spec.service}"})
        self.attempts: list[Attempt] = []
        self.executed: list[Executed] = []
        self.tracker = RecoveryTracker(Slo())
        self.escalated = False
        self.unsafe: list[str] = []

    def _rule_fires(self, onset: float) -> float:
        """Step until the first fault's alert rule has held for its `for:` (evaluating the rules from
        the start, so a condition already true before the onset counts from when it turned true)."""
        c = self.cluster
        self.rule_clock = clock = RuleClock()
        while c.now < onset + RULE_MAX_WAIT_S:
            c.step()
            # Before the onset the fault's alert is not defined yet; its rules still run.
            name, labels = self.faults[0].alert(c) if c.now >= onset else ("", {})
            if clock.tick(c, name, labels) and c.now >= onset:
                return c.now
        self.rule_timed_out = True
        return c.now

    def _node_of(self, pod: str | None) -> str | None:
        pods = self.cluster.focus.pods
        return next((p.node for p in pods if p.name == pod), pods[0].node if pods else None)

    def _config_herring(self, rng: random.Random, faults: tuple[str, ...]) -> None:
        """A harmless ConfigMap edit 2-10 minutes before the alert (its own random stream, so the
        other draws stay as they were): the config differs from its last-known-good version, yet
        reverting it fixes nothing."""
        if rng.random() < CONFIG_HERRING and not any(f.startswith("config_edited") for f in faults):
            c = self.cluster
            c.at(self.alert_at - rng.uniform(120.0, 600.0), partial(c.edit_config, c.focus))
            self.herrings = (*self.herrings, "config_touched")

    def _red_herrings(self, rng: random.Random) -> None:
        """The event-like herrings: a harmless rollout 15-50 minutes ago, an old OOM kill."""
        c, w = self.cluster, self.cluster.focus
        if "unrelated_rollout" in self.herrings:
            c.backdate_rollout(w, rng.uniform(900.0, 3000.0) - (self.alert_at - c.now))
        if "old_oom" in self.herrings:
            c.at(self.alert_at - 600.0, partial(_old_oom, rng, w))

    def fork(self) -> Incident:
        """An independent copy of the incident as it stands: the cluster, its random stream, the
        faults' pending timers and the agent's history. Another trajectory from the same moment
        (`RemediationEnv(branches=N)` explores N from each alert) then goes exactly as it would have
        from the original. The recorded frames are immutable and shared, as are the label dicts the
        scrapes reuse, so a fork costs a fraction of simulating the run-up to the alert again."""
        c = self.cluster
        late = [fn for _, fn in c._timers if not isinstance(fn, partial)]
        if late:  # a closure would still act on the original cluster
            raise RuntimeError(f"cannot fork: pending timer {late[0]!r} is not a functools.partial")
        memo: dict[int, Any] = {id(f): f for f in c._frames}
        memo[id(c.topology)] = c.topology
        memo[id(c._label_dicts)] = c._label_dicts
        for w in c.workloads.values():
            memo[id(w.spec)] = w.spec
            memo.update((id(r), r) for r in w.revisions)
        return copy.deepcopy(self, memo)

    # ------------------------------------------------------------------ observing

    @property
    def now(self) -> float:
        return self.cluster.now

    @property
    def elapsed(self) -> float:
        return self.cluster.now - self.alert_at

    @property
    def recovered(self) -> bool:
        return self.tracker.recovered_at is not None

    @property
    def done(self) -> bool:
        return self.recovered or self.escalated or self.elapsed >= self.horizon_s

    @property
    def recovery_s(self) -> float:
        """Alert to verified recovery; the horizon when it never came."""
        if self.tracker.recovered_at is None:
            return self.horizon_s
        return min(self.tracker.recovered_at - self.alert_at, self.horizon_s)

    def outcome(self) -> Outcome:
        return Outcome(recovered=self.recovered, recovery_s=self.recovery_s,
                       unmet=tuple(unmet(true_signals(self.cluster), self.tracker.slo)),
                       escalated=self.escalated)

    def scraped(self) -> list[Series]:
        """What the agent's Prometheus holds now: scrapes lag, so the newest sample is one interval
        old, and the series of exporters the cluster lacks (`IncidentSpec.missing`) are not there."""
        series = self.cluster.series(until=self.cluster.now - TICK_S, alert_start=self.alert_at)
        if self.spec.missing:
            absent = missing_for(self.spec.missing, self.alert.name)
            series = [s for s in series if s.name not in absent]
        return series

    def observe(self) -> Snapshot:
        c = self.cluster
        series = self.scraped()
        objects = c.objects()
        try:
            return build_snapshot(self.alert, series, objects, now=c.now, history=tuple(self.attempts), sli=self.sli,
                                  known_good=self.known_good)
        except SnapshotError:
            # The pod the per-pod rule fired for is gone, and so is the ReplicaSet that made it (a
            # run of restarts pushed it out of the revision history): the rule now fires for one of
            # the workload's current pods, which is what a real Alertmanager would send next.
            pod = self.alert.labels.get("pod")
            if pod is None or any(p.name == pod for p in c.focus.pods):
                raise
            self.alert = replace(self.alert, labels={**self.alert.labels, "pod": worst_pod(c.focus)})
            return build_snapshot(self.alert, series, objects, now=c.now, history=tuple(self.attempts), sli=self.sli,
                                  known_good=self.known_good)

    # ------------------------------------------------------------------ acting

    def advance(self, seconds: float) -> None:
        end = self.cluster.now + seconds
        while self.cluster.now < end - 1e-6 and not self.recovered and self.elapsed < self.horizon_s:
            self.cluster.step()
            self.tracker.observe(true_signals(self.cluster), self.cluster.now)

    def deny(self, action: Action) -> None:
        """A guard refused the action: it is recorded, the clock moves on one interval."""
        self.attempts.append(Attempt(action.kind, self.now, executed=False, target=str(action.target)))
        self.advance(TICK_S)

    def execute(self, action: Action, approval: bool = False) -> bool:
        """Run an action (after a human's approval delay if needed); False if its precondition failed."""
        if approval:
            self.advance(self.rng.uniform(*APPROVAL_S))
            if self.done:
                return False
        if action.kind is ActionKind.ESCALATE:
            self.attempts.append(Attempt(action.kind, self.now, executed=True, target=str(action.target)))
            self._human_takes_over()
            return True
        reason = unsafe_reason(action, self.cluster)
        if reason:
            self.unsafe.append(reason)
        ok = self.cluster.apply(action)
        self.attempts.append(Attempt(action.kind, self.now, executed=ok, target=str(action.target)))
        entry = Executed(action, self.now)
        self.advance(TICK_S if action.kind is ActionKind.NOOP and False else DECISION_S)
        self.executed.append(replace(entry, succeeded=self.recovered))
        return ok

    def _human_takes_over(self) -> None:
        """After an escalation a human applies the right fix, without our guards."""
        self.advance(self.rng.uniform(*HUMAN_S))
        for fault in self.faults:  # what only a human can do (a Secret's values from their vault)
            if fault.by_hand(self.cluster):
                self.advance(180.0)
        for kind in self.best_plan():
            if self.recovered or self.elapsed >= self.horizon_s:
                break
            target = self._target_for(kind)
            if target is not None and self.cluster.apply(Action(kind, target, self._params(kind))):
                self.advance(180.0)
        self.advance(self.horizon_s)
        self.escalated = True

    def best_plan(self) -> list[ActionKind]:
        """The expert sequence for all injected faults: one kind that fixes them all if there
        is one, else each fault's steps, rollbacks first (a rollback would undo later changes)."""
        from simulator.faults import Effect

        if len(self.faults) > 1:
            for kind in self.faults[0].remedy() + self.faults[1].remedy():
                if all(f.effect(kind) is Effect.FIXES for f in self.faults):
                    return [kind]
        plan: list[ActionKind] = []
        for f in self.faults:
            plan += [k for k in f.remedy() if k not in plan]
        return sorted(plan, key=lambda k: k is not ActionKind.ROLLBACK_ROLLOUT)

    def fallback_plan(self) -> list[ActionKind]:
        return [k for f in self.faults for k in f.fallback]

    def _target_for(self, kind: ActionKind) -> ObjectRef | None:
        snap = self.observe()
        w = snap.workload
        if kind is ActionKind.DELETE_POD:
            return ObjectRef("Pod", self.cluster.namespace, snap.pods[0]) if snap.pods else None
        if kind is ActionKind.CORDON_DRAIN_NODE:
            return ObjectRef("Node", "", snap.node) if snap.node else None
        if kind is ActionKind.RESTART_DEPENDENCY:
            return snap.dependencies[0] if snap.dependencies else None
        if kind is ActionKind.REVERT_CONFIG:
            return snap.config_drift[0].current.ref if snap.config_drift else None
        if kind is ActionKind.RESTORE_SERVICE:
            return snap.service.ref if snap.service is not None else None
        if kind is ActionKind.UNCORDON_NODE:
            cordoned = [n for n, node in self.cluster.nodes.items() if node.cordoned and node.ready]
            return ObjectRef("Node", "", snap.cordoned_node or cordoned[0]) if snap.cordoned_node or cordoned else None
        return w

    def _params(self, kind: ActionKind) -> dict[str, float]:
        if kind is ActionKind.RESTORE_REPLICAS:
            return {"replicas": float(self.cluster.focus.spec.replicas)}
        if kind in (ActionKind.RAISE_MEMORY_LIMIT, ActionKind.RAISE_CPU_LIMIT, ActionKind.RAISE_HPA_MAX,
                    ActionKind.SCALE_OUT, ActionKind.EXPAND_VOLUME):
            return {"factor": 2.0}
        return {}


def _old_oom(rng: random.Random, w: Workload) -> None:
    """One pod shows an OOM kill as its last termination reason (timers are partials, so a fork
    acts on its own cluster)."""
    rng.choice(w.pods).last_reason = "OOMKilled"


def _check(spec: IncidentSpec) -> None:
    """Refuse a spec no real cluster could produce, saying what is wrong."""
    for f in spec.faults:
        if f not in FAULTS:
            raise ValueError(f"unknown fault {f!r}; known: {', '.join(sorted(FAULTS))}")
    if spec.variant not in VARIANTS:
        raise ValueError(f"unknown variant {spec.variant!r}; known: {', '.join(VARIANTS)}")
    if spec.sli not in SLI_CHOICES:
        raise ValueError(f"unknown SLI profile {spec.sli!r}; known: {', '.join(SLI_CHOICES)}")
    if spec.sli == NO_SLI and FAULTS[spec.fault].slo_only:
        raise ValueError(f"fault {spec.fault!r} raises only an SLO alert, which no rule can fire without "
                         f"request metrics (SLI profile {NO_SLI!r}); draw it in another profile")


def _dress(svc: ServiceSpec, herrings: tuple[str, ...], rng: random.Random,
           faults: tuple[str, ...]) -> ServiceSpec:
    """The service-level herrings, applied to the alerted service's spec before it runs."""
    if "hot_memory" in herrings:
        svc = replace(svc, mem_base=svc.mem_limit * rng.uniform(0.84, 0.88))
    if "tight_cpu" in herrings:
        demand = svc.cpu_per_request * svc.base_rps / svc.replicas
        svc = replace(svc, cpu_limit=min(svc.cpu_limit, demand / rng.uniform(0.76, 0.82)))
    if "hpa_pinned" in herrings and svc.hpa_max > 0 and "traffic_spike" not in faults:
        svc = replace(svc, hpa_max=svc.replicas)
    return svc


def _known_good(cluster: Cluster) -> KnownGood:
    """The focus workload's ConfigMap, Secret and Service as the agent sees them now: a Secret it
    does not read (no `secret_digests`) by its name only, with no digest, as the live ledger records it;
    with `secret_revert`, its values sealed."""
    c = cluster
    w, objects = cluster.focus, cluster.objects()

    def find(kind: str, name: str) -> dict[str, Any] | None:
        return next((o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name), None)

    configs = []
    for kind, name in (("ConfigMap", f"{w.name}-config"), ("Secret", secret_name(w.name))):
        obj = find(kind, name)
        version = config_version(obj) if obj is not None else ConfigVersion(ObjectRef(kind, w.namespace, name), "")
        if kind == "Secret" and c.secret_revert:  # the healthy-time sweep sealed its values (an opaque token)
            version = replace(version, sealed=f"sealed:{version.digest}")
        configs.append(version)
    service = find("Service", w.name)
    assert service is not None, f"the simulator always emits the Service of {w.name}"
    return KnownGood(ObjectRef(w.kind, w.namespace, w.name), cluster.now, tuple(configs),
                     (service_version(service),))
