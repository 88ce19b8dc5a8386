"""A drain runs off the loop thread: its incident waits, the others keep moving, the result lands when done.

The executor is the real one against the emulator; the drain is held at a PodDisruptionBudget at
its minimum (429), its backoff sleeping on an event the test releases, as a slow real drain would.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from remediator.actions import Action, ActionKind, ObjectRef
from remediator.guards import GuardPolicy
from remediator.live.executor import KubeExecutor
from remediator.live.kube import Backoff
from remediator.live.ledger import Ledger, ReceivedAlert
from remediator.live.loop import Loop
from remediator.propose.catalog import CatalogProposer
from remediator.rank import RulesRanker
from remediator.snapshot import Alert
from tests.live.conftest import APP, NS, seed_workload, snapshot_for
from tests.support.kube import KubeServer


class _Unreachable:
    """Prometheus and the API down for the second incident: it only records why and moves on."""

    def observe(self, alert: Alert, *, now: float, history: object = (), known_good: object = ()) -> object:
        from remediator.live.observer import ObservationError

        raise ObservationError("nothing to observe in this test")


def test_a_drain_runs_off_the_loop_thread_and_the_others_keep_moving(kube: KubeServer, tmp_path: Path) -> None:
    seeded = seed_workload(kube, pdb_min=2)  # both cart pods needed: the eviction gets 429 until released
    held, slept = threading.Event(), []

    def sleep(s: float) -> None:
        slept.append(s)
        held.wait(5)  # the test releases it once the budget allows a disruption again

    with Ledger(tmp_path / "l.db") as ledger:
        executor = KubeExecutor(kube.api_client(retries=False), ledger, dry_run=False,
                                backoff=Backoff(base_s=0.01, max_s=0.02, sleep=sleep), drain_timeout_s=30.0)
        loop = Loop(ledger, _Unreachable(), CatalogProposer(), RulesRanker(),  # type: ignore[arg-type]
                    GuardPolicy(), executor, mode="auto", background=True)
        alert = Alert("KubeNodeNotReady", {"namespace": NS, "deployment": APP, "node": "node-a"}, starts_at=1000.0)
        first, second = ledger.record_alerts([
            ReceivedAlert(alert), ReceivedAlert(Alert("KubePodCrashLooping", {"namespace": NS, "deployment": "x"},
                                                      starts_at=1001.0, fingerprint="other"))], received_at=1001.0)
        drained, other = first.incident_id, second.incident_id
        pods = tuple(p["metadata"]["name"] for p in seeded["pods"])
        inc = ledger.incident(drained)
        assert inc is not None
        started = time.monotonic()
        assert loop._execute(inc, Action(ActionKind.CORDON_DRAIN_NODE, ObjectRef("Node", "", "node-a")),
                             snapshot_for(pods=pods), 1, None, "test") is None  # type: ignore[arg-type]
        assert time.monotonic() - started < 2.0  # handed off, not waited for

        waiting = loop.step(ledger.incident(drained), 1015.0)  # type: ignore[arg-type]
        moving = loop.step(ledger.incident(other), 1015.0)  # type: ignore[arg-type]
        assert waiting.outcome == "waiting" and "drain is still running" in waiting.detail
        assert moving.outcome == "observe_failed"  # decided about, while the drain waits
        # Release the budget only once the drain has met its 429 and backs off (a loaded machine
        # may not have reached the eviction yet, and then nothing would have waited).
        deadline = time.monotonic() + 20
        while not slept and time.monotonic() < deadline:
            time.sleep(0.05)
        assert slept, "the drain never backed off on the budget"
        [row] = ledger.executions(incident_id=drained)
        assert row.state == "intent"  # recorded before the first write; not finished yet

        from kubernetes.client import PolicyV1Api
        PolicyV1Api(kube.api_client()).patch_namespaced_pod_disruption_budget(APP, NS, {"spec": {"minAvailable": 1}})
        held.set()
        future = loop.running(drained)
        assert future is not None
        result = future.result(timeout=20)
        assert result.ok, result.error
        loop.step(ledger.incident(drained), 1030.0)  # type: ignore[arg-type]
        assert loop.running(drained) is None
        [row] = ledger.executions(incident_id=drained)
        assert row.state == "done"
        assert kube.get("v1", "Node", None, "node-a")["spec"]["unschedulable"] is True  # type: ignore[index]
        loop.close()
