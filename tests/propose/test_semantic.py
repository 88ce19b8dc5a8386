"""Semantic runbook matching: logic with a tiny deterministic embedder, quality with the real MiniLM."""

from __future__ import annotations

import hashlib
import re

import numpy as np
import numpy.typing as npt
import pytest

from remediator.actions import ActionKind, ObjectRef
from remediator.catalog import Catalog, load_catalog
from remediator.propose.catalog import CatalogProposer
from remediator.propose.semantic import SemanticMatcher, alert_text, catalog_proposer, embedding_available, runbook_text
from remediator.snapshot import Alert, Signals, Snapshot

CATALOG = load_catalog()
CART = ObjectRef("Deployment", "shop", "cart")


class BagOfWords:
    """Hashes lower-cased words into 64 buckets: similar wording, similar vectors."""

    def __init__(self) -> None:
        self.calls = 0

    def encode(self, texts: list[str]) -> npt.NDArray[np.float32]:
        self.calls += 1
        out = np.zeros((len(texts), 64), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in re.findall(r"[a-z]+", t.lower()):
                out[i, int(hashlib.md5(w.encode()).hexdigest(), 16) % 64] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return (out / np.where(norms == 0, 1.0, norms)).astype(np.float32)


def test_texts_drop_the_kube_prefix_and_keep_the_annotations() -> None:
    a = Alert("KubeJobFailed", {}, {"summary": "Job failed.", "description": "Job x\nfailed", "runbook_url": "u"})
    assert alert_text(a) == "Job Failed. Job failed.. Job x failed"
    crash = CATALOG.get("KubePodCrashLooping")
    assert crash is not None and runbook_text(crash).startswith("Pod Crash Looping. A container restarts")


def test_the_closest_runbook_above_the_threshold_matches() -> None:
    m = SemanticMatcher(CATALOG, BagOfWords(), threshold=0.3)
    a = Alert("CartVolumeFillingUp", {}, {"summary": "A PersistentVolume is filling up."})
    ranked = m.ranked(a)
    assert ranked[0].runbook.alert == "KubePersistentVolumeFillingUp"
    assert ranked[0].similarity > ranked[1].similarity
    assert m(a) is CATALOG.get("KubePersistentVolumeFillingUp")
    assert SemanticMatcher(CATALOG, BagOfWords(), threshold=0.99)(a) is None


def test_runbook_label_filters_still_apply() -> None:
    base = CATALOG.get("KubeHpaMaxedOut")
    assert base is not None
    hpa = base.model_copy(update={"match": {"severity": "critical"}})
    catalog = Catalog((hpa,))
    m = SemanticMatcher(catalog, BagOfWords(), threshold=0.1)
    text = {"summary": "A HorizontalPodAutoscaler is pinned at its maxReplicas."}
    assert m(Alert("CartAutoscalerPinned", {"severity": "warning"}, text)) is None
    assert m(Alert("CartAutoscalerPinned", {"severity": "critical"}, text)) is hpa


def test_the_proposer_asks_the_matcher_only_for_alerts_no_runbook_names() -> None:
    embedder = BagOfWords()
    proposer = catalog_proposer(CATALOG, embedder=embedder, threshold=0.3)
    alert = Alert("CartVolumeFillingUp", {"namespace": "shop"}, {"summary": "A PersistentVolume is filling up."})
    snap = Snapshot(alert, 0.0, CART, Signals(), pvc=ObjectRef("PersistentVolumeClaim", "shop", "cart-data"))
    cands = proposer.propose(snap)
    assert cands[0].kind is ActionKind.EXPAND_VOLUME
    assert cands[0].rationale.startswith("no runbook for CartVolumeFillingUp; closest is KubePersistentVolumeFillingUp")
    # A named alert never reaches the matcher, even when its runbook's labels exclude it.
    calls = embedder.calls
    named = Snapshot(Alert("KubePodCrashLooping", {"namespace": "shop"}), 0.0, CART, Signals())
    assert proposer.propose(named)[0].kind is ActionKind.ROLLBACK_ROLLOUT
    assert embedder.calls == calls


def test_no_match_leaves_noop_and_escalate() -> None:
    proposer = CatalogProposer(CATALOG, matcher=SemanticMatcher(CATALOG, BagOfWords(), threshold=0.9))
    snap = Snapshot(Alert("Watchdog", {}), 0.0, None, Signals())
    assert [c.kind for c in proposer.propose(snap)] == [ActionKind.NOOP, ActionKind.ESCALATE]


def test_without_the_embedding_model_the_proposer_matches_by_name_only(monkeypatch: pytest.MonkeyPatch) -> None:
    import remediator.propose.semantic as semantic

    monkeypatch.setattr(semantic, "embedding_available", lambda: False)
    assert semantic.catalog_proposer(CATALOG).matcher is None


@pytest.mark.slow
def test_minilm_matches_user_alerts_and_leaves_unrelated_ones() -> None:
    if not embedding_available():
        msg = "the embedding model is not installed: run scripts/llm/setup.sh"
        pytest.fail(msg)
    m = SemanticMatcher(CATALOG)
    restarting = Alert("CheckoutPodsRestarting", {},
                       {"summary": "checkout pods keep restarting",
                        "description": "Containers restarted 6 times (CrashLoopBackOff)."})
    slow = Alert("PaymentsSlowResponses", {}, {"summary": "payments p99 latency above 2s"})
    watchdog = Alert("Watchdog", {}, {"description": "This is an alert meant to ensure that the entire alerting "
                                                     "pipeline is functional."})
    job = Alert("KubeJobFailed", {}, {"description": "Job shop/export failed to complete."})
    assert m(restarting) is CATALOG.get("KubePodCrashLooping")
    assert m(slow) is CATALOG.get("ServiceLatencyHigh")
    assert m(watchdog) is None and m(job) is None
