"""The HTTP side of every face (app/faces): reading, validating and admitting a request, and
describing its answer in the x-switchboard-* headers, the same on every completion-type
endpoint; `serve` is the whole view of a face built on `app.faces.Face`."""
from __future__ import annotations

import time
from typing import Any, Callable, Iterable

from flask import Blueprint, Response, current_app, g, request

from app.api.auth import admit, identify, leased
from app.api.body import read_json_body
from app.api.cache import apply_cache_control
from app.api.face_paths import claim
from app.errors import ProxyError
from app.faces import Face
from app.jsonfast import dumps
from app.service.events import RequestContext
from app.service.passthrough import Passthrough


def admitted(validate: Callable[[Any], dict], api: str = "chat"
             ) -> tuple[Any, dict, RequestContext]:
    """(service, the service's request, context) of a request to a completion-type endpoint:
    read, turned into the service's request by `validate` (validation, and a face's
    translation), admitted for the caller's key, cache controls applied. `api` names the
    face in the ledger. A refused request still gets its event (ledger, integrations)."""
    # The objects behind Flask's proxies, looked up once (~1 us each time through a proxy).
    this_request, state = request._get_current_object(), g._get_current_object()
    environ = this_request.environ
    started = environ.get("switchboard.started") or time.perf_counter()
    service = current_app.extensions["switchboard"]
    context = RequestContext(request_id=state.request_id, started=started,
                             callbacks=state.get("callbacks", True),  # see app/callbacks/optout.py
                             client=environ.get("gunicorn.socket"), api=api)
    identify(context)  # the virtual key's id and alias (app/api/auth.py)
    body = None
    try:
        body = read_json_body()  # kept for the ledger row even when it is invalid
        body = validate(body)
        admit(body, context)  # the key's allowed models, budget and rate limits
    except ProxyError as error:
        service.record_rejection(body, error, context)
        raise
    return service, apply_cache_control(body, this_request.headers.get("Cache-Control")), context


def event_stream(frames: Iterable[bytes]) -> Response:
    """A Server-Sent Events response of `frames`, never buffered on the way; the caller's
    key keeps its slot while they flow."""
    response = Response(leased(frames), mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"
    return response


def described(response: Response, outcome, started: float) -> Response:
    """The x-switchboard-* headers of a new answer: who answered, at what cost, how, from
    the cache or not, and the overhead the proxy added. Added in one go (each header set
    alone looks for one of its name to replace: ~5 us for the seven)."""
    headers = [] if outcome.chunks is not None else [
        ("x-switchboard-cost", outcome.bill.cost_text)]
    headers += [("x-switchboard-model", outcome.target.model),
                ("x-switchboard-provider", outcome.target.provider),
                ("x-switchboard-attempted-fallbacks", str(outcome.trail.fallbacks)),
                ("x-switchboard-attempted-retries", str(outcome.trail.retries)),
                ("x-switchboard-cache", outcome.cache)]
    if outcome.cache_key:
        headers.append(("x-switchboard-cache-key", outcome.cache_key))
    if outcome.cache_similarity is not None:
        headers.append(("x-switchboard-cache-similarity", f"{outcome.cache_similarity:.4f}"))
    if outcome.dropped_params:
        headers.append(("x-switchboard-dropped-params", ",".join(outcome.dropped_params)))
    overhead = (time.perf_counter() - started - outcome.upstream_seconds) * 1000
    headers.append(("x-switchboard-overhead-ms", f"{max(0.0, overhead):.2f}"))
    response.headers.extend(headers)
    return response


def face_blueprint(name: str, face: Face, paths: tuple[str, ...],
                   validate: Callable[[Any], dict[str, Any]]) -> Blueprint:
    """The blueprint of a face that is one `serve` view: POST at each of `paths`, which are
    claimed for the face (its error shape, its name in the ledger)."""
    claim(face, *paths)
    blueprint = Blueprint(name, __name__)

    def view() -> Response:
        return serve(face, validate)

    for path in paths:
        blueprint.add_url_rule(path, endpoint=name, view_func=view, methods=["POST"])
    return blueprint


def serve(face: Face, validate: Callable[[Any], dict[str, Any]]) -> Response:
    """A face's endpoint: the client's body validated and translated by the face, run by the
    service (passed through to providers that speak the face's format), answered or
    streamed in the face's format."""
    calls = []

    def translated(body: Any) -> dict[str, Any]:
        calls.append(face.service_request(validate(body), request.headers))
        return calls[0].params

    service, params, context = admitted(translated, face.name)
    call = calls[0]
    call.params = params
    drop = params.get("drop_params", service.settings.drop_params)
    operation = (Passthrough(call.native, face, drop, face.keepalive(service.settings))
                 if call.native else face.operation)
    outcome = service.complete(params, context, operation)
    if outcome.chunks is not None:
        response = event_stream(face.stream(outcome, call))
    else:
        response = Response(dumps(face.answer(outcome, call)), mimetype="application/json")
    return described(response, outcome, context.started)
