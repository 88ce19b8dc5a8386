"""The Slack channel of approval: a Block Kit message out, signed button clicks back in.

Out: `SlackNotifier` POSTs the message of an approval request (`blocks`) to the configured
incoming-webhook URL (`slack.webhook_url`, from `REMEDIATOR_SLACK_WEBHOOK_URL`): what fired,
the evidence (signals that moved, against the SLO), the chosen action and the runner-up
candidates with their policy scores and guard verdicts, the server-side dry run of the action
(the objects and fields it changes), and Approve / Deny buttons whose value is the request id.

In: Slack POSTs a click to the interactivity URL (`POST /slack/interactions` on the receiver) as
`payload=<JSON>`, form-encoded, signed with the app's signing secret. `SlackInteractions.handle`

* verifies the v0 signature before it reads anything of the body: HMAC-SHA256 over
  `v0:{X-Slack-Request-Timestamp}:{raw body}`, compared in constant time; a timestamp more than
  5 minutes from now is refused (a replay of an old request), and so is a signature seen before
  (a replay within those 5 minutes);
* takes the click only from a user of `slack.approvers` (Slack user IDs); anyone else is
  refused, the refusal is recorded in the ledger and shown in the message;
* decides through `Approvals.decide` (idempotent: a second click changes nothing and says so) and
  updates the message through the click's `response_url` with the decision and who made it.

Everything in the message that came from outside (alert labels and annotations, object names,
LLM rationales) is escaped for mrkdwn, so a label cannot ping `<!channel>` or forge a link.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from remediator.live.approval import Approvals, NotAllowed
from remediator.live.ledger import ApprovalRow
from remediator.live.receiver import Response

__all__ = ["INTERACTIONS_PATH", "MAX_SKEW_S", "SlackInteractions", "SlackNotifier", "blocks", "decided_blocks",
           "signature", "verify_signature"]

log = logging.getLogger("remediator.live")

INTERACTIONS_PATH = "/slack/interactions"
MAX_SKEW_S = 300.0  # Slack's advice: refuse a request whose timestamp is more than five minutes away
APPROVE, DENY = "remediator_approve", "remediator_deny"
# Where a click's response_url may point (Slack's own hooks): the endpoint POSTs there, nowhere else.
RESPONSE_URL_PREFIXES = ("https://hooks.slack.com/",)
_TEXT_MAX = 2900  # a section's text may hold 3000 characters


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """Slack's v0 request signature: `v0=` + hex HMAC-SHA256 of `v0:{timestamp}:{body}`."""
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def verify_signature(secret: str, headers: Mapping[str, str], body: bytes, now: float) -> str | None:
    """Why this request is not Slack's (None: it is): missing headers, a stale timestamp, a bad signature."""
    lower = {k.lower(): v for k, v in headers.items()}
    timestamp, given = lower.get("x-slack-request-timestamp", ""), lower.get("x-slack-signature", "")
    if not timestamp or not given:
        return "X-Slack-Request-Timestamp and X-Slack-Signature are required"
    try:
        at = int(timestamp)
    except ValueError:
        return "X-Slack-Request-Timestamp is not a unix time"
    if abs(now - at) > MAX_SKEW_S:
        return f"the request's timestamp is {abs(now - at):.0f} s from now (at most {MAX_SKEW_S:.0f} s): stale"
    if not hmac.compare_digest(signature(secret, timestamp, body).encode(), given.encode()):
        return "the signature does not match the body (not signed with this app's signing secret)"
    return None


# ---------------------------------------------------------------------------- the message


def _esc(value: object) -> str:
    """Text from outside, inert in mrkdwn: `&`, `<` and `>` escaped as Slack asks."""
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _num(x: Any) -> str:
    if x is None:
        return "unknown"
    if isinstance(x, (int, float)) and not math.isfinite(x):
        return "∞"
    return f"{x:.3g}" if isinstance(x, float) else str(x)


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, tz=UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _section(text: str) -> dict[str, Any]:
    if len(text) > _TEXT_MAX:
        text = text[:_TEXT_MAX] + "\n…"
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def diff_lines(preview: Mapping[str, Any]) -> list[str]:
    """The dry run as plain lines: one per object, one per field that changes."""
    lines = []
    for obj in preview.get("objects") or []:
        lines.append(str(obj.get("object")))
        for c in obj.get("changes") or []:
            lines.append(f"  {c.get('field')}: {json.dumps(c.get('before'))} → {json.dumps(c.get('after'))}")
    if preview.get("error"):
        lines.append(f"the API server refused the dry run: {preview['error']}")
    return lines or ["no object changes"]


def blocks(approval: ApprovalRow, approvers: list[str] | None = None) -> list[dict[str, Any]]:
    """The Block Kit message of an approval request (the buttons carry its id)."""
    m = approval.message
    alert = m.get("alert") or {}
    out: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": f"Approval needed: {alert.get('name', '?')}"[:150]}},
        _section(f"*What fired:* `{_esc(alert.get('name', '?'))}` on *{_esc(m.get('workload') or '?')}*"
                 + (f" since {_iso(float(alert['starts_at']))}" if alert.get("starts_at") else "")
                 + (f"\n{_esc(alert['summary'])}" if alert.get("summary") else "")),
    ]
    evidence = m.get("evidence") or []
    if evidence:
        rows = [f"• `{_esc(e['signal'])}` = {_num(e['value'])}"
                + (f" (SLO {_num(e['slo'])})" if e.get("slo") is not None else "") for e in evidence]
        out.append(_section("*Evidence* (signals that moved, against the SLO):\n" + "\n".join(rows)))
    out.append(_section(f"*Chosen action:* `{_esc(approval.action.describe())}`\n*Why it waits:* "
                        f"{_esc(approval.reason)}\n*Undo:* {_esc(m.get('approval_text') or '')}"))
    candidates = m.get("candidates") or []
    if candidates:
        rows = [f"{'▶' if c.get('chosen') else '•'} `{_esc(c['action'])}` {_esc(c['target'])}: score "
                f"{_num(c.get('score'))}, *{_esc(c['verdict'])}* ({_esc(c['reason'])})" for c in candidates]
        out.append(_section("*Candidates* (policy score, guard verdict):\n" + "\n".join(rows)))
    out.append(_section("*Server-side dry run* (`dryRun=All`) of this action:\n```"
                        + _esc("\n".join(diff_lines(approval.preview))) + "```"))
    allowed = f" · approvers: {', '.join(f'<@{_esc(a)}>' for a in approvers)}" if approvers else ""
    out.append({"type": "context", "elements": [{"type": "mrkdwn", "text":
                f"approval {approval.id} · incident {approval.incident_id} · no answer by "
                f"{_iso(approval.deadline)} means deny{allowed}"}]})
    out.append({"type": "actions", "block_id": f"approval-{approval.id}", "elements": [
        {"type": "button", "action_id": APPROVE, "style": "primary", "value": str(approval.id),
         "text": {"type": "plain_text", "text": "Approve"}},
        {"type": "button", "action_id": DENY, "style": "danger", "value": str(approval.id),
         "text": {"type": "plain_text", "text": "Deny"},
         "confirm": {"title": {"type": "plain_text", "text": "Deny this action?"},
                     "text": {"type": "plain_text", "text": "The incident is closed as denied."},
                     "confirm": {"type": "plain_text", "text": "Deny"},
                     "deny": {"type": "plain_text", "text": "Cancel"}}}]})
    return out


def decided_blocks(approval: ApprovalRow, note: str, *, keep_buttons: bool = False) -> list[dict[str, Any]]:
    """The message after a click: the request as it was shown, the buttons replaced by what happened
    (`keep_buttons` for a refused click: the request still waits)."""
    shown = [b for b in blocks(approval) if keep_buttons or b.get("type") != "actions"]
    context = {"type": "context", "elements": [{"type": "mrkdwn", "text": note}]}
    if keep_buttons:
        return [*shown[:-1], context, shown[-1]]
    return [*shown, _section(note)]


# ---------------------------------------------------------------------------- out: the notifier


def _post_json(url: str, doc: Mapping[str, Any], timeout_s: float) -> int:
    data = json.dumps(doc).encode()
    request = urllib.request.Request(url, data=data, method="POST",
                                     headers={"Content-Type": "application/json; charset=utf-8"})
    with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310 - the configured URL
        return int(response.status)


class SlackNotifier:
    """POSTs each new approval request's message to an incoming webhook (or a chat.postMessage-like URL)."""

    def __init__(self, webhook_url: str, *, approvers: list[str] | None = None, timeout_s: float = 5.0,
                 channel: str | None = None) -> None:
        if not webhook_url.startswith(("https://", "http://")):
            raise ValueError("slack.webhook_url must be an http(s) URL")
        self.webhook_url = webhook_url
        self.approvers = list(approvers or [])
        self.timeout_s = timeout_s
        self.channel = channel
        self.sent = 0

    def __call__(self, approval: ApprovalRow) -> None:
        """A pending request: its message. A settled one (decided elsewhere, expired, withdrawn): a short
        follow-up, since an incoming webhook cannot edit the first message (a click's response_url can:
        a Slack decision needs none)."""
        if approval.state == "pending":
            doc: dict[str, Any] = {"text": f"Approval needed: {approval.action.describe()} (approval {approval.id})",
                                   "blocks": blocks(approval, self.approvers)}
        elif approval.channel == "slack":
            return
        else:
            who = f" by {approval.approver} ({approval.channel})" if approval.approver else ""
            text = f"approval {approval.id} ({approval.action.describe()}): {approval.state}{who}"
            doc = {"text": text, "blocks": [_section(_esc(text))]}
        if self.channel:
            doc["channel"] = self.channel
        try:
            _post_json(self.webhook_url, doc, self.timeout_s)
        except (urllib.error.URLError, OSError) as e:  # the request stays pending: the CLI still decides it
            log.warning("approval %s: the Slack message could not be posted: %s", approval.id, e)
            return
        self.sent += 1


# ---------------------------------------------------------------------------- in: the clicks


class SlackInteractions:
    """The interactivity endpoint. `signing_secret` None: every request is refused (the channel is off).

    `counts` tallies the refusals by kind (forged, stale, replayed, not_allowed, malformed) and the
    accepted clicks, for /metrics and the tests.
    """

    def __init__(self, approvals: Approvals, signing_secret: str | None, *, clock: Callable[[], float] = time.time,
                 post: Callable[[str, Mapping[str, Any], float], int] = _post_json, timeout_s: float = 5.0,
                 response_url_prefixes: tuple[str, ...] = RESPONSE_URL_PREFIXES) -> None:
        self.response_url_prefixes = response_url_prefixes
        self.approvals = approvals
        self.signing_secret = signing_secret
        self.clock = clock
        self.post = post
        self.timeout_s = timeout_s
        self._seen: dict[str, float] = {}  # signature -> timestamp, for MAX_SKEW_S: a replay is refused
        self._lock = threading.Lock()
        self.counts = {"accepted": 0, "forged": 0, "stale": 0, "replayed": 0, "not_allowed": 0, "malformed": 0}

    def _count(self, kind: str) -> None:
        with self._lock:
            self.counts[kind] += 1

    def handle(self, headers: Mapping[str, str], body: bytes) -> Response:
        now = self.clock()
        if not self.signing_secret:
            self._count("forged")
            return Response(401, {"error": "the Slack channel is off: no signing secret is configured"})
        problem = verify_signature(self.signing_secret, headers, body, now)
        if problem is not None:
            self._count("stale" if "stale" in problem else "forged")
            log.warning("slack: request refused: %s", problem)
            return Response(401, {"error": problem})
        lower = {k.lower(): v for k, v in headers.items()}
        sig = lower["x-slack-signature"]
        with self._lock:
            self._seen = {s: t for s, t in self._seen.items() if now - t <= MAX_SKEW_S}
            replayed = sig in self._seen
            self._seen.setdefault(sig, now)
        if replayed:
            self._count("replayed")
            return Response(409, {"error": "this signed request was received before (a replay); ignored"})
        try:
            click = _parse_click(body, self.response_url_prefixes)
        except ValueError as e:
            self._count("malformed")
            return Response(400, {"error": f"not a Slack block_actions payload: {e}"})
        approval_id, approve, user, response_url = click
        try:
            decision = self.approvals.decide(approval_id, approve=approve, approver=user, channel="slack", at=now)
        except NotAllowed as e:
            self._count("not_allowed")
            self._tell(response_url, approval_id, f":no_entry: <@{_esc(user)}> may not decide this: {_esc(e.reason)}",
                       keep_buttons=True)
            return Response(403, {"error": e.reason})
        except KeyError:
            self._count("malformed")
            return Response(404, {"error": f"no approval {approval_id}"})
        self._count("accepted")
        row = decision.approval
        if decision.changed:
            mark = ":white_check_mark: Approved" if row.state == "approved" else ":x: Denied"
            note = f"{mark} by <@{_esc(user)}> at {_iso(now)}"
        else:
            note = f"{_esc(decision.message)} (clicked by <@{_esc(user)}>)"
        self._tell(response_url, approval_id, note, keep_buttons=False)
        return Response(200, {"status": "ok", "changed": decision.changed, "state": str(row.state),
                              "message": decision.message})

    def _tell(self, response_url: str | None, approval_id: int, note: str, *, keep_buttons: bool) -> None:
        """Update the message through the click's response_url (best effort: the decision is recorded)."""
        row = self.approvals.ledger.approval(approval_id)
        if not response_url or row is None:
            return
        doc = {"replace_original": True, "text": note, "blocks": decided_blocks(row, note, keep_buttons=keep_buttons)}
        try:
            self.post(response_url, doc, self.timeout_s)
        except (urllib.error.URLError, OSError) as e:
            log.warning("approval %s: the Slack message could not be updated: %s", approval_id, e)


def _parse_click(body: bytes, url_prefixes: tuple[str, ...]) -> tuple[int, bool, str, str | None]:
    """(approval id, approve?, Slack user id, response_url) of a block_actions payload; ValueError names the fault."""
    try:
        form = urllib.parse.parse_qs(body.decode("utf-8"), strict_parsing=True, max_num_fields=20)
    except (UnicodeDecodeError, ValueError) as e:
        raise ValueError(f"the body is not a form: {e}") from None
    raw = form.get("payload")
    if not raw or len(raw) != 1:
        raise ValueError("exactly one 'payload' field is required")
    try:
        doc = json.loads(raw[0])
    except (ValueError, RecursionError):
        raise ValueError("'payload' is not JSON") from None
    if not isinstance(doc, dict) or doc.get("type") != "block_actions":
        raise ValueError("payload.type must be 'block_actions'")
    user = doc.get("user")
    if not isinstance(user, dict) or not isinstance(user.get("id"), str) or not user["id"]:
        raise ValueError("payload.user.id is required")
    actions = doc.get("actions")
    if not isinstance(actions, list) or len(actions) != 1 or not isinstance(actions[0], dict):
        raise ValueError("payload.actions must hold the one button clicked")
    action = actions[0]
    if action.get("action_id") not in (APPROVE, DENY):
        raise ValueError(f"payload.actions[0].action_id must be {APPROVE} or {DENY}")
    value = action.get("value")
    if not isinstance(value, str) or not value.isdigit() or len(value) > 18:
        raise ValueError("payload.actions[0].value must be the approval id")
    url = doc.get("response_url")
    if url is not None and (not isinstance(url, str) or not url.startswith(url_prefixes)):
        raise ValueError(f"payload.response_url must start with {' or '.join(url_prefixes)}")
    return int(value), action["action_id"] == APPROVE, user["id"], url
