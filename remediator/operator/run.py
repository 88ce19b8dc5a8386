"""`remediator run --config FILE`: the operator, in one process.

Threads, each with one job:

* the receiver's (Alertmanager webhooks, /healthz, /readyz, /metrics) and the loop worker's:
  `remediator.live.service.Agent`, unchanged in what it does, except that the worker ticks the
  loop only while this replica leads, and on becoming the leader first resumes what a
  previous leader left half-done, each execution judged again by the guards;
* the leader election's (`remediator.operator.leader`, a coordination.k8s.io Lease);
* the mirror's: while leading, every `operator.mirror_s` (and when woken), the ledger's
  incidents are written as `Remediation` resources (`remediator.operator.mirror`);
* kopf's, on its own asyncio loop: it watches `Remediation` resources (a human's
  `spec.approval`, handed to the approval core) and `RemediationPolicy` resources (validated
  into the `PolicyBook` the loop judges with; their status written by the leader).

kopf runs standalone (no kopf peering: the Lease decides who acts) with only event
handlers, so it writes nothing of its own to the resources (no finalizers, no progress
annotations) and needs no RBAC beyond watching them.

SIGTERM: the worker stops taking new steps and lets running work finish (`Loop.close`: a
drain gets 30 s, then it is left as an intent), the mirror writes the last state, the Lease is
released so that a standby takes over at once, kopf stops. At the next start the intent
resumes through the guards (`Loop.recover`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from remediator.live.config import LiveConfig
from remediator.live.ledger import IncidentRow
from remediator.live.service import Agent, serve_until_signalled
from remediator.live.slack import diff_lines
from remediator.live.wiring import kube_client
from remediator.operator import policies as policy_resources
from remediator.operator.leader import LeaderElector
from remediator.operator.metrics import LedgerCollector, registry_text
from remediator.operator.mirror import Mirror, MirrorError
from remediator.operator.policies import PolicyBook, PolicyCheck
from remediator.operator.remediations import GROUP, PLURAL, VERSION, Approval

__all__ = ["Operator", "SpecApproval"]

log = logging.getLogger("remediator.operator")


class SpecApproval:
    """A human's `spec.approval` on a Remediation, as the watch delivered it."""

    def __init__(self, namespace: str, name: str, incident_id: int, decision: str, approver: str) -> None:
        self.namespace, self.name, self.incident_id = namespace, name, incident_id
        self.decision, self.approver = decision, approver

    def __repr__(self) -> str:
        return f"SpecApproval({self.namespace}/{self.name}, incident {self.incident_id}, {self.decision} by " \
               f"{self.approver})"


# The approval core's entry point: decide(incident id, "approve"|"deny", approver, channel).
Decide = Callable[[int, str, str, str], Any]


class Operator:
    """The operator of `config`: `start()`, `stop()`, or `serve_forever()` until SIGTERM/SIGINT.

    `kube_api` (a `kubernetes.client.ApiClient`) defaults to the configuration's; `decide` is the
    approval core's entry point (default: `Approvals.decide` on the incident's pending request, channel
    `kubernetes`); `approval_view` what the status shows of an incident's approval (default: the ledger's).
    """

    def __init__(self, config: LiveConfig, *, kube_api: Any = None, clock: Callable[[], float] = time.time,
                 decide: Decide | None = None, approval_view: Callable[[int], Approval | None] | None = None) -> None:
        self.config = config
        settings = config.operator
        self.namespace = settings.namespace or os.environ.get("POD_NAMESPACE") or "default"
        self.identity = settings.identity or os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"
        self.api = kube_api if kube_api is not None else kube_client(config)
        self.decide: Decide = decide if decide is not None else self._decide_with_core
        self.book = PolicyBook(config.policy_for_guards())
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._approvals: dict[tuple[str, str], SpecApproval] = {}
        self._approvals_lock = threading.Lock()
        # RemediationPolicy (namespace, name) -> (the status it should show, the status it shows)
        self._policy_status: dict[tuple[str, str], tuple[dict[str, Any], dict[str, Any]]] = {}
        self.handled: deque[SpecApproval] = deque(maxlen=100)  # the last approvals handed to the approval core
        self.mirror_errors = 0
        self._kopf_ready = threading.Event()
        self._kopf_stop = threading.Event()
        self._kopf_thread: threading.Thread | None = None
        self._mirror_thread: threading.Thread | None = None
        self.elector = LeaderElector(_own_client(self.api), namespace=self.namespace, name=settings.lease_name,
                                     identity=self.identity, lease_s=settings.lease_s,
                                     renew_deadline_s=settings.renew_deadline_s, retry_s=settings.retry_s,
                                     on_start=self._on_lead, on_stop=self._on_follow)
        self.agent = Agent(config, kube_api=self.api, clock=clock, acting=lambda: self.elector.leading,
                           metrics=self._metrics_text, ready=self._kopf_ready.is_set,
                           policies=self.book.for_namespace)
        self.mirror = Mirror(self.agent.ledger, _own_client(self.api), home=self.namespace,
                             namespaces=settings.namespaces, approval=approval_view or self.approval_of, clock=clock)
        self.collector = LedgerCollector(self.agent.ledger, leading=lambda: self.elector.leading,
                                         mirror_errors=lambda: self.mirror_errors)

    # ------------------------------------------------------------------ lifecycle

    def start(self, *, kopf_timeout_s: float = 30.0, worker: bool = True) -> Operator:
        """`worker=False`: the caller ticks the loop (tests on a simulated clock)."""
        self.agent.start(worker=worker)
        self._kopf_thread = threading.Thread(target=self._run_kopf, name="remediator-kopf", daemon=True)
        self._kopf_thread.start()
        if not self._kopf_ready.wait(kopf_timeout_s):
            log.warning("kopf is not ready after %.0fs; /readyz stays 503 until it is", kopf_timeout_s)
        self._mirror_thread = threading.Thread(target=self._run_mirror, name="remediator-mirror", daemon=True)
        self._mirror_thread.start()
        self.elector.start()
        log.info("operator %s in %s: kopf watching %s", self.identity, self.namespace,
                 ", ".join(self.config.operator.namespaces) or "all namespaces")
        return self

    def stop(self) -> None:
        """Graceful: no new steps, running work finishes (or stays an intent), last mirror pass, Lease released."""
        self._stop.set()
        self._wake.set()
        if self._mirror_thread is not None:
            self._mirror_thread.join(timeout=30)
        self.agent.halt()  # no new steps; Loop.close lets running drains finish
        if self.elector.leading:
            self._sync_once()  # the last state, before the standby takes over
        self.elector.stop(release=True)
        self._kopf_stop.set()
        if self._kopf_thread is not None:
            self._kopf_thread.join(timeout=30)
        self.agent.ledger.close()

    def serve_forever(self) -> None:
        """Run until SIGTERM or SIGINT, then stop gracefully."""
        serve_until_signalled(self.start, self.stop)

    def wake(self) -> None:
        self._wake.set()

    @property
    def url(self) -> str:
        return self.agent.server.url

    # ------------------------------------------------------------------ leadership

    def _on_lead(self) -> None:
        self.mirror.forget()  # re-read what the last leader wrote
        with self._approvals_lock:  # and write the policies' statuses this replica computes
            self._policy_status = {k: (w, {}) for k, (w, _) in self._policy_status.items()}
        self.agent.wake()
        self.wake()

    def _on_follow(self) -> None:
        self.mirror.forget()

    # ------------------------------------------------------------------ the mirror and the approvals

    def _run_mirror(self) -> None:
        while not self._stop.is_set():
            if self.elector.leading:
                self._sync_once()
            self._wake.wait(self.config.operator.mirror_s)
            self._wake.clear()

    def _sync_once(self) -> None:
        try:
            self._write_policy_statuses()
            self._apply_approvals()
            for incident_id, phase in self.mirror.sync():
                log.info("Remediation of incident %s: %s", incident_id, phase)
        except MirrorError as e:
            self.mirror_errors += 1
            log.warning("mirror: %s", e)
        except Exception:  # noqa: BLE001 - the next pass retries
            self.mirror_errors += 1
            log.exception("mirror pass failed")

    def _apply_approvals(self) -> None:
        """Hand each spec.approval of an incident awaiting approval to the approval core, once."""
        with self._approvals_lock:
            pending = list(self._approvals.values())
        for item in pending:
            inc = self.agent.ledger.incident(item.incident_id)
            if inc is None or not self._matches(inc, item):
                log.warning("%s: no such incident awaiting approval in this ledger; ignored", item)
                self._drop(item)
                continue
            if inc.status != "awaiting_approval":
                self._drop(item)  # decided already (another channel, or an earlier pass), or closed
                continue
            try:
                self.decide(item.incident_id, item.decision, item.approver, "kubernetes")
            except (PermissionError, KeyError, ValueError) as e:  # refused (and recorded) by the approval core
                log.warning("%s refused: %s", item, e)
            self.handled.append(item)
            self._drop(item)
            self.agent.wake()

    def _decide_with_core(self, incident_id: int, decision: str, approver: str, channel: str) -> Any:
        """The approval core's decision on the incident's pending request (Kubernetes RBAC let the patch in)."""
        pending = self.agent.ledger.approvals(state="pending", incident_id=incident_id)
        if not pending:
            log.warning("incident %s: a %s by %s, but no approval request is pending", incident_id, decision, approver)
            return None
        result = self.agent.approvals.decide(pending[-1].id, approve=decision == "approve", approver=approver,
                                             channel=channel)
        log.info("incident %s: %s", incident_id, result.message)
        return result

    def approval_of(self, incident_id: int) -> Approval | None:
        """The incident's last approval request as the Remediation shows it: who decided, when, the dry run,
        the evidence the approver was shown."""
        requests = self.agent.ledger.approvals(incident_id=incident_id)
        if not requests:
            return None
        last = requests[-1]
        return Approval(approver=last.approver, decided_at=last.decided_at, decision=str(last.state),
                        dry_run="\n".join(diff_lines(last.preview)) if last.preview else None,
                        evidence=last.message.get("evidence") if isinstance(last.message, dict) else None)

    def _matches(self, inc: IncidentRow, item: SpecApproval) -> bool:
        return self.mirror.namespace_of(inc) == item.namespace

    def _drop(self, item: SpecApproval) -> None:
        with self._approvals_lock:
            if self._approvals.get((item.namespace, item.name)) is item:
                del self._approvals[(item.namespace, item.name)]

    def on_remediation(self, event_type: str, body: dict[str, Any]) -> None:
        """kopf's watch event of a Remediation: remember a spec.approval for the next pass."""
        meta = body.get("metadata") or {}
        spec = body.get("spec") or {}
        approval = spec.get("approval")
        key = (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        if event_type == "DELETED" or not isinstance(approval, dict):
            return
        phase = (body.get("status") or {}).get("phase")
        if phase != "AwaitingApproval":
            return
        item = SpecApproval(key[0], key[1], int(spec.get("incidentId") or 0), str(approval.get("decision")),
                            str(approval.get("approver")))
        with self._approvals_lock:
            self._approvals[key] = item
        self.wake()

    def on_policy(self, event_type: str, body: dict[str, Any]) -> PolicyCheck | None:
        """kopf's watch event of a RemediationPolicy: validate it into the book (on every replica, so
        that a standby that takes over has them); the leader's mirror pass writes its status."""
        meta = body.get("metadata") or {}
        key = (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        if event_type == "DELETED":
            self.book.remove(*key)
            with self._approvals_lock:
                self._policy_status.pop(key, None)
            return None
        check = self.book.put(*key, body.get("spec"))
        if not check.valid:
            log.warning("RemediationPolicy %s/%s is invalid and not applied: %s", *key, "; ".join(check.errors))
        wanted = self.book.status_of(check, meta.get("generation"))
        shown = {k: (body.get("status") or {}).get(k) for k in wanted}
        with self._approvals_lock:
            self._policy_status[key] = (wanted, shown)
        if wanted != shown:
            self.wake()
        return check

    def _write_policy_statuses(self) -> None:
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        with self._approvals_lock:
            due = [(k, w) for k, (w, shown) in self._policy_status.items() if w != shown]
        for (ns, name), status in due:
            try:
                client.CustomObjectsApi(self.api).patch_namespaced_custom_object_status(
                    policy_resources.GROUP, policy_resources.VERSION, ns, policy_resources.PLURAL, name,
                    {"status": status})
            except ApiException as e:
                self.mirror_errors += 1
                log.warning("RemediationPolicy %s/%s: status not written: %s %s", ns, name, e.status, e.reason)
                continue
            with self._approvals_lock:
                if self._policy_status.get((ns, name), (None, None))[0] == status:
                    self._policy_status[(ns, name)] = (status, status)

    # ------------------------------------------------------------------ metrics

    def _metrics_text(self) -> str:
        return registry_text(self.collector)

    # ------------------------------------------------------------------ kopf

    def _run_kopf(self) -> None:
        import kopf

        registry = kopf.OperatorRegistry()
        settings = kopf.OperatorSettings()
        settings.scanning.disabled = True  # the CRDs are the chart's: no CRD or namespace watch (no RBAC for it)
        settings.peering.standalone = True  # the Lease decides who acts, not kopf's peering
        settings.posting.enabled = False  # no kopf Events: our handlers only read, the loop posts its own
        settings.watching.server_timeout = 300
        settings.watching.reconnect_backoff = 0.5
        settings.networking.error_backoffs = [0.5, 1, 2, 5]
        api = self.api

        @kopf.on.login(registry=registry)
        def _login(**_: Any) -> Any:
            return _connection_info(api)

        @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)
        def _remediation(event: Any, **_: Any) -> None:
            self.on_remediation(str(event.get("type") or ""), dict(event.get("object") or {}))

        @kopf.on.event(policy_resources.GROUP, policy_resources.VERSION, policy_resources.PLURAL, registry=registry)
        def _policy(event: Any, **_: Any) -> None:
            self.on_policy(str(event.get("type") or ""), dict(event.get("object") or {}))

        namespaces = self.config.operator.namespaces
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(kopf.operator(
                registry=registry, settings=settings, standalone=True, clusterwide=not namespaces,
                namespaces=namespaces, stop_flag=self._kopf_stop, ready_flag=self._kopf_ready))
        except Exception:  # noqa: BLE001 - /readyz says not ready
            log.exception("kopf stopped")
            self._kopf_ready.clear()
        finally:
            loop.close()


def _own_client(api: Any) -> Any:
    """Another ApiClient on the same configuration: its own connection pool (the Lease must not wait
    behind a drain's requests)."""
    from kubernetes import client

    return client.ApiClient(api.configuration)


def _connection_info(api: Any) -> Any:
    """kopf's credentials from the `kubernetes` client's configuration (kubeconfig or in-cluster)."""
    import kopf

    c = api.configuration
    header = c.get_api_key_with_prefix("authorization") or c.get_api_key_with_prefix("BearerToken") or ""
    scheme, _, token = header.partition(" ")
    if not token:
        scheme, token = ("Bearer", scheme) if scheme else (None, "")
    return kopf.ConnectionInfo(
        server=c.host, ca_path=c.ssl_ca_cert or None, insecure=not c.verify_ssl,
        scheme=scheme or None, token=token or None, username=c.username or None, password=c.password or None,
        certificate_path=c.cert_file or None, private_key_path=c.key_file or None)
