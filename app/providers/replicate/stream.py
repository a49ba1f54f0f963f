"""Replicate's prediction event stream (`GET urls.stream`) -> OpenAI chunk fragments.

Events: `output` (a plain-text piece; a piece with newlines arrives as several `data:`
lines, which SSE joins back with "\\n"), `logs` (ignored), `error` (`{"detail": ...}`) and
`done` (`{}` on success, `{"reason": "canceled"|"error"}` otherwise). Events Replicate may
add later are ignored.

The text is cut at the first `stop` sequence as it streams (a tail that may begin one is
held back a piece). The stream reports no usage: the proxy counts it with its tokenizer.
"""
from __future__ import annotations

from typing import Any, Iterable

from app.errors import UpstreamError
from app.jsonfast import loads
from app.providers.base import StopScanner, StreamTranslator
from app.providers.replicate.response import finish_reason
from app.usage.tokens import count_text


def _fragment(delta: dict, finish: str | None = None) -> dict:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


class ReplicateStreamTranslator(StreamTranslator):
    def __init__(self, provider: str, body: dict[str, Any], model_name: str):
        self.provider = provider
        self.body = body
        self.model_name = model_name
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
        if self.finished:
            return []
        self.finished = True
        rest = self.stops.flush()
        produced = count_text(self.model_name, "".join(self.received))
        last = _fragment({}, finish_reason(False, produced, self.body))
        return [*([_fragment({"content": rest})] if rest else []), last]

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
