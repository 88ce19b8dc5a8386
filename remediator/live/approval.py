"""Approval: an action that waits for a human, decided once, through whichever channel answers first.

The loop parks an incident when the mode or a guard says a human must agree (`waits_for`):
it records one request in the ledger (`Ledger.request_approval`) with the candidate, the
snapshot it was judged on, the server-side dry run of the action and a deadline, and the
notifiers (Slack) show it. A decision then comes from one of the channels

    cli         remediator approve ID --as NAME       allow-list: approval.approvers
    webhook     POST /approvals/ID {"decision", "approver"}   token + approval.approvers
    slack       a signed Block Kit button click       allow-list: slack.approvers (user IDs)
    kubernetes  a patch of the Remediation resource   Kubernetes RBAC decides (the operator)

and `Approvals.decide` records it atomically: the first decision wins, a second one changes
nothing and says so; a decision after the deadline changes nothing (no answer by then means
deny: `expire`). An approver not on the channel's allow-list is refused and the refusal is
recorded. An approved action runs once, when the loop next steps the incident, judged again
by the guards on a fresh observation (the world may have changed since; a restart in between
changes nothing, the request is in the ledger).

Modes (`mode:` of the configuration), one setting for the whole agent:

    dry-run   never acts: server-side dry runs only, and never asks (it reports what would wait)
    approve   every non-passive action waits for approval
    auto      acts where the guards allow, asks where they say needs_approval
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal

from remediator.actions import PASSIVE_KINDS, ActionKind
from remediator.guards import Decision, Verdict
from remediator.live.ledger import ApprovalDecision, ApprovalRow, Ledger
from remediator.snapshot import Snapshot

__all__ = ["CHANNELS", "Approvals", "NotAllowed", "Notifier", "evidence", "waits_for"]

log = logging.getLogger("remediator.live")

Mode = Literal["dry-run", "approve", "auto"]
Channel = Literal["cli", "webhook", "slack", "kubernetes"]
CHANNELS: tuple[Channel, ...] = ("cli", "webhook", "slack", "kubernetes")

# A Slack button or a webhook is used by whoever can reach it: the allow-lists name who may decide.
Notifier = Callable[[ApprovalRow], None]


def waits_for(mode: str, kind: ActionKind, verdict: Verdict) -> str | None:
    """Why this chosen action must wait for a human in this mode (None: it need not).

    Passive kinds (noop, escalate) never wait; dry-run never waits (it acts on nothing).
    """
    if kind in PASSIVE_KINDS or mode == "dry-run":
        return None
    if verdict.decision is Decision.NEEDS_APPROVAL:
        return verdict.reason
    return "mode: approve (every action waits for a human)" if mode == "approve" else None


class NotAllowed(PermissionError):
    """A decision from someone the channel's allow-list does not name; `reason` says so."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Approvals:
    """The approval requests of one ledger, and who may decide them on which channel.

    `approvers` maps a channel to its allow-list; a channel absent from it (kubernetes) leaves the
    decision to whoever delivered it (RBAC). `on_decision` is told of every decision that changed
    something (to update a Slack message, a Remediation resource).
    """

    def __init__(self, ledger: Ledger, *, approvers: Mapping[str, Iterable[str]], deadline_s: float = 900.0,
                 clock: Callable[[], float] = time.time,
                 on_decision: Callable[[ApprovalDecision], None] | None = None) -> None:
        self.ledger = ledger
        self.approvers = {channel: frozenset(names) for channel, names in approvers.items()}
        self.deadline_s = deadline_s
        self.clock = clock
        self.on_decision = on_decision

    @classmethod
    def from_config(cls, ledger: Ledger, config: Any, *, clock: Callable[[], float] = time.time) -> Approvals:
        """The allow-lists of a `LiveConfig`: approval.approvers for cli and webhook, slack.approvers for slack."""
        names = list(config.approval.approvers)
        slack = list(config.slack.approvers) if config.slack is not None else []
        return cls(ledger, approvers={"cli": names, "webhook": names, "slack": slack},
                   deadline_s=config.approval.deadline_s, clock=clock)

    def refusal(self, channel: str, who: str) -> str | None:
        """Why `who` may not decide on `channel` (None: they may)."""
        if channel not in CHANNELS:
            return f"unknown approval channel {channel!r} (one of {', '.join(CHANNELS)})"
        if not who.strip():
            return "the approver is not named"
        allowed = self.approvers.get(channel)
        if allowed is None:
            return None
        if who not in allowed:
            where = "slack.approvers" if channel == "slack" else "approval.approvers"
            return (f"{who!r} is not an approver on the {channel} channel"
                    + (f" (allowed: {', '.join(sorted(allowed))})" if allowed else f" (no one is: {where} is empty)"))
        return None

    def decide(self, approval_id: int, *, approve: bool, approver: str, channel: str,
               at: float | None = None) -> ApprovalDecision:
        """Record a decision: `NotAllowed` (recorded) for an approver off the allow-list, `KeyError` for an
        unknown request; otherwise the ledger's answer (`changed` False: it changed nothing, and why)."""
        now = self.clock() if at is None else at
        refused = self.refusal(channel, approver)
        if refused is not None:
            self.ledger.record_refusal(approval_id, channel=channel, who=approver, reason=refused, at=now)
            log.warning("approval %s: %s decision refused: %s", approval_id, channel, refused)
            raise NotAllowed(refused)
        decision = self.ledger.decide_approval(approval_id, approve=approve, approver=approver, channel=channel,
                                               at=now)
        log.info("%s", decision.message)
        if decision.changed and self.on_decision is not None:
            try:
                self.on_decision(decision)
            except Exception:  # noqa: BLE001 - the decision is recorded; a notice is a courtesy
                log.exception("approval %s: telling of the decision failed", approval_id)
        return decision

    def pending(self) -> list[ApprovalRow]:
        return self.ledger.approvals(state="pending")

    def expire(self, now: float | None = None) -> list[ApprovalRow]:
        """Pending requests past their deadline become expired (deny); returns those settled now."""
        settled = self.ledger.expire_approvals(self.clock() if now is None else now)
        for row in settled:
            log.info("approval %s for %s: %s", row.id, row.action.describe(), row.state)
        return settled


# ---------------------------------------------------------------------------- what the approver is shown


# Signals worth showing when they moved, with the objective each is held against ("slo": a number,
# the name of another signal, or None) and when it counts as moved.
_EVIDENCE: tuple[tuple[str, str | None, Callable[[float, float | None], bool]], ...] = (
    ("error_ratio", "slo.error_ratio", lambda v, slo: slo is not None and v > slo),
    ("latency_p99_s", "slo.latency_p99_s", lambda v, slo: slo is not None and v > slo),
    ("desired_replicas", "baseline_replicas", lambda v, slo: slo is not None and v < slo),  # scaled down
    ("available_replicas", "desired_replicas", lambda v, slo: slo is not None and v < slo),
    ("ready_pods", "pods", lambda v, slo: slo is not None and v < slo),
    ("restarts_per_min", None, lambda v, _: v > 0),
    ("crashloop_fraction", None, lambda v, _: v > 0),
    ("oom_fraction", None, lambda v, _: v > 0),
    ("error_exit_fraction", None, lambda v, _: v > 0),
    ("mem_ratio", None, lambda v, _: v >= 0.9),
    ("cpu_ratio", None, lambda v, _: v >= 0.9),
    ("throttle_ratio", None, lambda v, _: v >= 0.25),
    ("node_ready", None, lambda v, _: v < 1),
    ("pvc_used_ratio", None, lambda v, _: v >= 0.8),
    ("dep_error_ratio", "slo.error_ratio", lambda v, slo: slo is not None and v > slo),
    ("dep_available_ratio", None, lambda v, _: v < 1),
    ("rollout_age_s", None, lambda v, _: 0 <= v < 3600),  # a rollout within the hour
)


def evidence(snapshot: Snapshot) -> list[dict[str, Any]]:
    """The signals the decision rests on: each that moved, with its value against its objective.

    A signal that was not observed is listed with value None (unknown, not healthy); the SLO's
    own two are always listed. `{"signal", "value", "slo"}`, as the Remediation status carries them.
    """
    values = dataclasses.asdict(snapshot.signals)
    unknown = set(snapshot.unknown_signals)
    out = []
    for name, objective, moved in _EVIDENCE:
        slo: float | None = None
        if objective is not None:
            slo = (float(getattr(snapshot.slo, objective.removeprefix("slo.")))
                   if objective.startswith("slo.") else float(values[objective]))
        value = float(values[name])
        if name in unknown:
            if name in ("error_ratio", "latency_p99_s"):
                out.append({"signal": name, "value": None, "slo": slo})
            continue
        if name in ("error_ratio", "latency_p99_s") or (math.isfinite(value) and moved(value, slo)):
            out.append({"signal": name, "value": value if math.isfinite(value) else None, "slo": slo})
    return out


def message(snapshot: Snapshot, candidates: Sequence[Mapping[str, Any]], chosen: int, why: str,
            approval_text: str) -> dict[str, Any]:
    """What an approver is shown, as recorded with the request (the Slack message and the Remediation
    status are rendered from it): what fired, the evidence, the candidates with their scores and
    verdicts, and why this one waits."""
    a = snapshot.alert
    return {
        "alert": {"name": a.name, "labels": dict(a.labels), "starts_at": a.starts_at,
                  "summary": a.annotations.get("summary") or a.annotations.get("description") or ""},
        "workload": str(snapshot.workload) if snapshot.workload else None,
        "evidence": evidence(snapshot),
        "candidates": [{"action": str(c["action"]), "target": str(c["target"]), "params": dict(c["params"]),
                        "score": c["score"] if c["score"] is None or math.isfinite(c["score"]) else None,
                        "verdict": str(c["verdict"]), "reason": str(c["reason"]), "chosen": i == chosen}
                       for i, c in enumerate(candidates)],
        "why": why,
        "approval_text": approval_text,
    }
