"""Limits on what a request body may be, checked before any validation reads it.

Every limit is checked in time linear in the body's size, and beyond it nothing walks the
body at all: a body under the size limit holds at most MAX_JSON_VALUES values nested at
most MAX_JSON_DEPTH deep, so every later walk (validation, token counting, the cache key)
is bounded too.
"""
from __future__ import annotations

import io
from typing import Any

import numpy

from flask import request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from app.errors import InvalidRequestError

MAX_JSON_DEPTH = 64  # far beyond any real request; deep nesting only costs stack and time
MAX_JSON_VALUES = 50_000  # objects, arrays, strings, numbers, true/false/null; keys not counted
_QUOTE, _COMMA, _OPEN_LIST, _OPEN_MAP, _CLOSE_LIST, _CLOSE_MAP = b'",[{]}'


def check_value_count(data: bytes, limit: int = MAX_JSON_VALUES) -> None:
    """Refuse (400) a body of more than `limit` JSON values before it is parsed: parsing a
    body of millions of tiny values alone takes seconds."""
    if 1 + data.count(b",") + data.count(b"[") + data.count(b"{") <= limit:
        return  # the most values a body with these commas and brackets can hold
    if json_values(data) > limit:
        raise InvalidRequestError(f"The request body holds more than {limit} JSON values.",
                                  code="too_many_values")


def json_values(data: bytes) -> int:
    """The number of values in a JSON document (exact for one without blanks inside empty
    brackets), counted with whole-array operations: every value but the first follows a comma
    or an opening bracket outside a string, and an empty [] or {} has no value inside."""
    # Without its escaped backslashes and quotes, every quote left opens or closes a string.
    text = numpy.frombuffer(data.replace(b"\\\\", b"").replace(b'\\"', b""), numpy.uint8)
    outside = (numpy.cumsum(text == _QUOTE, dtype=numpy.uint8) & 1) == 0  # parity wraps safely
    opens = (text == _OPEN_LIST) | (text == _OPEN_MAP)
    values = 1 + numpy.count_nonzero(outside & (opens | (text == _COMMA)))
    head, tail = text[:-1], text[1:]
    empty = ((head == _OPEN_LIST) & (tail == _CLOSE_LIST)) | ((head == _OPEN_MAP)
                                                               & (tail == _CLOSE_MAP))
    return int(values - numpy.count_nonzero(empty & outside[:-1]))


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
    try:
        data = environ["wsgi.input"].read(limit + 1)
    except HTTPException:
        raise
    except Exception:  # the server's own error for broken chunk framing, or a client gone
        raise InvalidRequestError("The request body could not be read: its chunked "
                                  "encoding is invalid or it ended early.",
                                  code="invalid_body") from None
    if len(data) > limit:
        raise RequestEntityTooLarge()
    environ["wsgi.input"], environ["CONTENT_LENGTH"] = io.BytesIO(data), str(len(data))
