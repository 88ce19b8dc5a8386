"""The simulated cluster: pods, rollouts, traffic, autoscaling and volumes, tick by tick.

Faults do not script outcomes: they set conditions (a revision that crashes, a leak, a
hung process, a node that stops) and the mechanics below decide what each action does
to them, the way a real cluster would. Only the alerted workload's neighbourhood (itself,
its direct dependencies, the nodes) is simulated, so cost does not grow with topology size.
"""

from __future__ import annotations

import base64
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from remediator.actions import PASSIVE_KINDS, Action, ActionKind, factor_of
from remediator.slis import PROFILES
from remediator.snapshot import (
    DEFAULT_CONTAINER_ANNOTATION,
    DEPENDS_ON_ANNOTATION,
    PROTECTED_LABEL,
    REPLICA_SERIES,
    REVISION_ANNOTATION,
    Series,
)
from simulator.dialect import APP_CONTAINER, NO_SLI, OUTCOME_LABELS, SIDECAR, le_label, scraped
from simulator.dynamics import Dynamics
from simulator.topology import MIB, ServiceSpec, Topology

TICK_S = 15.0
TIMEOUT_S = 10.0
BUCKETS: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, math.inf)
_LN100 = math.log(100.0)
NODE_POD_GRACE_S = 40.0  # node-monitor grace period: pods turn NotReady
NODE_EVICTION_S = 300.0  # default not-ready toleration: pods are evicted
# How many trailing samples of each series the observer sees (a bit over the 2 min rate window).
WINDOW_POINTS = 10
LONG_POINTS = 41  # 10 minutes, for volume trends
CONFIG_SYNC_S = 60.0  # the kubelet refreshes a mounted ConfigMap within about a minute
APP_PORT = "http"  # the container port the workload serves on (named), and its number
APP_PORT_NUMBER = 8080
_LE = tuple("+Inf" if math.isinf(le) else repr(le) for le in BUCKETS)
# The istio-proxy sidecar of a meshed workload: a steady working set under its own limits.
SIDECAR_MEM = 60 * MIB
SIDECAR_MEM_LIMIT = 1024 * MIB
SIDECAR_CPU_LIMIT = 2.0
SIDECAR_CPU = 0.02  # cores


def _desired(wls: Any, name: str) -> float:
    return next(float(w[1]) for w in wls if w[0] == name)


@dataclass(frozen=True)
class Revision:
    """A pod template: what the image does and the limits it runs with."""

    number: int
    created_at: float
    mem_limit: float
    cpu_limit: float
    crash_after_s: float = 0.0  # > 0: the process exits with an error this long after start
    error_ratio: float = 0.0  # bad configuration: a share of requests fail
    leak_plateau: float = 0.0  # > 0: memory climbs toward this many bytes
    leak_tau_s: float = 180.0


@dataclass(frozen=True)
class ConfigData:
    """The content of a workload's ConfigMap (`<workload>-config`): what it makes the process do."""

    content: int
    written_at: float
    error_ratio: float = 0.0  # a share of requests fail while it is loaded
    crash_after_s: float = 0.0  # > 0: the process exits on it this long after start


def _mounted(now: ConfigData, before: ConfigData, pod: Pod, t: float) -> ConfigData:
    """What a mounted ConfigMap or Secret holds for a pod: what it read at its start, the latest
    write once the kubelet's sync has brought it into the volume."""
    return now if pod.born >= now.written_at or t >= now.written_at + CONFIG_SYNC_S else before


@dataclass
class Pod:
    name: str
    node: str  # "" while Pending: no schedulable node had room
    revision: int
    ready_at: float
    mem: float
    restarts: int = 0
    last_reason: str = ""
    waiting_until: float = 0.0
    running_since: float = 0.0
    stuck: bool = False  # readiness never passes
    hung: bool = False  # accepts requests and never answers
    slow_s: float = 0.0  # extra latency this process adds (a stuck pool, GC thrash)
    ready: bool = False
    counters: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])  # cpu s, periods, throttled
    born: float = 0.0  # when the pod was created: it read its ConfigMap then


@dataclass
class Workload:
    spec: ServiceSpec
    namespace: str
    desired: int
    revisions: list[Revision]
    pods: list[Pod] = field(default_factory=list)
    hpa_max: int = 0
    hpa_min: int = 0
    pvc_cap: float = 0.0
    pvc_used: float = 0.0
    pvc_fill_per_s: float = 0.0
    pvc_resize: tuple[float, float] | None = None  # (at, new capacity)
    traffic_factor: float = 1.0
    extra_latency_s: float = 0.0
    extra_error: float = 0.0  # a share of requests failing upstream of the pods (LB, network)
    crash_when_deps_down: bool = False
    rollout_queue: list[tuple[float, str]] = field(default_factory=list)  # (when, old pod to replace)
    labels: dict[str, str] = field(default_factory=dict)
    pdb_min: int | None = None
    kind: str = "Deployment"  # or StatefulSet: pods named by ordinal, revisions as ControllerRevisions
    requests: list[float] = field(default_factory=lambda: [0.0, 0.0])  # ok, 5xx
    buckets: list[float] = field(default_factory=lambda: [0.0] * len(BUCKETS))
    error_ratio: float = 0.0
    p99: float = 0.0
    rps: float = 0.0
    forwarded: float = 0.0  # requests/s that reached its pods last tick, making its calls (at first: its base)
    # Its ConfigMap now and before the last write (pods started before it see the old one until the
    # kubelet syncs), and its Service's selector and targetPort with the last time it was written.
    config: ConfigData = ConfigData(1, 0.0)
    config_prev: ConfigData = ConfigData(1, 0.0)
    svc_selector: dict[str, str] = field(default_factory=dict)
    svc_target: str | int = APP_PORT
    svc_written_at: float = 0.0
    # Its Secret (`<workload>-credentials`, mounted: a TLS key, credentials) now and before the last
    # write, read the way its ConfigMap is.
    secret: ConfigData = ConfigData(1, 0.0)
    secret_prev: ConfigData = ConfigData(1, 0.0)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def routed(self) -> bool:
        """Whether its Service selects its pods (labels `app: <name>`) on a port they serve."""
        return (all({"app": self.name}.get(k) == v for k, v in self.svc_selector.items())
                and self.svc_target in (APP_PORT, APP_PORT_NUMBER))

    def config_of(self, pod: Pod, t: float) -> ConfigData:
        """The configuration a pod runs with: read at its start, refreshed at the kubelet's next sync."""
        return _mounted(self.config, self.config_prev, pod, t)

    def secret_of(self, pod: Pod, t: float) -> ConfigData:
        """The Secret a pod runs with: a mounted Secret is refreshed like a mounted ConfigMap."""
        return _mounted(self.secret, self.secret_prev, pod, t)

    def loaded_ok(self, pod: Pod, t: float) -> float:
        """The share of requests the pod's loaded ConfigMap and Secret let succeed."""
        return (1 - self.config_of(pod, t).error_ratio) * (1 - self.secret_of(pod, t).error_ratio)

    def loaded_crash_after_s(self, pod: Pod, t: float) -> float:
        """How long after start the pod's loaded ConfigMap or Secret makes it exit (0: never)."""
        after = [x for x in (self.config_of(pod, t).crash_after_s, self.secret_of(pod, t).crash_after_s) if x > 0]
        return min(after, default=0.0)

    @property
    def current(self) -> Revision:
        return self.revisions[-1]

    @property
    def updated_replicas(self) -> int:
        """`status.updatedReplicas`: its pods at the current revision."""
        number = self.current.number
        return sum(1 for p in self.pods if p.revision == number)

    def revision(self, number: int) -> Revision:
        for r in self.revisions:
            if r.number == number:
                return r
        return self.revisions[-1]

    def ready_pods(self) -> list[Pod]:
        return [p for p in self.pods if p.ready]

    @property
    def available(self) -> int:
        return sum(1 for p in self.pods if p.ready)


@dataclass
class Node:
    name: str
    ready: bool = True
    cordoned: bool = False
    down_since: float | None = None
    slots: int | None = None  # how many simulated pods fit; None: room enough


# One recorded tick: (t, nodes, workloads, focus pods); see `Cluster._record`.
_Frame = tuple[float, Any, Any, Any]
_Labels = tuple[tuple[str, str], ...]


class _Emitter:
    """Collects series in scrape order, sharing one label dict per label set across scrapes."""

    def __init__(self, cache: dict[tuple[str, _Labels, str], dict[str, str]], scrape_labels: bool = False) -> None:
        self.series: list[Series] = []
        self._cache = cache
        self._scrape_labels = scrape_labels

    def emit(self, name: str, labels: _Labels, points: list[tuple[float, float]], node: str = "") -> None:
        """One series; with `scrape_labels`, under the scrape target's labels as well (simulator.dialect)."""
        key = (name if self._scrape_labels else "", labels, node if self._scrape_labels else "")
        d = self._cache.get(key)
        if d is None:
            d = self._cache[key] = scraped(name, dict(labels), node) if self._scrape_labels else dict(labels)
        self.series.append(Series(name, d, points))


class Cluster:
    """State and mechanics. `rng` drives every random timing so a seed replays exactly."""

    def __init__(self, topology: Topology, focus: str, rng: random.Random, noise: float = 0.02,
                 namespace: str | None = None, start: float = 0.0, *, sli: str = "http",
                 sidecar: bool = False, scrape_labels: bool = False, statefulset: bool = False,
                 dynamics: Dynamics | None = None, secret_digests: bool = False, secret_revert: bool = False,
                 scrape_interval_s: float = TICK_S) -> None:
        """`sli` the SLI profile the workloads' request metrics come in (`dialect.NO_SLI`: none),
        `sidecar` an istio-proxy container in the focus workload's pods, `scrape_labels` the
        scrape targets' labels on every series (simulator.dialect), `statefulset` the focus workload a
        StatefulSet rather than a Deployment. `secret_digests` whether the agent reads the Secrets
        the workloads mount (only to digest them); without it, as the live observer (which reads
        no Secret by default), their objects are not among `objects()`; `secret_revert` that it also
        kept their good values sealed, so `revert_config` can put a Secret back. `scrape_interval_s`
        how often Prometheus scrapes, a multiple of the tick: the series carry those samples only
        (the simulation and the alert rules still step every tick)."""
        if sli not in OUTCOME_LABELS and sli != NO_SLI:
            raise ValueError(f"unknown SLI profile {sli!r}; known: {', '.join([*OUTCOME_LABELS, NO_SLI])}")
        self.sli, self.sidecar, self.scrape_labels = sli, sidecar, scrape_labels
        self.secret_digests = secret_digests
        self.secret_revert = secret_digests and secret_revert
        self.scrape_every = round(scrape_interval_s / TICK_S)
        if self.scrape_every < 1 or abs(self.scrape_every * TICK_S - scrape_interval_s) > 1e-9:
            raise ValueError(f"scrape interval {scrape_interval_s:g} s is not a positive multiple of the "
                             f"simulator's {TICK_S:g} s tick")
        self.sidecar_mem_limit = SIDECAR_MEM_LIMIT
        self._start = start
        self.topology = topology
        self.dynamics = dynamics or Dynamics()
        self.rng = rng
        self.noise = noise
        self.now = start
        self._pod_seq = 0
        self._timers: list[tuple[float, Callable[[], None]]] = []
        self.nodes = {n.name: Node(n.name) for n in topology.nodes}
        spec = topology.service(focus)
        self.namespace = namespace or spec.namespace
        names = (focus, *spec.deps)
        self.workloads: dict[str, Workload] = {}
        for name in names:
            s = topology.service(name)
            self.workloads[name] = self._make_workload(
                s, s.kind or ("StatefulSet" if statefulset and name == focus else "Deployment"))
        self.focus = self.workloads[focus]
        # Who among the simulated workloads calls whom, how many times per request (explicit graphs).
        self._callers: dict[str, list[tuple[Workload, float]]] = {}
        for w in self.workloads.values():
            for dep, rate in zip(w.spec.deps, w.spec.call_rates):
                if dep in self.workloads and rate > 0:
                    self._callers.setdefault(dep, []).append((w, rate))
        # One frame per tick: (t, nodes, workloads, focus pods); see `_record`.
        self._frames: list[_Frame] = []
        self._label_dicts: dict[tuple[str, _Labels, str], dict[str, str]] = {}

    def at(self, when: float, fn: Callable[[], None]) -> None:
        """Run `fn` at the first tick at or after `when` (fault onsets, transient blips)."""
        self._timers.append((when, fn))
        self._timers.sort(key=lambda x: x[0])

    # ------------------------------------------------------------------ building

    def _make_workload(self, spec: ServiceSpec, kind: str = "Deployment") -> Workload:
        rev = Revision(1, self.now - 86400.0 * self.rng.uniform(1, 30), spec.mem_limit, spec.cpu_limit)
        w = Workload(spec=spec, namespace=self.namespace, desired=spec.replicas, revisions=[rev],
                     hpa_max=spec.hpa_max, hpa_min=spec.replicas if spec.hpa_max else 0,
                     pvc_cap=spec.pvc_bytes, pvc_used=spec.pvc_bytes * self.rng.uniform(0.3, 0.5),
                     labels=dict(spec.labels), pdb_min=spec.pdb_min_available, kind=kind,
                     config=ConfigData(1, rev.created_at), config_prev=ConfigData(1, rev.created_at),
                     secret=ConfigData(1, rev.created_at), secret_prev=ConfigData(1, rev.created_at),
                     svc_selector={"app": spec.name}, svc_written_at=rev.created_at, forwarded=spec.base_rps)
        for _ in range(spec.replicas):
            w.pods.append(self._new_pod(w, rev.number, started=self.now - 3600.0))
        return w

    def _new_pod(self, w: Workload, revision: int, started: float) -> Pod:
        self._pod_seq += 1
        schedulable = [n for n in self.nodes.values() if n.ready and not n.cordoned]
        if any(n.slots is not None for n in self.nodes.values()):
            schedulable = [n for n in schedulable if self._has_room(n)]
            if not schedulable:  # Pending: the scheduler finds no node with room
                return Pod(name=f"{replicaset_name(w.name, revision)}-{f'{self._pod_seq:05x}'[-5:]}", node="",
                           revision=revision, ready_at=math.inf, mem=w.spec.mem_base, born=started)
        schedulable = schedulable or list(self.nodes.values())
        counts = {n.name: 0 for n in schedulable}
        for p in w.pods:
            if p.node in counts:
                counts[p.node] += 1
        node = min(schedulable, key=lambda n: (counts[n.name], self.rng.random())).name
        startup = self.rng.uniform(*self.dynamics.pod_startup_s)
        if w.kind == "StatefulSet":  # a replaced pod comes back under its ordinal's name
            taken = {p.name for p in w.pods}
            name = next(f"{w.name}-{i}" for i in range(len(taken) + 1) if f"{w.name}-{i}" not in taken)
        else:
            name = f"{replicaset_name(w.name, revision)}-{f'{self._pod_seq:05x}'[-5:]}"
        return Pod(name=name, node=node, revision=revision,
                   ready_at=started + startup, mem=w.spec.mem_base * self.rng.uniform(0.9, 1.1),
                   running_since=started + startup, born=started)

    def _has_room(self, node: Node) -> bool:
        if node.slots is None:
            return True
        return sum(p.node == node.name for w in self.workloads.values() for p in w.pods) < node.slots

    def _schedule_pending(self, w: Workload, t: float) -> None:
        """The scheduler retries Pending pods: one that finds a schedulable node with room starts there."""
        for pod in [p for p in w.pods if not p.node]:
            room = [n for n in self.nodes.values() if n.ready and not n.cordoned and self._has_room(n)]
            if room:
                pod.node = min(room, key=lambda n: n.name).name
                pod.ready_at = pod.running_since = t + self.rng.uniform(*self.dynamics.pod_startup_s)

    def edit_config(self, w: Workload, **effects: float) -> None:
        """Someone edits the workload's ConfigMap in place (new content, no rollout)."""
        w.config_prev = w.config
        w.config = ConfigData(w.config.content + 1, self.now, **effects)

    def edit_secret(self, w: Workload, **effects: float) -> None:
        """Someone edits the workload's Secret in place (a wrong key, a rotated password), no rollout."""
        w.secret_prev = w.secret
        w.secret = ConfigData(w.secret.content + 1, self.now, **effects)

    def restore_secret(self, w: Workload) -> bool:
        """The Secret's good values back: a human's from their vault, or the agent's sealed copy."""
        if w.secret.content == 1:
            return False
        w.secret_prev, w.secret = w.secret, ConfigData(1, self.now)
        return True

    def edit_service(self, w: Workload, *, selector: dict[str, str] | None = None,
                     target_port: str | int | None = None) -> None:
        """Someone edits the Service in front of the workload."""
        if selector is not None:
            w.svc_selector = dict(selector)
        if target_port is not None:
            w.svc_target = target_port
        w.svc_written_at = self.now

    def leave_cordoned(self, name: str) -> None:
        """A node back from maintenance, Ready but still cordoned, while every other node is full:
        the workload's pods drained off it wait Pending."""
        node = self.nodes[name]
        node.cordoned = True
        for other in self.nodes.values():
            if other.name != name:
                other.slots = sum(p.node == other.name for x in self.workloads.values() for p in x.pods)
        for pod in [p for p in self.focus.pods if p.node == name]:
            self._replace_pod(self.focus, pod)

    def add_revision(self, w: Workload, **changes: Any) -> Revision:
        base = w.current
        rev = replace(base, number=max(r.number for r in w.revisions) + 1, created_at=self.now, **changes)
        w.revisions.append(rev)
        self._roll(w)
        return rev

    def backdate_rollout(self, w: Workload, age_s: float, **changes: Any) -> Revision:
        """A rollout that completed `age_s` ago: a new revision that the running pods already run."""
        base = w.current
        number = max(r.number for r in w.revisions) + 1
        rev = replace(base, number=number, created_at=self.now - age_s, **changes)
        w.revisions.append(rev)
        for pod in w.pods:
            pod.revision = rev.number
            if w.kind == "Deployment":  # a StatefulSet's pod names do not change with its revision
                pod.name = f"{replicaset_name(w.name, rev.number)}-{pod.name.rsplit('-', 1)[-1]}"
            pod.running_since = max(pod.running_since, rev.created_at)
        return rev

    def _roll(self, w: Workload, slow: float = 1.0) -> None:
        """Rolling update, one surge pod at a time: each old pod is replaced after a startup.
        `slow` > 1 stretches the whole rollout by that factor (the shifted world's rollbacks)."""
        step = self.rng.uniform(*self.dynamics.rollout_step_s)
        old = [p.name for p in w.pods if p.revision != w.current.number]
        w.rollout_queue = [(self.now + ((i + 1) * slow - 1) * step, name) for i, name in enumerate(old)]

    # ------------------------------------------------------------------ actions

    def apply(self, action: Action) -> bool:
        """Execute an action on the cluster; False when its precondition does not hold."""
        if action.kind in PASSIVE_KINDS:
            return True
        handler = _ACTIONS.get(action.kind)
        if handler is None:
            return False
        return handler(self, action, self.workloads.get(action.target.name, self.focus))

    # One method per ActionKind, all (action, the targeted workload or the focus) -> applied.

    def _restart(self, action: Action, w: Workload) -> bool:
        if action.target.name not in self.workloads:
            return False  # only workloads simulated here can be restarted
        p = self.dynamics.restart_fixes_crashloop
        if p is not None and self._crashing(w) and self.rng.random() < p:
            w.crash_when_deps_down = False
            w.revisions = [replace(r, crash_after_s=0.0, leak_plateau=0.0) for r in w.revisions]
        self.add_revision(w)
        return True

    def _crashing(self, w: Workload) -> bool:
        return any(pod.waiting_until > self.now or pod.restarts > 0 and pod.last_reason in ("Error", "OOMKilled")
                   for pod in w.pods)

    def _rollback(self, action: Action, w: Workload) -> bool:
        """Back to the newest earlier template that differs from the running one: a rolling restart
        (a revert's, say) is a revision with the same template, not a change to undo."""
        if len(w.revisions) < 2:
            return False
        same = replace(w.current, number=0, created_at=0.0)
        prev = next((r for r in reversed(w.revisions[:-1]) if replace(r, number=0, created_at=0.0) != same),
                    w.revisions[-2])
        w.revisions.append(replace(prev, number=w.current.number + 1, created_at=self.now))
        self._roll(w, slow=self.dynamics.rollback_time_factor)
        return True

    def _scale_out(self, action: Action, w: Workload) -> bool:
        w.desired = max(w.desired, asked_replicas(action, w))  # scaling out never removes replicas
        return True

    def _restore_replicas(self, action: Action, w: Workload) -> bool:
        w.desired = int(action.params.get("replicas", w.spec.replicas))
        return True

    def _raise_memory_limit(self, action: Action, w: Workload) -> bool:
        if self.sidecar and w is self.focus and action.params.get("container") == SIDECAR:
            self.sidecar_mem_limit *= factor_of(action)  # the sidecar's limit only: the app keeps its own
            return True
        self.add_revision(w, mem_limit=w.current.mem_limit * factor_of(action))
        return True

    def _raise_cpu_limit(self, action: Action, w: Workload) -> bool:
        self.add_revision(w, cpu_limit=w.current.cpu_limit * factor_of(action))
        return True

    def _raise_hpa_max(self, action: Action, w: Workload) -> bool:
        if not w.hpa_max:
            return False  # no autoscaler to raise
        p = action.params
        w.hpa_max = int(p["max_replicas"]) if "max_replicas" in p else math.ceil(w.hpa_max * factor_of(action))
        return True

    def _delete_targeted_pod(self, action: Action, w: Workload) -> bool:
        return self._delete_pod(action.target.name)

    def _cordon_drain(self, action: Action, w: Workload) -> bool:
        node = self.nodes.get(action.target.name)
        if node is None:
            return False
        node.cordoned = True
        for wl in self.workloads.values():
            for pod in [q for q in wl.pods if q.node == node.name]:
                self._replace_pod(wl, pod)
        return True

    def _revert_config(self, action: Action, w: Workload) -> bool:
        """Put the ConfigMap's first (last-known-good) content back and restart the workload; a Secret's
        only when the agent kept its values sealed (`secret_revert`)."""
        if action.target.kind == "Secret":
            w = next((x for x in self.workloads.values() if secret_name(x.name) == action.target.name), w)
            if not self.secret_revert or secret_name(w.name) != action.target.name or not self.restore_secret(w):
                return False
            self.add_revision(w)
            return True
        w = next((x for x in self.workloads.values() if f"{x.name}-config" == action.target.name), w)
        if w.config.content == 1 or f"{w.name}-config" != action.target.name:
            return False  # nothing differs from what held
        w.config_prev, w.config = w.config, ConfigData(1, self.now)
        self.add_revision(w)
        return True

    def _restore_service(self, action: Action, w: Workload) -> bool:
        if w.routed and w.svc_selector == {"app": w.name}:
            return False
        w.svc_selector, w.svc_target, w.svc_written_at = {"app": w.name}, APP_PORT, self.now
        return True

    def _uncordon(self, action: Action, w: Workload) -> bool:
        node = self.nodes.get(action.target.name)
        if node is None or not node.cordoned:
            return False
        node.cordoned = False
        return True

    def _expand_volume(self, action: Action, w: Workload) -> bool:
        if not w.pvc_cap:
            return False  # nothing mounted to expand
        # The resize lands after a provider-dependent delay, like a real CSI expansion.
        w.pvc_resize = (self.now + self.rng.uniform(*self.dynamics.volume_resize_s), w.pvc_cap * factor_of(action))
        return True

    def _delete_pod(self, name: str) -> bool:
        for w in self.workloads.values():
            for pod in w.pods:
                if pod.name == name:
                    self._replace_pod(w, pod)
                    return True
        return False

    def _replace_pod(self, w: Workload, pod: Pod) -> None:
        w.pods.remove(pod)
        w.pods.append(self._new_pod(w, w.current.number, started=self.now))

    # ------------------------------------------------------------------ time

    def step(self) -> None:
        """Advance one scrape interval and record every series."""
        self.now += TICK_S
        t = self.now
        while self._timers and self._timers[0][0] <= t:
            self._timers.pop(0)[1]()
        for node in self.nodes.values():
            if not node.ready and node.down_since is None:
                node.down_since = t
        for w in self.workloads.values():
            self._advance_rollout(w, t)
            self._reconcile(w, t)
            if w.pvc_resize and t >= w.pvc_resize[0]:
                w.pvc_cap, w.pvc_resize = w.pvc_resize[1], None
        deps_down = {name: w.available == 0 or w.error_ratio > 0.5 for name, w in self.workloads.items()}
        for w in self.workloads.values():
            any_dep_down = any(deps_down.get(d, False) for d in w.spec.deps)
            for pod in w.pods:
                self._pod_tick(w, pod, t, crash=w.crash_when_deps_down and any_dep_down)
        # Dependencies first, so callers see this tick's dependency health.
        for w in sorted(self.workloads.values(), key=lambda x: x is self.focus):
            self._traffic_tick(w, t)
        self._autoscale(t)
        self._record(t)

    def _advance_rollout(self, w: Workload, t: float) -> None:
        while w.rollout_queue and w.rollout_queue[0][0] <= t:
            _, name = w.rollout_queue.pop(0)
            old = next((p for p in w.pods if p.name == name), None)
            if old is not None:
                self._replace_pod(w, old)

    def _reconcile(self, w: Workload, t: float) -> None:
        """ReplicaSet controller: pod count follows desired; pods on dead nodes get evicted."""
        self._schedule_pending(w, t)
        for pod in list(w.pods):
            if not pod.node:
                continue
            node = self.nodes[pod.node]
            if not node.ready and node.down_since is not None and t - node.down_since >= NODE_EVICTION_S:
                self._replace_pod(w, pod)
        while len(w.pods) < w.desired:
            w.pods.append(self._new_pod(w, w.current.number, started=t))
        while len(w.pods) > w.desired:
            if w.kind == "StatefulSet":  # the highest ordinal goes first
                w.pods.remove(max(w.pods, key=lambda p: int(p.name.rsplit("-", 1)[1])))
            else:
                w.pods.remove(max(w.pods, key=lambda p: (not p.ready, p.ready_at)))

    def _pod_tick(self, w: Workload, pod: Pod, t: float, crash: bool) -> None:
        rev = w.revision(pod.revision)
        if not pod.node:
            pod.ready = False
            return
        node = self.nodes[pod.node]
        if not node.ready and node.down_since is not None and t - node.down_since >= NODE_POD_GRACE_S:
            pod.ready = False
            return
        if t < pod.ready_at or t < pod.waiting_until:
            pod.ready = False
            return
        if rev.leak_plateau > 0:
            pod.mem = rev.leak_plateau - (rev.leak_plateau - pod.mem) * math.exp(-TICK_S / rev.leak_tau_s)
        exited = ""
        config_crash = w.loaded_crash_after_s(pod, t)
        if pod.mem >= rev.mem_limit:
            exited = "OOMKilled"
        elif rev.crash_after_s > 0 and t - pod.running_since >= rev.crash_after_s:
            exited = "Error"
        elif config_crash > 0 and t - pod.running_since >= config_crash:
            exited = "Error"
        elif crash and t - pod.running_since >= 5.0:
            exited = "Error"
        if exited:
            pod.restarts += 1
            pod.last_reason = exited
            backoff = min(10.0 * 2 ** (pod.restarts - 1), 300.0)
            pod.waiting_until = t + backoff
            pod.ready_at = pod.running_since = t + backoff + self.rng.uniform(*self.dynamics.container_restart_s)
            pod.mem = w.spec.mem_base
            pod.ready = False
            return
        pod.ready = not pod.stuck

    def _traffic_tick(self, w: Workload, t: float) -> None:
        diurnal = 1.0 + 0.15 * math.sin(2 * math.pi * t / 86400.0)
        own = w.spec.base_rps * diurnal * w.traffic_factor
        callers = self._callers.get(w.name)
        if callers:  # its simulated callers send what they pass on beyond their normal load
            own = max(0.0, own + sum(rate * (c.forwarded - c.spec.base_rps * diurnal) for c, rate in callers))
        rps = own * (1.0 + self.rng.gauss(0.0, self.noise))
        rps = max(rps, 0.0)
        serving = [p for p in w.pods if p.ready] if w.routed else []  # a Service routing nowhere serves none
        w.forwarded = rps if serving else 0.0
        dep_err = 0.0
        dep_lat = 0.0
        for d in w.spec.deps:
            dw = self.workloads.get(d)
            if dw is not None:
                dep_err = max(dep_err, dw.error_ratio)
                # Callers wait on their dependency's slowness beyond its normal latency.
                dep_lat = max(dep_lat, dw.p99 - dw.spec.base_latency_s if dw.rps > 0 else 0.0)
        u_by_pod: dict[str, float] = {}
        if not serving:
            err, p99 = 1.0, 0.01
        else:
            per_pod = rps / len(serving)
            for pod in serving:
                u_by_pod[pod.name] = per_pod * w.spec.cpu_per_request / w.revision(pod.revision).cpu_limit
            u = sum(u_by_pod.values()) / len(u_by_pod)
            queue = 1.0 + 2.0 * max(0.0, u - 0.7) / 0.3 if u < 1.0 else 4.0 + 60.0 * (u - 1.0)
            shed = max(0.0, 1.0 - 1.3 / u) if u > 1.3 else 0.0
            hung = sum(1 for p in serving if p.hung) / len(serving)
            bad = sum(1 - (1 - w.revision(p.revision).error_ratio) * w.loaded_ok(p, t)
                      for p in serving) / len(serving)
            full = 0.5 if w.pvc_cap and w.pvc_used >= w.pvc_cap else 0.0
            ok = ((1 - shed) * (1 - bad) * (1 - 0.9 * dep_err) * (1 - hung) * (1 - full) * (1 - w.extra_error)
                  * (1 - 0.001))
            err = 1.0 - ok
            slow = sum(p.slow_s for p in serving) / len(serving)
            p99 = w.spec.base_latency_s * queue + dep_lat * 0.9 + w.extra_latency_s + slow
            if hung > 0.01:
                p99 = TIMEOUT_S
            p99 = min(p99, TIMEOUT_S)
        w.rps, w.error_ratio, w.p99 = rps, err, p99
        n = rps * TICK_S
        w.requests[0] += n * (1 - err)
        w.requests[1] += n * err
        for i, le in enumerate(BUCKETS):
            w.buckets[i] += n if math.isinf(le) else n * (1.0 - math.exp(-le * _LN100 / p99))
        for pod in w.pods:
            u = u_by_pod.get(pod.name, 0.0)
            limit = w.revision(pod.revision).cpu_limit
            usage = min(u, 1.0) * limit
            periods = 10.0 * TICK_S
            throttled = periods * min(1.0, max(0.0, (u - 0.6) / 0.6))
            c = pod.counters
            c[0] += usage * TICK_S
            c[1] += periods
            c[2] += throttled
        if w.pvc_cap:
            w.pvc_used = min(w.pvc_cap, w.pvc_used + w.pvc_fill_per_s * TICK_S)

    def _autoscale(self, t: float) -> None:
        if int(t / TICK_S) % 4:
            return  # the HPA syncs every minute here
        for w in self.workloads.values():
            if not w.hpa_max:
                continue
            ready = w.ready_pods()
            if not ready:
                continue
            per_pod = w.rps / len(ready)
            u = sum(per_pod * w.spec.cpu_per_request / w.revision(p.revision).cpu_limit
                    for p in ready) / len(ready)
            want = math.ceil(len(ready) * min(u, 1.0) / 0.7) if u > 0.8 else w.desired
            w.desired = max(w.hpa_min, min(w.hpa_max, max(w.desired, want)))

    # ------------------------------------------------------------------ metrics

    def _gauge(self, v: float) -> float:
        return v * (1.0 + self.rng.gauss(0.0, self.noise)) if self.noise and v else v

    def _record(self, t: float) -> None:
        """Keep this tick's readings as one compact frame; series are cut from frames on demand."""
        nodes = tuple((n.name, 1.0 if n.ready else 0.0, 1.0 if n.cordoned else 0.0) for n in self.nodes.values())
        wls = tuple((w.name, float(w.desired), float(w.available), w.requests[0], w.requests[1],
                     tuple(w.buckets), float(w.hpa_max), w.pvc_used, w.pvc_cap, w.pods[0].node if w.pods else "",
                     float(w.hpa_min), float(w.updated_replicas) if w.kind == "StatefulSet" else 0.0)
                    for w in self.workloads.values())
        f = self.focus
        pods = tuple((p.name, 1.0 if p.ready else 0.0, float(p.restarts), p.last_reason, t < p.waiting_until,
                      self._gauge(p.mem), f.revision(p.revision).mem_limit, f.revision(p.revision).cpu_limit,
                      p.counters[0], p.counters[1], p.counters[2], p.node, self.sidecar_mem_limit) for p in f.pods)
        self._frames.append((t, nodes, wls, pods))

    def series(self, until: float, alert_start: float, *, history: bool = False) -> list[Series]:
        """What a Prometheus scrape would show at `until`: trailing windows plus the pre-alert baseline;
        with `history`, every sample up to `until` (of the pods alive then), for evaluating alert rules."""
        end = len(self._frames)
        while end and self._frames[end - 1][0] > until:
            end -= 1
        if not end:
            return []
        out = _Emitter(self._label_dicts, self.scrape_labels)
        recent = self._scraped(self._frames[0 if history else max(0, end - WINDOW_POINTS):end])
        if not recent:
            return []
        self._node_series(out, recent)
        long = recent if history else self._scraped(self._frames[max(0, end - LONG_POINTS):end])
        pre = [] if history else self._scraped(self._baseline_frames(end, alert_start))
        self._workload_series(out, recent, pre, long)
        self._pod_series(out, recent)
        if history:
            self._rule_inputs(out, recent)
        return out.series

    def _rule_inputs(self, out: _Emitter, recent: list[_Frame]) -> None:
        """The other series the kube-prometheus rules read (tests/live/test_rule_timing.py evaluates
        them): node cordons, the HPA's minimum, the volume's free bytes, a StatefulSet's updated
        replicas, the pods' phase and owner.
        Only in `history`: the agent reads none of them, so its observations stay as they were."""
        ns = self.namespace
        for i, (node, _, _) in enumerate(recent[-1][1]):
            out.emit("kube_node_spec_unschedulable", (("node", node),), [(fr[0], fr[1][i][2]) for fr in recent])
        for i, wl in enumerate(recent[-1][2]):
            name = wl[0]
            if wl[6]:
                h = (("horizontalpodautoscaler", name), ("namespace", ns))
                out.emit("kube_horizontalpodautoscaler_spec_min_replicas", h, [(fr[0], fr[2][i][10]) for fr in recent])
            if self.workloads[name].kind == "StatefulSet":  # KubeStatefulSetReplicasMismatch's changes()
                out.emit("kube_statefulset_status_replicas_updated", (("namespace", ns), ("statefulset", name)),
                         [(fr[0], fr[2][i][11]) for fr in recent])
            if wl[8]:
                c = (("namespace", ns), ("persistentvolumeclaim", f"{name}-data"))
                out.emit("kubelet_volume_stats_available_bytes", c,
                         [(fr[0], fr[2][i][8] - fr[2][i][7]) for fr in recent], wl[9])
        kind = "StatefulSet" if self.focus.kind == "StatefulSet" else "ReplicaSet"
        for pod, prow in self._pod_rows(recent).items():
            owner = self.focus.name if kind == "StatefulSet" else pod.rsplit("-", 1)[0]
            out.emit("kube_pod_owner", (("namespace", ns), ("owner_is_controller", "true"), ("owner_kind", kind),
                                        ("owner_name", owner), ("pod", pod)), [(t, 1.0) for t, _ in prow])
            for phase, pending in (("Pending", 1.0), ("Running", 0.0)):  # unscheduled: Pending
                out.emit("kube_pod_status_phase", (("namespace", ns), ("phase", phase), ("pod", pod)),
                         [(t, pending if not r[11] else 1.0 - pending) for t, r in prow])

    def _scraped(self, frames: list[_Frame]) -> list[_Frame]:
        """The frames Prometheus scraped: every tick, or every `scrape_every`-th one (the windows stay
        as long in seconds, with fewer samples, as `selector[window]` returns them)."""
        k = self.scrape_every
        if k == 1:
            return frames
        return [fr for fr in frames if round((fr[0] - self._start) / TICK_S) % k == 0]

    def _baseline_frames(self, end: int, alert_start: float) -> list[_Frame]:
        """Frames from 15 to 5 minutes before the alert, older than the trailing window."""
        base_lo, base_hi = alert_start - 900.0, alert_start - 300.0
        return [fr for fr in self._frames[:max(0, end - WINDOW_POINTS)] if base_lo <= fr[0] <= base_hi]

    @staticmethod
    def _node_series(out: _Emitter, recent: list[_Frame]) -> None:
        # Frames list nodes and workloads in a fixed order, so column i is one series.
        for i, (node, *_) in enumerate(recent[-1][1]):
            out.emit("kube_node_status_condition", (("condition", "Ready"), ("node", node), ("status", "true")),
                     [(fr[0], fr[1][i][1]) for fr in recent])

    def _workload_series(self, out: _Emitter, recent: list[_Frame], pre: list[_Frame], long: list[_Frame]) -> None:
        """Replicas, requests and latency per workload; the autoscaler and volume where it has them."""
        ns = self.namespace
        both = pre + recent
        # Request counters over the trend window too (remediator/data/promql.yaml): since when errors rose.
        calls = [fr for fr in pre if fr[0] < long[0][0]] + long
        for i, wl in enumerate(recent[-1][2]):
            name = wl[0]
            kind = self.workloads[name].kind
            dep = ((REPLICA_SERIES[kind][0], name), ("namespace", ns))
            spec_metric, available_metric = REPLICA_SERIES[kind][1:]
            svc = (("namespace", ns), ("service", name))
            out.emit(spec_metric, dep, [(fr[0], fr[2][i][1]) for fr in both])
            out.emit(available_metric, dep, [(fr[0], fr[2][i][2]) for fr in recent])
            if self.sli == "http":  # the shape (and label order) every recorded figure was made with
                out.emit("http_requests_total", (("code", "200"),) + svc, [(fr[0], fr[2][i][3]) for fr in calls])
                out.emit("http_requests_total", (("code", "500"),) + svc, [(fr[0], fr[2][i][4]) for fr in calls])
                for j, le in enumerate(_LE):
                    out.emit("http_request_duration_seconds_bucket", (("le", le),) + svc,
                             [(fr[0], fr[2][i][5][j]) for fr in recent])
            elif self.sli != NO_SLI:
                self._profile_series(out, name, i, calls, recent)
            if wl[6]:
                h = (("horizontalpodautoscaler", name), ("namespace", ns))
                out.emit("kube_horizontalpodautoscaler_status_current_replicas", h,
                         [(fr[0], fr[2][i][1]) for fr in recent])
                out.emit("kube_horizontalpodautoscaler_spec_max_replicas", h,
                         [(fr[0], fr[2][i][6]) for fr in recent])
            if wl[8]:
                c = (("namespace", ns), ("persistentvolumeclaim", f"{name}-data"))
                node = wl[9]  # the kubelet of the node the claim is mounted on
                out.emit("kubelet_volume_stats_used_bytes", c, [(fr[0], fr[2][i][7]) for fr in long], node)
                out.emit("kubelet_volume_stats_capacity_bytes", c, [(fr[0], fr[2][i][8]) for fr in long], node)

    def _profile_series(self, out: _Emitter, name: str, i: int, calls: list[_Frame], recent: list[_Frame]) -> None:
        """Workload `name`'s requests and latency in the SLI profile's names, labels and unit."""
        p = PROFILES[self.sli]
        own = {**p.match, p.workload_label: name, **({p.namespace_label: self.namespace} if p.namespace_label else {})}
        for col, outcome in zip((3, 4), OUTCOME_LABELS[self.sli]):
            labels = tuple(sorted({**own, **outcome}.items()))
            out.emit(p.requests, labels, [(fr[0], fr[2][i][col]) for fr in calls])
        if p.duration:
            for j, le in enumerate(BUCKETS):
                labels = tuple(sorted({**own, "le": le_label(le, p.unit_s)}.items()))
                out.emit(p.duration, labels, [(fr[0], fr[2][i][5][j]) for fr in recent])

    @staticmethod
    def _pod_rows(recent: list[_Frame]) -> dict[str, list[tuple[float, Any]]]:
        """Each live pod's (t, row) readings; pods come and go, so only those in the last frame."""
        rows: dict[str, list[tuple[float, Any]]] = {p[0]: [] for p in recent[-1][3]}
        for fr in recent:
            for pod in fr[3]:
                lst = rows.get(pod[0])
                if lst is not None:
                    lst.append((fr[0], pod))
        return rows

    def _pod_series(self, out: _Emitter, recent: list[_Frame]) -> None:
        ns = self.namespace
        for name, prow in self._pod_rows(recent).items():
            node = prow[-1][1][11]
            pl = (("container", APP_CONTAINER), ("namespace", ns), ("pod", name))
            out.emit("kube_pod_status_ready", (("condition", "true"), ("namespace", ns), ("pod", name)),
                     [(t, r[1]) for t, r in prow])
            out.emit("kube_pod_container_status_restarts_total", pl, [(t, r[2]) for t, r in prow])
            self._pod_state_series(out, pl, prow)
            out.emit("container_memory_working_set_bytes", pl, [(t, r[5]) for t, r in prow], node)
            out.emit("kube_pod_container_resource_limits", pl + (("resource", "memory"),),
                     [(t, r[6]) for t, r in prow])
            out.emit("kube_pod_container_resource_limits", pl + (("resource", "cpu"),), [(t, r[7]) for t, r in prow])
            out.emit("container_cpu_usage_seconds_total", pl, [(t, r[8]) for t, r in prow], node)
            out.emit("container_cpu_cfs_periods_total", pl, [(t, r[9]) for t, r in prow], node)
            out.emit("container_cpu_cfs_throttled_periods_total", pl, [(t, r[10]) for t, r in prow], node)
            if self.sidecar:
                self._sidecar_series(out, name, node, prow)

    def _sidecar_series(self, out: _Emitter, pod: str, node: str, prow: list[tuple[float, Any]]) -> None:
        """istio-proxy next to the app: the same pod, its own steady working set, limits and CPU
        (noise-free, so a sidecar draws nothing from the incident's random stream)."""
        pl = (("container", SIDECAR), ("namespace", self.namespace), ("pod", pod))
        up = [t - self._start for t, _ in prow]
        out.emit("kube_pod_container_status_restarts_total", pl, [(t, 0.0) for t, _ in prow])
        out.emit("container_memory_working_set_bytes", pl, [(t, SIDECAR_MEM) for t, _ in prow], node)
        out.emit("kube_pod_container_resource_limits", pl + (("resource", "memory"),), [(t, r[12]) for t, r in prow])
        out.emit("kube_pod_container_resource_limits", pl + (("resource", "cpu"),),
                 [(t, SIDECAR_CPU_LIMIT) for t, _ in prow])
        out.emit("container_cpu_usage_seconds_total", pl, [(t, SIDECAR_CPU * u) for (t, _), u in zip(prow, up)], node)
        out.emit("container_cpu_cfs_periods_total", pl, [(t, 10.0 * u) for (t, _), u in zip(prow, up)], node)
        out.emit("container_cpu_cfs_throttled_periods_total", pl, [(t, 0.0) for t, _ in prow], node)

    @staticmethod
    def _pod_state_series(out: _Emitter, pl: tuple[tuple[str, str], ...], prow: list[tuple[float, Any]]) -> None:
        """Last termination reasons and CrashLoopBackOff: kube-state-metrics exports them only while set."""
        reasons = [(t, r[3]) for t, r in prow if r[3]]
        for reason in dict.fromkeys(x for _, x in reasons):
            out.emit("kube_pod_container_status_last_terminated_reason", pl + (("reason", reason),),
                     [(t, 1.0) for t, x in reasons if x == reason])
        waiting = [(t, 1.0) for t, r in prow if r[4]]
        if waiting:
            out.emit("kube_pod_container_status_waiting_reason", pl + (("reason", "CrashLoopBackOff"),), waiting)

    # ------------------------------------------------------------------ objects

    def _template(self, w: Workload, volumes: list[dict[str, Any]]) -> dict[str, Any]:
        """The pod template; a meshed workload's names its containers, the app as the default one
        (as Istio's injection annotates it)."""
        app = {"name": APP_CONTAINER, "ports": [{"name": APP_PORT, "containerPort": APP_PORT_NUMBER}]}
        if not (self.sidecar and w is self.focus):
            return {"metadata": {"labels": {"app": w.name}}, "spec": {"volumes": volumes, "containers": [app]}}
        return {"metadata": {"labels": {"app": w.name}, "annotations": {DEFAULT_CONTAINER_ANNOTATION: APP_CONTAINER}},
                "spec": {"volumes": volumes, "containers": [app, {"name": SIDECAR}]}}

    def _revision_objects(self, w: Workload) -> list[dict[str, Any]]:
        """The current revision and revisionHistoryLimit (10) more: a Deployment's ReplicaSets, a
        StatefulSet's ControllerRevisions."""
        ns = self.namespace
        if w.kind == "StatefulSet":
            return [{"kind": "ControllerRevision", "revision": rev.number, "metadata": {
                "name": replicaset_name(w.name, rev.number), "namespace": ns, "creationTimestamp": rev.created_at,
                "ownerReferences": [{"kind": "StatefulSet", "name": w.name, "controller": True}]}}
                for rev in w.revisions[-11:]]
        return [{"kind": "ReplicaSet", "metadata": {
            "name": replicaset_name(w.name, rev.number), "namespace": ns, "creationTimestamp": rev.created_at,
            "annotations": {REVISION_ANNOTATION: str(rev.number)},
            "ownerReferences": [{"kind": "Deployment", "name": w.name}]}} for rev in w.revisions[-11:]]

    def objects(self) -> list[dict[str, Any]]:
        """The Kubernetes objects around the incident, as the API server would return them."""
        ns = self.namespace
        out: list[dict[str, Any]] = []
        for node in self.nodes.values():
            out.append({"kind": "Node", "metadata": {"name": node.name}, "spec": {"unschedulable": node.cordoned},
                        "status": {"conditions": [{"type": "Ready", "status": "True" if node.ready else "False"}]}})
        for w in self.workloads.values():
            labels = {"app": w.name, **w.labels}
            volumes = [{"name": "data", "persistentVolumeClaim": {"claimName": f"{w.name}-data"}}] if w.pvc_cap else []
            annotations = {DEPENDS_ON_ANNOTATION: ",".join(w.spec.deps)}
            if w.kind == "Deployment":
                annotations[REVISION_ANNOTATION] = str(w.current.number)
            volumes.append({"name": "config", "configMap": {"name": f"{w.name}-config"}})
            volumes.append({"name": "credentials", "secret": {"secretName": secret_name(w.name)}})
            if self.secret_digests:
                out.append({"kind": "Secret", "type": "Opaque", "metadata": {
                    "name": secret_name(w.name), "namespace": ns, "uid": f"uid-{secret_name(w.name)}",
                    "creationTimestamp": w.revisions[0].created_at,
                    "managedFields": [{"manager": "kubectl", "operation": "Update", "time": w.secret.written_at}]},
                    "data": {"tls.key": base64.b64encode(f"key-{w.secret.content}".encode()).decode()}})
            out.append({"kind": "ConfigMap", "metadata": {
                "name": f"{w.name}-config", "namespace": ns, "creationTimestamp": w.revisions[0].created_at,
                "managedFields": [{"manager": "kubectl", "operation": "Update", "time": w.config.written_at}]},
                "data": {"settings": f"content-{w.config.content}"}})
            out.append({"kind": "Service", "metadata": {
                "name": w.name, "namespace": ns, "creationTimestamp": w.revisions[0].created_at,
                "managedFields": [{"manager": "kubectl", "operation": "Update", "time": w.svc_written_at}]},
                "spec": {"selector": dict(w.svc_selector),
                         "ports": [{"name": "web", "port": 80, "targetPort": w.svc_target}]}})
            out.append({
                "kind": w.kind,
                "metadata": {"name": w.name, "namespace": ns, "labels": labels, "annotations": annotations},
                "spec": {"replicas": w.desired, "selector": {"matchLabels": {"app": w.name}},
                         "template": self._template(w, volumes),
                         **({"serviceName": w.name} if w.kind == "StatefulSet" else {})},
            })
            out += self._revision_objects(w)
            for pod in w.pods:
                owner = (("StatefulSet", w.name) if w.kind == "StatefulSet"
                         else ("ReplicaSet", replicaset_name(w.name, pod.revision)))
                status: dict[str, Any] = {"conditions": [{"type": "Ready", "status": "True" if pod.ready else "False"}]}
                if not pod.node:
                    status = {"phase": "Pending", "conditions": [
                        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}, *status["conditions"]]}
                out.append({"kind": "Pod", "metadata": {
                    "name": pod.name, "namespace": ns,
                    "ownerReferences": [{"kind": owner[0], "name": owner[1]}]},
                    "spec": {"nodeName": pod.node} if pod.node else {}, "status": status})
            if w.hpa_max:
                out.append({"kind": "HorizontalPodAutoscaler", "metadata": {"name": w.name, "namespace": ns},
                            "spec": {"scaleTargetRef": {"kind": w.kind, "name": w.name},
                                     "minReplicas": w.hpa_min, "maxReplicas": w.hpa_max}})
            if w.pdb_min is not None:
                out.append({"kind": "PodDisruptionBudget", "metadata": {"name": w.name, "namespace": ns},
                            "spec": {"minAvailable": w.pdb_min, "selector": {"matchLabels": {"app": w.name}}},
                            "status": {"disruptionsAllowed": max(0, w.available - w.pdb_min)}})
        return out


# What each non-passive kind does to the cluster; a kind missing here is not applicable (False).
_ACTIONS: dict[ActionKind, Callable[[Cluster, Action, Workload], bool]] = {
    ActionKind.RESTART_ROLLOUT: Cluster._restart,
    ActionKind.RESTART_DEPENDENCY: Cluster._restart,
    ActionKind.ROLLBACK_ROLLOUT: Cluster._rollback,
    ActionKind.SCALE_OUT: Cluster._scale_out,
    ActionKind.RESTORE_REPLICAS: Cluster._restore_replicas,
    ActionKind.RAISE_MEMORY_LIMIT: Cluster._raise_memory_limit,
    ActionKind.RAISE_CPU_LIMIT: Cluster._raise_cpu_limit,
    ActionKind.RAISE_HPA_MAX: Cluster._raise_hpa_max,
    ActionKind.DELETE_POD: Cluster._delete_targeted_pod,
    ActionKind.CORDON_DRAIN_NODE: Cluster._cordon_drain,
    ActionKind.EXPAND_VOLUME: Cluster._expand_volume,
    ActionKind.REVERT_CONFIG: Cluster._revert_config,
    ActionKind.RESTORE_SERVICE: Cluster._restore_service,
    ActionKind.UNCORDON_NODE: Cluster._uncordon,
}


def asked_replicas(action: Action, w: Workload) -> int:
    """The replica count a scale_out asks of `w`: its `replicas`, or its factor of the current count."""
    p = action.params
    return int(p["replicas"]) if "replicas" in p else math.ceil(w.desired * factor_of(action))


def secret_name(workload: str) -> str:
    """The Secret a workload mounts (its TLS key, its credentials)."""
    return f"{workload}-credentials"


def replicaset_name(workload: str, revision: int) -> str:
    """The ReplicaSet of a workload's revision: `<workload>-<pod-template-hash>` as Kubernetes names it."""
    return f"{workload}-{7000 + revision:x}f{revision}"


def protected(w: Workload) -> bool:
    return w.labels.get(PROTECTED_LABEL, "") == "true"


def true_signals(cluster: Cluster) -> Any:
    """The focus workload's health as ground truth (no scrape noise or delay), for verification."""
    from remediator.snapshot import Signals

    w = cluster.focus
    mem_ratio = slope = 0.0
    for pod in w.pods:
        rev = w.revision(pod.revision)
        if pod.ready:
            mem_ratio = max(mem_ratio, pod.mem / rev.mem_limit)
            if rev.leak_plateau > pod.mem:
                slope = max(slope, (rev.leak_plateau - pod.mem) / rev.leak_tau_s * 60.0 / rev.mem_limit)
    fill = w.pvc_fill_per_s * 60.0
    return Signals(
        desired_replicas=float(w.desired), baseline_replicas=float(w.spec.replicas),
        available_replicas=float(w.available), error_ratio=w.error_ratio,
        latency_p99_s=w.p99 if w.rps > 0 else 0.0, mem_ratio=mem_ratio, mem_slope_per_min=slope,
        pvc_present=1.0 if w.pvc_cap else 0.0,
        pvc_used_ratio=w.pvc_used / w.pvc_cap if w.pvc_cap else 0.0,
        pvc_minutes_to_full=(w.pvc_cap - w.pvc_used) / fill if fill > 0 else math.inf)
