"""Real Prometheus, promtool and Alertmanager for integration tests (DESIGN §11).

Everything runs as plain child processes on 127.0.0.1 with free ports and
temporary directories -- no systemd, no Docker. The binaries come from Debian's
``prometheus`` (``prometheus``, ``promtool``) and ``prometheus-alertmanager``
(``prometheus-alertmanager``) packages; ``scripts/ci/install-system.sh``
installs them.

Typical use from a pytest fixture::

    @pytest.fixture
    def prom(tmp_path):
        om = tmp_path / "incident.om"
        om.write_text(render_openmetrics([Series("up", {"job": "x"}, [(t0, 1.0)])]))
        with start_prometheus(tmp_path / "prom", backfill=[om]) as server:
            yield server

Pitfalls (each one cost time once):

* OpenMetrics input to ``promtool tsdb create-blocks-from openmetrics`` must end
  with ``# EOF``; timestamps are **seconds** (float), not milliseconds; all the
  samples of one metric family must be contiguous and, per series, in time order.
* Backfilled blocks older than the retention are deleted at start-up: always run
  with ``--storage.tsdb.retention.time=10y`` (done here).
* Backfill *before* starting Prometheus, into its ``--storage.tsdb.path``.
* An instant query only looks back ``--query.lookback-delta`` (5m): query
  backfilled data at a time inside the data, or with ``query_range``.
* Rules are evaluated every ``evaluation_interval`` (default here 1s; the
  Prometheus default is 1m, far too slow for tests); the first evaluation of a
  group is offset by up to one interval.
* Prometheus discovers even a static Alertmanager target only ~5s after start
  and re-sends firing alerts every ``--rules.alert.resend-delay`` (default 1m):
  an alert that fires at the first evaluation is dropped and only re-sent a
  minute later. Here the resend delay is 1s.
* Alertmanager's default ``group_wait`` is 30s; here 1s/1s so a webhook arrives
  within a few seconds. ``--cluster.listen-address=`` (empty) disables the
  gossip cluster port, which otherwise binds 0.0.0.0:9094.
"""

from __future__ import annotations

import json
import math
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "AlertmanagerServer",
    "PrometheusServer",
    "ReceivedRequest",
    "Series",
    "WebhookRecorder",
    "alert_rule",
    "backfill_openmetrics",
    "binaries_available",
    "free_port",
    "render_openmetrics",
    "start_alertmanager",
    "start_prometheus",
    "wait_http_ready",
    "write_rule_file",
]

LOOPBACK = "127.0.0.1"


# --------------------------------------------------------------------------- utilities


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port that was free a moment ago (bind to port 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _which(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise FileNotFoundError(f"{name} not found on PATH; run scripts/ci/install-system.sh")
    return path


def binaries_available() -> bool:
    """True when prometheus, promtool and prometheus-alertmanager are all on PATH."""
    return all(shutil.which(b) for b in ("prometheus", "promtool", "prometheus-alertmanager"))


def require_binaries() -> None:
    """Fail (never skip) a test that needs the real servers when they are not installed:
    `make test` installs them, so their absence is a broken setup, not a reason to pass."""
    if not binaries_available():
        import pytest

        pytest.fail("prometheus/promtool/prometheus-alertmanager missing: run scripts/ci/install-system.sh "
                    "(make test does)")


def wait_http_ready(
    url: str,
    *,
    timeout: float = 30.0,
    process: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
) -> None:
    """Poll ``url`` until it answers 200; fail early if ``process`` exits."""
    deadline = time.monotonic() + timeout
    last_error = ""
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(
                f"process exited with {process.returncode} before {url} was ready\n{_tail(log)}"
            )
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, OSError) as e:
            last_error = repr(e)
        time.sleep(0.05)
    raise TimeoutError(f"{url} not ready after {timeout}s ({last_error})\n{_tail(log)}")


def _tail(log: Path | None, lines: int = 30) -> str:
    if log is None or not log.exists():
        return ""
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def _stop_process(process: subprocess.Popen[bytes], timeout: float) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)


def _get_json(url: str, params: Mapping[str, Any] | None = None, timeout: float = 10.0) -> Any:
    if params:
        url = f"{url}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.loads(resp.read())


def _post_json(url: str, body: Any, timeout: float = 10.0) -> int:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return int(resp.status)


# --------------------------------------------------------------------------- OpenMetrics


@dataclass(frozen=True)
class Series:
    """One time series: metric name, labels and ``(unix_seconds, value)`` samples."""

    name: str
    labels: Mapping[str, str]
    samples: Sequence[tuple[float, float]]


def _escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _format_value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def render_openmetrics(series: Iterable[Series]) -> str:
    """Render series as OpenMetrics text ready for ``promtool ... openmetrics``.

    Families are written without ``# TYPE`` (type *unknown*), so any name works,
    ``_total``/``_bucket`` included; samples of one name are grouped together,
    each series' samples sorted by time; the text ends with ``# EOF``.
    Timestamps are seconds (floats are fine, e.g. ``1700000000.5``).
    """
    by_name: dict[str, list[Series]] = {}
    for s in series:
        by_name.setdefault(s.name, []).append(s)
    lines: list[str] = []
    for name, group in by_name.items():
        for s in group:
            labels = ",".join(f'{k}="{_escape_label_value(str(v))}"' for k, v in sorted(s.labels.items()))
            selector = f"{name}{{{labels}}}" if labels else name
            for ts, value in sorted(s.samples, key=lambda p: p[0]):
                lines.append(f"{selector} {_format_value(value)} {ts:.3f}")
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


def backfill_openmetrics(
    openmetrics_file: Path | str, data_dir: Path | str, *, timeout: float = 300.0
) -> None:
    """``promtool tsdb create-blocks-from openmetrics FILE DATA_DIR`` (run before Prometheus starts)."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [
            _which("promtool"),
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            "--quiet",
            str(openmetrics_file),
            str(data_dir),
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"promtool backfill failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout}"
        )


# --------------------------------------------------------------------------- rules


def alert_rule(
    name: str,
    expr: str,
    *,
    for_: str = "0s",
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """One alerting rule as a dict (``for`` is a Python keyword, hence ``for_``)."""
    rule: dict[str, Any] = {"alert": name, "expr": expr, "for": for_}
    if labels:
        rule["labels"] = dict(labels)
    if annotations:
        rule["annotations"] = dict(annotations)
    return rule


def write_rule_file(
    path: Path | str, rules: Sequence[Mapping[str, Any]], *, group: str = "test", interval: str = "1s"
) -> Path:
    """Write a Prometheus rule file with one group; check it with ``promtool check rules``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"groups": [{"name": group, "interval": interval, "rules": list(rules)}]}))
    proc = subprocess.run(
        [_which("promtool"), "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise ValueError(f"invalid rule file {path}: {proc.stdout}{proc.stderr}")
    return path


# --------------------------------------------------------------------------- Prometheus


@dataclass
class PrometheusServer:
    """A running Prometheus child process. Stop it with ``stop()`` or use it as a context manager."""

    url: str
    port: int
    data_dir: Path
    config_file: Path
    log_file: Path
    process: subprocess.Popen[bytes] = field(repr=False)

    def stop(self, timeout: float = 10.0) -> None:
        _stop_process(self.process, timeout)

    def __enter__(self) -> PrometheusServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def api(self, path: str, **params: Any) -> Any:
        """GET ``/api/v1/<path>`` and return its ``data`` (raises on ``status != success``)."""
        body = _get_json(f"{self.url}/api/v1/{path}", params)
        if body.get("status") != "success":
            raise RuntimeError(f"prometheus {path}: {body}")
        return body["data"]

    def query(self, promql: str, at: float | None = None) -> list[dict[str, Any]]:
        """Instant query (mind the 5m lookback for old, backfilled data: pass ``at``)."""
        params: dict[str, Any] = {"query": promql}
        if at is not None:
            params["time"] = at
        return list(self.api("query", **params)["result"])

    def query_range(self, promql: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        """Range query; each result has ``metric`` and ``values`` = ``[[ts, "value"], ...]``."""
        return list(self.api("query_range", query=promql, start=start, end=end, step=step)["result"])

    def alerts(self) -> list[dict[str, Any]]:
        return list(self.api("alerts")["alerts"])


def start_prometheus(
    workdir: Path | str,
    *,
    backfill: Sequence[Path | str] = (),
    rule_files: Sequence[Path | str] = (),
    alertmanager_url: str | None = None,
    evaluation_interval: str = "1s",
    scrape_interval: str = "15s",
    scrape_configs: Sequence[Mapping[str, Any]] = (),
    resend_delay: str = "1s",
    extra_args: Sequence[str] = (),
    timeout: float = 30.0,
) -> PrometheusServer:
    """Start Prometheus on 127.0.0.1:<free port> with data and config under ``workdir``.

    ``backfill`` OpenMetrics files are imported with promtool first. ``rule_files``
    are loaded; ``alertmanager_url`` (e.g. ``http://127.0.0.1:9093``) receives the
    alerts. Retention is 10y so backfilled history is kept. Returns once
    ``/-/ready`` answers 200.

    ``resend_delay`` (``--rules.alert.resend-delay``, Prometheus default 1m) is 1s:
    the notifier only learns its Alertmanager ~5s after start (discovery
    throttle), and alerts that fired before that are otherwise re-sent a minute
    later.
    """
    workdir = Path(workdir)
    data_dir = workdir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    for f in backfill:
        backfill_openmetrics(f, data_dir)

    config: dict[str, Any] = {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": evaluation_interval},
        "rule_files": [str(Path(r).resolve()) for r in rule_files],
        "scrape_configs": [dict(c) for c in scrape_configs],
    }
    if alertmanager_url is not None:
        parsed = urllib.parse.urlparse(alertmanager_url)
        am: dict[str, Any] = {
            "scheme": parsed.scheme or "http",
            "static_configs": [{"targets": [parsed.netloc]}],
        }
        if parsed.path.strip("/"):
            am["path_prefix"] = parsed.path
        config["alerting"] = {"alertmanagers": [am]}
    config_file = workdir / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config))
    log_file = workdir / "prometheus.log"

    last_error: Exception | None = None
    for _attempt in range(3):  # a free port can be taken between probing and binding
        port = free_port()
        with open(log_file, "ab") as log:
            process = subprocess.Popen(
                [
                    _which("prometheus"),
                    f"--config.file={config_file}",
                    f"--storage.tsdb.path={data_dir}",
                    f"--web.listen-address={LOOPBACK}:{port}",
                    f"--web.external-url=http://{LOOPBACK}:{port}/",  # generatorURL, else the hostname
                    "--storage.tsdb.retention.time=10y",
                    f"--rules.alert.resend-delay={resend_delay}",
                    "--web.enable-lifecycle",
                    "--web.enable-admin-api",
                    *extra_args,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        url = f"http://{LOOPBACK}:{port}"
        try:
            wait_http_ready(f"{url}/-/ready", timeout=timeout, process=process, log=log_file)
        except (RuntimeError, TimeoutError) as e:
            _stop_process(process, 5)
            last_error = e
            if "address already in use" in _tail(log_file):
                continue
            raise
        return PrometheusServer(url, port, data_dir, config_file, log_file, process)
    raise RuntimeError(f"prometheus did not start: {last_error}")


# --------------------------------------------------------------------------- Alertmanager


@dataclass
class AlertmanagerServer:
    """A running Alertmanager child process."""

    url: str
    port: int
    config_file: Path
    storage_dir: Path
    log_file: Path
    process: subprocess.Popen[bytes] = field(repr=False)

    def stop(self, timeout: float = 10.0) -> None:
        _stop_process(self.process, timeout)

    def __enter__(self) -> AlertmanagerServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def alerts(self) -> list[dict[str, Any]]:
        """Alerts Alertmanager currently holds (``GET /api/v2/alerts``)."""
        return list(_get_json(f"{self.url}/api/v2/alerts"))

    def post_alerts(self, alerts: Sequence[Mapping[str, Any]]) -> None:
        """Push alerts directly (``POST /api/v2/alerts``), as Prometheus would.

        Each alert: ``{"labels": {...}, "annotations": {...}, "startsAt": RFC3339,
        "endsAt": RFC3339 (in the past = resolved), "generatorURL": ...}``.
        """
        status = _post_json(f"{self.url}/api/v2/alerts", list(alerts))
        if status != 200:
            raise RuntimeError(f"alertmanager rejected alerts: HTTP {status}")


def start_alertmanager(
    workdir: Path | str,
    webhook_url: str,
    *,
    bearer_token: str | None = None,
    group_by: Sequence[str] = ("alertname",),
    group_wait: str = "1s",
    group_interval: str = "1s",
    repeat_interval: str = "1h",
    resolve_timeout: str = "5m",
    send_resolved: bool = True,
    timeout: float = 30.0,
) -> AlertmanagerServer:
    """Start Alertmanager on 127.0.0.1:<free port> routing everything to ``webhook_url``.

    The webhook gets Alertmanager's v4 payload (``{"version": "4", "status",
    "alerts": [...], "groupKey", ...}``). ``bearer_token`` adds
    ``Authorization: Bearer <token>``. ``group_by=("...",)`` disables grouping.
    """
    workdir = Path(workdir)
    storage_dir = workdir / "data"
    storage_dir.mkdir(parents=True, exist_ok=True)
    webhook: dict[str, Any] = {"url": webhook_url, "send_resolved": send_resolved}
    if bearer_token is not None:
        webhook["http_config"] = {"authorization": {"type": "Bearer", "credentials": bearer_token}}
    config = {
        "global": {"resolve_timeout": resolve_timeout},
        "route": {
            "receiver": "webhook",
            "group_by": list(group_by),
            "group_wait": group_wait,
            "group_interval": group_interval,
            "repeat_interval": repeat_interval,
        },
        "receivers": [{"name": "webhook", "webhook_configs": [webhook]}],
    }
    config_file = workdir / "alertmanager.yml"
    config_file.write_text(yaml.safe_dump(config))
    log_file = workdir / "alertmanager.log"

    last_error: Exception | None = None
    for _attempt in range(3):
        port = free_port()
        with open(log_file, "ab") as log:
            process = subprocess.Popen(
                [
                    _which("prometheus-alertmanager"),
                    f"--config.file={config_file}",
                    f"--storage.path={storage_dir}",
                    f"--web.listen-address={LOOPBACK}:{port}",
                    f"--web.external-url=http://{LOOPBACK}:{port}/",  # externalURL in the payload
                    "--cluster.listen-address=",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        url = f"http://{LOOPBACK}:{port}"
        try:
            wait_http_ready(f"{url}/-/ready", timeout=timeout, process=process, log=log_file)
        except (RuntimeError, TimeoutError) as e:
            _stop_process(process, 5)
            last_error = e
            if "address already in use" in _tail(log_file):
                continue
            raise
        return AlertmanagerServer(url, port, config_file, storage_dir, log_file, process)
    raise RuntimeError(f"alertmanager did not start: {last_error}")


# --------------------------------------------------------------------------- webhook receiver


@dataclass(frozen=True)
class ReceivedRequest:
    """One request the :class:`WebhookRecorder` got."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes
    at: float  # time.monotonic()

    def json(self) -> Any:
        return json.loads(self.body)


class WebhookRecorder:
    """A tiny threaded HTTP server on 127.0.0.1 that records every POST/PUT and answers ``status``.

    ``with WebhookRecorder() as hook: ... hook.wait_for(1)`` -- ``hook.url`` is the
    base URL; every path is accepted.
    """

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.requests: list[ReceivedRequest] = []
        self._cond = threading.Condition()
        recorder = self

        class _Handler(BaseHTTPRequestHandler):
            def _record(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with recorder._cond:
                    recorder.requests.append(
                        ReceivedRequest(
                            self.command, self.path, dict(self.headers.items()), body, time.monotonic()
                        )
                    )
                    recorder._cond.notify_all()
                self.send_response(recorder.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_POST = _record  # noqa: N815
            do_PUT = _record  # noqa: N815

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self._server = ThreadingHTTPServer((LOOPBACK, 0), _Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self.url = f"http://{LOOPBACK}:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="webhook-recorder", daemon=True
        )

    def start(self) -> WebhookRecorder:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> WebhookRecorder:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_for(self, count: int = 1, timeout: float = 30.0) -> list[ReceivedRequest]:
        """Block until at least ``count`` requests arrived; return them all."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.requests) >= count, timeout=timeout):
                raise TimeoutError(f"got {len(self.requests)} of {count} webhook requests in {timeout}s")
            return list(self.requests)
