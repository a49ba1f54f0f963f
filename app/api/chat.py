"""POST /chat/completions and /v1/chat/completions."""
from __future__ import annotations

import logging
import time
from typing import Any, Callable

from flask import Blueprint, Response, current_app, g, request

from app.api.auth import admit, identify, leased
from app.api.cache import apply_cache_control
from app.api.limits import check_depth, check_value_count
from app.api.keepalive import STREAM_FLAG
from app.api.schemas import validate_chat_request
from app.errors import ClientDisconnected, InvalidRequestError, ProxyError
from app.jsonfast import dumps, loads
from app.service.events import RequestContext

bp = Blueprint("chat", __name__)
log = logging.getLogger("switchboard")


def read_json_body():
    """The request body as JSON, with 415 for another content type and 400 for bad JSON."""
    mimetype = request.mimetype
    if mimetype != "application/json" and not mimetype.endswith("+json"):
        raise ProxyError("Send the body as JSON with Content-Type: application/json "
                         f"(got {mimetype or 'none'}).", status=415,
                         type="invalid_request_error", code="unsupported_media_type")
    data = request.get_data(cache=False)
    check_value_count(data)
    try:
        body = loads(data)
    except ValueError as exc:
        raise InvalidRequestError(f"The request body is not valid JSON: {exc}.",
                                  code="invalid_json") from None
    check_depth(body)
    # Lets the keep-alive padding know a JSON answer is coming (app/api/keepalive.py).
    request.environ[STREAM_FLAG] = isinstance(body, dict) and body.get("stream") is True
    return body


def sse_frames(chunks):
    """`data: <chunk>` frames, then `data: [DONE]`. A failure after the first byte becomes an
    in-band error frame, so a cut stream never looks like a finished one."""
    try:
        for chunk in chunks:
            yield b"data: " + dumps(chunk) + b"\n\n"
    except ClientDisconnected:
        return  # nobody is left to read an error frame
    except ProxyError as exc:
        yield b"data: " + dumps(exc.to_dict()) + b"\n\n"
    except Exception:
        log.exception("stream failed")
        yield b"data: " + dumps(ProxyError("The stream failed inside the proxy.",
                                           code="internal_error").to_dict()) + b"\n\n"
    yield b"data: [DONE]\n\n"


def event_stream(chunks) -> Response:
    """A Server-Sent Events response of `chunks`, never buffered on the way."""
    response = Response(sse_frames(leased(chunks)), mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"
    return response


@bp.post("/chat/completions")
@bp.post("/v1/chat/completions")
def chat_completions():
    service, body, context = admitted(validate_chat_request)
    outcome = service.complete(body, context)
    if outcome.chunks is not None:
        response = event_stream(outcome.chunks)
    else:
        response = Response(dumps(outcome.response), mimetype="application/json")
    return described(response, outcome, context.started)


def admitted(validate: Callable[[Any], dict]) -> tuple[Any, dict, RequestContext]:
    """(service, body, context) of a request to a completion-type endpoint: read, validated
    with `validate`, admitted for the caller's key, cache controls applied. A refused
    request still gets its event (ledger, integrations)."""
    started = request.environ.get("switchboard.started") or time.perf_counter()
    service = current_app.extensions["switchboard"]
    context = RequestContext(request_id=g.request_id, started=started,
                             callbacks=g.get("callbacks", True),  # see app/callbacks/optout.py
                             client=request.environ.get("gunicorn.socket"))
    identify(context)  # the virtual key's id and alias (app/api/auth.py)
    body = None
    try:
        body = read_json_body()  # kept for the ledger row even when it is invalid
        body = validate(body)
        admit(body, context)  # the key's allowed models, budget and rate limits
    except ProxyError as error:
        service.record_rejection(body, error, context)
        raise
    return service, apply_cache_control(body, request.headers.get("Cache-Control")), context


def described(response: Response, outcome, started: float) -> Response:
    """The x-switchboard-* headers of an answer: who answered, at what cost, how, from the
    cache or not, and the overhead the proxy added."""
    headers = response.headers
    if outcome.chunks is None:
        headers["x-switchboard-cost"] = outcome.bill.cost_text
    headers["x-switchboard-model"] = outcome.target.model
    headers["x-switchboard-provider"] = outcome.target.provider
    headers["x-switchboard-attempted-fallbacks"] = str(outcome.trail.fallbacks)
    headers["x-switchboard-attempted-retries"] = str(outcome.trail.retries)
    headers["x-switchboard-cache"] = outcome.cache
    if outcome.cache_key:
        headers["x-switchboard-cache-key"] = outcome.cache_key
    if outcome.cache_similarity is not None:
        headers["x-switchboard-cache-similarity"] = f"{outcome.cache_similarity:.4f}"
    if outcome.dropped_params:
        headers["x-switchboard-dropped-params"] = ",".join(outcome.dropped_params)
    overhead = (time.perf_counter() - started - outcome.upstream_seconds) * 1000
    headers["x-switchboard-overhead-ms"] = f"{max(0.0, overhead):.2f}"
    return response
