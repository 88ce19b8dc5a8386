"""A suite's dynamics (the shifted world) and simulated incidents through the live loop and its ledger."""

from __future__ import annotations

import re
from pathlib import Path

from remediator.actions import Action, ActionKind, ObjectRef
from remediator.live.ledger import Ledger
from remediator.rank.registry import make_ranker
from remediator.simlive import run_through_loop
from simulator.dynamics import Dynamics
from simulator.incident import Incident
from simulator.suite import load_suite

SHIFTED = Path(__file__).resolve().parents[2] / "simulator" / "scenarios" / "shifted.yaml"


def _bad_rollout(dynamics: Dynamics | None) -> Incident:
    s = load_suite("default")
    spec = next(sp for sp in s.specs(seed=5, count=80) if sp.fault == "bad_rollout" and not sp.variant)
    return Incident(s.topology.build(), spec, s.horizon_s, dynamics)


def _after_restart(inc: Incident) -> Incident:
    w = inc.cluster.focus
    inc.execute(Action(ActionKind.RESTART_ROLLOUT, ObjectRef("Deployment", w.namespace, w.name)))
    inc.advance(600.0)
    return inc


def test_a_restart_fixes_the_crash_loop_only_where_the_world_says_so() -> None:
    assert not _after_restart(_bad_rollout(None)).recovered  # default: the new pods crash again
    assert _after_restart(_bad_rollout(Dynamics(restart_fixes_crashloop=1.0))).recovered


def test_rollbacks_take_longer_in_the_shifted_world() -> None:
    def rollback_s(dynamics: Dynamics | None) -> float:
        inc = _bad_rollout(dynamics)
        w = inc.cluster.focus
        inc.execute(Action(ActionKind.ROLLBACK_ROLLOUT, ObjectRef("Deployment", w.namespace, w.name)))
        inc.advance(1800.0)
        assert inc.recovered
        return inc.recovery_s

    assert rollback_s(Dynamics(rollback_time_factor=3.0)) > rollback_s(None) + 30.0


def test_simulated_incidents_through_the_live_loop_leave_experience_in_the_ledger(tmp_path: Path) -> None:
    s = load_suite(str(SHIFTED))
    assert s.dynamics.restart_fixes_crashloop == 0.8 and s.dynamics.rollback_time_factor == 3
    results = run_through_loop(s, s.specs(seed=s.seed, count=3), make_ranker("rules"), tmp_path / "ledger.db")
    ledger = Ledger(tmp_path / "ledger.db")
    assert len(results) == 3 and len(ledger.incidents()) == 3
    assert all(r.ledger_status in ("recovered", "escalated", "failed") for r in results)
    experience = ledger.experience()
    assert experience and all(e["observation"] for e in experience)
    recovered = [r for r in results if r.ledger_status == "recovered"]
    assert all(r.ledger_recovery_s is not None and r.ledger_recovery_s >= r.recovery_s - 60 for r in recovered)


def test_the_live_loop_takes_the_steps_the_simulator_runner_takes_incident_after_incident(tmp_path: Path) -> None:
    """The ledger keeps one simulated timeline: no cooldown reads the agent's own earlier action as
    made in the future (it did when the ledger kept the wall clock, and refused every second step)."""
    from remediator.benchmark import run_specs

    s = load_suite("default")
    specs = s.specs(seed=3, count=24)
    runner = run_specs(s, "rules", 3, specs)
    loop = run_through_loop(s, specs, make_ranker("rules"), tmp_path / "ledger.db")
    active = [tuple(k for k in r.kinds if k not in ("noop",)) for r in runner]
    # The loop confirms recovery later (its rates lag the scrapes), so it may take one step more.
    assert all(r.actions[:len(a)] == a for r, a in zip(loop, active, strict=True)), ([r.actions for r in loop], active)
    assert [r.recovered for r in loop] == [r.recovered for r in runner]
    with Ledger(tmp_path / "ledger.db") as ledger:
        reasons = [c["reason"] for i in ledger.incidents() for c in ledger.candidates_of(i.id)]
    assert reasons and not [r for r in reasons if re.search(r"acted on -\d", r)]
