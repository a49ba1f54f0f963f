"""GET /models and /v1/models in OpenAI's list shape; one model's facts at
/v1/models/{model}, and every model's (or `?model=`'s) at /model/info."""
from __future__ import annotations

import time
from datetime import datetime, timezone

from flask import Blueprint, current_app, g, request

from app.errors import ModelNotFoundError
from app.service.model_facts import model_facts
from app.service.router import LIST_MODELS_HINT

bp = Blueprint("models", __name__)
_STARTED = int(time.time())


def _visible(name: str) -> bool:
    """A virtual key sees only the models it may use."""
    key = g.get("virtual_key")
    return key is None or key.allows(name)


def _facts(name: str) -> dict:
    if not _visible(name):
        raise ModelNotFoundError(f"The model {name!r} does not exist or is not served here; "
                                 f"{LIST_MODELS_HINT}.", param="model")
    return model_facts(current_app.extensions["switchboard"].router, name)


@bp.get("/models")
@bp.get("/v1/models")
def list_models():
    """The models this proxy can serve now; for a virtual key, only those it may use. In
    Anthropic's list shape when asked as Anthropic's API is (with `anthropic-version`)."""
    router = current_app.extensions["switchboard"].router
    names = [(name, provider) for name, provider in router.available_models() if _visible(name)]
    if request.headers.get("anthropic-version"):
        return anthropic_list(router, [name for name, _ in names])
    data = [{"id": name, "object": "model", "created": _STARTED, "owned_by": provider}
            for name, provider in names]
    return {"object": "list", "data": data}


def anthropic_list(router, names: list[str]) -> dict:
    """Anthropic's ListResponse[ModelInfo], one page holding every model."""
    created = datetime.fromtimestamp(_STARTED, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    data = []
    for name in names:
        info = router.registry.get(name) or {}
        data.append({"type": "model", "id": name, "display_name": name, "created_at": created,
                     "capabilities": None, "max_input_tokens": info.get("context_window"),
                     "max_tokens": info.get("max_output_tokens")})
    return {"data": data, "has_more": False, "first_id": names[0] if names else None,
            "last_id": names[-1] if names else None}


@bp.get("/models/<path:model>")
@bp.get("/v1/models/<path:model>")
def retrieve_model(model: str):
    """OpenAI's model object, with the model's facts beside its four fields."""
    facts = _facts(model)
    return {"id": model, "object": "model", "created": _STARTED,
            "owned_by": facts["provider"], **facts}


@bp.get("/model/info")
def model_info():
    """Facts of every model /v1/models lists, or of `?model=` alone."""
    asked = request.args.get("model")
    if asked:
        return {"data": [_facts(asked)]}
    router = current_app.extensions["switchboard"].router
    return {"data": [model_facts(router, name) for name, _ in router.available_models()
                     if _visible(name)]}
