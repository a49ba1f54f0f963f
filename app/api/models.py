"""GET /models and /v1/models in OpenAI's list shape; one model's facts at
/v1/models/{model}, and every model's (or `?model=`'s) at /model/info. Asked as Anthropic's
API is (with `anthropic-version`), the list and one model are Anthropic's ModelInfo, and
errors there take Anthropic's shape."""
from __future__ import annotations

import time
from typing import Callable
from datetime import datetime, timezone

from flask import Blueprint, current_app, g, request

from app.errors import InvalidRequestError, ModelNotFoundError, ProxyError
from app.faces.messages import MESSAGES
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
    if _asked_as_anthropic():
        return _in_anthropic_shape(lambda: anthropic_list(router, [name for name, _ in names]))
    data = [{"id": name, "object": "model", "created": _STARTED, "owned_by": provider}
            for name, provider in names]
    return {"object": "list", "data": data}


def anthropic_list(router, names: list[str]) -> dict:
    """Anthropic's ListResponse[ModelInfo]: the page its `limit`, `after_id` and `before_id`
    ask for; without `limit`, every model on one page (so a client reading one page sees
    all)."""
    page = _page(names, request.args)
    return {"data": [_anthropic_model(name, model_facts(router, name)) for name in page["ids"]],
            "has_more": page["has_more"], "first_id": page["ids"][0] if page["ids"] else None,
            "last_id": page["ids"][-1] if page["ids"] else None}


def _page(names: list[str], args) -> dict:
    limit = _limit(args.get("limit"))
    after, before = args.get("after_id"), args.get("before_id")
    for param, cursor in (("after_id", after), ("before_id", before)):
        if cursor is not None and cursor not in names:
            raise InvalidRequestError(f"{param}: no model {cursor!r} in this list.", param=param)
    if before is not None:
        end = names.index(before)
        start = max(0, end - limit) if limit else 0
        return {"ids": names[start:end], "has_more": start > 0}
    start = names.index(after) + 1 if after is not None else 0
    end = start + limit if limit else len(names)
    return {"ids": names[start:end], "has_more": end < len(names)}


def _limit(raw: str | None) -> int | None:
    if raw is None:
        return None
    if not raw.isdigit() or not 1 <= int(raw) <= 1000:
        raise InvalidRequestError(f"limit: must be an integer from 1 to 1000 (got {raw!r}).",
                                  param="limit")
    return int(raw)


def _anthropic_model(name: str, facts: dict) -> dict:
    """Anthropic's ModelInfo of a name this proxy serves, from its facts."""
    created = datetime.fromtimestamp(_STARTED, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"type": "model", "id": name, "display_name": name, "created_at": created,
            "capabilities": None,
            "max_input_tokens": facts.get("max_input_tokens") or facts.get("context_window"),
            "max_tokens": facts.get("max_output_tokens")}


def _asked_as_anthropic() -> bool:
    return bool(request.headers.get("anthropic-version"))


def _in_anthropic_shape(answer: Callable[[], dict]):
    """`answer()`, or the error it raises in Anthropic's shape (the anthropic SDK's view)."""
    try:
        return answer()
    except ProxyError as error:
        return MESSAGES.error_body(error, g.get("request_id")), MESSAGES.error_status(error)


@bp.get("/models/<path:model>")
@bp.get("/v1/models/<path:model>")
def retrieve_model(model: str):
    """OpenAI's model object, with the model's facts beside its four fields."""
    if _asked_as_anthropic():
        return _in_anthropic_shape(lambda: _anthropic_model(model, _facts(model)))
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
