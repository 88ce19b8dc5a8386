"""Each fault's declared effect table holds against the cluster mechanics."""

from __future__ import annotations

import random
import statistics

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


def _run(fault: str, seed: int, kind: ActionKind | None) -> Incident:
    inc = Incident(TOPOLOGY, IncidentSpec((fault,), _service(fault), seed, noise=0.02))
    if kind is not None and kind is not ActionKind.NOOP:
        target = inc._target_for(kind)
        assert target is not None, f"{fault}: no target for {kind.value}"
        inc.cluster.apply(Action(kind, target, {"factor": 1.5} if "factor" in _FACTOR_KINDS.get(kind, "") else
                                 inc._params(kind)))
    inc.advance(inc.horizon_s)
    return inc


_FACTOR_KINDS = {ActionKind.RAISE_MEMORY_LIMIT: "factor", ActionKind.RAISE_CPU_LIMIT: "factor",
                 ActionKind.RAISE_HPA_MAX: "factor", ActionKind.EXPAND_VOLUME: "factor",
                 ActionKind.SCALE_OUT: "factor"}

CASES = [(f, k, e) for f, cls in sorted(FAULTS.items()) for k, e in cls.effects.items()]


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


@pytest.mark.parametrize(("fault", "kind", "effect"), CASES, ids=[f"{f}-{k.value}" for f, k, _ in CASES])
def test_effect_table(fault: str, kind: ActionKind, effect: Effect) -> None:
    base = [_run(fault, s, None) for s in SEEDS]
    acted = [_run(fault, s, kind) for s in SEEDS]
    base_t = statistics.fmean(i.recovery_s for i in base)
    act_t = statistics.fmean(i.recovery_s for i in acted)
    base_ok = sum(i.recovered for i in base)
    act_ok = sum(i.recovered for i in acted)
    msg = f"{fault} / {kind.value}: acted {act_t:.0f}s ({act_ok}/4) vs waiting {base_t:.0f}s ({base_ok}/4)"
    if kind is ActionKind.NOOP:
        assert effect is Effect.FIXES and base_ok == len(SEEDS), msg
    elif effect is Effect.FIXES:
        assert act_ok >= len(SEEDS) - 1 and act_t < base_t - 30, msg
    elif effect is Effect.NOTHING:
        assert act_ok <= base_ok + 1 and act_t >= 0.75 * base_t - 60, msg
    elif effect is Effect.WORSE:
        assert act_t >= base_t - 30, msg
    else:  # PARTLY: helps some, not reliably
        assert act_t <= base_t + 60, msg
