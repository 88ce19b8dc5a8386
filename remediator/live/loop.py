"""The live loop: observe -> propose -> rank -> guard -> execute -> verify, one step at a time.

Every incident is a small state machine kept in the ledger, not in memory, so a restart
picks up where the last process stopped. `Loop.tick(now)` advances the next few due
incidents (`Ledger.due_incidents`: a handful per tick, taking turns by source so that a flood
cannot starve a fresh incident; the worker ticks again at once while more are due) by one step:

1. past the horizon (default 30 min after the alert): close as `failed`, escalate;
2. observe; when Prometheus or the API server is down, or the data are stale, record why
   and look again after `retry_s` -- no decision is ever taken on stale data;
3. feed the SLO tracker (`remediator.verify.RecoveryTracker`, the simulator's criterion):
   `consecutive` healthy observations in a row close the incident as `recovered`, with the
   recovery time from the alert's start;
4. while the last decision is younger than `decision_s`, only observe (verification);
5. otherwise decide (`remediator.agent.decide`: rank, then the guards judge each candidate),
   record every candidate with its verdict, and run the chosen one through the executor
   (dry-run or live). `escalate` closes the incident; an action that must wait for a human
   (`remediator.live.approval.waits_for`: `mode: approve`, or a guard's `needs_approval` in
   `auto`) parks it as `awaiting_approval` with an approval request: the candidate, the snapshot
   id, the server-side dry run of the action (`KubeExecutor.preview`), what the approver is shown,
   and a deadline (`approval.deadline_s`); the notifiers (Slack) are told;
6. an incident whose request was approved comes back `open`: its next step observes again, judges
   the approved action again on the fresh snapshot (the world may have changed while it waited;
   `needs_approval` is what the human answered, a `deny` wins) and runs it once (its idempotency key
   is the request's, so a retry or a restart finds the same execution). A denied or expired request
   closed the incident: nothing of it ever runs. Each tick first expires the requests past their
   deadline (no answer means deny).

A drain (`cordon_drain_node`) waits for evictions and for the evicted pods to go, up to
`drain_timeout_s`: with `background` (the agent's worker sets it) it runs on a small pool of
its own threads, so the other incidents keep moving; its incident only waits until it is done,
and the executor records the result in the ledger when it finishes. A restart in the middle
finds its intent pending and `recover()` judges it again, as for any other execution.

`recover()` finishes executions a crash left half-done (see `KubeExecutor.resume`), each
judged again by the guards on a fresh observation first; a stale or now-refused intent is
abandoned with its reason. The clock is a parameter, so tests drive the loop through
simulated time without sleeping.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from remediator.actions import PASSIVE_KINDS, SPECS, Action, ActionKind
from remediator.agent import decide
from remediator.encoding import encode
from remediator.guards import Decision, GuardPolicy, active_freeze, judge
from remediator.incident import IncidentStatus as Status
from remediator.live.approval import Notifier, message, waits_for
from remediator.live.config import VerifySettings
from remediator.live.executor import ExecutionResult, Executor, idempotency_key
from remediator.live.known_good import KnownGoodSweep
from remediator.live.ledger import OPEN, ApprovalRow, ExecutionRow, IncidentRow, Ledger
from remediator.live.observer import Observation, ObservationError, Observer
from remediator.propose.base import Candidate, Proposer
from remediator.propose.catalog import CatalogProposer
from remediator.rank.base import Ranker
from remediator.snapshot import Snapshot
from remediator.verify import RecoveryTracker
from remediator.versions import known_good_of

__all__ = ["Loop", "StepReport"]

log = logging.getLogger("remediator.live")

HISTORY_S = 2 * 3600.0  # the guards look back at most this far (budgets: 1 h; breaker: its window)


@dataclass(frozen=True)
class StepReport:
    incident_id: int
    # observe_failed | stale | waiting | recovered | acted | awaiting_approval | escalated | failed | approved_refused
    # | joined (another incident works on the workload) | reopened (recovered, but its alert still fires)
    outcome: str
    detail: str = ""
    execution: ExecutionResult | None = None


class Loop:
    def __init__(self, ledger: Ledger, observer: Observer, proposer: Proposer, ranker: Ranker,
                 policy: GuardPolicy, executor: Executor | None, *, mode: str = "dry-run",
                 verify: VerifySettings | None = None, clock: Callable[[], float] = time.time,
                 fallback: Proposer | None = None, background: bool = False, approval_deadline_s: float = 900.0,
                 notifiers: tuple[Notifier, ...] = (), policies: Callable[[str], GuardPolicy] | None = None,
                 sweep: KnownGoodSweep | None = None) -> None:
        self.ledger = ledger
        self.observer = observer
        self.proposer = proposer
        self.fallback = fallback if fallback is not None else CatalogProposer()
        self.ranker = ranker
        self.policy = policy
        # A namespace's guards (the operator's RemediationPolicies over `policy`); None: `policy` everywhere.
        self.policies = policies
        self.executor = executor
        self.mode = mode
        self.verify = verify or VerifySettings()
        self.clock = clock
        self.background = background
        self.approval_deadline_s = approval_deadline_s
        self.notifiers = notifiers
        # Records last-known-good versions while workloads are healthy (remediator/live/known_good.py).
        self.sweep = sweep
        self._running: dict[int, Future[ExecutionResult]] = {}  # incident id -> its drain, off the loop thread
        self._pool: ThreadPoolExecutor | None = None

    @property
    def dry_run(self) -> bool:
        return self.mode == "dry-run" or self.policy.dry_run or (self.executor is not None and self.executor.dry_run)

    def policy_for(self, namespace: str) -> GuardPolicy:
        """The guards that judge an action in `namespace`."""
        return self.policies(namespace) if self.policies is not None and namespace else self.policy

    def policy_of(self, action: Action, inc: IncidentRow | None, snap: Snapshot | None) -> GuardPolicy:
        """The guards of the namespace the action acts in: its target's (a dependency in another
        namespace is judged by that namespace's RemediationPolicy), the workload's for a Node."""
        return self.policy_for(action.target.namespace or self._namespace(inc, snap))

    def _namespace(self, inc: IncidentRow | None, snap: Snapshot | None = None) -> str:
        if snap is not None and snap.workload is not None and snap.workload.namespace:
            return snap.workload.namespace
        return inc.alert.namespace if inc is not None else ""

    # ------------------------------------------------------------------ driving

    def recover(self, now: float | None = None) -> list[ExecutionResult]:
        """Finish the executions a previous process left in `intent` (never twice), each judged
        again on fresh state first: one that is too old, or that the guards now refuse, is
        abandoned with the reason and its incident decides again."""
        if self.executor is None:
            return []
        now = self.clock() if now is None else now
        results = []
        for row in self.executor.pending():
            problem = self._rejudge(row, now)
            if problem is None:
                results.append(self.executor.resume(row.id))
                continue
            log.warning("execution %s (%s) abandoned on resume: %s", row.id, row.action.describe(), problem)
            results.append(self.executor.abandon(row.id, problem))
            if row.incident_id is not None:
                self.ledger.update_incident(row.incident_id, next_at=now,
                                            note=f"execution {row.id} abandoned on resume: {problem}")
        return results

    def _rejudge(self, row: ExecutionRow, now: float) -> str | None:
        """Why a pending execution must not be finished now (None: finish it)."""
        age = now - row.created_at
        if age > self.policy.resume_max_age_s:
            return f"the intent is {age:.0f}s old (resume_max_age_s {self.policy.resume_max_age_s:g})"
        if row.action.kind in PASSIVE_KINDS:
            return None
        inc = self.ledger.incident(row.incident_id) if row.incident_id is not None else None
        if inc is None:
            # An undo or a command-line execution: no incident to observe again. Only what does
            # not need one can be checked: the freeze windows.
            window = active_freeze(self.policy, now)
            return f"freeze: {window.describe()} is in effect" if window is not None else None
        if inc.status != OPEN:
            return f"incident {inc.id} is {inc.status}"
        try:
            obs = self.observer.observe(inc.alert, now=now, history=self.ledger.attempts(inc.id))
        except ObservationError as e:
            return f"the incident cannot be observed again ({e.reason})"
        if not obs.usable:
            return f"the incident's fresh observation is not usable ({obs.problem})"
        history = self.ledger.guard_history(now - HISTORY_S, dry_run=row.dry_run, excluding=row.id)
        verdict = judge(row.action, obs.snapshot, history, self.policy_of(row.action, inc, obs.snapshot), now)
        if verdict.decision is Decision.ALLOW:
            return None
        if verdict.decision is Decision.NEEDS_APPROVAL and self.ledger.approved_candidate(row.candidate_id):
            return None  # a human approved exactly this
        return f"judged again: {verdict.reason}"

    def tick(self, now: float | None = None) -> list[StepReport]:
        now = self.clock() if now is None else now
        reports = [StepReport(i, "reopened", "its alert still fires after recovery")
                   for i in self.ledger.reopen_still_firing(now, grace_s=self.verify.reopen_after_s)]
        for settled in self.ledger.expire_approvals(now):
            log.info("approval %s (%s): %s", settled.id, settled.action.describe(), settled.state)
            self.tell(settled)
            reports.append(StepReport(settled.incident_id, str(settled.state), f"approval {settled.id}"))
        for inc in self.ledger.due_incidents(now):
            try:
                reports.append(self.step(inc, now))
            except Exception as e:  # noqa: BLE001 - one broken incident must not stop the others
                log.exception("incident %s: step failed", inc.id)
                self.ledger.update_incident(inc.id, next_at=now + self.verify.retry_s,
                                            note=f"internal error: {type(e).__name__}: {e}")
                reports.append(StepReport(inc.id, "error", str(e)))
        if self.sweep is not None and self.sweep.due(now):
            try:  # after the incidents, a few workloads per tick: the sweep never delays an incident's step
                self.sweep.tick(now)
            except Exception:  # noqa: BLE001 - a failed sweep must not stop the loop
                log.exception("known-good sweep failed")
        return reports

    def close(self, timeout_s: float = 30.0) -> None:
        """Let running drains finish (at most `timeout_s`); one still running resumes at the next start."""
        if self._pool is None:
            return
        wait(list(self._running.values()), timeout=timeout_s)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = None

    def running(self, incident_id: int) -> Future[ExecutionResult] | None:
        """The execution of this incident still running off the loop thread, if any."""
        return self._running.get(incident_id)

    def step(self, inc: IncidentRow, now: float) -> StepReport:
        v = self.verify
        if inc.status != OPEN:
            return StepReport(inc.id, inc.status, "not open")
        running = self._running.get(inc.id)
        if running is not None:
            if not running.done():
                self.ledger.update_incident(inc.id, next_at=now + v.interval_s,
                                            note="a drain is running off the loop thread; deciding again when done")
                return StepReport(inc.id, "waiting", "a drain is still running")
            del self._running[inc.id]
            result = running.result()  # the executor never raises; it recorded the result itself
            log.info("incident %s: background %s %s%s", inc.id, result.action.describe(), result.state,
                     f" ({result.error})" if result.error else "")
        if now - inc.worked_since > v.horizon_s:
            return self._give_up(inc, now)
        try:
            obs = self.observer.observe(inc.alert, now=now, history=self.ledger.attempts(inc.id),
                                        known_good=self.ledger.known_good(inc.alert.namespace))
        except ObservationError as e:
            self.ledger.record_snapshot(inc.id, now, purpose="observe", workload=None, signals=None,
                                        observation=None, problem=e.reason)
            self.ledger.update_incident(inc.id, next_at=now + v.retry_s, note=f"no action: {e.reason}")
            return StepReport(inc.id, "observe_failed", e.reason)
        snap = obs.snapshot
        if snap.workload is not None and (into := self.ledger.join_workload_incident(inc.id, str(snap.workload), now)):
            return StepReport(inc.id, "joined", f"incident {into} already works on {snap.workload}")
        deciding = inc.last_decision_at is None or now - inc.last_decision_at >= v.decision_s
        snapshot_id = self._record(inc, obs, now, "decide" if deciding and obs.usable else "verify")
        if not obs.usable:
            self.ledger.update_incident(inc.id, next_at=now + v.retry_s, note=f"no action: {obs.problem}",
                                        workload=str(snap.workload) if snap.workload else None)
            return StepReport(inc.id, "stale", obs.problem or "")
        tracker = RecoveryTracker(snap.slo, streak=inc.streak)
        if tracker.observe(snap.signals, now, snap.unknown_signals):
            self._remember_good(snap, now)
            return self._recovered(inc, now, tracker)
        approved = self.ledger.approval_to_run(inc.id)
        if approved is not None:
            report = self._run_approved(inc, approved, snap, snapshot_id, now, tracker.streak)
            if report is not None:
                return report
            deciding = True  # the guards now refuse what was approved: decide again on this snapshot
        if not deciding:
            self.ledger.update_incident(inc.id, streak=tracker.streak, next_at=now + v.interval_s, note=None)
            return StepReport(inc.id, "waiting", "verifying the last action")
        return self._decide(inc, snap, snapshot_id, now, tracker.streak)

    def _run_approved(self, inc: IncidentRow, approval: ApprovalRow, snap: Snapshot, snapshot_id: int, now: float,
                      streak: int) -> StepReport | None:
        """Run an approved action once, judged again on this fresh snapshot; None when the guards now refuse it."""
        history = self.ledger.guard_history(now - HISTORY_S, dry_run=self.dry_run)
        policy = self.policy_of(approval.action, inc, snap)
        verdict = judge(approval.action, snap, history, policy, now)
        if verdict.decision is Decision.DENY:
            why = f"approved, but judged again at execution time: {verdict.reason}"
            self.ledger.finish_approval_run(approval.id, "refused", note=why)
            log.warning("incident %s: approval %s not run: %s", inc.id, approval.id, why)
            return None
        key = idempotency_key("approval", approval.id)  # one execution per approval, across retries and restarts
        result = self._execute(inc, approval.action, snap, snapshot_id, approval.candidate_id,
                               f"approved by {approval.approver} ({approval.channel}); {verdict.reason}", key=key,
                               dry_run=self.dry_run or policy.dry_run)
        self.ledger.finish_approval_run(approval.id, "executed",
                                        execution_id=result.execution_id if result is not None else None,
                                        note=f"{result.state if result is not None else 'started'} (key {key})")
        workload = str(snap.workload) if snap.workload else None
        self.ledger.update_incident(inc.id, workload=workload, streak=streak, last_decision_at=now,
                                    next_at=now + self.verify.interval_s, note=None)
        state = "running off the loop thread" if inc.id in self._running else (result.state if result else
                                                                                 "no executor")
        return StepReport(inc.id, "acted", f"approved {approval.action.describe()}: {state}", result)

    # ------------------------------------------------------------------ steps

    def _remember_good(self, snap: Snapshot, now: float) -> None:
        """The SLO held for `consecutive` samples: what the workload uses now is its last-known-good
        (the versions `revert_config` and `restore_service` put back later)."""
        if snap.workload is not None:
            self.ledger.record_known_good(known_good_of(snap.workload, now, snap.configs, snap.service))

    def _record(self, inc: IncidentRow, obs: Observation, now: float, purpose: str) -> int:
        snap = obs.snapshot
        signals = {f.name: float(getattr(snap.signals, f.name)) for f in dataclasses.fields(snap.signals)}
        return self.ledger.record_snapshot(
            inc.id, now, purpose=purpose, workload=snap.workload, signals=signals,
            observation=[float(x) for x in encode(snap)],
            missing=[str(m) for m in obs.missing] + [f"{m}: not in the snapshot" for m in snap.missing
                                                     if all(x.metric != m for x in obs.missing)],
            problem=obs.problem)

    def _candidates(self, snap: Snapshot) -> tuple[list[Candidate], str]:
        """The proposer's candidates, and why it fell back to the catalog ("" when it did not)."""
        try:
            candidates = self.proposer.propose(snap)
        except Exception as e:  # noqa: BLE001 - the catalog is the fallback when a proposer fails
            log.warning("proposer failed, falling back to the catalog: %s", e)
            return self.fallback.propose(snap), f"proposer failed ({type(e).__name__}: {e}); catalog fallback"
        # The LLM proposer falls back by itself (a 401, a timeout, nothing valid) and says why.
        report = getattr(self.proposer, "last_report", None)
        if report is not None and getattr(report, "fallback", False):
            log.warning("LLM proposer %s", report.reason)
            return candidates, f"LLM proposer {report.reason}"
        return candidates, ""

    def _decide(self, inc: IncidentRow, snap: Snapshot, snapshot_id: int, now: float, streak: int) -> StepReport:
        v = self.verify
        candidates, note = self._candidates(snap)
        if note:
            self.ledger.note_proposer(snapshot_id, note)
        history = self.ledger.guard_history(now - HISTORY_S, dry_run=self.dry_run)
        policy = self.policy_for(self._namespace(inc, snap))
        choice = decide(snap, candidates, self.ranker, history, policy, now,
                        policy_of=lambda a: self.policy_of(a, inc, snap))
        rows = [{"action": r.candidate.kind.value, "target": r.candidate.action.target,
                 "params": r.candidate.action.params, "score": r.score, "proposer_score": r.candidate.score,
                 "source": r.candidate.source, "rationale": r.candidate.rationale, "verdict": verdict.decision.value,
                 "reason": verdict.reason, "guard": verdict.guard, "chosen": i == choice.chosen}
                for i, (r, verdict) in enumerate(zip(choice.ranked, choice.verdicts))]
        ids = self.ledger.record_candidates(inc.id, snapshot_id, rows)
        workload = str(snap.workload) if snap.workload else None
        if choice.chosen is None or choice.candidate is None:
            self.ledger.update_incident(inc.id, status=Status.ESCALATED, closed_at=now, workload=workload,
                                        close_reason="every candidate was denied", streak=streak)
            return StepReport(inc.id, "escalated", "every candidate was denied")
        cand, verdict = choice.candidate, choice.verdicts[choice.chosen]
        candidate_id = ids[choice.chosen]
        why = waits_for(self.mode, cand.kind, verdict)
        if why is not None:
            return self._park(inc, snap, snapshot_id, rows, choice.chosen, candidate_id, why, now, streak)
        if self.mode == "dry-run" and verdict.decision is Decision.NEEDS_APPROVAL:
            note = "; ".join(n for n in (note, f"dry run: in auto or approve mode this would wait for approval "
                                              f"({verdict.reason})") if n)
        result = self._execute(inc, cand.action, snap, snapshot_id, candidate_id, verdict.reason,
                               dry_run=self.dry_run or self.policy_of(cand.action, inc, snap).dry_run)
        if cand.kind is ActionKind.ESCALATE:
            self.ledger.update_incident(inc.id, status=Status.ESCALATED, closed_at=now, workload=workload,
                                        streak=streak, close_reason=f"escalated to a human: {cand.rationale}",
                                        last_decision_at=now)
            self.ledger.record_outcome(inc.id, execution_id=result.execution_id if result else None,
                                       recovered=False, recovery_s=None, reason="escalated")
            return StepReport(inc.id, "escalated", cand.rationale, result)
        state = "running off the loop thread" if inc.id in self._running else (result.state if result else
                                                                                 "no executor")
        detail = f"{cand.action.describe()}: {state}"
        self.ledger.update_incident(inc.id, workload=workload, streak=streak, last_decision_at=now,
                                    next_at=now + v.interval_s, note=note or None)
        return StepReport(inc.id, "acted", detail, result)

    def _park(self, inc: IncidentRow, snap: Snapshot, snapshot_id: int, rows: list[dict[str, Any]], chosen: int,
              candidate_id: int, why: str, now: float, streak: int) -> StepReport:
        """Wait for a human: the request (with the dry run of this very action) in the ledger, the notifiers told."""
        action = Action(ActionKind(rows[chosen]["action"]), rows[chosen]["target"], rows[chosen]["params"])
        preview_of = getattr(self.executor, "preview", None)
        preview: dict[str, Any] = preview_of(action, snap) if callable(preview_of) else {
            "dry_run": None, "action": action.describe(), "summary": [], "objects": [],
            "error": "no executor: nothing was dry-run"}
        text = SPECS[action.kind].approval_text(action.target)
        shown = message(snap, rows, chosen, why, text)
        approval = self.ledger.request_approval(
            inc.id, candidate_id=candidate_id, snapshot_id=snapshot_id, action=action, reason=why,
            deadline=now + self.approval_deadline_s, preview=preview, message=shown,
            note=f"candidate {candidate_id} {action.describe()} awaits approval: {why}; {text}",
            workload=str(snap.workload) if snap.workload else None, streak=streak, at=now)
        self.tell(approval)
        return StepReport(inc.id, "awaiting_approval", f"approval {approval.id}: {why}")

    def tell(self, approval: ApprovalRow) -> None:
        """Tell the notifiers of a request, or of how it ended (best effort: the ledger is the record)."""
        for notify in self.notifiers:
            try:
                notify(approval)
            except Exception:  # noqa: BLE001 - the request is recorded; other channels still decide it
                log.exception("incident %s: a notifier failed for approval %s", approval.incident_id, approval.id)

    def _execute(self, inc: IncidentRow, action: Action, snap: Snapshot, snapshot_id: int, candidate_id: int | None,
                 reason: str, *, key: str | None = None, dry_run: bool | None = None) -> ExecutionResult | None:
        if self.executor is None:
            return None
        dry_run = self.dry_run if dry_run is None else dry_run
        key = key or idempotency_key(inc.id, snapshot_id, action.describe())
        if self.background and action.kind is ActionKind.CORDON_DRAIN_NODE and not dry_run:
            fork = getattr(self.executor, "fork", None)  # its own backoff record, for another thread
            worker = fork() if callable(fork) else self.executor
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="remediator-drain")
            self._running[inc.id] = self._pool.submit(
                worker.execute, action, snap, incident_id=inc.id, candidate_id=candidate_id, key=key,
                reason=reason, dry_run=dry_run)
            return None
        return self.executor.execute(action, snap, incident_id=inc.id, candidate_id=candidate_id, key=key,
                                     reason=reason, dry_run=dry_run)

    def _recovered(self, inc: IncidentRow, now: float, tracker: RecoveryTracker) -> StepReport:
        at = tracker.recovered_at if tracker.recovered_at is not None else now
        recovery = max(0.0, at - inc.starts_at)
        last = [e for e in self.ledger.executions(incident_id=inc.id) if e.action.kind not in PASSIVE_KINDS]
        self.ledger.record_outcome(inc.id, execution_id=last[-1].id if last else None, recovered=True,
                                   recovery_s=recovery, reason=f"SLO met for {tracker.streak} consecutive observations")
        self.ledger.update_incident(inc.id, status=Status.RECOVERED, closed_at=now, recovered_at=at,
                                    recovery_s=recovery, streak=tracker.streak, close_reason="SLO verified", note=None)
        return StepReport(inc.id, "recovered", f"recovered after {recovery:.0f}s")

    def _give_up(self, inc: IncidentRow, now: float) -> StepReport:
        last = [e for e in self.ledger.executions(incident_id=inc.id) if e.action.kind not in PASSIVE_KINDS]
        self.ledger.record_outcome(inc.id, execution_id=last[-1].id if last else None, recovered=False,
                                   recovery_s=self.verify.horizon_s,
                                   reason=f"not recovered within {self.verify.horizon_s:g}s of the alert")
        self.ledger.update_incident(inc.id, status=Status.FAILED, closed_at=now,
                                    close_reason=f"not recovered within the horizon ({self.verify.horizon_s:g}s); "
                                                 "escalate to a human",
                                    recovery_s=self.verify.horizon_s)
        return StepReport(inc.id, "failed", "horizon passed")

    def next_wakeup(self, now: float, idle_s: float = 1.0) -> float:
        due = self.ledger.next_due_at()
        if due is None or math.isnan(due):
            return idle_s
        return max(0.0, min(idle_s, due - now))
