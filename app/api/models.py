"""GET /models and /v1/models in OpenAI's list shape."""
from __future__ import annotations

import time

from flask import Blueprint, current_app

bp = Blueprint("models", __name__)
_STARTED = int(time.time())


@bp.get("/models")
@bp.get("/v1/models")
def list_models():
    router = current_app.extensions["switchboard"].router
    data = [{"id": name, "object": "model", "created": _STARTED, "owned_by": provider}
            for name, provider in router.available_models()]
    return {"object": "list", "data": data}
