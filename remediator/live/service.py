"""`remediator run`: the webhook receiver and the loop in one process (no kopf yet).

The receiver's server also takes the approvals: `POST /approvals/ID` (the JSON webhook, with
`approval.token`) and `POST /slack/interactions` (Slack's signed clicks, when `slack:` is set);
a new approval request is posted to Slack's incoming webhook (`slack.webhook_url`).

The receiver thread persists alerts and wakes the worker; the worker first finishes the
executions a previous process left half-done, then ticks the loop whenever an incident is
due. SIGTERM/SIGINT stop both cleanly; whatever was in flight resumes at the next start.

A start that fails (a kubeconfig the client cannot read, a port in use, a host that does
not resolve) raises `ConfigError` at the offending key path, and leaves no store behind
that it created: a mistyped configuration must not litter the working directory with
an empty `remediator.db`.
"""

from __future__ import annotations

import errno
import logging
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from remediator.guards import GuardPolicy
from remediator.live.approval import Approvals, Notifier
from remediator.live.approval_webhook import APPROVALS_PREFIX, ApprovalWebhook
from remediator.live.config import LiveConfig
from remediator.live.known_good import KnownGoodSweep
from remediator.live.loop import Loop
from remediator.live.observer import KubeObjectSource
from remediator.live.receiver import Receiver, ReceiverServer
from remediator.live.slack import INTERACTIONS_PATH, SlackInteractions, SlackNotifier
from remediator.live.wiring import (
    WiringError,
    kube_client,
    located,
    make_executor,
    make_observer,
    make_proposer,
    make_ranker,
    open_ledger,
)

__all__ = ["Agent", "serve_until_signalled"]

log = logging.getLogger("remediator.live")


class Agent:
    """The live agent: ledger, receiver server, loop worker. `kube_api` None: from the config."""

    def __init__(self, config: LiveConfig, *, kube_api: Any = None, clock: Callable[[], float] = time.time,
                 acting: Callable[[], bool] | None = None, metrics: Callable[[], str] | None = None,
                 ready: Callable[[], bool] | None = None, policies: Callable[[str], GuardPolicy] | None = None
                 ) -> None:
        """`acting` (the operator's leader election): the worker ticks the loop only while it is
        true, and first resumes half-done executions each time it becomes true. `metrics` adds
        exposition text to /metrics, `ready` a condition to /readyz; `policies` gives a namespace's
        guards (its RemediationPolicies over the configuration's)."""
        self.config = config
        self.clock = clock
        self.acting = acting
        self._metrics = metrics
        self._ready = ready
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._store = _NewStore(Path(config.store))
        # Cheap checks first (client, templates, store, socket), the proposer and the policy last.
        api = kube_api if kube_api is not None else kube_client(config)
        observer = make_observer(config, kube_api=api, clock=clock)
        try:
            self.ledger = open_ledger(config, clock=clock)
        except BaseException:
            self._store.discard()
            raise
        receiver: Receiver | None = None
        try:
            token = config.listen.bearer_token.get_secret_value() if config.listen.bearer_token else None
            self.receiver = receiver = Receiver(self.ledger, bearer_token=token,
                                                max_body_bytes=config.listen.max_body_bytes,
                                                on_alerts=lambda _: self._wake.set())
            self.approvals = Approvals.from_config(self.ledger, config, clock=clock)
            notifiers, routes = approval_channels(config, self.approvals, clock)
            self.slack = routes.pop("slack", None)
            self.server = self._listen(routes)
            try:
                proposer = make_proposer(None, config)
                ranker = make_ranker(config.ranker, str(config.policy) if config.policy else None)
            except WiringError as e:
                self.server.server_close()
                raise located(config, e) from None
            self.executor = make_executor(config, api, self.ledger, dry_run=config.dry_run, clock=clock)
            source = observer.objects if isinstance(observer.objects, KubeObjectSource) else None
            secrets = source if source is not None and source.read_secrets else None
            sweep = KnownGoodSweep(self.ledger, observer, config.known_good, lister=source,
                                   sealer=self.executor.sealer if secrets is not None else None, secrets=secrets)
            self.loop = Loop(self.ledger, observer, proposer, ranker, config.policy_for_guards(), self.executor,
                             mode=config.mode, verify=config.verify, clock=clock, background=True,
                             approval_deadline_s=config.approval.deadline_s, notifiers=notifiers,
                             policies=policies, sweep=sweep)
            # A decision taken in this process (the JSON webhook, a Remediation patch) reaches Slack too.
            self.approvals.on_decision = lambda decision: self.loop.tell(decision.approval)
        except BaseException:
            if receiver is not None:
                receiver.close()
            self.ledger.close()
            self._store.discard()
            raise

    def _listen(self, routes: dict[str, Any]) -> ReceiverServer:
        """Bind the receiver's socket; a port in use or a host that cannot be bound is a `listen.*` error."""
        listen = self.config.listen
        try:
            return ReceiverServer(self.receiver, listen.host, listen.port, extra_ready=self._ready_now,
                                  metrics=self._metrics, routes=routes)
        except OSError as e:
            key = "listen.port" if e.errno in (errno.EADDRINUSE, errno.EACCES) else "listen.host"
            why = "the port is in use" if e.errno == errno.EADDRINUSE else (e.strerror or str(e))
            raise self.config.error(key, f"cannot listen on {listen.host}:{listen.port}: {why}") from None

    def _ready_now(self) -> bool:
        return self._worker_alive() and (self._ready is None or self._ready())

    def _worker_alive(self) -> bool:
        return self._worker is None or self._worker.is_alive()  # None: the caller ticks the loop

    def start(self, *, worker: bool = True) -> Agent:
        """Resume half-done executions, serve webhooks, tick the loop (`worker=False`: the caller ticks)."""
        if self.acting is None:  # with leader election, the worker resumes them once it leads
            try:
                self._recover()
            except BaseException:
                self.server.server_close()
                self.receiver.close()
                self.ledger.close()
                self._store.discard()
                raise
        self._store.keep()
        self.server.start()
        if worker:
            self._worker = threading.Thread(target=self._work, name="remediator-loop", daemon=True)
            self._worker.start()
        log.info("listening on %s (mode %s, store %s)", self.server.url, self.config.mode, self.config.store)
        return self

    def _recover(self) -> None:
        for r in self.loop.recover():
            log.info("resumed execution %s: %s%s", r.execution_id, r.state,
                     " (already applied)" if r.already_applied else "")

    def wake(self) -> None:
        """Tick the loop now (an approval decided, leadership gained)."""
        self._wake.set()

    def _work(self) -> None:
        was_acting = self.acting is None
        while not self._stop.is_set():
            if self.acting is not None:
                acting = self.acting()
                if acting and not was_acting:
                    try:
                        self._recover()  # what the last leader left half-done, judged again first
                    except Exception:  # noqa: BLE001 - retried when leadership is gained again
                        log.exception("resuming executions failed")
                was_acting = acting
                if not acting:
                    self._wake.wait(1.0)
                    self._wake.clear()
                    continue
            try:
                for report in self.loop.tick():
                    log.info("incident %s: %s %s", report.incident_id, report.outcome, report.detail)
            except Exception:  # noqa: BLE001 - keep serving; the ledger says what failed
                log.exception("loop tick failed")
            self._wake.wait(self.loop.next_wakeup(self.clock()))
            self._wake.clear()

    def stop(self) -> None:
        self.halt()
        self.ledger.close()

    def halt(self) -> None:
        """Stop receiving and stepping (running drains get 30 s); the ledger stays open (see `stop`)."""
        self._stop.set()
        self._wake.set()
        self.server.stop()
        if self._worker is not None:
            self._worker.join(timeout=30)
        self.loop.close()

    def serve_forever(self) -> None:
        """Run until SIGTERM or SIGINT."""
        serve_until_signalled(self.start, self.stop)


def serve_until_signalled(start: Callable[[], object], stop: Callable[[], None]) -> None:
    """`start()`, wait for SIGTERM or SIGINT (from the main thread), then `stop()`."""
    done = threading.Event()

    def _signal(signum: int, frame: Any) -> None:
        log.info("signal %s: stopping", signum)
        done.set()

    signal.signal(signal.SIGTERM, _signal)
    signal.signal(signal.SIGINT, _signal)
    start()
    try:
        done.wait()
    finally:
        stop()


def approval_channels(config: LiveConfig, approvals: Approvals, clock: Callable[[], float]
                      ) -> tuple[tuple[Notifier, ...], dict[str, Any]]:
    """The notifiers (Slack's message) and the receiver's approval routes the configuration asks for.

    The routes hold `"slack"`: the `SlackInteractions` itself (its counts), besides the handlers by path.
    """
    token = config.approval.token.get_secret_value() if config.approval.token else None
    webhook = ApprovalWebhook(approvals, token)
    routes: dict[str, Any] = {APPROVALS_PREFIX: webhook.handle}
    notifiers: list[Notifier] = []
    slack = config.slack
    if slack is not None:
        interactions = SlackInteractions(approvals, slack.signing_secret(), clock=clock, timeout_s=slack.timeout_s,
                                         response_url_prefixes=tuple(slack.response_url_prefixes))
        routes[INTERACTIONS_PATH] = lambda path, headers, body: interactions.handle(headers, body)
        routes["slack"] = interactions
        if slack.webhook_url is not None:
            notifiers.append(SlackNotifier(slack.webhook_url.get_secret_value(), approvers=list(slack.approvers),
                                           timeout_s=slack.timeout_s))
    return tuple(notifiers), routes


class _NewStore:
    """The files and directories a new SQLite store would create, to remove them if the start fails.

    Only what did not exist before is removed: an existing ledger is never touched.
    """

    _SUFFIXES = ("", "-wal", "-shm", "-journal")

    def __init__(self, path: Path) -> None:
        self.files = [f for f in (Path(f"{path}{s}") for s in self._SUFFIXES) if not f.exists()]
        self.new = not path.exists()
        self.dirs: list[Path] = []
        parent = path.parent
        while not parent.exists() and parent != parent.parent:
            self.dirs.append(parent)
            parent = parent.parent

    def keep(self) -> None:
        self.files, self.dirs = [], []

    def discard(self) -> None:
        if not self.new:
            return
        for f in self.files:
            try:
                f.unlink(missing_ok=True)
            except OSError:  # never created: its parent is not a directory, or not ours to write
                pass
        for d in self.dirs:  # innermost first
            try:
                d.rmdir()
            except OSError:
                break
