"""POST /v1/responses with tools, through the official openai SDK: function-call loops
(plain, streamed, namespaced, with Claude's signed thinking carried in encrypted_content),
built-in tools passed to OpenAI, web_search mapped to each provider's own search, and the
clear 400 where a provider has no such tool."""
from __future__ import annotations

import json

import pytest

from tests.responses_fixtures import (CLAUDE, GEMINI, MODELS, OPENAI, WEATHER,  # noqa: F401
                                      anthropic_emu, env, gemini_emu, proxy, sdk)


@MODELS
def test_function_call_loop_keeps_call_ids(model, sdk):
    first = sdk.responses.create(model=model, input="call get_weather", tools=[WEATHER])
    [call] = [item for item in first.output if item.type == "function_call"]
    assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "Paris"}
    assert first.status == "completed"
    # The client sends the whole conversation back itself (store false, as Codex does).
    items = [{"role": "user", "content": "call get_weather"},
             {"type": "function_call", "call_id": call.call_id, "name": call.name,
              "arguments": call.arguments},
             {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}]
    second = sdk.responses.create(model=model, input=items, tools=[WEATHER], store=False)
    assert second.output_text == "The tool returned: sunny"
    # And through previous_response_id: only the output goes in.
    third = sdk.responses.create(model=model, previous_response_id=first.id, tools=[WEATHER],
                                 input=[{"type": "function_call_output",
                                         "call_id": call.call_id, "output": "rainy"}])
    assert third.output_text == "The tool returned: rainy"
    assert third.previous_response_id == first.id


@MODELS
def test_streamed_function_call(model, sdk):
    with sdk.responses.stream(model=model, input="call get_weather", tools=[WEATHER]) as stream:
        events = list(stream)
        final = stream.get_final_response()
    [call] = final.output
    arguments = "".join(e.delta for e in events
                        if e.type == "response.function_call_arguments.delta")
    done = next(e for e in events if e.type == "response.function_call_arguments.done")
    assert json.loads(arguments) == json.loads(done.arguments) == {"city": "Paris"}
    assert done.item_id == call.id and call.call_id and call.name == "get_weather"


def test_namespace_tools_are_flattened_and_mapped_back(sdk, anthropic_emu):
    namespace = {"type": "namespace", "name": "crm", "description": "Customer records",
                 "tools": [{"type": "function", "name": "lookup", "parameters": {
                     "type": "object", "properties": {"id": {"type": "string"}},
                     "required": ["id"]}}]}
    response = sdk.responses.create(model=CLAUDE, input="use crm__lookup", tools=[namespace])
    assert [t["name"] for t in anthropic_emu.calls[-1].body["tools"]] == ["crm__lookup"]
    [call] = response.output
    assert (call.namespace, call.name) == ("crm", "lookup")
    follow = sdk.responses.create(model=CLAUDE, tools=[namespace], input=[
        {"role": "user", "content": "use crm__lookup"},
        {"type": "function_call", "call_id": call.call_id, "namespace": "crm", "name": "lookup",
         "arguments": call.arguments},
        {"type": "function_call_output", "call_id": call.call_id, "output": "found"}])
    assert follow.output_text == "The tool returned: found"
    turn = anthropic_emu.calls[-1].body["messages"][1]["content"][0]
    assert turn["type"] == "tool_use" and turn["name"] == "crm__lookup"


def test_builtin_tool_for_a_translated_model(proxy, anthropic_emu):
    client = proxy().test_client()
    body = {"model": CLAUDE, "input": "x", "tools": [{"type": "code_interpreter",
                                                      "container": {"type": "auto"}}]}
    refused = client.post("/v1/responses", json=body)
    assert refused.status_code == 400 and "code_interpreter" in refused.json["error"]["message"]
    dropped = client.post("/v1/responses", json={**body, "drop_params": True})
    assert dropped.status_code == 200
    assert dropped.headers["x-switchboard-dropped-params"] == "tools.code_interpreter"
    assert "tools" not in anthropic_emu.calls[-1].body


def test_builtin_tool_passes_through_to_openai(proxy, openai_emu):
    tools = [{"type": "web_search"}]
    response = proxy().test_client().post("/v1/responses", json={
        "model": OPENAI, "input": "x", "tools": tools})
    assert response.status_code == 200
    assert openai_emu.calls[-1].body["tools"] == tools


@pytest.mark.parametrize("model", [CLAUDE, GEMINI])
def test_web_search_becomes_the_providers_own_search(model, sdk, anthropic_emu, gemini_emu):
    tool = {"type": "web_search", "user_location": {"type": "approximate", "city": "Paris"}}
    response = sdk.responses.create(model=model, input="news today", tools=[tool])
    assert response.status == "completed"
    if model == CLAUDE:
        assert anthropic_emu.calls[-1].body["tools"] == [{
            "type": "web_search_20250305", "name": "web_search",
            "user_location": {"type": "approximate", "city": "Paris"}}]
    else:
        assert gemini_emu.calls[-1].body["tools"] == [{"googleSearch": {}}]


def test_web_search_elsewhere_is_a_400_naming_it(proxy, write_config):
    client = proxy("model_list:\n  - model_name: command-alias\n"
                   "    params: {model: cohere/command-r}\n",
                   COHERE_API_KEY="co-test-key").test_client()
    response = client.post("/v1/responses", json={"model": "command-alias", "input": "x",
                                                  "tools": [{"type": "web_search"}]})
    assert response.status_code == 400
    assert "web_search_options" in response.json["error"]["message"]


@pytest.mark.parametrize("stream", [False, True])
def test_thinking_signatures_ride_in_encrypted_content_through_a_tool_loop(stream, sdk,
                                                                        anthropic_emu):
    settings = {"model": CLAUDE, "tools": [WEATHER], "store": False,
                "reasoning": {"effort": "low", "summary": "auto"},
                "include": ["reasoning.encrypted_content"]}
    ask = {"role": "user", "content": "call get_weather"}
    if stream:
        with sdk.responses.stream(input=[ask], **settings) as events:
            kinds = [event.type for event in events]
            first = events.get_final_response()
        assert "response.reasoning_summary_text.delta" in kinds
    else:
        first = sdk.responses.create(input=[ask], **settings)
    reasoning, call = first.output
    assert reasoning.type == "reasoning" and reasoning.summary[0].text
    assert reasoning.encrypted_content and call.type == "function_call"
    assert anthropic_emu.calls[-1].body["thinking"]["type"] in ("enabled", "adaptive")
    # As Codex does: every item sent back, the reasoning item included; the emulator refuses
    # a thinking tool loop whose assistant turn does not start with its signed thinking.
    items = [ask, reasoning.model_dump(exclude_none=True), call.model_dump(exclude_none=True),
             {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}]
    second = sdk.responses.create(input=items, **settings)
    assert second.output_text == "The tool returned: sunny"
    turn = anthropic_emu.calls[-1].body["messages"][1]["content"]
    assert [block["type"] for block in turn] == ["thinking", "tool_use"]
