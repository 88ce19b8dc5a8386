"""SLI profiles: where a workload's request rate, errors and latency come from (docs/slis.md).

Applications, meshes and tracers export the same three SLIs under different names, labels
and units. A profile says, for one such source, which counter counts finished requests,
which histogram times them (and in what unit its `le` bounds are), which label names the
workload and its namespace, which fixed labels select the server side, and which label
values make a request an error. `build_snapshot` reads the series through the profile; the
live observer derives its PromQL selectors from it. Nothing else knows metric names of SLIs.

    >>> PROFILES["istio"].is_error({"response_code": "200", "grpc_response_status": "14"})
    True
    >>> PROFILES["istio"].selector("requests")
    'istio_requests_total{reporter="destination", destination_workload_namespace="$namespace", \
destination_workload=~"$services"}'
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["DEFAULT_PROFILE", "PROFILES", "SLI_SIGNALS", "ErrorRule", "SliProfile", "UNITS"]

# Seconds per unit of a histogram's `le` bounds.
UNITS: Mapping[str, float] = {"s": 1.0, "ms": 0.001, "us": 1e-6}
# The signals that make up the SLO (remediator.verify): when either is unknown, so is the SLO.
SLI_SIGNALS: tuple[str, ...] = ("error_ratio", "latency_p99_s")
# gRPC status codes that are the server's fault (client mistakes such as NotFound or
# InvalidArgument are not): Unknown, DeadlineExceeded, Unimplemented, Internal, Unavailable, DataLoss.
GRPC_SERVER_ERRORS_NUMERIC = "2|4|12|13|14|15"
GRPC_SERVER_ERRORS_NAMED = "Unknown|DeadlineExceeded|Unimplemented|Internal|Unavailable|DataLoss"

_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ErrorRule(_Model):
    """A request is an error when `label`'s value matches `pattern` (a whole-value regex, as PromQL `=~`)."""

    label: str
    pattern: str

    @field_validator("label")
    @classmethod
    def _label_name(cls, value: str) -> str:
        if not _LABEL.match(value):
            raise ValueError(f"{value!r} is not a Prometheus label name")
        return value

    @field_validator("pattern")
    @classmethod
    def _regex(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as e:
            raise ValueError(f"{value!r} is not a regular expression: {e}") from None
        return value


class SliProfile(_Model):
    """One source of request SLIs. See docs/slis.md for each shipped profile and its labels."""

    name: str
    requests: str = Field(description="counter of finished requests (all outcomes)")
    duration: str = Field(default="", description="the duration histogram's _bucket counter; '' if none")
    duration_unit: Literal["s", "ms", "us"] = "s"
    workload_label: str = Field(description="the label whose value is the workload's (or its Service's) name")
    namespace_label: str = Field(default="namespace", description="its namespace's label; '' to not filter")
    match: dict[str, str] = Field(default_factory=dict, description="fixed label values: the server side")
    errors: tuple[ErrorRule, ...] = Field(description="any rule matching makes the request an error")

    @field_validator("workload_label", "namespace_label")
    @classmethod
    def _label_names(cls, value: str) -> str:
        if value and not _LABEL.match(value):
            raise ValueError(f"{value!r} is not a Prometheus label name")
        return value

    @field_validator("match")
    @classmethod
    def _match_labels(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [k for k in value if not _LABEL.match(k)]
        if bad:
            raise ValueError(f"{', '.join(map(repr, bad))} not Prometheus label names")
        return value

    @property
    def unit_s(self) -> float:
        """Seconds per unit of the histogram's `le` (0.001 for a *_milliseconds histogram)."""
        return UNITS[self.duration_unit]

    @property
    def metrics(self) -> tuple[str, ...]:
        return (self.requests, self.duration) if self.duration else (self.requests,)

    def selector(self, which: Literal["requests", "duration"]) -> str:
        """The PromQL selector for the observer, with the `$namespace` and `$services` placeholders."""
        metric = self.requests if which == "requests" else self.duration
        matchers = [f'{k}="{_quoted(v)}"' for k, v in self.match.items()]
        if self.namespace_label:
            matchers.append(f'{self.namespace_label}="$namespace"')
        matchers.append(f'{self.workload_label}=~"$services"')
        return f"{metric}{{{', '.join(matchers)}}}"

    def selects(self, labels: Mapping[str, str]) -> bool:
        """Whether a series of the profile's metrics is server-side traffic (its fixed labels hold)."""
        return all(labels.get(k) == v for k, v in self.match.items())

    def key(self, labels: Mapping[str, str], namespace: str) -> tuple[str, str]:
        """(namespace, workload) a series is about; `namespace` when the profile has no namespace label."""
        ns = labels.get(self.namespace_label, "") if self.namespace_label else namespace
        return ns, labels.get(self.workload_label, "")

    def is_error(self, labels: Mapping[str, str]) -> bool:
        return any(_compiled(r.pattern).fullmatch(labels.get(r.label, "")) is not None for r in self.errors)


@functools.lru_cache(maxsize=64)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _quoted(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _profiles(*profiles: SliProfile) -> dict[str, SliProfile]:
    return {p.name: p for p in profiles}


PROFILES: Mapping[str, SliProfile] = _profiles(
    # The Prometheus client libraries' HTTP middleware, labelled by a ServiceMonitor's `service`.
    SliProfile(name="http", requests="http_requests_total", duration="http_request_duration_seconds_bucket",
               workload_label="service", errors=(ErrorRule(label="code", pattern="5.."),)),
    # Istio's standard metrics as the server's sidecar reports them. gRPC rides on HTTP 200:
    # its status is `grpc_response_status`, so UNAVAILABLE (14) over a 200 is an error.
    SliProfile(name="istio", requests="istio_requests_total", duration="istio_request_duration_milliseconds_bucket",
               duration_unit="ms", workload_label="destination_workload",
               namespace_label="destination_workload_namespace", match={"reporter": "destination"},
               errors=(ErrorRule(label="response_code", pattern="5.."),
                       ErrorRule(label="grpc_response_status", pattern=GRPC_SERVER_ERRORS_NUMERIC))),
    # Linkerd's proxy on the receiving side; it classifies each response itself (gRPC status included).
    SliProfile(name="linkerd", requests="response_total", duration="response_latency_ms_bucket",
               duration_unit="ms", workload_label="deployment", match={"direction": "inbound"},
               errors=(ErrorRule(label="classification", pattern="failure"),)),
    # go-grpc-prometheus / grpc-ecosystem server interceptors (the histogram is opt-in there).
    SliProfile(name="grpc", requests="grpc_server_handled_total", duration="grpc_server_handling_seconds_bucket",
               workload_label="service", errors=(ErrorRule(label="grpc_code", pattern=GRPC_SERVER_ERRORS_NAMED),)),
    # The OpenTelemetry Collector's spanmetrics connector (namespace traces.span.metrics), server spans.
    # Its duration unit is ms by default and s in newer releases: say which with `duration_unit`.
    SliProfile(name="otel-spanmetrics", requests="traces_span_metrics_calls_total",
               duration="traces_span_metrics_duration_milliseconds_bucket", duration_unit="ms",
               workload_label="service_name", namespace_label="", match={"span_kind": "SPAN_KIND_SERVER"},
               errors=(ErrorRule(label="status_code", pattern="STATUS_CODE_ERROR"),)),
)
DEFAULT_PROFILE: SliProfile = PROFILES["http"]
