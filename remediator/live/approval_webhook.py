"""The plain JSON approval webhook: `POST /approvals/ID` with `{"decision": "approve"|"deny", "approver": NAME}`.

For scripts, chat bots and tools other than Slack. The request is authenticated with the
configured `approval.token` (env `REMEDIATOR_APPROVAL_TOKEN`), either as

    Authorization: Bearer TOKEN
    X-Remediator-Signature: sha256=HEX(HMAC-SHA256(TOKEN, raw body))

both compared in constant time; the approver must be on `approval.approvers`. Answers:

    200  decided as asked (`changed` false: it already was, this request changed nothing)
    400  the body is not that JSON object (each fault named)
    401  no or a wrong token or signature
    403  the approver is not on the allow-list (recorded)
    404  no such approval, or the webhook is off (no token configured)
    409  it changed nothing: decided otherwise before, expired, or the incident closed
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from remediator.live.approval import Approvals, NotAllowed
from remediator.live.ledger import approval_summary
from remediator.live.receiver import Response

__all__ = ["APPROVALS_PREFIX", "ApprovalWebhook"]

APPROVALS_PREFIX = "/approvals/"
_ID = re.compile(r"[1-9][0-9]{0,17}")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")
    decision: Literal["approve", "deny"]
    approver: str = Field(min_length=1, max_length=256, pattern=r"^[^\x00-\x1f\x7f]+$")


class ApprovalWebhook:
    def __init__(self, approvals: Approvals, token: str | None) -> None:
        self.approvals = approvals
        self.token = token

    def authorized(self, headers: Mapping[str, str], body: bytes) -> bool:
        if not self.token:
            return False
        lower = {k.lower(): v for k, v in headers.items()}
        scheme, _, given = lower.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), self.token.encode()):
            return True
        signed = lower.get("x-remediator-signature", "")
        expected = "sha256=" + hmac.new(self.token.encode(), body, hashlib.sha256).hexdigest()
        return bool(signed) and hmac.compare_digest(signed.strip().encode(), expected.encode())

    def handle(self, path: str, headers: Mapping[str, str], body: bytes) -> Response:
        """POST /approvals/ID."""
        if not self.token:
            return Response(404, {"error": "the approval webhook is off: set approval.token "
                                           "(or REMEDIATOR_APPROVAL_TOKEN)"})
        if not self.authorized(headers, body):
            return Response(401, {"error": "a valid bearer token or X-Remediator-Signature is required"},
                            {"WWW-Authenticate": "Bearer"})
        text_id = path.removeprefix(APPROVALS_PREFIX)
        if not _ID.fullmatch(text_id):
            return Response(404, {"error": f"{APPROVALS_PREFIX}ID takes a positive integer id, not {text_id[:40]!a}"})
        try:
            doc = json.loads(body)
        except (ValueError, RecursionError) as e:
            return Response(400, {"error": f"body is not JSON: {type(e).__name__}"})
        if not isinstance(doc, dict):
            return Response(400, {"error": f"body must be a JSON object with decision and approver, not "
                                           f"{type(doc).__name__}"})
        try:
            req = _Body.model_validate(doc)
        except ValidationError as e:
            return Response(400, {"error": "malformed approval", "problems": [
                f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}" for err in e.errors()][:10]})
        approval_id = int(text_id)
        try:
            decision = self.approvals.decide(approval_id, approve=req.decision == "approve", approver=req.approver,
                                             channel="webhook")
        except NotAllowed as e:
            return Response(403, {"error": e.reason})
        except KeyError:
            return Response(404, {"error": f"no approval {approval_id}"})
        state = str(decision.approval.state)
        as_asked = state == ("approved" if req.decision == "approve" else "denied")
        return Response(200 if as_asked else 409, {"changed": decision.changed, "state": state,
                                                   "message": decision.message,
                                                   "approval": approval_summary(decision.approval)})
