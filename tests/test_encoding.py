"""The observation (encoder v2): a signal not observed reads as missing, never as a value."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from remediator.actions import ObjectRef
from remediator.encoding import ENCODER_VERSION, OBS_SIZE, encode, feature_names
from remediator.snapshot import SIGNAL_GROUPS, Snapshot
from remediator.workloads import WORKLOAD_KINDS
from tests.live.sim import incident


def _at(name: str) -> int:
    return feature_names().index(name)


def _healthy() -> Snapshot:
    return incident("no_fault", after_s=600.0).observe()


def test_layout() -> None:
    assert ENCODER_VERSION == 3 and len(feature_names()) == OBS_SIZE == len(set(feature_names()))
    assert encode(_healthy()).shape == (OBS_SIZE,)


@pytest.mark.parametrize("group", sorted(SIGNAL_GROUPS))
def test_an_unobserved_group_is_flagged_and_its_features_carry_no_value(group: str) -> None:
    snap = _healthy()
    assert not snap.unknown_groups
    blind = dataclasses.replace(snap, unknown_signals=SIGNAL_GROUPS[group])
    # The same snapshot with the group's signals at their "worst" and "best" values: neither may
    # be what "not observed" encodes.
    worst = dataclasses.replace(snap, signals=dataclasses.replace(snap.signals, **{
        n: 1.0 if n != "node_ready" else 0.0 for n in SIGNAL_GROUPS[group]}))
    a, b, c = encode(blind), encode(snap), encode(worst)
    assert a[_at(f"unobserved:{group}")] == 1.0 and b[_at(f"unobserved:{group}")] == 0.0
    assert not np.array_equal(a, b) and not np.array_equal(a, c)
    others = [i for i, n in enumerate(feature_names()) if n.startswith("unobserved:") and n != f"unobserved:{group}"]
    assert not a[others].any()


def test_no_request_metrics_is_not_zero_errors() -> None:
    """The SLO-unknown incident (a gRPC app without metrics) and the healthy one differ in the
    error and latency features' indicators, and their values are 0, not the healthy defaults."""
    # bad_config_rollout raises only an SLO alert, which cannot fire without request metrics; the
    # throttled service raises CPUThrottlingHigh there, and its requests are as unseen.
    blind = incident("cpu_limit_low", sli="none").observe()
    seen = incident("bad_config_rollout").observe()
    a, b = encode(blind), encode(seen)
    assert a[_at("unobserved:requests")] == 1.0 and a[_at("unobserved:latency")] == 1.0
    assert a[_at("error_ratio")] == 0.0 and b[_at("error_ratio")] > 0.0
    assert a[_at("traffic/normal")] == 0.0 and b[_at("traffic/normal")] > 0.0  # healthy default would be 0.25


@pytest.mark.parametrize("kind", [*WORKLOAD_KINDS, "ReplicationController"])
def test_the_workload_kind_is_one_hot(kind: str) -> None:
    snap = _healthy()
    assert snap.workload is not None
    obs = encode(dataclasses.replace(snap, workload=ObjectRef(kind, snap.workload.namespace, snap.workload.name)))
    kinds = [i for i, n in enumerate(feature_names()) if n.startswith("kind:")]
    hot = f"kind:{kind}" if kind in WORKLOAD_KINDS else "kind:other"
    assert obs[kinds].sum() == 1.0 and obs[_at(hot)] == 1.0


def test_keeping_data_is_seen() -> None:
    snap = _healthy()
    assert encode(snap)[_at("keeps_data")] == 0.0
    assert encode(dataclasses.replace(snap, keeps_data=True))[_at("keeps_data")] == 1.0
