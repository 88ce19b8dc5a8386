"""Sealed Secret values (remediator/live/sealing.py) and how the ledger and the core keep them: the
values only ever as an authenticated ciphertext, a Secret edited in place revertible only when its good
values were sealed, and the switch's reasons when it is off."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from remediator.actions import ObjectRef
from remediator.live.config import SecretSettings
from remediator.live.ledger import Ledger
from remediator.live.sealing import Sealer, SealError
from remediator.versions import (
    ConfigVersion,
    KnownGood,
    config_digest,
    config_drift,
    config_version,
    known_good_from_doc,
    known_good_to_doc,
    redact_secret,
)

KEY = "0123456789abcdef0123456789abcdef-test-key"
OTHER_KEY = "fedcba9876543210fedcba9876543210-other-key"
DB = ObjectRef("Secret", "shop", "cart-db")
PLAIN = "hunter2-the-good-password"
GOOD = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": "cart-db", "namespace": "shop", "uid": "u-1"},
        "data": {"password": base64.b64encode(PLAIN.encode()).decode()}}
EDITED = {**GOOD, "data": {"password": base64.b64encode(b"wrong").decode()}}


def test_sealed_values_open_with_the_key_and_only_for_their_secret() -> None:
    sealer = Sealer.from_secret(KEY)
    token = sealer.seal(DB, {"data": GOOD["data"]})
    assert PLAIN not in token and GOOD["data"]["password"] not in token
    assert sealer.open(DB, token) == {"data": GOOD["data"]}
    assert sealer.seal(DB, {"data": GOOD["data"]}) != token, "a fresh nonce each time"
    with pytest.raises(SealError, match="sealed for another Secret"):
        sealer.open(ObjectRef("Secret", "shop", "other"), token)
    tampered = token[:-6] + ("A" if token[-6] != "A" else "B") + token[-5:]
    with pytest.raises(SealError, match="does not authenticate"):
        sealer.open(DB, tampered)


def test_another_key_is_named_as_such() -> None:
    token = Sealer.from_secret(KEY).seal(DB, {"data": GOOD["data"]})
    other = Sealer.from_secret(OTHER_KEY)
    with pytest.raises(SealError) as err:
        other.open(DB, token)
    assert f"the configured sealing key is {other.key_id}" in str(err.value) and err.value.ref == DB
    assert KEY not in repr(other) and OTHER_KEY not in repr(other)


def test_a_short_secret_is_not_a_key() -> None:
    with pytest.raises(ValueError, match="at least 32"):
        Sealer.from_secret("short")


def test_the_switch_says_why_it_is_off(tmp_path: Path) -> None:
    assert SecretSettings().off_reason({"REMEDIATOR_SECRET_KEY": KEY}) == "secrets.revert is off"
    on = SecretSettings(revert=True)
    assert "no sealing key was found in $REMEDIATOR_SECRET_KEY" in on.off_reason({})
    assert "characters (at least 32)" in on.off_reason({"REMEDIATOR_SECRET_KEY": "short"})
    assert on.off_reason({"REMEDIATOR_SECRET_KEY": KEY}) == ""
    key_file = tmp_path / "key"
    key_file.write_text(KEY + "\n")
    from_file = SecretSettings(revert=True, key_file=key_file)
    assert from_file.off_reason({}) == "" and from_file.key({}) == KEY


def test_a_redacted_secret_keeps_its_digest_and_no_value() -> None:
    redacted = redact_secret(GOOD)
    assert "data" not in redacted and PLAIN not in str(redacted) and GOOD["data"]["password"] not in str(redacted)
    assert config_digest(redacted) == config_digest(GOOD) != config_digest(EDITED)
    assert config_version(redacted) == config_version(GOOD)


def test_an_edited_secret_is_revertible_only_with_sealed_good_values() -> None:
    sealer = Sealer.from_secret(KEY)
    good, now = config_version(GOOD), config_version(redact_secret(EDITED))
    [blocked] = config_drift((now,), (good,))
    assert blocked.how == "edited" and "secrets.revert" in blocked.blocked
    sealed = ConfigVersion(good.ref, good.digest, sealed=sealer.seal(DB, {"data": GOOD["data"]}))
    [drift] = config_drift((now,), (sealed,))
    assert drift.how == "edited" and drift.blocked == ""
    frozen = ConfigVersion(now.ref, now.digest, immutable=True)
    [refused] = config_drift((frozen,), (sealed,))
    assert "immutable" in refused.blocked


def test_the_ledger_keeps_the_ciphertext_and_digest_only(tmp_path: Path) -> None:
    sealer = Sealer.from_secret(KEY)
    cart = ObjectRef("Deployment", "shop", "cart")
    good = config_version(redact_secret(GOOD))
    token = sealer.seal(DB, {"data": GOOD["data"]})
    path = tmp_path / "ledger.db"
    with Ledger(path) as ledger:
        assert ledger.record_known_good(KnownGood(cart, 100.0, (good,)))
        assert ledger.record_known_good(KnownGood(cart, 200.0, (ConfigVersion(DB, good.digest, sealed=token),))), \
            "sealing a version it held unsealed is new: now it can be put back"
        # A record made without sealing (at a verified recovery) keeps the sealed token.
        assert not ledger.record_known_good(KnownGood(cart, 300.0, (good,)))
        [record] = ledger.known_good("shop")
        assert record.config(DB) is not None and record.config(DB).sealed == token  # type: ignore[union-attr]
        # Sealed again under another key: the fresh token replaces the old one.
        fresh = Sealer.from_secret(OTHER_KEY).seal(DB, {"data": GOOD["data"]})
        assert not ledger.record_known_good(KnownGood(cart, 400.0, (ConfigVersion(DB, good.digest, sealed=fresh),)))
        assert ledger.known_good("shop")[0].config(DB).sealed == fresh  # type: ignore[union-attr]
    raw = path.read_bytes()
    assert PLAIN.encode() not in raw and GOOD["data"]["password"].encode() not in raw
    assert fresh.encode() in raw


def test_the_stored_form_drops_any_plain_data_of_a_secret() -> None:
    leaky = ConfigVersion(DB, "blake2b:x", data={"data": {"password": "cGxhaW4="}}, sealed="v1:k:abc")
    doc = known_good_to_doc(KnownGood(ObjectRef("Deployment", "shop", "cart"), 1.0, (leaky,)))
    assert doc["configs"][0]["data"] == {} and doc["configs"][0]["sealed"] == "v1:k:abc"
    back = known_good_from_doc(doc).configs[0]
    assert back.sealed == "v1:k:abc" and back.data == {}
