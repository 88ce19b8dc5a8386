"""The operator's `/metrics` through prometheus_client, counted from the ledger at scrape time.

Counting from the ledger (not in-process counters) keeps every series monotonic across
restarts and identical on every replica that shares the ledger, and needs no call sites in
the loop. The names are the ones the chart's PrometheusRule and docs/operator.md use
(tests/helm checks them with promtool):

| metric | type | from |
|---|---|---|
| `remediator_remediations_total{outcome}` | counter | closed incidents by status (recovered, failed, ...) |
| `remediator_recovery_seconds` | histogram | recovery time of recovered incidents |
| `remediator_approvals_pending` | gauge | incidents awaiting approval |
| `remediator_guard_denials_total` | counter | candidates a guard denied |
| `remediator_llm_fallbacks_total` | counter | decisions where the proposer fell back to the catalog |
| `remediator_observation_failures_total` | counter | observations that failed or were not usable |
| `remediator_approvals_total{state}` | counter | approval requests by state (pending, approved, denied, ...) |
| `remediator_approval_refusals_total{channel}` | counter | decisions refused: not on the channel's allow-list |
| `remediator_leader` | gauge | 1 on the replica holding the Lease |
| `remediator_mirror_errors_total` | counter | Remediation writes the API server refused |
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from remediator.incident import ACTIVE, ApprovalState, IncidentStatus
from remediator.live.approval import CHANNELS
from remediator.live.ledger import Ledger

__all__ = ["RECOVERY_BUCKETS", "LedgerCollector", "registry_text"]

log = logging.getLogger("remediator.operator")

RECOVERY_BUCKETS = (30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0)


class LedgerCollector(Collector):
    """Reads the ledger's counts on every scrape; `leading()` and `mirror_errors()` from the operator."""

    def __init__(self, ledger: Ledger, *, leading: Callable[[], bool] = lambda: True,
                 mirror_errors: Callable[[], int] = lambda: 0) -> None:
        self.ledger = ledger
        self.leading = leading
        self.mirror_errors = mirror_errors

    def collect(self) -> Iterator[Metric]:
        try:
            counts: dict[str, Any] = self.ledger.metric_counts()
        except Exception as e:  # noqa: BLE001 - a scrape must not fail because the ledger is busy
            log.warning("metrics: the ledger could not be read: %s", e)
            return
        outcomes = CounterMetricFamily("remediator_remediations", "closed remediations by outcome (incident status)",
                                       labels=["outcome"])
        for status in sorted(set(IncidentStatus) - ACTIVE):
            outcomes.add_metric([str(status)], float(counts["incidents"].get(str(status), 0)))
        yield outcomes
        values = sorted(counts["recovery_s"])
        buckets = [(_le(b), float(sum(v <= b for v in values))) for b in RECOVERY_BUCKETS]
        buckets.append(("+Inf", float(len(values))))
        yield HistogramMetricFamily("remediator_recovery_seconds", "seconds from the alert to recovery",
                                    buckets=buckets, sum_value=float(sum(values)))
        yield GaugeMetricFamily("remediator_approvals_pending", "incidents awaiting a human's approval",
                                value=float(counts["incidents"].get(str(IncidentStatus.AWAITING_APPROVAL), 0)))
        yield CounterMetricFamily("remediator_guard_denials", "candidates a guard denied",
                                  value=float(counts["guard_denials"]))
        yield CounterMetricFamily("remediator_llm_fallbacks", "decisions where the proposer fell back to the catalog",
                                  value=float(counts["llm_fallbacks"]))
        yield CounterMetricFamily("remediator_observation_failures", "observations that failed or were not usable",
                                  value=float(counts["observation_failures"]))
        requests = CounterMetricFamily("remediator_approvals", "approval requests by state", labels=["state"])
        for state in ApprovalState:
            requests.add_metric([str(state)], float(counts["approvals"].get(str(state), 0)))
        yield requests
        refused = CounterMetricFamily("remediator_approval_refusals",
                                      "decisions refused: the approver is not on the channel's allow-list",
                                      labels=["channel"])
        for channel in CHANNELS:
            refused.add_metric([channel], float(counts["approval_refusals"].get(channel, 0)))
        yield refused
        yield GaugeMetricFamily("remediator_leader", "1 on the replica that holds the leader Lease",
                                value=1.0 if self.leading() else 0.0)
        yield CounterMetricFamily("remediator_mirror_errors", "Remediation writes the API server refused",
                                  value=float(self.mirror_errors()))


def _le(bound: float) -> str:
    return f"{bound:g}" if bound != int(bound) else f"{bound:.1f}"


def registry_text(collector: Collector) -> str:
    """The collector's exposition (text format 0.0.4), on a registry of its own."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return generate_latest(registry).decode()
