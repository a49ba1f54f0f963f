"""Every error leaves as a JSON error body, never an HTML page or a traceback: OpenAI's
shape, or on a face's paths that face's own (app/api/face_paths.py)."""
from __future__ import annotations

import logging

from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException

from app.api.face_paths import face_for
from app.errors import ProxyError
from app.jsonfast import dumps

log = logging.getLogger("switchboard")

_HTTP_ERRORS = {
    404: ("not_found", "Unknown path. This proxy serves POST /v1/chat/completions, "
                       "GET /v1/models and GET /health."),
    405: ("method_not_allowed", None),
    413: ("request_too_large", "The request body is larger than this proxy accepts."),
    415: ("unsupported_media_type", "Send the body as JSON with Content-Type: application/json."),
}


def error_response(error: ProxyError) -> Response:
    face = face_for(request.path)
    response = Response(dumps(face.error_body(error, g.get("request_id"))),
                        status=face.error_status(error),
                        mimetype="application/json")
    for name, value in error.headers.items():
        response.headers[name] = value
    return response


def _from_http(exc: HTTPException) -> Response:
    code, message = _HTTP_ERRORS.get(exc.code, (None, None))
    if exc.code == 405:
        message = f"Method not allowed here; allowed: {', '.join(exc.valid_methods or ())}."
    error = ProxyError(message or exc.description or exc.name, status=exc.code,
                       type="invalid_request_error", code=code or exc.name.lower().replace(" ", "_"))
    response = error_response(error)
    if exc.code == 405 and exc.valid_methods:
        response.headers["Allow"] = ", ".join(exc.valid_methods)
    return response


def _unexpected(exc: Exception) -> Response:
    log.exception("unexpected error")
    return error_response(ProxyError("The proxy hit an internal error; see its logs.",
                                     code="internal_error"))


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(ProxyError, error_response)
    app.register_error_handler(HTTPException, _from_http)
    app.register_error_handler(Exception, _unexpected)
