"""The configuration file (errors with key paths, secrets from the environment) and the SQLite ledger."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from remediator.actions import Action, ActionKind, ObjectRef
from remediator.guards import Decision, GuardPolicy, judge
from remediator.live.config import ConfigError, LiveConfig, load_config
from remediator.live.ledger import MIGRATIONS, Ledger, ReceivedAlert
from remediator.snapshot import Alert, Signals, Snapshot
from tests.live.conftest import APP, NS, snapshot_for

FULL = """\
kubernetes: {kubeconfig: kube/config}
prometheus: {url: "http://prometheus:9090/", timeout_s: 5}
mode: auto
store: data/ledger.db
listen: {host: 127.0.0.1, port: 9000}
proposer: {kind: llm, model: qwen, temperature: 0}
policy: models/policy.zip
guards: {cooldown_s: 600, denied_namespaces: [kube-system, "openshift-*"], approval_risk: medium}
slack: {webhook_url: "https://hooks.slack.test/x", signing_secret_env: SLACK_SECRET, approvers: [alice]}
"""


def test_every_design_key_is_read_and_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text(FULL)
    c = load_config(tmp_path / "c.yaml", env={})
    assert c.kubernetes.kubeconfig == tmp_path / "kube" / "config"
    assert c.prometheus is not None and c.prometheus.url == "http://prometheus:9090"
    assert (c.mode, c.store, c.policy) == ("auto", tmp_path / "data" / "ledger.db", tmp_path / "models" / "policy.zip")
    assert (c.listen.host, c.listen.port) == ("127.0.0.1", 9000)
    assert c.proposer.kind == "llm" and c.proposer.model_dump()["model"] == "qwen"
    assert c.guards.cooldown_s == 600 and c.guards.approval_risk is not None
    assert c.slack is not None and c.slack.approvers == ["alice"]
    assert not c.dry_run and not c.policy_for_guards().dry_run


def test_defaults_are_safe() -> None:
    c = LiveConfig()
    assert c.mode == "dry-run" and c.dry_run and c.policy_for_guards().dry_run
    assert c.prometheus is None and c.kubernetes.kubeconfig is None  # offline; in-cluster when run


def test_environment_overrides_secrets(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text(FULL.replace("port: 9000}", "port: 9000, bearer_token: from-file}"))
    c = load_config(tmp_path / "c.yaml", env={"REMEDIATOR_WEBHOOK_TOKEN": "from-env",
                                              "REMEDIATOR_PROMETHEUS_TOKEN": "prom-token"})
    assert c.listen.bearer_token is not None and c.listen.bearer_token.get_secret_value() == "from-env"
    assert c.prometheus is not None and c.prometheus.bearer_token is not None
    assert c.prometheus.bearer_token.get_secret_value() == "prom-token"
    assert "from-env" not in repr(c)  # secrets never print


@pytest.mark.parametrize(("text", "expected"), [
    ("mode: yolo\n", "c.yaml:1: mode: Input should be 'dry-run', 'approve' or 'auto'"),
    ("guards:\n  cooldown_s: 10\n  cooldwn_s: 5\n", "c.yaml:3: guards.cooldwn_s: Extra inputs are not permitted"),
    ("prometheus: {url: prometheus:9090}\n", "c.yaml:1: prometheus.url: Value error, 'prometheus:9090' is not an "
                                             "http:// or https:// URL"),
    ("listen:\n  port: 99999\n", "c.yaml:2: listen.port: Input should be less than or equal to 65535"),
    ("guards:\n  freeze_windows:\n    - {start: 'Fri 18:00', end: '18:00'}\n",
     "c.yaml:3: guards.freeze_windows[0]: Value error"),
    ("prometheus: {}\n", "c.yaml:1: prometheus.url: Field required"),
    ("- a list\n", "must be a mapping"),
    ("mode: [\n", "not valid YAML"),
])
def test_errors_name_file_line_and_key_path(tmp_path: Path, text: str, expected: str) -> None:
    (tmp_path / "c.yaml").write_text(text)
    with pytest.raises(ConfigError) as e:
        load_config(tmp_path / "c.yaml", env={})
    assert expected in str(e.value)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("mode: yolo\nstore: 5\nverify: {interval_s: 0}\n")
    with pytest.raises(ConfigError) as e:
        load_config(tmp_path / "c.yaml", env={})
    assert [(i.line, i.path) for i in e.value.issues] == [(1, "mode"), (2, "store"), (3, "verify.interval_s")]


# ---------------------------------------------------------------------------- ledger


def _alert(fp: str = "aa", status: str = "firing", starts: float = 100.0) -> ReceivedAlert:
    return ReceivedAlert(Alert("KubePodCrashLooping", {"namespace": "shop", "deployment": "cart"}, starts_at=starts,
                               status=status, fingerprint=fp), ends_at=160.0 if status == "resolved" else None)


def test_ledger_is_wal_with_recorded_migrations(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    with Ledger(path) as ledger:
        assert ledger.schema_version() == len(MIGRATIONS)
    with Ledger(path) as again:  # reopening applies nothing twice
        assert again.schema_version() == len(MIGRATIONS)
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("SELECT COUNT(*) FROM schema_migrations").fetchone()[0] == len(MIGRATIONS)
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables >= {"incidents", "alerts", "snapshots", "candidates", "executions", "inverses", "outcomes"}


def test_dedup_and_resolution(tmp_path: Path) -> None:
    with Ledger(tmp_path / "l.db") as ledger:
        first = ledger.record_alerts([_alert(), _alert(), _alert("bb")])
        assert [r.new for r in first] == [True, False, True]
        assert first[0].incident_id == first[1].incident_id != first[2].incident_id
        [resolved] = ledger.record_alerts([_alert(status="resolved")])
        assert resolved.closed_incident and not resolved.new
        assert ledger.incident(first[0].incident_id).status == "cancelled"  # type: ignore[arg-type, union-attr]
        assert ledger.alert_counts() == {"alerts": 2, "received": 4, "incidents": 2}


def test_resolved_after_an_action_records_the_outcome(tmp_path: Path) -> None:
    with Ledger(tmp_path / "l.db", clock=lambda: 130.0) as ledger:
        [r] = ledger.record_alerts([_alert()])
        assert r.incident_id is not None
        cart = ObjectRef("Deployment", "shop", "cart")
        eid = ledger.record_intent(incident_id=r.incident_id, candidate_id=None,
                                   action=Action(ActionKind.RESTART_ROLLOUT, cart), key="k1", dry_run=False,
                                   plan={}, inverse={"steps": []}, reversible=True, workload_key=cart)
        ledger.finish_execution(eid, "done", result={})
        ledger.record_alerts([_alert(status="resolved")])
        inc = ledger.incident(r.incident_id)
        assert inc is not None and inc.status == "resolved" and inc.recovery_s == 60.0
        [outcome] = ledger.outcomes_of(r.incident_id)
        assert outcome["execution_id"] == eid and outcome["recovered"] == 1
        [entry] = ledger.guard_history(0.0, dry_run=False)
        assert entry.action.kind is ActionKind.RESTART_ROLLOUT and entry.succeeded is True and entry.key == cart
        assert ledger.guard_history(0.0, dry_run=True) == []
        assert [a.kind for a in ledger.attempts(r.incident_id)] == [ActionKind.RESTART_ROLLOUT]


def test_an_intent_is_recorded_once_per_key(tmp_path: Path) -> None:
    with Ledger(tmp_path / "l.db") as ledger:
        cart = ObjectRef("Deployment", "shop", "cart")
        ids = {ledger.record_intent(incident_id=None, candidate_id=None, action=Action(ActionKind.NOOP, cart),
                                    key="same", dry_run=True, plan={}, inverse=None, reversible=False)
               for _ in range(3)}
        assert len(ids) == 1 and len(ledger.executions()) == 1


def test_dry_runs_get_no_credit_and_failures_count_for_the_breaker(tmp_path: Path) -> None:
    with Ledger(tmp_path / "l.db", clock=lambda: 130.0) as ledger:
        [r] = ledger.record_alerts([_alert()])
        assert r.incident_id is not None
        cart = ObjectRef("Deployment", "shop", "cart")
        for key, dry, state in (("dry", True, "done"), ("live", False, "failed")):
            eid = ledger.record_intent(incident_id=r.incident_id, candidate_id=None,
                                       action=Action(ActionKind.RESTART_ROLLOUT, cart), key=key, dry_run=dry,
                                       plan={}, inverse=None, reversible=False)
            ledger.finish_execution(eid, state, error="boom" if state == "failed" else None)
        ledger.record_alerts([_alert(status="resolved")])
        inc = ledger.incident(r.incident_id)
        assert inc is not None and inc.status == "cancelled" and "only dry runs" in (inc.close_reason or "")
        assert ledger.outcomes_of(r.incident_id) == []
        [failed] = ledger.guard_history(0.0, dry_run=False)
        assert failed.succeeded is False  # an API failure is a failed remediation for the breaker
        assert len(ledger.guard_history(0.0, dry_run=True)) == 1


def test_a_plan_that_failed_counts_as_a_failure_so_it_is_not_retried_forever(tmp_path: Path) -> None:
    """A plan that cannot be made changes nothing, but retrying it every decision would fail
    the same way: it waits for the cooldown, and repeated failures open the circuit breaker."""
    clock = [1000.0]
    cart = ObjectRef("Deployment", "shop", "cart")
    rollback = Action(ActionKind.ROLLBACK_ROLLOUT, cart)
    snap = Snapshot(Alert("KubePodCrashLooping", {"namespace": "shop", "deployment": "cart"}), 0.0, cart,
                    Signals(has_previous_revision=1.0))
    policy = GuardPolicy(approval_risk=None, cooldown_s=300.0, breaker_failures=3)
    with Ledger(tmp_path / "l.db", clock=lambda: clock[0]) as ledger:
        for i in range(3):
            eid = ledger.record_intent(incident_id=None, candidate_id=None, action=rollback, key=f"k{i}",
                                       dry_run=False, plan={"error": "no previous revision"}, inverse=None,
                                       reversible=False)
            ledger.finish_execution(eid, "failed", error="cannot plan: no previous revision")
            history = ledger.guard_history(0.0, dry_run=False)
            assert [h.succeeded for h in history] == [False] * (i + 1)
            soon = judge(rollback, snap, history, policy, clock[0] + 60).guard
            assert soon == ("cooldown" if i < 2 else "circuit_breaker"), (i, soon)
            clock[0] += 400.0
        verdict = judge(rollback, snap, ledger.guard_history(0.0, dry_run=False), policy, clock[0])
        assert verdict.guard == "circuit_breaker", verdict


def test_a_key_given_twice_is_an_error_not_the_last_one_silently(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("mode: auto\nstore: a.db\nmode: dry-run\nguards: {cooldown_s: 5, cooldown_s: 6}\n")
    with pytest.raises(ConfigError) as e:
        load_config(tmp_path / "c.yaml", env={})
    assert [str(i).split("/")[-1] for i in e.value.issues] == [
        "c.yaml:3: mode: given twice (first on line 1); keep one",
        "c.yaml:4: guards.cooldown_s: given twice (first on line 4); keep one"]


@pytest.mark.parametrize(("text", "where"), [
    ("mode: auto\nlisten: {host: 127.0.0.1, bearer_token: tok-SECRET-1\n", "c.yaml:3: listen: not valid YAML"),
    ("listen:\n  bearer_token: 'tok-SECRET-1\n", "c.yaml:3: listen.bearer_token: not valid YAML"),
    ("listen:\n  bearer_token: tok-SECRET-1\n  host: [\n", "c.yaml:4: listen.host: not valid YAML"),
    ("prometheus:\n  url: http://p:9090\n  bearer_token: !!int tok-SECRET-1\n",
     "c.yaml:3: prometheus.bearer_token: YAML cannot build this value"),
])
def test_a_yaml_error_names_line_and_key_and_quotes_nothing_of_the_file(tmp_path: Path, text: str, where: str
                                                                        ) -> None:
    (tmp_path / "c.yaml").write_text(text)
    with pytest.raises(ConfigError) as e:
        load_config(tmp_path / "c.yaml", env={})
    assert where in str(e.value)
    assert "SECRET" not in str(e.value) and "^" not in str(e.value)  # no snippet of the line, no caret under it


def test_freeze_windows_are_described_in_their_own_offset(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text(
        "mode: auto\nguards:\n  freeze_windows:\n"
        "    - {name: holidays, start: 2026-12-20T18:00:00+01:00, end: '2027-01-02T08:00:00+01:00'}\n"
        "    - {name: weekend, start: Sat 00:00, end: Mon 00:00}\n")
    policy = load_config(tmp_path / "c.yaml", env={}).policy_for_guards()
    restart = Action(ActionKind.RESTART_ROLLOUT, ObjectRef("Deployment", NS, APP))
    christmas = datetime(2026, 12, 25, 12, 0, tzinfo=UTC).timestamp()  # a Friday
    verdict = judge(restart, snapshot_for(), [], policy, christmas)
    assert verdict.decision is Decision.DENY and verdict.guard == "freeze"
    assert verdict.reason.endswith("freeze window 'holidays' 2026-12-20T18:00:00+01:00 to 2027-01-02T08:00:00+01:00 "
                                   "(UTC+01:00) is in effect")
    saturday = datetime(2027, 1, 9, 12, 0, tzinfo=UTC).timestamp()
    assert judge(restart, snapshot_for(), [], policy, saturday).reason.endswith(
        "freeze window 'weekend' Sat 00:00 to Mon 00:00 (UTC) is in effect")
