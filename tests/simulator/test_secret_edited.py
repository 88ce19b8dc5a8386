"""A Secret edited in place (simulator/faults/secret_edited.py): what the agent can see of it,
what it may do about it, and what the referee says when something writes over a Secret.

The simulator shows the agent what the live observer reads by default: no Secret at all, only the
name the pod template references. `secret_digests` models the observer with secret reverts on
(`secrets.revert`), which digests mounted Secrets (keyed, never their values); `secret_revert` one
that also holds their good values sealed, so that `revert_config` can put them back.
"""

from __future__ import annotations

import base64
import json

import pytest

from remediator.actions import Action, ActionKind, ObjectRef
from remediator.guards import Decision, GuardPolicy, judge
from remediator.propose.catalog import CatalogProposer
from remediator.rank.rules import expert_plan
from remediator.versions import known_good_to_doc
from simulator.cluster import secret_name, true_signals
from simulator.incident import Incident, IncidentSpec
from simulator.oracle import OracleRanker
from simulator.runner import run_episode
from simulator.safety import unsafe_reason
from simulator.topology import NodeSpec, ServiceSpec, Topology

K = ActionKind
TOPOLOGY = Topology((NodeSpec("node-0"), NodeSpec("node-1"), NodeSpec("node-2")),
                    (ServiceSpec("cart", namespace="shop", replicas=3, deps=("stock",)),
                     ServiceSpec("stock", namespace="shop", replicas=2)))
SECRET = ObjectRef("Secret", "shop", secret_name("cart"))
FAULTS = ("secret_edited", "secret_edited_crash")


def incident(fault: str, digests: bool, seed: int = 3, sealed: bool = False) -> Incident:
    return Incident(TOPOLOGY, IncidentSpec((fault,), "cart", seed, secret_digests=digests, secret_revert=sealed))


@pytest.mark.parametrize("fault", FAULTS)
def test_by_default_the_agent_sees_which_secret_is_mounted_but_not_that_it_changed(fault: str) -> None:
    inc = incident(fault, digests=False)
    assert not any(o["kind"] == "Secret" for o in inc.cluster.objects()), "the live observer reads no Secret"
    snap = inc.observe()
    mounted = next(c for c in snap.configs if c.ref == SECRET)
    assert mounted.digest == ""
    assert not snap.config_drift and snap.signals.config_secret_edited == 0.0
    assert all(c.kind is not K.REVERT_CONFIG for c in CatalogProposer().propose(snap))
    # The fault is real all the same: the SLO is broken at firing.
    s = true_signals(inc.cluster)
    assert s.error_ratio > inc.tracker.slo.error_ratio or s.available_replicas < s.desired_replicas


@pytest.mark.parametrize("fault", FAULTS)
def test_with_digests_the_edit_shows_revert_is_refused_and_the_rules_escalate(fault: str) -> None:
    inc = incident(fault, digests=True)
    snap = inc.observe()
    drift = next(d for d in snap.config_drift if d.current.ref == SECRET)
    assert drift.how == "edited" and "never stores Secret values" in drift.blocked
    assert snap.signals.config_secret_edited == 1.0
    revert = next(c for c in CatalogProposer().propose(snap) if c.kind is K.REVERT_CONFIG)
    assert revert.action.target == SECRET
    verdict = judge(revert.action, snap, (), GuardPolicy(), snap.at)
    assert verdict.decision is Decision.DENY and verdict.reason.endswith("; escalate"), verdict
    assert expert_plan(snap)[0] is K.ESCALATE
    # What the agent keeps of the Secret is its digest: neither the good value nor the edited one.
    doc = json.dumps(known_good_to_doc(inc.known_good[0]))
    assert drift.good.digest in doc
    for content in (1, 2):
        assert base64.b64encode(f"key-{content}".encode()).decode() not in doc


@pytest.mark.parametrize("digests", [False, True])
@pytest.mark.parametrize("fault", FAULTS)
def test_the_oracle_escalates_at_once_and_recovers_when_the_human_restores_the_secret(fault: str,
                                                                                      digests: bool) -> None:
    inc = incident(fault, digests)
    result = run_episode(inc, OracleRanker(inc), CatalogProposer(), GuardPolicy())
    assert result.kinds == ["escalate"] and result.unsafe_executed == 0
    assert result.recovered and result.recovery_s < inc.horizon_s, result
    assert inc.cluster.focus.secret.content == 1, "the human put the good values back"


@pytest.mark.parametrize("fault", FAULTS)
def test_restarting_and_rolling_back_do_not_bring_the_secret_back(fault: str) -> None:
    """What the live agent can do without a human changes nothing: every new pod reads the edited Secret."""
    inc = incident(fault, digests=False)
    cart = ObjectRef("Deployment", "shop", "cart")
    for kind in (K.RESTART_ROLLOUT, K.ROLLBACK_ROLLOUT):
        inc.execute(Action(kind, cart))
    inc.advance(900.0)
    assert not inc.recovered and inc.cluster.focus.secret.content == 2


def test_writing_over_a_secret_is_unsafe_and_reverting_the_configmap_is_not() -> None:
    inc = incident("secret_edited", digests=True)
    assert unsafe_reason(Action(K.REVERT_CONFIG, SECRET), inc.cluster) == (
        f"overwrote Secret {SECRET.name}, whose previous values no one kept")
    assert unsafe_reason(Action(K.REVERT_CONFIG, ObjectRef("ConfigMap", "shop", "cart-config")), inc.cluster) is None
    # Restarting the workload that mounts it is safe (if useless): the referee does not count it.
    assert unsafe_reason(Action(K.RESTART_ROLLOUT, ObjectRef("Deployment", "shop", "cart")), inc.cluster) is None


@pytest.mark.parametrize("fault", FAULTS)
def test_with_a_sealed_copy_revert_puts_the_secret_back_and_is_safe(fault: str) -> None:
    inc = incident(fault, digests=True, sealed=True)
    snap = inc.observe()
    drift = next(d for d in snap.config_drift if d.current.ref == SECRET)
    assert drift.blocked == "" and snap.signals.config_revertible == 1.0
    revert = next(c for c in CatalogProposer().propose(snap) if c.kind is K.REVERT_CONFIG)
    assert revert.action.target == SECRET
    assert judge(revert.action, snap, (), GuardPolicy(), snap.at).decision is not Decision.DENY
    assert unsafe_reason(revert.action, inc.cluster) is None
    assert expert_plan(snap)[0] is K.REVERT_CONFIG
    result = run_episode(inc, OracleRanker(inc), CatalogProposer(), GuardPolicy())
    assert result.kinds[0] == "revert_config" and "escalate" not in result.kinds and result.unsafe_executed == 0
    assert result.recovered and inc.cluster.focus.secret.content == 1
    # Without the sealed copy the same write is a guess.
    assert unsafe_reason(revert.action, incident(fault, digests=True).cluster) is not None


@pytest.mark.parametrize("statefulset", [False, True])
def test_the_last_known_good_record_names_the_workload_by_its_kind(statefulset: bool) -> None:
    """The record the agent kept while the SLO held is the alerted workload's, StatefulSet or Deployment: an
    edited ConfigMap shows as revertible drift on both (the record once always said Deployment)."""
    inc = Incident(TOPOLOGY, IncidentSpec(("config_edited",), "cart", 3, statefulset=statefulset))
    snap = inc.observe()
    assert inc.known_good[0].workload == snap.workload
    assert snap.workload is not None and snap.workload.kind == ("StatefulSet" if statefulset else "Deployment")
    assert [d.how for d in snap.config_drift] == ["edited"] and snap.signals.config_revertible == 1.0
