"""Signal groups: which sources an observation lacks, read off `Snapshot.unknown_signals`."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from remediator.snapshot import SIGNAL_GROUPS, Signals, build_snapshot
from tests.live.sim import incident, observed_series


def test_every_group_names_signals() -> None:
    names = set(Signals.names())
    for group, members in SIGNAL_GROUPS.items():
        assert members and members <= names, group


# (fault, series dropped, the group that goes unknown); dropping a request metric drops the
# dependencies' too (one selector reads both), and the pre-alert baseline with it.
DROPS = [
    ("memory_leak", ("kube_deployment_status_replicas_available", "kube_pod_status_ready"), "kube_state"),
    ("memory_leak", ("container_memory_working_set_bytes",), "memory"),
    ("cpu_limit_low", ("container_cpu_cfs_periods_total", "container_cpu_usage_seconds_total"), "cpu"),
    ("memory_leak", ("kube_node_status_condition",), "node"),
    ("traffic_spike", ("kube_horizontalpodautoscaler_status_current_replicas",), "hpa"),
    ("volume_filling", ("kubelet_volume_stats_used_bytes",), "volume"),
    ("memory_leak", ("http_requests_total",), "requests", {"request_baseline", "dependency_slis"}),
    ("memory_leak", ("http_request_duration_seconds_bucket",), "latency", {"dependency_slis"}),
]


@pytest.mark.parametrize("case", DROPS, ids=lambda c: f"{c[0]}-{c[2]}")
def test_a_source_not_scraped_is_an_unknown_group_not_a_value(case: tuple[Any, ...]) -> None:
    fault, dropped, group, *also = case
    related: set[str] = also[0] if also else set()
    inc = incident(fault)
    full = inc.observe()
    assert group not in full.unknown_groups
    series = [s for s in observed_series(inc) if s.name not in dropped]
    snap = build_snapshot(inc.alert, series, inc.cluster.objects(), now=inc.now)
    assert group in snap.unknown_groups
    assert snap.unknown_groups - full.unknown_groups == {group} | related
    for name in SIGNAL_GROUPS[group] & snap.unknown_signals:
        default = next(f.default for f in dataclasses.fields(Signals) if f.name == name)
        assert getattr(snap.signals, name) == default  # the neutral default, flagged: not a measurement
