"""Anthropic streaming: the translator on recorded-shape event sequences, and stream=True
through the proxy with the official openai SDK."""
from __future__ import annotations

import json

import openai
import pytest

from app.errors import UpstreamError
from app.providers import get_provider
from app.providers.base import Target
from tests.emulators.anthropic import CONTRACT, EVENT, AnthropicEmulator, anthropic_error
from tests.emulators.server import Fault
from tests.provider_fixtures import WEATHER, provider_fixtures, sdk_for

anthropic_emu, anthropic_env, make_proxy, proxy, http, sdk = provider_fixtures(
    AnthropicEmulator, "anthropic")

USER = [{"role": "user", "content": "stream this please"}]
USAGE = {"input_tokens": 25, "output_tokens": 1, "cache_creation_input_tokens": 0,
         "cache_read_input_tokens": 40, "cache_creation": None, "inference_geo": None,
         "server_tool_use": None, "service_tier": "standard"}
START = {"type": "message_start", "message": {
    "id": "msg_01", "type": "message", "role": "assistant", "content": [],
    "model": "claude-3-5-sonnet-20241022", "stop_reason": None, "stop_sequence": None,
    "stop_details": None, "container": None, "usage": USAGE}}


def block_start(index, block):
    return {"type": "content_block_start", "index": index, "content_block": block}


def block_delta(index, delta):
    return {"type": "content_block_delta", "index": index, "delta": delta}


def message_delta(stop_reason, output_tokens):
    return {"type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": None, "stop_details": None,
                      "container": None},
            "usage": {"output_tokens": output_tokens, "input_tokens": None,
                      "cache_creation_input_tokens": None, "cache_read_input_tokens": None,
                      "server_tool_use": None}}


# A text block, a thinking-free tool call at block 1 and another at block 2, as the API sends.
RECORDED = [
    START,
    {"type": "ping"},
    block_start(0, {"type": "text", "text": "", "citations": None}),
    block_delta(0, {"type": "text_delta", "text": "Checking"}),
    block_delta(0, {"type": "text_delta", "text": " both."}),
    {"type": "content_block_stop", "index": 0},
    block_start(1, {"type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {},
                    "caller": {"type": "direct"}}),
    block_delta(1, {"type": "input_json_delta", "partial_json": ""}),
    block_delta(1, {"type": "input_json_delta", "partial_json": '{"city": '}),
    block_delta(1, {"type": "input_json_delta", "partial_json": '"Oslo"}'}),
    {"type": "content_block_stop", "index": 1},
    block_start(2, {"type": "tool_use", "id": "toolu_02B", "name": "get_time", "input": {},
                    "caller": {"type": "direct"}}),
    block_delta(2, {"type": "input_json_delta", "partial_json": "{}"}),
    {"type": "content_block_stop", "index": 2},
    message_delta("tool_use", 31),
    {"type": "message_stop"},
]


def translate(events: list[dict], body: dict | None = None) -> list[dict]:
    provider = get_provider("anthropic")
    target = Target("claude", "claude", "anthropic", "claude-3-5-sonnet-20241022", "http://x",
                    "k", "ANTHROPIC_API_KEY")
    translator = provider.stream_translator(body or {}, target)
    fragments = []
    for event in events:
        fragments += list(translator.on_event(event["type"], json.dumps(event)))
    return fragments + list(translator.on_end())


def test_recorded_events_follow_the_contract():
    for event in RECORDED:
        assert CONTRACT.errors(EVENT, event) == [], event["type"]


def test_translator_text_tool_calls_finish_and_usage():
    fragments = translate(RECORDED)
    deltas = [f["choices"][0]["delta"] for f in fragments if f["choices"]]
    assert "".join(d.get("content", "") for d in deltas) == "Checking both."
    calls = [c for d in deltas for c in d.get("tool_calls", ())]
    assert calls[0] == {"index": 0, "id": "toolu_01A", "type": "function",
                        "function": {"name": "get_weather", "arguments": ""}}
    assert calls[3] == {"index": 1, "id": "toolu_02B", "type": "function",
                        "function": {"name": "get_time", "arguments": ""}}
    assert "".join(c["function"]["arguments"] for c in calls if c["index"] == 0) == \
        '{"city": "Oslo"}'
    assert "".join(c["function"]["arguments"] for c in calls if c["index"] == 1) == "{}"
    assert all("id" not in c for c in calls if c["function"].get("arguments"))
    finishes = [f["choices"][0]["finish_reason"] for f in fragments if f["choices"]]
    assert finishes[-1] == "tool_calls" and set(finishes[:-1]) == {None}
    assert fragments[-1] == {"choices": [], "usage": {
        "prompt_tokens": 65, "completion_tokens": 31, "total_tokens": 96,
        "prompt_tokens_details": {"cached_tokens": 40}, "cache_read_input_tokens": 40,
        "cache_creation_input_tokens": 0}}


def test_translator_thinking_signature_ping_and_unknown_events():
    events = [START,
              block_start(0, {"type": "thinking", "thinking": "", "signature": ""}),
              block_delta(0, {"type": "thinking_delta", "thinking": "hmm"}),
              block_delta(0, {"type": "signature_delta", "signature": "sig"}),
              {"type": "content_block_stop", "index": 0},
              {"type": "ping"},
              block_start(1, {"type": "text", "text": "", "citations": None}),
              block_delta(1, {"type": "text_delta", "text": "Hi"}),
              {"type": "content_block_stop", "index": 1},
              message_delta("end_turn", 2), {"type": "message_stop"}]
    for event in events:
        assert CONTRACT.errors(EVENT, event) == [], event["type"]
    fragments = translate(events + [{"type": "some_future_event"}])
    assert [f["choices"][0] for f in fragments if f["choices"]] == [
        {"index": 0, "delta": {"reasoning_content": "hmm"}, "finish_reason": None},
        {"index": 0, "delta": {"thinking_blocks": [
            {"type": "thinking", "thinking": "hmm", "signature": "sig"}]}, "finish_reason": None},
        {"index": 0, "delta": {"content": "Hi"}, "finish_reason": None},
        {"index": 0, "delta": {}, "finish_reason": "stop"}]


def test_translator_applies_whitespace_stop_split_across_deltas():
    text_start = block_start(0, {"type": "text", "text": "", "citations": None})
    pieces = ["One", " line\n", "\nTwo", " lines"]
    events = [START, text_start] + [
        block_delta(0, {"type": "text_delta", "text": p}) for p in pieces] + [
        {"type": "content_block_stop", "index": 0},
        block_start(1, {"type": "tool_use", "id": "toolu_01A", "name": "f", "input": {},
                        "caller": {"type": "direct"}}),
        {"type": "content_block_stop", "index": 1},
        message_delta("tool_use", 9), {"type": "message_stop"}]
    cut = translate(events, {"stop": ["\n\n"]})
    choices = [f["choices"][0] for f in cut if f["choices"]]
    assert "".join(c["delta"].get("content", "") for c in choices) == "One line"
    assert [c["finish_reason"] for c in choices][-1] == "stop"
    assert not any("tool_calls" in c["delta"] for c in choices)
    assert cut[-1]["usage"]["completion_tokens"] == 9
    whole = translate(events, {"stop": ["\n\n\n"]})   # held back "\n" then flushed
    choices = [f["choices"][0] for f in whole if f["choices"]]
    assert "".join(c["delta"].get("content", "") for c in choices) == "".join(pieces)
    assert choices[-1]["finish_reason"] == "tool_calls"


@pytest.mark.parametrize("stop_reason, finish", [
    ("end_turn", "stop"), ("max_tokens", "length"), ("stop_sequence", "stop"),
    ("refusal", "content_filter"), ("pause_turn", "stop")])
def test_translator_stop_reasons(stop_reason, finish):
    fragments = translate([START, message_delta(stop_reason, 3), {"type": "message_stop"}])
    assert fragments[0]["choices"][0]["finish_reason"] == finish


@pytest.mark.parametrize("type_, status, code", [
    ("overloaded_error", 502, "overloaded_error"), ("api_error", 502, "api_error"),
    ("rate_limit_error", 429, "rate_limit_error"),
    ("invalid_request_error", 400, "invalid_request_error")])
def test_translator_error_event_raises(type_, status, code):
    error = {"type": "error", "error": {"type": type_, "message": "Something broke"}}
    with pytest.raises(UpstreamError) as raised:
        translate([START, block_start(0, {"type": "text", "text": "", "citations": None}),
                   error])
    assert raised.value.status == status
    assert raised.value.code == code
    assert "Something broke" in raised.value.message


# -- through the proxy ---------------------------------------------------------------------
def test_stream_text_equals_non_stream_text(sdk, anthropic_emu):
    plain = sdk.chat.completions.create(model="claude-2", messages=USER)
    chunks = list(sdk.chat.completions.create(model="claude-2", messages=USER, stream=True))
    assert anthropic_emu.calls[-1].body["stream"] is True
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == \
        plain.choices[0].message.content == "Hello! You said: stream this please"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.choices[0].finish_reason is None for c in chunks[:-1])
    assert all(c.usage is None for c in chunks)


def test_stream_include_usage_gives_final_usage_chunk(sdk):
    plain = sdk.chat.completions.create(model="claude-2", messages=USER)
    chunks = list(sdk.chat.completions.create(model="claude-2", messages=USER, stream=True,
                                              stream_options={"include_usage": True}))
    assert chunks[-1].choices == []
    usage = chunks[-1].usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (
        plain.usage.prompt_tokens, plain.usage.completion_tokens, plain.usage.total_tokens)
    assert chunks[-2].choices[0].finish_reason == "stop"


def test_stream_max_tokens_is_length(sdk):
    chunks = list(sdk.chat.completions.create(model="claude-2", messages=USER, stream=True,
                                              max_tokens=2))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Hello! You"
    assert chunks[-1].choices[0].finish_reason == "length"


def test_stream_whitespace_stop_applied_by_the_proxy(sdk, anthropic_emu):
    messages = [{"role": "user", "content": "line one\nline two"}]
    chunks = list(sdk.chat.completions.create(model="claude-2", messages=messages, stream=True,
                                              stop="\n", stream_options={"include_usage": True}))
    assert "stop_sequences" not in anthropic_emu.calls[-1].body
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == \
        "Hello! You said: line one"
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].usage.completion_tokens == 7      # what Anthropic generated and bills


def test_stream_tool_call_deltas(sdk):
    messages = [{"role": "user", "content": "use get_weather"}]
    plain = sdk.chat.completions.create(model="claude-2", messages=messages, tools=[WEATHER])
    chunks = list(sdk.chat.completions.create(model="claude-2", messages=messages,
                                              tools=[WEATHER], stream=True))
    calls = [tc for c in chunks for tc in c.choices[0].delta.tool_calls or ()]
    assert calls[0].index == 0 and calls[0].id.startswith("toolu_")
    assert calls[0].type == "function" and calls[0].function.name == "get_weather"
    assert all(tc.id is None and tc.index == 0 for tc in calls[1:])
    arguments = "".join(tc.function.arguments or "" for tc in calls)
    assert json.loads(arguments) == json.loads(plain.choices[0].message.tool_calls[0]
                                               .function.arguments) == {"city": "Paris"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_error_before_stream_is_plain_429_with_retry_after(http, anthropic_emu):
    anthropic_emu.fail_next(Fault(reply=anthropic_error(429, "rate_limit_error", "Slow down",
                                                        {"retry-after": "9"})))
    r = http.post("/v1/chat/completions", json={"model": "claude-2", "messages": USER,
                                                "stream": True, "num_retries": 0})
    assert r.status_code == 429
    assert r.headers["Retry-After"] == "9"
    assert "Slow down" in r.json["error"]["message"]


def test_mid_stream_error_event_ends_with_error_frame(http, anthropic_emu):
    anthropic_emu.fail_mid_stream(after_events=5)
    r = http.post("/v1/chat/completions", json={"model": "claude-2", "messages": USER,
                                                "stream": True})
    assert r.status_code == 200
    text = r.get_data(as_text=True)
    assert text.endswith("data: [DONE]\n\n")
    frames = [json.loads(block[len("data: "):]) for block in text.split("\n\n")
              if block.startswith("data: {")]
    assert "".join(f["choices"][0]["delta"].get("content", "") for f in frames[:-1]) == \
        "Hello! You"
    error = frames[-1]["error"]
    assert "Overloaded" in error["message"] and error["code"] == "overloaded_error"


def test_mid_stream_error_surfaces_in_the_sdk(sdk, anthropic_emu):
    anthropic_emu.fail_mid_stream(after_events=6, type_="api_error", message="Internal error")
    with pytest.raises(openai.APIError) as raised:
        list(sdk.chat.completions.create(model="claude-2", messages=USER, stream=True))
    assert "Internal error" in str(raised.value)


def test_error_event_before_any_content_is_a_plain_error(http, anthropic_emu):
    """message_start, ping, an empty text block start, then the error: nothing was sent to
    the client yet, so it gets an HTTP error status (or a retry), not a broken 200 stream."""
    anthropic_emu.fail_mid_stream(after_events=3)
    r = http.post("/v1/chat/completions", json={"model": "claude-2", "messages": USER,
                                                "stream": True, "num_retries": 0})
    assert r.status_code == 502
    assert r.json["error"]["code"] == "overloaded_error"
    assert "Overloaded" in r.json["error"]["message"]


def test_error_event_before_any_content_is_retried(sdk, anthropic_emu):
    anthropic_emu.fail_mid_stream(after_events=3)
    chunks = list(sdk.chat.completions.create(model="claude-2", messages=USER, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == \
        "Hello! You said: stream this please"
    assert len(anthropic_emu.calls) == 2


NO_ARGS = {"type": "function", "function": {"name": "get_time",
                                            "parameters": {"type": "object", "properties": {}}}}


def test_streamed_tool_call_without_arguments_ends_with_empty_object(make_proxy, write_config):
    """Anthropic streams an empty input as one empty fragment; the client (and the cache)
    must still get "{}", as the whole answer says it."""
    sdk = sdk_for(make_proxy(config=write_config("cache: {enabled: true}\n")))
    messages = [{"role": "user", "content": "use get_time"}]
    for replayed in (False, True):
        r = sdk.chat.completions.with_raw_response.create(
            model="claude-2", messages=messages, tools=[NO_ARGS], stream=True)
        assert r.headers["x-switchboard-cache"] == ("hit" if replayed else "miss")
        calls = [tc for c in r.parse() for tc in c.choices[0].delta.tool_calls or ()]
        assert calls[0].function.name == "get_time"
        assert "".join(tc.function.arguments or "" for tc in calls) == "{}"


def test_stream_reports_top_p_dropped_beside_temperature(http, anthropic_emu):
    r = http.post("/v1/chat/completions", json={"model": "claude-sonnet-4-5", "messages": USER,
                                                "temperature": 0.5, "top_p": 1, "stream": True})
    assert r.status_code == 200
    assert r.headers["x-switchboard-dropped-params"] == "top_p"
    assert "top_p" not in anthropic_emu.calls[-1].body
    r.get_data()
