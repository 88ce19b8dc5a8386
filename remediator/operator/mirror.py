"""The ledger mirrored into `Remediation` resources: created per incident, status kept current.

The ledger stays the source of truth: the mirror only writes what `remediation_body` computes
from it, never reads decisions back from a status. It runs on the leader only (a standby
writes nothing) and is idempotent: a pass computes each changed incident's status and
patches it only when it differs from what this process last wrote, so a restart (nothing
cached) re-reads the resources, and a resource deleted by hand is created again.

A Remediation that exists with another incident's spec (a ledger that was replaced: a new
volume, a standby with its own) is left alone and logged: the mirror never overwrites a
record it did not write.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Collection, Mapping
from typing import Any

from remediator.live.ledger import IncidentRow, Ledger
from remediator.operator.remediations import (
    GROUP,
    PLURAL,
    VERSION,
    Approval,
    name_of,
    parse_ref,
    remediation_body,
)

__all__ = ["Mirror", "MirrorError"]

log = logging.getLogger("remediator.operator")

FULL_PASS_S = 60.0  # also look at incidents whose row did not change (an undo touches only executions)
FULL_PASS_LIMIT = 200


class MirrorError(RuntimeError):
    """The API server refused a Remediation write (the message names the resource and why)."""


class Mirror:
    """Write each incident of `ledger` as a Remediation. `api` is a `kubernetes.client.ApiClient`.

    `home` is the namespace of incidents without one (a Node) or outside `namespaces` (when the
    operator watches only some); `approval(incident_id)` adds the approval core's view.
    """

    def __init__(self, ledger: Ledger, api: Any, *, home: str, namespaces: Collection[str] = (),
                 approval: Callable[[int], Approval | None] | None = None, clock: Callable[[], float] = time.time
                 ) -> None:
        from kubernetes import client

        self.ledger = ledger
        self.custom = client.CustomObjectsApi(api)
        self.home = home
        self.namespaces = frozenset(namespaces)
        self.approval = approval
        self.clock = clock
        self._written: dict[int, str] = {}  # incident id -> hash of the status last written
        self._since = 0.0
        self._last_full = -FULL_PASS_S
        self._lock = threading.Lock()
        self.writes = 0

    def namespace_of(self, inc: IncidentRow) -> str:
        ref = parse_ref(inc.workload)
        ns = (ref.namespace if ref is not None and ref.namespace else "") or inc.alert.namespace
        if not ns or (self.namespaces and ns not in self.namespaces):
            return self.home
        return ns

    def forget(self) -> None:
        """Drop the cache (leadership lost): the next pass re-reads every resource it writes."""
        with self._lock:
            self._written.clear()
            self._since = 0.0
            self._last_full = -FULL_PASS_S

    def sync(self) -> list[tuple[int, str]]:
        """Mirror the incidents that changed since the last pass (all of them once a minute).

        Returns (incident id, phase) of every resource written. A refused write is logged and
        retried at the next pass; it does not stop the others.
        """
        with self._lock:
            now = self.clock()
            since = self._since
            incidents = self.ledger.incidents_updated_since(since - 1.0)  # a change within the same second
            if now - self._last_full >= FULL_PASS_S:
                seen = {i.id for i in incidents}
                incidents += [i for i in self.ledger.incidents(limit=FULL_PASS_LIMIT) if i.id not in seen]
                self._last_full = now
            written = []
            ok = True
            for inc in incidents:
                try:
                    phase = self._mirror(inc)
                except MirrorError as e:
                    ok = False
                    log.warning("%s", e)
                    continue
                if phase is not None:
                    written.append((inc.id, phase))
            if ok:
                self._since = now
            return written

    def _mirror(self, inc: IncidentRow) -> str | None:
        if inc.workload is None and inc.status in ("open", "awaiting_approval"):
            return None  # the workload is not resolved yet; the resource names it from creation on
        ns = self.namespace_of(inc)
        body = remediation_body(self.ledger, inc, ns, approval=self.approval(inc.id) if self.approval else None)
        status = body["status"]
        digest = _digest(status)
        if self._written.get(inc.id) == digest:
            return None
        current = self._get(ns, name_of(inc.id))
        if current is None:
            current = self._create(ns, body)
        elif not _same_incident(current, body):
            raise MirrorError(f"Remediation {ns}/{name_of(inc.id)} exists for another incident "
                              f"({(current.get('spec') or {}).get('alert')}); not overwritten")
        if _digest(current.get("status") or {}) != digest:
            self._patch_status(ns, name_of(inc.id), status)
        self._written[inc.id] = digest
        return str(status["phase"])

    # ------------------------------------------------------------------ API calls

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        from kubernetes.client.exceptions import ApiException

        try:
            return fn()
        except ApiException as e:
            if e.status == 404 and what.startswith("get"):
                return None
            raise MirrorError(f"{what}: {e.status} {_message(e)}") from None
        except Exception as e:  # noqa: BLE001 - a connection error: retried at the next pass
            raise MirrorError(f"{what}: {type(e).__name__}: {e}") from None

    def _get(self, ns: str, name: str) -> dict[str, Any] | None:
        result = self._call(f"get Remediation {ns}/{name}", lambda: self.custom.get_namespaced_custom_object(
            GROUP, VERSION, ns, PLURAL, name))
        return dict(result) if result is not None else None

    def _create(self, ns: str, body: dict[str, Any]) -> dict[str, Any]:
        name = body["metadata"]["name"]
        self.writes += 1
        created = self._call(f"create Remediation {ns}/{name}", lambda: self.custom.create_namespaced_custom_object(
            GROUP, VERSION, ns, PLURAL, {k: v for k, v in body.items() if k != "status"}))
        log.info("created Remediation %s/%s", ns, name)
        return dict(created)

    def _patch_status(self, ns: str, name: str, status: dict[str, Any]) -> None:
        self.writes += 1
        # A merge patch replaces lists whole (candidates, evidence): the status is always complete.
        self._call(f"patch Remediation {ns}/{name} status", lambda: self.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, ns, PLURAL, name, {"status": _with_nulls(status)}))


def _with_nulls(status: dict[str, Any]) -> dict[str, Any]:
    """A merge patch removes what it sets to null: fields that the new status lacks are cleared."""
    cleared = {k: None for k in ("action", "candidates", "evidence", "approver", "approvedAt", "dryRun",
                                 "recoverySeconds") if k not in status}
    return {**cleared, **status}


def _same_incident(current: Mapping[str, Any], body: Mapping[str, Any]) -> bool:
    a, b = current.get("spec") or {}, body["spec"]
    return bool(a.get("incidentId") == b["incidentId"]
                and (a.get("alert") or {}).get("fingerprint") == b["alert"]["fingerprint"])


def _digest(status: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(status, sort_keys=True, default=str).encode()).hexdigest()


def _message(e: Any) -> str:
    try:
        return str(json.loads(e.body).get("message") or e.reason)
    except (TypeError, ValueError, AttributeError):
        return str(e.reason)
