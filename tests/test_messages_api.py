"""POST /v1/messages with the official anthropic SDK: pass-through to the Anthropic emulator
(the body and every event unchanged) and translation to the OpenAI and Gemini emulators
(Anthropic's answer shapes and event sequence), errors in Anthropic's shape."""
from __future__ import annotations

import base64

import anthropic
import pytest

from tests.emulators.anthropic import anthropic_error
from tests.emulators.gemini_errors import google_error
from tests.emulators.server import Fault, Reply, sse
from tests.messages_fixtures import (anthropic_emu, gemini_emu, http, app, make_app,  # noqa: F401
                                     messages_env, sdk, sdk_for, sse_events)

TRANSLATED = ["gpt-4o-mini", "gemini-2.5-flash"]
WEATHER = {"name": "get_weather", "description": "Weather in a city",
           "input_schema": {"type": "object", "required": ["city"],
                            "properties": {"city": {"type": "string"}}}}
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 16).decode()
PDF = base64.b64encode(b"%PDF-1.4 tiny").decode()


def ask(sdk, model, text="hello there", **kwargs):
    return sdk.messages.create(model=model, max_tokens=64,
                               messages=[{"role": "user", "content": text}], **kwargs)


# -- pass-through ----------------------------------------------------------------------
def test_pass_through_sends_the_body_as_it_came(sdk, anthropic_emu):
    system = [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}]
    reply = sdk.messages.create(
        model="claude-sonnet-4-5", max_tokens=64, system=system, extra_body={"top_k": 3},
        metadata={"user_id": "u-1"}, messages=[{"role": "user", "content": "hello there"}],
        extra_headers={"anthropic-beta": "context-1m-2025-08-07"})
    call = anthropic_emu.calls[-1]
    assert call.body == {"model": "claude-sonnet-4-5", "max_tokens": 64, "system": system,
                         "top_k": 3, "metadata": {"user_id": "u-1"},
                         "messages": [{"role": "user", "content": "hello there"}]}
    assert call.headers["anthropic-beta"] == "context-1m-2025-08-07"
    assert call.headers["anthropic-version"] == sdk.default_headers["anthropic-version"]
    assert call.headers["x-api-key"] == anthropic_emu.api_key  # the proxy's key, not the client's
    assert reply.content[0].text == "Hello! You said: hello there"
    assert reply.id.startswith("msg_emu") and reply.usage.cache_creation_input_tokens == 2


def test_pass_through_keeps_thinking_signatures_and_new_blocks(sdk, anthropic_emu):
    """What the chat format has no place for survives: thinking with its signature,
    citations, a block type this proxy has never seen, and cache usage."""
    content = [{"type": "thinking", "thinking": "Let me think.", "signature": "sig-abc=="},
               {"type": "text", "text": "Done.", "citations": None}]
    body = {"id": "msg_scripted", "type": "message", "role": "assistant", "content": content,
            "model": "claude-sonnet-4-5", "stop_reason": "end_turn", "stop_sequence": None,
            "stop_details": None, "container": None,
            "usage": {"input_tokens": 5, "output_tokens": 7, "cache_creation_input_tokens": 0,
                      "cache_read_input_tokens": 11, "cache_creation": None,
                      "inference_geo": None, "server_tool_use": None,
                      "service_tier": "standard"}}
    anthropic_emu.fail_next(Fault(reply=Reply(200, body)))
    reply = sdk.messages.create(model="claude-sonnet-4-5", max_tokens=2048,
                                thinking={"type": "enabled", "budget_tokens": 1024},
                                messages=[{"role": "user", "content": "think"}])
    assert reply.model_dump(exclude_none=True)["content"][0] == content[0]
    assert reply.usage.cache_read_input_tokens == 11
    assert anthropic_emu.calls[-1].body["thinking"] == {"type": "enabled", "budget_tokens": 1024}


def test_pass_through_stream_events_unchanged(sdk, anthropic_emu, http):
    with sdk.messages.stream(model="claude-sonnet-4-5", max_tokens=64,
                             messages=[{"role": "user", "content": "hello there"}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Hello! You said: hello there" == final.content[0].text
    assert final.stop_reason == "end_turn" and final.usage.output_tokens == 5
    raw = http.post("/v1/messages?beta=true", json={
        "model": "claude-sonnet-4-5", "max_tokens": 64, "stream": True,
        "messages": [{"role": "user", "content": "hello there"}]})
    events = sse_events(raw.get_data(as_text=True))
    assert [e for e, _ in events][:2] == ["message_start", "ping"]
    assert events[0][1]["message"]["usage"]["input_tokens"] == final.usage.input_tokens
    assert [e for e, _ in events][-2:] == ["message_delta", "message_stop"]


# -- translation -----------------------------------------------------------------------
@pytest.mark.parametrize("model", TRANSLATED)
def test_translated_answer(sdk, model):
    reply = ask(sdk, model, system="Be brief.")
    assert reply.type == "message" and reply.role == "assistant"
    assert reply.content[0].type == "text" and "hello there" in reply.content[0].text
    assert reply.stop_reason == "end_turn" and reply.id.startswith("msg_")
    assert reply.model == model and reply.usage.output_tokens > 0


@pytest.mark.parametrize("model", TRANSLATED)
def test_translated_stream(sdk, http, model):
    with sdk.messages.stream(model=model, max_tokens=64,
                             messages=[{"role": "user", "content": "hello there"}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert "hello there" in text and final.content[0].text == text
    assert final.stop_reason == "end_turn" and final.usage.output_tokens > 0
    raw = http.post("/v1/messages", json={"model": model, "max_tokens": 64, "stream": True,
                                          "messages": [{"role": "user", "content": "hi"}]})
    names = [e for e, _ in sse_events(raw.get_data(as_text=True))]
    assert names[:3] == ["message_start", "ping", "content_block_start"]
    assert names[-4:] == ["content_block_delta", "content_block_stop", "message_delta",
                          "message_stop"]
    start = sse_events(raw.get_data(as_text=True))[0][1]["message"]
    assert start["usage"]["input_tokens"] > 0 and start["content"] == []


@pytest.mark.parametrize("model", [*TRANSLATED, "claude-sonnet-4-5"])
@pytest.mark.parametrize("stream", [False, True])
def test_two_step_tool_loop_keeps_ids(sdk, model, stream):
    messages = [{"role": "user", "content": "What is the weather? use get_weather"}]
    if stream:
        with sdk.messages.stream(model=model, max_tokens=64, tools=[WEATHER],
                                 messages=messages) as s:
            first = s.get_final_message()
    else:
        first = sdk.messages.create(model=model, max_tokens=64, tools=[WEATHER],
                                    messages=messages)
    assert first.stop_reason == "tool_use"
    call = next(b for b in first.content if b.type == "tool_use")
    assert call.name == "get_weather" and call.input == {"city": "Paris"} and call.id
    messages += [{"role": "assistant", "content": [b.model_dump(exclude_none=True)
                                                   for b in first.content]},
                 {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id,
                                               "content": "sunny, 21 C"}]}]
    second = sdk.messages.create(model=model, max_tokens=64, tools=[WEATHER],
                                 messages=messages)
    assert second.stop_reason == "end_turn" and "sunny, 21 C" in second.content[0].text


@pytest.mark.parametrize("model", TRANSLATED)
def test_images_and_documents_translate(sdk, openai_emu, gemini_emu, model):
    reply = sdk.messages.create(model=model, max_tokens=64, messages=[{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf",
                                        "data": PDF}},
        {"type": "text", "text": "describe these"}]}])
    assert "describe these" in reply.content[0].text
    if model.startswith("gpt"):
        parts = openai_emu.calls[-1].body["messages"][-1]["content"]
        assert [p["type"] for p in parts] == ["image_url", "file", "text"]
        assert parts[0]["image_url"]["url"] == f"data:image/png;base64,{PNG}"
    else:
        parts = gemini_emu.calls[-1].body["contents"][-1]["parts"]
        assert [p["inlineData"]["mimeType"] for p in parts[:2]] == ["image/png", "application/pdf"]


@pytest.mark.parametrize("stream", [False, True])
def test_stop_sequences_and_max_tokens(sdk, stream):
    def run(**kwargs):
        if not stream:
            return sdk.messages.create(model="gpt-4o-mini",
                                       messages=[{"role": "user", "content": "one two three"}],
                                       **kwargs)
        with sdk.messages.stream(model="gpt-4o-mini",
                                 messages=[{"role": "user", "content": "one two three"}],
                                 **kwargs) as s:
            return s.get_final_message()
    stopped = run(max_tokens=64, stop_sequences=["two"])
    assert stopped.stop_reason == "stop_sequence" and stopped.stop_sequence == "two"
    assert stopped.content[0].text == "Hello! You said: one "
    cut = run(max_tokens=2)
    assert cut.stop_reason == "max_tokens"


def test_count_tokens(sdk, anthropic_emu):
    native = sdk.messages.count_tokens(model="claude-sonnet-4-5",
                                       messages=[{"role": "user", "content": "one two three"}])
    assert native.input_tokens == 3 and anthropic_emu.calls[-1].path == \
        "/v1/messages/count_tokens"



def test_count_tokens_asks_openai_for_openai_models(sdk, openai_emu):
    """OpenAI's responses/input_tokens gets the translated prompt as input items (system,
    turns, a tool call and its result, tools); the emulator counts one token per word plus
    one per turn."""
    counted = sdk.messages.count_tokens(
        model="gpt-4o-mini", system="Be brief.", tools=[WEATHER],
        messages=[{"role": "user", "content": "weather in Paris"},
                  {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1",
                                                     "name": "get_weather",
                                                     "input": {"city": "Paris"}}]},
                  {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                                                "content": "sunny"}]}])
    call = openai_emu.calls[-1]
    assert call.path == "/v1/responses/input_tokens"
    assert [item.get("type", item.get("role")) for item in call.body["input"]] == [
        "system", "user", "function_call", "function_call_output"]
    assert call.body["tools"][0]["name"] == "get_weather"
    assert counted.input_tokens == (2 + 3 + 0 + 1) + 4


def test_count_tokens_is_local_where_the_server_has_no_count(make_app, write_config,
                                                            openai_emu):
    """An OpenAI-compatible server (a deployment with its own api_base) is not asked."""
    config = write_config(f"""model_list:
  - model_name: local-llm
    params: {{model: openai/served-model, api_base: "{openai_emu.base_url}/v1",
             api_key: {openai_emu.api_key}}}
""")
    counted = sdk_for(make_app(config=config)).messages.count_tokens(
        model="local-llm", system="Be brief.",
        messages=[{"role": "user", "content": "one two three"}])
    assert 6 < counted.input_tokens < 30 and not openai_emu.calls


def test_count_tokens_asks_gemini_for_gemini_models(sdk, gemini_emu):
    """Gemini's countTokens gets the whole translated prompt (system, turns, tools); the
    emulator counts one token per word plus one per turn."""
    counted = sdk.messages.count_tokens(
        model="gemini-2.5-flash", system="Be brief.", tools=[WEATHER],
        messages=[{"role": "user", "content": "one two three"},
                  {"role": "assistant", "content": "four"}, {"role": "user", "content": "five"}])
    call = gemini_emu.calls[-1]
    assert call.path == "/v1beta/models/gemini-2.5-flash:countTokens"
    prompt = call.body["generateContentRequest"]
    assert prompt["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert prompt["tools"][0]["functionDeclarations"][0]["name"] == "get_weather"
    assert counted.input_tokens == (2 + 3 + 1 + 1) + 4


def test_count_tokens_falls_back_to_a_local_count_when_gemini_fails(sdk, gemini_emu):
    words = "antidisestablishmentarianism supercalifragilisticexpialidocious"
    gemini_emu.fail_next(Fault(reply=google_error(503, "UNAVAILABLE", "The model is overloaded.")))
    counted = sdk.messages.count_tokens(model="gemini-2.5-flash",
                                        messages=[{"role": "user", "content": words}])
    assert gemini_emu.calls[-1].path.endswith(":countTokens")
    assert counted.input_tokens > 2 + 1   # tiktoken's count, not the emulator's word count


# -- errors ----------------------------------------------------------------------------
@pytest.mark.parametrize("body, message", [
    ({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}, "max_tokens"),
    ({"model": "gpt-4o-mini", "max_tokens": 5,
      "messages": [{"role": "user", "content": [{"type": "video", "url": "x"}]}]}, "video"),
    ({"model": "gpt-4o-mini", "max_tokens": 5,
      "messages": [{"role": "tool", "content": "hi"}]}, "role"),
    ({"model": "gpt-4o-mini", "max_tokens": "5",
      "messages": [{"role": "user", "content": "hi"}]}, "max_tokens"),
    ([1, 2], "object"),
    ({"model": "gpt-4o-mini", "max_tokens": 5, "temperature": 3,  # the plain fast path
      "messages": [{"role": "user", "content": "hi"}]}, "temperature"),
    ({"model": "", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}, "model"),
])
def test_bad_input_is_an_anthropic_400(http, body, message):
    r = http.post("/v1/messages", json=body)
    assert r.status_code == 400, r.json
    assert r.json["type"] == "error" and r.json["error"]["type"] == "invalid_request_error"
    assert message in r.json["error"]["message"]


def test_non_json_huge_and_unknown(http, make_app):
    r = http.post("/v1/messages", data="{nope", content_type="application/json")
    assert r.status_code == 400 and r.json["error"]["type"] == "invalid_request_error"
    small = make_app(env={"SWITCHBOARD_MAX_REQUEST_BYTES": "1000"}).test_client()
    r = small.post("/v1/messages", json={"model": "gpt-4o-mini", "max_tokens": 5,
                                         "messages": [{"role": "user", "content": "x" * 5000}]})
    assert r.status_code == 413 and r.json["error"]["type"] == "request_too_large"
    r = http.post("/v1/messages", json={"model": "no-such-model", "max_tokens": 5,
                                        "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 404 and r.json["error"]["type"] == "not_found_error"


def test_upstream_errors_keep_anthropic_types(sdk, anthropic_emu):
    anthropic_emu.fail_next(Fault(reply=anthropic_error(529, "overloaded_error", "Overloaded"),
                                  times=10))
    with pytest.raises(anthropic.APIStatusError) as info:
        ask(sdk, "claude-sonnet-4-5", extra_body={"num_retries": 0})
    assert info.value.status_code == 529 and info.value.body["error"]["type"] == \
        "overloaded_error"
    anthropic_emu.reset_state()
    anthropic_emu.fail_next(Fault(reply=anthropic_error(
        429, "rate_limit_error", "slow down", {"retry-after": "7"}), times=10))
    with pytest.raises(anthropic.RateLimitError) as info:
        ask(sdk, "claude-sonnet-4-5", extra_body={"num_retries": 0})
    assert info.value.response.headers["retry-after"] == "7"
    assert info.value.body["error"]["type"] == "rate_limit_error"


@pytest.mark.parametrize("model, fault", [
    ("claude-sonnet-4-5", anthropic_error(500, "api_error", "Internal server error")),
    ("gpt-4o-mini", Reply(502, {"error": {"message": "bad gateway", "type": "server_error",
                                          "param": None, "code": None}})),
    ("gemini-2.5-flash", google_error(500, "INTERNAL", "An internal error has occurred."))])
def test_upstream_faults_are_anthropics_500_api_error(sdk, anthropic_emu, openai_emu, gemini_emu,
                                                      model, fault):
    """Anthropic's status for api_error is 500 (the chat path's 502 is not one it uses)."""
    emulator = {"claude": anthropic_emu, "gpt": openai_emu, "gemini": gemini_emu}[
        model.split("-")[0]]
    emulator.fail_next(Fault(reply=fault, times=10))
    with pytest.raises(anthropic.InternalServerError) as info:
        ask(sdk, model, extra_body={"num_retries": 0})
    assert info.value.status_code == 500 and info.value.body["error"]["type"] == "api_error"


def test_mid_stream_failure_is_an_error_event(http, anthropic_emu):
    anthropic_emu.fail_mid_stream(after_events=3)
    r = http.post("/v1/messages", json={"model": "claude-sonnet-4-5", "max_tokens": 64,
                                        "stream": True,
                                        "messages": [{"role": "user", "content": "hello"}]})
    events = sse_events(r.get_data(as_text=True))
    assert events[-1][0] == "error" and events[-1][1]["error"]["type"] == "overloaded_error"
    assert "message_stop" not in [e for e, _ in events]


def test_fallback_from_claude_to_gpt_in_one_request(sdk, anthropic_emu):
    anthropic_emu.fail_next(Fault(reply=anthropic_error(529, "overloaded_error", "busy"),
                                  times=10))
    raw = sdk.messages.with_raw_response.create(
        model="claude-sonnet-4-5", max_tokens=64,
        messages=[{"role": "user", "content": "hello there"}],
        extra_body={"fallbacks": ["gpt-4o-mini"], "num_retries": 0})
    reply = raw.parse()
    assert raw.headers["x-switchboard-provider"] == "openai"
    assert raw.headers["x-switchboard-attempted-fallbacks"] == "1"
    assert reply.content[0].text == "Hello! You said: hello there"


def chunk(delta: dict, finish: str | None = None) -> bytes:
    return sse({"id": "chatcmpl-r1", "object": "chat.completion.chunk", "created": 1,
                "model": "gpt-4o-mini",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})


def test_translated_reasoning_is_a_thinking_block(http, openai_emu):
    """A model's reasoning (reasoning_content) comes back as a thinking block, plain and as
    thinking_delta + signature_delta before the text block, in Anthropic's order."""
    openai_emu.fail_next(Fault(reply=Reply(200, {
        "id": "chatcmpl-r1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {
            "role": "assistant", "content": "42", "reasoning_content": "6 times 7"}}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9}})))
    body = {"model": "gpt-4o-mini", "max_tokens": 64,
            "messages": [{"role": "user", "content": "6*7?"}]}
    plain = http.post("/v1/messages", json=body).json
    assert [b["type"] for b in plain["content"]] == ["thinking", "text"]
    assert plain["content"][0]["thinking"] == "6 times 7" and plain["content"][1]["text"] == "42"

    openai_emu.fail_next(Fault(reply=Reply(200, events=[
        chunk({"role": "assistant", "reasoning_content": "6 times"}),
        chunk({"reasoning_content": " 7"}), chunk({"content": "42"}), chunk({}, "stop"),
        sse({"id": "chatcmpl-r1", "object": "chat.completion.chunk", "created": 1,
             "model": "gpt-4o-mini", "choices": [],
             "usage": {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9}}),
        b"data: [DONE]\n\n"], content_type="text/event-stream")))
    events = sse_events(http.post("/v1/messages", json={**body, "stream": True})
                        .get_data(as_text=True))
    kinds = [(e, d.get("delta", {}).get("type") or d.get("content_block", {}).get("type"))
             for e, d in events]
    assert kinds == [("message_start", None), ("ping", None),
                     ("content_block_start", "thinking"),
                     ("content_block_delta", "thinking_delta"),
                     ("content_block_delta", "thinking_delta"),
                     ("content_block_delta", "signature_delta"), ("content_block_stop", None),
                     ("content_block_start", "text"), ("content_block_delta", "text_delta"),
                     ("content_block_stop", None), ("message_delta", None),
                     ("message_stop", None)]
    assert events[-2][1]["usage"]["output_tokens"] == 4


def test_server_tools_pass_to_claude_and_are_refused_or_dropped_elsewhere(http, anthropic_emu,
                                                                          openai_emu):
    search = {"type": "web_search_20250305", "name": "web_search", "max_uses": 1}
    body = {"max_tokens": 64, "messages": [{"role": "user", "content": "hello there"}],
            "tools": [search, WEATHER]}
    r = http.post("/v1/messages", json={**body, "model": "claude-sonnet-4-5"})
    assert r.status_code == 200 and anthropic_emu.calls[-1].body["tools"][0] == search
    r = http.post("/v1/messages", json={**body, "model": "gpt-4o-mini"})
    assert r.status_code == 400 and "web_search_20250305" in r.json["error"]["message"]
    r = http.post("/v1/messages", json={**body, "model": "gpt-4o-mini", "drop_params": True})
    assert r.status_code == 200
    assert [t["function"]["name"] for t in openai_emu.calls[-1].body["tools"]] == ["get_weather"]
