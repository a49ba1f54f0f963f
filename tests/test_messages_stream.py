"""Translated Messages streams while the answer is slow: `ping` events whenever the upstream
is silent (before its first chunk and between chunks), under both gunicorn worker classes,
with the anthropic SDK reading the stream through them."""
from __future__ import annotations

import time

import anthropic
import pytest
import urllib3

from tests.emulators.server import Fault, Reply, sse
from tests.messages_fixtures import (anthropic_emu, gemini_emu, http, app, make_app,  # noqa: F401
                                     messages_env, sdk_for, sse_events)

pytestmark = pytest.mark.timeout(120)
PING_EVERY = "messages_ping_interval: 0.2\n"
ASK = {"model": "gpt-4o-mini", "max_tokens": 64, "stream": True,
       "messages": [{"role": "user", "content": "think hard"}]}


def slow_openai_stream(words: list[str], first: float, between: float) -> Fault:
    """An OpenAI stream that starts after `first` seconds (headers at once, as OpenAI
    sends them) and sends one word every `between` seconds."""
    def chunk(delta: dict, finish: str | None = None) -> bytes:
        return sse({"id": "chatcmpl-slow", "object": "chat.completion.chunk", "created": 1,
                    "model": "gpt-4o-mini",
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})

    def events():
        time.sleep(first)
        yield chunk({"role": "assistant", "content": ""})
        for word in words:
            yield chunk({"content": word})
        yield chunk({}, "stop")
        yield sse({"id": "chatcmpl-slow", "object": "chat.completion.chunk", "created": 1,
                   "model": "gpt-4o-mini", "choices": [],
                   "usage": {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}})
        yield b"data: [DONE]\n\n"
    return Fault(reply=Reply(200, events=events(), event_delay=between,
                             content_type="text/event-stream"))


def kinds(events) -> list[str]:
    return [d.get("delta", {}).get("type") or event for event, d in events]


def pings_before(sequence: list[str], kind: str) -> int:
    return sequence[:sequence.index(kind)].count("ping")


def test_pings_while_the_upstream_is_silent(make_app, write_config, openai_emu):
    http = make_app(config=write_config(PING_EVERY)).test_client()
    openai_emu.fail_next(slow_openai_stream(["Hello", " there"], first=0.9, between=0.7))
    events = sse_events(http.post("/v1/messages", json=ASK).get_data(as_text=True))
    sequence = kinds(events)
    assert sequence[0] == "message_start" and sequence[-1] == "message_stop"
    # before the first chunk: the stream starts, then a ping every 0.2 s of silence
    assert pings_before(sequence, "content_block_start") >= 3
    deltas = [i for i, kind in enumerate(sequence) if kind == "text_delta"]
    assert len(deltas) == 2 and "ping" in sequence[deltas[0]:deltas[1]]  # and between chunks
    text = "".join(d["delta"]["text"] for e, d in events if d.get("delta", {}).get("text"))
    assert text == "Hello there"
    assert events[-2][1]["usage"]["output_tokens"] == 2


def test_a_prompt_answer_gets_one_ping(make_app, write_config, openai_emu):
    """Anthropic's one ping after message_start, and no more when nothing is slow."""
    http = make_app(config=write_config("messages_ping_interval: 5\n")).test_client()
    openai_emu.fail_next(slow_openai_stream(["Hi"], first=0, between=0))
    sequence = kinds(sse_events(http.post("/v1/messages", json=ASK).get_data(as_text=True)))
    assert sequence.count("ping") == 1 and sequence[:2] == ["message_start", "ping"]


def test_pings_under_gunicorn_with_the_sdk(messages_env, start_gunicorn, worker_class,
                                           write_config, openai_emu):
    proxy = start_gunicorn({**messages_env, "SWITCHBOARD_WORKER_CLASS": worker_class,
                            "SWITCHBOARD_CONFIG": write_config(PING_EVERY)})
    openai_emu.fail_next(slow_openai_stream(["Hello", " there"], first=0.9, between=0.7))
    client = anthropic.Anthropic(base_url=proxy.base_url, api_key="x", max_retries=0)
    with client.messages.stream(**{k: v for k, v in ASK.items() if k != "stream"}) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Hello there" and final.usage.output_tokens == 2

    openai_emu.fail_next(slow_openai_stream(["Hello", " there"], first=1.5, between=0.7))
    raw = urllib3.request("POST", f"{proxy.base_url}/v1/messages", json=ASK, timeout=30,
                          preload_content=False)
    started, arrivals = time.monotonic(), {}
    for piece in raw.stream(decode_content=False):  # when each event reaches the client
        for event in piece.split(b"\n\n"):
            if event.startswith(b"event: "):
                arrivals.setdefault(event.split(b"\n")[0][7:], []).append(
                    time.monotonic() - started)
    first_block = arrivals[b"content_block_start"][0]
    assert arrivals[b"message_start"][0] < first_block - 0.5  # not held for the first token
    assert len([t for t in arrivals[b"ping"] if t < first_block]) >= 3
    assert arrivals[b"message_stop"]
