"""Limits on what a request body may be, checked before any validation reads it."""
from __future__ import annotations

import io
from typing import Any

from flask import request
from werkzeug.exceptions import RequestEntityTooLarge

from app.errors import InvalidRequestError

MAX_JSON_DEPTH = 64  # far beyond any real request; deep nesting only costs stack and time


def check_depth(value: Any, limit: int = MAX_JSON_DEPTH) -> None:
    """Refuse JSON nested deeper than `limit` (400). Iterative: a hostile body cannot
    exhaust the stack here, and the walk stops at the first container too deep."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            raise InvalidRequestError(f"The request body is nested deeper than {limit} levels.",
                                      code="too_deeply_nested")
        if isinstance(node, dict):
            stack.extend((child, depth + 1) for child in node.values()
                         if isinstance(child, (dict, list)))
        elif isinstance(node, list):
            stack.extend((child, depth + 1) for child in node if isinstance(child, (dict, list)))


def read_unsized_body(limit: int) -> None:
    """A body sent without a Content-Length (chunked) is read here, up to `limit` bytes: 413
    beyond it. Werkzeug would stop reading such a body at the limit and hand the app the cut
    part as if it were whole."""
    environ = request.environ
    if environ.get("CONTENT_LENGTH") or not environ.get("HTTP_TRANSFER_ENCODING"):
        return
    data = environ["wsgi.input"].read(limit + 1)
    if len(data) > limit:
        raise RequestEntityTooLarge()
    environ["wsgi.input"], environ["CONTENT_LENGTH"] = io.BytesIO(data), str(len(data))
