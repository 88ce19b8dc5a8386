"""Self-tests of tests/support/prom.py against the real binaries."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
from prometheus_api_client import PrometheusConnect
from urllib3.util.retry import Retry

from tests.support import prom
from tests.support.prom import Series, alert_rule, render_openmetrics, start_alertmanager, start_prometheus

from .conftest import requires_prometheus

pytestmark = requires_prometheus


def test_render_openmetrics_groups_families_and_ends_with_eof() -> None:
    text = render_openmetrics(
        [
            Series("a_total", {"pod": 'we"b'}, [(20.0, 2.0), (10.0, 1.0)]),
            Series("b", {}, [(10.0, float("nan"))]),
            Series("a_total", {"pod": "db"}, [(10.0, 5.0)]),
        ]
    )
    assert text.splitlines() == [
        'a_total{pod="we\\"b"} 1.0 10.000',
        'a_total{pod="we\\"b"} 2.0 20.000',
        'a_total{pod="db"} 5.0 10.000',
        "b NaN 10.000",
        "# EOF",
    ]


def test_backfill_then_query_range_roundtrip(tmp_path: Path) -> None:
    # One hour of 15s samples ending 10 minutes ago: older than the 5m lookback.
    end = float(int(time.time()) - 600)
    start = end - 3600
    steps = [start + 15 * i for i in range(241)]
    om = tmp_path / "incident.om"
    om.write_text(
        render_openmetrics(
            [
                Series(
                    "kube_deployment_status_replicas_available",
                    {"namespace": "shop", "deployment": "web"},
                    [(t, 3.0 if t < start + 1800 else 1.0) for t in steps],
                ),
                Series(
                    "http_requests_total",
                    {"namespace": "shop", "code": "500"},
                    [(t, 2.0 * i) for i, t in enumerate(steps)],
                ),
            ]
        )
    )
    with start_prometheus(tmp_path / "prom", backfill=[om]) as server:
        got = server.query_range('kube_deployment_status_replicas_available{deployment="web"}', start, end, 15)
        assert len(got) == 1
        values = got[0]["values"]
        assert len(values) == 241
        assert float(values[0][0]) == start and values[0][1] == "3"
        assert values[-1][1] == "1"
        # rate over the backfilled counter: 2 per 15s
        rate = server.query_range("rate(http_requests_total[1m])", start + 120, end, 60)
        assert all(abs(float(v) - 2 / 15) < 1e-9 for _, v in rate[0]["values"])
        # instant query: nothing "now" (lookback 5m), the value at a time inside the data
        assert server.query("kube_deployment_status_replicas_available") == []
        assert server.query("kube_deployment_status_replicas_available", at=end)[0]["value"][1] == "1"
    assert server.process.poll() is not None


def test_backfill_rejects_openmetrics_without_eof(tmp_path: Path) -> None:
    om = tmp_path / "bad.om"
    om.write_text("up 1 1700000000\n")
    with pytest.raises(RuntimeError, match="promtool backfill failed"):
        prom.backfill_openmetrics(om, tmp_path / "data")


def test_rule_fires_through_alertmanager_into_webhook(tmp_path: Path, webhook: prom.WebhookRecorder) -> None:
    rules = prom.write_rule_file(
        tmp_path / "rules.yml",
        [
            alert_rule(
                "KubePodCrashLooping",
                "vector(1)",
                labels={"severity": "warning", "namespace": "shop", "pod": "web-1"},
                annotations={"summary": "crash looping"},
            )
        ],
    )
    t0 = time.monotonic()
    with (
        start_alertmanager(tmp_path / "am", f"{webhook.url}/alerts", bearer_token="s3cret") as am,
        start_prometheus(tmp_path / "prom", rule_files=[rules], alertmanager_url=am.url) as server,
    ):
        [req] = webhook.wait_for(1, timeout=30)
        elapsed = req.at - t0
        payload = req.json()
        assert req.path == "/alerts"
        assert req.headers["Authorization"] == "Bearer s3cret"
        assert payload["version"] == "4"
        assert payload["status"] == "firing"
        assert payload["receiver"] == "webhook"
        assert payload["groupLabels"] == {"alertname": "KubePodCrashLooping"}
        [alert] = payload["alerts"]
        assert alert["status"] == "firing"
        assert alert["labels"] == {
            "alertname": "KubePodCrashLooping",
            "severity": "warning",
            "namespace": "shop",
            "pod": "web-1",
        }
        assert alert["annotations"] == {"summary": "crash looping"}
        assert alert["fingerprint"] and alert["startsAt"] and alert["generatorURL"].startswith(server.url)
        assert [a["labels"]["alertname"] for a in server.alerts()] == ["KubePodCrashLooping"]
    assert elapsed < 20, elapsed


def test_alertmanager_direct_post_and_resolved(tmp_path: Path, webhook: prom.WebhookRecorder) -> None:
    now = time.time()

    def iso(t: float) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))

    alert = {"labels": {"alertname": "KubeHpaMaxedOut", "namespace": "shop"}, "startsAt": iso(now - 60)}
    with start_alertmanager(tmp_path / "am", webhook.url) as am:
        am.post_alerts([alert])
        first = webhook.wait_for(1)[0].json()
        assert first["status"] == "firing"
        assert am.alerts()[0]["labels"]["alertname"] == "KubeHpaMaxedOut"
        am.post_alerts([{**alert, "endsAt": iso(now - 1)}])
        resolved = webhook.wait_for(2)[1].json()
        assert resolved["status"] == "resolved"
        assert resolved["alerts"][0]["endsAt"].startswith(iso(now - 1)[:16])


def test_prometheus_api_client_reads_backfill_and_fails_fast_when_down(tmp_path: Path) -> None:
    end = float(int(time.time()) - 120)
    om = tmp_path / "m.om"
    om.write_text(render_openmetrics([Series("up", {"job": "web"}, [(end - 60 * i, 1.0) for i in range(10)])]))
    server = start_prometheus(tmp_path / "prom", backfill=[om])
    with server:
        pc = PrometheusConnect(server.url, disable_ssl=True)
        assert pc.check_prometheus_connection()
        result = pc.custom_query_range(
            'up{job="web"}',
            start_time=datetime.fromtimestamp(end - 540, tz=UTC),
            end_time=datetime.fromtimestamp(end, tz=UTC),
            step="60",
        )
        assert [float(v) for _, v in result[0]["values"]] == [1.0] * 10
    # Prometheus down: without retry=Retry(0) the client retries 3 times with backoff (about 6 s)
    down = PrometheusConnect(server.url, retry=Retry(total=0), timeout=2)
    started = time.monotonic()
    with pytest.raises(requests.exceptions.ConnectionError):
        down.custom_query("up")
    assert time.monotonic() - started < 2
