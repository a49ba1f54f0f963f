"""/key/*: create, inspect, change and revoke virtual keys (master key only).

A key is returned once, by /key/generate; afterwards it is named by its id. Revocation
deletes the key's row; every worker of this instance reads its keys anew at once, other
instances within key_refresh_seconds (app/keys/availability.py).
"""
from __future__ import annotations

import re
import time
from typing import Any

from flask import Blueprint, Response, current_app, request
from marshmallow import Schema, ValidationError

from app.api.body import read_json_body
from app.api.key_schemas import KeyDelete, KeyLookup, KeySettings, KeyUpdate
from app.api.schemas import invalid_request, require_object
from app.errors import InvalidRequestError, ProxyError
from app.jsonfast import dumps
from app.keys.service import KeyService
from app.keys.store import KeyRecord, KeyStore

bp = Blueprint("keys", __name__)
DEFAULT_LIST_LIMIT = 100
MAX_LIST_LIMIT = 1000
_SETTINGS, _UPDATE, _DELETE, _LOOKUP = KeySettings(), KeyUpdate(), KeyDelete(), KeyLookup()
KEY_HEADER = "x-switchboard-key"  # /key/info: the key to look up, when not in the body
_DIGITS = re.compile(r"^[0-9]{1,16}$")


def _keys() -> KeyService:
    return current_app.extensions["switchboard.keys"]


def _store() -> KeyStore:
    return _keys().store


def _json(value: Any) -> Response:
    return Response(dumps(value), mimetype="application/json")


def _loaded(schema: Schema) -> dict[str, Any]:
    try:
        return schema.load(require_object(read_json_body()))
    except ValidationError as exc:
        raise invalid_request(exc.messages, {"Unknown field.": "is not a key setting"}) from None


def _not_found() -> ProxyError:
    return ProxyError("No such key.", status=404, type="invalid_request_error",
                      code="key_not_found")


def _named(key_id: str | None, key: str | None) -> KeyRecord:
    if key_id is None and key is None:
        raise InvalidRequestError("Name the key: key_id (or key).", param="key_id",
                                  code="missing_required_parameter")
    record = _store().resolve(key_id, key)
    if record is None:
        raise _not_found()
    return record


@bp.post("/key/generate")
def generate():
    record, key = _store().create(_loaded(_SETTINGS))
    return _json({"key": key, **record.info(time.time())})


@bp.route("/key/info", methods=["GET", "POST"])
def info():
    """A key named by `key_id` (query or body), or by the key itself in the body or the
    x-switchboard-key header: never in the URL, which ends up in logs."""
    if "key" in request.args:
        raise InvalidRequestError(
            "Never put a key in the URL (URLs end up in logs): send {\"key\": ...} in the "
            f"body or the key in the {KEY_HEADER} header, or name it by key_id.",
            param="key", code="key_in_url")
    named = _loaded(_LOOKUP) if request.content_length or request.method == "POST" else {}
    record = _named(named.get("key_id", request.args.get("key_id")),
                    named.get("key", request.headers.get(KEY_HEADER)))
    return _json(record.info(time.time()))


@bp.get("/key/list")
def listing():
    limit = _number("limit", DEFAULT_LIST_LIMIT, 1, MAX_LIST_LIMIT)
    offset = _number("offset", 0, 0, 2**53)
    now = time.time()
    return _json({"keys": [r.info(now) for r in _store().list(limit, offset)],
                  "limit": limit, "offset": offset})


@bp.post("/key/update")
def update():
    changes = _loaded(_UPDATE)
    record = _named(changes.pop("key_id", None), changes.pop("key", None))
    updated = _store().update(record.id, changes)
    _keys().changed()
    if updated is None:
        raise _not_found()
    return _json(updated.info(time.time()))


@bp.post("/key/delete")
def delete():
    body = _loaded(_DELETE)
    store = _store()
    ids = [*body.get("key_ids", ()), *([body["key_id"]] if "key_id" in body else ())]
    for key in [*body.get("keys", ()), *([body["key"]] if "key" in body else ())]:
        record = store.authenticate(key)
        if record is not None:
            ids.append(record.id)
    if not ids and not body.get("keys") and "key" not in body:
        raise InvalidRequestError("Name the keys: key_id, key_ids, key or keys.",
                                  param="key_ids", code="missing_required_parameter")
    deleted = store.delete(ids)
    _keys().changed()
    if not deleted:
        raise _not_found()
    return _json({"deleted": deleted})


def _number(name: str, default: int, low: int, high: int) -> int:
    text = request.args.get(name)
    if text is None:
        return default
    if not _DIGITS.match(text) or not low <= int(text) <= high:
        raise InvalidRequestError(f"Invalid parameter '{name}': must be a whole number from "
                                  f"{low} to {high}.", param=name, code="invalid_value")
    return int(text)
