"""Probe the local Gemma server through LangChain: which structured-output methods work, how fast.

    .venv/bin/python scripts/llm/probe.py [--calls 5] [--methods json_schema,json_mode,function_calling]

Starts `LocalLlamaServer`, builds an incident prompt of about 1.5k tokens (alert, signals,
events, logs and the runbook catalog from runbooks/*.yaml), and calls
`ChatOpenAI(...).with_structured_output(Proposal, method=M, include_raw=True)` for each method,
reporting per call: wall time, prompt/completion tokens, whether the answer parsed into the
schema, and the error if not. Prints a JSON summary at the end.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, Field

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from remediator.llm_server import LocalLlamaServer  # noqa: E402

ActionName = Literal[
    "noop",
    "restart_rollout",
    "rollback_rollout",
    "scale_out",
    "restore_replicas",
    "raise_memory_limit",
    "raise_cpu_limit",
    "raise_hpa_max",
    "delete_pod",
    "cordon_drain_node",
    "expand_volume",
    "restart_dependency",
    "escalate",
]


class Target(BaseModel):
    kind: Literal["Deployment", "Pod", "Node", "HorizontalPodAutoscaler", "PersistentVolumeClaim"]
    namespace: str = Field(max_length=63)
    name: str = Field(max_length=63)


class Candidate(BaseModel):
    action: ActionName
    target: Target
    rationale: str = Field(max_length=160, description="one sentence")
    confidence: int = Field(ge=0, le=100, description="percent")


class Proposal(BaseModel):
    """Remediation candidates for one incident, best first."""

    candidates: list[Candidate] = Field(min_length=1, max_length=3)


def system_prompt() -> str:
    """The static part (instructions, allowed kinds, runbook catalog): first, so it is cached."""
    catalog = "\n".join(p.read_text() for p in sorted((ROOT / "runbooks").glob("*.yaml")))
    catalog = catalog[:3600]  # keep the whole prompt near 1.5k tokens
    return f"""You are an SRE assistant. Propose remediation actions for the incident you are given.
Answer with JSON only. Use only the allowed action kinds; target only objects named in the incident.

## Allowed action kinds
{", ".join(get_args(ActionName))}

## Runbook catalog
{catalog}
"""


INCIDENT = """## Alert
KubePodCrashLooping (severity warning) namespace=shop pod=checkout-7d9f8b6c5-x2k4q container=app
summary: Pod shop/checkout-7d9f8b6c5-x2k4q (app) is in waiting state (reason: "CrashLoopBackOff").

## Key signals (last 15 minutes)
- kube_pod_container_status_restarts_total{pod="checkout-7d9f8b6c5-x2k4q"}: 3 -> 11
- kube_pod_container_status_last_terminated_reason: OOMKilled
- container_memory_working_set_bytes / limit: 0.99 (limit 256Mi)
- kube_deployment_status_replicas_available{deployment="checkout"}: 2 of 3
- error ratio (5xx / all) for service checkout: 0.07 (SLO 0.01)
- p99 latency: 1.9s (SLO 0.5s)
- Deployment checkout revision 14 rolled out 2h ago (image checkout:1.42.0, previous 1.41.3)

## Recent events
- Warning BackOff pod/checkout-7d9f8b6c5-x2k4q Back-off restarting failed container app
- Normal Pulled pod/checkout-7d9f8b6c5-x2k4q Container image "checkout:1.42.0" already present
- Warning OOMKilling node/worker-2 Memory cgroup out of memory: Killed process 4121 (java)

## Log excerpt
java.lang.OutOfMemoryError: Java heap space
    at com.shop.checkout.CartCache.load(CartCache.java:88)
INFO starting checkout service version=1.42.0 heap=240m
"""


EXAMPLE = (
    "\n## Answer format (one line of JSON, no indentation), for example\n"
    '{"candidates": [{"action": "rollback_rollout", "target": {"kind": "Deployment", "namespace": "web", '
    '"name": "frontend"}, "rationale": "errors started with the new revision", "confidence": 60}]}\n'
)


def messages(variant: int, example: bool) -> list[tuple[str, str]]:
    # A different incident suffix per call, so only the static prefix can come from the cache.
    system = system_prompt() + (EXAMPLE if example else "")
    return [("system", system), ("human", f"{INCIDENT}\n(incident #{variant})")]


def server_timing(log: str) -> dict[str, float]:
    """Prompt and generation speed (tokens/s) of the last request, from llama-server's log."""
    timing: dict[str, float] = {}
    for line in log.splitlines():
        m = re.search(r"(prompt eval|eval) time =\s*([\d.]+) ms /\s*(\d+) tokens.*?([\d.]+) tokens per second", line)
        if m:
            key = "prompt" if m.group(1) == "prompt eval" else "gen"
            timing[f"{key}_tokens"] = float(m.group(3))
            timing[f"{key}_tok_s"] = float(m.group(4))
    return timing


def run(
    methods: list[str], calls: int, max_tokens: int, args_timeout: float, ctx: int, threads: int | None, example: bool
) -> dict[str, Any]:
    from langchain_openai import ChatOpenAI

    report: dict[str, Any] = {}
    with LocalLlamaServer(ctx=ctx, threads=threads) as server:
        print(f"server at {server.base_url}", flush=True)
        llm = ChatOpenAI(
            base_url=server.base_url,
            api_key="none",
            model=server.model_alias,
            temperature=0.2,
            max_tokens=max_tokens,
            timeout=args_timeout,
            max_retries=0,
        )
        for method in methods:
            results: list[dict[str, Any]] = []
            for i in range(calls):
                chain = llm.with_structured_output(Proposal, method=method, include_raw=True)  # type: ignore[arg-type]
                t0 = time.perf_counter()
                try:
                    out = chain.invoke(messages(len(results) + 100 * len(report), example))
                    err = out["parsing_error"]
                    raw = out["raw"]
                    usage = getattr(raw, "usage_metadata", None) or {}
                    parsed = out["parsed"]
                    res = {
                        "ok": parsed is not None and err is None,
                        "error": None if err is None else str(err)[:300],
                        "prompt_tokens": usage.get("input_tokens"),
                        "completion_tokens": usage.get("output_tokens"),
                        "content": (raw.content if isinstance(raw.content, str) else str(raw.content))[:400],
                        "tool_calls": len(getattr(raw, "tool_calls", []) or []),
                    }
                except Exception as exc:  # the request itself failed
                    res = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:400]}
                res["seconds"] = round(time.perf_counter() - t0, 2)
                res["server_timing"] = server_timing(server.log_tail(3000))
                results.append(res)
                print(f"{method} #{i}: {json.dumps(res)}", flush=True)
            secs = [r["seconds"] for r in results]
            report[method] = {
                "ok": sum(r["ok"] for r in results),
                "calls": calls,
                "median_s": round(statistics.median(secs), 2),
                "max_s": max(secs),
            }
    return report


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=5)
    ap.add_argument("--methods", default="json_schema,json_mode,function_calling")
    ap.add_argument("--max-tokens", type=int, default=400)
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("--ctx", type=int, default=4096)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--example", action="store_true", help="add a one-line example answer to the system prompt")
    args = ap.parse_args()
    report = run(
        args.methods.split(","), args.calls, args.max_tokens, args.timeout, args.ctx, args.threads, args.example
    )
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
