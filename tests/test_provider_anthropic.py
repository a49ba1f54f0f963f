"""Anthropic Messages API through the proxy: the conformance table (routing, conversation shape,
stops, reasoning), driven by the official openai SDK against the Flask app, with the Anthropic
emulator checking every request against Anthropic's contract."""
from __future__ import annotations


import openai
import pytest

from tests.emulators.anthropic import AnthropicEmulator
from tests.emulators.server import Fault
from tests.provider_fixtures import (WEATHER, provider_fixtures, sdk_for, sent,
                                     sse_frames)

from tests.anthropic_cases import (HISTORY, USER, scripted)

anthropic_emu, anthropic_env, make_proxy, proxy, http, sdk = provider_fixtures(
    AnthropicEmulator, "anthropic")


# -- plain chat, routing, request shape ----------------------------------------------
def test_claude_2_plain_chat(sdk, anthropic_emu):
    r = sdk.chat.completions.with_raw_response.create(model="claude-2", messages=USER)
    completion = r.parse()
    assert completion.choices[0].message.content == "Hello! You said: ping"
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.id.startswith("msg_emu")
    assert r.headers["x-switchboard-provider"] == "anthropic"
    call = anthropic_emu.calls[-1]
    assert call.path == "/v1/messages"
    assert call.headers["x-api-key"] == anthropic_emu.api_key
    assert call.headers["anthropic-version"] == "2023-06-01"
    assert call.headers["content-type"] == "application/json"
    assert call.body == {"model": "claude-2", "max_tokens": 4096,
                         "messages": [{"role": "user",
                                       "content": [{"type": "text", "text": "ping"}]}]}


@pytest.mark.parametrize("model, upstream, max_tokens", [
    ("claude-3-5-sonnet-20241022", "claude-3-5-sonnet-20241022", 8192),   # registry limit
    ("anthropic/claude-3-7-sonnet-20250219", "claude-3-7-sonnet-20250219", 64000),
    ("claude-unlisted-9", "claude-unlisted-9", 4096),                      # name rule, default
])
def test_routing_and_default_max_tokens(sdk, anthropic_emu, model, upstream, max_tokens):
    sdk.chat.completions.create(model=model, messages=USER)
    assert sent(anthropic_emu)["model"] == upstream
    assert sent(anthropic_emu)["max_tokens"] == max_tokens


def test_client_limits_and_sampling_params(sdk, anthropic_emu):
    sdk.chat.completions.create(model="claude-2", messages=USER, max_tokens=300,
                                temperature=1.6, user="user-42")
    body = sent(anthropic_emu)
    assert body["max_tokens"] == 300
    assert body["temperature"] == 1          # OpenAI's 0-2 clamped to Anthropic's 0-1
    assert body["metadata"] == {"user_id": "user-42"}
    sdk.chat.completions.create(model="claude-2", messages=USER, top_p=0.5)
    assert sent(anthropic_emu)["top_p"] == 0.5
    sdk.chat.completions.create(model="claude-2", messages=USER, max_completion_tokens=77,
                                max_tokens=999, temperature=0.3,
                                extra_body={"top_k": 5, "store": True, "reasoning": "x"})
    assert sent(anthropic_emu)["max_tokens"] == 77
    assert sent(anthropic_emu)["temperature"] == 0.3
    assert sent(anthropic_emu)["top_k"] == 5           # Anthropic's own; other extras not sent
    assert set(sent(anthropic_emu)) == {"model", "messages", "max_tokens", "temperature",
                                        "top_k"}


@pytest.mark.parametrize("sampling, sent_params, dropped", [
    ({"temperature": 0.7, "top_p": 1}, {"temperature": 0.7}, "top_p"),      # UIs send both
    ({"temperature": 0.7, "top_p": 0.9}, {"temperature": 0.7}, "top_p"),    # temperature wins
    ({"top_p": 1}, {}, "top_p"),                                            # asks for nothing
    ({"top_p": 0.9}, {"top_p": 0.9}, None),
])
def test_top_p_only_when_it_asks_for_something_and_temperature_is_absent(
        sdk, anthropic_emu, sampling, sent_params, dropped):
    r = sdk.chat.completions.with_raw_response.create(model="claude-sonnet-4-5",
                                                      messages=USER, **sampling)
    assert r.parse().choices[0].message.content == "Hello! You said: ping"
    assert r.headers.get("x-switchboard-dropped-params") == dropped
    body = sent(anthropic_emu)
    assert {k: body[k] for k in ("temperature", "top_p") if k in body} == sent_params


def test_api_base_with_v1_suffix(make_proxy, anthropic_emu):
    app = make_proxy(env={"ANTHROPIC_API_BASE": anthropic_emu.base_url + "/v1/"})
    assert sdk_for(app).chat.completions.create(model="claude-2", messages=USER).choices
    assert anthropic_emu.calls[-1].path == "/v1/messages"


# -- conversation shape ----------------------------------------------------------------
def test_system_messages_anywhere_are_merged_in_order(sdk, anthropic_emu):
    r = sdk.chat.completions.create(model="claude-2", messages=[
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "first"},
        {"role": "developer", "content": [{"type": "text", "text": "Answer in English."}]},
        {"role": "assistant", "content": "ok"},
        {"role": "system", "content": "No emojis."},
        {"role": "user", "content": "second"}])
    assert r.choices[0].message.content == "Hello! You said: second"
    body = sent(anthropic_emu)
    assert [b["text"] for b in body["system"]] == ["Be brief.", "Answer in English.", "No emojis."]
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]


def test_multi_turn_same_role_merged_and_user_first(sdk, anthropic_emu):
    r = sdk.chat.completions.create(model="claude-2", messages=[
        {"role": "system", "content": "s"},
        {"role": "assistant", "content": "How can I help?"},
        {"role": "user", "content": "one"},
        {"role": "user", "content": [{"type": "text", "text": "two"}]},
        {"role": "assistant", "content": ""},          # empty: left out
        {"role": "user", "content": "three"}])
    assert r.choices[0].message.content == "Hello! You said: one two three"
    assert sent(anthropic_emu)["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "."}]},
        {"role": "assistant", "content": [{"type": "text", "text": "How can I help?"}]},
        {"role": "user", "content": [{"type": "text", "text": word}
                                     for word in ("one", "two", "three")]}]


def test_only_system_message_still_sends_a_user_turn(sdk, anthropic_emu):
    sdk.chat.completions.create(model="claude-2", messages=[{"role": "system", "content": "hi"}])
    assert sent(anthropic_emu)["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "."}]}]


def test_final_assistant_prefill_loses_trailing_space(sdk, anthropic_emu):
    sdk.chat.completions.create(model="claude-2", messages=USER + [
        {"role": "assistant", "content": "Sure, "}])
    assert sent(anthropic_emu)["messages"][-1]["content"] == [{"type": "text", "text": "Sure,"}]


def test_images_data_and_http_urls(sdk, anthropic_emu):
    sdk.chat.completions.create(model="claude-3-5-sonnet-20241022", messages=[{
        "role": "user", "content": [
            {"type": "text", "text": "compare"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg",
                                                "detail": "high"}},
            {"type": "image_url", "image_url": "data:image/jpg;base64,/9j/4AAQ"}]}])
    assert sent(anthropic_emu)["messages"][0]["content"][1:] == [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                     "data": "iVBORw0KGgo="}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
        {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg",
                                     "data": "/9j/4AAQ"}}]


PDF = "data:application/pdf;base64,JVBERi0xLjQK"


def test_file_parts_become_document_blocks(sdk, anthropic_emu):
    r = sdk.chat.completions.create(model="claude-sonnet-4-5", messages=[{
        "role": "user", "content": [
            {"type": "text", "text": "summarise"},
            {"type": "file", "file": {"filename": "a.pdf", "file_data": PDF}}]}])
    assert r.choices[0].message.content == "Hello! You said: summarise"
    assert sent(anthropic_emu)["messages"][0]["content"][1] == {
        "type": "document", "source": {"type": "base64", "media_type": "application/pdf",
                                       "data": "JVBERi0xLjQK"}}


@pytest.mark.parametrize("file", [{"file_id": "file-abc"}, {"file_data": "data:text/csv;base64,YQ=="}])
def test_unusable_file_part_is_a_400(http, anthropic_emu, file):
    r = http.post("/v1/chat/completions", json={"model": "claude-2", "messages": [{
        "role": "user", "content": [{"type": "file", "file": file}]}]})
    assert r.status_code == 400
    assert r.json["error"]["param"] == "messages[0].content[0].file"
    assert not anthropic_emu.calls


def test_images_inside_tool_results_become_image_blocks(sdk, anthropic_emu):
    messages = HISTORY[:2] + [{"role": "tool", "tool_call_id": "call_h1", "content": [
        {"type": "text", "text": "chart"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "file", "file": {"file_data": PDF}}]}]
    r = sdk.chat.completions.create(model="claude-sonnet-4-5", messages=messages, tools=[WEATHER])
    assert r.choices[0].message.content == "The tool returned: chart"
    assert sent(anthropic_emu)["messages"][2]["content"][0]["content"] == [
        {"type": "text", "text": "chart"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                     "data": "iVBORw0KGgo="}},
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf",
                                        "data": "JVBERi0xLjQK"}}]


@pytest.mark.parametrize("url", ["data:image/bmp;base64,Qk0=", "data:image/png,rawbytes",
                                 "ftp://example.com/a.png"])
def test_unusable_image_is_a_400(http, anthropic_emu, url):
    r = http.post("/v1/chat/completions", json={"model": "claude-2", "messages": [{
        "role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}]})
    assert r.status_code == 400
    assert r.json["error"]["param"] == "messages[0].content[0].image_url"
    assert not anthropic_emu.calls


def test_unsupported_content_part_is_a_400(http, anthropic_emu):
    r = http.post("/v1/chat/completions", json={"model": "claude-2", "messages": [{
        "role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "x"}}]}]})
    assert r.status_code == 400
    assert "input_audio" in r.json["error"]["message"]
    assert not anthropic_emu.calls


# -- stop and length ---------------------------------------------------------------------
def test_stop_sequences(sdk, anthropic_emu):
    r = sdk.chat.completions.create(model="claude-2", messages=USER, stop="said")
    assert sent(anthropic_emu)["stop_sequences"] == ["said"]
    assert r.choices[0].message.content == "Hello! You "
    assert r.choices[0].finish_reason == "stop"


def test_whitespace_stop_sequences_are_applied_by_the_proxy(sdk, anthropic_emu):
    """The API refuses "\n" as a stop sequence: it is not sent, and the answer is cut there."""
    messages = [{"role": "user", "content": "line one\nline two"}]
    r = sdk.chat.completions.create(model="claude-2", messages=messages, stop=["\n", "zzz", ""])
    assert sent(anthropic_emu)["stop_sequences"] == ["zzz"]
    assert r.choices[0].message.content == "Hello! You said: line one"
    assert r.choices[0].finish_reason == "stop"
    r = sdk.chat.completions.create(model="claude-2", messages=messages, stop="\n\n")
    assert "stop_sequences" not in sent(anthropic_emu)
    assert r.choices[0].message.content == "Hello! You said: line one\nline two"


def test_local_stop_before_a_tool_call_ends_the_answer(sdk, anthropic_emu):
    anthropic_emu.fail_next(Fault(reply=scripted([
        {"type": "text", "text": "Let me look.\nCalling now.", "citations": None},
        {"type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {},
         "caller": {"type": "direct"}}], "tool_use")))
    choice = sdk.chat.completions.create(model="claude-2", messages=USER, tools=[WEATHER],
                                         stop="\n").choices[0]
    assert (choice.message.content, choice.message.tool_calls, choice.finish_reason) == (
        "Let me look.", None, "stop")


def test_max_tokens_reached_is_length(sdk):
    r = sdk.chat.completions.create(model="claude-2", messages=USER, max_tokens=2)
    assert r.choices[0].message.content == "Hello! You"
    assert r.choices[0].finish_reason == "length"


@pytest.mark.parametrize("stop_reason, finish", [
    ("end_turn", "stop"), ("stop_sequence", "stop"), ("pause_turn", "stop"),
    ("max_tokens", "length"), ("tool_use", "tool_calls"), ("refusal", "content_filter")])
def test_stop_reason_mapping(sdk, anthropic_emu, stop_reason, finish):
    anthropic_emu.fail_next(Fault(reply=scripted(
        [{"type": "text", "text": "x", "citations": None}], stop_reason)))
    assert sdk.chat.completions.create(model="claude-2", messages=USER).choices[
        0].finish_reason == finish


# -- reasoning ---------------------------------------------------------------------------------
THINKER = "claude-sonnet-4-5"


def test_reasoning_effort_becomes_thinking_and_comes_back_as_reasoning_content(http,
                                                                               anthropic_emu):
    r = http.post("/v1/chat/completions", json={"model": THINKER, "messages": USER,
                                                "reasoning_effort": "low"})
    assert r.status_code == 200, r.json
    assert sent(anthropic_emu)["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    message = r.json["choices"][0]["message"]
    assert message["content"] == "Hello! You said: ping"
    assert message["reasoning_content"] == "The user wrote 1 words."
    [block] = message["thinking_blocks"]
    assert block["type"] == "thinking" and block["signature"].startswith("EmuSig")
    # Anthropic's output count includes the thinking; its share is counted from the text
    assert 0 < r.json["usage"]["completion_tokens_details"]["reasoning_tokens"] < \
        r.json["usage"]["completion_tokens"]


@pytest.mark.parametrize("stream", [False, True])
def test_thinking_signatures_go_back_in_the_next_tool_turn(http, anthropic_emu, stream):
    """With thinking on, the API wants the tool loop's assistant turn to start with its signed
    thinking: the answer's thinking_blocks (assembled from the stream too) are sent back."""
    body = {"model": THINKER, "messages": [{"role": "user", "content": "use get_weather"}],
            "tools": [WEATHER], "reasoning_effort": "medium", "stream": stream}
    first = http.post("/v1/chat/completions", json=body)
    if stream:
        deltas = [f["choices"][0]["delta"] for f in sse_frames(first) if f["choices"]]
        assert "".join(d.get("reasoning_content") or "" for d in deltas) == \
            "The user wrote 2 words."
        blocks = [b for d in deltas for b in d.get("thinking_blocks") or ()]
        calls = [c for d in deltas for c in d.get("tool_calls") or ()]
        message = {"role": "assistant", "content": None, "thinking_blocks": blocks,
                   "tool_calls": [{"id": calls[0]["id"], "type": "function",
                                   "function": {"name": calls[0]["function"]["name"],
                                                "arguments": "".join(c["function"]["arguments"]
                                                                     for c in calls)}}]}
    else:
        message = first.json["choices"][0]["message"]
    assert message["thinking_blocks"][0]["signature"].startswith("EmuSig")
    body["messages"] += [message, {"role": "tool", "tool_call_id": message["tool_calls"][0]["id"],
                                   "content": "sunny"}]
    body["stream"] = False
    second = http.post("/v1/chat/completions", json=body)
    assert second.status_code == 200, second.json
    assert second.json["choices"][0]["message"]["content"] == "The tool returned: sunny"
    assert sent(anthropic_emu)["messages"][1]["content"][0] == message["thinking_blocks"][0]


def test_thinking_refuses_sampling_changes_unless_dropped(sdk, anthropic_emu):
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.chat.completions.create(model=THINKER, messages=USER, temperature=0.3,
                                    reasoning_effort="high")
    assert refused.value.body["param"] == "temperature"
    assert not anthropic_emu.calls
    r = sdk.chat.completions.with_raw_response.create(
        model=THINKER, messages=USER, temperature=0.3, reasoning_effort="high",
        extra_body={"drop_params": True})
    assert r.headers["x-switchboard-dropped-params"] == "temperature"
    assert "temperature" not in sent(anthropic_emu)
    assert sent(anthropic_emu)["thinking"]["budget_tokens"] == 4096


def test_thinking_budget_stays_below_max_tokens(http, anthropic_emu):
    r = http.post("/v1/chat/completions", json={"model": THINKER, "messages": USER,
                                                "reasoning_effort": "high", "max_tokens": 3000})
    assert sent(anthropic_emu)["thinking"] == {"type": "enabled", "budget_tokens": 2999}
    r = http.post("/v1/chat/completions", json={"model": THINKER, "messages": USER,
                                                "reasoning_effort": "low", "max_tokens": 500})
    assert r.status_code == 400 and r.json["error"]["param"] == "max_tokens"


def test_explicit_thinking_object_and_adaptive_effort(http, anthropic_emu):
    http.post("/v1/chat/completions", json={"model": THINKER, "messages": USER,
                                            "thinking": {"type": "enabled", "budget_tokens": 2000}})
    assert sent(anthropic_emu)["thinking"] == {"type": "enabled", "budget_tokens": 2000}
    r = http.post("/v1/chat/completions", json={"model": THINKER, "messages": USER,
                                                "thinking": {"type": "adaptive"},
                                                "reasoning_effort": "high"})
    assert r.status_code == 200, r.json
    assert sent(anthropic_emu)["thinking"] == {"type": "adaptive"}
    assert sent(anthropic_emu)["output_config"] == {"effort": "high"}
