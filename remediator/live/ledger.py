"""The ledger: an SQLite audit trail of every incident, and the experience the policy learns from.

One file holds what happened and why: the alerts as received (deduplicated by fingerprint
and start time), the incidents they opened, each snapshot the agent observed (signals and
the encoded observation), every candidate with its guard verdict and reason, every
execution with its idempotency key, its plan and its inverse (recorded *before* the first
API call), and the outcome with the recovery time.

Durability: WAL journal with `synchronous=FULL`, so a row is on disk when `commit` returns;
the receiver replies 200 only after that. Schema changes are numbered migrations recorded
in `schema_migrations`; opening an older file upgrades it in place.

    >>> ledger = Ledger(":memory:")
    >>> ledger.schema_version() == len(MIGRATIONS)
    True
"""

from __future__ import annotations

import dataclasses
import json
import math
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from remediator.actions import PASSIVE_KINDS, SPECS, Action, ActionKind, ObjectRef
from remediator.guards import Executed
from remediator.incident import ACTIVE, REOPENABLE, ApprovalState, IncidentStatus, check_transition
from remediator.snapshot import Alert, Attempt
from remediator.versions import KnownGood, known_good_from_doc, known_good_to_doc, same_versions, with_sealed

__all__ = ["ACTIVE", "MIGRATIONS", "AlertReceipt", "ApprovalDecision", "ApprovalRow", "ExecutionRow", "IncidentRow",
           "Ledger", "ReceivedAlert", "approval_summary"]

# The passive kinds as an SQL list (they are enum values, never user text).
_PASSIVE_SQL = ", ".join(sorted(f"'{k.value}'" for k in PASSIVE_KINDS))
_ACTIVE_SQL = ", ".join(sorted(f"'{s.value}'" for s in ACTIVE))

# Incident states (remediator.incident): `open` incidents are worked on by the loop.
OPEN = IncidentStatus.OPEN
AWAITING_APPROVAL = IncidentStatus.AWAITING_APPROVAL

MIGRATIONS: tuple[tuple[str, str], ...] = (
    ("initial schema", """
CREATE TABLE incidents (
    id INTEGER PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    starts_at REAL NOT NULL,
    alertname TEXT NOT NULL,
    namespace TEXT NOT NULL DEFAULT '',
    labels TEXT NOT NULL,
    annotations TEXT NOT NULL,
    status TEXT NOT NULL,
    opened_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    next_at REAL NOT NULL,
    closed_at REAL,
    close_reason TEXT,
    workload TEXT,
    streak INTEGER NOT NULL DEFAULT 0,
    last_decision_at REAL,
    recovered_at REAL,
    recovery_s REAL,
    note TEXT,
    UNIQUE (fingerprint, starts_at)
);
CREATE INDEX incidents_due ON incidents (status, next_at);
CREATE TABLE alerts (
    id INTEGER PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    starts_at REAL NOT NULL,
    incident_id INTEGER REFERENCES incidents (id),
    alertname TEXT NOT NULL,
    status TEXT NOT NULL,
    labels TEXT NOT NULL,
    annotations TEXT NOT NULL,
    ends_at REAL,
    generator_url TEXT NOT NULL DEFAULT '',
    group_key TEXT NOT NULL DEFAULT '',
    received INTEGER NOT NULL DEFAULT 1,
    first_received_at REAL NOT NULL,
    last_received_at REAL NOT NULL,
    UNIQUE (fingerprint, starts_at)
);
CREATE TABLE snapshots (
    id INTEGER PRIMARY KEY,
    incident_id INTEGER NOT NULL REFERENCES incidents (id),
    at REAL NOT NULL,
    purpose TEXT NOT NULL,
    workload TEXT,
    signals TEXT,
    observation TEXT,
    missing TEXT NOT NULL DEFAULT '[]',
    problem TEXT
);
CREATE INDEX snapshots_incident ON snapshots (incident_id);
CREATE TABLE candidates (
    id INTEGER PRIMARY KEY,
    incident_id INTEGER NOT NULL REFERENCES incidents (id),
    snapshot_id INTEGER NOT NULL REFERENCES snapshots (id),
    position INTEGER NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    params TEXT NOT NULL,
    score REAL NOT NULL,
    proposer_score REAL NOT NULL,
    source TEXT NOT NULL,
    rationale TEXT NOT NULL,
    verdict TEXT NOT NULL,
    reason TEXT NOT NULL,
    guard TEXT NOT NULL,
    chosen INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX candidates_incident ON candidates (incident_id);
CREATE TABLE executions (
    id INTEGER PRIMARY KEY,
    incident_id INTEGER REFERENCES incidents (id),
    candidate_id INTEGER REFERENCES candidates (id),
    undo_of INTEGER REFERENCES executions (id),
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    params TEXT NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    dry_run INTEGER NOT NULL,
    state TEXT NOT NULL,
    plan TEXT NOT NULL,
    workload_key TEXT,
    result TEXT,
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    finished_at REAL
);
CREATE INDEX executions_state ON executions (state);
CREATE TABLE inverses (
    execution_id INTEGER PRIMARY KEY REFERENCES executions (id),
    plan TEXT NOT NULL,
    reversible INTEGER NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    recorded_at REAL NOT NULL,
    applied_by INTEGER REFERENCES executions (id)
);
CREATE TABLE outcomes (
    id INTEGER PRIMARY KEY,
    incident_id INTEGER NOT NULL REFERENCES incidents (id),
    execution_id INTEGER REFERENCES executions (id),
    at REAL NOT NULL,
    recovered INTEGER NOT NULL,
    recovery_s REAL,
    reason TEXT NOT NULL
);
"""),
    # Why the proposer's own candidates were not used (an LLM provider that refused, timed out
    # or answered nothing valid), on the snapshot the decision was taken on.
    ("proposer notes", "ALTER TABLE snapshots ADD COLUMN proposer_note TEXT;"),
    # What each workload used while its SLO held (remediator.versions.KnownGood): its ConfigMaps
    # (with their data), its Secrets (a keyed digest, and with secret reverts on their values sealed,
    # never in plain text) and its Service. One row
    # per distinct set of versions; `last_seen` moves while the same versions keep holding.
    ("last-known-good versions", """
CREATE TABLE known_good (
    id INTEGER PRIMARY KEY,
    namespace TEXT NOT NULL,
    workload TEXT NOT NULL,
    first_seen REAL NOT NULL,
    last_seen REAL NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX known_good_workload ON known_good (namespace, workload, last_seen);
"""),
    # Approval requests (remediator.live.approval): one pending request per incident at most;
    # `run_state` says what became of an approved one (executed once, or refused by the guards
    # when judged again at execution time). Refused decisions (an approver not on the allow-list,
    # a forged or stale request that named an approval) are kept in approval_refusals.
    ("approvals", """
CREATE TABLE approvals (
    id INTEGER PRIMARY KEY,
    incident_id INTEGER NOT NULL REFERENCES incidents (id),
    candidate_id INTEGER REFERENCES candidates (id),
    snapshot_id INTEGER REFERENCES snapshots (id),
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    params TEXT NOT NULL,
    reason TEXT NOT NULL,
    requested_at REAL NOT NULL,
    deadline REAL NOT NULL,
    state TEXT NOT NULL,
    decided_at REAL,
    approver TEXT,
    channel TEXT,
    preview TEXT NOT NULL DEFAULT '{}',
    message TEXT NOT NULL DEFAULT '{}',
    run_state TEXT,
    run_note TEXT,
    execution_id INTEGER REFERENCES executions (id)
);
CREATE UNIQUE INDEX approvals_one_pending ON approvals (incident_id) WHERE state = 'pending';
CREATE INDEX approvals_state ON approvals (state, deadline);
CREATE TABLE approval_refusals (
    id INTEGER PRIMARY KEY,
    approval_id INTEGER,
    at REAL NOT NULL,
    channel TEXT NOT NULL,
    who TEXT NOT NULL,
    reason TEXT NOT NULL
);
"""),
    # An incident closed as recovered while its alert kept firing reopens (`reopen_still_firing`);
    # its horizon then counts from the reopening.
    ("reopened incidents", "ALTER TABLE incidents ADD COLUMN reopened_at REAL;"),
)


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=_json_default, allow_nan=False)


def _json_default(value: Any) -> Any:
    if isinstance(value, ObjectRef):
        return {"kind": value.kind, "namespace": value.namespace, "name": value.name}
    raise TypeError(f"cannot store {type(value).__name__} in the ledger")


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def ref_to_dict(ref: ObjectRef) -> dict[str, str]:
    return {"kind": ref.kind, "namespace": ref.namespace, "name": ref.name}


def ref_from_dict(doc: dict[str, Any]) -> ObjectRef:
    return ObjectRef(str(doc["kind"]), str(doc.get("namespace", "")), str(doc["name"]))


@dataclass(frozen=True)
class ReceivedAlert:
    """One alert of an Alertmanager webhook, as the receiver validated it."""

    alert: Alert
    ends_at: float | None = None
    generator_url: str = ""
    group_key: str = ""


@dataclass(frozen=True)
class AlertReceipt:
    """What became of one received alert: `new` first sighting, else a merged duplicate.

    `held`: stored, but its source already has its share of open incidents, so it opened none
    (a later re-send opens one when there is room). `error`: this alert alone could not be
    stored (nothing of it was written); the other alerts of the batch were.
    """

    fingerprint: str
    starts_at: float
    status: str
    new: bool
    incident_id: int | None
    closed_incident: bool = False
    held: bool = False
    error: str | None = None


# Intake caps (DESIGN §1, issue 15): a flood from one source must not bury a fresh incident
# elsewhere. A source is (namespace, alertname, workload label); the labels alone decide it,
# since the workload is only resolved from the cluster later, by the loop.
MAX_OPEN_PER_SOURCE = 10
MAX_OPEN_PER_NAMESPACE = 100
SOURCE_LABELS = ("deployment", "statefulset", "daemonset", "job_name")
# The same source in SQL, to interleave due incidents source by source.
_SOURCE_SQL = "namespace || char(31) || alertname" + "".join(
    f" || char(31) || COALESCE(json_extract(labels, '$.{name}'), '')" for name in SOURCE_LABELS)
# An alert's own fault (unencodable text, a value SQLite refuses): that alert is rejected alone.
# Anything else (I/O, a locked or closed database) is the store's fault and fails the batch.
_ALERT_FAULTS = (ValueError, TypeError, OverflowError, sqlite3.DataError, sqlite3.IntegrityError)


@dataclass(frozen=True)
class IncidentRow:
    id: int
    fingerprint: str
    starts_at: float
    alert: Alert
    status: str
    opened_at: float
    updated_at: float
    next_at: float
    closed_at: float | None
    close_reason: str | None
    workload: str | None
    streak: int
    last_decision_at: float | None
    recovered_at: float | None
    recovery_s: float | None
    note: str | None
    reopened_at: float | None = None  # when it reopened after closing as recovered (its alert still fired)

    @property
    def worked_since(self) -> float:
        """Where its horizon starts: the alert, or the reopening."""
        return max(self.starts_at, self.reopened_at or 0.0)


@dataclass(frozen=True)
class ExecutionRow:
    id: int
    incident_id: int | None
    candidate_id: int | None
    undo_of: int | None
    action: Action
    idempotency_key: str
    dry_run: bool
    state: str
    plan: dict[str, Any]
    workload_key: ObjectRef | None
    result: dict[str, Any] | None
    error: str | None
    attempts: int
    created_at: float
    finished_at: float | None
    inverse: dict[str, Any] | None = field(default=None)


@dataclass(frozen=True)
class ApprovalRow:
    """One approval request: the action waiting for a human, what was shown, and what became of it."""

    id: int
    incident_id: int
    candidate_id: int | None
    snapshot_id: int | None
    action: Action
    reason: str  # why it waits: the guard's needs_approval reason, or "mode: approve"
    requested_at: float
    deadline: float
    state: ApprovalState
    decided_at: float | None
    approver: str | None
    channel: str | None
    preview: dict[str, Any]  # the server-side dry run of the action (remediator.live.executor.Preview)
    message: dict[str, Any]  # what the approver is shown: alert, evidence, candidates
    run_state: str | None  # None (not run yet) | executed | refused (judged again at execution time)
    run_note: str | None
    execution_id: int | None

    @property
    def to_run(self) -> bool:
        """Approved and not yet executed or refused."""
        return self.state is ApprovalState.APPROVED and self.run_state is None


@dataclass(frozen=True)
class ApprovalDecision:
    """What one decision did: `changed` False when it found the request already decided (it changes
    nothing), expired, or its incident closed; `message` says which, for the human who decided."""

    approval: ApprovalRow
    changed: bool
    message: str


class Ledger:
    """Thread-safe access to the SQLite ledger (one connection, one lock; WAL for readers)."""

    def __init__(self, path: Path | str, *, clock: Any = time.time) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._clock = clock
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30.0)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute("PRAGMA busy_timeout=30000")
        self._migrate()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ plumbing

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return list(self._db.execute(sql, args).fetchall())

    def _migrate(self) -> None:
        with self._tx() as db:
            db.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                       "name TEXT NOT NULL, applied_at REAL NOT NULL)")
            done = {r[0] for r in db.execute("SELECT version FROM schema_migrations")}
            for version, (name, sql) in enumerate(MIGRATIONS, start=1):
                if version in done:
                    continue
                for statement in sql.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)", (version, name, self._clock()))

    def schema_version(self) -> int:
        return int(self._query("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")[0][0])

    # ------------------------------------------------------------------ alerts and incidents

    def record_alerts(self, alerts: Sequence[ReceivedAlert], *, received_at: float | None = None
                      ) -> list[AlertReceipt]:
        """Persist alerts in one transaction: new ones open incidents, duplicates merge, resolved close.

        Each alert has its own savepoint: one the store refuses is rolled back alone and its
        receipt carries the `error`; the others commit. A store failure raises (nothing is kept).
        """
        now = self._clock() if received_at is None else received_at
        receipts: list[AlertReceipt] = []
        with self._tx() as db:
            for item in alerts:
                db.execute("SAVEPOINT alert")
                try:
                    receipts.append(self._record_alert(db, item, now))
                except _ALERT_FAULTS as e:
                    db.execute("ROLLBACK TO alert")
                    a = item.alert
                    receipts.append(AlertReceipt(a.fingerprint, a.starts_at, a.status, False, None,
                                                 error=f"{type(e).__name__}: {e}"))
                db.execute("RELEASE alert")
        return receipts

    def _record_alert(self, db: sqlite3.Connection, item: ReceivedAlert, now: float) -> AlertReceipt:
        a = item.alert
        labels, annotations = _dumps(dict(a.labels)), _dumps(dict(a.annotations))
        row = db.execute("SELECT id, incident_id, status FROM alerts WHERE fingerprint = ? AND starts_at = ?",
                         (a.fingerprint, a.starts_at)).fetchone()
        held = False
        if row is not None:
            # A late duplicate of the firing notification never reopens a resolved alert.
            db.execute("UPDATE alerts SET received = received + 1, last_received_at = ?, "
                       "status = CASE WHEN status = 'resolved' THEN status ELSE ? END, "
                       "ends_at = COALESCE(?, ends_at), annotations = ? WHERE id = ?",
                       (now, a.status, item.ends_at if a.status == "resolved" else None, annotations, row["id"]))
            incident_id = row["incident_id"]
            new = False
            if incident_id is None and row["status"] == "firing" and a.status == "firing":
                # A held alert, sent again: it opens its incident if its source has room now.
                incident_id = self._open_incident(db, a, labels, annotations, now)
                held = incident_id is None
                if incident_id is not None:
                    db.execute("UPDATE alerts SET incident_id = ? WHERE id = ?", (incident_id, row["id"]))
        else:
            incident_id = None
            if a.status == "firing":
                incident_id = self._open_incident(db, a, labels, annotations, now)
                held = incident_id is None
            else:  # resolved without ever having seen it fire: the incident it would close
                found = db.execute("SELECT id FROM incidents WHERE fingerprint = ? AND starts_at = ?",
                                   (a.fingerprint, a.starts_at)).fetchone()
                incident_id = found[0] if found is not None else None
            db.execute(
                "INSERT INTO alerts (fingerprint, starts_at, incident_id, alertname, status, labels, annotations, "
                "ends_at, generator_url, group_key, first_received_at, last_received_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (a.fingerprint, a.starts_at, incident_id, a.name, a.status, labels, annotations,
                 item.ends_at if a.status == "resolved" else None, item.generator_url, item.group_key, now, now))
            new = True
        closed = False
        if a.status == "resolved" and incident_id is not None:
            closed = self._close_on_resolve(db, incident_id, item.ends_at if item.ends_at is not None else now, now)
        return AlertReceipt(a.fingerprint, a.starts_at, a.status, new, incident_id, closed, held)

    def _open_incident(self, db: sqlite3.Connection, a: Alert, labels: str, annotations: str, now: float
                       ) -> int | None:
        """The incident of a firing alert, opened now unless its source or namespace is at its cap (None)."""
        found = db.execute("SELECT id FROM incidents WHERE fingerprint = ? AND starts_at = ?",
                           (a.fingerprint, a.starts_at)).fetchone()
        if found is not None:
            return int(found[0])
        source = [a.labels.get(name, "") for name in SOURCE_LABELS]
        in_namespace, in_source = db.execute(
            "SELECT COUNT(*), COALESCE(SUM(alertname = ? AND "
            + " AND ".join(f"COALESCE(json_extract(labels, '$.{name}'), '') = ?" for name in SOURCE_LABELS)
            + "), 0) FROM incidents WHERE status IN (?, ?) AND namespace = ?",
            (a.name, *source, *ACTIVE, a.namespace)).fetchone()
        if in_source >= MAX_OPEN_PER_SOURCE or in_namespace >= MAX_OPEN_PER_NAMESPACE:
            return None
        return int(db.execute(
            "INSERT INTO incidents (fingerprint, starts_at, alertname, namespace, labels, annotations, "
            "status, opened_at, updated_at, next_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (a.fingerprint, a.starts_at, a.name, a.namespace, labels, annotations, OPEN, now, now, now),
        ).fetchone()[0])

    def _close_on_resolve(self, db: sqlite3.Connection, incident_id: int, ends_at: float, now: float) -> bool:
        inc = db.execute("SELECT status, starts_at FROM incidents WHERE id = ?", (incident_id,)).fetchone()
        if inc is None or inc["status"] not in ACTIVE:
            return False
        # An incident holding several alerts (one per pod of its workload) ends with the last of them.
        if db.execute("SELECT COUNT(*) FROM alerts WHERE incident_id = ? AND status = 'firing'",
                      (incident_id,)).fetchone()[0]:
            return False
        acted, rehearsed = db.execute(
            "SELECT COALESCE(SUM(dry_run = 0), 0), COALESCE(SUM(dry_run = 1), 0) FROM executions "
            f"WHERE incident_id = ? AND action NOT IN ({_PASSIVE_SQL}) AND state = 'done' AND undo_of IS NULL",
            (incident_id,)).fetchone()
        if acted:
            status, reason = IncidentStatus.RESOLVED, f"alert resolved at {_iso(ends_at)} after remediation"
            recovery = max(0.0, ends_at - inc["starts_at"])
            db.execute("INSERT INTO outcomes (incident_id, execution_id, at, recovered, recovery_s, reason) "
                       "VALUES (?, (SELECT MAX(id) FROM executions WHERE incident_id = ?), ?, 1, ?, ?)",
                       (incident_id, incident_id, now, recovery, "alert resolved (not SLO-verified)"))
        else:  # dry runs changed nothing: no action of ours gets the credit
            what = "with only dry runs executed" if rehearsed else "before any action"
            status, reason, recovery = IncidentStatus.CANCELLED, f"alert resolved at {_iso(ends_at)} {what}", None
        check_transition(inc["status"], status)
        db.execute("UPDATE incidents SET status = ?, close_reason = ?, closed_at = ?, updated_at = ?, "
                   "recovery_s = COALESCE(recovery_s, ?) WHERE id = ?",
                   (str(status), reason, now, now, recovery, incident_id))
        return True

    def join_workload_incident(self, incident_id: int, workload: str, now: float) -> int | None:
        """One incident per workload. Record that `incident_id` is about `workload`; if another
        active incident already works on it, this one (when it has executed nothing) joins that
        one: its alerts move there, and it closes as cancelled, naming where they went. Returns the
        incident joined, or None. Three crash-looping pods of one Deployment make one incident."""
        with self._tx() as db:
            row = db.execute("SELECT status, workload FROM incidents WHERE id = ?", (incident_id,)).fetchone()
            if row is None or row["status"] not in ACTIVE:
                return None
            other = db.execute("SELECT id FROM incidents WHERE workload = ? AND id != ? AND status IN (?, ?) "
                               "ORDER BY id LIMIT 1", (workload, incident_id, *ACTIVE)).fetchone()
            executed = db.execute("SELECT COUNT(*) FROM executions WHERE incident_id = ?", (incident_id,)).fetchone()[0]
            if other is None or executed:
                if row["workload"] != workload:
                    db.execute("UPDATE incidents SET workload = ?, updated_at = ? WHERE id = ?",
                               (workload, now, incident_id))
                return None
            into = int(other[0])
            db.execute("UPDATE alerts SET incident_id = ? WHERE incident_id = ?", (into, incident_id))
            check_transition(row["status"], IncidentStatus.CANCELLED)
            db.execute("UPDATE incidents SET status = ?, workload = ?, close_reason = ?, closed_at = ?, updated_at = ? "
                       "WHERE id = ?", (str(IncidentStatus.CANCELLED), workload,
                                        f"joined incident {into}: the same workload {workload}", now, now, incident_id))
            return into

    def reopen_still_firing(self, now: float, *, grace_s: float) -> list[int]:
        """Reopen the incidents closed as recovered at least `grace_s` ago whose alert still fires
        (no resolve came): the SLO looked met, the alert says otherwise, and it must not go silent."""
        reopened = []
        with self._tx() as db:
            rows = db.execute(
                "SELECT id FROM incidents i WHERE status IN (" + ", ".join("?" * len(REOPENABLE)) + ") "
                "AND closed_at <= ? AND EXISTS "
                "(SELECT 1 FROM alerts a WHERE a.incident_id = i.id AND a.status = 'firing')",
                (*REOPENABLE, now - grace_s)).fetchall()
            for r in rows:
                db.execute("UPDATE incidents SET status = ?, reopened_at = ?, next_at = ?, updated_at = ?, streak = 0, "
                           "closed_at = NULL, close_reason = NULL, last_decision_at = NULL, note = ? WHERE id = ?",
                           (str(OPEN), now, now, now, f"reopened: its alert still fires {grace_s:g}s after the SLO "
                            "was verified (the recovery did not hold, or the SLO is not what the alert measures)",
                            r["id"]))
                reopened.append(int(r["id"]))
        return reopened

    def incident(self, incident_id: int) -> IncidentRow | None:
        rows = self._query("SELECT * FROM incidents WHERE id = ?", (incident_id,))
        return _incident(rows[0]) if rows else None

    def incidents(self, *, limit: int = 50, status: str | None = None) -> list[IncidentRow]:
        if status is None:
            rows = self._query("SELECT * FROM incidents ORDER BY id DESC LIMIT ?", (limit,))
        else:
            rows = self._query("SELECT * FROM incidents WHERE status = ? ORDER BY id DESC LIMIT ?", (status, limit))
        return [_incident(r) for r in rows]

    def incidents_updated_since(self, since: float, *, limit: int = 1000) -> list[IncidentRow]:
        """Incidents whose row changed at or after `since`, oldest change first (the operator's mirror)."""
        rows = self._query("SELECT * FROM incidents WHERE updated_at >= ? ORDER BY updated_at, id LIMIT ?",
                           (since, limit))
        return [_incident(r) for r in rows]

    def due_incidents(self, now: float, *, limit: int = 4) -> list[IncidentRow]:
        """The open incidents due by `now`, interleaved: each source's oldest first, then each namespace's.

        Round-robin over sources (then namespaces) so that a flood from one source cannot delay a
        fresh incident of another by more than a few steps; a small `limit` makes the loop ask
        again soon, so what arrived meanwhile takes its turn.
        """
        rows = self._query(
            "SELECT * FROM (SELECT *, "
            f"ROW_NUMBER() OVER (PARTITION BY {_SOURCE_SQL} ORDER BY next_at, id) AS in_source, "
            "ROW_NUMBER() OVER (PARTITION BY namespace ORDER BY next_at, id) AS in_namespace "
            "FROM incidents WHERE status = ? AND next_at <= ?) ORDER BY in_source, in_namespace, next_at, id LIMIT ?",
            (OPEN, now, limit))
        return [_incident(r) for r in rows]

    def next_due_at(self) -> float | None:
        rows = self._query("SELECT MIN(next_at) FROM incidents WHERE status = ?", (OPEN,))
        return None if rows[0][0] is None else float(rows[0][0])

    def update_incident(self, incident_id: int, **fields: Any) -> None:
        allowed = {"status", "next_at", "closed_at", "close_reason", "workload", "streak", "last_decision_at",
                   "recovered_at", "recovery_s", "note"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"cannot update incident fields {sorted(unknown)}")
        fields["updated_at"] = self._clock()
        assignments = ", ".join(f"{k} = ?" for k in fields)
        with self._tx() as db:
            if "status" in fields:
                row = db.execute("SELECT status FROM incidents WHERE id = ?", (incident_id,)).fetchone()
                if row is None:
                    raise KeyError(f"no incident {incident_id}")
                fields["status"] = str(check_transition(row["status"], str(fields["status"])))
            db.execute(f"UPDATE incidents SET {assignments} WHERE id = ?", (*fields.values(), incident_id))

    def alerts_of(self, incident_id: int) -> list[dict[str, Any]]:
        rows = self._query("SELECT * FROM alerts WHERE incident_id = ? ORDER BY id", (incident_id,))
        return [_plain(r) for r in rows]

    def alert_counts(self) -> dict[str, int]:
        row = self._query("SELECT COUNT(*), COALESCE(SUM(received), 0), "
                          "(SELECT COUNT(*) FROM incidents) FROM alerts")[0]
        return {"alerts": int(row[0]), "received": int(row[1]), "incidents": int(row[2])}

    # ------------------------------------------------------------------ observations and decisions

    def record_snapshot(self, incident_id: int, at: float, *, purpose: str, workload: ObjectRef | None,
                        signals: dict[str, float] | None, observation: Sequence[float] | None,
                        missing: Sequence[str] = (), problem: str | None = None) -> int:
        clean = {k: _finite(v) for k, v in signals.items()} if signals is not None else None
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO snapshots (incident_id, at, purpose, workload, signals, observation, missing, problem) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (incident_id, at, purpose, str(workload) if workload else None,
                 _dumps(clean) if clean is not None else None,
                 _dumps([float(x) for x in observation]) if observation is not None else None,
                 _dumps(list(missing)), problem))
            return int(cur.lastrowid or 0)

    def record_candidates(self, incident_id: int, snapshot_id: int, rows: Sequence[dict[str, Any]]) -> list[int]:
        """Rows: action, target (ObjectRef), params, score, proposer_score, source, rationale, verdict,
        reason, guard, chosen."""
        ids = []
        with self._tx() as db:
            for position, r in enumerate(rows):
                cur = db.execute(
                    "INSERT INTO candidates (incident_id, snapshot_id, position, action, target, params, score, "
                    "proposer_score, source, rationale, verdict, reason, guard, chosen) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (incident_id, snapshot_id, position, r["action"], _dumps(ref_to_dict(r["target"])),
                     _dumps(dict(r["params"])), float(r["score"]), float(r["proposer_score"]), r["source"],
                     r["rationale"], r["verdict"], r["reason"], r["guard"], int(bool(r["chosen"]))))
                ids.append(int(cur.lastrowid or 0))
        return ids

    def candidates_of(self, incident_id: int) -> list[dict[str, Any]]:
        rows = self._query("SELECT * FROM candidates WHERE incident_id = ? ORDER BY snapshot_id, position",
                           (incident_id,))
        return [_plain(r, json_fields=("target", "params")) for r in rows]

    def note_proposer(self, snapshot_id: int, note: str) -> None:
        """Record on a decision's snapshot why the proposer fell back (see MIGRATIONS)."""
        with self._tx() as db:
            db.execute("UPDATE snapshots SET proposer_note = ? WHERE id = ?", (note, snapshot_id))

    def snapshots_of(self, incident_id: int) -> list[dict[str, Any]]:
        rows = self._query("SELECT * FROM snapshots WHERE incident_id = ? ORDER BY id", (incident_id,))
        return [_plain(r, json_fields=("signals", "observation", "missing")) for r in rows]

    # ------------------------------------------------------------------ executions

    def record_intent(self, *, incident_id: int | None, candidate_id: int | None, action: Action, key: str,
                      dry_run: bool, plan: dict[str, Any], inverse: dict[str, Any] | None, reversible: bool,
                      inverse_note: str = "", workload_key: ObjectRef | None = None,
                      undo_of: int | None = None) -> int:
        """The intent and its inverse, committed before any API call. Returns the execution id.

        A second intent with the same idempotency key returns the first one's id: the action
        is one execution however often it is retried or resumed.
        """
        now = self._clock()
        with self._tx() as db:
            found = db.execute("SELECT id FROM executions WHERE idempotency_key = ?", (key,)).fetchone()
            if found is not None:
                return int(found[0])
            cur = db.execute(
                "INSERT INTO executions (incident_id, candidate_id, undo_of, action, target, params, "
                "idempotency_key, dry_run, state, plan, workload_key, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'intent', ?, ?, ?)",
                (incident_id, candidate_id, undo_of, action.kind.value, _dumps(ref_to_dict(action.target)),
                 _dumps(dict(action.params)), key, int(dry_run), _dumps(plan),
                 _dumps(ref_to_dict(workload_key)) if workload_key else None, now))
            execution_id = int(cur.lastrowid or 0)
            db.execute("INSERT INTO inverses (execution_id, plan, reversible, note, recorded_at) "
                       "VALUES (?, ?, ?, ?, ?)",
                       (execution_id, _dumps(inverse or {}), int(reversible), inverse_note, now))
        return execution_id

    def update_plan(self, execution_id: int, plan: dict[str, Any], inverse: dict[str, Any] | None,
                    reversible: bool, note: str = "") -> None:
        """A re-read (after a 409) changed what the action does: record the new plan and inverse first."""
        now = self._clock()
        with self._tx() as db:
            db.execute("UPDATE executions SET plan = ? WHERE id = ?", (_dumps(plan), execution_id))
            db.execute("UPDATE inverses SET plan = ?, reversible = ?, note = ?, recorded_at = ? "
                       "WHERE execution_id = ?", (_dumps(inverse or {}), int(reversible), note, now, execution_id))

    def count_attempt(self, execution_id: int) -> None:
        with self._tx() as db:
            db.execute("UPDATE executions SET attempts = attempts + 1 WHERE id = ?", (execution_id,))

    def finish_execution(self, execution_id: int, state: str, *, result: dict[str, Any] | None = None,
                         error: str | None = None) -> None:
        """`done`, `failed`, or `abandoned`: an intent a restart judged again and did not finish."""
        if state not in ("done", "failed", "abandoned"):
            raise ValueError(f"an execution finishes done, failed or abandoned, not {state!r}")
        with self._tx() as db:
            db.execute("UPDATE executions SET state = ?, result = ?, error = ?, finished_at = ? WHERE id = ?",
                       (state, _dumps(result) if result is not None else None, error, self._clock(), execution_id))

    def mark_undone(self, execution_id: int, by: int) -> None:
        with self._tx() as db:
            db.execute("UPDATE inverses SET applied_by = ? WHERE execution_id = ?", (by, execution_id))

    def execution(self, execution_id: int) -> ExecutionRow | None:
        rows = self._query("SELECT e.*, i.plan AS inverse_plan, i.reversible, i.note AS inverse_note, "
                           "i.applied_by FROM executions e LEFT JOIN inverses i ON i.execution_id = e.id "
                           "WHERE e.id = ?", (execution_id,))
        return _execution(rows[0]) if rows else None

    def execution_by_key(self, key: str) -> ExecutionRow | None:
        rows = self._query("SELECT id FROM executions WHERE idempotency_key = ?", (key,))
        return self.execution(int(rows[0][0])) if rows else None

    def executions(self, *, incident_id: int | None = None, state: str | None = None) -> list[ExecutionRow]:
        where, args = _where({"e.incident_id": incident_id, "e.state": state})
        return [_execution(r) for r in self._query(
            "SELECT e.*, i.plan AS inverse_plan, i.reversible, i.note AS inverse_note, i.applied_by "
            f"FROM executions e LEFT JOIN inverses i ON i.execution_id = e.id WHERE {where} ORDER BY e.id", args)]

    def guard_history(self, since: float, *, dry_run: bool, excluding: int | None = None) -> list[Executed]:
        """Executed actions since `since`, for cooldowns, budgets and the circuit breaker.

        Every attempt counts, whatever its outcome (a failed drain may have cordoned the node):
        an execution that failed, or whose incident then failed, counts as failed for the
        breaker. That includes a plan that failed: it changed nothing, but retrying it at once
        would fail again, so it waits for the cooldown and opens the breaker like any failure.
        Dry-run executions count only towards a dry-run agent's guards (what it would have
        done). `excluding` leaves one execution out (the one being judged again on resume).
        """
        rows = self._query(
            "SELECT e.action, e.target, e.params, e.created_at, e.workload_key, e.state, "
            "(SELECT MAX(o.recovered) FROM outcomes o WHERE o.execution_id = e.id) AS recovered "
            "FROM executions e WHERE e.created_at >= ? AND e.dry_run = ? AND e.undo_of IS NULL AND e.id != ? "
            "ORDER BY e.id", (since, int(dry_run), -1 if excluding is None else excluding))
        out = []
        for r in rows:
            action = Action(ActionKind(r["action"]), ref_from_dict(json.loads(r["target"])), json.loads(r["params"]))
            succeeded = None if r["recovered"] is None else bool(r["recovered"])
            if r["state"] == "failed":
                succeeded = False
            key = ref_from_dict(json.loads(r["workload_key"])) if r["workload_key"] else None
            out.append(Executed(action, float(r["created_at"]), succeeded, key))
        return out

    def attempts(self, incident_id: int) -> tuple[Attempt, ...]:
        """This incident's actions as the snapshot's history (what the encoder sees)."""
        rows = self._query("SELECT action, target, created_at, state FROM executions "
                           "WHERE incident_id = ? AND undo_of IS NULL ORDER BY id", (incident_id,))
        return tuple(Attempt(ActionKind(r["action"]), float(r["created_at"]), r["state"] == "done",
                             str(ref_from_dict(json.loads(r["target"])))) for r in rows)

    # ------------------------------------------------------------------ approvals

    def request_approval(self, incident_id: int, *, candidate_id: int | None, snapshot_id: int | None,
                         action: Action, reason: str, deadline: float, preview: dict[str, Any],
                         message: dict[str, Any], note: str, workload: str | None = None,
                         streak: int | None = None, at: float | None = None) -> ApprovalRow:
        """Park the incident as awaiting_approval with its request, in one transaction (never one without
        the other). An incident already waiting keeps its pending request, which is returned."""
        now = self._clock() if at is None else at
        with self._tx() as db:
            found = db.execute("SELECT id FROM approvals WHERE incident_id = ? AND state = ?",
                               (incident_id, ApprovalState.PENDING)).fetchone()
            if found is not None:
                approval_id = int(found[0])
            else:
                row = db.execute("SELECT status FROM incidents WHERE id = ?", (incident_id,)).fetchone()
                if row is None:
                    raise KeyError(f"no incident {incident_id}")
                check_transition(row["status"], IncidentStatus.AWAITING_APPROVAL)
                approval_id = int(db.execute(
                    "INSERT INTO approvals (incident_id, candidate_id, snapshot_id, action, target, params, reason, "
                    "requested_at, deadline, state, preview, message) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "RETURNING id",
                    (incident_id, candidate_id, snapshot_id, action.kind.value, _dumps(ref_to_dict(action.target)),
                     _dumps(dict(action.params)), reason, now, deadline, ApprovalState.PENDING, _dumps(preview),
                     _dumps(message))).fetchone()[0])
                sets = {"status": str(IncidentStatus.AWAITING_APPROVAL), "last_decision_at": now, "note": note,
                        "updated_at": now}
                if workload is not None:
                    sets["workload"] = workload
                if streak is not None:
                    sets["streak"] = streak
                db.execute(f"UPDATE incidents SET {', '.join(f'{k} = ?' for k in sets)} WHERE id = ?",
                           (*sets.values(), incident_id))
        found_row = self.approval(approval_id)
        assert found_row is not None
        return found_row

    def approval(self, approval_id: int) -> ApprovalRow | None:
        rows = self._query("SELECT * FROM approvals WHERE id = ?", (approval_id,))
        return _approval(rows[0]) if rows else None

    def approvals(self, *, state: str | None = None, incident_id: int | None = None) -> list[ApprovalRow]:
        where, args = _where({"state": state, "incident_id": incident_id})
        return [_approval(r) for r in self._query(f"SELECT * FROM approvals WHERE {where} ORDER BY id", args)]

    def approval_to_run(self, incident_id: int) -> ApprovalRow | None:
        """The incident's approved request that has not run yet, if any."""
        rows = self._query("SELECT * FROM approvals WHERE incident_id = ? AND state = ? AND run_state IS NULL "
                           "ORDER BY id DESC LIMIT 1", (incident_id, ApprovalState.APPROVED))
        return _approval(rows[0]) if rows else None

    def approved_candidate(self, candidate_id: int | None) -> bool:
        """Whether a human approved this candidate (an execution resumed after a restart may then need approval)."""
        if candidate_id is None:
            return False
        return bool(self._query("SELECT 1 FROM approvals WHERE candidate_id = ? AND state = ?",
                                (candidate_id, ApprovalState.APPROVED)))

    def decide_approval(self, approval_id: int, *, approve: bool, approver: str, channel: str,
                        at: float | None = None) -> ApprovalDecision:
        """Record a human's decision, atomically and at most once.

        Only a `pending` request before its deadline changes: approve reopens the incident (the
        loop runs the action once, judged again by the guards), deny closes it as `denied`. A
        request already decided, past its deadline (it expires now if nobody noticed yet), or
        whose incident closed meanwhile changes nothing, and the answer says why.
        """
        now = self._clock() if at is None else at
        with self._tx() as db:
            r = db.execute("SELECT * FROM approvals WHERE id = ?", (approval_id,)).fetchone()
            if r is None:
                raise KeyError(f"no approval {approval_id}")
            row = _approval(r)
            if row.state is not ApprovalState.PENDING:
                return ApprovalDecision(row, False, f"approval {approval_id} was already {row.state}"
                                        + (f" by {row.approver} ({row.channel})" if row.approver else "")
                                        + (f" at {_iso(row.decided_at)}" if row.decided_at else "")
                                        + "; this decision changes nothing")
            inc = db.execute("SELECT status FROM incidents WHERE id = ?", (row.incident_id,)).fetchone()
            if inc["status"] != IncidentStatus.AWAITING_APPROVAL:
                self._settle(db, row, ApprovalState.WITHDRAWN, now, None)
                message = (f"approval {approval_id}: incident {row.incident_id} is {inc['status']}; "
                           "nothing left to approve")
            elif now > row.deadline:
                self._settle(db, row, ApprovalState.EXPIRED, now, IncidentStatus.EXPIRED)
                message = (f"approval {approval_id} expired at {_iso(row.deadline)} (no answer by the deadline "
                           "means deny); this decision changes nothing")
            else:
                state = ApprovalState.APPROVED if approve else ApprovalState.DENIED
                db.execute("UPDATE approvals SET state = ?, decided_at = ?, approver = ?, channel = ? WHERE id = ?",
                           (state, now, approver, channel, approval_id))
                what = f"{row.action.describe()} {state} by {approver} ({channel})"
                if approve:
                    db.execute("UPDATE incidents SET status = ?, next_at = ?, updated_at = ?, note = ? WHERE id = ?",
                               (IncidentStatus.OPEN, now, now, f"approval {approval_id}: {what}", row.incident_id))
                else:
                    db.execute("UPDATE incidents SET status = ?, closed_at = ?, updated_at = ?, close_reason = ?, "
                               "note = NULL WHERE id = ?",
                               (IncidentStatus.DENIED, now, now, f"approval {approval_id}: {what}", row.incident_id))
                decided = _approval(db.execute("SELECT * FROM approvals WHERE id = ?", (approval_id,)).fetchone())
                return ApprovalDecision(decided, True, f"approval {approval_id}: {what}")
            settled = _approval(db.execute("SELECT * FROM approvals WHERE id = ?", (approval_id,)).fetchone())
        return ApprovalDecision(settled, False, message)

    def _settle(self, db: sqlite3.Connection, row: ApprovalRow, state: ApprovalState, now: float,
                incident: IncidentStatus | None) -> None:
        """End a pending request without a human decision (expired, withdrawn), and its incident with it."""
        db.execute("UPDATE approvals SET state = ?, decided_at = ? WHERE id = ?", (state, now, row.id))
        if incident is not None:
            check_transition(IncidentStatus.AWAITING_APPROVAL, incident)
            db.execute("UPDATE incidents SET status = ?, closed_at = ?, updated_at = ?, close_reason = ?, "
                       "note = NULL WHERE id = ? AND status = ?",
                       (incident, now, now, f"approval {row.id} for {row.action.describe()} expired at "
                        f"{_iso(row.deadline)} without an answer (no answer means deny)", row.incident_id,
                        IncidentStatus.AWAITING_APPROVAL))

    def expire_approvals(self, now: float) -> list[ApprovalRow]:
        """Settle the pending requests past their deadline (expired: deny) or whose incident closed meanwhile
        (withdrawn). Returns the requests settled now."""
        with self._tx() as db:
            rows = [_approval(r) for r in db.execute(
                "SELECT a.*, i.status AS incident_status FROM approvals a JOIN incidents i ON i.id = a.incident_id "
                "WHERE a.state = ? AND (a.deadline < ? OR i.status != ?)",
                (ApprovalState.PENDING, now, IncidentStatus.AWAITING_APPROVAL)).fetchall()]
            for row in rows:
                status = db.execute("SELECT status FROM incidents WHERE id = ?", (row.incident_id,)).fetchone()[0]
                if status != IncidentStatus.AWAITING_APPROVAL:
                    self._settle(db, row, ApprovalState.WITHDRAWN, now, None)
                else:
                    self._settle(db, row, ApprovalState.EXPIRED, now, IncidentStatus.EXPIRED)
        return [a for a in (self.approval(r.id) for r in rows) if a is not None]

    def finish_approval_run(self, approval_id: int, run_state: str, *, execution_id: int | None = None,
                            note: str = "") -> None:
        """What became of an approved request: `executed` (once) or `refused` by the guards at execution time."""
        if run_state not in ("executed", "refused"):
            raise ValueError(f"an approved request ends executed or refused, not {run_state!r}")
        with self._tx() as db:
            db.execute("UPDATE approvals SET run_state = ?, run_note = ?, execution_id = ? "
                       "WHERE id = ? AND run_state IS NULL", (run_state, note, execution_id, approval_id))

    def record_refusal(self, approval_id: int | None, *, channel: str, who: str, reason: str,
                       at: float | None = None) -> None:
        """A decision refused before it reached the request (wrong approver, bad signature, stale, replayed)."""
        with self._tx() as db:
            db.execute("INSERT INTO approval_refusals (approval_id, at, channel, who, reason) VALUES (?, ?, ?, ?, ?)",
                       (approval_id, self._clock() if at is None else at, channel, who, reason))

    def refusals(self, approval_id: int | None = None) -> list[dict[str, Any]]:
        if approval_id is None:
            return [_plain(r, ()) for r in self._query("SELECT * FROM approval_refusals ORDER BY id")]
        return [_plain(r, ()) for r in self._query("SELECT * FROM approval_refusals WHERE approval_id = ? "
                                                   "ORDER BY id", (approval_id,))]

    # ------------------------------------------------------------------ outcomes

    # ------------------------------------------------------------------ last-known-good versions

    def record_known_good(self, record: KnownGood) -> bool:
        """Keep what a workload used while its SLO held; True when these versions are new for it
        (else only their `last_seen` moves). Secret values never reach the file in plain text
        (`versions.known_good_to_doc` keeps a Secret's sealed token only). A record without a sealed
        token keeps the one already held for the same digest; a fresh token (another key) replaces it."""
        w = record.workload
        key = f"{w.kind}/{w.name}"
        with self._tx() as db:
            row = db.execute("SELECT id, record FROM known_good WHERE namespace = ? AND workload = ? "
                             "ORDER BY last_seen DESC, id DESC LIMIT 1", (w.namespace, key)).fetchone()
            previous = known_good_from_doc(json.loads(row["record"])) if row is not None else None
            record = with_sealed(record, previous)
            if row is not None and previous is not None and same_versions(previous, record):
                resealed = ({c.ref: c.sealed for c in record.configs if c.sealed}
                            != {c.ref: c.sealed for c in previous.configs if c.sealed})
                kept = dataclasses.replace(previous, configs=record.configs) if resealed else previous
                db.execute("UPDATE known_good SET last_seen = MAX(last_seen, ?), record = ? WHERE id = ?",
                           (record.at, _dumps(known_good_to_doc(kept)), row["id"]))
                return False
            db.execute("INSERT INTO known_good (namespace, workload, first_seen, last_seen, record) "
                       "VALUES (?, ?, ?, ?, ?)", (w.namespace, key, record.at, record.at,
                                                  _dumps(known_good_to_doc(record))))
            return True

    def incident_workloads(self, *, limit: int = 50) -> list[str]:
        """The workloads incidents were about (`Kind/namespace/name`), the most recently updated first:
        what the healthy-time sweep (remediator.live.known_good) watches."""
        rows = self._query("SELECT workload FROM incidents WHERE workload IS NOT NULL GROUP BY workload "
                           "ORDER BY MAX(updated_at) DESC LIMIT ?", (limit,))
        return [str(r["workload"]) for r in rows]

    def known_good(self, namespace: str) -> list[KnownGood]:
        """The latest last-known-good record of every workload in the namespace (`at`: last seen good)."""
        rows = self._query("SELECT record, last_seen FROM known_good k WHERE namespace = ? AND id = "
                           "(SELECT id FROM known_good WHERE namespace = k.namespace AND workload = k.workload "
                           "ORDER BY last_seen DESC, id DESC LIMIT 1) ORDER BY workload", (namespace,))
        return [dataclasses.replace(known_good_from_doc(json.loads(r["record"])), at=float(r["last_seen"]))
                for r in rows]

    def record_outcome(self, incident_id: int, *, execution_id: int | None, recovered: bool,
                       recovery_s: float | None, reason: str) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO outcomes (incident_id, execution_id, at, recovered, recovery_s, reason) "
                       "VALUES (?, ?, ?, ?, ?, ?)",
                       (incident_id, execution_id, self._clock(), int(recovered), _finite(recovery_s), reason))

    def outcomes_of(self, incident_id: int) -> list[dict[str, Any]]:
        return [_plain(r) for r in self._query("SELECT * FROM outcomes WHERE incident_id = ? ORDER BY id",
                                               (incident_id,))]

    # ------------------------------------------------------------------ metrics

    def metric_counts(self) -> dict[str, Any]:
        """What the operator's /metrics reports, counted from the ledger (so it survives restarts):
        incidents by status, recovery times of recovered ones, guard denials, proposer fallbacks,
        observations that failed or were not usable, approval requests by state, refused decisions by channel."""
        rows = self._query("SELECT status, COUNT(*) FROM incidents GROUP BY status")
        by_status = {str(r[0]): int(r[1]) for r in rows}
        recovery = [float(r[0]) for r in self._query(
            "SELECT recovery_s FROM incidents WHERE status IN (?, ?) AND recovery_s IS NOT NULL",
            (IncidentStatus.RECOVERED, IncidentStatus.RESOLVED))]
        row = self._query("SELECT (SELECT COUNT(*) FROM candidates WHERE verdict = 'deny'), "
                          "(SELECT COUNT(*) FROM snapshots WHERE proposer_note IS NOT NULL), "
                          "(SELECT COUNT(*) FROM snapshots WHERE problem IS NOT NULL)")[0]
        approvals = {str(r[0]): int(r[1]) for r in self._query("SELECT state, COUNT(*) FROM approvals GROUP BY state")}
        refusals = {str(r[0]): int(r[1]) for r in self._query(
            "SELECT channel, COUNT(*) FROM approval_refusals GROUP BY channel")}
        return {"incidents": by_status, "recovery_s": recovery, "guard_denials": int(row[0]),
                "llm_fallbacks": int(row[1]), "observation_failures": int(row[2]), "approvals": approvals,
                "approval_refusals": refusals}

    # ------------------------------------------------------------------ learning

    def experience(self, *, closed_only: bool = True) -> list[dict[str, Any]]:
        """One record per decision: what the training side consumes (DESIGN §1, learn).

        `observation` is the encoded snapshot the ranker saw, `candidates` the proposed kinds
        (the action mask), `chosen` the kind that ran and `executed` whether it ran without
        error; `recovered`/`escalated`/`recovery_s` are the incident's outcome (recovery_s is the
        horizon when it failed), `since_alert_s` when in the incident the decision was taken.
        """
        sql = ("SELECT c.snapshot_id, c.incident_id, s.at, s.observation, i.starts_at, i.status, i.recovery_s, "
               "GROUP_CONCAT(c.action, ',') AS kinds, MAX(CASE WHEN c.chosen THEN c.action END) AS chosen, "
               "MAX(CASE WHEN c.chosen THEN c.id END) AS candidate_id "
               "FROM candidates c JOIN snapshots s ON s.id = c.snapshot_id JOIN incidents i ON i.id = c.incident_id "
               + (f"WHERE i.status NOT IN ({_ACTIVE_SQL}) " if closed_only else "")
               + "GROUP BY c.snapshot_id ORDER BY c.snapshot_id")
        out = []
        for r in self._query(sql):
            execution = self._query("SELECT state, dry_run FROM executions WHERE candidate_id = ?",
                                    (r["candidate_id"],)) if r["candidate_id"] is not None else []
            out.append({
                "incident_id": r["incident_id"], "at": r["at"], "since_alert_s": r["at"] - r["starts_at"],
                "observation": json.loads(r["observation"]) if r["observation"] else None,
                "candidates": sorted(set(str(r["kinds"]).split(","))), "chosen": r["chosen"],
                "executed": bool(execution) and execution[0]["state"] == "done",
                "dry_run": bool(execution) and bool(execution[0]["dry_run"]),
                "recovered": r["status"] in (IncidentStatus.RECOVERED, IncidentStatus.RESOLVED),
                "escalated": r["status"] == IncidentStatus.ESCALATED,
                "recovery_s": r["recovery_s"],
            })
        return out

    # ------------------------------------------------------------------ reports

    def history(self, *, limit: int = 50) -> list[dict[str, Any]]:
        """Incidents, newest first, each with its alerts, executions and outcomes (for `remediator history`)."""
        out = []
        for inc in self.incidents(limit=limit):
            execs = self.executions(incident_id=inc.id)
            cands = self.candidates_of(inc.id)
            out.append({
                "id": inc.id,
                "alert": inc.alert.name,
                "fingerprint": inc.fingerprint,
                "labels": dict(inc.alert.labels),
                "starts_at": inc.starts_at,
                "status": inc.status,
                "workload": inc.workload,
                "opened_at": inc.opened_at,
                "closed_at": inc.closed_at,
                "close_reason": inc.close_reason,
                "recovery_s": inc.recovery_s,
                "alerts_received": sum(int(a["received"]) for a in self.alerts_of(inc.id)),
                "decisions": len({c["snapshot_id"] for c in cands}),
                "denied": sum(1 for c in cands if c["verdict"] == "deny"),
                "executions": [execution_summary(e) for e in execs],
                "outcomes": self.outcomes_of(inc.id),
                "approvals": [approval_summary(a) for a in self.approvals(incident_id=inc.id)],
            })
        return out


def approval_summary(a: ApprovalRow) -> dict[str, Any]:
    """One approval request as `history --json`, `approve --json` and the webhook answer show it."""
    return {
        "id": a.id,
        "incident": a.incident_id,
        "action": a.action.kind.value,
        "target": ref_to_dict(a.action.target),
        "params": dict(a.action.params),
        "reason": a.reason,
        "state": str(a.state),
        "requested_at": a.requested_at,
        "deadline": a.deadline,
        "decided_at": a.decided_at,
        "approver": a.approver,
        "channel": a.channel,
        "run": a.run_state,
        "run_note": a.run_note,
        "execution": a.execution_id,
        "dry_run": a.preview,
    }


def execution_summary(e: ExecutionRow) -> dict[str, Any]:
    return {
        "id": e.id,
        "action": e.action.kind.value,
        "target": ref_to_dict(e.action.target),
        "params": dict(e.action.params),
        "dry_run": e.dry_run,
        "state": e.state,
        "idempotency_key": e.idempotency_key,
        "undo_of": e.undo_of,
        "created_at": e.created_at,
        "finished_at": e.finished_at,
        "error": e.error,
        "reversible": bool((e.inverse or {}).get("reversible")),
        # Why it cannot be undone (None when it can, or when it changed nothing)
        "irreversible": None if (e.inverse or {}).get("reversible") or e.action.kind in PASSIVE_KINDS or e.dry_run
        else str((e.inverse or {}).get("note") or SPECS[e.action.kind].irreversible or "no inverse was recorded"),
        "undone_by": (e.inverse or {}).get("applied_by"),
    }


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def _where(filters: Mapping[str, Any]) -> tuple[str, list[Any]]:
    """An SQL condition that the given columns (names from the code, never from input) equal their values;
    a None value is no condition."""
    given = {column: value for column, value in filters.items() if value is not None}
    return " AND ".join([f"{column} = ?" for column in given] or ["1 = 1"]), list(given.values())


def _plain(row: sqlite3.Row, json_fields: Sequence[str] = ("labels", "annotations")) -> dict[str, Any]:
    out = dict(row)
    for key in json_fields:
        if isinstance(out.get(key), str):
            out[key] = json.loads(out[key])
    return out


def _incident(r: sqlite3.Row) -> IncidentRow:
    labels = json.loads(r["labels"])
    alert = Alert(name=r["alertname"], labels=labels, annotations=json.loads(r["annotations"]),
                  starts_at=float(r["starts_at"]), status="firing", fingerprint=r["fingerprint"])
    return IncidentRow(
        id=int(r["id"]), fingerprint=r["fingerprint"], starts_at=float(r["starts_at"]), alert=alert,
        status=r["status"], opened_at=r["opened_at"], updated_at=r["updated_at"], next_at=r["next_at"],
        closed_at=r["closed_at"], close_reason=r["close_reason"], workload=r["workload"], streak=int(r["streak"]),
        last_decision_at=r["last_decision_at"], recovered_at=r["recovered_at"], recovery_s=r["recovery_s"],
        note=r["note"], reopened_at=r["reopened_at"])


def _approval(r: sqlite3.Row) -> ApprovalRow:
    action = Action(ActionKind(r["action"]), ref_from_dict(json.loads(r["target"])), json.loads(r["params"]))
    return ApprovalRow(
        id=int(r["id"]), incident_id=int(r["incident_id"]), candidate_id=r["candidate_id"],
        snapshot_id=r["snapshot_id"], action=action, reason=r["reason"], requested_at=float(r["requested_at"]),
        deadline=float(r["deadline"]), state=ApprovalState(r["state"]), decided_at=r["decided_at"],
        approver=r["approver"], channel=r["channel"], preview=json.loads(r["preview"]),
        message=json.loads(r["message"]), run_state=r["run_state"], run_note=r["run_note"],
        execution_id=r["execution_id"])


def _execution(r: sqlite3.Row) -> ExecutionRow:
    action = Action(ActionKind(r["action"]), ref_from_dict(json.loads(r["target"])), json.loads(r["params"]))
    inverse = None
    if r["inverse_plan"] is not None:
        inverse = {"plan": json.loads(r["inverse_plan"]), "reversible": bool(r["reversible"]),
                   "note": r["inverse_note"], "applied_by": r["applied_by"]}
    return ExecutionRow(
        id=int(r["id"]), incident_id=r["incident_id"], candidate_id=r["candidate_id"], undo_of=r["undo_of"],
        action=action, idempotency_key=r["idempotency_key"], dry_run=bool(r["dry_run"]), state=r["state"],
        plan=json.loads(r["plan"]),
        workload_key=ref_from_dict(json.loads(r["workload_key"])) if r["workload_key"] else None,
        result=json.loads(r["result"]) if r["result"] else None, error=r["error"], attempts=int(r["attempts"]),
        created_at=float(r["created_at"]), finished_at=r["finished_at"], inverse=inverse)
