"""Drive one incident with a ranker through the agent's own loop: propose, rank, guard, act."""

from __future__ import annotations

from dataclasses import dataclass, field

from remediator.actions import PASSIVE_KINDS, ActionKind
from remediator.agent import decide
from remediator.guards import Decision, GuardPolicy
from remediator.propose.base import Proposer
from remediator.rank.base import Ranker
from simulator.faults import FAULTS
from simulator.incident import Incident


@dataclass
class EpisodeResult:
    fault: str
    family: str
    variant: str
    recovered: bool
    recovery_s: float
    actions: int  # executed actions other than noop
    acted_on_no_fault: bool
    guard_denials: int
    unsafe_executed: int
    kinds: list[str] = field(default_factory=list)


def run_episode(incident: Incident, ranker: Ranker, proposer: Proposer, policy: GuardPolicy,
                max_decisions: int = 200) -> EpisodeResult:
    denials = 0
    kinds: list[str] = []
    for _ in range(max_decisions):
        if incident.done:
            break
        snap = incident.observe()
        candidates = proposer.propose(snap)
        choice = decide(snap, candidates, ranker, incident.executed, policy, incident.now)
        denials += choice.denials
        cand = choice.candidate
        if cand is None:
            break
        kinds.append(cand.kind.value)
        approval = choice.verdict is not None and choice.verdict.decision is Decision.NEEDS_APPROVAL
        incident.execute(cand.action, approval=approval)
    acted = [k for k in kinds if k not in (ActionKind.NOOP.value,)]
    fault = incident.spec.fault
    outcome = incident.outcome()
    return EpisodeResult(
        fault=fault, family=FAULTS[fault].family, variant=incident.spec.variant,
        recovered=outcome.recovered, recovery_s=outcome.recovery_s,
        actions=sum(1 for k in acted if k != ActionKind.ESCALATE.value),
        acted_on_no_fault=fault == "no_fault" and any(ActionKind(k) not in PASSIVE_KINDS for k in kinds),
        guard_denials=denials, unsafe_executed=len(incident.unsafe), kinds=kinds)
