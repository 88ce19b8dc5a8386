"""The healthy-time sweep: last-known-good versions recorded while workloads are healthy.

`revert_config` and `restore_service` put back what a workload used while its SLO held
(remediator/versions.py). The loop records that at a verified recovery; without more, a workload
that never had an incident has no record, and one whose ConfigMap was changed on purpose since
keeps an old one (a revert would put back what someone deliberately replaced). So every
`known_good.interval_s` the sweep visits the watched workloads (those of the ledger's incidents,
and every Deployment, StatefulSet and DaemonSet of `known_good.namespaces`), a few per loop tick
so that incidents keep moving, and for each:

1. skips it while an incident is open for it, or while an incident of its namespace has not
   resolved its workload yet: a version that appears during an incident is a suspect, never a
   known-good one;
2. observes it as an alert about it would (the observer's reads, `observer.API_CALLS`: the
   workload, its pods, the ConfigMaps its template references, the namespace's Services;
   Prometheus for its SLIs);
3. records its ConfigMaps and Service (`Ledger.record_known_good`: a new row when a version
   changed, else only `last_seen` moves) when the observation is usable, the SLO holds
   (`remediator.verify.unmet`: an SLO whose request metrics are not observed never holds) and
   every version was written at least `known_good.settle_s` ago.

Secrets are recorded by name only, with no digest, unless secret reverts are on (`secrets.revert`
with a sealing key; by default the agent's RBAC grants no read of any Secret, remediator/live/rbac.py):
then the observer reads the Secrets a workload references (handing the core only their digests), and
the sweep reads each one again, checks that it still has the digest observed, and records its data
sealed (remediator/live/sealing.py), reusing the token already recorded for that digest and key.
Without it `revert_config` can point a moved reference back, never restore a Secret's values.

    >>> KnownGoodSettings().interval_s, KnownGoodSettings().settle_s
    (300.0, 600.0)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from remediator.actions import ObjectRef
from remediator.live.config import KnownGoodSettings
from remediator.live.ledger import OPEN, Ledger
from remediator.live.observer import ObservationError, Observer
from remediator.live.sealing import Sealer
from remediator.snapshot import WORKLOAD_LABELS, Alert, Snapshot
from remediator.verify import unmet
from remediator.versions import ConfigVersion, KnownGood, config_digest, known_good_of

__all__ = ["SWEEP_ALERT", "KnownGoodSweep", "SecretReader", "SweepReport", "WorkloadLister"]

log = logging.getLogger("remediator.live")

#: The name of the alert the sweep observes a workload under (no such alert fires; the observer
#: reads the same objects and series as for a real one about the workload).
SWEEP_ALERT = "RemediatorKnownGoodSweep"
_LABEL = {kind: label for label, kind in WORKLOAD_LABELS}
#: Workloads observed per loop tick: one observation is a few API reads and a few dozen queries.
PER_TICK = 4


class WorkloadLister(Protocol):
    """The workloads of a namespace (`KubeObjectSource.workloads`)."""

    def workloads(self, namespace: str) -> list[ObjectRef]: ...


class SecretReader(Protocol):
    """One Secret with its data, None when it does not exist (`KubeObjectSource.secret`)."""

    def secret(self, namespace: str, name: str) -> dict[str, Any] | None: ...


@dataclass
class SweepReport:
    """What one tick of the sweep did: the workloads whose record it wrote (`recorded`: new
    versions; `kept`: the same ones seen again) and those it skipped, with why."""

    at: float
    recorded: list[ObjectRef] = field(default_factory=list)
    kept: list[ObjectRef] = field(default_factory=list)
    skipped: list[tuple[ObjectRef, str]] = field(default_factory=list)


def parse_workload(text: str) -> ObjectRef | None:
    """`Kind/namespace/name` (the ledger's `workload` column) as an ObjectRef; None if it is not one."""
    parts = text.split("/", 2)
    return ObjectRef(*parts) if len(parts) == 3 and all(parts) else None


class KnownGoodSweep:
    """Records last-known-good versions of watched workloads while they are healthy (see the module)."""

    def __init__(self, ledger: Ledger, observer: Observer, settings: KnownGoodSettings, *,
                 lister: WorkloadLister | None = None, per_tick: int = PER_TICK,
                 sealer: Sealer | None = None, secrets: SecretReader | None = None) -> None:
        self.ledger = ledger
        self.sealer = sealer  # both set: secret reverts are on (the Secrets' values are sealed)
        self.secrets = secrets
        self.observer = observer
        self.settings = settings
        self.lister = lister
        self.per_tick = per_tick
        self.started_at: float | None = None  # when the current (or last) round began
        self.last_report = SweepReport(0.0)  # what the current (or last) round did so far
        self._queue: list[ObjectRef] = []

    @property
    def enabled(self) -> bool:
        return self.settings.interval_s > 0

    def due(self, now: float) -> bool:
        """Whether a tick at `now` has work: a round under way, or the interval since the last began."""
        if not self.enabled:
            return False
        return bool(self._queue) or self.started_at is None or now - self.started_at >= self.settings.interval_s

    def tick(self, now: float) -> SweepReport:
        """Visit the next few workloads of the round (starting a new round when one is due); the
        round's report so far."""
        if not self.due(now):
            return self.last_report
        if not self._queue:
            self.started_at, self.last_report = now, SweepReport(now)
            self._queue = self.watched()
        batch, self._queue = self._queue[:self.per_tick], self._queue[self.per_tick:]
        for ref in batch:
            self._visit(ref, now, self.last_report)
        return self.last_report

    def run(self, now: float) -> SweepReport:
        """A whole round at once."""
        self.started_at, self.last_report, self._queue = now, SweepReport(now), []
        for ref in self.watched():
            self._visit(ref, now, self.last_report)
        return self.last_report

    def watched(self) -> list[ObjectRef]:
        """The workloads of past incidents, most recent first, then those listed in the namespaces."""
        seen: dict[ObjectRef, None] = {}
        for text in self.ledger.incident_workloads(limit=self.settings.max_workloads):
            ref = parse_workload(text)
            if ref is not None and ref.kind in _LABEL:
                seen[ref] = None
        for ns in self.settings.namespaces:
            if self.lister is None:
                break
            try:
                listed = self.lister.workloads(ns)
            except ObservationError as e:
                log.warning("known-good sweep: cannot list the workloads of %s: %s", ns, e)
                continue
            seen.update((r, None) for r in listed if r.kind in _LABEL)
        return list(seen)[:self.settings.max_workloads]

    # ------------------------------------------------------------------ one workload

    def _visit(self, ref: ObjectRef, now: float, report: SweepReport) -> None:
        busy = self._open_incident(ref)
        if busy:
            report.skipped.append((ref, busy))
            return
        alert = Alert(SWEEP_ALERT, {"namespace": ref.namespace, _LABEL[ref.kind]: ref.name}, starts_at=now)
        recorded = self.ledger.known_good(ref.namespace)
        try:
            obs = self.observer.observe(alert, now=now, known_good=recorded)
        except ObservationError as e:
            report.skipped.append((ref, f"not observed: {e.reason}"))
            return
        snap = obs.snapshot
        why = (obs.problem if not obs.usable else
               f"resolved to {snap.workload}" if snap.workload != ref else self._not_good(snap, now))
        configs: list[ConfigVersion] | str = why or self._sealed(snap.configs, recorded)
        if isinstance(configs, str):
            report.skipped.append((ref, configs))
            return
        record = known_good_of(ref, now, configs, snap.service)
        (report.recorded if self.ledger.record_known_good(record) else report.kept).append(ref)

    def _sealed(self, configs: Sequence[ConfigVersion], recorded: Sequence[KnownGood]) -> list[ConfigVersion] | str:
        """The configs with each read Secret's data sealed (secret reverts on); why not, if one changed
        since it was observed. The values stay in this frame: only the token leaves it."""
        if self.sealer is None or self.secrets is None:
            return list(configs)
        held = {(c.ref, c.digest): c.sealed for k in recorded for c in k.configs
                if c.sealed and self.sealer.sealed_by_me(c.sealed)}
        out = []
        for c in configs:
            if c.secret and c.digest:
                token = held.get((c.ref, c.digest))
                if token is None:
                    try:
                        secret = self.secrets.secret(c.ref.namespace, c.ref.name)
                    except ObservationError as e:
                        return f"{c.ref} not read: {e.reason}"
                    if secret is None or config_digest(secret) != c.digest:
                        return f"{c.ref} changed while it was read: not known good yet"
                    token = self.sealer.seal(c.ref, {"data": dict(secret.get("data") or {})})
                c = replace(c, sealed=token)
            out.append(c)
        return out

    def _open_incident(self, ref: ObjectRef) -> str:
        for inc in self.ledger.incidents(status=OPEN, limit=10_000):
            if inc.workload == str(ref):
                return f"incident {inc.id} is open for it"
            if inc.workload is None and inc.alert.namespace == ref.namespace:
                return f"incident {inc.id} of namespace {ref.namespace} is open and its workload not yet known"
        return ""

    def _not_good(self, snap: Snapshot, now: float) -> str:
        """Why what the snapshot shows is not (yet) known good; "" when it is."""
        problems = unmet(snap.signals, snap.slo, snap.unknown_signals)
        if problems:
            return "SLO does not hold: " + "; ".join(problems)
        versions: Sequence[tuple[ObjectRef, float]] = [(c.ref, c.changed_at) for c in snap.configs] + (
            [(snap.service.ref, snap.service.changed_at)] if snap.service is not None else [])
        for ref, written in versions:
            # A write in the future of `now` (clock skew) is as young as one just made.
            if written > 0 and now - written < self.settings.settle_s:
                return (f"{ref} was written {max(now - written, 0.0):.0f}s ago (settle_s "
                        f"{self.settings.settle_s:g}): not known good yet")
        return ""
