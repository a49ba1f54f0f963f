"""Settings: environment variables plus an optional YAML file, read once at start.

The YAML file (path in SWITCHBOARD_CONFIG) is validated as a whole before the proxy
serves anything; a bad entry stops the start with a message that names it.
"""
from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from typing import Any, Mapping

import yaml
from marshmallow import INCLUDE, RAISE, Schema, ValidationError, fields, validate

ENV_PREFIX = "os.environ/"
DEFAULT_MAX_REQUEST_BYTES = 10 * 1024 * 1024
DEFAULT_TIMEOUT_SECONDS = 600.0
DEFAULT_CONNECT_TIMEOUT_SECONDS = 10.0
DEFAULT_STREAM_TIMEOUT_SECONDS = 60.0  # longest silence allowed between two stream reads
DEFAULT_NUM_RETRIES = 2


class ConfigError(Exception):
    """The configuration cannot be used; the message names the bad entry."""


def _network(text: str) -> None:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ValidationError("must be a network such as 10.0.0.0/8") from None


class _DeploymentParams(Schema):
    class Meta:
        unknown = INCLUDE  # provider-specific settings (prompt_template, ...) pass through

    model = fields.String(required=True, validate=validate.Length(min=1))
    api_base = fields.String(validate=validate.Length(min=1))
    api_key = fields.String()
    api_version = fields.String()
    base_model = fields.String(validate=validate.Length(min=1))
    timeout = fields.Float(validate=validate.Range(min=0, min_inclusive=False))
    weight = fields.Float(validate=validate.Range(min=0))
    rpm = fields.Integer(validate=validate.Range(min=0))
    tpm = fields.Integer(validate=validate.Range(min=0))
    input_cost_per_token = fields.Float(validate=validate.Range(min=0))
    output_cost_per_token = fields.Float(validate=validate.Range(min=0))
    # The client-facing format the server speaks natively (`responses`: an OpenAI-compatible
    # server with the Responses API gets Responses requests passed through).
    api = fields.String(validate=validate.OneOf(("chat", "responses")))
    # Clients may send their own api_base / api_key / api_version for this model (see
    # app/service/client_connection.py); an api_base must be public unless its network is
    # listed in client_networks.
    allow_client_connection = fields.Boolean()
    client_networks = fields.List(fields.String(validate=_network))


class _ModelEntry(Schema):
    class Meta:
        unknown = RAISE

    model_name = fields.String(required=True, validate=validate.Length(min=1))
    params = fields.Nested(_DeploymentParams, required=True)
    model_info = fields.Dict()


class _ConfigFile(Schema):
    class Meta:
        unknown = RAISE

    model_list = fields.List(fields.Dict(), load_default=list)
    drop_params = fields.Boolean(load_default=False)
    request_timeout = fields.Float(validate=validate.Range(min=0, min_inclusive=False))
    connect_timeout = fields.Float(validate=validate.Range(min=0, min_inclusive=False))
    stream_timeout = fields.Float(validate=validate.Range(min=0, min_inclusive=False))
    messages_ping_interval = fields.Float(validate=validate.Range(min=0, min_inclusive=False))
    max_request_bytes = fields.Integer(validate=validate.Range(min=1))
    timeout = fields.Float(validate=validate.Range(min=0, min_inclusive=False))
    num_retries = fields.Integer(validate=validate.Range(min=0, max=10))
    fallbacks = fields.Dict(keys=fields.String(), values=fields.List(fields.String()))
    default_fallbacks = fields.List(fields.String())
    context_window_fallbacks = fields.Dict(keys=fields.String(),
                                           values=fields.List(fields.String()))
    routing_strategy = fields.String(validate=validate.OneOf(
        ("simple-shuffle", "least-busy", "lowest-latency")))
    allowed_fails = fields.Integer(validate=validate.Range(min=1))
    fail_window = fields.Float(validate=validate.Range(min=0, min_inclusive=False))
    cooldown_time = fields.Float(validate=validate.Range(min=0))
    # Sections each feature validates with its own schema when it starts (see `section`).
    cache = fields.Dict()
    callbacks = fields.Dict()
    ledger = fields.Dict()
    keys = fields.Dict()
    responses = fields.Dict()
    cors = fields.Dict()
    otel = fields.Dict()
    redact_messages = fields.Boolean()
    # The proxy's own stores (app/keys/availability.py, app/storage/redis_client.py).
    key_store_timeout = fields.Float(validate=validate.Range(min=0, min_inclusive=False))
    key_cache_seconds = fields.Float(validate=validate.Range(min=0))
    key_refresh_seconds = fields.Float(validate=validate.Range(min=0))
    redis_timeout = fields.Float(validate=validate.Range(min=0, min_inclusive=False))


SECTIONS = ("cache", "callbacks", "ledger", "keys", "cors", "otel", "responses")


@dataclass(frozen=True)
class Secret:
    """A credential plus where it came from, so errors can name the variable, never the value."""

    value: str | None
    source: str
    referenced: bool = False   # the config named the variable (`os.environ/NAME`)


@dataclass(frozen=True)
class Deployment:
    """One `model_list` entry: a client-facing name served by a provider/model."""

    model_name: str
    model: str
    params: dict[str, Any]
    index: int


@dataclass
class Settings:
    env: Mapping[str, str]
    deployments: list[Deployment] = field(default_factory=list)
    drop_params: bool = False
    request_timeout: float = DEFAULT_TIMEOUT_SECONDS
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_SECONDS
    stream_timeout: float = DEFAULT_STREAM_TIMEOUT_SECONDS
    messages_ping_interval: float = 5.0   # a translated Messages stream's longest silence
    num_retries: int = DEFAULT_NUM_RETRIES
    fallbacks: dict[str, list[str]] = field(default_factory=dict)
    default_fallbacks: list[str] = field(default_factory=list)
    context_window_fallbacks: dict[str, list[str]] = field(default_factory=dict)
    routing_strategy: str = "simple-shuffle"
    allowed_fails: int = 3
    fail_window: float = 60.0
    cooldown_time: float = 30.0
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    config_path: str | None = None
    redact_messages: bool = False
    data_dir: str = "data"     # embedded storage: SQLite database, disk cache
    key_store_timeout: float = 2.0     # longest wait on the key store, seconds
    key_cache_seconds: float = 60.0    # verified keys keep working this long in a store outage
    key_refresh_seconds: float = 1.0   # a key is read from the store again after this long
    redis_timeout: float = 0.05        # longest wait on one Redis call, seconds
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)

    def section(self, name: str, schema: Schema) -> dict[str, Any]:
        """A feature's config section, loaded by that feature's own schema; a bad entry stops
        the start with its path (e.g. `cache.ttl`)."""
        try:
            return schema.load(self.sections.get(name) or {})
        except ValidationError as exc:
            where, message = _first_error(exc.messages)
            raise ConfigError(f"config {name}.{where}: {message}") from None

    def secret(self, value: Any, default_env: tuple[str, ...] = ()) -> Secret:
        """Resolve an `os.environ/NAME` reference, a literal, or the first set default variable."""
        if isinstance(value, str) and value.startswith(ENV_PREFIX):
            name = value[len(ENV_PREFIX):]
            return Secret(self.env.get(name) or None, name, referenced=True)
        if value:
            return Secret(str(value), "config")
        for name in default_env:
            if self.env.get(name):
                return Secret(self.env[name], name)
        return Secret(None, default_env[0] if default_env else "api_key")

    def env_value(self, value: Any, default_env: str | None = None) -> str | None:
        """A non-secret setting (api_base, api_version) from config, or its environment variable."""
        if isinstance(value, str) and value.startswith(ENV_PREFIX):
            return self.env.get(value[len(ENV_PREFIX):]) or None
        if value:
            return str(value)
        return self.env.get(default_env) or None if default_env else None


def _first_error(errors: Any, path: str = "") -> tuple[str, str]:
    """Walk marshmallow's nested error dict down to the first leaf message."""
    if isinstance(errors, dict):
        key, value = next(iter(errors.items()))
        return _first_error(value, f"{path}.{key}" if path else str(key))
    if isinstance(errors, list):
        return path, str(errors[0])
    return path, str(errors)


def _env_number(env: Mapping[str, str], name: str, cast, default):
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        return cast(raw)
    except ValueError:
        raise ConfigError(f"environment variable {name} must be a number, got {raw!r}") from None


_PASSED_THROUGH = ("num_retries", "fallbacks", "default_fallbacks", "context_window_fallbacks",
                   "routing_strategy", "allowed_fails", "fail_window", "cooldown_time",
                   "key_store_timeout", "key_cache_seconds", "key_refresh_seconds",
                   "redis_timeout", "messages_ping_interval")


def load_settings(env: Mapping[str, str] | None = None, config_path: str | None = None) -> Settings:
    """Build Settings from the environment and the YAML file it names (if any)."""
    env = dict(os.environ if env is None else env)
    config_path = config_path or env.get("SWITCHBOARD_CONFIG") or None
    raw: dict[str, Any] = {}
    if config_path:
        try:
            with open(config_path, encoding="utf-8") as fh:
                raw = yaml.safe_load(fh) or {}
        except OSError as exc:
            raise ConfigError(f"cannot read config file {config_path}: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {config_path} is not valid YAML: {exc}") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"config file {config_path} must hold a mapping at the top level")
    try:
        top = _ConfigFile().load(raw)
    except ValidationError as exc:
        where, message = _first_error(exc.messages)
        raise ConfigError(f"config {where}: {message}") from None

    deployments = []
    for index, entry in enumerate(top["model_list"]):
        try:
            loaded = _ModelEntry().load(entry)
        except ValidationError as exc:
            where, message = _first_error(exc.messages)
            name = entry.get("model_name", "?") if isinstance(entry, dict) else "?"
            raise ConfigError(
                f"config model_list[{index}] (model_name {name!r}): {where}: {message}") from None
        params = dict(entry["params"])
        deployments.append(Deployment(loaded["model_name"], params["model"], params, index))

    return Settings(
        env=env,
        deployments=deployments,
        drop_params=top["drop_params"],
        request_timeout=top.get("request_timeout") or top.get("timeout")
        or _env_number(env, "SWITCHBOARD_TIMEOUT", float, DEFAULT_TIMEOUT_SECONDS),
        connect_timeout=top.get("connect_timeout", DEFAULT_CONNECT_TIMEOUT_SECONDS),
        stream_timeout=top.get("stream_timeout", DEFAULT_STREAM_TIMEOUT_SECONDS),
        max_request_bytes=top.get("max_request_bytes")
        or _env_number(env, "SWITCHBOARD_MAX_REQUEST_BYTES", int, DEFAULT_MAX_REQUEST_BYTES),
        config_path=config_path,
        redact_messages=top.get("redact_messages", False),
        data_dir=env.get("SWITCHBOARD_DATA_DIR") or "data",
        sections={name: top[name] for name in SECTIONS if name in top},
        **{key: top[key] for key in _PASSED_THROUGH if key in top},
    )
