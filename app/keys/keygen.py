"""Virtual key material: `sk-sb-<id>_<secret>`, where only a hash of the whole key is kept.

The id part is public (it names the key in the ledger, events and the admin API), so a
key is looked up by id and its secret is checked by comparing hashes in constant time.
The secret holds 256 random bits, so one round of SHA-256 is enough (no password stretching).
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets

PREFIX = "sk-sb-"
_ID_HEX = 16
_SHAPE = re.compile(rf"^{PREFIX}([0-9a-f]{{{_ID_HEX}}})_[A-Za-z0-9_-]{{43}}$")


def new_key() -> tuple[str, str]:
    """(key_id, key): the key is shown once, to whoever generated it."""
    key_id = secrets.token_hex(_ID_HEX // 2)
    return key_id, f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}"


def key_id_of(token: str) -> str | None:
    """The id inside a well-formed virtual key; None for anything else."""
    match = _SHAPE.match(token)
    return match.group(1) if match else None


def key_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def matches(token: str, stored_hash: str) -> bool:
    return hmac.compare_digest(key_hash(token), stored_hash)
