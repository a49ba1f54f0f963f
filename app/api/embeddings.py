"""POST /embeddings and /v1/embeddings (the embeddings face, app/faces/embeddings.py)."""
from __future__ import annotations

from flask import Blueprint, Response

from app.api.faces import admitted, described
from app.api.face_schemas import validate_embedding_request
from app.faces import embeddings
from app.jsonfast import dumps

bp = Blueprint("embeddings", __name__)


@bp.post("/embeddings")
@bp.post("/v1/embeddings")
def create_embeddings():
    service, body, context = admitted(validate_embedding_request, "embeddings")
    request, encoding = embeddings.to_service(body)
    outcome = service.embed(request, context)
    answer = embeddings.to_client(outcome.response, encoding)
    response = described(Response(dumps(answer), mimetype="application/json"), outcome,
                         context.started)
    if outcome.cache != "off":   # how many of the inputs the cache answered
        response.headers["x-switchboard-cache-hits"] = str(outcome.cached_inputs)
    return response
