"""The shipped suites replay bit for bit: the same incidents, drawn and simulated in the same order.

Every recorded benchmark figure (README, the shipped policy's acceptance) was measured on these
incidents. A change to the simulator that moves one random draw, or changes one series value,
changes the digest below; a change meant to leave the shipped worlds alone must leave it alone.
The digests were recorded before suites could describe their own worlds (explicit graphs, named
fault ranges, start-up times), and those features must not have moved them.
"""

from __future__ import annotations

import dataclasses
import hashlib

import pytest

from remediator.actions import Action
from simulator.cluster import TICK_S
from simulator.incident import Incident, IncidentSpec
from simulator.suite import load_suite

COUNT = 30  # incidents per suite: every fault of the mix, variants and dialects among them
# sha256 over the first COUNT incidents of each suite: spec, alert, the series and objects the agent
# sees at the alert, then again after the expert's first step and five minutes (new pods' start-ups).
# Re-recorded twice, on purpose: eval, eval_large and validation when restart_dependency began to aim
# at the dependency furthest past its SLO (the expert's first step there restarts another workload);
# every suite when the request counters came over the trend window (for `errors_since`) and the
# shipped suites began to digest Secrets, and to hold sealed copies, in half their clusters each.
DIGESTS = {
    "default": "ceb063fbe355ab6e727a8e2d55504a75d469befa74aa13ad0f1ff78f65d27a0c",
    "eval": "15e1d901c0671258c5a3fe6547770165465765bcd3712b55f9e2ff792263f39d",
    "eval_large": "1535c4ef97f349cb9bea02c197b3ec2c2200ca889db4363e1153f07a78174c03",
    "shifted": "44924654cb2e7a87dd867781caa969ee899f173c2720a5cc933238fe3d099b65",
    "validation": "e75255f807374dbfe9957692ff008a3969e5c321f3df27127a46eb886c01d335",
}


def suite_digest(name: str, count: int = COUNT) -> str:
    suite = load_suite(name)
    topology = suite.topology.build()
    h = hashlib.sha256()
    for spec in suite.specs(count=count):
        h.update(_recorded_repr(spec).encode())
        inc = Incident(topology, spec, suite.horizon_s, suite.dynamics)
        a = inc.alert
        h.update(repr((a.name, sorted(a.labels.items()), a.starts_at)).encode())
        _scrape(h, inc)
        kind = inc.best_plan()[0]
        target = inc._target_for(kind)
        if target is not None:
            inc.cluster.apply(Action(kind, target, inc._params(kind)))
        inc.advance(300.0)
        _scrape(h, inc)
    return h.hexdigest()


# IncidentSpec's fields when the digests were recorded; a field added since must sit at its
# default in the shipped suites (the world they always were), and is left out of the digest.
RECORDED_FIELDS = ("faults", "service", "seed", "variant", "noise", "sli", "sidecar", "scrape_labels", "alert_for",
                   "statefulset", "secret_digests", "secret_revert")


def _recorded_repr(spec: IncidentSpec) -> str:
    for f in dataclasses.fields(spec):
        if f.name not in RECORDED_FIELDS:
            assert getattr(spec, f.name) == f.default, f"{f.name} is {getattr(spec, f.name)!r}, not its default"
    return f"IncidentSpec({', '.join(f'{n}={getattr(spec, n)!r}' for n in RECORDED_FIELDS)})"


def _scrape(h: hashlib._Hash, inc: Incident) -> None:
    c = inc.cluster
    for s in c.series(until=c.now - TICK_S, alert_start=inc.alert_at):
        h.update(repr((s.name, sorted(s.labels.items()), s.points)).encode())
    h.update(repr(c.objects()).encode())


@pytest.mark.parametrize("name", sorted(DIGESTS))
def test_shipped_suite_replays_bit_for_bit(name: str) -> None:
    assert suite_digest(name) == DIGESTS[name], (
        f"suite {name}'s incidents changed: a random draw moved or a series value changed")


def test_the_digest_sees_one_moved_draw(monkeypatch: pytest.MonkeyPatch) -> None:
    """One extra draw where each workload is built moves every later timing: the digest changes."""
    from simulator.cluster import Cluster

    before = suite_digest("shifted", count=5)
    make = Cluster._make_workload

    def with_extra_draw(self: Cluster, *args: object, **kwargs: object) -> object:
        self.rng.random()
        return make(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Cluster, "_make_workload", with_extra_draw)
    assert suite_digest("shifted", count=5) != before
