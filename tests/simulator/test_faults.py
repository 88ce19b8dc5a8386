"""Each fault's declared effect table holds against the cluster mechanics."""

from __future__ import annotations

import functools
import math
import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import pytest

from remediator.actions import Action, ActionKind
from remediator.snapshot import Slo
from remediator.verify import unmet
from simulator.cluster import Cluster, true_signals
from simulator.faults import FAULTS, Effect
from simulator.incident import Incident, IncidentSpec
from simulator.topology import Topology, generate

SEEDS = (11, 12, 13, 14)
TOPOLOGY: Topology = generate(12, seed=3)


def _service(fault: str) -> str:
    probe = FAULTS[fault](None)  # type: ignore[arg-type]
    return next((s.name for s in TOPOLOGY.services if probe.suits(s)), TOPOLOGY.services[0].name)


@dataclass(frozen=True)
class Run:
    """One incident over the whole horizon (also after recovery, so every run covers the same window)."""

    recovered: bool
    recovery_s: float
    bad: float  # share of the requests that failed or took longer than the SLO latency
    missing: float  # mean share of the baseline replicas not ready


def _run(fault: str, seed: int, kind: ActionKind | None) -> Run:
    inc = Incident(TOPOLOGY, IncidentSpec((fault,), _service(fault), seed, noise=0.02))
    if kind is not None and kind is not ActionKind.NOOP:
        target = inc._target_for(kind)
        assert target is not None, f"{fault}: no target for {kind.value}"
        inc.cluster.apply(Action(kind, target, {"factor": 1.5} if "factor" in _FACTOR_KINDS.get(kind, "") else
                                 inc._params(kind)))
    w, slo = inc.cluster.focus, inc.tracker.slo
    requests = bad = missing = 0.0
    ticks = 0
    while inc.elapsed < inc.horizon_s:
        inc.cluster.step()
        s = true_signals(inc.cluster)
        inc.tracker.observe(s, inc.cluster.now)
        # The simulator's latency distribution: P(latency <= x) = 1 - 100^(-x / p99).
        fast = 1.0 - math.exp(-slo.latency_p99_s * math.log(100.0) / w.p99) if w.p99 > 0 else 1.0
        requests += w.rps
        bad += w.rps * (1.0 - (1.0 - w.error_ratio) * fast)
        missing += max(0.0, s.baseline_replicas - s.available_replicas) / max(s.baseline_replicas, 1.0)
        ticks += 1
    return Run(inc.recovered, inc.recovery_s, bad / requests if requests else 1.0, missing / ticks)


@functools.cache
def _waiting(fault: str) -> tuple[Run, ...]:
    return tuple(_run(fault, s, None) for s in SEEDS)


FASTER_S = 30.0  # a recovery this much earlier (or later) than waiting's counts as a change
# A mean change in the bad-request share that counts. Shifted random draws alone move one seed by up to
# 0.03 (memory_leak / restart_dependency), so WORSE also needs every seed to be worse.
HARM = 0.005
CAPACITY = 0.015  # a change in the missing-replica share that counts (a rolling restart alone costs ~0.011)


def classify(waiting: Sequence[Run], acted: Sequence[Run]) -> Effect:
    """What an action did, measured against waiting on the same seeds.

    FIXES: all seeds but at most one recover, and all but at most one more than FASTER_S earlier.
    WORSE: no seed recovers earlier, and every seed recovers later or serves more bad requests
    (by HARM on average). PARTLY: not a fix, but some seed recovers earlier, or fewer requests
    go bad (by HARM) or fewer replicas are missing (by CAPACITY). NOTHING: none of these.
    """
    n = len(waiting)
    pairs = list(zip(waiting, acted))
    faster = sum(a.recovery_s < b.recovery_s - FASTER_S for b, a in pairs)
    slower = sum(a.recovery_s > b.recovery_s + FASTER_S for b, a in pairs)
    if faster >= n - 1 and sum(a.recovered for a in acted) >= n - 1:
        return Effect.FIXES
    d_bad = statistics.fmean(a.bad - b.bad for b, a in pairs)
    d_missing = statistics.fmean(a.missing - b.missing for b, a in pairs)
    if not faster and (slower == n or (all(a.bad > b.bad for b, a in pairs) and d_bad > HARM)):
        return Effect.WORSE
    if faster or d_bad < -HARM or d_missing < -CAPACITY:
        return Effect.PARTLY
    return Effect.NOTHING


_FACTOR_KINDS = {ActionKind.RAISE_MEMORY_LIMIT: "factor", ActionKind.RAISE_CPU_LIMIT: "factor",
                 ActionKind.RAISE_HPA_MAX: "factor", ActionKind.EXPAND_VOLUME: "factor",
                 ActionKind.SCALE_OUT: "factor"}

CASES = [pytest.param(f, k, e, id=f"{f}-{k.value}")
         for f, cls in sorted(FAULTS.items()) for k, e in cls.effects.items()]


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_fault_breaks_the_slo_when_the_alert_fires(fault: str) -> None:
    for seed in SEEDS:
        inc = Incident(TOPOLOGY, IncidentSpec((fault,), _service(fault), seed))
        assert unmet(true_signals(inc.cluster), inc.tracker.slo), f"{fault} seed {seed}: healthy at firing"
        assert inc.alert.name


def test_healthy_cluster_meets_its_slo() -> None:
    """Without a fault every service of generated topologies is within its SLO."""
    for n, seed in ((5, 1), (12, 3), (30, 9)):
        topo = generate(n, seed)
        for svc in topo.services:
            cluster = Cluster(topo, svc.name, random.Random(seed), noise=0.05)
            for _ in range(8):
                cluster.step()
            assert not unmet(true_signals(cluster), Slo()), (n, svc.name)


@pytest.mark.parametrize(("fault", "kind", "effect"), CASES)
def test_effect_table(fault: str, kind: ActionKind, effect: Effect) -> None:
    waiting = _waiting(fault)
    if kind is ActionKind.NOOP:
        assert effect is Effect.FIXES and all(b.recovered for b in waiting), waiting
        return
    acted = [_run(fault, s, kind) for s in SEEDS]
    msg = (f"{fault} / {kind.value}, declared {effect.value}: recovery {[round(a.recovery_s) for a in acted]} "
           f"vs waiting {[round(b.recovery_s) for b in waiting]}; bad requests "
           f"{statistics.fmean(a.bad for a in acted):.3f} vs {statistics.fmean(b.bad for b in waiting):.3f}; "
           f"missing replicas {statistics.fmean(a.missing for a in acted):.3f} vs "
           f"{statistics.fmean(b.missing for b in waiting):.3f}")
    assert classify(waiting, acted) is effect, msg


def test_classify_tells_the_four_effects_apart() -> None:
    """The same waiting runs, and an action that changed nothing, one that cost some requests on every seed,
    one that saved some, and one that fixed the incident: four different answers."""
    waiting = [Run(False, 1800.0, 0.40, 0.1), Run(False, 1800.0, 0.42, 0.1), Run(True, 900.0, 0.30, 0.1)]
    same = list(waiting)
    worse = [Run(b.recovered, b.recovery_s, b.bad + 0.01, b.missing) for b in waiting]
    partly = [Run(b.recovered, b.recovery_s, b.bad - 0.05, b.missing) for b in waiting]
    fixed = [Run(True, 120.0, 0.02, 0.0) for _ in waiting]
    assert [classify(waiting, a) for a in (same, worse, partly, fixed)] == [
        Effect.NOTHING, Effect.WORSE, Effect.PARTLY, Effect.FIXES]
    # Fewer replicas missing is a partial help too, and one seed recovering early is not a fix.
    capacity = [Run(b.recovered, b.recovery_s, b.bad, b.missing - 0.05) for b in waiting]
    assert classify(waiting, capacity) is Effect.PARTLY
    one = [Run(True, 100.0, 0.01, 0.0), *waiting[1:]]
    assert classify(waiting, one) is Effect.PARTLY


def test_a_rollback_after_a_restart_still_undoes_the_bad_rollout() -> None:
    """The restart (a revert's, or a guess) is a revision with the bad template; the rollback goes
    back past it to the last template that differs, as the live executor does."""
    inc = Incident(TOPOLOGY, IncidentSpec(("bad_rollout",), _service("bad_rollout"), 5))
    w = inc.cluster.focus
    target = inc.observe().workload
    assert target is not None
    bad = w.current
    inc.execute(Action(ActionKind.RESTART_ROLLOUT, target))
    assert w.current.crash_after_s == bad.crash_after_s > 0  # the restart kept the broken template
    inc.execute(Action(ActionKind.ROLLBACK_ROLLOUT, target))
    assert w.current.crash_after_s == 0
    inc.advance(600.0)
    assert inc.recovered
