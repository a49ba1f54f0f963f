"""The `callbacks` config section and each integration's environment variables, checked at start.

A typo in an integration's name, or an integration listed without its credentials, stops the
proxy before it serves anything, with a message that names the entry or the variable (never
a credential's value).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from app.config import ConfigError, Settings

INTEGRATIONS = ("supabase", "posthog", "mixpanel", "sentry", "helicone")
_TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def _integration_list():
    return fields.List(fields.String(validate=validate.OneOf(
        INTEGRATIONS, error="unknown integration {input!r}; known: " + ", ".join(INTEGRATIONS))),
        load_default=list)


class CallbacksSchema(Schema):
    class Meta:
        unknown = RAISE

    success = _integration_list()
    failure = _integration_list()
    allow_client_opt_out = fields.Boolean(load_default=False)
    queue_size = fields.Integer(load_default=10_000, validate=validate.Range(min=1))
    max_retries = fields.Integer(load_default=5, validate=validate.Range(min=0, max=20))
    timeout = fields.Float(load_default=10.0, validate=validate.Range(min=0, min_inclusive=False))

    @validates_schema
    def _sentry_records_failures(self, data, **kwargs):
        if "sentry" in data.get("success", ()):
            raise ValidationError("sentry records failures only: list it under callbacks.failure",
                                  "success")


@dataclass(frozen=True)
class CallbackSettings:
    success: tuple[str, ...]
    failure: tuple[str, ...]
    allow_client_opt_out: bool
    queue_size: int
    max_retries: int
    timeout: float                 # seconds, one delivery to one service
    redact_messages: bool
    env: Mapping[str, str]

    @property
    def enabled(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((*self.success, *self.failure)))

    def required(self, integration: str, name: str) -> str:
        value = (self.env.get(name) or "").strip()
        if not value:
            raise ConfigError(f"callbacks: {integration} is enabled but {name} is not set; "
                              f"set it in the environment or remove {integration} from callbacks")
        return value

    def optional(self, name: str, default: str | None = None) -> str | None:
        return (self.env.get(name) or "").strip() or default

    def url(self, integration: str, name: str, default: str | None = None) -> str:
        """An http(s) address from the environment, without a trailing slash."""
        value = self.optional(name, default) if default else self.required(integration, name)
        if not re.match(r"^https?://[^/\s]+", value):
            raise ConfigError(f"callbacks: {name} must be an http:// or https:// address")
        return value.rstrip("/")

    def table(self) -> str:
        table = self.optional("SUPABASE_TABLE", "request_logs")
        if not _TABLE_NAME.match(table):
            raise ConfigError("callbacks: SUPABASE_TABLE must be a plain table name "
                              "(letters, digits, underscores)")
        return table


def load_callback_settings(settings: Settings) -> CallbackSettings:
    section = settings.section("callbacks", CallbacksSchema())
    return CallbackSettings(
        success=tuple(dict.fromkeys(section["success"])),
        failure=tuple(dict.fromkeys(section["failure"])),
        allow_client_opt_out=section["allow_client_opt_out"],
        queue_size=section["queue_size"], max_retries=section["max_retries"],
        timeout=section["timeout"], redact_messages=settings.redact_messages, env=settings.env)
