"""Recovery verification: the service's SLO holds again, not merely pods running.

The same criterion judges the simulator, the replay and the live cluster, so a policy
cannot learn a shortcut (scaling to zero has no errors, but it is not recovery).

An SLO whose SLIs were not observed (no request metric of the SLI profile: a gRPC app without
instrumentation, a mesh that is not scraped) is *unknown*, and the agent never verifies recovery
from replicas alone: such an incident stays open until its alert resolves, which the ledger
records as "alert resolved (not SLO-verified)", or until the horizon fails it (docs/slis.md).
"""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass

from remediator.slis import SLI_SIGNALS
from remediator.snapshot import Signals, Slo

# A volume is healthy again when it is this full at most and not predicted full within the hour.
PVC_MAX_USED = 0.85
PVC_MIN_MINUTES_TO_FULL = 60.0
# Memory is healthy when no pod is projected to reach its limit within this many minutes.
MEM_PROJECTION_MIN = 5.0


def unmet(signals: Signals, slo: Slo, unknown: Set[str] = frozenset()) -> list[str]:
    """The reasons the SLO does not hold now; empty when it does. `unknown` names the signals
    that were not observed (`Snapshot.unknown_signals`): an unobserved SLI is never "met"."""
    s = signals
    out = []
    blind = [name for name in SLI_SIGNALS if name in unknown]
    if blind:
        out.append(f"SLO unknown: {', '.join(blind)} not observed (no request metrics); "
                   "only the alert resolving ends the incident")
    if s.desired_replicas < 1 or s.desired_replicas < s.baseline_replicas and s.available_replicas < 1:
        out.append(f"desired replicas {s.desired_replicas:g} (baseline {s.baseline_replicas:g})")
    if s.available_replicas < max(s.desired_replicas, 1):
        out.append(f"available {s.available_replicas:g} < desired {s.desired_replicas:g}")
    if s.error_ratio > slo.error_ratio:
        out.append(f"error ratio {s.error_ratio:.3f} > {slo.error_ratio:g}")
    if s.latency_p99_s > slo.latency_p99_s:
        out.append(f"p99 latency {s.latency_p99_s:.3f}s > {slo.latency_p99_s:g}s")
    if s.mem_ratio + max(s.mem_slope_per_min, 0.0) * MEM_PROJECTION_MIN >= 1.0:
        out.append(f"memory at {s.mem_ratio:.0%} of limit and rising")
    if s.pvc_present and (s.pvc_used_ratio > PVC_MAX_USED or s.pvc_minutes_to_full < PVC_MIN_MINUTES_TO_FULL):
        out.append(f"volume {s.pvc_used_ratio:.0%} full, full in {s.pvc_minutes_to_full:.0f} min")
    return out


def slo_met(signals: Signals, slo: Slo, unknown: Set[str] = frozenset()) -> bool:
    return not unmet(signals, slo, unknown)


@dataclass
class RecoveryTracker:
    """Counts consecutive healthy samples; recovery is verified at the Nth in a row."""

    slo: Slo
    streak: int = 0
    recovered_at: float | None = None

    def observe(self, signals: Signals, at: float, unknown: Set[str] = frozenset()) -> bool:
        if slo_met(signals, self.slo, unknown):
            self.streak += 1
        else:
            self.streak = 0
        if self.streak >= self.slo.consecutive and self.recovered_at is None:
            self.recovered_at = at
        return self.recovered_at is not None


@dataclass(frozen=True)
class Outcome:
    """How a remediation ended: recovery verified (and how long it took from the alert),
    or the SLO conditions that still fail."""

    recovered: bool
    recovery_s: float  # alert to verified recovery; the horizon when it never came
    unmet: tuple[str, ...] = ()
    escalated: bool = False
