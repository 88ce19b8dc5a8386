"""The incident lifecycle: its statuses and the transitions between them, in one place.

    open ──► awaiting_approval ──► open (approved) │ denied │ expired │ escalated │ cancelled │ resolved │ failed
      └────► recovered │ failed │ escalated │ cancelled │ resolved

`open` incidents are worked on by the loop, `awaiting_approval` ones wait for a human; every
other status is closed and final. The ledger refuses any other transition (`check_transition`),
so a bug can never reopen a closed incident or skip the approval it waits for.

An approval request (`ApprovalState`) has its own small lifecycle: `pending` until a human
decides (`approved`, `denied`), the deadline passes (`expired`: no answer means deny), or the
incident closes by itself meanwhile (`withdrawn`: the alert resolved). Each of those is final.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["ACTIVE", "CLOSED", "REOPENABLE", "ApprovalState", "IllegalTransition", "IncidentStatus", "TRANSITIONS",
           "check_transition"]


class IncidentStatus(StrEnum):
    OPEN = "open"
    AWAITING_APPROVAL = "awaiting_approval"
    RECOVERED = "recovered"  # the SLO held again for the required streak
    FAILED = "failed"  # not recovered within the horizon
    ESCALATED = "escalated"  # handed to a human: every candidate denied, or escalate chosen
    CANCELLED = "cancelled"  # the alert resolved before anything was done
    RESOLVED = "resolved"  # the alert resolved after an action
    DENIED = "denied"  # a human denied the action it waited for
    EXPIRED = "expired"  # no human answered by the approval's deadline (deny)


class ApprovalState(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    EXPIRED = "expired"
    WITHDRAWN = "withdrawn"  # the incident closed by itself while it waited


ACTIVE: frozenset[IncidentStatus] = frozenset({IncidentStatus.OPEN, IncidentStatus.AWAITING_APPROVAL})
CLOSED: frozenset[IncidentStatus] = frozenset(IncidentStatus) - ACTIVE

_ENDINGS = frozenset({IncidentStatus.RECOVERED, IncidentStatus.FAILED, IncidentStatus.ESCALATED,
                      IncidentStatus.CANCELLED, IncidentStatus.RESOLVED})
_HUMAN_ENDINGS = frozenset({IncidentStatus.DENIED, IncidentStatus.EXPIRED})
TRANSITIONS: dict[IncidentStatus, frozenset[IncidentStatus]] = {
    IncidentStatus.OPEN: _ENDINGS | {IncidentStatus.AWAITING_APPROVAL},
    # Waiting for a human ends as the SLO or the alert decides too, but it is never "recovered"
    # by the agent's own action without going back to open first.
    IncidentStatus.AWAITING_APPROVAL: ((_ENDINGS - {IncidentStatus.RECOVERED}) | _HUMAN_ENDINGS
                                       | {IncidentStatus.OPEN}),
    **{status: frozenset() for status in _ENDINGS | _HUMAN_ENDINGS},
}
# The one way back, never through `check_transition`: the agent verified recovery but the alert
# kept firing. Only `Ledger.reopen_still_firing` reopens such an incident (an incident must not go
# silent while its alert fires); any other write that would reopen it is refused.
REOPENABLE: frozenset[IncidentStatus] = frozenset({IncidentStatus.RECOVERED})


class IllegalTransition(ValueError):
    """A status change the lifecycle does not allow."""


def check_transition(old: str, new: str) -> IncidentStatus:
    """The new status, if moving there from `old` is allowed; else `IllegalTransition`."""
    try:
        before, after = IncidentStatus(old), IncidentStatus(new)
    except ValueError as e:
        raise IllegalTransition(f"unknown incident status: {e}") from None
    if after is before:
        return after
    if after not in TRANSITIONS[before]:
        allowed = ", ".join(sorted(TRANSITIONS[before])) or "none: it is closed"
        raise IllegalTransition(f"an incident cannot go from {before} to {after} (allowed: {allowed})")
    return after
