"""The fixed-size observation of a Snapshot: the other half of the sim/real seam.

The vector describes only the alerted workload, its node, its direct dependencies and
the history of this incident, so its size and meaning do not depend on how many services
a cluster runs or what they are called: a policy trained on one application runs on another.
Bump ENCODER_VERSION whenever the layout changes; models record it and refuse a mismatch.

A signal that was not observed (`Snapshot.unknown_signals`: no request metric in the SLI profile,
no kube-state-metrics or cAdvisor series, ...) is *missing*, not healthy: its features are 0 and
its group's indicator (`SIGNAL_GROUPS`) is 1, so the policy never reads "no data" as "no errors".
Version 2 added those indicators, the workload's kind and whether it keeps data. Version 3 added
what changed around the workload (`ADDED_FEATURES[3]`): since when errors rose, its configs and
Service against their last-known-good versions, Pending pods beside cordoned nodes. A policy of an
older version is widened into the new layout by `widen_index` (`remediator train --init`).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from remediator.actions import ACTION_INDEX, ACTION_KINDS
from remediator.snapshot import SIGNAL_GROUPS, Signals, Snapshot
from remediator.workloads import WORKLOAD_KINDS

ENCODER_VERSION = 3

# Alerts the encoder knows by name; anything else is "other" and is read from signals alone.
KNOWN_ALERTS: tuple[str, ...] = (
    "KubePodCrashLooping", "KubePodNotReady", "KubeDeploymentReplicasMismatch",
    "KubeDeploymentRolloutStuck", "KubeContainerWaiting", "KubeHpaMaxedOut",
    "CPUThrottlingHigh", "KubeNodeNotReady", "KubePersistentVolumeFillingUp",
    "KubeMemoryOvercommit", "ServiceErrorBudgetBurn", "ServiceLatencyHigh",
)

# Seconds after which "time since" features saturate: the default incident horizon.
HORIZON_S = 1800.0

_GROUPS: tuple[str, ...] = tuple(SIGNAL_GROUPS)
# After the signals: one "not observed" indicator per signal group, the workload's kind (one-hot,
# the last entry "other or unknown"), and whether it keeps data.
_CONTEXT = len(_GROUPS) + len(WORKLOAD_KINDS) + 1 + 1
# The signal features, in order (see `encode`).
_SIGNAL_FEATURES: tuple[str, ...] = (
    "desired/baseline", "scaled_to_zero", "available/desired", "ready/pods", "restarts", "oom", "error_exit",
    "crashloop", "mem_ratio", "mem_slope", "cpu_ratio", "throttle", "request_rate", "traffic/normal",
    "error_ratio", "error/slo", "latency/slo", "hpa", "hpa_ratio", "hpa_at_max", "node_ready", "pvc", "pvc_used",
    "pvc_filling", "deps", "dep_errors", "dep_available", "dep_latency/slo", "recent_rollout",
    "has_previous_revision", "pdb_at_min", "protected",
    # Version 3: what changed, and when against the errors (a config the SLO held with for minutes
    # after its edit is a bystander; one the errors began with is the suspect).
    "errors_since", "config_changed", "config_held", "config_revertible", "secret_edited",
    "service_changed", "service_revertible", "service_no_endpoints", "pending_pods", "cordoned_nodes")
# The `Signals` fields a feature is computed from, where one can be unobserved: the feature is
# then 0, and its group's indicator says why.
_NEEDS: dict[str, frozenset[str]] = {
    "available/desired": frozenset({"available_replicas"}), "ready/pods": frozenset({"ready_pods"}),
    "mem_ratio": frozenset({"mem_ratio"}), "mem_slope": frozenset({"mem_slope_per_min"}),
    "cpu_ratio": frozenset({"cpu_ratio"}), "throttle": frozenset({"throttle_ratio"}),
    "request_rate": frozenset({"request_rate"}), "traffic/normal": frozenset({"request_rate", "request_rate_baseline"}),
    "error_ratio": frozenset({"error_ratio"}), "error/slo": frozenset({"error_ratio"}),
    "latency/slo": frozenset({"latency_p99_s"}), "hpa_ratio": frozenset({"hpa_current", "hpa_max"}),
    "hpa_at_max": frozenset({"hpa_current", "hpa_max"}), "node_ready": frozenset({"node_ready"}),
    "pvc_used": frozenset({"pvc_used_ratio"}), "pvc_filling": frozenset({"pvc_minutes_to_full"}),
    "dep_errors": frozenset({"dep_error_ratio"}), "dep_latency/slo": frozenset({"dep_latency_p99_s"}),
    "errors_since": frozenset({"error_ratio"}), "config_held": frozenset({"error_ratio"}),
}
_MASKED: tuple[tuple[int, frozenset[str]], ...] = tuple((_SIGNAL_FEATURES.index(f), n) for f, n in _NEEDS.items())
OBS_SIZE = len(KNOWN_ALERTS) + 1 + len(_SIGNAL_FEATURES) + _CONTEXT + 2 * len(ACTION_KINDS) + 2


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


def _recency(age_s: float, scale: float = 600.0) -> float:
    """1 for a change just now, falling towards 0 with age; 0 for never (an infinite age)."""
    return 0.0 if math.isinf(age_s) or math.isnan(age_s) else 1.0 - _squash(max(age_s, 0.0), scale)


def _held_s(s: Signals) -> float:
    """How long the SLO held after the last config edit: its age minus how long errors have been up
    (0 when the errors began with it, or when nothing is erroring or nothing was edited)."""
    if s.errors_since_s <= 0 or math.isinf(s.config_changed_age_s):
        return 0.0
    return max(s.config_changed_age_s - s.errors_since_s, 0.0)


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
        _squash(s.errors_since_s, 300.0),
        _recency(s.config_changed_age_s),
        _squash(_held_s(s), 120.0),
        _clip(s.config_revertible),
        _clip(s.config_secret_edited),
        _recency(s.service_changed_age_s),
        _clip(s.service_revertible),
        1.0 if s.service_ready_endpoints < 1 else 0.0,
        _squash(s.pending_pods, 1.0),
        1.0 if s.cordoned_ready_nodes > 0 else 0.0,
    )
    start = len(KNOWN_ALERTS) + 1
    out[start:start + len(_SIGNAL_FEATURES)] = feats
    unknown = snapshot.unknown_signals
    for i, needs in _MASKED:
        if needs & unknown:
            out[start + i] = 0.0
    ctx = start + len(_SIGNAL_FEATURES)
    groups = snapshot.unknown_groups
    for j, group in enumerate(_GROUPS):
        out[ctx + j] = 1.0 if group in groups else 0.0
    kinds = ctx + len(_GROUPS)
    kind = snapshot.workload_kind
    out[kinds + (WORKLOAD_KINDS.index(kind) if kind in WORKLOAD_KINDS else len(WORKLOAD_KINDS))] = 1.0
    out[kinds + len(WORKLOAD_KINDS) + 1] = 1.0 if snapshot.keeps_data else 0.0
    hist = ctx + _CONTEXT
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
    sig = _SIGNAL_FEATURES
    context = (tuple(f"unobserved:{g}" for g in _GROUPS) + tuple(f"kind:{k}" for k in WORKLOAD_KINDS)
               + ("kind:other", "keeps_data"))
    return (tuple(f"alert:{a}" for a in KNOWN_ALERTS) + ("alert:other",) + sig + context
            + tuple(f"tried:{k.value}" for k in ACTION_KINDS)
            + tuple(f"denied:{k.value}" for k in ACTION_KINDS) + ("since_alert", "actions"))


# The features each version added; an older layout is the current one without what came later.
ADDED_FEATURES: dict[int, tuple[str, ...]] = {
    3: _SIGNAL_FEATURES[_SIGNAL_FEATURES.index("errors_since"):],
}


def widen_index(version: int) -> list[int]:
    """Where each feature of encoder `version`'s layout sits in this version's: a policy trained on
    it is widened by giving the new features zero weight (it then computes what it did, until
    training teaches it to read them). Raises ValueError for a version this code cannot widen."""
    if not 2 <= version <= ENCODER_VERSION:
        raise ValueError(f"encoder version {version} cannot be widened to {ENCODER_VERSION}")
    later = {f for v, added in ADDED_FEATURES.items() if v > version for f in added}
    names = feature_names()
    return [i for i, n in enumerate(names) if n not in later]
