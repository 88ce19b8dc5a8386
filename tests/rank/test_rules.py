"""The calibrated rule table: its thresholds as data (errors with file, line and key), its
signatures on hand-made dashboards, and the calibration's search on a small grid."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from remediator.actions import Action, ActionKind, ObjectRef
from remediator.calibrate import CalibrationError, calibrate
from remediator.propose.base import Candidate
from remediator.rank import RulesRanker, RuleThresholds, RuleThresholdsError, expert_plan
from remediator.rank.registry import RankerError, make_ranker
from remediator.rank.thresholds import SHIPPED_THRESHOLDS, as_yaml, load_thresholds, shipped_thresholds
from remediator.snapshot import Alert, Attempt, Signals, Snapshot

A = ActionKind
HEALTHY = Signals(desired_replicas=3, baseline_replicas=3, available_replicas=3, pods=3, ready_pods=3,
                  mem_ratio=0.4, cpu_ratio=0.4, request_rate=10, request_rate_baseline=10, error_ratio=0.001,
                  latency_p99_s=0.2, deps=1, dep_latency_p99_s=0.1, has_previous_revision=1)


def snap(since_alert_s: float = 60.0, history: tuple[Attempt, ...] = (), **signals: float) -> Snapshot:
    return Snapshot(alert=Alert("X", {"namespace": "shop"}, starts_at=1000.0), at=1000.0 + since_alert_s,
                    workload=ObjectRef("Deployment", "shop", "cart"), signals=replace(HEALTHY, **signals),
                    history=history)


CRASHING = {"crashloop_fraction": 1.0, "restarts_per_min": 1.0, "ready_pods": 0, "available_replicas": 0}


def test_the_shipped_thresholds_are_the_calibrated_ones() -> None:
    t = shipped_thresholds()
    assert (t.rollout_window_s, t.oom_ratio, t.throttle_ratio, t.transient_s) == (900, 0.6, 0.5, 180)
    assert RulesRanker().thresholds == t


def test_one_old_oom_kill_is_a_bystander_a_leak_is_not() -> None:
    assert A.RAISE_MEMORY_LIMIT not in expert_plan(snap(oom_fraction=1 / 3, **CRASHING))
    assert expert_plan(snap(oom_fraction=1.0, **CRASHING))[0] is A.RAISE_MEMORY_LIMIT


def test_a_rollout_counts_only_inside_the_window() -> None:
    fresh = expert_plan(snap(rollout_age_s=400, **CRASHING))
    old = expert_plan(snap(rollout_age_s=2400, error_exit_fraction=0.0, **CRASHING))
    assert fresh[0] is A.ROLLBACK_ROLLOUT
    assert A.ROLLBACK_ROLLOUT not in old
    # A latent bad rollout: the pods exit with an error of their own, hours after the rollout.
    assert expert_plan(snap(rollout_age_s=20000, error_exit_fraction=1.0, **CRASHING))[0] is A.ROLLBACK_ROLLOUT


def test_dependencies_are_checked_before_the_workload_is_restarted() -> None:
    plan = expert_plan(snap(dep_error_ratio=1.0, dep_latency_p99_s=10.0, error_exit_fraction=1.0, **CRASHING))
    assert plan[:2] == [A.RESTART_DEPENDENCY, A.RESTART_ROLLOUT]
    # The caller's restart follows at once: it would sit out its crash-loop back-off.
    after = snap(since_alert_s=120, history=(Attempt(A.RESTART_DEPENDENCY, 1060.0, executed=True),),
                 dep_error_ratio=1.0, dep_latency_p99_s=10.0, **CRASHING)
    assert expert_plan(after)[0] is A.RESTART_ROLLOUT


def test_a_config_edit_is_the_suspect_only_when_the_errors_began_with_it() -> None:
    edited = dict(config_revertible=1.0, config_changed_age_s=150.0, error_ratio=0.2, rollout_age_s=90000.0)
    assert expert_plan(snap(errors_since_s=120.0, **edited))[0] is A.REVERT_CONFIG
    # The SLO held for five minutes after the edit: a bystander, watched like any page without a cause.
    assert expert_plan(snap(errors_since_s=60.0, **{**edited, "config_changed_age_s": 360.0})) == [A.NOOP]
    # A crash loop's alert waits 15 minutes: an edit 16 minutes old, erroring ever since, is still the suspect.
    assert expert_plan(snap(errors_since_s=float("inf"), **{**edited, "config_changed_age_s": 960.0},
                            **CRASHING))[0] is A.REVERT_CONFIG
    # A rollout after the edit (before the alert) is the suspect instead; one of the agent's own is not.
    assert A.REVERT_CONFIG not in expert_plan(snap(errors_since_s=120.0, **{**edited, "rollout_age_s": 100.0}))
    assert expert_plan(snap(since_alert_s=200.0, errors_since_s=320.0,
                            **{**edited, "config_changed_age_s": 350.0, "rollout_age_s": 100.0}))[0] is A.REVERT_CONFIG


def test_the_agents_own_restart_is_not_a_rollout_to_roll_back() -> None:
    restarted = snap(since_alert_s=400.0, history=(Attempt(A.RESTART_ROLLOUT, 1200.0, executed=True),),
                     rollout_age_s=200.0, error_ratio=0.3, latency_p99_s=0.9)
    assert A.ROLLBACK_ROLLOUT not in expert_plan(restarted)


def test_after_acting_in_vain_it_hands_over_rather_than_watch() -> None:
    def cands(*kinds: ActionKind) -> list[Candidate]:
        return [Candidate(Action(k, ObjectRef("Deployment", "shop", "cart")), "catalog", 0.5, "") for k in kinds]
    # The plan's next step (a scale-out) is not on offer: wait before acting, escalate after.
    fresh = snap(since_alert_s=400.0, error_ratio=0.3)
    tried = snap(since_alert_s=400.0, history=(Attempt(A.RESTART_ROLLOUT, 1100.0, executed=True),),
                 error_ratio=0.3)
    offered = cands(A.NOOP, A.ESCALATE)
    assert RulesRanker().rank(fresh, offered)[0].candidate.action.kind is A.NOOP
    assert RulesRanker().rank(tried, offered)[0].candidate.action.kind is A.ESCALATE


def test_throttling_is_a_cause_only_when_heavy() -> None:
    assert expert_plan(snap(latency_p99_s=2.0, throttle_ratio=0.35))[0] is A.NOOP  # watched as a transient
    assert expert_plan(snap(latency_p99_s=2.0, throttle_ratio=0.9))[0] is A.RAISE_CPU_LIMIT


def test_traffic_spike_and_hung_process_signatures() -> None:
    spike = dict(latency_p99_s=3.0, hpa_present=1, hpa_current=10, hpa_max=10, throttle_ratio=1.0)
    assert expert_plan(snap(request_rate=40, **spike))[0] is A.RAISE_HPA_MAX
    # An autoscaler pinned at its maximum on purpose, with normal traffic, is no spike.
    assert A.RAISE_HPA_MAX not in expert_plan(snap(request_rate=10, **spike))
    assert expert_plan(snap(latency_p99_s=10.0, error_ratio=0.4))[0] is A.RESTART_ROLLOUT
    # Timeouts from a broken dependency are the dependency's.
    assert expert_plan(snap(latency_p99_s=10.0, error_ratio=0.9, dep_error_ratio=1.0))[0] is A.RESTART_DEPENDENCY


def test_a_page_with_no_cause_is_watched_for_the_transient_window() -> None:
    assert expert_plan(snap(since_alert_s=120, latency_p99_s=0.9)) == [A.NOOP]
    assert expert_plan(snap(since_alert_s=320, latency_p99_s=0.9))[0] is A.RESTART_ROLLOUT


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "rules.yaml"
    p.write_text(text)
    return p


def test_a_thresholds_file_round_trips_and_is_a_ranker(tmp_path: Path) -> None:
    t = replace(shipped_thresholds(), oom_ratio=0.9)
    path = write(tmp_path, as_yaml(t))
    assert load_thresholds(path) == t
    ranker = make_ranker(f"rules:{path}")
    assert isinstance(ranker, RulesRanker) and ranker.thresholds == t


@pytest.mark.parametrize(("change", "expect"), [
    (lambda s: s.replace("oom_ratio: 0.6", "oom_ratio: high"), ":8: oom_ratio: must be a number in [0, 1], not"),
    (lambda s: s.replace("throttle_ratio: 0.5", "throttle_ratio: 1.5"), ":9: throttle_ratio: must be a number"),
    (lambda s: s.replace("transient_s: 180", "transient_s: true"), ":10: transient_s: must be a number"),
    (lambda s: s + "oom_ration: 0.5\n", ":19: oom_ration: unknown threshold"),
    (lambda s: s + "oom_ratio: 0.5\n", ":19: oom_ratio: given twice (first on line 8)"),
    (lambda s: s.replace("settle_s: 150\n", ""), "missing threshold(s): settle_s"),
    (lambda s: s + "a: [\n", "not valid YAML"),
    (lambda s: "- 1\n", "a mapping of name: number"),
])
def test_bad_thresholds_name_file_line_and_key(tmp_path: Path, change, expect: str) -> None:  # type: ignore[no-untyped-def]
    path = write(tmp_path, change(SHIPPED_THRESHOLDS.read_text()))
    with pytest.raises(RuleThresholdsError) as e:
        load_thresholds(path)
    assert str(path) in str(e.value) and expect in str(e.value), str(e.value)
    with pytest.raises(RankerError, match="rules.yaml"):
        make_ranker(f"rules:{path}")


@pytest.mark.slow
def test_calibration_chooses_the_fastest_feasible_point() -> None:
    # The whole training suite (400 incidents, ~60 no-fault ones): on a smaller sample a single
    # action on a no-fault page already crosses the 5% line, and no point is feasible.
    grid = {"rollout_window_s": (900.0, 3600.0), "oom_ratio": (0.01, 0.6)}
    result = calibrate("default", seed=1, grid=grid)
    assert len(result.rows) == 4
    feasible = [r for r in result.rows if r.feasible]
    assert result.chosen is not None and result.chosen in feasible
    assert result.chosen.mttr_s == min(r.mttr_s for r in feasible)
    # The loose triggers of the old table act on noisy pages; the search rules them out.
    loose = next(r for r in result.rows if r.values == {"rollout_window_s": 3600.0, "oom_ratio": 0.01})
    assert not loose.feasible
    assert isinstance(result.thresholds, RuleThresholds)
    assert result.thresholds.oom_ratio == result.chosen.values["oom_ratio"]


def test_calibration_never_looks_at_the_evaluation_suite() -> None:
    with pytest.raises(CalibrationError, match="held out"):
        calibrate("eval", episodes=5)
    with pytest.raises(CalibrationError, match="unknown: oom"):
        calibrate("default", episodes=5, grid={"oom": (0.5,)})
