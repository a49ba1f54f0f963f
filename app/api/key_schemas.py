"""What the key admin endpoints accept. Types are strict (a budget of "5" is refused, not
read as 5), unknown fields are refused, and every message names the field."""
from __future__ import annotations

import time
from datetime import datetime, timezone

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from app.api.schemas import StrictInteger, StrictNumber, StrictObject, StrictString
from app.keys.store import DURATION_HINT, duration_seconds

MAX_MODELS = 1000
MAX_KEYS_PER_DELETE = 1000


class Duration(StrictString):
    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            duration_seconds(text)
        except ValueError:
            raise ValidationError(f"must be {DURATION_HINT}") from None
        return text


class Expiry(fields.Field):
    """An ISO 8601 time (UTC when it names no zone) or a duration from now; unix seconds."""

    def _deserialize(self, value, attr, data, **kwargs):
        problem = f"must be an ISO 8601 time or {DURATION_HINT}"
        if not isinstance(value, str):
            raise ValidationError(problem)
        try:
            return time.time() + duration_seconds(value)
        except ValueError:
            pass
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise ValidationError(problem) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        return moment.timestamp()


def _count():
    return StrictInteger(allow_none=True, validate=validate.Range(
        min=0, max=2**53, error="must be a whole number, 0 or more"))


class KeySettings(Schema):
    """A key's limits and labels; null means no limit (on update: remove the limit)."""

    class Meta:
        unknown = RAISE

    models = fields.List(StrictString(validate=validate.Length(min=1, max=256)), allow_none=True,
                         validate=validate.Length(max=MAX_MODELS))
    # JSON has no infinity: the parser already refuses 1e400.
    max_budget = StrictNumber(allow_none=True, validate=validate.Range(
        min=0, error="must be a number of USD, 0 or more"))
    budget_duration = Duration(allow_none=True)
    rpm_limit = _count()
    tpm_limit = _count()
    max_parallel_requests = _count()
    expires = Expiry(allow_none=True)
    metadata = StrictObject(allow_none=True)
    alias = StrictString(allow_none=True, validate=validate.Length(max=256))


class KeyUpdate(KeySettings):
    """Which key (its id, or the key itself) and the fields to change."""

    key_id = StrictString()
    key = StrictString()


class KeyLookup(Schema):
    """/key/info's body: which key, by its id or by the key itself."""

    class Meta:
        unknown = RAISE

    key_id = StrictString()
    key = StrictString()


class KeyDelete(Schema):
    class Meta:
        unknown = RAISE

    key_id = StrictString()
    key = StrictString()
    key_ids = fields.List(StrictString(), validate=validate.Length(max=MAX_KEYS_PER_DELETE))
    keys = fields.List(StrictString(), validate=validate.Length(max=MAX_KEYS_PER_DELETE))
