"""Adaptation: the agent learns a world whose dynamics differ, from what its own ledger logged.

    python benchmarks/adaptation.py [--policy remediator/data/policy/policy.zip] [--incidents 50]
        [--eval-incidents 150] [--sim-timesteps 5000] [--out out/adaptation]

1. The shifted world (`simulator/scenarios/shifted.yaml`): restarts fix crash loops 80% of the
   time, rollbacks take three times as long.
2. The policy (`--policy`) handles `--incidents` incidents there through the live loop
   (`remediator.simlive.run_through_loop`: the operator's `Loop`, observer and ledger, with the
   simulator as the cluster), logged to a SQLite ledger.
3. `remediator.finetune` updates the policy from that ledger (then continues in the default
   training suite, so it does not forget).
4. MTTR before and after, in the shifted world (other incidents than the logged ones) and on the
   default evaluation suite (`eval`, seed 7), next to the tuned rule table, which learns nothing:
   its figures must be the same in both columns.

Prints a table; writes `OUT/adaptation.json`, the ledger and the tuned policy.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from remediator.benchmark import run_specs  # noqa: E402
from remediator.finetune import finetune, transitions_from_ledger  # noqa: E402
from remediator.live.ledger import Ledger  # noqa: E402
from remediator.rank.registry import make_ranker  # noqa: E402
from remediator.rank.rl import DEFAULT_POLICY, read_metadata  # noqa: E402
from remediator.simlive import run_through_loop  # noqa: E402
from simulator.suite import load_suite  # noqa: E402

SHIFTED = ROOT / "simulator" / "scenarios" / "shifted.yaml"
EVAL_SEED_SHIFTED = 113  # the shifted world's evaluation incidents: not the logged ones (seed 13)


def _mttr(suite: object, ranker: str, seed: int, count: int) -> dict[str, float]:
    s = suite
    specs = s.specs(seed=seed, count=count)  # type: ignore[attr-defined]
    results = run_specs(s, ranker, seed, specs)  # type: ignore[arg-type]
    times = [r.recovery_s for r in results]
    return {"mttr_s": round(statistics.fmean(times), 1), "success_rate": round(
        sum(r.recovered for r in results) / len(results), 4), "episodes": len(results)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--policy", type=Path, default=DEFAULT_POLICY, help="the DQN policy to adapt")
    ap.add_argument("--incidents", type=int, default=50, help="incidents handled (and logged) in the shifted world")
    ap.add_argument("--eval-incidents", type=int, default=150, help="shifted-world incidents to measure MTTR on")
    ap.add_argument("--default-incidents", type=int, default=None, help="eval-suite incidents (default: all)")
    ap.add_argument("--sim-timesteps", type=int, default=5000, help="simulation steps after the offline phase")
    ap.add_argument("--offline-steps", type=int, default=2000, help="gradient steps on the logged transitions")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "out" / "adaptation")
    args = ap.parse_args(argv)

    started = time.perf_counter()
    shifted, default = load_suite(str(SHIFTED)), load_suite("eval")
    args.out.mkdir(parents=True, exist_ok=True)
    db = args.out / "ledger.db"
    db.unlink(missing_ok=True)
    logged = run_through_loop(shifted, shifted.specs(seed=shifted.seed, count=args.incidents),
                              make_ranker(f"dqn:{args.policy}"), db)
    with Ledger(db) as ledger:
        experience = transitions_from_ledger(ledger.experience())
    tuned = args.out / "tuned.zip"
    finetune(experience, tuned, policy=args.policy, suite="default", sim_timesteps=args.sim_timesteps,
             offline_steps=args.offline_steps, seed=args.seed,
             sources={"ledger": str(db), "world": str(SHIFTED.relative_to(ROOT)),
                      "command": "python benchmarks/adaptation.py " + " ".join(argv or sys.argv[1:])})

    rankers = {"rules": "rules", "rl before": f"dqn:{args.policy}", "rl after": f"dqn:{tuned}"}
    worlds = {"shifted": (shifted, EVAL_SEED_SHIFTED, args.eval_incidents),
              "default eval": (default, default.seed, args.default_incidents or default.incidents)}
    figures = {w: {r: _mttr(s, spec, seed, n) for r, spec in rankers.items()} for w, (s, seed, n) in worlds.items()}

    print(f"\nadaptation: {args.incidents} incidents logged through the live loop in the shifted world "
          f"({sum(r.recovered for r in logged)} recovered, loop MTTR "
          f"{statistics.fmean(r.recovery_s for r in logged) / 60:.2f} min); {len(experience.transitions)} "
          f"transitions; policy {args.policy.name} (trained {read_metadata(args.policy).created or '?'})\n")
    print("| world | incidents | rules | rl before | rl after | after vs before |")
    print("|---|---|---|---|---|---|")
    for w, by in figures.items():
        b, a = by["rl before"]["mttr_s"], by["rl after"]["mttr_s"]
        print(f"| {w} | {by['rules']['episodes']} | {by['rules']['mttr_s'] / 60:.2f} min | {b / 60:.2f} min | "
              f"{a / 60:.2f} min | {100 * (a - b) / b:+.1f}% |")
    shifted_gain = 1 - figures["shifted"]["rl after"]["mttr_s"] / figures["shifted"]["rl before"]["mttr_s"]
    default_loss = figures["default eval"]["rl after"]["mttr_s"] / figures["default eval"]["rl before"]["mttr_s"] - 1
    met = "met" if shifted_gain >= 0.2 else "missed"
    print(f"\ngoal: shifted MTTR >= 20% lower (MTTR {-shifted_gain:+.1%}: {met}); "
          f"default eval no more than 5% worse (MTTR {default_loss:+.1%}: "
          f"{'met' if default_loss <= 0.05 else 'missed'})")
    report = {"policy": str(args.policy), "tuned": str(tuned), "ledger": str(db), "incidents_logged": args.incidents,
              "transitions": len(experience.transitions), "skipped": dict(experience.skipped),
              "logged": [r.__dict__ for r in logged], "figures": figures,
              "shifted_gain": round(shifted_gain, 4), "default_loss": round(default_loss, 4),
              "wall_s": round(time.perf_counter() - started, 1)}
    (args.out / "adaptation.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out / 'adaptation.json'} ({report['wall_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
