"""`remediator propose --proposer llm` end to end against an OpenAI-compatible server on loopback.

The server is a stub that answers chat completions with canned JSON, so the whole path runs
for real: CLI, wiring, ChatOpenAI with the json_schema response format over HTTP, parsing,
validation, guards and the contract of the JSON output.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from remediator.cli import app

ROOT = Path(__file__).resolve().parents[2]
PAYLOAD = ROOT / "evals" / "cases" / "crashlooping-oomkilled" / "alert.json"
CHECK_CONTRACT = Path("/work/shared/tools/check-contract")


class Stub:
    def __init__(self) -> None:
        self.replies: list[str] = []
        self.requests: list[dict[str, Any]] = []


@pytest.fixture
def stub() -> Iterator[tuple[Stub, str]]:
    state = Stub()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state.requests.append(body)
            content = state.replies.pop(0) if state.replies else '{"candidates": []}'
            doc = {"id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": body.get("model"),
                   "choices": [{"index": 0, "finish_reason": "stop",
                                "message": {"role": "assistant", "content": content}}],
                   "usage": {"prompt_tokens": 900, "completion_tokens": 60, "total_tokens": 960}}
            data = json.dumps(doc).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def _run(url: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("REMEDIATOR_LLM_PROVIDER", "openai")
    monkeypatch.setenv("REMEDIATOR_LLM_BASE_URL", url)
    monkeypatch.setenv("REMEDIATOR_LLM_MODEL", "stub-model")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    res = CliRunner().invoke(app, ["propose", "--alert", str(PAYLOAD), "--proposer", "llm", "--ranker", "llm",
                                   "--json"])
    assert res.exit_code == 0, res.output
    doc: dict[str, Any] = json.loads(res.stdout)
    return doc


def _candidate(action: str, name: str = "checkout", **params: Any) -> dict[str, Any]:
    return {"action": action, "target": {"kind": "Deployment", "namespace": "shop", "name": name},
            "params": params, "rationale": "OOMKilled at the limit", "confidence": 90}


def test_propose_with_the_llm_proposer_keeps_the_contract(stub: tuple[Stub, str], monkeypatch: pytest.MonkeyPatch,
                                                           tmp_path: Path) -> None:
    state, url = stub
    state.replies = [json.dumps({"candidates": [_candidate("raise_memory_limit", factor=1.5)]})]
    doc = _run(url, monkeypatch)
    first = doc["candidates"][0]
    assert (first["action"], first["source"], first["verdict"]) == ("raise_memory_limit", "llm", "allow")
    assert first["target"] == {"kind": "Deployment", "namespace": "shop", "name": "checkout"}
    assert {c["action"] for c in doc["candidates"]} >= {"noop", "escalate"}
    assert doc["chosen"] == 0
    request = state.requests[0]
    assert request["model"] == "stub-model" and request["response_format"]["type"] == "json_schema"
    schema = request["response_format"]["json_schema"]["schema"]
    kinds = {b["properties"]["action"]["enum"][0] for b in schema["properties"]["candidates"]["items"]["anyOf"]}
    assert "raise_memory_limit" in kinds and "scale_out" not in kinds  # the KubePodCrashLooping runbook only
    assert "<<<INCIDENT DATA" in request["messages"][1]["content"]
    out = tmp_path / "propose.json"
    out.write_text(json.dumps(doc))
    if not CHECK_CONTRACT.exists():
        pytest.fail(f"{CHECK_CONTRACT} is missing: the contract checker must run")
    res = subprocess.run([sys.executable, str(CHECK_CONTRACT), "propose", str(out)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout


def test_a_hostile_answer_is_dropped_and_the_catalog_steps_in(stub: tuple[Stub, str],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    state, url = stub
    hostile = json.dumps({"candidates": [_candidate("restart_rollout", name="coredns") | {
        "target": {"kind": "Deployment", "namespace": "kube-system", "name": "coredns"}},
        _candidate("delete_namespace")]})
    state.replies = [hostile, hostile, hostile]
    doc = _run(url, monkeypatch)
    assert len(state.requests) == 3  # the first try and two retries with the problems fed back
    assert "is not in this incident" in state.requests[1]["messages"][-1]["content"]
    assert {c["source"] for c in doc["candidates"]} == {"catalog"}
    assert all(c["target"]["namespace"] != "kube-system" for c in doc["candidates"])


def test_an_unknown_provider_setting_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REMEDIATOR_LLM_PROVIDER", "bard")
    res = CliRunner().invoke(app, ["propose", "--alert", str(PAYLOAD), "--proposer", "llm", "--json"])
    assert res.exit_code == 2 and "proposer.provider" in res.output
