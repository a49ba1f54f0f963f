"""Cohere v2 streaming: the translator on recorded-shape event sequences, then `stream=True`
through the proxy with the official openai SDK (in-process and on a real gunicorn)."""
from __future__ import annotations

import json

import httpx2
import openai
import pytest

from app.errors import UpstreamError
from app.providers import get_provider
from app.providers.base import Target
from app.service.sse import SSEDecoder
from tests.emulators.cohere import CONTRACT, EVENT, CohereEmulator, cohere_error
from tests.emulators.server import Fault
from tests.provider_fixtures import WEATHER, provider_fixtures, streamed_text

cohere_emu, cohere_env, make_proxy, proxy, http, sdk = provider_fixtures(CohereEmulator, "cohere")

USER = [{"role": "user", "content": "ping"}]
PROVIDER = get_provider("cohere")
TARGET = Target("command-r", "cohere/command-r", "cohere", "command-r", "https://api.cohere.com",
                "key", "COHERE_API_KEY")
USAGE = {"billed_units": {"input_tokens": 5, "output_tokens": 3},
         "tokens": {"input_tokens": 12, "output_tokens": 3}, "cached_tokens": 2}


# -- the translator on recorded-shape streams ------------------------------------------------
def start(message_id="c0a8f7e2"):
    return {"id": message_id, "type": "message-start", "delta": {"message": {
        "role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}}}


def content_start(kind="text", index=0):
    return {"type": "content-start", "index": index,
            "delta": {"message": {"content": {"type": kind, kind: ""}}}}


def text(piece, index=0, **extra):
    return {"type": "content-delta", "index": index,
            "delta": {"message": {"content": {"text": piece}}}, **extra}


def thinking(piece, index=0):
    return {"type": "content-delta", "index": index,
            "delta": {"message": {"content": {"thinking": piece}}}}


def call_start(call_id, name, index=0):
    return {"type": "tool-call-start", "index": index, "delta": {"message": {"tool_calls": {
        "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}}}}


def call_delta(arguments, index=0):
    return {"type": "tool-call-delta", "index": index,
            "delta": {"message": {"tool_calls": {"function": {"arguments": arguments}}}}}


def end(finish="COMPLETE", usage=USAGE, **delta):
    return {"type": "message-end", "delta": {"finish_reason": finish, "usage": usage, **delta}}


def frames(events, named=True) -> bytes:
    """The wire bytes: `event: <type>` (when named) + `data: <json>`, then `data: [DONE]`."""
    out = b""
    for event in events:
        assert not CONTRACT.errors(EVENT, event), event   # the recordings follow the contract
        head = f"event: {event['type']}\n" if named else ""
        out += f"{head}data: {json.dumps(event)}\n\n".encode()
    return out + b"data: [DONE]\n\n"


def translate(events, body=None, named=True, piece=7) -> list[dict]:
    """Feed the framed bytes in small pieces, as the network would deliver them."""
    translator = PROVIDER.stream_translator(body or {}, TARGET)
    decoder, fragments, data = SSEDecoder(), [], frames(events, named)
    for at in range(0, len(data), piece):
        for event, payload in decoder.feed(data[at:at + piece]):
            fragments += translator.on_event(event, payload)
    for event, payload in decoder.close():
        fragments += translator.on_event(event, payload)
    return fragments + list(translator.on_end())


def deltas(fragments, key):
    return [c["delta"][key] for f in fragments for c in f["choices"] if key in c["delta"]]


def finishes(fragments):
    return [c["finish_reason"] for f in fragments for c in f["choices"] if c["finish_reason"]]


@pytest.mark.parametrize("named", [True, False])
def test_text_stream(named):
    fragments = translate([start(), content_start(), text("Hello"), text(","), text(" world"),
                           {"type": "content-end", "index": 0}, end()], named=named)
    assert "".join(deltas(fragments, "content")) == "Hello, world"
    assert finishes(fragments) == ["stop"]
    assert fragments[-1] == {"choices": [], "usage": {
        "prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15,
        "prompt_tokens_details": {"cached_tokens": 2}}}


@pytest.mark.parametrize("finish, openai_finish", [("MAX_TOKENS", "length"),
                                                   ("STOP_SEQUENCE", "stop")])
def test_finish_reasons_in_stream(finish, openai_finish):
    fragments = translate([start(), content_start(), text("Hi"), end(finish)])
    assert finishes(fragments) == [openai_finish]


def test_usage_falls_back_to_billed_units():
    fragments = translate([start(), end(usage={"billed_units": {"input_tokens": 4,
                                                                "output_tokens": 1}})])
    assert fragments[-1]["usage"] == {"prompt_tokens": 4, "completion_tokens": 1,
                                      "total_tokens": 5}


def test_tool_call_stream():
    fragments = translate([
        start(), {"type": "tool-plan-delta", "delta": {"message": {"tool_plan": "I will"}}},
        {"type": "tool-plan-delta", "delta": {"message": {"tool_plan": " look."}}},
        call_start("get_weather_a1b2", "get_weather"), call_delta('{"city":'),
        call_delta(' "Paris"}'), {"type": "tool-call-end", "index": 0},
        call_start("get_time_c3d4", "get_time", 1), call_delta("{}", 1),
        {"type": "tool-call-end", "index": 1}, end("TOOL_CALL")])
    calls = [c for f in fragments for c in f["choices"] if "tool_calls" in c["delta"]]
    assert [c["delta"]["tool_calls"] for c in calls] == [
        [{"index": 0, "id": "get_weather_a1b2", "type": "function",
          "function": {"name": "get_weather", "arguments": ""}}],
        [{"index": 0, "function": {"arguments": '{"city":'}}],
        [{"index": 0, "function": {"arguments": ' "Paris"}'}}],
        [{"index": 1, "id": "get_time_c3d4", "type": "function",
          "function": {"name": "get_time", "arguments": ""}}],
        [{"index": 1, "function": {"arguments": "{}"}}]]
    assert deltas(fragments, "content") == ["I will", " look."]   # the plan, as content
    assert finishes(fragments) == ["tool_calls"]


def test_legacy_functions_stream_as_function_call():
    fragments = translate([start(), call_start("c1", "get_weather"), call_delta('{"city": "P"}'),
                           call_start("c2", "get_time", 1), call_delta("{}", 1),
                           end("TOOL_CALL")], body={"functions": [WEATHER["function"]]})
    assert deltas(fragments, "function_call") == [{"name": "get_weather", "arguments": ""},
                                                  {"arguments": '{"city": "P"}'}]
    assert deltas(fragments, "tool_calls") == []
    assert finishes(fragments) == ["function_call"]


def test_citations_thinking_and_debug_are_left_out():
    citation = {"type": "citation-start", "index": 0, "delta": {"message": {"citations": {
        "start": 0, "end": 5, "text": "Paris", "sources": []}}}}
    fragments = translate([
        start(), content_start("thinking"), thinking("Let me think"),
        {"type": "content-end", "index": 0}, content_start("text", 1), text("Paris.", 1),
        citation, {"type": "citation-end", "index": 0}, {"type": "content-end", "index": 1},
        end()])
    assert deltas(fragments, "content") == ["Paris."]
    assert finishes(fragments) == ["stop"]


def test_logprobs_in_stream():
    fragments = translate([start(), content_start(), text("Hi", logprobs={
        "text": "Hi", "token_ids": [5, 6], "logprobs": [-0.5, -0.25]}), end()])
    first = fragments[0]["choices"][0]
    assert first["logprobs"] == {"content": [{"token": "Hi", "logprob": -0.75,
                                              "bytes": [72, 105], "top_logprobs": []}]}


def test_mid_stream_error_event_raises():
    translator = PROVIDER.stream_translator({}, TARGET)
    assert list(translator.on_event("content-delta", json.dumps(text("Hel"))))
    failed = end("ERROR", usage=None, error="internal error: the model crashed")
    del failed["delta"]["usage"]
    assert not CONTRACT.errors(EVENT, failed)
    with pytest.raises(UpstreamError) as caught:
        list(translator.on_event("message-end", json.dumps(failed)))
    assert "internal error: the model crashed" in caught.value.message
    assert caught.value.status == 502


@pytest.mark.parametrize("finish", ["ERROR", "TIMEOUT"])
def test_failed_finish_without_error_text_raises(finish):
    translator = PROVIDER.stream_translator({}, TARGET)
    with pytest.raises(UpstreamError) as caught:
        list(translator.on_event("message-end", json.dumps(end(finish))))
    assert finish in caught.value.message


def test_done_and_unknown_events_give_nothing():
    translator = PROVIDER.stream_translator({}, TARGET)
    assert list(translator.on_event(None, "[DONE]")) == []
    assert list(translator.on_event("debug", json.dumps({"type": "debug", "prompt": "x"}))) == []
    assert list(translator.on_event("message-start", json.dumps(start()))) == []


# -- stream=True through the proxy -----------------------------------------------------------
def collect(stream) -> tuple[str, list]:
    chunks = list(stream)
    return streamed_text(chunks), chunks


def test_stream_text_equals_non_stream(sdk, cohere_emu):
    whole = sdk.chat.completions.create(model="command-nightly", messages=USER)
    streamed, chunks = collect(sdk.chat.completions.create(model="command-nightly",
                                                           messages=USER, stream=True))
    assert streamed == whole.choices[0].message.content == "Hello! You said: ping"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.choices[0].finish_reason is None for c in chunks[:-1])
    assert len({c.id for c in chunks}) == 1 and chunks[0].model == "command-nightly"
    assert cohere_emu.calls[-1].body == {"model": "command-nightly", "messages": USER,
                                         "stream": True}
    assert cohere_emu.calls[-1].headers["accept"] == "text/event-stream"


def test_stream_include_usage(sdk, cohere_emu):
    whole = sdk.chat.completions.create(model="command-r", messages=USER)
    _, chunks = collect(sdk.chat.completions.create(
        model="command-r", messages=USER, stream=True, stream_options={"include_usage": True}))
    assert chunks[-1].choices == []
    streamed = chunks[-1].usage.model_dump(exclude_none=True)
    assert streamed.pop("cost") > 0  # the proxy adds the request's cost to the usage chunk
    assert streamed == whole.usage.model_dump(exclude_none=True)
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks[:-1])
    assert "stream_options" not in cohere_emu.calls[-1].body


def test_stream_max_tokens_gives_length(sdk, cohere_emu):
    streamed, chunks = collect(sdk.chat.completions.create(
        model="command-r", messages=USER, stream=True, max_tokens=2))
    assert streamed == "Hello! You"
    assert chunks[-1].choices[0].finish_reason == "length"


def test_stream_tool_call_deltas(sdk, cohere_emu):
    messages = [{"role": "user", "content": "call get_weather"}]
    chunks = list(sdk.chat.completions.create(model="command-r", messages=messages,
                                              tools=[WEATHER], stream=True))
    parts = [t for c in chunks if c.choices for t in c.choices[0].delta.tool_calls or ()]
    assert parts[0].id and parts[0].type == "function"
    assert parts[0].function.name == "get_weather"
    assert all(p.index == 0 for p in parts) and all(p.id is None for p in parts[1:])
    assert json.loads("".join(p.function.arguments or "" for p in parts)) == {"city": "Paris"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == \
        "I will call get_weather."    # the tool plan, as the whole answer has it
    # the streamed call id answers the next turn
    follow = messages + [{"role": "assistant", "tool_calls": [{
        "id": parts[0].id, "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": parts[0].id, "content": "fog"}]
    text, _ = collect(sdk.chat.completions.create(model="command-r", messages=follow,
                                                  tools=[WEATHER], stream=True))
    assert text == "The tool returned: fog"


def test_mid_stream_error_reaches_the_client(sdk, cohere_emu):
    cohere_emu.fail_next_stream("internal error: generation failed", after=2)
    stream = sdk.chat.completions.create(model="command-r", messages=USER, stream=True)
    received = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")
    assert "".join(received) == "Hello! You"
    assert "internal error: generation failed" in caught.value.message
    assert cohere_emu.api_key not in caught.value.message


def test_error_before_the_stream_is_a_plain_http_error(sdk, cohere_emu):
    cohere_emu.fail_next(Fault(reply=cohere_error(429, "trial key limited", {"Retry-After": "3"})))
    with pytest.raises(openai.RateLimitError) as caught:
        sdk.chat.completions.create(model="command-r", messages=USER, stream=True,
                                    extra_body={"num_retries": 0})
    assert caught.value.response.headers["retry-after"] == "3"
    assert "trial key limited" in caught.value.message


def test_unsupported_param_refused_when_streaming(http, cohere_emu):
    r = http.post("/v1/chat/completions", json={"model": "command-r", "messages": USER,
                                                "stream": True, "n": 3})
    assert r.status_code == 400 and r.json["error"]["code"] == "unsupported_params"
    assert not cohere_emu.calls


def test_end_to_end_on_gunicorn(shared_gunicorn, cohere_emu):
    server = shared_gunicorn()
    client = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="x", max_retries=0,
                           http_client=httpx2.Client(timeout=10))
    whole = client.chat.completions.create(model="command-nightly", messages=USER)
    assert whole.choices[0].message.content == "Hello! You said: ping"
    streamed, chunks = collect(client.chat.completions.create(
        model="command-nightly", messages=USER, stream=True,
        stream_options={"include_usage": True}))
    assert streamed == "Hello! You said: ping"
    assert chunks[-1].usage.total_tokens == whole.usage.total_tokens
