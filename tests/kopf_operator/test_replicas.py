"""Operator replicas in real processes against one emulator: leader election, crash, graceful stop.

Each replica is `tests.kopf_operator.child` (what `remediator run` does, on a frozen clock) in a
child process; the replicas share one ledger file (one volume), the emulator counts what acts.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import kubernetes.client
import pytest

from remediator.live.ledger import Ledger
from tests.kopf_operator.conftest import TOKEN, World, dumps, executed, remediation, wait_for, write_config
from tests.live.test_loop import post_webhook
from tests.support.kube import KubeServer

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


class Replica:
    def __init__(self, config: Path, identity: str, frozen: float) -> None:
        self.config, self.identity = config, identity
        self.url_file = config.parent / f"url-{identity}"
        self.url_file.unlink(missing_ok=True)
        self.log = (config.parent / f"{identity}.log").open("w")
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.kopf_operator.child", str(config), str(frozen)],
                                     cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT,
                                     env={**os.environ, "PYTHONPATH": str(ROOT)})

    @property
    def url(self) -> str:
        return str(wait_for(f"{self.identity} to serve", lambda: self.url_file.exists() and self.url_file.read_text(),
                            timeout=60))

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.log.close()

    def terminate(self) -> float:
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)
        self.log.close()
        return time.monotonic() - started

    def output(self) -> str:
        return (self.config.parent / f"{self.identity}.log").read_text()


def _holder(kube: KubeServer) -> str | None:
    lease = kube.get("coordination.k8s.io/v1", "Lease", "remediator", "remediator-leader")
    return (lease or {}).get("spec", {}).get("holderIdentity")


def _config(tmp_path: Path, kube: KubeServer, world: World, identity: str, mode: str) -> Path:
    return write_config(tmp_path / identity, kube, world, mode=mode, identity=identity,
                        store=str(tmp_path / "shared-ledger.db"))


def _phase(kube: KubeServer) -> Any:
    return ((remediation(kube) or {}).get("status") or {}).get("phase")


def test_two_replicas_against_one_api_server_exactly_one_acts(tmp_path: Path, kube: KubeServer,
                                                              world: World) -> None:
    replicas = [Replica(_config(tmp_path, kube, world, name, "auto"), name, world.alert_at)
                for name in ("replica-a", "replica-b")]
    try:
        urls = [r.url for r in replicas]
        leader = wait_for("a leader", lambda: _holder(kube))
        # Alertmanager reaches the Service: either pod. Here both get the alert, as after a retry.
        assert [post_webhook(url, world.payload(), TOKEN) for url in urls] == [200, 200]
        wait_for("the Remediation to show the action", lambda: _phase(kube) in ("Executing", "Verified"))
        time.sleep(2.0)  # the standby would have acted by now if it could
        acted = executed(kube)
        # One execution: the scale, and the annotation naming its idempotency key.
        assert [r.path.rsplit("/", 1)[-1] for r in acted] == ["scale", "cart"], dumps([(r.path, r.body) for r in acted])
        with Ledger(tmp_path / "shared-ledger.db") as ledger:
            assert len(ledger.incidents()) == 1 and len(ledger.executions()) == 1
        # The leader dies; the other takes the Lease over once it expires, and does not act again.
        [dead] = [r for r in replicas if r.identity == leader]
        [other] = [r for r in replicas if r.identity != leader]
        dead.kill()
        wait_for("the standby to take over", lambda: _holder(kube) == other.identity, timeout=60)
        assert post_webhook(other.url, world.payload(), TOKEN) == 200  # Alertmanager's repeat
        time.sleep(1.5)
        assert len(executed(kube)) == 2
        assert "resumed execution" not in other.output()
    finally:
        for r in replicas:
            if r.proc.poll() is None:
                r.kill()
    lease = kube.get("coordination.k8s.io/v1", "Lease", "remediator", "remediator-leader")
    assert lease is not None and lease["spec"]["leaseTransitions"] >= 1


def test_a_crash_while_awaiting_approval_then_a_restart_mirrors_again_the_approval_works_once(
        tmp_path: Path, kube: KubeServer, world: World) -> None:
    first = Replica(_config(tmp_path, kube, world, "replica-a", "approve"), "replica-a", world.alert_at)
    second: Replica | None = None
    try:
        assert post_webhook(first.url, world.payload(), TOKEN) == 200
        wait_for("AwaitingApproval", lambda: _phase(kube) == "AwaitingApproval", timeout=60)
        before = remediation(kube)
        first.kill()  # SIGKILL: no Lease release, no last mirror pass
        assert _holder(kube) == "replica-a"
        # While no operator runs, someone deletes the resource.
        kubernetes.client.CustomObjectsApi(kube.api_client()).delete_namespaced_custom_object(
            "remediator.io", "v1alpha1", "shop", "remediations", "incident-1")
        assert remediation(kube) is None
        second = Replica(_config(tmp_path, kube, world, "replica-b", "approve"), "replica-b", world.alert_at)
        started = time.monotonic()
        wait_for("the restarted operator to lead", lambda: _holder(kube) == "replica-b", timeout=60)
        took_over_s = time.monotonic() - started
        after = wait_for("the Remediation mirrored again", lambda: _phase(kube) == "AwaitingApproval" and
                         remediation(kube), timeout=60)
        assert post_webhook(second.url, world.payload(), TOKEN) == 200  # Alertmanager re-sends the group
        time.sleep(1.0)
        assert after["status"] == before["status"]  # type: ignore[index]
        assert executed(kube) == []
        with Ledger(tmp_path / "shared-ledger.db") as ledger:
            assert len(ledger.incidents()) == 1 and ledger.executions() == []
            assert ledger.incident(1).status == "awaiting_approval"  # type: ignore[union-attr]
        # The approval still works after the crash, and the action runs once.
        kubernetes.client.CustomObjectsApi(kube.api_client()).patch_namespaced_custom_object(
            "remediator.io", "v1alpha1", "shop", "remediations", "incident-1",
            {"spec": {"approval": {"decision": "approve", "approver": "alice"}}})
        wait_for("the approved action", lambda: executed(kube), timeout=60)
        wait_for("the approver shown", lambda: ((remediation(kube) or {}).get("status") or {}).get("approver")
                 == "alice", timeout=60)
        time.sleep(1.5)
        assert [r.path.rsplit("/", 1)[-1] for r in executed(kube)] == ["scale", "cart"]
        # Graceful stop: the Lease is released at once (a standby need not wait for it to expire).
        stop_s = second.terminate()
        assert _holder(kube) is None, dumps(kube.get("coordination.k8s.io/v1", "Lease", "remediator",
                                                     "remediator-leader"))
    finally:
        for r in (first, second):
            if r is not None and r.proc.poll() is None:
                r.kill()
    # The crashed leader's Lease had to expire first (lease_s 3 s); a released one is taken at once.
    assert took_over_s >= 1.0 and stop_s < 30
    print(f"restart after SIGKILL led after {took_over_s:.1f}s (lease_s 3); SIGTERM stop took {stop_s:.1f}s")


def test_remediator_run_is_the_operator(tmp_path: Path, kube: KubeServer, world: World) -> None:
    """The CLI itself: `remediator run --config` takes the Lease, serves /readyz once kopf runs, and on
    SIGTERM releases the Lease and exits 0."""
    import http.client
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = write_config(tmp_path / "cli", kube, world, mode="dry-run", identity="cli-replica", port=port)
    log = (tmp_path / "cli.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "remediator.cli", "run", "--config", str(config)], cwd=ROOT,
                            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        wait_for("the Lease", lambda: _holder(kube) == "cli-replica", timeout=60)

        def ready() -> bool:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/readyz")
                ok = conn.getresponse().status == 200
                conn.close()
                return ok
            except OSError:
                return False

        wait_for("/readyz", ready, timeout=60)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    assert _holder(kube) is None, (tmp_path / "cli.log").read_text()[-2000:]
