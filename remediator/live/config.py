"""The one configuration file of the live agent (DESIGN §7), validated with every error's key path.

`run`, `propose`, `history` and `undo` read the same YAML file::

    kubernetes: {kubeconfig: ~/.kube/config}   # absent: in-cluster configuration
    prometheus: {url: http://prometheus:9090}
    mode: dry-run                              # dry-run | approve | auto
    store: /var/lib/remediator/ledger.db       # SQLite ledger
    listen: {host: 127.0.0.1, port: 8080}      # another address needs listen.bearer_token
    proposer: {kind: catalog}
    guards: {cooldown_s: 600, denied_namespaces: [kube-system]}

A mistake names the file, the line and the key path, e.g.
``remediator.yaml:7: guards.cooldown_s: Input should be greater than or equal to 0``.
A key given twice is a mistake too (YAML would silently keep the last one), and a YAML
syntax error names the key near it but never quotes the line: it may hold a token.
Problems found only when the agent uses the configuration (a store that is not SQLite,
a port in use, a kubeconfig the client cannot read) are reported the same way through
`LiveConfig.error(key_path, message)`, which finds the key's line in the file.
Relative paths are read relative to the file. Secrets never need to be in the file:
the environment variables of `SECRET_ENV` override them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from remediator import yamllines
from remediator.guards import GuardPolicy
from remediator.slis import PROFILES, ErrorRule, SliProfile

__all__ = ["SECRET_ENV", "ConfigError", "ConfigIssue", "LiveConfig", "load_config", "parse_yaml"]

# Environment variables that override secrets of the file (dotted key path -> variable).
SECRET_ENV: dict[str, str] = {
    "listen.bearer_token": "REMEDIATOR_WEBHOOK_TOKEN",
    "prometheus.bearer_token": "REMEDIATOR_PROMETHEUS_TOKEN",
    "slack.webhook_url": "REMEDIATOR_SLACK_WEBHOOK_URL",
    "approval.token": "REMEDIATOR_APPROVAL_TOKEN",
}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KubernetesSettings(_Model):
    """Where the Kubernetes API is: a kubeconfig file, or the in-cluster service account."""

    kubeconfig: Path | None = None
    context: str | None = None
    # The request timeout (`_request_timeout`) of every call the observer makes.
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


def is_loopback(host: str) -> bool:
    """Whether `host` only listens on this machine (`localhost`, 127.0.0.0/8, ::1); "" and 0.0.0.0 do not."""
    import ipaddress

    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # any other name may resolve to a reachable address


class ListenSettings(_Model):
    """The HTTP endpoint for Alertmanager webhooks, health and metrics.

    Loopback by default; any other address needs a bearer token, or anyone who can reach the
    port could open incidents (and, in `mode: auto`, make the agent act).
    """

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    bearer_token: SecretStr | None = Field(default=None, validate_default=True)
    max_body_bytes: int = Field(default=1 << 20, ge=1024)

    @field_validator("bearer_token")
    @classmethod
    def _token_off_loopback(cls, token: SecretStr | None, info: Any) -> SecretStr | None:
        host = info.data.get("host")
        if isinstance(host, str) and not is_loopback(host) and (token is None or not token.get_secret_value()):
            raise ValueError(f"listening on {host!r} (not loopback) needs a bearer token: set listen.bearer_token "
                             "or REMEDIATOR_WEBHOOK_TOKEN, or listen on 127.0.0.1")
        return token


class ProposerSettings(BaseModel):
    """`kind` picks the proposer; other keys are that proposer's settings (an LLM's provider, ...)."""

    model_config = ConfigDict(extra="allow", frozen=True)
    kind: str = "catalog"


class ApprovalSettings(_Model):
    """Who may approve outside Slack, how long a request waits, and the JSON webhook's token.

    `approvers` is the allow-list of the CLI (`remediator approve ID --as NAME`) and of the JSON
    webhook (`POST /approvals/ID`); empty: nobody may approve there. Slack clicks are checked
    against `slack.approvers` (Slack user IDs); a patch of the Remediation resource against
    Kubernetes RBAC. `token` authenticates the JSON webhook (a bearer token, or the key of an
    `X-Remediator-Signature: sha256=HMAC(body)`); absent: the webhook is off.
    """

    approvers: list[str] = []
    deadline_s: float = Field(default=900.0, gt=0)  # no answer by then means deny
    token: SecretStr | None = None



def _secret_from(path: Path | None, env_name: str, env: Mapping[str, str] | None) -> str | None:
    """A secret from a file (e.g. a mounted Secret), else from an environment variable; None when neither holds one."""
    if path is not None:
        try:
            text = Path(path).read_text().strip()
        except OSError:
            text = ""
        if text:
            return text
    value = (os.environ if env is None else env).get(env_name, "").strip()
    return value or None

class SlackSettings(_Model):
    """The Slack channel: an incoming webhook for the message, the app's signing secret for the clicks.

    The signing secret is read from the environment variable `signing_secret_env` (or the file
    `signing_secret_file`, e.g. a mounted Secret), never from this file.
    """

    webhook_url: SecretStr | None = None
    signing_secret_env: str = "SLACK_SIGNING_SECRET"
    signing_secret_file: Path | None = None
    approvers: list[str] = []  # Slack user IDs (U024BE7LH) whose clicks count
    timeout_s: float = Field(default=5.0, gt=0)  # of each POST to Slack
    # Where a click's response_url may point: the endpoint POSTs the updated message there, nowhere else.
    response_url_prefixes: list[str] = ["https://hooks.slack.com/"]

    def signing_secret(self, env: Mapping[str, str] | None = None) -> str | None:
        """The signing secret from the file or the environment; None when neither holds one."""
        return _secret_from(self.signing_secret_file, self.signing_secret_env, env)


class OperatorSettings(_Model):
    """`remediator run` as the operator (kopf, docs/operator.md): where its resources live, its leader Lease.

    `namespace` is the operator's own (the Lease's, and the Remediations of incidents without a
    namespace); absent: $POD_NAMESPACE (the chart sets it), else `default`. `namespaces` limits
    the watched namespaces (RBAC `scope: namespaced`); empty: cluster-wide. `identity` names this
    replica in the Lease; absent: $POD_NAME, else host name and process id.
    """

    enabled: bool = True
    namespace: str | None = None
    namespaces: list[str] = []
    identity: str | None = None
    lease_name: str = "remediator-leader"
    lease_s: float = Field(default=15.0, gt=0)
    renew_deadline_s: float = Field(default=10.0, gt=0)
    retry_s: float = Field(default=2.0, gt=0)
    mirror_s: float = Field(default=2.0, gt=0)  # between two passes of the Remediation mirror

    @model_validator(mode="after")
    def _renew_before_expiry(self) -> OperatorSettings:
        if not self.renew_deadline_s < self.lease_s:
            raise ValueError(f"renew_deadline_s ({self.renew_deadline_s:g}) must be shorter than lease_s "
                             f"({self.lease_s:g}), or two replicas could both act")
        return self


class VerifySettings(_Model):
    """How the loop paces an incident (all seconds)."""

    interval_s: float = Field(default=15.0, gt=0)  # between two observations (verification)
    decision_s: float = Field(default=60.0, gt=0)  # after a decision (noop included), before the next one
    horizon_s: float = Field(default=1800.0, gt=0)  # from the alert; past it the incident fails
    retry_s: float = Field(default=30.0, gt=0)  # after a failed or stale observation
    # an incident closed as recovered whose alert still fires this long after reopens
    reopen_after_s: float = Field(default=600.0, gt=0)


class KnownGoodSettings(_Model):
    """The healthy-time sweep (remediator/live/known_good.py): every `interval_s` the loop records
    the ConfigMaps and Services that watched workloads use, as their last-known-good versions,
    while their SLO holds and no incident is open for them (0: only at a verified recovery).

    The workloads are those of the ledger's past incidents and every Deployment, StatefulSet and
    DaemonSet of `namespaces`, at most `max_workloads` a sweep. A version written less than
    `settle_s` ago is not recorded yet: the kubelet takes up to a minute to bring a ConfigMap into
    the pods, the SLIs are rates over minutes, and an alert waits for its `for:`. Secrets are
    recorded by name only, unless secret reverts are on (`SecretSettings`): then with their digest
    and their values sealed."""

    interval_s: float = Field(default=300.0, ge=0)
    settle_s: float = Field(default=600.0, ge=0)
    namespaces: list[str] = []
    max_workloads: int = Field(default=50, ge=1)


class SecretSettings(_Model):
    """Reverting a Secret edited in place (opt-in; docs/live.md, remediator/live/sealing.py).

    Off (the default), the agent reads no Secret: it sees which Secrets a pod template names, and
    an edited one is escalated. With `revert: true` and a sealing key, it reads (`get`) the Secrets
    the watched workloads reference (the chart grants that only then), the healthy-time sweep keeps
    each one's digest and its values sealed with the key, and `revert_config` can write them back.
    The key is read from the environment variable `key_env` (or the file `key_file`, e.g. a
    mounted Secret), never from this file; without one, reverts stay off and the agent says why.
    """

    revert: bool = False
    key_env: str = "REMEDIATOR_SECRET_KEY"
    key_file: Path | None = None

    def key(self, env: Mapping[str, str] | None = None) -> str | None:
        """The sealing secret from the file or the environment; None when neither holds one."""
        return _secret_from(self.key_file, self.key_env, env)

    def off_reason(self, env: Mapping[str, str] | None = None) -> str:
        """Why Secret reverts are off ("" when they are on: switched on, with a usable key)."""
        if not self.revert:
            return "secrets.revert is off"
        key = self.key(env)
        if key is None:
            where = f"the file {self.key_file} or " if self.key_file is not None else ""
            return f"secrets.revert is on but no sealing key was found in {where}${self.key_env}"
        if len(key) < 32:
            return f"secrets.revert is on but the sealing key has {len(key)} characters (at least 32)"
        return ""


class ExecutorSettings(_Model):
    """Retries of Kubernetes API calls: 409 re-reads, 429/5xx back off exponentially."""

    max_attempts: int = Field(default=6, ge=1)
    backoff_base_s: float = Field(default=0.5, ge=0)
    backoff_max_s: float = Field(default=30.0, ge=0)
    drain_timeout_s: float = Field(default=300.0, gt=0)
    field_manager: str = "remediator"


class SliSettings(_Model):
    """Where the request SLIs come from (docs/slis.md): a shipped profile, and what differs here.

        sli: {profile: istio}
        sli: {profile: otel-spanmetrics, duration: traces_span_metrics_duration_seconds_bucket, duration_unit: s}
        sli: {profile: http, workload_label: app, errors: [{label: status, pattern: "5.."}]}
    """

    profile: str = "http"
    requests: str | None = None
    duration: str | None = None  # "": the source has no duration histogram
    duration_unit: Literal["s", "ms", "us"] | None = None
    workload_label: str | None = None
    namespace_label: str | None = None  # "": do not filter by namespace
    match: dict[str, str] | None = None
    errors: list[ErrorRule] | None = None

    @field_validator("profile")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in PROFILES:
            raise ValueError(f"{value!r} is not an SLI profile (one of {', '.join(PROFILES)})")
        return value

    @model_validator(mode="after")
    def _valid_profile(self) -> SliSettings:
        self.resolve()  # a bad label name or regex among the overrides is an error here, not at the first alert
        return self

    def resolve(self) -> SliProfile:
        """The profile with this file's overrides."""
        base = PROFILES[self.profile].model_dump()
        given = {k: v for k, v in self.model_dump(exclude={"profile"}).items() if v is not None}
        return SliProfile.model_validate({**base, **given})


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
    approval: ApprovalSettings = ApprovalSettings()
    slack: SlackSettings | None = None
    verify: VerifySettings = VerifySettings()
    known_good: KnownGoodSettings = KnownGoodSettings()
    secrets: SecretSettings = SecretSettings()
    executor: ExecutorSettings = ExecutorSettings()
    sli: SliSettings = SliSettings()
    operator: OperatorSettings = OperatorSettings()
    # Where the configuration came from, so that later problems can name their line.
    _origin: _Origin | None = PrivateAttr(default=None)

    def issue(self, path: str, message: str) -> ConfigIssue:
        """A problem with the key at dotted `path`, found after loading (a store that cannot be opened, ...)."""
        if self._origin is None:
            return ConfigIssue("", 0, path, message)
        line = yamllines.line_of(_loc(path), self._origin.lines, root=False)
        return ConfigIssue(self._origin.file, line, path, message)

    def error(self, path: str, message: str) -> ConfigError:
        """`issue` as an exception: `raise config.error("store", "is a directory")`."""
        return ConfigError([self.issue(path, message)])

    @property
    def dry_run(self) -> bool:
        """Dry-run mode or the guards' global switch: the executor only does server-side dry runs."""
        return self.mode == "dry-run" or self.guards.dry_run

    def policy_for_guards(self) -> GuardPolicy:
        """The guard policy with the global dry-run switch reflecting the mode."""
        return self.guards.model_copy(update={"dry_run": self.dry_run})


# ---------------------------------------------------------------------------- errors


# One problem in the configuration: file, line, key path, message.
ConfigIssue = yamllines.Issue


class ConfigError(ValueError):
    """A configuration that cannot be used; `issues` holds one entry per problem."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


_Loc = yamllines.Loc


@dataclass(frozen=True)
class _Origin:
    file: str
    lines: Mapping[_Loc, int]


def _loc(dotted: str) -> _Loc:
    """`yamllines.dotted` backwards: "guards.freeze_windows[0].start" -> ("guards", "freeze_windows", 0, "start")."""
    out: list[str | int] = []
    for part in dotted.split("."):
        name, *indexes = part.split("[")
        if name:
            out.append(name)
        out.extend(int(i.rstrip("]")) for i in indexes if i.rstrip("]").isdigit())
    return tuple(out)


class _Loader(yaml.SafeLoader):
    """The safe loader, with a value YAML resolves but cannot build (`2024-13-01`, `!!int x`) a YAML error."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, TypeError, OverflowError):
            kind = str(node.tag).rsplit(":", 1)[-1]
            raise yaml.constructor.ConstructorError(None, None, f"not a valid {kind} value", node.start_mark) from None


# A block-style key at the start of a line: `  name:` or `- name:` (quoted keys too).
_BLOCK_KEY = re.compile(r"""^(?P<lead>[ ]*(?:-[ ]+)*)"""
                        r"""(?P<key>"[^"]*"|'[^']*'|[^\s#'"{}\[\],&*!|>%@`-][^:#]*?)[ ]*:(?:[ ]|$)""")


def _key_near(text: str, line: int, column: int) -> str:
    """The dotted block key path in effect at (line, column), both 0-based, read from indentation alone.

    A YAML syntax error leaves no document to walk; the key path near it is still what a user
    needs to find the mistake, and unlike PyYAML's snippet it quotes nothing of the line.
    """
    stack: list[tuple[int, str]] = []
    for number, raw in enumerate(text.splitlines()[:line + 1]):
        m = _BLOCK_KEY.match(raw)
        if m is None:
            continue
        indent = len(m["lead"])
        if number == line and indent > column:
            break
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, m["key"].strip("'\"")))
    return ".".join(key for _, key in stack)


def _loc_at(node: yaml.Node, line: int, column: int, loc: _Loc = ()) -> _Loc | None:
    """The key path of the value node that starts at (line, column), if `node` holds one."""
    if (node.start_mark.line, node.start_mark.column) == (line, column) and not isinstance(
            node, yaml.MappingNode | yaml.SequenceNode):
        return loc
    children: list[tuple[str | int, yaml.Node]] = []
    if isinstance(node, yaml.MappingNode):
        children = [(str(k.value), v) for k, v in node.value]
    elif isinstance(node, yaml.SequenceNode):
        children = list(enumerate(node.value))
    for key, child in children:
        found = _loc_at(child, line, column, loc + (key,))
        if found is not None:
            return found
    return None


def _yaml_issue(file: str, text: str, error: yaml.YAMLError, node: yaml.Node | None = None) -> ConfigIssue:
    """A YAML error as file, line, key path and problem, without PyYAML's snippet of the offending line."""
    if not isinstance(error, yaml.MarkedYAMLError) or error.problem_mark is None:
        return ConfigIssue(file, 0, "", "not valid YAML")
    mark = error.problem_mark
    message = f"not valid YAML: {error.problem or 'syntax error'} (column {mark.column + 1})"
    if error.context and error.context_mark is not None:
        message += f", {error.context} that starts on line {error.context_mark.line + 1}"
    loc = _loc_at(node, mark.line, mark.column) if node is not None else None  # parsed, but a value is not
    if loc:
        return ConfigIssue(file, mark.line + 1, yamllines.dotted(loc),
                           f"YAML cannot build this value: {error.problem}; quote it if it is text")
    return ConfigIssue(file, mark.line + 1, _key_near(text, mark.line, mark.column), message)


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
    fix(doc.get("slack"), "signing_secret_file")
    fix(doc.get("secrets"), "key_file")


def parse_yaml(file: str, text: str) -> tuple[yaml.Node | None, Any]:
    """The node tree and the document of YAML `text`; a `ConfigError` that quotes nothing of it if it is not YAML.

    For every YAML file the agent reads (this one, a kubeconfig, PromQL templates): PyYAML's own
    message shows the offending line, and that line may hold a token.
    """
    loader = _Loader(text)
    node: yaml.Node | None = None
    try:
        node = loader.get_single_node()
        return node, (loader.construct_document(node) if node is not None else None)
    except yaml.YAMLError as e:
        raise ConfigError([_yaml_issue(file, text, e, node)]) from None
    finally:
        loader.dispose()


def load_config(path: Path | str, env: Mapping[str, str] | None = None) -> LiveConfig:
    """Read and validate a configuration file; raises `ConfigError` naming every problem."""
    file = Path(path)
    env = os.environ if env is None else env
    try:
        text = file.read_text()
    except OSError as e:
        raise ConfigError([ConfigIssue(str(file), 0, "", f"cannot read the configuration: {e.strerror}")]) from None
    node, doc = parse_yaml(str(file), text)
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ConfigError([ConfigIssue(str(file), 1, "", "the configuration must be a mapping of keys "
                                                         "(kubernetes, prometheus, mode, store, ...)")])
    lines, duplicates = yamllines.key_lines(node) if node is not None else ({}, [])
    if duplicates:
        raise ConfigError([ConfigIssue(str(file), d.line, yamllines.dotted(d.loc),
                                       f"given twice (first on line {d.first}); keep one") for d in duplicates])
    for dotted, var in SECRET_ENV.items():
        if env.get(var):
            _set(doc, dotted, env[var])
    _resolve_paths(doc, file.resolve().parent)
    try:
        config = LiveConfig.model_validate(doc)
    except ValidationError as e:
        issues = [ConfigIssue(str(file), yamllines.line_of(tuple(err["loc"]), lines),
                              yamllines.dotted(tuple(err["loc"])), err["msg"]) for err in e.errors()]
        raise ConfigError(issues) from None
    config._origin = _Origin(str(file), lines)
    return config


def default_config(env: Mapping[str, str] | None = None) -> LiveConfig:
    """The configuration without a file: offline (no Prometheus), secrets from the environment."""
    env = os.environ if env is None else env
    doc: dict[str, Any] = {}
    for dotted, var in SECRET_ENV.items():
        if env.get(var) and not dotted.startswith(("prometheus.", "slack.")):
            _set(doc, dotted, env[var])
    return LiveConfig.model_validate(doc)
