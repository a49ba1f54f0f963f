"""Pass-through as an operation of the attempt plan (app/service/operations.py): a face's
native request goes as it came to each deployment whose provider speaks that format, and
the chat translation to every other one; the choice is made per attempt, so fallbacks,
retries, cooldowns and deadlines work across both.

A passed-through answer is still read by the provider (as a chat.completion, or chunk
fragments for a stream) for usage, cost, limits, the ledger and the cache; the client gets
the provider's own answer (`outcome.native`) or its own events (`NativeEvent`s).

The cache keeps the chat.completion, and beside it the provider's own answer (`kept`: its
body, or its stream's events as they came); a hit of the same face serves that again
(`cached`), through the face's `NativeFormat`, so nothing the translation cannot carry
(signatures, citations, cache usage, new block types) is lost on a hit.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Protocol

from app.errors import UnsupportedParamsError
from app.providers.base import NativeEvent, NativeRequest, Provider, Target, UpstreamResponse
from app.service.operations import Operation, OperationView
from app.service.streaming import NativeReader

# Native body fields already in the translated request, or only about delivery.
NATIVE_DELIVERY = ("model", "messages", "stream")


@dataclass
class NativeAnswer:
    """A passed-through answer as the cache keeps it: the provider's body, or the events of
    its stream exactly as they came."""

    body: dict[str, Any] | None = None
    events: list[NativeEvent] | None = None


class NativeFormat(Protocol):
    """What a face knows of its own format for serving a kept answer again (app/faces):
    the answer with this request's own id, as a body or as the events of a stream (each
    assembled from, or re-streamed as, the other form when kept in that one)."""

    def native_answer(self, kept: NativeAnswer) -> dict[str, Any]: ...

    def native_events(self, kept: NativeAnswer) -> Iterator[NativeEvent]: ...


class NativeView(OperationView):
    """A provider seen through its native API for one request; keeps the answer's body."""

    def __init__(self, provider: Provider, native: NativeRequest):
        super().__init__(provider, self._build, self._parse, self._reader)
        self.native = native
        self.payload: Any = None

    def _build(self, params: dict[str, Any], target: Target):
        return self._provider.build_native_request(self.native, target)

    def _parse(self, response: UpstreamResponse, params: dict[str, Any], target: Target) -> dict:
        self.payload = response.payload
        return self._provider.parse_native_response(self.native.api, response, target)

    def _reader(self, params: dict[str, Any], target: Target) -> NativeReader:
        return NativeReader(self._provider.native_stream_translator(self.native.api, target))

    def dropped_params(self, params: dict[str, Any], target: Target) -> list[str]:
        return []  # the client's body goes as it is: nothing of the translation is dropped

    def unsupported_params_for(self, params: dict[str, Any], target: Target) -> list[str]:
        return []


class Passthrough(Operation):
    """`face`: the client's format, for cache hits. `drop`: the request's drop_params (else
    the config's): an unsupported parameter the translation left out is then only dropped,
    not refused. `keepalive`: seconds of silence after which a translated stream yields
    streaming.IDLE, for a face whose format has a keep-alive event (a passed-through stream
    carries the provider's own)."""

    def __init__(self, native: NativeRequest, face: NativeFormat, drop: bool = False,
                 keepalive: float | None = None):
        self.native = native
        self.name = native.api
        self.face = face
        self.drop = drop
        self.keepalive = keepalive

    def prepare(self, provider: Provider, params: dict[str, Any],
                target: Target) -> tuple[Any, dict[str, Any]]:
        if provider.speaks(self.native.api, target):
            # No usage chunk: the native stream carries its own usage.
            return NativeView(provider, self.native), {
                k: v for k, v in params.items() if k != "stream_options"}
        refusal = self.native.refusal
        if refusal is not None and not (self.drop and isinstance(refusal, UnsupportedParamsError)):
            raise refusal
        return provider, params

    def call(self, upstream, provider, params: dict[str, Any], target: Target, timeout: float,
             outcome) -> dict:
        response = upstream.call(provider, params, target, timeout, outcome)
        if isinstance(provider, NativeView):
            outcome.native = provider.payload
        return response

    def cache_scope(self) -> dict[str, Any]:
        """What the translation leaves out still tells two answers apart."""
        return {"api": self.native.api, **{k: v for k, v in self.native.body.items()
                                          if k not in NATIVE_DELIVERY}}

    def idle_every(self, provider) -> float | None:
        return None if isinstance(provider, NativeView) else self.keepalive

    def kept(self, outcome, events: Iterable[NativeEvent] = ()) -> dict[str, Any] | None:
        if not outcome.passthrough:
            return None  # translated: the cache's chat.completion is the whole answer
        if outcome.native is not None:
            return {"api": self.name, "body": outcome.native}
        return {"api": self.name, "events": [[e.event, e.data] for e in events]}

    def cached(self, kept: dict[str, Any], stream: bool):
        if kept.get("api") != self.name:
            return None
        answer = NativeAnswer(kept.get("body"), None if kept.get("events") is None else
                              [NativeEvent(*event) for event in kept["events"]])
        return self.face.native_events(answer) if stream else self.face.native_answer(answer)
