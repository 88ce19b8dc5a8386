"""The Kubernetes executor: every action kind as real API calls, recorded before they run.

How one action runs (`KubeExecutor.execute`):

1. **plan** -- read the target and turn the action into absolute, repeatable API calls:
   "scale_out factor 1.5" becomes "scale Deployment shop/cart to 5 replicas", a restart
   becomes "set restartedAt to 2026-01-01T00:15:00Z", a limit raise names the new limit of
   each container. Replaying a plan therefore changes nothing the second time;
2. **record** -- the plan, its **inverse** (what `undo` will apply) and the idempotency key
   are committed to the ledger *before* the first write;
3. **apply** -- writes carry the `resourceVersion` they were planned from. A 409 means the
   object changed under us: re-read, re-plan, record the new plan and inverse, retry. 429 and
   5xx back off exponentially (honouring `Retry-After`); in dry-run mode every write is a
   server-side dry run (`dryRun=All`) that changes nothing;
4. **mark** -- the first write also sets the annotation `remediator.io/action: <key>` on the
   target, so after a crash `resume` can tell "landed" from "never sent" and never executes
   an action twice;
5. **tell** -- a Kubernetes Event on the target says what was done and why.

What each kind does (RBAC verbs in `remediator.actions.SPECS`), and its inverse:

Workload kinds: `target.kind` says which -- Deployment, StatefulSet or DaemonSet (a DaemonSet is
restarted and rolled back, not scaled). A workload that keeps data (`snapshot.object_keeps_data`: a
StatefulSet with volumeClaimTemplates, or the label `remediator.io/keeps-data: "true"`) is never
planned to zero replicas and never to a template that drops a volume (`guards.volume_loss`).

- restart_rollout, restart_dependency: SMP of the pod template's `restartedAt` annotation;
  inverse: the previous annotation. A paused Deployment is refused, as by `kubectl rollout
  restart` ("can't restart paused deployment"): its template change would not roll; the same
  for a limit raise. (The API server itself accepts both, and a scale of a paused Deployment.)
- rollback_rollout: JSON patch `replace /spec/template` with the template of the newest earlier
  ReplicaSet that differs from the current one other than by a rolling restart's `restartedAt`
  (`kubectl rollout undo --to-revision` of it: plain `undo` after a restart would bring back the
  template that broke), read as raw JSON so no field the client models do not know is dropped;
  inverse: the current template. A paused Deployment is refused, and a previous template equal
  to the current one is skipped (no change, a note), as by kubectl. A StatefulSet or DaemonSet
  rolls back to a ControllerRevision picked the same way (apps/v1): its `data.spec.template`.
- scale_out, restore_replicas: PATCH `deployments/scale` (`statefulsets/scale`); inverse: the
  previous count. Under an HPA (`guards.via_hpa`) the HPA would reset a direct scale, so the
  HPA's `minReplicas` is raised to the count asked for (`maxReplicas` with it if below);
  inverse: the previous bounds. A count not above the HPA's minReplicas fails with the reason.
- raise_memory_limit, raise_cpu_limit: SMP of each container's `resources.limits`;
  inverse: the previous limits.
- raise_hpa_max: merge patch of `spec.maxReplicas` (autoscaling/v2); inverse: the old maximum.
- delete_pod: `pods/eviction` (policy/v1 Eviction) with a `uid` precondition, so the API
  server enforces the PDB; a 429 fails at once, naming the budget; no inverse (the ReplicaSet
  replaces the pod).
- cordon_drain_node: `spec.unschedulable: true`, then `pods/eviction` per pod (PDBs
  respected, DaemonSet and mirror pods skipped), then wait until the evicted pods are gone
  (404) or replaced (another uid); one deadline, `drain_timeout_s`, for the whole drain, the
  waits through `backoff.sleep`; inverse: uncordon (evicted pods are not brought back).
- expand_volume: merge patch of `spec.resources.requests.storage`; no inverse: the API server
  refuses a request below `status.capacity`, so an expansion is irreversible (the summary and
  the ledger say so, and `undo` refuses it with that reason).
- revert_config: the alerted workload's config differs from its last-known-good version (the
  ledger's `known_good`, recorded while the SLO held). A ConfigMap edited in place: merge patch of
  its `data`/`binaryData` back to the recorded data, then a rolling restart (restartedAt) of every
  workload that uses it; inverse: the data before and the previous annotations. Refused for an
  immutable ConfigMap and one changed again since the decision. A Secret edited in place only with
  secret reverts on (`sealer`, remediator/live/sealing.py): its sealed last-known-good values are
  opened in memory and written back (merge patch of `data`), then the same restarts; the patch and
  its inverse (the values before) are recorded sealed, never in plain text, and every summary, Event
  and preview says the values are replaced without showing them. Refused without a sealer (the
  values were never kept), for an immutable Secret and one changed again since the decision.
  A reference moved to another ConfigMap or Secret: JSON patch of the pod template pointing back at
  the good name (that Secret is not read); inverse: the template before.
- restore_service: JSON patch of the Service's `selector` and `ports` back to the recorded version
  (allocated nodePorts kept); inverse: the selector and ports before.
- uncordon_node: only a cordoned node that is Ready; SMP `spec.unschedulable: null`; inverse: cordon.
- noop, escalate: no change (escalate posts a Warning Event).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import math
import re
import socket
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, NamedTuple, Protocol

from remediator.actions import (
    DEFAULT_FACTOR,
    IRREVERSIBLE_EVICTION,
    IRREVERSIBLE_EXPANSION,
    PASSIVE_KINDS,
    Action,
    ActionKind,
    ObjectRef,
)
from remediator.guards import ParamError, planned_replicas, target_key, via_hpa, volume_loss
from remediator.live.kube import Backoff, KubeError, is_status, raw_json, status_of, to_dict, with_backoff
from remediator.live.ledger import ExecutionRow, Ledger, ref_to_dict
from remediator.live.sealing import Sealer, SealError
from remediator.snapshot import REVISION_ANNOTATION, Snapshot, drain_evicts, object_keeps_data
from remediator.versions import (
    ConfigDrift,
    ConfigVersion,
    KnownGood,
    config_digest,
    redact_secret,
    retarget_template,
    service_version,
)

__all__ = ["ACTION_ANNOTATION", "API_CALLS", "SECRET_API_CALLS", "ApiCall", "ExecutionResult", "Executor",
           "KubeExecutor", "PlanError", "UndoError", "field_changes", "idempotency_key"]

ACTION_ANNOTATION = "remediator.io/action"
PREVIEW_KEY = "preview"  # the action annotation's value in a preview (a dry run: it is never stored)
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
SMP = "application/strategic-merge-patch+json"
MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
_MI = 1024 ** 2
_GI = 1024 ** 3


class ApiCall(NamedTuple):
    """One Kubernetes API call, as an RBAC rule names it: verb, API group ("" = core), resource[/subresource]."""

    verb: str
    group: str
    resource: str


#: Every API call the executor makes, for every action kind, its undo, its dry run and its Event;
#: the Helm chart's ClusterRole is generated from this table (tests/live/test_executor.py checks it
#: against the emulator's request log for a run of every kind).
API_CALLS: tuple[ApiCall, ...] = (
    ApiCall("get", "apps", "deployments"),                  # plan, re-read on 409, resume
    ApiCall("patch", "apps", "deployments"),                # restart, rollback, limits, the action annotation
    ApiCall("patch", "apps", "deployments/scale"),          # scale_out, restore_replicas
    ApiCall("list", "apps", "replicasets"),                 # rollback: the previous revision's template
    ApiCall("get", "apps", "statefulsets"),
    ApiCall("patch", "apps", "statefulsets"),               # restart, rollback, limits of a StatefulSet
    ApiCall("patch", "apps", "statefulsets/scale"),
    ApiCall("get", "apps", "daemonsets"),
    ApiCall("patch", "apps", "daemonsets"),                 # restart, rollback of a DaemonSet
    ApiCall("list", "apps", "controllerrevisions"),         # rollback of a StatefulSet or DaemonSet
    ApiCall("get", "autoscaling", "horizontalpodautoscalers"),
    ApiCall("patch", "autoscaling", "horizontalpodautoscalers"),  # raise_hpa_max; a scale under an HPA
    ApiCall("get", "", "persistentvolumeclaims"),
    ApiCall("patch", "", "persistentvolumeclaims"),         # expand_volume
    ApiCall("get", "storage.k8s.io", "storageclasses"),     # expand_volume: allowVolumeExpansion
    ApiCall("get", "", "nodes"),
    ApiCall("patch", "", "nodes"),                          # cordon (and uncordon on undo)
    ApiCall("list", "", "pods"),                            # drain: the pods on the node (all namespaces)
    ApiCall("get", "", "pods"),                             # delete_pod's uid; drain: waiting until gone
    ApiCall("create", "", "pods/eviction"),                 # delete_pod and drain, PDBs enforced
    ApiCall("create", "", "events"),                        # tell: an Event on the target
    ApiCall("get", "", "configmaps"),                       # revert_config: the ConfigMap as it is now
    ApiCall("patch", "", "configmaps"),                     # revert_config: its last-known-good data back
    ApiCall("get", "", "services"),                         # restore_service
    ApiCall("patch", "", "services"),                       # restore_service: selector and ports back
)

#: The executor's calls with secret reverts on (`secrets.revert`): revert_config of a Secret edited in place.
SECRET_API_CALLS: tuple[ApiCall, ...] = (
    ApiCall("get", "", "secrets"),                          # revert_config: the Secret as it is now
    ApiCall("patch", "", "secrets"),                        # revert_config: its sealed good values back
)


class PlanError(RuntimeError):
    """The action cannot run on the object as it is (no previous revision, no limit, ...)."""


class UndoError(RuntimeError):
    """An execution that cannot be undone, and why."""


@dataclass(frozen=True)
class ExecutionResult:
    execution_id: int
    key: str
    action: Action
    state: str  # done | failed | abandoned (a resumed intent judged again and not finished)
    dry_run: bool
    changes: tuple[str, ...] = ()
    error: str | None = None
    resumed: bool = False
    already_applied: bool = False
    backoff_s: tuple[float, ...] = ()

    @property
    def ok(self) -> bool:
        return self.state == "done"


class Executor(Protocol):
    """Runs actions against a cluster, recording each in the ledger first; what the loop needs."""

    dry_run: bool

    def execute(self, action: Action, snapshot: Snapshot, *, incident_id: int | None = None,
                candidate_id: int | None = None, key: str | None = None, reason: str = "",
                dry_run: bool | None = None) -> ExecutionResult: ...

    def pending(self) -> list[ExecutionRow]:
        """Executions a crash left in `intent`."""
        ...

    def resume(self, execution_id: int) -> ExecutionResult:
        """Finish one of `pending()`, never doing anything twice."""
        ...

    def abandon(self, execution_id: int, reason: str) -> ExecutionResult:
        """Leave one of `pending()` unfinished, with the reason."""
        ...


def idempotency_key(*parts: object) -> str:
    """A stable key for one decision: the same inputs always give the same key."""
    return "rm-" + hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()[:20]


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _quantity(text: Any) -> Decimal:
    from kubernetes.utils import parse_quantity

    return Decimal(str(parse_quantity(str(text))))  # type: ignore[no-untyped-call]


def _format_memory(n_bytes: Decimal) -> str:
    mi = math.ceil(float(n_bytes) / _MI)
    return f"{mi // 1024}Gi" if mi % 1024 == 0 else f"{mi}Mi"


def _format_cpu(cores: Decimal) -> str:
    milli = math.ceil(float(cores) * 1000 - 1e-9)
    return str(milli // 1000) if milli % 1000 == 0 else f"{milli}m"


def _factor(action: Action) -> float:
    value = action.params.get("factor", DEFAULT_FACTOR)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 1:
        raise PlanError(f"{action.describe()}: factor must be a number above 1, not {value!r}")
    return float(value)


def _meta(obj: Mapping[str, Any]) -> dict[str, Any]:
    return dict(obj.get("metadata") or {})


def _annotations(obj: Mapping[str, Any]) -> dict[str, str]:
    return dict(_meta(obj).get("annotations") or {})


# ---------------------------------------------------------------------------- the executor


@dataclass
class _Api:
    core: Any
    apps: Any
    autoscaling: Any
    storage: Any


@dataclass
class _Run:
    """Book-keeping of one execution while it runs."""

    row: ExecutionRow | None  # None: a preview, recorded nowhere
    dry_run: bool
    changes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    deadline: float | None = None  # of the whole drain (`clock` time), set by its first eviction


class KubeExecutor:
    """Executes actions through the official client; `dry_run` makes every write `dryRun=All`.

    Collaborators are parameters: `api` (an `ApiClient`), `ledger`, `backoff` (its `sleep`
    and `rng`), `clock`. The executor never sleeps except through `backoff.sleep`.
    """

    def __init__(self, api: Any, ledger: Ledger, *, dry_run: bool, backoff: Backoff | None = None,
                 clock: Callable[[], float] = time.time, drain_timeout_s: float = 300.0,
                 field_manager: str = "remediator", max_conflicts: int = 5, instance: str | None = None,
                 sealer: Sealer | None = None) -> None:
        import kubernetes.client as k

        self.sealer = sealer  # secret reverts on: opens sealed Secret values, seals what it replaces
        self.api = api
        self.k = k
        self.ledger = ledger
        self.dry_run = dry_run
        self.backoff = backoff or Backoff()
        self.clock = clock
        self.drain_timeout_s = drain_timeout_s
        self.field_manager = field_manager
        self.max_conflicts = max_conflicts
        self.instance = instance or socket.gethostname()
        self._apis = _Api(k.CoreV1Api(api), k.AppsV1Api(api), k.AutoscalingV2Api(api), k.StorageV1Api(api))

    # ------------------------------------------------------------------ public

    def execute(self, action: Action, snapshot: Snapshot, *, incident_id: int | None = None,
                candidate_id: int | None = None, key: str | None = None, reason: str = "",
                dry_run: bool | None = None) -> ExecutionResult:
        """Plan, record (intent + inverse), apply, mark, tell. Never raises for cluster trouble:
        a failure is a `failed` result with its error, recorded in the ledger."""
        dry = self.dry_run if dry_run is None else dry_run
        key = key or idempotency_key(uuid.uuid4())
        existing = self.ledger.execution_by_key(key)
        if existing is not None:  # the same decision again (a retry, a restart): never a second execution
            return self.resume(existing.id) if existing.state == "intent" else self._existing(existing)
        context = {"reason": reason, "alert": snapshot.alert.name, "incident": incident_id}
        try:
            plan, inverse = self._plan(action, snapshot, key)
        except Exception as e:  # noqa: BLE001 - every planning failure is a failed execution, never a raise
            why = str(e) if isinstance(e, (PlanError, ParamError, KubeError)) else _api_message(e)
            if not isinstance(e, (PlanError, ParamError, KubeError)) and status_of(e) is None:
                why = f"{type(e).__name__}: {why}"
            exec_id = self.ledger.record_intent(
                incident_id=incident_id, candidate_id=candidate_id, action=action, key=key, dry_run=dry,
                plan={"error": why, "context": context}, inverse=None, reversible=False,
                inverse_note="never ran", workload_key=_workload_key(action, snapshot))
            self.ledger.finish_execution(exec_id, "failed", error=f"cannot plan: {why}")
            return ExecutionResult(exec_id, key, action, "failed", dry, error=f"cannot plan: {why}")
        plan["context"] = context
        exec_id = self.ledger.record_intent(
            incident_id=incident_id, candidate_id=candidate_id, action=action, key=key, dry_run=dry, plan=plan,
            inverse=inverse, reversible=bool(inverse.get("reversible")), inverse_note=str(inverse.get("note", "")),
            workload_key=_workload_key(action, snapshot))
        row = self.ledger.execution(exec_id)
        assert row is not None
        return self._run(row, resumed=False)

    def resume(self, execution_id: int) -> ExecutionResult:
        """Finish an execution left in `intent` by a crash, without doing anything twice."""
        row = self.ledger.execution(execution_id)
        if row is None:
            raise KeyError(f"no execution {execution_id}")
        if row.state != "intent":
            return self._existing(row)
        return self._run(row, resumed=True)

    def abandon(self, execution_id: int, reason: str) -> ExecutionResult:
        """Leave an execution found in `intent` unfinished, with the reason, and tell the cluster.

        Steps that landed before the crash stay (the ledger lists them under `landed`); the
        loop decides again on fresh state.
        """
        row = self.ledger.execution(execution_id)
        if row is None:
            raise KeyError(f"no execution {execution_id}")
        if row.state != "intent":
            return self._existing(row)
        landed: bool | str = False
        if row.action.kind not in PASSIVE_KINDS:
            try:
                landed = self._landed(row)
            except Exception as e:  # noqa: BLE001 - the record matters more than the probe
                landed = f"unknown ({type(e).__name__}: {_api_message(e)})"
        self.ledger.finish_execution(row.id, "abandoned", result={"changes": [], "landed": landed, "resumed": True},
                                     error=f"abandoned on resume: {reason}")
        return ExecutionResult(row.id, row.idempotency_key, row.action, "abandoned", row.dry_run,
                               error=f"abandoned on resume: {reason}", resumed=True)

    def pending(self) -> list[ExecutionRow]:
        return self.ledger.executions(state="intent")

    def fork(self) -> KubeExecutor:
        """A twin for another thread (a drain off the loop thread): the same client, ledger and
        settings, its own record of backoff delays."""
        twin = copy.copy(self)
        twin.backoff = dataclasses.replace(self.backoff, delays=[])
        return twin

    def undo(self, execution_id: int, *, dry_run: bool = False) -> ExecutionResult:
        """Apply the inverse recorded for an execution (as a new, recorded execution)."""
        row = self.ledger.execution(execution_id)
        if row is None:
            raise UndoError(f"no execution {execution_id} in the ledger")
        inverse = row.inverse or {}
        if row.dry_run:
            raise UndoError(f"execution {execution_id} was a dry run: nothing changed, nothing to undo")
        if row.state == "intent":
            raise UndoError(f"execution {execution_id} is still in progress; let it finish (or resume) first")
        if inverse.get("applied_by"):
            raise UndoError(f"execution {execution_id} was already undone by execution {inverse['applied_by']}")
        if not inverse.get("reversible"):
            raise UndoError(f"execution {execution_id} ({row.action.describe()}) cannot be undone: "
                            f"{inverse.get('note') or 'no inverse was recorded'}")
        steps = list((inverse.get("plan") or {}).get("steps") or [])
        redo = [_without_rv(s) for s in row.plan.get("steps", []) if s.get("op") in ("patch", "scale")]
        key = f"undo-{row.idempotency_key}"
        plan = {"steps": steps, "target": row.plan.get("target"), "undo_of": execution_id,
                "summary": [f"undo: {s}" for s in (inverse.get("plan") or {}).get("summary", [])],
                "context": {"reason": f"undo of execution {execution_id}"}}
        undo_id = self.ledger.record_intent(
            incident_id=row.incident_id, candidate_id=None, action=row.action, key=key, dry_run=dry_run, plan=plan,
            inverse={"steps": redo, "summary": row.plan.get("summary", [])}, reversible=bool(redo),
            inverse_note="re-applies the original change", workload_key=row.workload_key, undo_of=execution_id)
        undo_row = self.ledger.execution(undo_id)
        assert undo_row is not None
        if undo_row.state != "intent":
            return self._existing(undo_row)
        result = self._run(undo_row, resumed=False, undo=True)
        if result.ok and not dry_run:
            self.ledger.mark_undone(execution_id, undo_id)
        return result

    # ------------------------------------------------------------------ running a plan

    def _existing(self, row: ExecutionRow) -> ExecutionResult:
        return ExecutionResult(row.id, row.idempotency_key, row.action, row.state, row.dry_run,
                               tuple((row.result or {}).get("changes", [])), row.error, resumed=False,
                               already_applied=True)

    def _run(self, row: ExecutionRow, *, resumed: bool, undo: bool = False) -> ExecutionResult:
        run = _Run(row, row.dry_run)
        delays_before = len(self.backoff.delays)
        error: str | None = None
        already = False
        try:
            already = self._apply_with_conflicts(run, resumed=resumed, undo=undo)
        except (KubeError, PlanError) as e:
            error = str(e)
        except Exception as e:  # noqa: BLE001 - an API answer we do not retry: record it, do not crash the loop
            error = f"{type(e).__name__}: {_api_message(e)}"
        delays = tuple(self.backoff.delays[delays_before:])
        state = "failed" if error else "done"
        row = self.ledger.execution(row.id) or row
        self._tell(row, run, state, error, undo=undo)
        result = {"changes": run.changes, "notes": run.notes, "resumed": resumed, "already_applied": already,
                  "backoff_s": list(delays)}
        self.ledger.finish_execution(row.id, state, result=result, error=error)
        return ExecutionResult(row.id, row.idempotency_key, row.action, state, row.dry_run, tuple(run.changes),
                               error, resumed, already, delays)

    def _apply_with_conflicts(self, run: _Run, *, resumed: bool, undo: bool) -> bool:
        """Apply the steps; on 409 re-read and re-plan (recording the new plan first) and retry."""
        row = run.row
        assert row is not None
        kind = row.action.kind
        if kind in PASSIVE_KINDS:
            run.changes.append("no change" if kind is ActionKind.NOOP else "escalated to a human")
            return False
        plan = row.plan
        skip_change = False
        if resumed and not row.dry_run:
            skip_change = self._landed(row)
            if skip_change:
                run.notes.append("resumed after a restart: the change had already landed; not applied again")
        for _ in range(self.max_conflicts):
            try:
                self._apply_steps(run, plan, skip_change=skip_change)
                return skip_change
            except Exception as e:
                if not is_status(e, 409) or undo:
                    raise
                self.ledger.count_attempt(row.id)
                fresh = self._replan(row)
                if fresh is None:  # our own change is already in place
                    skip_change = True
                    run.notes.append("409: the object already shows this change; not applied again")
                    continue
                plan, inverse = fresh
                self.ledger.update_plan(row.id, plan, inverse, bool(inverse.get("reversible")),
                                        str(inverse.get("note", "")))
                run.notes.append("409 conflict: re-read the object, re-planned and recorded the new inverse")
        raise KubeError(f"{row.action.describe()}: still conflicting after {self.max_conflicts} re-reads")

    def _replan(self, row: ExecutionRow) -> tuple[dict[str, Any], dict[str, Any]] | None:
        intent = row.plan.get("intent") or {}
        target = row.plan.get("target") or {}
        obj = self._read(target)
        if obj is None:
            raise PlanError(f"{target.get('kind')} {target.get('namespace')}/{target.get('name')} is gone")
        if _annotations(obj).get(ACTION_ANNOTATION) == row.idempotency_key or _reached(intent, obj):
            return None
        plan, inverse = self._plan_from(row.action, intent, obj, row.idempotency_key)
        plan["context"] = row.plan.get("context")
        return plan, inverse

    def _landed(self, row: ExecutionRow) -> bool:
        target = row.plan.get("target") or {}
        intent = row.plan.get("intent") or {}
        if row.action.kind is ActionKind.DELETE_POD:
            pod = self._read(target)
            return pod is None or _meta(pod).get("uid") != intent.get("uid")
        obj = self._read(target)
        return obj is not None and (_annotations(obj).get(ACTION_ANNOTATION) == row.idempotency_key
                                    or _reached(intent, obj))

    def _apply_steps(self, run: _Run, plan: Mapping[str, Any], *, skip_change: bool) -> None:
        for step in plan.get("steps", []):
            if skip_change and step.get("change"):
                continue
            self._step(run, step)
        run.changes[:] = list(plan.get("summary", []))
        run.notes.extend(n for n in plan.get("notes", []) if n not in run.notes)

    def _step(self, run: _Run, step: Mapping[str, Any]) -> dict[str, Any] | None:
        """Make one step's API call; a write returns the object as the API server answered it (in a dry
        run: the object as it would be), read raw so that no field is lost."""
        op = step["op"]
        dry = "All" if run.dry_run else None
        fm = self.field_manager
        a = self._apis
        raw = {"dry_run": dry, "field_manager": fm, "_preload_content": False}
        what = f"{op} {step.get('kind', '')} {step.get('namespace') or ''}/{step['name']}".replace(" /", " ")
        if op == "patch":
            kind, name, ns, body, ctype = step["kind"], step["name"], step.get("namespace"), step["body"], step["type"]
            if step.get("sealed"):  # a Secret's values: opened here, in memory, for this one call
                body = {**body, **self._open(ObjectRef(kind, ns or "", name), str(step["sealed"]))}
            calls: dict[str, Callable[[], Any]] = {
                "Deployment": lambda: a.apps.patch_namespaced_deployment(name, ns, body, _content_type=ctype, **raw),
                "StatefulSet": lambda: a.apps.patch_namespaced_stateful_set(name, ns, body, _content_type=ctype, **raw),
                "DaemonSet": lambda: a.apps.patch_namespaced_daemon_set(name, ns, body, _content_type=ctype, **raw),
                "Node": lambda: a.core.patch_node(name, body, _content_type=ctype, **raw),
                "HorizontalPodAutoscaler": lambda: a.autoscaling.patch_namespaced_horizontal_pod_autoscaler(
                    name, ns, body, _content_type=ctype, **raw),
                "PersistentVolumeClaim": lambda: a.core.patch_namespaced_persistent_volume_claim(
                    name, ns, body, _content_type=ctype, **raw),
                "ConfigMap": lambda: a.core.patch_namespaced_config_map(name, ns, body, _content_type=ctype, **raw),
                "Service": lambda: a.core.patch_namespaced_service(name, ns, body, _content_type=ctype, **raw),
                "Secret": lambda: a.core.patch_namespaced_secret(name, ns, body, _content_type=ctype, **raw),
            }
            return raw_json(with_backoff(calls[kind], self.backoff, what=what))
        if op == "scale":
            body = step["body"]
            scale = (a.apps.patch_namespaced_stateful_set_scale if step.get("kind") == "StatefulSet"
                     else a.apps.patch_namespaced_deployment_scale)  # plans recorded before StatefulSets: no kind
            return raw_json(with_backoff(lambda: scale(step["name"], step["namespace"], body, _content_type=MERGE,
                                                       **raw), self.backoff, what=what))
        if op == "await_gone":
            self._await_gone(run, step)
        elif op in ("evict", "delete_pod"):  # "delete_pod": plans recorded before delete_pod evicted
            self._evict(run, step, wait=bool(step.get("wait", op == "evict")))
        else:
            raise PlanError(f"unknown step {op!r}")
        return None

    # ------------------------------------------------------------------ preview

    def preview(self, action: Action, snapshot: Snapshot) -> dict[str, Any]:
        """The server-side dry run (`dryRun=All`) of exactly the calls `execute` would make now, and what
        they would change: for each object, the fields whose value differs between the object as stored
        and the API server's dry-run answer. Nothing is recorded and nothing changes; an action the API
        server would refuse (422, a budget's 429) says so in `error`.

            {"dry_run": "All", "action": "scale_out Deployment shop/cart", "summary": [...], "error": None,
             "objects": [{"object": "Deployment/shop/cart", "changes": [
                 {"field": "spec.replicas", "before": 2, "after": 4}]}]}
        """
        doc: dict[str, Any] = {"dry_run": "All", "action": action.describe(), "summary": [], "notes": [],
                               "objects": [], "error": None}
        if action.kind in PASSIVE_KINDS:
            doc["summary"] = ["no change" if action.kind is ActionKind.NOOP else "escalated to a human"]
            return doc
        objects: dict[str, list[dict[str, Any]]] = {}
        try:
            plan, _ = self._plan(action, snapshot, PREVIEW_KEY)
            doc["summary"], doc["notes"] = list(plan.get("summary", [])), list(plan.get("notes", []))
            run = _Run(None, True)
            for step in plan.get("steps", []):
                if step["op"] in ("patch", "scale"):
                    before = self._read(step)
                    after = self._step(run, step)
                    if before is None or after is None:
                        raise PlanError(f"{step.get('kind')} {step.get('namespace') or ''}/{step['name']} is gone")
                    if step.get("kind") == "Secret":  # its values never leave: the digest says they change
                        before, after = redact_secret(before), redact_secret(after)
                    if step["op"] == "scale":  # the answer is a Scale: only spec.replicas can differ
                        before = {"spec": {"replicas": (before.get("spec") or {}).get("replicas")}}
                        after = {"spec": {"replicas": (after.get("spec") or {}).get("replicas")}}
                    name = f"{step.get('kind') or action.target.kind}/{step.get('namespace') or ''}/{step['name']}"
                    merged = objects.setdefault(name.replace("//", "/"), [])
                    merged += [c for c in field_changes(before, after) if c not in merged]
                elif step["op"] in ("evict", "delete_pod"):
                    self._step(run, step)
                    objects.setdefault(f"Pod/{step['namespace']}/{step['name']}", []).append(
                        {"field": "(eviction)", "before": "running", "after": "evicted"})
        except Exception as e:  # noqa: BLE001 - a refused dry run is the answer, not a crash
            doc["error"] = str(e) if isinstance(e, (PlanError, ParamError, KubeError)) else _api_message(e)
        doc["objects"] = [{"object": name, "changes": changes} for name, changes in objects.items()]
        return doc

    def _evict(self, run: _Run, step: Mapping[str, Any], *, wait: bool) -> None:
        """One pod through the Eviction API (policy/v1), so the API server enforces its PDB.

        The one home of evictions: `delete_pod` (with a `uid` precondition, `wait` False) and
        each pod of a drain (`wait` True). A 429 is the budget (or the API server's rate limit)
        saying "not now": a drain waits and retries until `drain_timeout_s`; a `delete_pod` fails
        at once, naming the budget. In a dry run nothing will change, so a refusal fails at once.
        """
        k = self.k
        where = f"pod {step['namespace']}/{step['name']}"
        preconditions = k.V1Preconditions(uid=step["uid"]) if step.get("uid") else None
        options = (k.V1DeleteOptions(dry_run=["All"] if run.dry_run else None, preconditions=preconditions)
                   if run.dry_run or preconditions else None)
        body = k.V1Eviction(api_version="policy/v1", kind="Eviction",
                            metadata=k.V1ObjectMeta(name=step["name"], namespace=step["namespace"]),
                            delete_options=options)
        deadline = self._drain_deadline(run)
        attempt = 0
        while True:
            try:
                self._apis.core.create_namespaced_pod_eviction(step["name"], step["namespace"], body,
                                                               dry_run="All" if run.dry_run else None)
                return
            except Exception as e:  # noqa: BLE001 - classified below
                status = status_of(e) or 0
                if status == 404:
                    run.notes.append(f"{where} was already gone")
                    return
                if status == 409 and preconditions is not None:
                    run.notes.append(f"{where} was already replaced (another uid)")
                    return
                if status == 429 and not wait:
                    raise KubeError(f"{where} cannot be evicted: {_refusal(e)}"
                                    f"{' (dry run)' if run.dry_run else ''}; not deleted") from e
                if status == 429:
                    if run.dry_run or self.clock() >= deadline:
                        raise KubeError(f"drain incomplete: {where} cannot be evicted ({_refusal(e)})"
                                        f"{' in a dry run' if run.dry_run else ''}; the node stays cordoned") from e
                elif not (500 <= status < 600) or attempt + 1 >= self.backoff.max_attempts:
                    raise KubeError(f"evicting {where}: {_api_message(e)}") from e
                attempt += 1
                self._sleep(attempt)

    def _drain_deadline(self, run: _Run) -> float:
        """One deadline for the whole drain (`drain_timeout_s` from its first eviction), not one per pod."""
        if run.deadline is None:
            run.deadline = self.clock() + self.drain_timeout_s
        return run.deadline

    def _await_gone(self, run: _Run, step: Mapping[str, Any]) -> None:
        """Wait, within the drain's deadline, until every evicted pod is gone (404) or replaced (another uid).

        Waits sleep through `backoff.sleep`; at the deadline the drain fails naming the pods still there.
        A dry run evicted nothing: nothing to wait for.
        """
        if run.dry_run:
            return
        deadline = self._drain_deadline(run)
        waiting = [dict(p) for p in step.get("pods") or []]
        attempt = 0
        while True:
            still = []
            for pod in waiting:
                now = self._read({"kind": "Pod", "namespace": pod["namespace"], "name": pod["name"]})
                if now is not None and (not pod.get("uid") or _meta(now).get("uid") == pod["uid"]):
                    still.append(pod)
            waiting = still
            if not waiting:
                return
            if self.clock() >= deadline:
                names = ", ".join(f"{p['namespace']}/{p['name']}" for p in waiting)
                raise KubeError(f"drain incomplete: evicted but still there after {self.drain_timeout_s:g} s "
                                f"(drain_timeout_s): {names}; the node {step.get('name')} stays cordoned")
            attempt += 1
            self._sleep(min(attempt, self.backoff.max_attempts))

    def _sleep(self, attempt: int) -> None:
        wait = self.backoff.delay(attempt - 1, None)
        self.backoff.delays.append(wait)
        self.backoff.sleep(wait)

    # ------------------------------------------------------------------ events

    def _tell(self, row: ExecutionRow, run: _Run, state: str, error: str | None, *, undo: bool) -> None:
        """A Kubernetes Event on the target: best effort, never fails the execution."""
        target = row.plan.get("target") or _target_doc(row.action.target)
        if not target or not target.get("name") or target.get("kind") in ("Namespace", "Cluster"):
            return
        kind = row.action.kind
        if kind is ActionKind.NOOP:
            return
        if kind is ActionKind.ESCALATE:
            reason, etype = "RemediationEscalated", "Warning"
        elif undo:
            reason, etype = "RemediationUndone", "Normal"
        elif state == "failed":
            reason, etype = "RemediationFailed", "Warning"
        else:
            reason, etype = ("RemediationDryRun" if run.dry_run else "Remediation"), "Normal"
        context = row.plan.get("context") or {}
        what = "; ".join(run.changes) or row.action.describe()
        message = (f"remediator {'(dry run) ' if run.dry_run else ''}{row.action.kind.value}: {what}"
                   f"{' -- failed: ' + error if error else ''}"
                   f" [alert {context.get('alert', '?')}, incident {context.get('incident')}, "
                   f"execution {row.id}, key {row.idempotency_key}]")[:1024]
        ns = target.get("namespace") or "default"
        now = datetime.fromtimestamp(self.clock(), tz=UTC)
        k = self.k
        name = f"{target['name']}.{row.idempotency_key[-12:]}.{'undo' if undo else state}"[:253]
        event = k.CoreV1Event(
            api_version="v1", kind="Event", metadata=k.V1ObjectMeta(name=name, namespace=ns),
            involved_object=k.V1ObjectReference(api_version=target.get("apiVersion"), kind=target.get("kind"),
                                                name=target.get("name"),
                                                namespace=target.get("namespace") or None),
            reason=reason, message=message, type=etype, count=1, first_timestamp=now, last_timestamp=now,
            source=k.V1EventSource(component="remediator", host=self.instance),
            reporting_component="remediator.io/remediator", reporting_instance=self.instance[:128],
            action=row.action.kind.value)
        try:
            with_backoff(lambda: self._apis.core.create_namespaced_event(
                ns, event, dry_run="All" if run.dry_run else None), Backoff(max_attempts=2, base_s=0.05,
                                                                            sleep=self.backoff.sleep),
                what="post event")
        except Exception as e:  # noqa: BLE001 - an Event is a courtesy, the ledger is the record
            if not is_status(e, 409):
                run.notes.append(f"could not post the Event: {_api_message(e)}")

    # ------------------------------------------------------------------ reading

    def _read(self, target: Mapping[str, Any]) -> dict[str, Any] | None:
        a = self._apis
        kind, name, ns = target.get("kind"), str(target.get("name")), target.get("namespace")
        raw = {"_preload_content": False}  # as the API server sent it: what we write back keeps every field
        readers: dict[str, tuple[Callable[[], Any], str]] = {
            "Deployment": (lambda: a.apps.read_namespaced_deployment(name, ns, **raw), "apps/v1"),
            "StatefulSet": (lambda: a.apps.read_namespaced_stateful_set(name, ns, **raw), "apps/v1"),
            "DaemonSet": (lambda: a.apps.read_namespaced_daemon_set(name, ns, **raw), "apps/v1"),
            "Node": (lambda: a.core.read_node(name, **raw), "v1"),
            "HorizontalPodAutoscaler": (
                lambda: a.autoscaling.read_namespaced_horizontal_pod_autoscaler(name, ns, **raw), "autoscaling/v2"),
            "PersistentVolumeClaim": (lambda: a.core.read_namespaced_persistent_volume_claim(name, ns, **raw), "v1"),
            "Pod": (lambda: a.core.read_namespaced_pod(name, ns, **raw), "v1"),
            "ConfigMap": (lambda: a.core.read_namespaced_config_map(name, ns, **raw), "v1"),
            "Service": (lambda: a.core.read_namespaced_service(name, ns, **raw), "v1"),
        }
        if self.sealer is not None:  # only with secret reverts on (its RBAC granted with them)
            readers["Secret"] = (lambda: a.core.read_namespaced_secret(name, ns, **raw), "v1")
        if kind not in readers:
            raise PlanError(f"cannot act on a {kind}")
        call, api_version = readers[str(kind)]
        try:
            doc = with_backoff(lambda: raw_json(call()), self.backoff, what=f"read {kind} {ns or ''}/{name}")
        except KubeError:
            raise
        except Exception as e:
            if is_status(e, 404):
                return None
            raise
        return to_dict(self.api, doc, str(kind), api_version)

    # ------------------------------------------------------------------ planning

    def _plan(self, action: Action, snapshot: Snapshot, key: str) -> tuple[dict[str, Any], dict[str, Any]]:
        kind = action.kind
        if kind in PASSIVE_KINDS:
            return ({"target": _target_doc(action.target), "steps": [], "intent": {"kind": kind.value},
                     "summary": []}, {"steps": [], "reversible": False, "note": "changes nothing"})
        if kind is ActionKind.REVERT_CONFIG:  # its target may be a Secret, which is never read
            return self._plan_revert(action, snapshot, key)
        target = _target_doc(action.target)
        obj = self._read(target)
        if obj is None:
            raise PlanError(f"{action.target} does not exist")
        intent: dict[str, Any] = {"kind": kind.value}
        _refuse_paused(action, obj)
        if kind in (ActionKind.RESTART_ROLLOUT, ActionKind.RESTART_DEPENDENCY):
            intent["restarted_at"] = _iso(self.clock())
        elif kind in (ActionKind.SCALE_OUT, ActionKind.RESTORE_REPLICAS):
            if action.target.kind == "DaemonSet":
                raise PlanError(f"{action.target} runs one pod per eligible node: it has no replicas to scale")
            intent["replicas"] = planned_replicas(action, snapshot)
            _refuse_data_loss(action, obj, {**obj, "spec": {**(obj.get("spec") or {}), "replicas": intent["replicas"]}})
            if via_hpa(action, snapshot) and snapshot.hpa is not None:
                return self._plan_hpa_scale(action, intent, snapshot.hpa, key)
        elif kind is ActionKind.RAISE_HPA_MAX:
            intent["max_replicas"] = planned_replicas(action, snapshot)
        elif kind in (ActionKind.RAISE_MEMORY_LIMIT, ActionKind.RAISE_CPU_LIMIT):
            intent["limits"] = _raised_limits(action, obj)
        elif kind is ActionKind.EXPAND_VOLUME:
            intent["storage"] = self._expanded(action, obj)
        elif kind is ActionKind.ROLLBACK_ROLLOUT:
            intent.update(self._previous_template(action, obj) if action.target.kind == "Deployment"
                          else self._previous_revision(action, obj))
            _refuse_data_loss(action, obj, {**obj, "spec": {**(obj.get("spec") or {}), "template": intent["template"]}})
        elif kind is ActionKind.DELETE_POD:
            intent["uid"] = _meta(obj).get("uid")
        elif kind is ActionKind.CORDON_DRAIN_NODE:
            intent["pods"] = self._evictable(str(action.target.name), snapshot)
        elif kind in (ActionKind.RESTORE_SERVICE, ActionKind.UNCORDON_NODE):
            intent.update(self._good_service(action, snapshot, obj) if kind is ActionKind.RESTORE_SERVICE
                          else _check_uncordon(action, obj))
        return self._plan_from(action, intent, obj, key)

    def _plan_from(self, action: Action, intent: dict[str, Any], obj: dict[str, Any], key: str
                   ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Steps and inverse from the intent (absolute targets) and the object as read now."""
        kind = action.kind
        target = dict(intent.get("target") or _target_doc(action.target))
        ns, name, tk = target.get("namespace") or "", str(target["name"]), str(target["kind"])
        rv = _meta(obj).get("resourceVersion")
        mark = {"annotations": {ACTION_ANNOTATION: key}}
        spec = obj.get("spec") or {}

        def patch(body: Any, ctype: str, change: bool = True) -> dict[str, Any]:
            return {"op": "patch", "kind": target["kind"], "namespace": ns or None, "name": name, "body": body,
                    "type": ctype, "change": change}

        steps: list[dict[str, Any]]
        inverse_steps: list[dict[str, Any]]
        reversible, note = True, ""
        notes: list[str] = []
        summary: list[str]
        inverse_summary: list[str]
        if "hpa_min" in intent:  # a scale under an HPA: its bounds move, not spec.replicas
            old_min, old_max = spec.get("minReplicas"), int(spec.get("maxReplicas", 0))
            steps = [patch({"metadata": {**mark, "resourceVersion": rv},
                            "spec": {"minReplicas": intent["hpa_min"], "maxReplicas": intent["hpa_max"]}}, MERGE)]
            inverse_steps = [patch({"spec": {"minReplicas": old_min, "maxReplicas": old_max}}, MERGE)]
            summary = [f"HorizontalPodAutoscaler {ns}/{name}: minReplicas {old_min or 1} -> {intent['hpa_min']}"
                       + (f", maxReplicas {old_max} -> {intent['hpa_max']}" if intent["hpa_max"] != old_max else "")
                       + f" (it scales {action.target} to {intent['replicas']}; a direct scale would be reset)"]
            inverse_summary = [f"HorizontalPodAutoscaler {ns}/{name}: minReplicas back to {old_min or 1}, "
                               f"maxReplicas back to {old_max}"]
            note = "restores the HPA's bounds; the HPA then scales the workload itself"
        elif kind in (ActionKind.RESTART_ROLLOUT, ActionKind.RESTART_DEPENDENCY):
            template_annotations = ((spec.get("template") or {}).get("metadata") or {}).get("annotations")
            old = (template_annotations or {}).get(RESTARTED_AT)
            new = intent["restarted_at"]
            steps = [patch({"metadata": {**mark, "resourceVersion": rv},
                            "spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: new}}}}}, SMP)]
            # Restore exactly: drop the annotation map we created, else only our key.
            restore: Any = None if not template_annotations else {RESTARTED_AT: old}
            inverse_steps = [patch({"spec": {"template": {"metadata": {"annotations": restore}}}}, SMP)]
            summary = [f"{tk} {ns}/{name}: rolling restart (restartedAt {new})"]
            inverse_summary = [f"{tk} {ns}/{name}: restartedAt back to {old or 'unset'}"]
            note = "restores the pod template's restartedAt annotation (the pods roll once more)"
        elif kind is ActionKind.ROLLBACK_ROLLOUT and intent["template"] == (spec.get("template") or {}):
            steps, inverse_steps, reversible = [], [], False  # as kubectl: "skipped rollback"
            summary = [f"{tk} {ns}/{name}: skipped rollback, the current template already matches revision "
                       f"{intent['to_revision']} ({_source(intent)}); nothing changed"]
            inverse_summary = []
            note = "nothing changed: the current template already matched the previous revision"
            notes.append(note)
        elif kind is ActionKind.ROLLBACK_ROLLOUT:
            current = copy.deepcopy(spec.get("template") or {})
            ops: list[dict[str, Any]] = [{"op": "replace", "path": "/metadata/resourceVersion", "value": rv},
                                         {"op": "replace", "path": "/spec/template", "value": intent["template"]}]
            ops.append(_json_patch_annotation(obj, key))
            steps = [patch(ops, JSON_PATCH)]
            inverse_steps = [patch([{"op": "replace", "path": "/spec/template", "value": current}], JSON_PATCH)]
            summary = [f"{tk} {ns}/{name}: rolled back from revision {intent['from_revision']} to the "
                       f"template of revision {intent['to_revision']} ({_source(intent)})"]
            inverse_summary = [f"{tk} {ns}/{name}: template of revision {intent['from_revision']} restored"]
            note = "restores the pod template from before the rollback"
        elif kind in (ActionKind.SCALE_OUT, ActionKind.RESTORE_REPLICAS):
            old_n = int(spec.get("replicas", 1))
            steps = [{"op": "scale", "kind": tk, "namespace": ns, "name": name, "change": True,
                      "body": {"metadata": {"resourceVersion": rv}, "spec": {"replicas": intent["replicas"]}}},
                     patch({"metadata": mark}, SMP, change=False)]
            inverse_steps = [{"op": "scale", "kind": tk, "namespace": ns, "name": name, "change": True,
                              "body": {"spec": {"replicas": old_n}}}]
            summary = [f"{tk} {ns}/{name}: replicas {old_n} -> {intent['replicas']}"]
            inverse_summary = [f"{tk} {ns}/{name}: replicas back to {old_n}"]
        elif kind in (ActionKind.RAISE_MEMORY_LIMIT, ActionKind.RAISE_CPU_LIMIT):
            resource = "memory" if kind is ActionKind.RAISE_MEMORY_LIMIT else "cpu"
            current_limits = {c["name"]: ((c.get("resources") or {}).get("limits") or {}).get(resource)
                              for c in (((spec.get("template") or {}).get("spec") or {}).get("containers") or [])}
            new_limits: dict[str, str] = intent["limits"]
            steps = [patch({"metadata": {**mark, "resourceVersion": rv}, "spec": {"template": {"spec": {
                "containers": [{"name": c, "resources": {"limits": {resource: v}}} for c, v in new_limits.items()]}}}},
                SMP)]
            inverse_steps = [patch({"spec": {"template": {"spec": {"containers": [
                {"name": c, "resources": {"limits": {resource: current_limits.get(c)}}} for c in new_limits]}}}}, SMP)]
            summary = [f"{tk} {ns}/{name}: container {c} {resource} limit {current_limits.get(c)} -> {v}"
                       for c, v in new_limits.items()]
            inverse_summary = [f"{tk} {ns}/{name}: container {c} {resource} limit back to {current_limits.get(c)}"
                               for c in new_limits]
            note = "restores the previous limits (the pods roll once more)"
        elif kind is ActionKind.RAISE_HPA_MAX:
            old_max = int(spec.get("maxReplicas", 0))
            steps = [patch({"metadata": {**mark, "resourceVersion": rv},
                            "spec": {"maxReplicas": intent["max_replicas"]}}, MERGE)]
            inverse_steps = [patch({"spec": {"maxReplicas": old_max}}, MERGE)]
            summary = [f"HorizontalPodAutoscaler {ns}/{name}: maxReplicas {old_max} -> {intent['max_replicas']}"]
            inverse_summary = [f"HorizontalPodAutoscaler {ns}/{name}: maxReplicas back to {old_max}"]
        elif kind is ActionKind.EXPAND_VOLUME:
            old_size = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
            steps = [patch({"metadata": {**mark, "resourceVersion": rv},
                            "spec": {"resources": {"requests": {"storage": intent["storage"]}}}}, MERGE)]
            inverse_steps, reversible = [], False
            summary = [f"PersistentVolumeClaim {ns}/{name}: storage request {old_size} -> {intent['storage']} "
                       f"({IRREVERSIBLE_EXPANSION})"]
            inverse_summary = []
            note = IRREVERSIBLE_EXPANSION
        elif kind is ActionKind.DELETE_POD:
            steps = [{"op": "evict", "namespace": ns, "name": name, "uid": intent["uid"], "wait": False,
                      "change": True}]
            inverse_steps, reversible = [], False
            summary = [f"Pod {ns}/{name}: evicted (uid {intent['uid']}) through the Eviction API, its "
                       "PodDisruptionBudget respected; its ReplicaSet creates a replacement"]
            inverse_summary = []
            note = IRREVERSIBLE_EVICTION
        elif kind is ActionKind.CORDON_DRAIN_NODE:
            was = bool(spec.get("unschedulable"))
            steps = [patch({"metadata": {**mark, "resourceVersion": rv}, "spec": {"unschedulable": True}}, SMP)]
            steps += [{"op": "evict", "namespace": p["namespace"], "name": p["name"], "change": False}
                      for p in intent["pods"]]
            if intent["pods"]:  # as kubectl drain: done when the evicted pods are gone, not when asked
                steps.append({"op": "await_gone", "name": name, "pods": intent["pods"], "change": False})
            inverse_steps = [] if was else [patch({"spec": {"unschedulable": None}}, SMP)]
            reversible = not was
            summary = [f"Node {name}: cordoned" + (" (was already)" if was else ""),
                       *[f"Pod {p['namespace']}/{p['name']}: evicted" for p in intent["pods"]]]
            inverse_summary = [f"Node {name}: uncordoned"]
            note = ("uncordons the node; evicted pods are not brought back (their controllers recreated them)"
                    if not was else "the node was cordoned before: nothing to undo")
        elif kind is ActionKind.REVERT_CONFIG and intent.get("secret"):
            steps, inverse_steps, summary, inverse_summary, note = self._secret_steps(intent, obj, patch, mark, rv)
        elif kind in (ActionKind.REVERT_CONFIG, ActionKind.RESTORE_SERVICE, ActionKind.UNCORDON_NODE):
            steps, inverse_steps, summary, inverse_summary, note = _plan_around(kind, intent, obj, patch, mark, rv)
            notes.extend(intent.get("notes") or [])
        else:
            raise PlanError(f"no plan for {kind.value}")
        plan = {"target": target, "intent": intent, "steps": steps, "summary": summary, "notes": notes}
        inverse = {"steps": inverse_steps, "summary": inverse_summary, "reversible": reversible, "note": note}
        return plan, inverse

    def _previous_template(self, action: Action, dep: dict[str, Any]) -> dict[str, Any]:
        """The template of the newest earlier revision that differs from the current one other than by
        a rolling restart (`_as_changed`): `kubectl rollout undo --to-revision` of it. Plain `undo`
        after a restart (a revert's, or the agent's own) would bring back the very template that broke."""
        from remediator.live.kube import selector_text

        ns, name = action.target.namespace, action.target.name
        if (dep.get("spec") or {}).get("paused"):
            raise PlanError(f"Deployment {ns}/{name} is paused (spec.paused): resume it first "
                            "(kubectl rollout resume); kubectl rollout undo refuses a paused Deployment too")
        selector = selector_text((dep.get("spec") or {}).get("selector"))
        a = self._apis
        listed = with_backoff(lambda: raw_json(a.apps.list_namespaced_replica_set(
            ns, label_selector=selector, _preload_content=False)), self.backoff, what="list replicasets")
        owned = []
        for item in listed.get("items") or []:  # raw JSON: a field the client models do not know is kept
            rs = to_dict(self.api, item, "ReplicaSet", "apps/v1")
            if any(o.get("kind") == "Deployment" and o.get("name") == name
                   for o in _meta(rs).get("ownerReferences") or ()):
                revision = int(str(_annotations(rs).get(REVISION_ANNOTATION, "0")) or 0)
                owned.append((revision, rs))
        owned.sort(key=lambda r: r[0])
        current_rev = int(str(_annotations(dep).get(REVISION_ANNOTATION, "0")) or 0) or (owned[-1][0] if owned else 0)
        previous = [(rev, rs) for rev, rs in owned if rev < current_rev]
        if not previous:
            raise PlanError(f"Deployment {ns}/{name} has no revision before {current_rev} to roll back to")
        current = _as_changed((dep.get("spec") or {}).get("template") or {})
        rev, rs = next(((r, x) for r, x in reversed(previous)
                        if _as_changed((x.get("spec") or {}).get("template") or {}) != current), previous[-1])
        template = copy.deepcopy((rs.get("spec") or {}).get("template") or {})
        labels = dict((template.get("metadata") or {}).get("labels") or {})
        labels.pop("pod-template-hash", None)
        template.setdefault("metadata", {})["labels"] = labels
        return {"template": template, "from_revision": current_rev, "to_revision": rev,
                "replicaset": _meta(rs).get("name")}

    def _previous_revision(self, action: Action, obj: dict[str, Any]) -> dict[str, Any]:
        """The template of a StatefulSet's or DaemonSet's previous ControllerRevision, as `kubectl rollout undo`.

        The revisions it owns, by `revision` number: the highest is the current one, the target the
        newest below it whose template differs other than by a rolling restart (as for a Deployment).
        A revision's `data` is the patch that restores it: `spec.template` with `$patch: replace`.
        """
        from remediator.live.kube import selector_text

        ns, name, kind = action.target.namespace, action.target.name, action.target.kind
        selector = selector_text((obj.get("spec") or {}).get("selector"))
        listed = with_backoff(lambda: raw_json(self._apis.apps.list_namespaced_controller_revision(
            ns, label_selector=selector, _preload_content=False)), self.backoff, what="list controllerrevisions")
        owned = sorted(((int(cr.get("revision") or 0), cr) for cr in listed.get("items") or []
                        if any(o.get("kind") == kind and o.get("name") == name
                               for o in _meta(cr).get("ownerReferences") or ())), key=lambda r: r[0])
        if len(owned) < 2:
            raise PlanError(f"{kind} {ns}/{name} has no ControllerRevision before the current one to roll back to")
        current, running = owned[-1][0], _as_changed(_revision_template(owned[-1][1]))
        rev, cr = next(((r, x) for r, x in reversed(owned[:-1]) if _as_changed(_revision_template(x)) != running),
                       owned[-2])
        template = _revision_template(cr)
        if not template:
            raise PlanError(f"ControllerRevision {ns}/{_meta(cr).get('name')} holds no pod template")
        return {"template": template, "from_revision": current, "to_revision": rev,
                "source": f"ControllerRevision {_meta(cr).get('name')}"}

    def _known_good(self, snapshot: Snapshot) -> KnownGood:
        """The ledger's last-known-good record of the alerted workload (the versions a revert puts back)."""
        w = snapshot.workload
        record = next((k for k in self.ledger.known_good(w.namespace) if k.workload == w), None) if w else None
        if record is None:
            raise PlanError(f"no last-known-good version of {w or 'the workload'} is recorded in the ledger "
                            "(it is recorded when the SLO is seen holding)")
        return record

    def _plan_revert(self, action: Action, snapshot: Snapshot, key: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """revert_config: a ConfigMap edited in place gets its recorded data back and the workloads that use
        it restart; a reference moved to another ConfigMap or Secret is pointed back at the good one."""
        drift = next((d for d in snapshot.config_drift if d.current.ref == action.target), None)
        if drift is None:
            raise PlanError(f"{action.target} does not differ from a last-known-good version")
        if drift.blocked:
            raise PlanError(drift.blocked)
        good = self._known_good(snapshot).config(drift.good.ref)
        if good is None or good.digest != drift.good.digest:
            raise PlanError(f"the ledger holds no version {drift.good.digest} of {drift.good.ref} any more")
        intent: dict[str, Any] = {"kind": action.kind.value, "how": drift.how, "good": good.digest}
        if drift.how == "renamed":
            return self._plan_retarget(action, snapshot, intent, drift.current.ref, good.ref, key)
        if action.target.kind == "Secret":
            return self._plan_secret(action, snapshot, intent, drift, good, key)
        obj, users = self._edited_in_place(action, snapshot, drift)
        intent.update(config_data={k: dict(v) for k, v in good.data.items()}, users=users,
                      restarted_at=_iso(self.clock()))
        return self._plan_from(action, intent, obj, key)

    def _plan_secret(self, action: Action, snapshot: Snapshot, intent: dict[str, Any], drift: ConfigDrift,
                     good: ConfigVersion, key: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """A Secret edited in place: its sealed good values back, and its users restarted. The intent
        holds the sealed token, never the values; a wrong key fails here, before any write."""
        if self.sealer is None:
            raise PlanError(f"{action.target} was edited in place, and Secret reverts are off here (secrets.revert "
                            "with a sealing key): remediator keeps no copy of its values; a human restores them")
        if not good.sealed:
            raise PlanError(f"the ledger holds no sealed values of {good.ref} ({good.digest}): a human restores them")
        self._open(good.ref, good.sealed)
        obj, users = self._edited_in_place(action, snapshot, drift)
        intent.update(secret=True, sealed_good=good.sealed, users=users, restarted_at=_iso(self.clock()))
        return self._plan_from(action, intent, obj, key)

    def _edited_in_place(self, action: Action, snapshot: Snapshot, drift: ConfigDrift
                         ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The ConfigMap or Secret to write back, as it stands (refused when gone, immutable or changed
        since the decision), and the restarts of the workloads that use it."""
        obj = self._read(_target_doc(action.target))
        if obj is None:
            raise PlanError(f"{action.target} does not exist")
        if obj.get("immutable"):
            raise PlanError(f"{action.target} is immutable (immutable: true): the API server refuses to edit its "
                            f"data; a human creates a new {action.target.kind} and points the workload at it")
        if config_digest(obj) != drift.current.digest:
            raise PlanError(f"{action.target} changed again since the decision ({drift.current.digest} was judged)")
        users = [self._restart_of(u.ref) for u in snapshot.config_users] or [self._restart_of(snapshot.workload)]
        return obj, users

    def _open(self, ref: ObjectRef, token: str) -> dict[str, Any]:
        if self.sealer is None:
            raise PlanError(f"the values of {ref} are sealed, and no sealing key is configured (secrets.revert)")
        try:
            return self.sealer.open(ref, token)
        except SealError as e:
            raise PlanError(str(e)) from None

    def _secret_steps(self, intent: Mapping[str, Any], obj: Mapping[str, Any], patch: _PatchStep,
                      mark: Mapping[str, Any], rv: Any
                      ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str], list[str], str]:
        """revert_config of a Secret: the merge patch to its good values and its inverse, each sealed."""
        assert self.sealer is not None  # `_plan_secret` refused without one
        meta = _meta(obj)
        ref = ObjectRef("Secret", str(meta.get("namespace") or ""), str(meta.get("name")))
        want = {"data": dict(self._open(ref, str(intent["sealed_good"])).get("data") or {})}
        have = {"data": dict(obj.get("data") or {})}
        forward, back = patch({"metadata": {**mark, "resourceVersion": rv}}, MERGE), patch({}, MERGE)
        forward["sealed"] = self.sealer.seal(ref, _data_patch(have, want))
        back["sealed"] = self.sealer.seal(ref, _data_patch(want, have))
        users = list(intent["users"])
        restarted = ", ".join(f"{u['kind']} {u['namespace']}/{u['name']}" for u in users)
        keys = ", ".join(sorted(set(want["data"]) | set(have["data"]))) or "none"
        return ([forward, *_restart_steps(users, intent["restarted_at"])], [back, *_restart_steps(users, None)],
                [f"Secret {ref.namespace}/{ref.name}: its values (keys {keys}) replaced by its last-known-good "
                 f"version {intent['good']}, kept sealed in the ledger (not shown)",
                 f"rolling restart of the workloads that use it: {restarted} (restartedAt {intent['restarted_at']})"],
                [f"Secret {ref.namespace}/{ref.name}: the values it had before the revert put back (sealed, not "
                 f"shown); {restarted} restarted"],
                "puts the Secret's values from before the revert back (sealed in the ledger) and restores the "
                "restartedAt annotations")

    def _restart_of(self, ref: ObjectRef | None) -> dict[str, Any]:
        """A workload a revert restarts, with its restartedAt annotation as it is now (for the inverse)."""
        if ref is None:
            raise PlanError("no workload to restart")
        obj = self._read(_target_doc(ref))
        if obj is None:
            raise PlanError(f"{ref} uses the config but does not exist any more")
        _refuse_paused(Action(ActionKind.RESTART_ROLLOUT, ref), obj)
        template = ((obj.get("spec") or {}).get("template") or {}).get("metadata") or {}
        return {**_target_doc(ref), "had_annotations": bool(template.get("annotations")),
                "restarted_at": (template.get("annotations") or {}).get(RESTARTED_AT)}

    def _plan_retarget(self, action: Action, snapshot: Snapshot, intent: dict[str, Any], current: ObjectRef,
                       good: ObjectRef, key: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """Point the workload's pod template back at the config it used while the SLO held (a rollout)."""
        if snapshot.workload is None:
            raise PlanError("no workload to point back")
        doc = _target_doc(snapshot.workload)
        obj = self._read(doc)
        if obj is None:
            raise PlanError(f"{snapshot.workload} does not exist")
        _refuse_paused(Action(ActionKind.RESTART_ROLLOUT, snapshot.workload), obj)
        notes = []
        if good.kind == "ConfigMap" and self._read(_target_doc(good)) is None:
            raise PlanError(f"{good}, which {snapshot.workload} used while its SLO held, no longer exists")
        if good.kind == "Secret":  # never read: the kubelet reports a missing one (CreateContainerConfigError)
            notes.append(f"{good} was not read (remediator reads no Secret): if it no longer exists the new pods "
                         "fail with CreateContainerConfigError and `remediator undo` points the workload back")
        template = (obj.get("spec") or {}).get("template") or {}
        intent.update(target=doc, template=retarget_template(template, current, good), notes=notes,
                      retarget={"from": ref_to_dict(current), "to": ref_to_dict(good)})
        _refuse_data_loss(action, obj, {**obj, "spec": {**(obj.get("spec") or {}), "template": intent["template"]}})
        return self._plan_from(action, intent, obj, key)

    def _good_service(self, action: Action, snapshot: Snapshot, svc: Mapping[str, Any]) -> dict[str, Any]:
        """restore_service: the recorded selector and ports (keeping each port's allocated nodePort)."""
        drift = snapshot.service_drift
        if drift is None or drift.current.ref != action.target:
            raise PlanError(f"{action.target} does not differ from a last-known-good version")
        good = self._known_good(snapshot).service(action.target.name)
        if good is None or good.digest != drift.good.digest:
            raise PlanError(f"the ledger holds no version {drift.good.digest} of {action.target} any more")
        if service_version(svc).digest != drift.current.digest:
            raise PlanError(f"{action.target} changed again since the decision ({drift.current.digest} was judged)")
        now_ports = list((svc.get("spec") or {}).get("ports") or [])
        ports = []
        for p in good.ports:
            port = dict(p)
            same = next((q for q in now_ports if (q.get("name"), q.get("port")) == (p.get("name"), p.get("port"))),
                        None)
            if same is not None and same.get("nodePort"):
                port["nodePort"] = same["nodePort"]
            ports.append(port)
        return {"selector": dict(good.selector), "ports": ports, "good": good.digest}

    def _plan_hpa_scale(self, action: Action, intent: dict[str, Any], hpa_ref: ObjectRef, key: str
                        ) -> tuple[dict[str, Any], dict[str, Any]]:
        """A scale under an HPA: raise its minReplicas to the count (and maxReplicas, if below)."""
        doc = _target_doc(hpa_ref)
        hpa = self._read(doc)
        if hpa is None:
            raise PlanError(f"{hpa_ref} does not exist; not scaling {action.target} behind its back")
        spec = hpa.get("spec") or {}
        ref = spec.get("scaleTargetRef") or {}
        if (ref.get("kind"), ref.get("name")) != (action.target.kind, action.target.name):
            raise PlanError(f"{hpa_ref} scales {ref.get('kind')}/{ref.get('name')}, not {action.target}")
        n, low = int(intent["replicas"]), int(spec.get("minReplicas") or 1)
        if n <= low:
            raise PlanError(f"{hpa_ref} already keeps at least {low} replicas (minReplicas), so "
                            f"{action.kind.value} to {n} has nothing to raise; a direct scale would be reset")
        intent.update(hpa_min=n, hpa_max=max(int(spec.get("maxReplicas") or 0), n), target=doc)
        return self._plan_from(action, intent, hpa, key)

    def _evictable(self, node: str, snapshot: Snapshot) -> list[dict[str, str]]:
        """The pods a drain of `node` evicts now; only those the guards judged on the snapshot.

        A pod that arrived on the node after the decision was never judged (its namespace or
        protection unknown to the guards), so the drain is not planned: the loop decides again.
        """
        a = self._apis
        listed = with_backoff(lambda: a.core.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={node}"),
                              self.backoff, what=f"list pods on {node}")
        pods = [to_dict(self.api, item, "Pod", "v1") for item in listed.items or []]
        out = [{"namespace": str(_meta(p).get("namespace")), "name": str(_meta(p).get("name")),
                "uid": str(_meta(p).get("uid") or "")} for p in pods if drain_evicts(p)]
        judged = {(n.ref.namespace, n.ref.name) for n in snapshot.node_pods}
        unjudged = [f"{p['namespace']}/{p['name']}" for p in out if (p["namespace"], p["name"]) not in judged]
        if unjudged:
            raise PlanError(f"node {node} now runs pods the guards did not judge ({', '.join(unjudged)}); "
                            "not draining it on a stale decision")
        return out

    def _expanded(self, action: Action, pvc: dict[str, Any]) -> str:
        spec = pvc.get("spec") or {}
        current = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
        if not current:
            raise PlanError(f"{action.target} has no storage request to expand")
        cls = spec.get("storageClassName")
        if cls:
            try:
                sc = with_backoff(lambda: self._apis.storage.read_storage_class(cls), self.backoff,
                                  what=f"read storageclass {cls}")
                if not getattr(sc, "allow_volume_expansion", False):
                    raise PlanError(f"StorageClass {cls} does not allow volume expansion (allowVolumeExpansion)")
            except PlanError:
                raise
            except Exception as e:  # noqa: BLE001 - a class we cannot read: the API server will judge
                if not is_status(e, 404, 403):
                    raise
        size = _quantity(current) * Decimal(str(_factor(action)))
        gi = math.ceil(float(size) / _GI)
        return f"{gi}Gi"


# ---------------------------------------------------------------------------- helpers


# What a dry run's answer changes that is not the action: the server's bookkeeping and our own mark.
_IGNORED_FIELDS = ("metadata.resourceVersion", "metadata.generation", "metadata.managedFields",
                   f'metadata.annotations["{ACTION_ANNOTATION}"]', "status")
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")


def field_changes(before: Any, after: Any, path: str = "") -> list[dict[str, Any]]:
    """The leaf fields that differ between two objects, as dotted paths; list items with a `name`
    (containers, volumes) are matched by it: `spec.template.spec.containers[cart].resources.limits.memory`."""
    if path in _IGNORED_FIELDS:
        return []
    if isinstance(before, dict) and after is None or before is None and isinstance(after, dict):
        before, after = before or {}, after or {}  # a map created or removed: its fields, one by one
    if isinstance(before, dict) and isinstance(after, dict):
        out: list[dict[str, Any]] = []
        for key in sorted(set(before) | set(after), key=str):
            part = str(key) if _PLAIN_KEY.fullmatch(str(key)) else f'["{key}"]'
            out += field_changes(before.get(key), after.get(key),
                                 f"{path}.{part}" if path and not part.startswith("[") else f"{path}{part}")
        return out
    if (isinstance(before, list) and isinstance(after, list) and before + after
            and all(isinstance(i, dict) and "name" in i for i in before + after)):
        old = {str(i["name"]): i for i in before}
        new = {str(i["name"]): i for i in after}
        out = []
        for name in [*old, *(n for n in new if n not in old)]:
            out += field_changes(old.get(name), new.get(name), f"{path}[{name}]")
        return out
    return [] if before == after else [{"field": path, "before": before, "after": after}]


def _api_message(e: BaseException) -> str:
    body = getattr(e, "body", None)
    if isinstance(body, (str, bytes)):
        import json

        try:
            doc = json.loads(body)
            if isinstance(doc, dict) and doc.get("message"):
                return f"{getattr(e, 'status', '')} {doc['message']}".strip()
        except ValueError:
            pass
    status = getattr(e, "status", None)
    reason = getattr(e, "reason", None)
    return f"{status} {reason}" if status else str(e).splitlines()[0] if str(e) else type(e).__name__


def _refusal(e: BaseException) -> str:
    """An eviction's 429 with its causes: which disruption budget refused it, and why."""
    import json

    message = _api_message(e)
    try:
        doc = json.loads(getattr(e, "body", None) or "{}")
    except (TypeError, ValueError):
        return message
    causes = [str(c.get("message")) for c in ((doc.get("details") or {}).get("causes") or [])
              if isinstance(c, dict) and c.get("message")] if isinstance(doc, dict) else []
    return f"{message} {'; '.join(causes)}" if causes else message


def _target_doc(ref: ObjectRef) -> dict[str, Any]:
    api_version = {"Deployment": "apps/v1", "StatefulSet": "apps/v1", "DaemonSet": "apps/v1",
                   "HorizontalPodAutoscaler": "autoscaling/v2"}.get(ref.kind, "v1")
    return {"apiVersion": api_version, **ref_to_dict(ref)}


def _workload_key(action: Action, snapshot: Snapshot) -> ObjectRef | None:
    try:
        return target_key(action, snapshot)
    except Exception:  # noqa: BLE001 - the key only refines guard accounting
        return None


def _without_rv(step: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(dict(step))
    body = out.get("body")
    if isinstance(body, dict):
        (body.get("metadata") or {}).pop("resourceVersion", None)
    elif isinstance(body, list):
        out["body"] = [op for op in body if op.get("path") != "/metadata/resourceVersion"]
    return out


def _json_patch_annotation(obj: Mapping[str, Any], key: str) -> dict[str, Any]:
    if _meta(obj).get("annotations"):
        return {"op": "add", "path": "/metadata/annotations/" + ACTION_ANNOTATION.replace("~", "~0").replace("/", "~1"),
                "value": key}
    return {"op": "add", "path": "/metadata/annotations", "value": {ACTION_ANNOTATION: key}}


_TEMPLATE_KINDS = (ActionKind.RESTART_ROLLOUT, ActionKind.RESTART_DEPENDENCY, ActionKind.RAISE_MEMORY_LIMIT,
                   ActionKind.RAISE_CPU_LIMIT)


def _source(intent: Mapping[str, Any]) -> str:
    """Where a rollback's template comes from (plans recorded before ControllerRevisions name only a ReplicaSet)."""
    return str(intent.get("source") or f"ReplicaSet {intent.get('replicaset')}")


def _refuse_paused(action: Action, obj: Mapping[str, Any]) -> None:
    """kubectl refuses to restart a paused Deployment; a template change there would not roll out."""
    if action.kind in _TEMPLATE_KINDS and obj.get("kind") == "Deployment" and (obj.get("spec") or {}).get("paused"):
        raise PlanError(f"can't restart paused deployment {action.target} (run rollout resume first): "
                        f"spec.paused stops the rollout {action.kind.value} needs")


def _refuse_data_loss(action: Action, before: Mapping[str, Any], after: Mapping[str, Any]) -> None:
    if object_keeps_data(before) and (why := volume_loss(before, after)):
        raise PlanError(f"data: {action.describe()} refused: {why}")


def _raised_limits(action: Action, dep: Mapping[str, Any]) -> dict[str, str]:
    resource = "memory" if action.kind is ActionKind.RAISE_MEMORY_LIMIT else "cpu"
    factor = Decimal(str(_factor(action)))
    only = action.params.get("container")
    containers = (((dep.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []
    names = [str(c.get("name")) for c in containers]
    if only is not None and only not in names:
        raise PlanError(f"{action.target} has no container {str(only)[:60]!r} (it has {', '.join(names)})")
    out: dict[str, str] = {}
    for c in containers:
        limit = ((c.get("resources") or {}).get("limits") or {}).get(resource)
        if limit is None or (only is not None and c.get("name") != only):
            continue
        raised = _quantity(limit) * factor
        out[str(c["name"])] = _format_memory(raised) if resource == "memory" else _format_cpu(raised)
    if not out:
        raise PlanError(f"no container of {action.target} sets a {resource} limit; there is nothing to raise")
    if only is None and len(out) > 1:  # a sidecar's limit is not the application's
        raise PlanError(f"{action.kind.value} names no container and {', '.join(out)} of {action.target} all set "
                        f"a {resource} limit; say which one (params.container)")
    return out


_PatchStep = Callable[..., dict[str, Any]]


def _check_uncordon(action: Action, node: Mapping[str, Any]) -> dict[str, Any]:
    """Only a cordoned node that is Ready is uncordoned: a NotReady one cannot run the pods it would get."""
    if not (node.get("spec") or {}).get("unschedulable"):
        raise PlanError(f"{action.target} is not cordoned (spec.unschedulable is not set): nothing to uncordon")
    ready = next((c for c in (node.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"), None)
    if ready is None or str(ready.get("status")) != "True":
        raise PlanError(f"{action.target} is not Ready ({(ready or {}).get('status', 'no Ready condition')}): "
                        "uncordoning it would send pods to a node that cannot run them")
    return {"unschedulable": False}


def _restart_steps(users: list[dict[str, Any]], restarted_at: str | None) -> list[dict[str, Any]]:
    """Rolling restarts of the workloads a revert touches; `None`: put their previous annotations back."""
    steps = []
    for u in users:
        if restarted_at is not None:
            value: Any = {RESTARTED_AT: restarted_at}
        else:
            value = {RESTARTED_AT: u.get("restarted_at")} if u.get("had_annotations") else None
        steps.append({"op": "patch", "kind": u["kind"], "namespace": u["namespace"], "name": u["name"], "change": True,
                      "type": SMP, "body": {"spec": {"template": {"metadata": {"annotations": value}}}}})
    return steps


def _data_patch(now: Mapping[str, Any], want: Mapping[str, Any]) -> dict[str, Any]:
    """A merge patch taking a ConfigMap's data and binaryData from `now` to `want` (null removes a key)."""
    out: dict[str, Any] = {}
    for field_name in ("data", "binaryData"):
        have, wanted = dict(now.get(field_name) or {}), dict(want.get(field_name) or {})
        if have != wanted:
            out[field_name] = {k: wanted.get(k) for k in sorted(set(have) | set(wanted))}
    return out


def _plan_around(kind: ActionKind, intent: Mapping[str, Any], obj: Mapping[str, Any], patch: _PatchStep,
                 mark: Mapping[str, Any], rv: Any
                 ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str], list[str], str]:
    """Steps, inverse steps, summaries and the undo note of revert_config, restore_service, uncordon_node."""
    meta, spec = _meta(obj), obj.get("spec") or {}
    ns, name = meta.get("namespace") or "", meta.get("name")
    if kind is ActionKind.UNCORDON_NODE:
        return ([patch({"metadata": {**mark, "resourceVersion": rv}, "spec": {"unschedulable": None}}, SMP)],
                [patch({"spec": {"unschedulable": True}}, SMP)],
                [f"Node {name}: uncordoned (schedulable again) so the Pending pods get room"],
                [f"Node {name}: cordoned again"], "cordons the node again (pods that started there stay)")
    if kind is ActionKind.RESTORE_SERVICE:
        ops = [{"op": "replace", "path": "/metadata/resourceVersion", "value": rv},
               {"op": "replace", "path": "/spec/selector", "value": intent["selector"]},
               {"op": "replace", "path": "/spec/ports", "value": intent["ports"]},
               _json_patch_annotation(obj, _mark_key(mark))]
        back = [{"op": "replace", "path": "/spec/selector", "value": spec.get("selector") or {}},
                {"op": "replace", "path": "/spec/ports", "value": spec.get("ports") or []}]
        return ([patch(ops, JSON_PATCH)], [patch(back, JSON_PATCH)],
                [f"Service {ns}/{name}: selector {spec.get('selector')} -> {intent['selector']}, ports back to the "
                 f"last-known-good version {intent['good']}"],
                [f"Service {ns}/{name}: selector and ports back to {spec.get('selector')}"],
                "puts the Service's selector and ports back as they were before the restore")
    if intent.get("how") == "renamed":
        moved = intent["retarget"]
        ops = [{"op": "replace", "path": "/metadata/resourceVersion", "value": rv},
               {"op": "replace", "path": "/spec/template", "value": intent["template"]},
               _json_patch_annotation(obj, _mark_key(mark))]
        current = copy.deepcopy(spec.get("template") or {})
        what = f"{moved['to']['kind']} {moved['to']['name']}"
        return ([patch(ops, JSON_PATCH)], [patch([{"op": "replace", "path": "/spec/template", "value": current}],
                                                 JSON_PATCH)],
                [f"{obj.get('kind')} {ns}/{name}: pod template points back at {what} (the one used while the SLO "
                 f"held) instead of {moved['from']['kind']} {moved['from']['name']} (a rolling update)"],
                [f"{obj.get('kind')} {ns}/{name}: pod template points at {moved['from']['name']} again"],
                "restores the pod template from before the revert (the pods roll once more)")
    users = list(intent["users"])
    steps = [patch({"metadata": {**mark, "resourceVersion": rv}, **_data_patch(obj, intent["config_data"])}, MERGE),
             *_restart_steps(users, intent["restarted_at"])]
    inverse = [patch(_data_patch(intent["config_data"], obj), MERGE), *_restart_steps(users, None)]
    restarted = ", ".join(f"{u['kind']} {u['namespace']}/{u['name']}" for u in users)
    return (steps, inverse,
            [f"ConfigMap {ns}/{name}: data back to its last-known-good version {intent['good']}",
             f"rolling restart of the workloads that use it: {restarted} (restartedAt {intent['restarted_at']})"],
            [f"ConfigMap {ns}/{name}: the data before the revert put back; {restarted} restarted"],
            "puts the ConfigMap's data from before the revert back and restores the restartedAt annotations")


def _mark_key(mark: Mapping[str, Any]) -> str:
    return str((mark.get("annotations") or {}).get(ACTION_ANNOTATION, ""))


def _reached(intent: Mapping[str, Any], obj: Mapping[str, Any]) -> bool:
    """Does the object already show what the intent asks for (so applying it again is moot)?"""
    spec = obj.get("spec") or {}
    kind = intent.get("kind")
    if intent.get("secret"):
        return config_digest(obj) == str(intent["good"])
    if "config_data" in intent:
        return all(dict(obj.get(f) or {}) == dict(intent["config_data"].get(f) or {}) for f in ("data", "binaryData"))
    if "selector" in intent:
        return bool(spec.get("selector") == intent["selector"] and service_version(obj).ports
                    == service_version({"spec": {"ports": intent["ports"]}}).ports)
    if "unschedulable" in intent:
        return bool(spec.get("unschedulable")) == bool(intent["unschedulable"])
    if "restarted_at" in intent:
        annotations = ((spec.get("template") or {}).get("metadata") or {}).get("annotations") or {}
        return bool(annotations.get(RESTARTED_AT) == intent["restarted_at"])
    if "hpa_min" in intent:
        return bool(spec.get("minReplicas") == intent["hpa_min"] and spec.get("maxReplicas") == intent["hpa_max"])
    if "replicas" in intent:
        return bool(spec.get("replicas") == intent["replicas"])
    if "max_replicas" in intent:
        return bool(spec.get("maxReplicas") == intent["max_replicas"])
    if "storage" in intent:
        return bool(((spec.get("resources") or {}).get("requests") or {}).get("storage") == intent["storage"])
    if "limits" in intent:
        resource = "memory" if kind == ActionKind.RAISE_MEMORY_LIMIT.value else "cpu"
        have = {c["name"]: ((c.get("resources") or {}).get("limits") or {}).get(resource)
                for c in (((spec.get("template") or {}).get("spec") or {}).get("containers") or [])}
        return all(have.get(c) == v for c, v in intent["limits"].items())
    if "template" in intent:
        return bool(spec.get("template") == intent["template"])
    return False


def _revision_template(cr: dict[str, Any]) -> dict[str, Any]:
    """The pod template a ControllerRevision restores (its `data` patch without `$patch`)."""
    template = copy.deepcopy(((cr.get("data") or {}).get("spec") or {}).get("template") or {})
    template.pop("$patch", None)
    return template


def _as_changed(template: Mapping[str, Any]) -> dict[str, Any]:
    """A pod template as a rollback compares it: without the rolling restart's `restartedAt` annotation
    and the ReplicaSet's `pod-template-hash` label, which say nothing about what the pods run."""
    out = copy.deepcopy(dict(template))
    meta = dict(out.get("metadata") or {})
    meta["annotations"] = {k: v for k, v in (meta.get("annotations") or {}).items() if k != RESTARTED_AT}
    meta["labels"] = {k: v for k, v in (meta.get("labels") or {}).items() if k != "pod-template-hash"}
    out["metadata"] = meta
    return out
