"""Limits on what a request body may be, checked before any validation reads it."""
from __future__ import annotations

from typing import Any

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
