"""Reading a request body as JSON, the same way on every endpoint."""
from __future__ import annotations

from flask import request

from app.api.keepalive import STREAM_FLAG
from app.api.limits import check_depth, check_value_count
from app.errors import InvalidRequestError, ProxyError
from app.jsonfast import loads


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
