"""`remediator run`: the webhook receiver and the loop in one process (no kopf yet).

The receiver thread persists alerts and wakes the worker; the worker first finishes the
executions a previous process left half-done, then ticks the loop whenever an incident is
due. SIGTERM/SIGINT stop both cleanly; whatever was in flight resumes at the next start.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from remediator.live.config import LiveConfig
from remediator.live.executor import KubeExecutor
from remediator.live.kube import Backoff, api_client
from remediator.live.ledger import Ledger
from remediator.live.loop import Loop
from remediator.live.receiver import Receiver, ReceiverServer
from remediator.live.wiring import make_observer, make_proposer, make_ranker

__all__ = ["Agent"]

log = logging.getLogger("remediator.live")


class Agent:
    """The live agent: ledger, receiver server, loop worker. `kube_api` None: from the config."""

    def __init__(self, config: LiveConfig, *, kube_api: Any = None, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock
        self.ledger = Ledger(config.store, clock=clock)
        api = kube_api if kube_api is not None else api_client(config.kubernetes)
        ex = config.executor
        self.executor = KubeExecutor(
            api, self.ledger, dry_run=config.dry_run, clock=clock, drain_timeout_s=ex.drain_timeout_s,
            field_manager=ex.field_manager,
            backoff=Backoff(max_attempts=ex.max_attempts, base_s=ex.backoff_base_s, max_s=ex.backoff_max_s))
        self.loop = Loop(self.ledger, make_observer(config, kube_api=api, clock=clock), make_proposer(None, config),
                         make_ranker(config.ranker, str(config.policy) if config.policy else None),
                         config.policy_for_guards(), self.executor, mode=config.mode, verify=config.verify,
                         clock=clock)
        self._wake = threading.Event()
        self._stop = threading.Event()
        token = config.listen.bearer_token.get_secret_value() if config.listen.bearer_token else None
        self.receiver = Receiver(self.ledger, bearer_token=token, max_body_bytes=config.listen.max_body_bytes,
                                 on_alerts=lambda _: self._wake.set())
        self.server = ReceiverServer(self.receiver, config.listen.host, config.listen.port,
                                     extra_ready=self._worker_alive)
        self._worker: threading.Thread | None = None

    def _worker_alive(self) -> bool:
        return self._worker is None or self._worker.is_alive()  # None: the caller ticks the loop

    def start(self, *, worker: bool = True) -> Agent:
        """Resume half-done executions, serve webhooks, tick the loop (`worker=False`: the caller ticks)."""
        resumed = self.loop.recover()
        for r in resumed:
            log.info("resumed execution %s: %s%s", r.execution_id, r.state,
                     " (already applied)" if r.already_applied else "")
        self.server.start()
        if worker:
            self._worker = threading.Thread(target=self._work, name="remediator-loop", daemon=True)
            self._worker.start()
        log.info("listening on %s (mode %s, store %s)", self.server.url, self.config.mode, self.config.store)
        return self

    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                for report in self.loop.tick():
                    log.info("incident %s: %s %s", report.incident_id, report.outcome, report.detail)
            except Exception:  # noqa: BLE001 - keep serving; the ledger says what failed
                log.exception("loop tick failed")
            self._wake.wait(self.loop.next_wakeup(self.clock()))
            self._wake.clear()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self.server.stop()
        if self._worker is not None:
            self._worker.join(timeout=30)
        self.ledger.close()

    def serve_forever(self) -> None:
        """Run until SIGTERM or SIGINT."""
        done = threading.Event()

        def _signal(signum: int, frame: Any) -> None:
            log.info("signal %s: stopping", signum)
            done.set()

        signal.signal(signal.SIGTERM, _signal)
        signal.signal(signal.SIGINT, _signal)
        self.start()
        try:
            done.wait()
        finally:
            self.stop()
