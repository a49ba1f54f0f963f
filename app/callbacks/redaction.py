"""What may leave the proxy: prompts and completions only when the operator allows it, and
never a credential the proxy knows, wherever it turns up (an upstream error echoing a key,
a breadcrumb's URL, an exception message)."""
from __future__ import annotations

import copy
import re
from dataclasses import asdict
from typing import Any, Iterable

from app.config import Settings
from app.service.events import RequestEvent

FILTERED = "[Filtered]"
# Environment variables whose values are credentials (provider keys, integration keys, DSNs,
# passwords inside URLs of the proxy's own storage).
_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|DSN|CREDENTIALS?)$|"
                          r"^(DATABASE_URL|REDIS_URL)$", re.IGNORECASE)
_SHORTEST_SECRET = 8  # shorter values would blank ordinary words; no real key is that short


def known_secrets(settings: Settings) -> tuple[str, ...]:
    """Every credential value in the environment and the config file's deployments."""
    values = [value for name, value in settings.env.items() if _SECRET_NAME.search(name)]
    for deployment in settings.deployments:
        values.append(settings.secret(deployment.params.get("api_key")).value or "")
    values += [_dsn_key(value) for value in values if "://" in value and "@" in value]
    unique = {v.strip() for v in values if v and len(v.strip()) >= _SHORTEST_SECRET}
    return tuple(sorted(unique, key=len, reverse=True))  # longest first: no partial leftovers


def _dsn_key(url: str) -> str:
    """The credential part of scheme://user:secret@host (a DSN's key, a database password)."""
    userinfo = url.split("://", 1)[1].split("@", 1)[0]
    return userinfo.split(":", 1)[-1]


class Scrubber:
    """Replaces known credential values wherever they occur in a string or a JSON-like value."""

    def __init__(self, secrets: Iterable[str]):
        self.secrets = tuple(secrets)

    def text(self, value: str) -> str:
        for secret in self.secrets:
            if secret in value:
                value = value.replace(secret, FILTERED)
        return value

    def value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.value(k) if isinstance(k, str) else k: self.value(v)
                    for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.value(v) for v in value]
        return value


def without_content(response: dict | None) -> dict | None:
    """A chat.completion with the generated text and tool calls taken out (usage, ids,
    finish reasons remain)."""
    if not response:
        return response
    stripped = copy.deepcopy(response)
    for choice in stripped.get("choices") or ():
        if isinstance(choice, dict):
            choice.pop("message", None)
            choice.pop("delta", None)
            choice.pop("logprobs", None)
    return stripped


def prepare(event: RequestEvent, scrubber: Scrubber, redact_messages: bool) -> RequestEvent:
    """The copy of an event that integrations may see."""
    data = asdict(event)
    if redact_messages:
        data["messages"] = None
        data["response"] = without_content(data["response"])
    return RequestEvent(**scrubber.value(data))
