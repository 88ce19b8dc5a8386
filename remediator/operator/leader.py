"""Leader election on a `coordination.k8s.io/v1` Lease, so that one replica acts.

The algorithm of client-go's leaderelection, kept small:

* every `retry_s` a replica reads the Lease. Absent: it creates it holding it (a second
  creator gets 409 AlreadyExists and stays a follower). Held by itself: it renews
  (`renewTime`). Held by another: it takes it over only once the record has not changed for
  `lease_s`, measured on its *own* clock from when it last saw the record change (never by
  comparing `renewTime` with the local time, so clock skew between nodes cannot elect two).
* every write is a PUT carrying the `resourceVersion` read, so of two replicas racing for an
  expired Lease the API server admits one (the other gets 409 Conflict);
* a leader that could not renew for `renew_deadline_s` (the API server unreachable, a 409)
  steps down before its Lease can expire for the others, and `on_stop` tells the operator
  to stop acting;
* `release()` (graceful shutdown) empties `holderIdentity`, so a standby takes over at once
  instead of after `lease_s`.
"""

from __future__ import annotations

import datetime
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["LeaderElector"]

log = logging.getLogger("remediator.operator")


def _micro_time(t: float) -> str:
    return datetime.datetime.fromtimestamp(t, tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    """Hold the Lease `namespace/name` as `identity`; `leading` says whether this replica may act."""

    def __init__(self, api: Any, *, namespace: str, name: str, identity: str, lease_s: float = 15.0,
                 renew_deadline_s: float = 10.0, retry_s: float = 2.0,
                 on_start: Callable[[], None] | None = None, on_stop: Callable[[], None] | None = None,
                 monotonic: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time) -> None:
        from kubernetes import client

        if not renew_deadline_s < lease_s:
            raise ValueError(f"renew_deadline_s ({renew_deadline_s}) must be shorter than lease_s ({lease_s})")
        self.coordination = client.CoordinationV1Api(api)
        self.namespace, self.name, self.identity = namespace, name, identity
        self.lease_s, self.renew_deadline_s, self.retry_s = lease_s, renew_deadline_s, retry_s
        self.on_start, self.on_stop = on_start, on_stop
        self.monotonic, self.wall = monotonic, wall
        self._leading = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seen: tuple[Any, ...] | None = None  # the record last read (holder, renewTime, resourceVersion)
        self._seen_at = 0.0
        self._renewed_at = 0.0
        self.transitions = 0  # times this replica became the leader

    @property
    def leading(self) -> bool:
        return self._leading.is_set()

    def wait_leading(self, timeout: float | None = None) -> bool:
        return self._leading.wait(timeout)

    def start(self) -> LeaderElector:
        self._thread = threading.Thread(target=self._run, name="remediator-leader", daemon=True)
        self._thread.start()
        return self

    def stop(self, *, release: bool = True) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.retry_s + 10)
        if self.leading:
            self._lose("stopping")
            if release:
                self.release()

    # ------------------------------------------------------------------ the loop

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                held = self.try_acquire_or_renew()
            except Exception as e:  # noqa: BLE001 - the API server down: counts as not renewed
                log.warning("leader election: %s: %s", type(e).__name__, e)
                held = False
            now = self.monotonic()
            if held:
                self._renewed_at = now
                if not self.leading:
                    self._gain()
            elif self.leading and now - self._renewed_at >= self.renew_deadline_s:
                self._lose(f"not renewed for {now - self._renewed_at:.1f}s")
            self._stop.wait(self.retry_s)

    def _gain(self) -> None:
        self.transitions += 1
        self._leading.set()
        log.info("leader election: %s leads (Lease %s/%s)", self.identity, self.namespace, self.name)
        if self.on_start is not None:
            self.on_start()

    def _lose(self, why: str) -> None:
        self._leading.clear()
        log.warning("leader election: %s stops leading: %s", self.identity, why)
        if self.on_stop is not None:
            self.on_stop()

    def try_acquire_or_renew(self) -> bool:
        """One round: True when this replica holds the Lease afterwards."""
        from kubernetes.client.exceptions import ApiException

        now_wall, now = self.wall(), self.monotonic()
        try:
            lease: Any = self.coordination.read_namespaced_lease(self.name, self.namespace)
        except ApiException as e:
            if e.status != 404:
                raise
            return self._create(now_wall)
        spec = lease.spec
        holder = spec.holder_identity if spec is not None else None
        record = (holder, spec.renew_time if spec is not None else None, lease.metadata.resource_version)
        if record != self._seen:
            self._seen, self._seen_at = record, now
        if holder and holder != self.identity:
            duration = float(spec.lease_duration_seconds or self.lease_s)
            if now - self._seen_at < duration:
                return False  # held, and renewed within its duration as far as this replica has seen
        transitions = int(spec.lease_transitions or 0) if spec is not None else 0
        acquire = spec.acquire_time if spec is not None and holder == self.identity else None
        body: Any = {
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace,
                         "resourceVersion": lease.metadata.resource_version},
            "spec": {"holderIdentity": self.identity, "leaseDurationSeconds": int(self.lease_s),
                     "acquireTime": _micro_time(now_wall) if acquire is None else _micro_time(acquire.timestamp()),
                     "renewTime": _micro_time(now_wall),
                     "leaseTransitions": transitions if holder == self.identity else transitions + 1},
        }
        try:
            self.coordination.replace_namespaced_lease(self.name, self.namespace, body)
        except ApiException as e:
            if e.status == 409:
                return False  # another replica wrote first
            raise
        return True

    def _create(self, now_wall: float) -> bool:
        from kubernetes.client.exceptions import ApiException

        body: Any = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": {"holderIdentity": self.identity, "leaseDurationSeconds": int(self.lease_s),
                         "acquireTime": _micro_time(now_wall), "renewTime": _micro_time(now_wall),
                         "leaseTransitions": 0}}
        try:
            self.coordination.create_namespaced_lease(self.namespace, body)
        except ApiException as e:
            if e.status == 409:
                return False
            raise
        return True

    def release(self) -> None:
        """Give the Lease up (graceful shutdown): a standby takes over at its next round."""
        from kubernetes.client.exceptions import ApiException

        try:
            lease: Any = self.coordination.read_namespaced_lease(self.name, self.namespace)
            if lease.spec is None or lease.spec.holder_identity != self.identity:
                return
            body: Any = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": self.name, "namespace": self.namespace,
                                 "resourceVersion": lease.metadata.resource_version},
                    "spec": {"holderIdentity": None, "leaseDurationSeconds": 1,
                             "renewTime": _micro_time(self.wall()),
                             "leaseTransitions": int(lease.spec.lease_transitions or 0)}}
            self.coordination.replace_namespaced_lease(self.name, self.namespace, body)
            log.info("leader election: %s released the Lease", self.identity)
        except (ApiException, OSError) as e:
            log.warning("leader election: could not release the Lease: %s", e)
        except Exception as e:  # noqa: BLE001 - urllib3's connection errors; the Lease expires anyway
            log.warning("leader election: could not release the Lease: %s: %s", type(e).__name__, e)
