"""Translated Messages streams: `ping` events whenever the upstream is silent (before its
first chunk and between chunks, under both gunicorn worker classes, with the anthropic SDK
reading the stream), and the usage: the prompt counted as the target counts it in
`message_start`, the upstream's own counts in `message_delta` and in the ledger."""
from __future__ import annotations

import time

import anthropic
import pytest
import urllib3

from app.usage.ledger import ledger_of
from app.usage.tokens import count_messages
from app.usage.spend import LogFilter, Spend, Window
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
    openai_emu.fail_next(slow_openai_stream(["Hi"], first=0, between=0))
    assert b"message_stop" in http.post("/v1/messages", json=ASK).get_data()  # warm-up
    openai_emu.fail_next(slow_openai_stream(["Hello", " there"], first=1.2, between=1.0))
    events = sse_events(http.post("/v1/messages", json=ASK).get_data(as_text=True))
    sequence = kinds(events)
    assert sequence[0] == "message_start" and sequence[-1] == "message_stop"
    # before the first chunk: the stream starts, then a ping every 0.2 s of silence
    assert pings_before(sequence, "content_block_start") >= 3, sequence
    deltas = [i for i, kind in enumerate(sequence) if kind == "text_delta"]
    assert len(deltas) == 2 and "ping" in sequence[deltas[0]:deltas[1]], sequence  # between
    text = "".join(d["delta"]["text"] for e, d in events if d.get("delta", {}).get("text"))
    assert text == "Hello there"
    assert events[-2][1]["usage"]["output_tokens"] == 2


def test_comments_while_waiting_are_silence_too(make_app, write_config, openai_emu):
    """Some upstreams send SSE comments while the model works (": PROCESSING"): bytes,
    but nothing for the client, so the pings still come."""
    http = make_app(config=write_config("messages_ping_interval: 0.3\n")).test_client()
    comments = [b": PROCESSING\n\n"] * 12
    answer = list(slow_openai_stream(["Hi"], first=0, between=0).reply.events)
    openai_emu.fail_next(Fault(reply=Reply(200, events=[*comments, *answer], event_delay=0.1,
                                           content_type="text/event-stream")))
    sequence = kinds(sse_events(http.post("/v1/messages", json=ASK).get_data(as_text=True)))
    assert pings_before(sequence, "content_block_start") >= 2
    assert sequence[-1] == "message_stop"


def test_pings_never_hide_a_dead_upstream(make_app, write_config, openai_emu):
    """The pings come from the proxy's own wait on the upstream, which stream_timeout
    bounds: a silent upstream ends the stream with an error event, pings before it."""
    http = make_app(config=write_config(PING_EVERY + "stream_timeout: 1\n")).test_client()
    openai_emu.fail_next(slow_openai_stream(["Hello", " there"], first=0, between=2.5))
    events = sse_events(http.post("/v1/messages", json=ASK).get_data(as_text=True))
    sequence = kinds(events)
    assert sequence[-1] == "error" and "stalled" in events[-1][1]["error"]["message"]
    assert sequence.count("ping") >= 4 and "message_stop" not in sequence


def test_a_prompt_answer_gets_one_ping(make_app, write_config, openai_emu):
    """Anthropic's one ping after message_start, and no more when nothing is slow."""
    http = make_app(config=write_config("messages_ping_interval: 5\n")).test_client()
    openai_emu.fail_next(slow_openai_stream(["Hi"], first=0, between=0))
    sequence = kinds(sse_events(http.post("/v1/messages", json=ASK).get_data(as_text=True)))
    assert sequence.count("ping") == 1 and sequence[:2] == ["message_start", "ping"]


def test_pings_under_gunicorn_with_the_sdk(messages_env, start_gunicorn, worker_class,
                                           write_config, openai_emu):
    # One worker, so the warm-up request below has loaded its tokenizer before the timed one.
    proxy = start_gunicorn({**messages_env, "SWITCHBOARD_WORKER_CLASS": worker_class,
                            "SWITCHBOARD_CONFIG": write_config(PING_EVERY),
                            "WEB_CONCURRENCY": "1"})
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
    # not held for the first token, and pinged while waiting for it
    assert arrivals[b"message_start"][0] < first_block - 0.5, arrivals
    assert len([t for t in arrivals[b"ping"] if t < first_block]) >= 3, arrivals
    assert arrivals[b"message_stop"]


# -- usage ----------------------------------------------------------------------------
def test_message_start_counts_the_prompt_as_the_target_does(http):
    """OpenAI models: tiktoken with the model's own encoding (o200k_base for gpt-4o-mini),
    counted locally, with no upstream call before the stream starts."""
    system, question = "Réponds en français, brièvement.", "Combien de pattes a une araignée ? 🕷"
    body = {"model": "gpt-4o-mini", "max_tokens": 64, "system": system, "stream": True,
            "messages": [{"role": "user", "content": question}]}
    events = sse_events(http.post("/v1/messages", json=body).get_data(as_text=True))
    prompt = [{"role": "system", "content": system}, {"role": "user", "content": question}]
    counted = events[0][1]["message"]["usage"]["input_tokens"]
    assert counted == count_messages("gpt-4o-mini", prompt)
    assert counted != count_messages("gpt-3.5-turbo", prompt)  # cl100k_base counts otherwise


def test_the_final_usage_is_the_upstreams_and_the_ledger_records_it(app, http, openai_emu):
    usage = {"prompt_tokens": 50, "completion_tokens": 4, "total_tokens": 54,
             "prompt_tokens_details": {"cached_tokens": 20}}
    openai_emu.fail_next(Fault(reply=Reply(200, events=[
        sse({"id": "chatcmpl-u", "object": "chat.completion.chunk", "created": 1,
             "model": "gpt-4o-mini", "choices": [{"index": 0, "delta": {
                 "role": "assistant", "content": "Eight legs."}, "finish_reason": None}]}),
        sse({"id": "chatcmpl-u", "object": "chat.completion.chunk", "created": 1,
             "model": "gpt-4o-mini", "choices": [{"index": 0, "delta": {},
                                                  "finish_reason": "stop"}]}),
        sse({"id": "chatcmpl-u", "object": "chat.completion.chunk", "created": 1,
             "model": "gpt-4o-mini", "choices": [], "usage": usage}),
        b"data: [DONE]\n\n"], content_type="text/event-stream")))
    with sdk_for(app).messages.stream(**{k: v for k, v in ASK.items() if k != "stream"}) as s:
        final = s.get_final_message()
    assert (final.usage.input_tokens, final.usage.cache_read_input_tokens,
            final.usage.output_tokens) == (30, 20, 4)  # the estimate replaced
    service = app.extensions["switchboard"]
    ledger = ledger_of(service)
    assert ledger.flush(10)
    rows, _ = Spend(ledger.database).logs(Window(), LogFilter(api="messages"), 10)
    assert [(r["prompt_tokens"], r["cached_tokens"], r["completion_tokens"]) for r in rows] \
        == [(50, 20, 4)]
