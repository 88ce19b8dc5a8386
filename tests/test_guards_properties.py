"""Safety invariants of the guards, over random sequences of proposals.

A small world of workloads (one protected, one in kube-system) receives random actions —
random kinds, targets inside and outside the incident, valid and invalid parameters, random
gaps in time — through a loop that executes what the guards allow (and, when a coin says a
human approved, what needs approval) and appends it to the history. Whatever the sequence,
what was executed must respect every budget, cooldown, bound, namespace, label, freeze and
breaker. The checks below use their own notion of "same target", not `target_key`.

The example counts keep the suite to a few seconds; to dig, raise them:
`GUARD_PROPERTY_EXAMPLES=2000 pytest tests/test_guards_properties.py`.
"""

from __future__ import annotations

import math
import os
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from remediator.actions import ACTION_KINDS, PASSIVE_KINDS, SPECS, Action, ActionKind, ObjectRef, Risk
from remediator.guards import (
    GUARDS,
    Decision,
    Executed,
    FreezeWindow,
    GuardPolicy,
    Verdict,
    judge,
    planned_replicas,
)
from remediator.snapshot import Alert, Signals, Snapshot

K = ActionKind
T0 = 1_704_456_000.0
PROTECTED = "remediator.io/protected"
FREEZE = (T0 + 7200.0, T0 + 9000.0)
GUARD_NAMES = {g.__name__.removesuffix("_guard") for g in GUARDS}
EXAMPLES = int(os.environ.get("GUARD_PROPERTY_EXAMPLES", "50"))
# No example database: the checkout is shared, and a failure prints its example anyway.
PROPERTY_SETTINGS = settings(max_examples=EXAMPLES, deadline=None, database=None)
SIDE_SETTINGS = settings(max_examples=max(EXAMPLES * 2 // 3, 1), deadline=None, database=None)


@dataclass(frozen=True)
class Workload:
    namespace: str
    name: str
    node: str
    deps: tuple[str, ...] = ()
    protected: bool = False

    @property
    def ref(self) -> ObjectRef:
        return ObjectRef("Deployment", self.namespace, self.name)

    @property
    def pods(self) -> tuple[str, ...]:
        return (f"{self.name}-5d4c3-a1b2c", f"{self.name}-5d4c3-x9y8z")

    @property
    def hpa(self) -> ObjectRef:
        return ObjectRef("HorizontalPodAutoscaler", self.namespace, self.name)

    @property
    def pvc(self) -> ObjectRef:
        return ObjectRef("PersistentVolumeClaim", self.namespace, f"{self.name}-data")


WORLD = (
    Workload("shop", "cart", "node-1", deps=("db",)),
    Workload("shop", "db", "node-2"),
    Workload("shop", "checkout", "node-1", deps=("db",), protected=True),
    Workload("kube-system", "coredns", "node-2"),
    Workload("payments", "api", "node-3", deps=("ledger",)),
    Workload("payments", "ledger", "node-3"),
)
# Which workload each step's alert is about: mostly cart, so that its limits are reached.
BUSY = (0, 0, 1, 0, 4, 2, 0, 3, 5, 1)
# Every object of the world, for proposals that name something outside the incident.
UNIVERSE = tuple(
    {
        ref
        for w in WORLD
        for ref in (
            w.ref,
            w.hpa,
            w.pvc,
            ObjectRef("Node", "", w.node),
            *(ObjectRef("Pod", w.namespace, p) for p in w.pods),
        )
    }
)


@dataclass
class State:
    """The cluster as far as the loop changes it: replicas and HPA maxima per workload."""

    desired: dict[str, int] = field(default_factory=lambda: {w.name: 3 for w in WORLD})
    hpa_max: dict[str, int] = field(default_factory=lambda: {w.name: 5 for w in WORLD})


def snapshot_of(w: Workload, state: State, now: float, pdb: float, hpa: bool = True) -> Snapshot:
    return Snapshot(
        alert=Alert(
            "KubePodCrashLooping", {"namespace": w.namespace, "deployment": w.name}, starts_at=now - 60
        ),
        at=now,
        workload=w.ref,
        signals=Signals(
            desired_replicas=state.desired[w.name],
            baseline_replicas=4,
            hpa_present=1 if hpa else 0,
            hpa_max=state.hpa_max[w.name] if hpa else 0,
            pvc_present=1,
            has_previous_revision=1,
            pdb_disruptions_allowed=pdb,
        ),
        node=w.node,
        pods=w.pods,
        hpa=w.hpa if hpa else None,
        pvc=w.pvc,
        dependencies=tuple(ObjectRef("Deployment", w.namespace, d) for d in w.deps),
        workload_labels={PROTECTED: "true"} if w.protected else {"app": w.name},
    )


def own_target(kind: ActionKind, w: Workload, pick: int) -> ObjectRef:
    if kind is K.DELETE_POD:
        return ObjectRef("Pod", w.namespace, w.pods[pick % 2])
    if kind is K.RAISE_HPA_MAX:
        return w.hpa
    if kind is K.EXPAND_VOLUME:
        return w.pvc
    if kind is K.CORDON_DRAIN_NODE:
        return ObjectRef("Node", "", w.node)
    if kind is K.RESTART_DEPENDENCY and w.deps:
        return ObjectRef("Deployment", w.namespace, w.deps[pick % len(w.deps)])
    return w.ref


def same_target(action: Action, w: Workload) -> tuple[str, str, str]:
    """The spec's "same target", written independently of `remediator.guards.target_key`."""
    if action.kind is K.CORDON_DRAIN_NODE:
        return ("Node", "", action.target.name)
    if action.kind is K.RESTART_DEPENDENCY:
        return ("Deployment", action.target.namespace, action.target.name)
    return ("Deployment", w.namespace, w.name)


# Parameters an LLM or a buggy proposer might send, whatever the kind.
JUNK_PARAMS: tuple[dict[str, Any], ...] = (
    {},
    {"replicas": "5"},
    {"replicas": True},
    {"replicas": 4, "factor": 1.5},
    {"size": 9},
    {"factor": math.nan},
)
factor_st = st.one_of(st.sampled_from([1.5, 2.0, 1.25, 3.0, 1.0, 0.5]), st.floats(0.5, 3.5))
replicas_st = st.one_of(st.sampled_from([5, 6, 4, 8, 12, 3, 40, 0]), st.integers(-1, 40))


def params_for(kind: ActionKind) -> st.SearchStrategy[dict[str, Any]]:
    """Plausible parameters for the kind, in or out of bounds."""
    if kind is K.SCALE_OUT:
        return st.one_of(
            st.fixed_dictionaries({"replicas": replicas_st}),
            st.fixed_dictionaries({"factor": factor_st}),
        )
    if kind is K.RESTORE_REPLICAS:
        return st.fixed_dictionaries({"replicas": st.sampled_from([4, 3, 2, 1, 5, 0, -1])})
    if kind in (K.RAISE_MEMORY_LIMIT, K.RAISE_CPU_LIMIT):
        return st.fixed_dictionaries({"factor": factor_st})
    if kind is K.RAISE_HPA_MAX:
        return st.one_of(
            st.fixed_dictionaries({"max_replicas": replicas_st}),
            st.fixed_dictionaries({"factor": factor_st}),
        )
    return st.just({})


@dataclass(frozen=True)
class Step:
    dt: float
    workload: int
    kind: ActionKind
    foreign: ObjectRef | None  # None: a target inside the incident
    pick: int
    params: dict[str, Any]
    pdb: float
    approve: bool
    outcome: bool | None


# Kinds the proposals draw from: every kind, with the bounded and the frequent ones weighted up.
ALL_KINDS = (
    K.SCALE_OUT, K.RESTART_ROLLOUT, K.RAISE_HPA_MAX, K.RESTORE_REPLICAS, K.DELETE_POD, *ACTION_KINDS,
)  # fmt: skip
# A burst on one busy workload: the kinds that share its cooldown and budget, and its node.
BURST_KINDS = (K.RESTART_ROLLOUT, K.DELETE_POD, K.SCALE_OUT, K.RAISE_HPA_MAX, K.EXPAND_VOLUME,
               K.ROLLBACK_ROLLOUT, K.RESTART_DEPENDENCY, K.CORDON_DRAIN_NODE, K.NOOP)  # fmt: skip
# Gaps between proposals: the cooldown and hour boundaries exactly, either side of them, and
# values in between. Discrete, because every draw costs time and only the edges matter.
DT_ST = st.sampled_from([60.0, 0.0, 299.0, 300.0, 301.0, 900.0, 3600.0, 1.0, 120.0, 450.5, 1799.0, 59.9])
BURST_DT_ST = st.sampled_from([30.0, 0.0, 59.0, 60.0, 299.0, 300.0, 0.5, 120.0, 240.0, 301.0])
# (PDB disruptions allowed, a human approves, outcome) in one draw.
CIRCUMSTANCES = tuple(
    (pdb, approve, outcome)
    for pdb in (math.inf, 1.0, 0.0)
    for approve in (True, False)
    for outcome in (True, False, None)
)


@st.composite
def step_st(
    draw: st.DrawFn,
    kinds: Sequence[ActionKind] = ALL_KINDS,
    workloads: Sequence[int] = BUSY,
    dt: st.SearchStrategy[float] = DT_ST,
    outside: bool = True,
) -> Step:
    kind = draw(st.sampled_from(kinds))
    mode = draw(st.integers(0, 39))  # 1 in 8 junk parameters, 1 in 5 a target outside the incident
    junk, foreign = mode < 5, outside and 5 <= mode < 13
    pdb, approve, outcome = draw(st.sampled_from(CIRCUMSTANCES))
    return Step(
        dt=draw(dt),
        workload=draw(st.sampled_from(workloads)),
        kind=kind,
        foreign=draw(st.sampled_from(UNIVERSE)) if foreign else None,
        pick=mode % 4,
        params=draw(st.sampled_from(JUNK_PARAMS) if junk else params_for(kind)),
        pdb=pdb,
        approve=approve,
        outcome=outcome,
    )


burst_st = step_st(kinds=BURST_KINDS, workloads=(0, 0, 0, 1), dt=BURST_DT_ST)


# Mostly workable policies, with the prohibitive edges (zero budgets, factor 1) still reachable.
# Hypothesis favours the first entries of `sampled_from`: the common values come first.
policy_st = st.builds(
    GuardPolicy,
    cooldown_s=st.sampled_from([300.0, 60.0, 900.0, 0.0]),
    target_budget_per_hour=st.sampled_from([3, 2, 4, 1, 5, 6, 3, 2, 4, 1, 5, 6, 0]),
    global_budget_per_hour=st.sampled_from([8, 5, 12, 3, 20, 6, 10, 4, 15, 2, 7, 0]),
    max_replicas=st.sampled_from([20, 8, 30, 5, 12, 4, 3, 1]),
    max_scale_factor=st.sampled_from([2.0, 1.5, 3.0, 1.25, 1.0]),
    max_limit_factor=st.sampled_from([2.0, 1.5, 3.0, 1.0]),
    max_hpa_factor=st.sampled_from([2.0, 1.5, 3.0, 1.0]),
    approval_risk=st.sampled_from([Risk.HIGH, None, Risk.MEDIUM, Risk.LOW]),
    breaker_failures=st.integers(1, 4),
    breaker_window_s=st.sampled_from([600.0, 3600.0]),
    freeze_windows=st.sampled_from(
        [[], [FreezeWindow(start="2024-01-05T14:00:00Z", end="2024-01-05T14:30:00Z", name="release")]]
    ),
    dry_run=st.booleans(),
)


@dataclass(frozen=True)
class Run:
    """One executed action with what the loop knew when it ran."""

    action: Action
    at: float
    workload: Workload
    key: tuple[str, str, str]
    current: int
    planned: int | None
    succeeded: bool | None
    entry: Executed  # what the loop appended to the history
    hpa: bool  # an HPA scaled the workload  # what the loop appended to the history


def check_verdict(v: Verdict, policy: GuardPolicy) -> None:
    if v.decision is Decision.ALLOW:
        assert v.guard == ""
        assert v.reason.startswith("dry-run: ") == policy.dry_run
    else:
        assert v.guard in GUARD_NAMES
        assert v.reason.startswith(f"{v.guard}: ") and len(v.reason) > len(v.guard) + 2
        assert (v.decision is Decision.NEEDS_APPROVAL) == (v.guard == "risk")


def simulate(steps: Sequence[Step], policy: GuardPolicy) -> tuple[list[Run], list[Verdict]]:
    state, now = State(), T0
    history: list[Executed] = []
    runs: list[Run] = []
    verdicts: list[Verdict] = []
    for step in steps:
        now += step.dt
        w = WORLD[step.workload]
        # Half the direct scales meet an HPA (the hpa guard refuses them), half none (so that
        # their bounds are reached); every other kind sees the HPA.
        hpa = step.kind not in (K.SCALE_OUT, K.RESTORE_REPLICAS) or step.pick % 2 == 1
        snapshot = snapshot_of(w, state, now, step.pdb, hpa)
        target = step.foreign or own_target(step.kind, w, step.pick)
        action = Action(step.kind, target, step.params)
        v = judge(action, snapshot, tuple(history), policy, now)
        check_verdict(v, policy)
        verdicts.append(v)
        if not (v.allowed or (v.decision is Decision.NEEDS_APPROVAL and step.approve)):
            continue
        # As the executor does: the entry keeps the target key of the incident it ran in.
        history.append(Executed.record(action, snapshot, now, step.outcome))
        planned = None
        current = state.hpa_max[w.name] if step.kind is K.RAISE_HPA_MAX else state.desired[w.name]
        if step.kind in (K.SCALE_OUT, K.RESTORE_REPLICAS, K.RAISE_HPA_MAX):
            planned = planned_replicas(action, snapshot)
            (state.hpa_max if step.kind is K.RAISE_HPA_MAX else state.desired)[w.name] = planned
        runs.append(Run(action, now, w, same_target(action, w), current, planned, step.outcome, history[-1], hpa))
    return runs, verdicts


def active(runs: list[Run]) -> list[Run]:
    return [r for r in runs if r.action.kind not in PASSIVE_KINDS]


def max_in_any_hour(times: list[float]) -> int:
    times = sorted(times)
    return max((sum(1 for u in times if t <= u < t + 3600.0) for t in times), default=0)


def check_runs(runs: list[Run], policy: GuardPolicy) -> None:
    """The safety invariants over what was executed."""
    acting = active(runs)
    by_key: dict[tuple[str, str, str], list[Run]] = defaultdict(list)
    for r in acting:
        by_key[r.key].append(r)

    # (a) budgets in every sliding hour, per target and globally
    for key, rs in by_key.items():
        assert max_in_any_hour([r.at for r in rs]) <= policy.target_budget_per_hour, key
    assert max_in_any_hour([r.at for r in acting]) <= policy.global_budget_per_hour

    # (b) cooldown between two executions on the same target
    for key, rs in by_key.items():
        for earlier, later in zip(rs, rs[1:], strict=False):
            assert later.at - earlier.at >= policy.cooldown_s, (key, earlier.at, later.at)

    # (c) scale bounds; under an HPA (always observed here) a scale moves the HPA's bounds and is bounded alike
    for r in acting:
        params = r.action.params
        if r.action.kind in (K.SCALE_OUT, K.RAISE_HPA_MAX):
            bound = policy.max_scale_factor if r.action.kind is K.SCALE_OUT else policy.max_hpa_factor
            assert r.planned is not None and r.current < r.planned <= policy.max_replicas
            assert r.planned <= max(r.current, 1) * bound + 1e-9
            if "factor" in params:
                assert params["factor"] <= bound
                assert r.current * params["factor"] - 1e-6 <= r.planned < r.current * params["factor"] + 1
            else:
                assert r.planned == params.get("replicas", params.get("max_replicas"))
        elif r.action.kind is K.RESTORE_REPLICAS:
            assert r.planned is not None and 1 <= r.planned <= min(policy.max_replicas, 4)
        elif r.action.kind in (K.RAISE_MEMORY_LIMIT, K.RAISE_CPU_LIMIT):
            assert 1.0 < params["factor"] <= policy.max_limit_factor

    for r in acting:
        # (d) nothing in a denied namespace, (e) nothing on a protected workload
        assert "kube-system" not in (r.action.target.namespace, r.workload.namespace), r
        assert not r.workload.protected, r
        # the action was inside the incident and of the right kind of object
        assert r.action.target.kind == SPECS[r.action.kind].target_kind
        # (f) nothing inside a freeze window
        if policy.freeze_windows:
            assert not FREEZE[0] <= r.at < FREEZE[1], r

    # (g) nothing on a target whose breaker is open: fewer failures than the limit before each run
    for rs in by_key.values():
        for i, r in enumerate(rs):
            failed = [e for e in rs[:i] if e.succeeded is False and r.at - e.at < policy.breaker_window_s]
            assert len(failed) < policy.breaker_failures, r


@PROPERTY_SETTINGS
@given(st.lists(step_st(), min_size=8, max_size=40), policy_st)
def test_executed_actions_respect_every_guard(steps: list[Step], policy: GuardPolicy) -> None:
    runs, _ = simulate(steps, policy)
    check_runs(runs, policy)


@PROPERTY_SETTINGS
@given(st.lists(burst_st, min_size=8, max_size=40), policy_st)
def test_bursts_on_one_workload_respect_every_guard(steps: list[Step], policy: GuardPolicy) -> None:
    """Short gaps on one workload, so that cooldowns, budgets and the breaker are reached."""
    runs, _ = simulate(steps, policy)
    check_runs(runs, policy)


SCALE_KINDS = (K.SCALE_OUT, K.RAISE_HPA_MAX, K.RESTORE_REPLICAS, K.SCALE_OUT, K.RAISE_MEMORY_LIMIT,
               K.RAISE_HPA_MAX, K.SCALE_OUT, K.RAISE_CPU_LIMIT)  # fmt: skip
scale_st = step_st(kinds=SCALE_KINDS, workloads=(0,), outside=False)
# Timing limits out of the way, so that long runs of scaling steps execute and compound.
scale_policy_st = st.builds(
    GuardPolicy,
    cooldown_s=st.just(0.0),
    target_budget_per_hour=st.just(10_000),
    global_budget_per_hour=st.just(10_000),
    breaker_failures=st.just(10_000),
    max_replicas=st.sampled_from([20, 8, 30, 50, 5, 12, 4, 3, 1]),
    max_scale_factor=st.sampled_from([2.0, 1.5, 3.0, 1.25, 1.1, 1.0]),
    max_limit_factor=st.sampled_from([2.0, 1.5, 3.0, 1.0]),
    max_hpa_factor=st.sampled_from([2.0, 1.5, 3.0, 1.1, 1.0]),
    approval_risk=st.just(None),
)


@PROPERTY_SETTINGS
@given(st.lists(scale_st, min_size=8, max_size=40), scale_policy_st)
def test_scaling_stays_in_bounds(steps: list[Step], policy: GuardPolicy) -> None:
    runs, _ = simulate(steps, policy)
    check_runs(runs, policy)


@SIDE_SETTINGS
@given(st.lists(step_st(), min_size=1, max_size=30), policy_st, st.randoms(use_true_random=False))
def test_judge_is_pure_and_ignores_history_order(
    steps: list[Step], policy: GuardPolicy, rnd: random.Random
) -> None:
    runs, _ = simulate(steps[:-1], policy)
    history = [r.entry for r in runs]
    last = steps[-1]
    w = WORLD[last.workload]
    now = (runs[-1].at if runs else T0) + last.dt
    snapshot = snapshot_of(w, State(), now, last.pdb)
    action = Action(last.kind, last.foreign or own_target(last.kind, w, last.pick), last.params)
    frozen_history = tuple(history)
    first = judge(action, snapshot, frozen_history, policy, now)
    assert judge(action, snapshot, frozen_history, policy, now) == first
    shuffled = list(history)
    rnd.shuffle(shuffled)
    again = judge(action, snapshot, shuffled, policy, now)
    assert (again.decision, again.guard) == (first.decision, first.guard)
    assert tuple(history) == frozen_history


@SIDE_SETTINGS
@given(st.lists(step_st(), min_size=1, max_size=30), st.lists(step_st(), max_size=10), policy_st)
def test_more_history_never_lifts_a_deny(steps: list[Step], extra: list[Step], policy: GuardPolicy) -> None:
    """Cooldowns, budgets and the breaker only tighten as history grows."""
    runs, _ = simulate(steps[:-1], policy)
    history = [r.entry for r in runs]
    last = steps[-1]
    w = WORLD[last.workload]
    now = (runs[-1].at if runs else T0) + last.dt
    snapshot = snapshot_of(w, State(), now, last.pdb)
    action = Action(last.kind, last.foreign or own_target(last.kind, w, last.pick), last.params)
    more = history + [
        Executed(
            Action(s.kind, s.foreign or own_target(s.kind, WORLD[s.workload], s.pick), s.params),
            now - s.dt,
            s.outcome,
        )
        for s in extra
    ]
    before, after = judge(action, snapshot, history, policy, now), judge(action, snapshot, more, policy, now)
    if before.decision is Decision.DENY:
        assert after.decision is Decision.DENY
    if before.decision is Decision.NEEDS_APPROVAL:
        assert after.decision is not Decision.ALLOW


def test_the_loop_executes_and_denies_for_each_reason() -> None:
    """The properties above are not vacuous: a plain run executes actions and hits each limit."""
    policy = GuardPolicy(
        cooldown_s=300, target_budget_per_hour=2, global_budget_per_hour=4, breaker_failures=2
    )
    cart = 0
    steps = [
        Step(0, cart, K.RESTART_ROLLOUT, None, 0, {}, math.inf, False, False),  # runs
        Step(100, cart, K.SCALE_OUT, None, 0, {"replicas": 5}, math.inf, False, None),  # cooldown
        Step(300, cart, K.SCALE_OUT, None, 0, {"replicas": 5}, math.inf, False, False),  # runs
        Step(400, cart, K.DELETE_POD, None, 0, {}, math.inf, False, None),  # breaker open (2 failures)
        Step(0, 1, K.RESTART_ROLLOUT, None, 0, {}, math.inf, False, True),  # db runs
        Step(0, 4, K.RESTART_ROLLOUT, None, 0, {}, math.inf, False, True),  # payments/api runs
        Step(0, 5, K.RESTART_ROLLOUT, None, 0, {}, math.inf, False, True),  # global budget (4)
        Step(0, 3, K.RESTART_ROLLOUT, None, 0, {}, math.inf, False, True),  # kube-system
        Step(0, 2, K.RESTART_ROLLOUT, None, 0, {}, math.inf, False, True),  # protected
        Step(0, 1, K.NOOP, None, 0, {}, math.inf, False, True),  # passive always runs
    ]
    runs, verdicts = simulate(steps, policy)
    assert [v.guard for v in verdicts] == [
        "",
        "cooldown",
        "",
        "circuit_breaker",
        "",
        "",
        "global_budget",
        "namespace",
        "protected",
        "",
    ]
    assert len(runs) == 5 and len(active(runs)) == 4
