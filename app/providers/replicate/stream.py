"""Replicate's prediction event stream (`GET urls.stream`) -> OpenAI chunk fragments.

Events: `output` (a plain-text piece; a piece with newlines arrives as several `data:`
lines, which SSE joins back with "\\n"), `logs` (ignored), `error` (`{"detail": ...}`) and
`done` (`{}` on success, `{"reason": "canceled"|"error"}` otherwise). Events Replicate may
add later are ignored.

The text is cut at the first `stop` sequence as it streams (a tail that may begin one is
held back a piece). The stream reports no usage: it is estimated as the whitespace word
count of the prompt and of all text received, and sent with the finish.
"""
from __future__ import annotations

from typing import Any, Iterable

from app.errors import UpstreamError
from app.jsonfast import loads
from app.providers.base import StopScanner, StreamTranslator, usage_dict
from app.providers.replicate.request import ReplicateModel
from app.providers.replicate.response import estimated_prompt_tokens, finish_reason, words


def _fragment(delta: dict, finish: str | None = None) -> dict:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


class ReplicateStreamTranslator(StreamTranslator):
    def __init__(self, provider: str, body: dict[str, Any], model: ReplicateModel):
        self.provider = provider
        self.body = body
        self.model = model
        self.stops = StopScanner(body.get("stop"))
        self.received: list[str] = []
        self.finished = False

    def on_event(self, event: str | None, data: str) -> Iterable[dict]:
        if event == "output":
            return self._output(data)
        if event == "error":
            raise self._error(self._detail(data) or "the prediction failed", "prediction_failed")
        if event == "done":
            return self._done(data)
        return ()

    def _output(self, data: str) -> list[dict]:
        self.received.append(data)
        if self.finished:
            return []
        text = self.stops.feed(data)
        fragments = [_fragment({"content": text})] if text else []
        if self.stops.hit:
            self.finished = True
            fragments.append(_fragment({}, "stop"))
        return fragments

    def _done(self, data: str) -> list[dict]:
        reason = (loads(data) if data.strip() else {}).get("reason")
        if reason:
            code = "prediction_canceled" if reason == "canceled" else "prediction_failed"
            raise self._error(f"the prediction ended with reason {reason!r}", code)
        completion_tokens = words("".join(self.received))
        usage = usage_dict(estimated_prompt_tokens(self.body, self.model), completion_tokens)
        if self.finished:
            return [{"choices": [], "usage": usage}]
        self.finished = True
        rest = self.stops.flush()
        last = _fragment({}, finish_reason(False, completion_tokens, self.body))
        return [*([_fragment({"content": rest})] if rest else []), {**last, "usage": usage}]

    @staticmethod
    def _detail(data: str) -> str:
        try:
            payload = loads(data)
        except ValueError:
            return data.strip()
        return str(payload.get("detail") or "") if isinstance(payload, dict) else data.strip()

    def _error(self, message: str, code: str) -> UpstreamError:
        return UpstreamError(f"{self.provider} stream: {message}", provider=self.provider,
                             status=502, code=code)
