"""The column map: how a per-pod CSV dataset becomes series under real metric names (docs/replay.md).

A YAML file, validated here with the file, line and key of every problem
(`nezha.yaml:14: columns[0].type: Input should be 'gauge' or 'counter'`). The shipped one,
`remediator/data/datasets/nezha.yaml`, reads the Nezha Online Boutique day; another dataset of
one CSV per pod (a time column, a pod column, numeric columns) needs only its own map.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from remediator import yamllines

__all__ = ["ColumnMap", "ColumnMapError", "load_column_map", "shipped_column_map"]

_METRIC = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")


class ColumnMapError(ValueError):
    """A column map that cannot be used; the message names file, line and key."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


TimeFormat = Literal["unix", "go", "iso"]


class PodFiles(_Model):
    files: str = Field(description="glob of the per-pod CSVs, relative to the dataset directory")
    time: str = Field(description="the time column")
    time_format: TimeFormat = Field(default="unix", description="unix seconds, Go's time.String() or ISO 8601")
    pod: str = Field(description="the column naming the pod")
    workload: str = Field(description="regex with a (?P<workload>...) group: the pod's Deployment")

    @field_validator("workload")
    @classmethod
    def _workload_group(cls, value: str) -> str:
        try:
            pattern = re.compile(value)
        except re.error as e:
            raise ValueError(f"not a regex: {e}") from None
        if "workload" not in pattern.groupindex:
            raise ValueError("needs a named group (?P<workload>...)")
        return value


class Column(_Model):
    column: str
    metric: str
    type: Literal["gauge", "counter"]
    scale: float = 1.0

    @field_validator("metric")
    @classmethod
    def _metric_name(cls, value: str) -> str:
        if not _METRIC.match(value):
            raise ValueError(f"{value!r} is not a Prometheus metric name")
        return value


class Limit(_Model):
    usage: str
    percent: str
    resource: Literal["cpu", "memory"]
    unit: str
    scale: float = 1.0


class Requests(_Model):
    rate: str = Field(description="requests per second")
    p99_s: str | None = Field(default=None, description="p99 latency in seconds")
    success_percent: str | None = Field(default=None, description="share of requests that succeeded, in %")


class ServiceFile(_Model):
    file: str
    time: str
    time_format: TimeFormat = "unix"
    service: str
    names: dict[str, str] = Field(description="the file's service name -> the workload's")
    success_percent: str | None = None


class Dependencies(_Model):
    file: str
    source: str
    target: str


class Faults(_Model):
    files: str
    format: Literal["nezha"]


class ColumnMap(_Model):
    name: str
    namespace: str
    pods: PodFiles
    columns: tuple[Column, ...] = ()
    limits: tuple[Limit, ...] = ()
    requests: Requests | None = None
    services: tuple[ServiceFile, ...] = ()
    dependencies: Dependencies | None = None
    faults: Faults
    missing: dict[str, str] = Field(default_factory=dict)


def shipped_column_map(name: str) -> Path:
    return Path(str(resources.files("remediator") / "data" / "datasets" / f"{name}.yaml"))


def load_column_map(path: Path | str) -> ColumnMap:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ColumnMapError(f"{path}: cannot read it: {e.strerror or e}") from None
    try:
        node = yaml.compose(text)
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ColumnMapError(f"{path}: invalid YAML: {e}") from None
    if node is None or not isinstance(data, dict):
        raise ColumnMapError(f"{path}: expected a column map (a mapping)")
    lines, duplicates = yamllines.key_lines(node)
    if duplicates:
        d = duplicates[0]
        raise ColumnMapError(str(yamllines.Issue(str(path), d.line, yamllines.dotted(d.loc),
                                                 f"duplicate key (first at line {d.first})")))
    try:
        return ColumnMap.model_validate(data)
    except ValidationError as e:
        issues = [yamllines.Issue(str(path), yamllines.line_of(tuple(err["loc"]), lines) or 1,
                                  yamllines.dotted(tuple(err["loc"])), err["msg"]) for err in e.errors()]
        raise ColumnMapError("\n".join(str(i) for i in issues)) from None
