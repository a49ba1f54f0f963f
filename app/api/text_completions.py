"""POST /completions and /v1/completions (the text completions face,
app/faces/completions.py), plain or streamed."""
from __future__ import annotations

from flask import Blueprint, Response

from app.api.faces import admitted, described, event_stream
from app.faces.chat import sse_frames
from app.api.face_schemas import validate_text_completion_request
from app.faces import completions
from app.jsonfast import dumps
from app.service.operations import TEXT

bp = Blueprint("text_completions", __name__)


@bp.post("/completions")
@bp.post("/v1/completions")
def create_completion():
    service, body, context = admitted(validate_text_completion_request, "completions")
    outcome = service.complete(completions.to_service(body), context, TEXT)
    if outcome.chunks is not None:
        response = event_stream(sse_frames(completions.chunks_to_client(outcome.chunks)))
    else:
        response = Response(dumps(completions.to_client(outcome.response)),
                            mimetype="application/json")
    return described(response, outcome, context.started)
