"""The one configuration file of the live agent (DESIGN §7), validated with every error's key path.

`run`, `propose`, `history` and `undo` read the same YAML file::

    kubernetes: {kubeconfig: ~/.kube/config}   # absent: in-cluster configuration
    prometheus: {url: http://prometheus:9090}
    mode: dry-run                              # dry-run | approve | auto
    store: /var/lib/remediator/ledger.db       # SQLite ledger
    listen: {host: 0.0.0.0, port: 8080}
    proposer: {kind: catalog}
    guards: {cooldown_s: 600, denied_namespaces: [kube-system]}

A mistake names the file, the line and the key path, e.g.
``remediator.yaml:7: guards.cooldown_s: Input should be greater than or equal to 0``.
Relative paths are read relative to the file. Secrets never need to be in the file:
the environment variables of `SECRET_ENV` override them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from remediator.guards import GuardPolicy

__all__ = ["SECRET_ENV", "ConfigError", "ConfigIssue", "LiveConfig", "load_config"]

# Environment variables that override secrets of the file (dotted key path -> variable).
SECRET_ENV: dict[str, str] = {
    "listen.bearer_token": "REMEDIATOR_WEBHOOK_TOKEN",
    "prometheus.bearer_token": "REMEDIATOR_PROMETHEUS_TOKEN",
    "slack.webhook_url": "REMEDIATOR_SLACK_WEBHOOK_URL",
}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KubernetesSettings(_Model):
    """Where the Kubernetes API is: a kubeconfig file, or the in-cluster service account."""

    kubeconfig: Path | None = None
    context: str | None = None
    timeout_s: float = Field(default=10.0, gt=0)


class PrometheusSettings(_Model):
    """Where the observer reads metrics, and how it treats a slow or silent Prometheus."""

    url: str
    timeout_s: float = Field(default=10.0, gt=0)
    retries: int = Field(default=2, ge=0, le=10)
    bearer_token: SecretStr | None = None
    # PromQL templates; absent: remediator/data/promql.yaml (kube-state-metrics, cAdvisor, http).
    queries: Path | None = None
    # Newest sample older than this: the data are stale and the agent does not act on them.
    max_staleness_s: float = Field(default=180.0, gt=0)

    @field_validator("url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} is not an http:// or https:// URL")
        return value.rstrip("/")


class ListenSettings(_Model):
    """The HTTP endpoint for Alertmanager webhooks, health and metrics."""

    host: str = "0.0.0.0"
    port: int = Field(default=8080, ge=0, le=65535)
    bearer_token: SecretStr | None = None
    max_body_bytes: int = Field(default=1 << 20, ge=1024)


class ProposerSettings(BaseModel):
    """`kind` picks the proposer; other keys are that proposer's settings (an LLM's provider, ...)."""

    model_config = ConfigDict(extra="allow", frozen=True)
    kind: str = "catalog"


class SlackSettings(_Model):
    webhook_url: SecretStr | None = None
    signing_secret_env: str = "SLACK_SIGNING_SECRET"
    approvers: list[str] = []
    approval_timeout_s: float = Field(default=900.0, gt=0)


class VerifySettings(_Model):
    """How the loop paces an incident (all seconds)."""

    interval_s: float = Field(default=15.0, gt=0)  # between two observations (verification)
    decision_s: float = Field(default=60.0, gt=0)  # after a decision (noop included), before the next one
    horizon_s: float = Field(default=1800.0, gt=0)  # from the alert; past it the incident fails
    retry_s: float = Field(default=30.0, gt=0)  # after a failed or stale observation


class ExecutorSettings(_Model):
    """Retries of Kubernetes API calls: 409 re-reads, 429/5xx back off exponentially."""

    max_attempts: int = Field(default=6, ge=1)
    backoff_base_s: float = Field(default=0.5, ge=0)
    backoff_max_s: float = Field(default=30.0, ge=0)
    drain_timeout_s: float = Field(default=300.0, gt=0)
    field_manager: str = "remediator"


class LiveConfig(_Model):
    kubernetes: KubernetesSettings = KubernetesSettings()
    prometheus: PrometheusSettings | None = None
    mode: Literal["dry-run", "approve", "auto"] = "dry-run"
    store: Path = Path("remediator.db")
    listen: ListenSettings = ListenSettings()
    proposer: ProposerSettings = ProposerSettings()
    # The SB3 policy of the rl ranker; absent: the shipped default.
    policy: Path | None = None
    # auto (the rl policy when it loads, else rules), rules, rl, llm, random.
    ranker: str = "auto"
    guards: GuardPolicy = GuardPolicy()
    slack: SlackSettings | None = None
    verify: VerifySettings = VerifySettings()
    executor: ExecutorSettings = ExecutorSettings()

    @property
    def dry_run(self) -> bool:
        """Dry-run mode or the guards' global switch: the executor only does server-side dry runs."""
        return self.mode == "dry-run" or self.guards.dry_run

    def policy_for_guards(self) -> GuardPolicy:
        """The guard policy with the global dry-run switch reflecting the mode."""
        return self.guards.model_copy(update={"dry_run": self.dry_run})


# ---------------------------------------------------------------------------- errors


@dataclass(frozen=True)
class ConfigIssue:
    file: str
    line: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigError(ValueError):
    """A configuration that cannot be used; `issues` holds one entry per problem."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


_Loc = tuple[str | int, ...]


def _line_map(node: yaml.Node, loc: _Loc, out: dict[_Loc, int]) -> None:
    out.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            name = str(key.value)
            out[loc + (name,)] = key.start_mark.line + 1
            _line_map(value, loc + (name,), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _line_map(item, loc + (i,), out)


def _line_of(loc: _Loc, lines: Mapping[_Loc, int]) -> int:
    for n in range(len(loc), -1, -1):
        if loc[:n] in lines:
            return lines[loc[:n]]
    return 0


def _dotted(loc: _Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _set(doc: dict[str, Any], dotted: str, value: str) -> None:
    *parents, leaf = dotted.split(".")
    node = doc
    for key in parents:
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child
    node[leaf] = value


def _resolve_paths(doc: dict[str, Any], base: Path) -> None:
    def fix(parent: Any, key: str) -> None:
        if isinstance(parent, dict) and isinstance(parent.get(key), str):
            path = Path(os.path.expanduser(parent[key]))
            parent[key] = str(path if path.is_absolute() else base / path)

    fix(doc, "store")
    fix(doc, "policy")
    fix(doc.get("kubernetes"), "kubeconfig")
    fix(doc.get("prometheus"), "queries")


def load_config(path: Path | str, env: Mapping[str, str] | None = None) -> LiveConfig:
    """Read and validate a configuration file; raises `ConfigError` naming every problem."""
    file = Path(path)
    env = os.environ if env is None else env
    try:
        text = file.read_text()
    except OSError as e:
        raise ConfigError([ConfigIssue(str(file), 0, "", f"cannot read the configuration: {e.strerror}")]) from None
    try:
        node = yaml.compose(text)
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 0
        raise ConfigError([ConfigIssue(str(file), line, "", f"not valid YAML: {e}")]) from None
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ConfigError([ConfigIssue(str(file), 1, "", "the configuration must be a mapping of keys "
                                                         "(kubernetes, prometheus, mode, store, ...)")])
    lines: dict[_Loc, int] = {}
    if node is not None:
        _line_map(node, (), lines)
    for dotted, var in SECRET_ENV.items():
        if env.get(var):
            _set(doc, dotted, env[var])
    _resolve_paths(doc, file.resolve().parent)
    try:
        return LiveConfig.model_validate(doc)
    except ValidationError as e:
        issues = [ConfigIssue(str(file), _line_of(tuple(err["loc"]), lines), _dotted(tuple(err["loc"])),
                              err["msg"]) for err in e.errors()]
        raise ConfigError(issues) from None


def default_config(env: Mapping[str, str] | None = None) -> LiveConfig:
    """The configuration without a file: offline (no Prometheus), secrets from the environment."""
    env = os.environ if env is None else env
    doc: dict[str, Any] = {}
    for dotted, var in SECRET_ENV.items():
        if env.get(var) and not dotted.startswith(("prometheus.", "slack.")):
            _set(doc, dotted, env[var])
    return LiveConfig.model_validate(doc)
