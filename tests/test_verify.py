"""Recovery is the SLO holding again, never merely an absence of errors."""

from __future__ import annotations

from remediator.snapshot import Signals, Slo
from remediator.verify import RecoveryTracker, slo_met, unmet

HEALTHY = Signals(desired_replicas=3, baseline_replicas=3, available_replicas=3, error_ratio=0.001,
                  latency_p99_s=0.2)


def test_healthy_service_meets_slo() -> None:
    assert slo_met(HEALTHY, Slo())


def test_scaled_to_zero_is_not_recovery() -> None:
    zero = Signals(desired_replicas=0, baseline_replicas=3, available_replicas=0, error_ratio=0.0,
                   latency_p99_s=0.0)
    assert not slo_met(zero, Slo())
    assert any("desired replicas 0" in r for r in unmet(zero, Slo()))


def test_missing_capacity_errors_latency_memory_and_volume_each_count() -> None:
    cases = {
        "available": Signals(desired_replicas=3, baseline_replicas=3, available_replicas=2),
        "error ratio": Signals(desired_replicas=3, available_replicas=3, error_ratio=0.05),
        "p99": Signals(desired_replicas=3, available_replicas=3, latency_p99_s=0.9),
        "memory": Signals(desired_replicas=3, available_replicas=3, mem_ratio=0.9, mem_slope_per_min=0.05),
        "volume": Signals(desired_replicas=3, available_replicas=3, pvc_present=1, pvc_used_ratio=0.9),
    }
    for word, sig in cases.items():
        reasons = unmet(sig, Slo())
        assert reasons and any(word in r for r in reasons), (word, reasons)


def test_recovery_needs_consecutive_samples() -> None:
    bad = Signals(desired_replicas=3, available_replicas=3, error_ratio=0.5)
    t = RecoveryTracker(Slo(consecutive=3))
    seq = [HEALTHY, HEALTHY, bad, HEALTHY, HEALTHY]
    assert not any(t.observe(s, float(i)) for i, s in enumerate(seq))
    assert t.observe(HEALTHY, 5.0)
    assert t.recovered_at == 5.0
