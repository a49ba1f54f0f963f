"""What may leave the proxy: prompts and completions only when the operator allows it, and
never a credential the proxy knows, wherever it turns up (an upstream error echoing a key,
a breadcrumb's URL, an exception message)."""
from __future__ import annotations

import re
from dataclasses import fields
from typing import Any, Iterable

import orjson

from app.config import Settings
from app.jsonfast import dumps
from app.service.events import RequestEvent

FILTERED = "[Filtered]"
# Environment variables whose values are credentials (provider keys, integration keys, DSNs,
# passwords inside URLs of the proxy's own storage).
_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|DSN|CREDENTIALS?)$|"
                          r"^(DATABASE_URL|REDIS_URL)$", re.IGNORECASE)
_SHORTEST_SECRET = 12  # shorter values would blank ordinary words; no real key is that short
_PLAIN_WORD = re.compile(r"^[a-z_.-]+$")  # a setting's name (SORT_KEY=created_at), not a key


def known_secrets(settings: Settings) -> tuple[str, ...]:
    """Every credential value in the environment and the config file's deployments."""
    values = [value for name, value in settings.env.items() if _SECRET_NAME.search(name)]
    for deployment in settings.deployments:
        values.append(settings.secret(deployment.params.get("api_key")).value or "")
    values += [_dsn_key(value) for value in values if "://" in value and "@" in value]
    unique = {v.strip() for v in values
              if v and len(v.strip()) >= _SHORTEST_SECRET and not _PLAIN_WORD.match(v.strip())}
    return tuple(sorted(unique, key=len, reverse=True))  # longest first: no partial leftovers


def _dsn_key(url: str) -> str:
    """The credential part of scheme://user:secret@host (a DSN's key, a database password)."""
    userinfo = url.split("://", 1)[1].split("@", 1)[0]
    return userinfo.split(":", 1)[-1]


class Scrubber:
    """Replaces known credential values wherever they occur in a string or a JSON-like value."""

    def __init__(self, secrets: Iterable[str]):
        self.secrets = tuple(secrets)
        # As they appear inside a JSON string (escapes included), for scrubbing serialised data.
        self._encoded = tuple(dumps(secret)[1:-1] for secret in self.secrets)

    def text(self, value: str) -> str:
        for secret in self.secrets:
            if secret in value:
                value = value.replace(secret, FILTERED)
        return value

    def json(self, raw: bytes) -> bytes:
        """Serialised JSON with every secret replaced (the result is still valid JSON)."""
        for secret in self._encoded:
            if secret in raw:
                raw = raw.replace(secret, FILTERED.encode())
        return raw

    def value(self, value: Any) -> Any:
        """A scrubbed deep copy; anything JSON cannot hold becomes its string."""
        return orjson.loads(self.json(orjson.dumps(value, default=str,
                                                   option=orjson.OPT_NON_STR_KEYS)))


_CONTENT = ("message", "delta", "logprobs")


def without_content(response: dict | None) -> dict | None:
    """A chat.completion with the generated text and tool calls taken out (usage, ids,
    finish reasons remain)."""
    if not response or not isinstance(response.get("choices"), list):
        return response
    choices = [{k: v for k, v in choice.items() if k not in _CONTENT}
               if isinstance(choice, dict) else choice for choice in response["choices"]]
    return {**response, "choices": choices}


def prepare(event: RequestEvent, scrubber: Scrubber, redact_messages: bool) -> RequestEvent:
    """The copy of an event that integrations may see (a deep copy, through JSON)."""
    data = {name: getattr(event, name) for name in _FIELDS}
    if redact_messages:
        data["messages"] = None
        data["response"] = without_content(data["response"])
    return RequestEvent(**scrubber.value(data))


_FIELDS = tuple(f.name for f in fields(RequestEvent))
