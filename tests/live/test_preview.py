"""The server-side dry run shown to an approver (`KubeExecutor.preview`) is exactly what executing does.

For every action kind, against the emulator (which answers `dryRun=All` as an API server does:
validated, the would-be object returned, nothing stored): the preview changes nothing and records
nothing, every write it makes is a dry run, and the fields it reports are the fields a real
execution then changes, value for value (the same clock, so a restart's timestamp is the same).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from remediator.actions import Action, ActionKind, ObjectRef
from remediator.live.executor import KubeExecutor, field_changes
from remediator.live.kube import Backoff
from remediator.live.ledger import Ledger
from tests.live.conftest import NS, remember_good, seed_workload, snapshot_for
from tests.live.test_executor import CASES
from tests.support.kube import KubeServer

A = ActionKind
NOW = 1_796_200_000.0


def _executor(kube: KubeServer, ledger: Ledger) -> KubeExecutor:
    return KubeExecutor(kube.api_client(retries=False), ledger, dry_run=False, clock=lambda: NOW,
                        backoff=Backoff(base_s=0.01, max_s=0.02, sleep=lambda s: None), drain_timeout_s=2.0)


def _stored(kube: KubeServer) -> dict[Any, dict[str, Any]]:
    return {k: copy.deepcopy(v.raw) for k, v in kube.emulator.objects.items() if not v.deleted}


def _name(key: Any, obj: dict[str, Any]) -> str:
    meta = obj["metadata"]
    return f"{obj['kind']}/{meta.get('namespace') or ''}/{meta['name']}".replace("//", "/")


@pytest.mark.parametrize("kind", [k for k in CASES if k not in (A.NOOP, A.ESCALATE)], ids=lambda k: k.value)
def test_the_preview_is_what_executing_changes(kube: KubeServer, ledger: Ledger, kind: ActionKind) -> None:
    seeded = seed_workload(kube, dependency=True)
    remember_good(ledger)  # what revert_config and restore_service put back
    action = CASES[kind].action(seeded)
    snap = snapshot_for(pods=tuple(p["metadata"]["name"] for p in seeded["pods"]))
    executor = _executor(kube, ledger)
    before = _stored(kube)
    logged = len(kube.requests())

    preview = executor.preview(action, snap)

    assert preview["error"] is None and preview["dry_run"] == "All" and preview["objects"]
    assert _stored(kube) == before and ledger.executions() == []  # nothing stored, nothing recorded
    writes = [r for r in kube.requests()[logged:] if r.method in ("PATCH", "POST", "PUT", "DELETE")]
    assert writes and all(r.query.get("dryRun") == "All" for r in writes), [(r.method, r.path) for r in writes]

    assert executor.execute(action, snap, reason="test").ok
    after = _stored(kube)
    actual: dict[str, list[dict[str, Any]]] = {}
    for key, old in before.items():
        new = after.get(key)
        if new is None:
            actual[_name(key, old)] = [{"field": "(eviction)", "before": "running", "after": "evicted"}]
        elif old["kind"] != "Event" and (changes := field_changes(old, new)):
            actual[_name(key, old)] = changes
    shown = {o["object"]: o["changes"] for o in preview["objects"] if o["changes"]}
    assert actual and shown == actual


def test_a_preview_the_api_server_refuses_says_why(kube: KubeServer, ledger: Ledger) -> None:
    seeded = seed_workload(kube, pdb_min=2)  # no disruption allowed: an eviction is a 429, also in a dry run
    pod = seeded["pods"][0]["metadata"]["name"]
    preview = _executor(kube, ledger).preview(Action(A.DELETE_POD, ObjectRef("Pod", NS, pod)), snapshot_for())
    assert preview["error"] and "cannot be evicted" in preview["error"]
    assert kube.get("v1", "Pod", NS, pod) is not None and ledger.executions() == []


def test_field_changes_names_list_items_and_odd_keys() -> None:
    before = {"spec": {"containers": [{"name": "a", "image": "x:1"}, {"name": "b", "image": "y:1"}]},
              "metadata": {"annotations": {"example.com/k": "1"}, "resourceVersion": "3"}}
    after = {"spec": {"containers": [{"name": "a", "image": "x:2"}, {"name": "b", "image": "y:1"}]},
             "metadata": {"annotations": {"example.com/k": "2"}, "resourceVersion": "4"}}
    assert field_changes(before, after) == [
        {"field": 'metadata.annotations["example.com/k"]', "before": "1", "after": "2"},
        {"field": "spec.containers[a].image", "before": "x:1", "after": "x:2"}]
