"""Cross-origin access for browser clients: off unless the `cors:` config section lists
origins. Preflight requests are answered here, before authentication (browsers send them
without credentials); the key is checked on the real request that follows."""
from __future__ import annotations

from flask import Flask, Response, request
from marshmallow import RAISE, Schema, fields, validate

from app.service.completion import CompletionService

DEFAULT_HEADERS = ["Authorization", "Content-Type", "api-key", "x-api-key", "x-request-id"]
EXPOSED_HEADERS = ", ".join((
    "x-request-id", "x-switchboard-model", "x-switchboard-provider", "x-switchboard-cost",
    "x-switchboard-cache", "x-ratelimit-limit-requests", "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests", "x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-tokens", "Retry-After"))
_ORIGIN = validate.Regexp(r"^(\*|https?://[A-Za-z0-9.\-\[\]:]+)$",
                          error="must be * or an origin such as https://app.example.com")
_TOKEN = validate.Regexp(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$", error="must be a header or method name")


class CorsSection(Schema):
    """`cors:` in the config file."""

    class Meta:
        unknown = RAISE

    allow_origins = fields.List(fields.String(validate=_ORIGIN), load_default=list)
    allow_headers = fields.List(fields.String(validate=_TOKEN), load_default=DEFAULT_HEADERS)
    allow_methods = fields.List(fields.String(validate=_TOKEN),
                                load_default=lambda: ["GET", "POST", "OPTIONS"])
    max_age = fields.Integer(load_default=600, validate=validate.Range(min=0, max=86400))


def install(app: Flask, service: CompletionService) -> None:
    cors = service.settings.section("cors", CorsSection())
    origins = set(cors["allow_origins"])
    if not origins:
        return
    preflight_headers = {
        "Access-Control-Allow-Methods": ", ".join(cors["allow_methods"]),
        "Access-Control-Allow-Headers": ", ".join(cors["allow_headers"]),
        "Access-Control-Max-Age": str(cors["max_age"]),
    }

    def allowed_origin() -> str | None:
        origin = request.headers.get("Origin")
        if origin is None:
            return None
        if "*" in origins:
            return "*"
        return origin if origin in origins else None

    @app.before_request
    def _preflight():
        if request.method != "OPTIONS" or "Access-Control-Request-Method" not in request.headers:
            return None
        response = Response(status=204)
        origin = allowed_origin()
        if origin is not None:
            response.headers.update(preflight_headers)
        return response

    @app.after_request
    def _allow(response: Response) -> Response:
        origin = allowed_origin()
        if origin is not None:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers.setdefault("Access-Control-Expose-Headers", EXPOSED_HEADERS)
            if origin != "*":
                response.headers.add("Vary", "Origin")
        return response
