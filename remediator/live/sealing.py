"""Sealed Secret values: how `revert_config` can put a Secret back without ever holding it in plain text.

With secret reverts on (`secrets.revert`, off by default), the healthy-time sweep reads each Secret
a watched workload references and keeps, in the ledger, its digest and its data *sealed*: encrypted
and authenticated with AES-256-GCM (the `cryptography` library), under a key derived (HKDF-SHA256)
from the secret the operator supplies in an environment variable or a mounted file, never in the
configuration. The Secret's identity (kind, namespace, name) is the associated data, so a token
cannot be replayed onto another Secret. Only the executor opens a token, in memory, to write the
values back; what it records (the plan, the inverse: the values it replaced) is sealed again.

A token names the key it was sealed with (a short fingerprint, not the key), so a key that
changed is reported as such rather than as a corrupt record:

    >>> sealer = Sealer.from_secret("correct horse battery staple, twice over")
    >>> token = sealer.seal(ObjectRef("Secret", "shop", "db"), {"data": {"password": "aHVudGVyMg=="}})
    >>> sealer.open(ObjectRef("Secret", "shop", "db"), token)
    {'data': {'password': 'aHVudGVyMg=='}}
    >>> "aHVudGVyMg==" in token
    False
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from remediator.actions import ObjectRef

__all__ = ["MIN_SECRET_CHARS", "SealError", "Sealer"]

_VERSION = "v1"
_INFO = b"remediator: sealed Secret values v1"
#: The shortest secret accepted as a sealing key (`openssl rand -hex 32` gives 64 characters).
MIN_SECRET_CHARS = 32


class SealError(RuntimeError):
    """A token that cannot be opened (another key, altered, not a token); `ref` is the Secret it was for."""

    def __init__(self, ref: ObjectRef, reason: str) -> None:
        super().__init__(f"cannot open the sealed values of {ref}: {reason}")
        self.ref = ref
        self.reason = reason


class Sealer:
    """Seals and opens Secret data with one key. Its repr shows the key's fingerprint only."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("a sealing key is 32 bytes (AES-256)")
        self._aead = AESGCM(key)
        self.key_id = hmac.new(key, b"remediator key id", hashlib.sha256).hexdigest()[:12]

    @classmethod
    def from_secret(cls, secret: str) -> Sealer:
        """The sealer of an operator-supplied secret (at least `MIN_SECRET_CHARS` characters)."""
        text = secret.strip()
        if len(text) < MIN_SECRET_CHARS:
            raise ValueError(f"the sealing secret has {len(text)} characters; at least {MIN_SECRET_CHARS} are "
                             "needed (e.g. `openssl rand -hex 32`)")
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(text.encode())
        return cls(key)

    def __repr__(self) -> str:
        return f"Sealer(key {self.key_id})"

    @staticmethod
    def _aad(ref: ObjectRef) -> bytes:
        return f"{ref.kind}/{ref.namespace}/{ref.name}".encode()

    def seal(self, ref: ObjectRef, data: Mapping[str, Any]) -> str:
        """`data` (JSON) sealed for the Secret `ref`: `v1:<key id>:<base64 nonce + ciphertext + tag>`."""
        nonce = os.urandom(12)
        body = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
        sealed = self._aead.encrypt(nonce, body, self._aad(ref))
        return f"{_VERSION}:{self.key_id}:{base64.b64encode(nonce + sealed).decode()}"

    def sealed_by_me(self, token: str) -> bool:
        """Whether `token` was sealed with this key (by its key id; `open` still authenticates it)."""
        return token.startswith(f"{_VERSION}:{self.key_id}:")

    def open(self, ref: ObjectRef, token: str) -> dict[str, Any]:
        """The data sealed in `token` for `ref`; `SealError` if this key cannot open it."""
        parts = token.split(":", 2)
        if len(parts) != 3 or parts[0] != _VERSION:
            raise SealError(ref, "not a sealed token of this version of remediator")
        if parts[1] != self.key_id:
            raise SealError(ref, f"it was sealed with key {parts[1]}, and the configured sealing key is "
                                 f"{self.key_id}: supply the key it was sealed with (or wait for the next "
                                 "healthy-time sweep to seal it anew)")
        try:
            raw = base64.b64decode(parts[2], validate=True)
            body = self._aead.decrypt(raw[:12], raw[12:], self._aad(ref))
        except (InvalidTag, ValueError):
            raise SealError(ref, "the token does not authenticate (altered, or sealed for another Secret)") from None
        out = json.loads(body)
        if not isinstance(out, dict):
            raise SealError(ref, "the sealed value is not a mapping")
        return out
