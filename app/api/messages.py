"""POST /v1/messages (and /messages; Claude Code adds `?beta=true`) and
/v1/messages/count_tokens: the Anthropic Messages face (app/faces/messages)."""
from __future__ import annotations

from dataclasses import replace

from flask import current_app, g, request

from app.api.body import read_json_body
from app.api.face_paths import claim
from app.api.faces import face_blueprint
from app.api.message_schemas import validate_count_tokens_request, validate_messages_request
from app.faces.messages import MESSAGES
from app.keys.enforcer import Enforcer

bp = face_blueprint("messages", MESSAGES, ("/v1/messages", "/messages"),
                    validate_messages_request)
COUNT_PATHS = ("/v1/messages/count_tokens", "/messages/count_tokens")
claim(MESSAGES, *COUNT_PATHS)


@bp.post(COUNT_PATHS[0])
@bp.post(COUNT_PATHS[1])
def count_tokens():
    """Anthropic's own count where the model is served by Anthropic, else counted here. A
    virtual key counts only for the models it may use (the count may call their provider)."""
    body = validate_count_tokens_request(read_json_body())
    if g.get("virtual_key") is not None:
        Enforcer.check_models(g.virtual_key, body)
    call = MESSAGES.service_request({"max_tokens": 1, **body}, request.headers)
    native = replace(call.native, api="messages.count_tokens", body=body)
    service = current_app.extensions["switchboard"]
    return {"input_tokens": service.count_tokens(call.params, native)}
