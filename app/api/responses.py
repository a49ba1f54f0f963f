"""OpenAI's Responses API: POST /v1/responses (and /responses), and for stored responses
GET and DELETE /v1/responses/{id} and GET /v1/responses/{id}/input_items."""
from __future__ import annotations

import threading

from flask import Blueprint, Flask, Response, current_app, g, request

from app.api.face_paths import claim
from app.api.faces import serve
from app.api.responses_schemas import validate_responses_request
from app.errors import InvalidRequestError, ProxyError
from app.faces.responses import ResponsesFace
from app.jsonfast import dumps
from app.service.completion import CompletionService
from app.storage.responses import Owner, ResponseStore, retention_days

bp = Blueprint("responses", __name__)
PATHS = ("/v1/responses", "/responses")
EXTENSION = "switchboard.responses"
_opening = threading.Lock()
claim(ResponsesFace(), *PATHS)


def install(app: Flask, service: CompletionService) -> None:
    """Check the `responses:` config section at start; the store opens on first use."""
    retention_days(service.settings)


def response_store() -> ResponseStore:
    """The app's response store, opened (and migrated) on first use."""
    store = current_app.extensions.get(EXTENSION)
    if store is None:
        with _opening:
            store = current_app.extensions.get(EXTENSION)
            if store is None:
                settings = current_app.extensions["switchboard"].settings
                store = current_app.extensions[EXTENSION] = ResponseStore.from_settings(settings)
    return store


def caller() -> Owner:
    """A virtual key owns what it stores; without one the caller is the master key when one
    is configured (auth let it through), or anyone on an open proxy."""
    key = g.get("virtual_key")
    if key is not None:
        return Owner(key.id)
    master = current_app.extensions["switchboard"].settings.env.get("SWITCHBOARD_MASTER_KEY")
    return Owner(None, master=bool(master))


@bp.post("/v1/responses")
@bp.post("/responses")
def create_response():
    settings = current_app.extensions["switchboard"].settings
    face = ResponsesFace(response_store(), caller(), settings.drop_params)
    return serve(face, validate_responses_request)


def _stored(response_id: str):
    stored = response_store().get(response_id, caller())
    if stored is None:
        raise ProxyError(f"No response found with id '{response_id}'.", status=404,
                         type="invalid_request_error", code="response_not_found",
                         param="response_id")
    return stored


def _json(body) -> Response:
    return Response(dumps(body), mimetype="application/json")


@bp.get("/v1/responses/<response_id>")
@bp.get("/responses/<response_id>")
def get_response(response_id: str):
    return _json(_stored(response_id).response)


@bp.delete("/v1/responses/<response_id>")
@bp.delete("/responses/<response_id>")
def delete_response(response_id: str):
    if not response_store().delete(response_id, caller()):
        _stored(response_id)  # the same 404 as a read
    return _json({"id": response_id, "object": "response", "deleted": True})


@bp.get("/v1/responses/<response_id>/input_items")
@bp.get("/responses/<response_id>/input_items")
def list_input_items(response_id: str):
    """OpenAI's cursor list: newest first unless `order=asc`, `limit` 1-100, `after` an id."""
    stored = _stored(response_id)
    order = request.args.get("order", "desc")
    if order not in ("asc", "desc"):
        raise InvalidRequestError("Invalid parameter 'order': must be asc or desc.", param="order")
    try:
        limit = int(request.args.get("limit", "20"))
    except ValueError:
        limit = 0
    if not 1 <= limit <= 100:
        raise InvalidRequestError("Invalid parameter 'limit': must be an integer from 1 to 100.",
                                  param="limit")
    items = stored.listed_items()
    if order == "desc":
        items.reverse()
    after = request.args.get("after")
    if after:
        ids = [item["id"] for item in items]
        if after not in ids:
            raise InvalidRequestError(f"Invalid parameter 'after': no item {after!r} in this "
                                      "response's input.", param="after")
        items = items[ids.index(after) + 1:]
    page = items[:limit]
    return _json({"object": "list", "data": page,
                  "first_id": page[0]["id"] if page else None,
                  "last_id": page[-1]["id"] if page else None,
                  "has_more": len(items) > limit})
