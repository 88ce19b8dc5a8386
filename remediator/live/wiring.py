"""Build the live agent's parts from a `LiveConfig`: proposer, ranker, observer, executor, loop.

Proposers and rankers are chosen by name from their one registry each
(`remediator.propose.registry`, `remediator.rank.registry`). `make_proposer(kind, config)`
is what `remediator propose --proposer` and `remediator run` call; an unknown kind is a
`WiringError` listing the known ones.

What the configuration names but the agent cannot use (a kubeconfig the client cannot
read, a store that is not SQLite, PromQL templates that do not validate) is a
`ConfigError` at that key path (`kubernetes.kubeconfig`, `store`, `prometheus.queries`),
raised here, when the part is built, so that `run`, `propose`, `history` and `undo`
report it the same way and exit 2.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from remediator.live.config import ConfigError, LiveConfig, parse_yaml
from remediator.live.executor import KubeExecutor
from remediator.live.kube import Backoff
from remediator.live.ledger import Ledger
from remediator.live.observer import KubeObjectSource, Observer, PrometheusSource, StaticObjects, load_templates
from remediator.live.sealing import Sealer
from remediator.propose import registry as proposers
from remediator.propose.base import Proposer
from remediator.rank import Ranker
from remediator.rank import registry as rankers

__all__ = ["WiringError", "kube_client", "located", "make_executor", "make_observer", "make_proposer", "make_ranker",
           "make_sealer", "open_ledger"]

log = logging.getLogger("remediator.live")


class WiringError(ValueError):
    """A configured part that does not exist or cannot be built; `key` is the configuration key that named it."""

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


def located(config: LiveConfig, error: WiringError) -> ConfigError:
    """`error` at its key in the configuration file (`proposer`, `ranker`, `policy`)."""
    message = str(error)
    path = error.key or ""
    head, sep, rest = message.partition(": ")
    if sep and path and head.startswith(f"{path}.") and " " not in head:  # "proposer.provider: Input should be ..."
        path, message = head, rest
    return config.error(path, message)


def make_proposer(kind: str | None, config: LiveConfig | None = None) -> Proposer:
    """The proposer named `kind` (None: the config's `proposer.kind`, else catalog); see
    `remediator.propose.registry`. A problem is a `WiringError` at `proposer.kind` or `proposer`."""
    settings: dict[str, Any] = {}
    if config is not None:
        settings = config.proposer.model_dump()
        kind = kind or str(settings.get("kind") or "catalog")
    settings.pop("kind", None)
    kind = kind or "catalog"
    if kind not in proposers.PROPOSER_KINDS:
        raise WiringError(f"unknown proposer {kind!r}; known: {', '.join(proposers.PROPOSER_KINDS)}",
                          key="proposer.kind")
    try:
        return proposers.make_proposer(kind, settings)
    except proposers.ProposerConfigError as e:
        raise WiringError(str(e), key="proposer") from e


def make_ranker(name: str = "auto", policy: str | None = None, *, seed: int = 0) -> Ranker:
    """The ranker `remediator.rank.registry` names; a problem is a `WiringError` at its key."""
    try:
        return rankers.make_ranker(name, policy=policy, seed=seed)
    except rankers.RankerError as e:
        raise WiringError(str(e), key="policy" if e.names_policy else "ranker") from e


_told_off: set[str] = set()


def make_sealer(config: LiveConfig | None, env: Mapping[str, str] | None = None) -> Sealer | None:
    """The sealer of Secret reverts (`secrets:`), None when they are off; a revert asked for but off
    (no key, a short one) is logged once with the reason, and an edited Secret is escalated."""
    if config is None:
        return None
    why = config.secrets.off_reason(env)
    if why:
        if config.secrets.revert and why not in _told_off:
            _told_off.add(why)
            log.warning("%s: Secret reverts are off, no Secret is read, and an edited Secret is escalated", why)
        return None
    key = config.secrets.key(env)
    assert key is not None  # off_reason checked it
    return Sealer.from_secret(key)


def make_executor(config: LiveConfig, api: Any, ledger: Ledger, *, dry_run: bool,
                  clock: Callable[[], float] = time.time) -> KubeExecutor:
    """The executor the configuration's `executor:` section describes (the loop's and `undo`'s)."""
    ex = config.executor
    return KubeExecutor(api, ledger, dry_run=dry_run, clock=clock, drain_timeout_s=ex.drain_timeout_s,
                        field_manager=ex.field_manager, sealer=make_sealer(config),
                        backoff=Backoff(max_attempts=ex.max_attempts, base_s=ex.backoff_base_s, max_s=ex.backoff_max_s))


def make_observer(config: LiveConfig | None, *, kube_api: Any = None, clock: Callable[[], float] = time.time
                  ) -> Observer:
    """Prometheus + Kubernetes from the config; without a config, the alert's labels alone."""
    if config is None:
        return Observer(None, _AlertObjects(), clock=clock)
    prom = config.prometheus
    try:
        if prom is not None and prom.queries is not None and Path(prom.queries).is_file():
            parse_yaml(str(prom.queries), Path(prom.queries).read_text(errors="replace"))  # its error quotes nothing
        templates = load_templates(prom.queries if prom is not None else None)
    except ConfigError as e:  # the templates' own file, path and problem, at the key that names the file
        raise ConfigError([config.issue("prometheus.queries", str(i)) for i in e.issues]) from None
    except OSError as e:
        raise config.error("prometheus.queries", f"{prom.queries if prom else ''}: cannot read the PromQL "
                                                 f"templates: {e.strerror or e}") from None
    metrics = None
    if prom is not None:
        token = prom.bearer_token.get_secret_value() if prom.bearer_token else None
        metrics = PrometheusSource(prom.url, timeout_s=prom.timeout_s, retries=prom.retries, bearer_token=token)
    objects: Any = (KubeObjectSource(kube_api, clock=clock, timeout_s=config.kubernetes.timeout_s,
                                     drains=_drain_in_runbook(), read_secrets=make_sealer(config) is not None)
                    if kube_api is not None else _AlertObjects())
    return Observer(metrics, objects, templates=templates, sli=config.sli.resolve(),
                    max_staleness_s=prom.max_staleness_s if prom is not None else 180.0, clock=clock)


def _drain_in_runbook() -> Callable[[Any], bool]:
    """Whether the shipped catalog's runbook for an alert lists `cordon_drain_node`: only then does
    the observer read the pods on the workload's nodes in every namespace (least privilege)."""
    from remediator.actions import ActionKind
    from remediator.catalog import load_catalog

    catalog = load_catalog()

    def drains(alert: Any) -> bool:
        runbook = catalog.for_alert(alert)
        return runbook is not None and any(e.kind is ActionKind.CORDON_DRAIN_NODE for e in runbook.actions)
    return drains


class _AlertObjects(StaticObjects):
    """No cluster: the skeleton objects the alert's labels name."""

    def __init__(self) -> None:
        super().__init__([])

    def fetch(self, alert: Any) -> list[dict[str, Any]]:
        from remediator.live.observer import objects_from_alert

        return objects_from_alert(alert)


def open_ledger(config: LiveConfig, clock: Callable[[], float] = time.time) -> Ledger:
    """The configured SQLite ledger, created if absent; a store that cannot be one is a `store` error."""
    path = Path(config.store)
    if path.is_dir():
        raise config.error("store", f"{path} is a directory; name the SQLite file, e.g. {path / 'remediator.db'}")
    blocker = next((p for p in path.parents if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise config.error("store", f"cannot create {path}: {blocker} is a file, not a directory")
    try:
        return Ledger(path, clock=clock)
    except OSError as e:  # creating the parent directory
        raise config.error("store", f"cannot create {path}: {e.strerror or e}") from None
    except sqlite3.DatabaseError as e:  # OperationalError (cannot open, read-only, locked) included
        what = ("is not an SQLite database" if "not a database" in str(e)
                else f"cannot be opened as the SQLite ledger ({e})")
        raise config.error("store", f"{path} {what}") from None


def _kubeconfig_problem(path: Path) -> str | None:
    """What keeps `path` from being a kubeconfig, read as the client reads it; None if it may be one.

    The client itself fails on a garbage file with whatever Python raised deep inside it
    (TypeError, UnicodeDecodeError, a YAML error with a snippet of the file); reading it first
    gives a plain answer and quotes nothing of a file that holds credentials.
    """
    if not path.exists():
        return f"{path} does not exist"
    if not path.is_file():
        return f"{path} is not a file"
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as e:
        return f"cannot read {path}: {e.strerror or e}"
    except UnicodeDecodeError:
        return f"{path} is not a kubeconfig (not UTF-8 text)"
    try:
        _, doc = parse_yaml(str(path), text)
    except ConfigError as e:
        return f"{path} is not a kubeconfig: {e}"
    if not isinstance(doc, dict):
        return f"{path} is not a kubeconfig (a mapping with clusters, contexts, users and current-context)"
    return None


def kube_client(config: LiveConfig) -> Any:
    """The Kubernetes `ApiClient` of the configuration; what it cannot be built from is a `kubernetes.*` error."""
    from remediator.live.kube import KubeError, api_client

    settings = config.kubernetes
    if settings.kubeconfig is not None:
        problem = _kubeconfig_problem(Path(settings.kubeconfig))
        if problem is not None:
            raise config.error("kubernetes.kubeconfig", problem)
    try:
        return api_client(settings)
    except KubeError as e:
        cause = e.__cause__ if e.__cause__ is not None else e
        if settings.kubeconfig is None:
            raise config.error("kubernetes.kubeconfig", f"absent, and the in-cluster service account is not "
                                                        f"usable ({cause}): set the path of a kubeconfig") from None
        if settings.context is not None and settings.context in str(cause):
            raise config.error("kubernetes.context", f"no context {settings.context!r} in {settings.kubeconfig}"
                               ) from None
        raise config.error("kubernetes.kubeconfig", f"{settings.kubeconfig}: {cause}") from None
    except Exception as e:  # noqa: BLE001 - the client's loader fails on odd files with any exception
        raise config.error("kubernetes.kubeconfig", f"{settings.kubeconfig} is not a kubeconfig the Kubernetes "
                                                    f"client can use ({type(e).__name__})") from None
