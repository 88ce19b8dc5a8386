"""Slack and the JSON webhook: the approval message goes out, signed clicks come back, hostile ones are refused.

Real parts: a local HTTP server plays Slack (it receives the incoming-webhook message and the
response_url updates), the receiver's real HTTP server takes the clicks and the JSON webhook,
the executor acts on the Kubernetes emulator, the ledger is SQLite on disk. Signatures are
made with Slack's published example secret; the first test checks Slack's published example.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import http.client
import json
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from remediator.live.approval import Approvals
from remediator.live.approval_webhook import ApprovalWebhook
from remediator.live.config import LiveConfig
from remediator.live.ledger import Ledger, ReceivedAlert
from remediator.live.loop import Loop
from remediator.live.receiver import Receiver, ReceiverServer
from remediator.live.service import approval_channels
from remediator.live.slack import SlackInteractions, signature, verify_signature
from tests.live.conftest import NS, requires_prometheus, seed_workload, snapshot_for
from tests.live.test_approval import FixedWorld, make_loop, restarts
from tests.support.kube import KubeServer

# Slack's published example (api.slack.com/authentication/verifying-requests-from-slack). Its slash
# command is /webhook-collect: the same body with another command (/webresponse, as it was once
# copied into this project's brief) does not match the published signature, and the test says so.
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
EXAMPLE_TS = "1531420618"
EXAMPLE_BODY = (b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
                b"&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
                b"&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZR"
                b"skXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c")
EXAMPLE_SIGNATURE = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
APPROVER, STRANGER = "U024BE7LH", "U0STRANGER"


def test_slacks_published_example_verifies() -> None:
    assert signature(SECRET, EXAMPLE_TS, EXAMPLE_BODY) == EXAMPLE_SIGNATURE
    headers = {"X-Slack-Request-Timestamp": EXAMPLE_TS, "X-Slack-Signature": EXAMPLE_SIGNATURE}
    assert verify_signature(SECRET, headers, EXAMPLE_BODY, now=1531420618 + 299) is None
    assert "stale" in (verify_signature(SECRET, headers, EXAMPLE_BODY, now=1531420618 + 301) or "")
    assert "stale" in (verify_signature(SECRET, headers, EXAMPLE_BODY, now=1531420618 - 301) or "")
    assert "does not match" in (verify_signature(SECRET, headers, EXAMPLE_BODY + b"x", now=1531420618) or "")
    assert "does not match" in (verify_signature(SECRET[:-1] + "6", headers, EXAMPLE_BODY, now=1531420618) or "")
    assert "required" in (verify_signature(SECRET, {}, EXAMPLE_BODY, now=1531420618) or "")
    other_command = EXAMPLE_BODY.replace(b"%2Fwebhook-collect", b"%2Fwebresponse")
    assert signature(SECRET, EXAMPLE_TS, other_command) != EXAMPLE_SIGNATURE
    assert "does not match" in (verify_signature(SECRET, headers, other_command, now=1531420618) or "")


# ---------------------------------------------------------------------------- a local Slack


@dataclass
class FakeSlack:
    """Receives incoming-webhook messages (POST /webhook) and response_url updates (POST /response/...)."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    fake = FakeSlack()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            doc = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            assert self.headers["Content-Type"].startswith("application/json")
            (fake.messages if self.path == "/webhook" else fake.updates).append(doc)
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()


@dataclass
class Setup:
    loop: Loop
    ledger: Ledger
    server: ReceiverServer
    interactions: SlackInteractions
    world: FixedWorld
    kube: KubeServer


def config_for(slack: FakeSlack, **approval: Any) -> LiveConfig:
    return LiveConfig.model_validate({
        "mode": "approve",
        "slack": {"webhook_url": f"{slack.url}/webhook", "approvers": [APPROVER],
                  "response_url_prefixes": [f"{slack.url}/response/"]},
        "approval": {"approvers": ["alice"], "token": "approval-token", "deadline_s": 600, **approval}})


@pytest.fixture
def setup(kube: KubeServer, slack: FakeSlack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Setup]:
    monkeypatch.setenv("SLACK_SIGNING_SECRET", SECRET)
    seed_workload(kube)
    snap = snapshot_for()
    world = FixedWorld(dataclasses.replace(snap, alert=dataclasses.replace(snap.alert, starts_at=time.time() - 60)))
    with Ledger(tmp_path / "ledger.db") as ledger:
        config = config_for(slack)
        approvals = Approvals.from_config(ledger, config)
        notifiers, routes = approval_channels(config, approvals, time.time)
        interactions = routes.pop("slack")
        loop = make_loop(kube, ledger, world)
        loop.notifiers = notifiers
        server = ReceiverServer(Receiver(ledger), "127.0.0.1", 0, routes=routes).start()
        try:
            yield Setup(loop, ledger, server, interactions, world, kube)
        finally:
            server.stop()


def post(server: ReceiverServer, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    host, port = server.server_address[:2]
    conn = http.client.HTTPConnection(str(host), int(port), timeout=10)
    conn.request("POST", path, body=body, headers=headers)
    resp = conn.getresponse()
    doc = json.loads(resp.read() or b"{}")
    conn.close()
    return resp.status, doc


def click(approval_id: int, user: str, response_url: str, action: str = "remediator_approve") -> bytes:
    payload = {"type": "block_actions", "user": {"id": user, "username": user}, "response_url": response_url,
               "actions": [{"action_id": action, "value": str(approval_id), "type": "button"}]}
    return urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()


def signed(body: bytes, *, secret: str = SECRET, at: float | None = None) -> dict[str, str]:
    ts = str(int(time.time() if at is None else at))
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": signature(secret, ts, body),
            "Content-Type": "application/x-www-form-urlencoded"}


def test_the_message_arrives_and_only_a_valid_signed_click_approves(setup: Setup, slack: FakeSlack,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    s = setup
    [receipt] = s.ledger.record_alerts([ReceivedAlert(s.world.snap.alert)])
    incident = receipt.incident_id
    [parked] = s.loop.tick(time.time())
    assert parked.outcome == "awaiting_approval"
    [approval] = s.ledger.approvals(state="pending")

    # The message: what fired, the evidence, the chosen action and the runners-up, the dry run, two buttons.
    [message] = slack.messages
    kinds = [b["type"] for b in message["blocks"]]
    assert kinds[0] == "header" and kinds[-1] == "actions"
    text = "\n".join(b["text"]["text"] for b in message["blocks"] if b["type"] == "section")
    assert "KubePodCrashLooping" in text and f"Deployment/{NS}/cart" in text
    assert "`available_replicas` = 0 (SLO 2)" in text  # evidence against its objective
    assert "▶ `restart_rollout`" in text and "score 1" in text and "*allow* (all guards passed)" in text
    assert "`rollback_rollout`" in text  # a runner-up, with its verdict
    assert "dryRun=All" in text and 'spec.template.metadata.annotations["kubectl.kubernetes.io/restartedAt"]' in text
    buttons = message["blocks"][-1]["elements"]
    assert [(b["action_id"], b["value"]) for b in buttons] == [("remediator_approve", str(approval.id)),
                                                                ("remediator_deny", str(approval.id))]

    response_url = f"{slack.url}/response/1"
    good = click(approval.id, APPROVER, response_url)
    rejected: dict[str, int] = {}

    def refused(kind: str, status: int, body: bytes, headers: dict[str, str]) -> None:
        got, doc = post(s.server, "/slack/interactions", body, headers)
        assert got == status, (kind, got, doc)
        assert doc["error"]
        rejected[kind] = rejected.get(kind, 0) + 1

    refused("forged", 401, good, signed(good, secret="0" * 32))  # not this app's secret
    refused("forged", 401, good, {**signed(good), "X-Slack-Signature": "v0=" + "0" * 64})
    refused("forged", 401, good + b"&x=1", signed(good))  # the body changed after signing
    refused("forged", 401, good, {"Content-Type": "application/x-www-form-urlencoded"})  # unsigned
    refused("stale", 401, good, signed(good, at=time.time() - 301))
    refused("stale", 401, good, signed(good, at=time.time() + 400))
    stranger = click(approval.id, STRANGER, response_url)
    refused("wrong approver", 403, stranger, signed(stranger))
    evil = click(approval.id, APPROVER, "https://evil.example/steal")
    refused("malformed", 400, evil, signed(evil))  # a response_url that is not Slack's
    # Nothing has run before a valid signed approval, however often the loop ticks.
    for _ in range(3):
        s.loop.tick(time.time())
    assert restarts(s.kube) is None
    assert s.ledger.executions(incident_id=incident) == []
    assert s.ledger.approval(approval.id).state == "pending"  # type: ignore[union-attr]
    # The stranger's click was recorded and shown in the message, buttons kept.
    assert [r["who"] for r in s.ledger.refusals(approval.id)] == [STRANGER]
    [shown] = slack.updates
    assert "may not decide" in shown["text"] and shown["blocks"][-1]["type"] == "actions"

    headers = signed(good)
    status, doc = post(s.server, "/slack/interactions", good, headers)
    assert status == 200 and doc["changed"] and doc["state"] == "approved"
    refused("replayed", 409, good, headers)  # the same signed request again
    later = click(approval.id, APPROVER, response_url, "remediator_deny")
    status, doc = post(s.server, "/slack/interactions", later, signed(later))
    assert status == 200 and not doc["changed"] and "already approved" in doc["message"]
    updated = slack.updates[1]
    assert f"Approved by <@{APPROVER}>" in updated["text"] and updated["replace_original"]
    assert all(b["type"] != "actions" for b in updated["blocks"])  # no buttons left
    row = s.ledger.approval(approval.id)
    assert row is not None and row.approver == APPROVER and row.channel == "slack"

    [ran] = [r for r in s.loop.tick(time.time()) if r.incident_id == incident]
    assert ran.outcome == "acted" and ran.execution is not None and ran.execution.ok
    s.loop.tick(time.time() + 15)
    assert len([e for e in s.ledger.executions(incident_id=incident) if e.action.kind.value != "noop"]) == 1
    counts = s.interactions.counts
    print(f"\nslack requests rejected: forged {rejected['forged']}, stale {rejected['stale']}, replayed "
          f"{rejected['replayed']}, wrong approver {rejected['wrong approver']}, malformed {rejected['malformed']}; "
          f"accepted {counts['accepted']}")
    assert counts["forged"] == rejected["forged"] == 4 and counts["stale"] == rejected["stale"] == 2
    assert counts["replayed"] == 1 and counts["not_allowed"] == 1 and counts["accepted"] == 2


def test_a_click_after_the_deadline_changes_nothing(setup: Setup, slack: FakeSlack) -> None:
    s = setup
    [receipt] = s.ledger.record_alerts([ReceivedAlert(s.world.snap.alert)])
    s.loop.tick(time.time())
    [approval] = s.ledger.approvals(state="pending")
    s.interactions.clock = lambda: approval.deadline + 1  # Slack's clock and ours: after the deadline
    body = click(approval.id, APPROVER, f"{slack.url}/response/2")
    status, doc = post(s.server, "/slack/interactions", body, signed(body, at=approval.deadline + 1))
    assert status == 200 and not doc["changed"] and doc["state"] == "expired" and "expired" in doc["message"]
    assert s.ledger.incident(receipt.incident_id).status == "expired"  # type: ignore[arg-type, union-attr]
    s.loop.tick(approval.deadline + 2)
    assert s.ledger.executions(incident_id=receipt.incident_id) == []  # type: ignore[arg-type]
    assert "expired" in slack.updates[-1]["text"]


def test_slack_hears_how_a_request_ended_elsewhere(setup: Setup, slack: FakeSlack) -> None:
    s = setup
    s.ledger.record_alerts([ReceivedAlert(s.world.snap.alert)])
    now = time.time()
    s.loop.tick(now)
    [approval] = s.ledger.approvals(state="pending")
    s.loop.tick(approval.deadline + 1)  # nobody answered
    assert slack.messages[-1]["text"] == f"approval {approval.id} ({approval.action.describe()}): expired"
    assert len(slack.messages) == 2 and slack.updates == []


# ---------------------------------------------------------------------------- the JSON webhook


def test_the_json_webhook_decides_with_a_token_and_refuses_the_rest(setup: Setup) -> None:
    s = setup
    s.ledger.record_alerts([ReceivedAlert(s.world.snap.alert)])
    s.loop.tick(time.time())
    [approval] = s.ledger.approvals(state="pending")
    path = f"/approvals/{approval.id}"
    body = json.dumps({"decision": "approve", "approver": "alice"}).encode()
    bearer = {"Authorization": "Bearer approval-token", "Content-Type": "application/json"}
    cases = [
        ({}, body, path, 401, "bearer token"),
        ({"Authorization": "Bearer wrong"}, body, path, 401, "bearer token"),
        ({"X-Remediator-Signature": "sha256=" + "0" * 64}, body, path, 401, "bearer token"),
        (bearer, b"{not json", path, 400, "not JSON"),
        (bearer, b"[1]", path, 400, "JSON object"),
        (bearer, json.dumps({"decision": "maybe", "approver": "alice"}).encode(), path, 400, "malformed"),
        (bearer, json.dumps({"decision": "approve", "approver": "alice", "x": 1}).encode(), path, 400, "malformed"),
        (bearer, json.dumps({"decision": "approve", "approver": "a\nb"}).encode(), path, 400, "malformed"),
        (bearer, body, "/approvals/abc", 404, "positive integer"),
        (bearer, body, "/approvals/999", 404, "no approval 999"),
        (bearer, json.dumps({"decision": "approve", "approver": "mallory"}).encode(), path, 403, "not an approver"),
    ]
    for headers, data, where, status, says in cases:
        got, doc = post(s.server, where, data, headers)
        assert (got, says in json.dumps(doc)) == (status, True), (headers, data, where, got, doc)
    assert s.ledger.approval(approval.id).state == "pending"  # type: ignore[union-attr]
    hmac_headers = {"X-Remediator-Signature": "sha256=" + hmac.new(b"approval-token", body, hashlib.sha256)
                    .hexdigest()}
    got, doc = post(s.server, path, body, hmac_headers)
    assert got == 200 and doc["changed"] and doc["state"] == "approved" and doc["approval"]["approver"] == "alice"
    got, doc = post(s.server, path, body, bearer)  # the same decision again: as asked, changed nothing
    assert got == 200 and not doc["changed"]
    deny = json.dumps({"decision": "deny", "approver": "alice"}).encode()
    got, doc = post(s.server, path, deny, bearer)
    assert got == 409 and "already approved" in doc["message"]


def test_the_json_webhook_is_off_without_a_token(tmp_path: Path) -> None:
    with Ledger(tmp_path / "l.db") as ledger:
        hook = ApprovalWebhook(Approvals(ledger, approvers={"webhook": ["alice"]}), None)
        assert hook.handle("/approvals/1", {"Authorization": "Bearer "}, b"{}").status == 404


@settings(max_examples=300, deadline=None)
@given(body=st.binary(max_size=300) | st.text(max_size=200).map(str.encode),
       path=st.sampled_from(["/approvals/1", "/approvals/0", "/approvals/-1", "/approvals/1/x", "/approvals/99"]))
def test_hostile_webhook_bodies_get_a_clear_4xx(tmp_path_factory: pytest.TempPathFactory, body: bytes,
                                                path: str) -> None:
    ledger = _fuzz_ledger(tmp_path_factory)
    hook = ApprovalWebhook(Approvals(ledger, approvers={"webhook": ["alice"]}), "t")
    resp = hook.handle(path, {"Authorization": "Bearer t"}, body)
    assert 400 <= resp.status < 500 and resp.body["error"]


@settings(max_examples=300, deadline=None)
@given(body=st.binary(max_size=300) | st.builds(lambda p: urllib.parse.urlencode({"payload": p}).encode(),
                                                  st.text(max_size=200)))
def test_hostile_signed_slack_bodies_get_a_clear_4xx(tmp_path_factory: pytest.TempPathFactory, body: bytes) -> None:
    ledger = _fuzz_ledger(tmp_path_factory)
    interactions = SlackInteractions(Approvals(ledger, approvers={"slack": [APPROVER]}), SECRET)
    resp = interactions.handle(signed(body), body)
    assert 400 <= resp.status < 500 and resp.body["error"]


_LEDGERS: dict[str, Ledger] = {}


def _fuzz_ledger(factory: pytest.TempPathFactory) -> Ledger:
    if "l" not in _LEDGERS:
        _LEDGERS["l"] = Ledger(factory.mktemp("fuzz") / "l.db")
    return _LEDGERS["l"]


# ---------------------------------------------------------------------------- through `remediator run`


@requires_prometheus
def test_approve_mode_end_to_end_across_a_restart(tmp_path: Path, slack: FakeSlack,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The Agent of `remediator run` (receiver, loop, Slack channel) on a real Prometheus and the emulator:
    the alert parks, the agent is stopped with the approval pending, a new one takes the signed click,
    and the action runs once."""
    from remediator.actions import Action, ActionKind, ObjectRef
    from remediator.live.config import load_config
    from remediator.live.service import Agent
    from tests.live.sim import incident, prometheus_with
    from tests.live.test_loop import (
        SimClock,
        drive,
        post_webhook,
        seed_incident,
        timeline,
        webhook_payload,
        write_config,
    )
    from tests.support.kube import KubeEmulator

    monkeypatch.setenv("REMEDIATOR_WEBHOOK_TOKEN", "hook-token")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", SECRET)
    inc = incident("scaled_to_zero", after_s=0)
    with KubeServer(KubeEmulator()) as kube:
        seed_incident(kube, inc)
        kube.emulator.validate = "1.33"
        # The recorded metrics: the workload recovers once the approved restore lands, a minute in.
        inc.advance(60.0)
        inc.execute(Action(ActionKind.RESTORE_REPLICAS, ObjectRef("Deployment", "shop", "cart"), {"replicas": 5}))
        inc.advance(600.0)
        series = timeline(inc, inc.alert_at + 900.0)
        with prometheus_with(tmp_path / "p", series) as prom:
            path = write_config(tmp_path, kube, prom.url, mode="approve", horizon_s=900.0,
                                slack={"webhook_url": f"{slack.url}/webhook", "approvers": [APPROVER],
                                       "response_url_prefixes": [f"{slack.url}/response/"]},
                                approval={"approvers": ["alice"], "deadline_s": 600})
            config = load_config(path)
            clock = SimClock(inc.alert_at)
            first = Agent(config, clock=clock).start(worker=False)
            try:
                assert post_webhook(first.server.url, webhook_payload(inc), "hook-token") == 200
                [row] = first.ledger.incidents()
                for _ in range(4):
                    first.loop.tick(clock.t)
                    clock.t += 15.0
                [approval] = first.ledger.approvals(state="pending")
            finally:
                first.stop()  # killed with the approval pending
            [message] = slack.messages
            text = json.dumps(message["blocks"])
            assert "restore_replicas" in text and "spec.replicas: 0 \\u2192 " in text
            assert kube.get("apps/v1", "Deployment", "shop", "cart")["spec"]["replicas"] == 0  # type: ignore[index]

            second = Agent(config, clock=clock).start(worker=False)
            try:
                stranger = click(approval.id, STRANGER, f"{slack.url}/response/9")
                assert post(second.server, "/slack/interactions", stranger, signed(stranger, at=clock.t))[0] == 403
                second.loop.tick(clock.t)
                with Ledger(config.store) as peek:
                    assert peek.executions(incident_id=row.id) == []  # nothing before a valid signed approval
                good = click(approval.id, APPROVER, f"{slack.url}/response/9")
                status, doc = post(second.server, "/slack/interactions", good, signed(good, at=clock.t))
                assert status == 200 and doc["state"] == "approved"
                drive(second, clock, row.id, inc.alert_at + 900.0)
                executions = [e for e in second.ledger.executions(incident_id=row.id)
                              if e.action.kind.value == "restore_replicas"]
                final = second.ledger.incident(row.id)
            finally:
                second.stop()
        after = kube.get("apps/v1", "Deployment", "shop", "cart")
    assert len(executions) == 1 and executions[0].state == "done" and not executions[0].dry_run
    assert after["spec"]["replicas"] == executions[0].action.params["replicas"]  # type: ignore[index]
    assert final is not None and final.status == "recovered"
    assert f"Approved by <@{APPROVER}>" in slack.updates[-1]["text"]
