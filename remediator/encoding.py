"""The fixed-size observation of a Snapshot: the other half of the sim/real seam.

The vector describes only the alerted workload, its node, its direct dependencies and
the history of this incident, so its size and meaning do not depend on how many services
a cluster runs or what they are called: a policy trained on one application runs on another.
Bump ENCODER_VERSION whenever the layout changes; models record it and refuse a mismatch.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from remediator.actions import ACTION_INDEX, ACTION_KINDS
from remediator.snapshot import Snapshot

ENCODER_VERSION = 1

# Alerts the encoder knows by name; anything else is "other" and is read from signals alone.
KNOWN_ALERTS: tuple[str, ...] = (
    "KubePodCrashLooping", "KubePodNotReady", "KubeDeploymentReplicasMismatch",
    "KubeDeploymentRolloutStuck", "KubeContainerWaiting", "KubeHpaMaxedOut",
    "CPUThrottlingHigh", "KubeNodeNotReady", "KubePersistentVolumeFillingUp",
    "KubeMemoryOvercommit", "ServiceErrorBudgetBurn", "ServiceLatencyHigh",
)

# Seconds after which "time since" features saturate: the default incident horizon.
HORIZON_S = 1800.0

_SIGNALS = 32
OBS_SIZE = len(KNOWN_ALERTS) + 1 + _SIGNALS + 2 * len(ACTION_KINDS) + 2


def _clip(x: float, hi: float = 1.0) -> float:
    if math.isnan(x):
        return 0.0
    return min(max(x, 0.0), hi)


def _squash(x: float, scale: float) -> float:
    """Map [0, inf] onto [0, 1): x/(x+scale); infinity is 1."""
    if math.isnan(x) or x <= 0:
        return 0.0
    if math.isinf(x):
        return 1.0
    return x / (x + scale)


def encode(snapshot: Snapshot) -> npt.NDArray[np.float32]:
    """Observation vector in [0, 2] of length OBS_SIZE."""
    s, slo = snapshot.signals, snapshot.slo
    out = np.zeros(OBS_SIZE, dtype=np.float32)
    name = snapshot.alert.name
    out[KNOWN_ALERTS.index(name) if name in KNOWN_ALERTS else len(KNOWN_ALERTS)] = 1.0
    base = max(s.baseline_replicas, s.desired_replicas, 1.0)
    desired = max(s.desired_replicas, 1.0)
    feats = (
        _clip(s.desired_replicas / base),
        1.0 if s.desired_replicas <= 0 else 0.0,
        _clip(s.available_replicas / desired),
        _clip(s.ready_pods / max(s.pods, 1.0)),
        _squash(s.restarts_per_min, 1.0),
        _clip(s.oom_fraction),
        _clip(s.error_exit_fraction),
        _clip(s.crashloop_fraction),
        _clip(s.mem_ratio, 2.0),
        _clip(s.mem_slope_per_min * 10.0, 2.0),
        _clip(s.cpu_ratio, 2.0),
        _clip(s.throttle_ratio),
        _squash(s.request_rate, 50.0),
        _clip(s.request_rate / s.request_rate_baseline / 4.0) if s.request_rate_baseline > 0 else 0.25,
        _clip(s.error_ratio),
        _clip(s.error_ratio / slo.error_ratio / 10.0),
        _clip(s.latency_p99_s / slo.latency_p99_s / 4.0),
        s.hpa_present,
        _clip(s.hpa_current / s.hpa_max) if s.hpa_max > 0 else 0.0,
        1.0 if s.hpa_max > 0 and s.hpa_current >= s.hpa_max else 0.0,
        _clip(s.node_ready),
        s.pvc_present,
        _clip(s.pvc_used_ratio),
        1.0 - _squash(s.pvc_minutes_to_full, 60.0),
        _clip(s.deps / 3.0),
        _clip(s.dep_error_ratio),
        _clip(s.dep_available_ratio),
        _clip(s.dep_latency_p99_s / slo.latency_p99_s / 4.0),
        1.0 - _squash(s.rollout_age_s, 600.0),
        s.has_previous_revision,
        1.0 if s.pdb_disruptions_allowed <= 0 else 0.0,
        1.0 if snapshot.protected else 0.0,
    )
    start = len(KNOWN_ALERTS) + 1
    out[start:start + _SIGNALS] = feats
    hist = start + _SIGNALS
    n = len(ACTION_KINDS)
    for attempt in snapshot.history:
        i = ACTION_INDEX[attempt.kind]
        if attempt.executed:
            out[hist + i] = min(out[hist + i] + 0.5, 1.0)
        else:
            out[hist + n + i] = 1.0
    out[hist + 2 * n] = _clip(snapshot.since_alert_s / HORIZON_S)
    out[hist + 2 * n + 1] = _squash(float(sum(a.executed for a in snapshot.history)), 3.0)
    return out


def feature_names() -> tuple[str, ...]:
    """Names of the observation's entries, for plots and debugging."""
    sig = ("desired/baseline", "scaled_to_zero", "available/desired", "ready/pods", "restarts",
           "oom", "error_exit", "crashloop", "mem_ratio", "mem_slope", "cpu_ratio", "throttle",
           "request_rate", "traffic/normal", "error_ratio", "error/slo", "latency/slo", "hpa", "hpa_ratio",
           "hpa_at_max", "node_ready", "pvc", "pvc_used", "pvc_filling", "deps", "dep_errors",
           "dep_available", "dep_latency/slo", "recent_rollout", "has_previous_revision",
           "pdb_at_min", "protected")
    assert len(sig) == _SIGNALS
    return (tuple(f"alert:{a}" for a in KNOWN_ALERTS) + ("alert:other",) + sig
            + tuple(f"tried:{k.value}" for k in ACTION_KINDS)
            + tuple(f"denied:{k.value}" for k in ACTION_KINDS) + ("since_alert", "actions"))
