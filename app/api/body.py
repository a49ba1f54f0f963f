"""Reading a request body as JSON, the same way on every endpoint, once per request."""
from __future__ import annotations

from flask import Request, g, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from app.api.keepalive import STREAM_FLAG
from app.api.limits import MAX_JSON_DEPTH, check_depth, check_value_count
from app.errors import InvalidRequestError, ProxyError
from app.jsonfast import loads


def read_json_body():
    """The request body as JSON, with 415 for another content type and 400 for bad JSON.
    Read and parsed at the first call; later calls give the same body (or raise the same
    error): authentication looks at the body's own `timeout` before the view reads it."""
    state = g._get_current_object()  # once: each use of the proxy looks it up (~1 us)
    outcome = state.get("json_body")
    if outcome is None:
        try:
            outcome = state.json_body = (_parse(request._get_current_object()), None)
        except (ProxyError, HTTPException) as error:
            outcome = state.json_body = (None, error)
    body, error = outcome
    if error is not None:
        raise error
    return body


def _parse(request: Request):
    environ = request.environ
    # The usual header as it is, or werkzeug's parse of it (~3 us: parameters, case).
    mimetype = "application/json" if environ.get("CONTENT_TYPE") == "application/json" \
        else request.mimetype
    if mimetype != "application/json" and not mimetype.endswith("+json"):
        raise ProxyError("Send the body as JSON with Content-Type: application/json "
                         f"(got {mimetype or 'none'}).", status=415,
                         type="invalid_request_error", code="unsupported_media_type")
    data = _body_bytes(request, environ)
    check_value_count(data)
    try:
        body = loads(data)
    except ValueError as exc:
        raise InvalidRequestError(f"The request body is not valid JSON: {exc}.",
                                  code="invalid_json") from None
    if data.count(b"[") + data.count(b"{") > MAX_JSON_DEPTH:  # fewer cannot nest deeper
        check_depth(body)
    # Lets the keep-alive padding know a JSON answer is coming (app/api/keepalive.py).
    environ[STREAM_FLAG] = isinstance(body, dict) and body.get("stream") is True
    return body


def _body_bytes(request: Request, environ: dict) -> bytes:
    """The body. From a server that ends the input stream at the body's end (gunicorn:
    `wsgi.input_terminated`) and a Content-Length, read in one call, as werkzeug would
    after its size check; werkzeug's `get_data` wraps the stream and reads it in pieces
    (~6 us for a chat request)."""
    length = environ.get("CONTENT_LENGTH")
    if (not length or not length.isdigit() or "wsgi.input_terminated" not in environ
            or environ.get("HTTP_TRANSFER_ENCODING")):
        return request.get_data(cache=False)
    size = int(length)
    if request.max_content_length is not None and size > request.max_content_length:
        raise RequestEntityTooLarge()
    return environ["wsgi.input"].read(size)
