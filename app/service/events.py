"""One record per request, built once and handed to every consumer (ledger, integrations,
metrics), success or failure, streamed or not, cached or not."""
from __future__ import annotations

import logging
import time
import uuid
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

log = logging.getLogger("switchboard.events")

# The deliveries waiting for the answer to be sent (see `answer_first`); None: deliver now.
_waiting_for_answer: ContextVar[list | None] = ContextVar("waiting_for_answer", default=None)


@dataclass
class RequestContext:
    """Who asked and when: set by the caller (the HTTP layer, or a library user)."""

    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    key_id: str | None = None
    key_alias: str | None = None
    models: tuple[str, ...] = ()       # the only models the caller may reach; empty: any
    callbacks: bool = True             # False: integrations skip this request
    client: Any = None                 # the caller's connection (socket), if it has one
    api: str = "chat"                  # the face the client used (app/faces)
    started: float = field(default_factory=time.perf_counter)
    started_at: float = field(default_factory=time.time)


@dataclass
class RequestEvent:
    request_id: str
    started_at: float                  # unix seconds
    requested_model: str | None
    model: str | None = None           # the deployment's model that answered
    provider: str | None = None
    deployment: str | None = None
    stream: bool = False
    messages: list | None = None
    response: dict | None = None       # the final chat.completion (OpenAI shape)
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cache_creation_tokens: int = 0
    reasoning_tokens: int = 0
    usage_estimated: bool = False
    cost: float = 0.0                  # USD billed for this request
    cost_unknown: bool = False         # the model has no known price: `cost` is not real
    saved_cost: float = 0.0            # USD a cache hit saved
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    overhead_ms: float | None = None
    cache: str = "off"                 # off, miss, hit, semantic-hit
    attempts: list[dict] = field(default_factory=list)
    retries: int = 0
    fallbacks: int = 0
    status: int = 200
    error_type: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    user: str | None = None
    key_id: str | None = None
    key_alias: str | None = None
    metadata: dict | None = None
    callbacks: bool = True
    api: str = "chat"                  # the face: chat, messages, responses, ...

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def succeeded(self) -> bool:
        return self.error_type is None


class EventBus:
    """Hands each finished request's event to every subscriber.

    Subscribers must not block (they enqueue for their own background workers); a failing
    subscriber is logged and never affects the request or the other subscribers. One
    subscribed `after_answer` (metrics, integrations) is handed the event once the answer
    has gone to the client when the request is served inside `answer_first` (gunicorn's
    workers), so the client does not wait for it; the others (the ledger's journal line,
    the key's spend) before the answer, as anywhere else.
    """

    def __init__(self):
        self._subscribers: list[Callable[[RequestEvent], None]] = []
        self._after_answer: list[Callable[[RequestEvent], None]] = []

    def subscribe(self, subscriber: Callable[[RequestEvent], None],
                  after_answer: bool = False) -> None:
        (self._after_answer if after_answer else self._subscribers).append(subscriber)

    def publish(self, event: RequestEvent) -> None:
        for subscriber in self._subscribers:
            _deliver(subscriber, event)
        waiting = _waiting_for_answer.get()
        for subscriber in self._after_answer:
            if waiting is None:
                _deliver(subscriber, event)
            else:
                waiting.append((subscriber, event))


def _deliver(subscriber: Callable[[RequestEvent], None], event: RequestEvent) -> None:
    try:
        subscriber(event)
    except Exception:
        log.exception("event subscriber %r failed", subscriber)


class answer_first:  # noqa: N801 (used as a context manager, like a function)
    """Around serving one request (its answer written when this ends): the events published
    inside are handed to their `after_answer` subscribers on the way out, however it ends.
    Per greenlet or thread (a context variable). A class: a generator's context manager
    costs a few microseconds more per request."""

    __slots__ = ("_waiting", "_token")

    def __enter__(self) -> None:
        self._waiting: list = []
        self._token = _waiting_for_answer.set(self._waiting)

    def __exit__(self, *exc_info) -> None:
        _waiting_for_answer.reset(self._token)
        for subscriber, event in self._waiting:
            _deliver(subscriber, event)


def build_event(context: RequestContext, body: dict, outcome, trail,
                error: Exception | None = None) -> RequestEvent:
    """The event for a finished request, from whatever it got to (`outcome` may be None)."""
    event = RequestEvent(
        request_id=context.request_id, started_at=context.started_at,
        requested_model=body.get("model") if isinstance(body.get("model"), str) else None,
        stream=body.get("stream") is True, messages=body.get("messages"),
        user=body.get("user") if isinstance(body.get("user"), str) else None,
        metadata=body.get("metadata") if isinstance(body.get("metadata"), dict) else None,
        key_id=context.key_id, key_alias=context.key_alias, callbacks=context.callbacks,
        api=context.api,
        latency_ms=round((time.perf_counter() - context.started) * 1000, 3),
        retries=trail.retries, fallbacks=trail.fallbacks,
        attempts=[attempt_record(a) for a in trail.attempts])
    if outcome is not None:
        _describe_answer(event, outcome, context)
    if error is not None:
        event.status = getattr(error, "status", 500)
        event.error_type = getattr(error, "type", "server_error")
        event.error_code = getattr(error, "code", None)
        event.error_message = getattr(error, "message", str(error))
        if outcome is not None and outcome.chunks is not None:
            event.status = 200  # the stream had started: the client saw 200, then an error frame
    return event


def attempt_record(attempt) -> dict[str, Any]:
    """A failed attempt as the event keeps it; `upstream_status` is what the provider itself
    answered (None when it answered nothing, e.g. a timeout)."""
    error = attempt.error
    return {"model": attempt.model, "provider": getattr(error, "provider", None),
            "status": error.status, "upstream_status": getattr(error, "upstream_status", None),
            "error": error.message}


def _describe_answer(event: RequestEvent, outcome, context: RequestContext) -> None:
    target = outcome.target
    event.model, event.provider, event.deployment = target.model, target.provider, target.deployment_id
    event.cache = outcome.cache
    event.saved_cost = outcome.saved_cost
    response = outcome.response or outcome.replayed
    if outcome.stream is not None:
        response = outcome.stream.completion()
        if outcome.stream.first_chunk_at is not None:
            event.ttft_ms = round((outcome.stream.first_chunk_at - context.started) * 1000, 3)
    event.response = response
    if response and response.get("choices"):
        event.finish_reason = response["choices"][0].get("finish_reason")
    bill = outcome.bill if outcome.bill is not None else getattr(outcome.stream, "bill", None)
    if bill is not None:
        counts = bill.counts
        event.prompt_tokens, event.completion_tokens = counts.prompt, counts.completion
        event.cached_tokens, event.cache_creation_tokens = counts.cached, counts.cache_creation
        event.reasoning_tokens, event.usage_estimated = counts.reasoning, bill.estimated
        event.cost, event.cost_unknown = bill.cost, bill.cost_unknown
    event.overhead_ms = round(event.latency_ms - outcome.upstream_seconds * 1000, 3) \
        if outcome.stream is None else None
