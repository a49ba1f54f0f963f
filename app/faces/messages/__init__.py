"""The Anthropic Messages face (`POST /v1/messages`): Claude Code and the anthropic SDK.

A Messages request passes through untouched to deployments whose provider speaks the
Messages API (Anthropic, and Anthropic-compatible bases), and is translated
(request.py, response.py, stream.py) for every other one; errors take Anthropic's shape.
"""
from __future__ import annotations

from typing import Any, Iterator, Mapping

from app.errors import ProxyError
from app.faces import Face, FaceRequest
from app.faces.messages import native, response as answers
from app.faces.messages.request import Translation, chat_params, native_body
from app.faces.messages.stream import EventWriter, guarded, native_frames
from app.providers.base import NativeEvent, NativeRequest
from app.service.passthrough import NativeAnswer
from app.service.outcome import Outcome
from app.usage.tokens import count_messages

FORWARDED_HEADERS = ("anthropic-version", "anthropic-beta")


class MessagesFace(Face):
    name = "messages"

    def service_request(self, body: dict[str, Any], headers: Mapping[str, str]) -> FaceRequest:
        translation = Translation()
        params = chat_params(body, translation)
        forwarded = {name: headers[name] for name in FORWARDED_HEADERS if headers.get(name)}
        return FaceRequest(body, params, NativeRequest(self.name, native_body(body), forwarded,
                                                       translation.refusal))

    def answer(self, outcome: Outcome, request: FaceRequest) -> dict[str, Any]:
        if outcome.passthrough:
            return outcome.native
        return answers.message(outcome.response, request.body["model"], stops(request.body))

    def stream(self, outcome: Outcome, request: FaceRequest) -> Iterator[bytes]:
        if outcome.passthrough:
            return guarded(native_frames(outcome.chunks))
        params = request.params
        prompt = count_messages(outcome.target.upstream_model, params["messages"],
                                params.get("tools"))
        writer = EventWriter(request.body["model"], prompt, stops(request.body))
        return guarded(writer.frames(outcome.chunks))

    def native_answer(self, kept: NativeAnswer) -> dict[str, Any]:
        return native.answer(kept)

    def native_events(self, kept: NativeAnswer) -> Iterator[NativeEvent]:
        return native.events(kept)

    def keepalive(self, settings) -> float | None:
        return settings.messages_ping_interval

    def error_body(self, error: ProxyError, request_id: str | None = None) -> dict[str, Any]:
        return answers.error_body(error, request_id)

    def error_status(self, error: ProxyError) -> int:
        return answers.error_status(error)


def stops(body: dict[str, Any]) -> list[str]:
    return [s for s in body.get("stop_sequences") or () if isinstance(s, str)]


MESSAGES = MessagesFace()
