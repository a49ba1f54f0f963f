"""GET /models and /v1/models in OpenAI's list shape."""
from __future__ import annotations

import time

from flask import Blueprint, current_app, g

bp = Blueprint("models", __name__)
_STARTED = int(time.time())


@bp.get("/models")
@bp.get("/v1/models")
def list_models():
    """The models this proxy can serve now; for a virtual key, only those it may use."""
    router = current_app.extensions["switchboard"].router
    key = g.get("virtual_key")
    data = [{"id": name, "object": "model", "created": _STARTED, "owned_by": provider}
            for name, provider in router.available_models()
            if key is None or not key.models or key.allows(name)]
    return {"object": "list", "data": data}
