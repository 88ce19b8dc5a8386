"""Build the live agent's parts from a `LiveConfig`: proposer, ranker, observer, executor, loop.

The proposer is chosen by name through `PROPOSERS`, a registry other adapters extend
(the LLM proposer registers `llm`)::

    def _llm(settings: dict[str, Any]) -> Proposer:     # settings: the config's proposer.* minus kind
        from remediator.propose.llm import LLMProposer
        return LLMProposer(**settings)

    PROPOSERS["llm"] = _llm

`make_proposer(kind, config)` is what `remediator propose --proposer` and `remediator run`
call; an unknown kind is a `WiringError` listing the known ones.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from remediator.live.config import LiveConfig
from remediator.live.ledger import Ledger
from remediator.live.observer import KubeObjectSource, Observer, PrometheusSource, StaticObjects, load_templates
from remediator.propose.base import Proposer
from remediator.propose.catalog import CatalogProposer
from remediator.rank import ProposerOrderRanker, RandomRanker, Ranker, RulesRanker

__all__ = ["PROPOSERS", "WiringError", "make_observer", "make_proposer", "make_ranker", "proposer_kinds"]

log = logging.getLogger("remediator.live")


class WiringError(ValueError):
    """A configured part that does not exist or cannot be built."""


def _catalog(settings: dict[str, Any]) -> Proposer:
    return CatalogProposer()


# Proposer kinds by name -> factory(settings from the config's `proposer:` section, minus `kind`).
PROPOSERS: dict[str, Callable[[dict[str, Any]], Proposer]] = {"catalog": _catalog}


def proposer_kinds() -> tuple[str, ...]:
    return tuple(PROPOSERS)


def make_proposer(kind: str | None, config: LiveConfig | None = None) -> Proposer:
    """The proposer named `kind` (None: the config's `proposer.kind`, else catalog)."""
    settings: dict[str, Any] = {}
    if config is not None:
        settings = config.proposer.model_dump()
        kind = kind or str(settings.get("kind") or "catalog")
    settings.pop("kind", None)
    kind = kind or "catalog"
    factory = PROPOSERS.get(kind)
    if factory is None:
        raise WiringError(f"unknown proposer {kind!r}; known: {', '.join(PROPOSERS)}")
    return factory(settings)


def make_ranker(name: str = "auto", policy: str | None = None, *, seed: int = 0) -> Ranker:
    """`auto` (the rl policy when it loads, else rules), rules, rl, random, llm, dqn:FILE, ppo:FILE."""
    base, _, arg = name.partition(":")
    if base == "rules":
        return RulesRanker()
    if base == "random":
        return RandomRanker(seed)
    if base == "llm":
        return ProposerOrderRanker()
    if base in ("auto", "rl", "dqn", "ppo"):
        path = arg or policy
        try:
            from remediator.rank.rl import PolicyError, load_rl_ranker
        except ImportError as e:
            if base == "auto":
                log.warning("the rl ranker is not available (%s); ranking with rules", e)
                return RulesRanker()
            raise WiringError(f"the rl ranker is not available: {e}") from e
        try:
            return load_rl_ranker(path, algo=None if base in ("auto", "rl") else base)
        except PolicyError as e:
            if base == "auto":
                log.warning("no usable policy (%s); ranking with rules", e)
                return RulesRanker()
            raise WiringError(str(e)) from e
    raise WiringError(f"unknown ranker {name!r}; use auto, rules, rl, random, llm, dqn:FILE or ppo:FILE")


def make_observer(config: LiveConfig | None, *, kube_api: Any = None, clock: Callable[[], float] = time.time
                  ) -> Observer:
    """Prometheus + Kubernetes from the config; without a config, the alert's labels alone."""
    if config is None:
        return Observer(None, _AlertObjects(), clock=clock)
    prom = config.prometheus
    templates = load_templates(prom.queries if prom is not None else None)
    metrics = None
    if prom is not None:
        token = prom.bearer_token.get_secret_value() if prom.bearer_token else None
        metrics = PrometheusSource(prom.url, timeout_s=prom.timeout_s, retries=prom.retries, bearer_token=token)
    objects: Any = KubeObjectSource(kube_api, clock=clock) if kube_api is not None else _AlertObjects()
    return Observer(metrics, objects, templates=templates,
                    max_staleness_s=prom.max_staleness_s if prom is not None else 180.0, clock=clock)


class _AlertObjects(StaticObjects):
    """No cluster: the skeleton objects the alert's labels name."""

    def __init__(self) -> None:
        super().__init__([])

    def fetch(self, alert: Any) -> list[dict[str, Any]]:
        from remediator.live.observer import objects_from_alert

        return objects_from_alert(alert)


def open_ledger(config: LiveConfig, clock: Callable[[], float] = time.time) -> Ledger:
    return Ledger(config.store, clock=clock)
