"""POST /v1/responses with the official openai SDK: passed through to OpenAI (the
emulator's /v1/responses, held to the official contract) and translated for Anthropic and
Gemini; inputs, formats, streams, where each provider gets the request, the ledger and the
cache, and the clear 4xx for bad input. Tools are in test_responses_tools.py, stored
responses and conversations in test_responses_conversation.py."""
from __future__ import annotations

import json

import pytest

from app.usage.ledger import ledger_of
from app.usage.spend import LogFilter, Spend, Window
from tests.provider_fixtures import sdk_for
from tests.responses_fixtures import (CLAUDE, GEMINI, MODELS, OPENAI, PIXEL, anthropic_emu,  # noqa: F401
                                      emulator_of, env, gemini_emu, proxy, sdk)


@MODELS
def test_string_input_with_instructions(model, sdk, openai_emu, anthropic_emu, gemini_emu):
    raw = sdk.responses.with_raw_response.create(model=model, input="hi there",
                                                 instructions="Be brief.")
    response = raw.parse()
    assert response.object == "response" and response.status == "completed"
    assert response.output_text == "Hello! You said: hi there"
    assert response.instructions == "Be brief."
    assert response.usage.input_tokens > 0 and response.usage.output_tokens == 5
    assert response.usage.total_tokens == response.usage.input_tokens + 5
    assert raw.headers["x-switchboard-model"].endswith(model)
    upstream = emulator_of(model, openai_emu, anthropic_emu, gemini_emu).calls[-1]
    if model == OPENAI:  # pass-through: the client's body as it came, OpenAI's own id
        assert upstream.path == "/v1/responses"
        assert upstream.body == {"model": model, "input": "hi there", "instructions": "Be brief."}
        assert response.id.startswith("resp_emu")
    else:
        assert response.id.startswith("resp_sb_")
        assert "Be brief." in json.dumps(upstream.body)


@MODELS
def test_items_with_image_and_roles(model, sdk, openai_emu, anthropic_emu, gemini_emu):
    items = [{"role": "developer", "content": "Answer plainly."},
             {"type": "message", "role": "user", "content": [
                 {"type": "input_text", "text": "what is this"},
                 {"type": "input_image", "image_url": PIXEL, "detail": "auto"}]}]
    response = sdk.responses.create(model=model, input=items)
    assert response.output_text == "Hello! You said: what is this"
    sent = emulator_of(model, openai_emu, anthropic_emu, gemini_emu).calls[-1].body
    if model == OPENAI:
        assert sent["input"] == items
    elif model == CLAUDE:
        blocks = sent["messages"][0]["content"]
        assert [b["type"] for b in blocks] == ["text", "image"]
        assert "Answer plainly." in json.dumps(sent["system"])
    else:
        parts = sent["contents"][0]["parts"]
        assert parts[0]["text"] == "what is this" and parts[1]["inlineData"]["mimeType"] == "image/png"


@MODELS
def test_json_schema_format(model, sdk, openai_emu, anthropic_emu, gemini_emu):
    schema = {"type": "object", "properties": {"answer": {"type": "string"}},
              "required": ["answer"], "additionalProperties": False}
    text = {"format": {"type": "json_schema", "name": "reply", "schema": schema, "strict": True}}
    response = sdk.responses.create(model=model, input="hi", text=text)
    assert response.text.format.type == "json_schema"
    sent = emulator_of(model, openai_emu, anthropic_emu, gemini_emu).calls[-1].body
    if model == OPENAI:
        assert sent["text"] == text
    elif model == GEMINI:
        assert sent["generationConfig"]["responseMimeType"] == "application/json"
    else:
        assert "answer" in json.dumps(sent)


@MODELS
def test_stream_events_numbered_with_consistent_ids(model, sdk):
    with sdk.responses.stream(model=model, input="hello stream") as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == \
        "Hello! You said: hello stream"
    [item] = final.output
    named = {e.item_id for e in events if hasattr(e, "item_id")}
    named |= {e.item.id for e in events if e.type.startswith("response.output_item")}
    assert named == {item.id}
    assert final.output_text == "Hello! You said: hello stream" and final.usage.output_tokens == 5


def test_reasoning_summary_alone_is_accepted_by_a_model_that_does_not_reason(sdk):
    response = sdk.responses.create(model=CLAUDE, input="hi", reasoning={"summary": "auto"})
    assert response.status == "completed" and response.reasoning.summary == "auto"


def test_max_output_tokens_reached_is_incomplete(sdk):
    for model in (OPENAI, CLAUDE):
        response = sdk.responses.create(model=model, input="word " * 30,
                                        max_output_tokens=16)  # OpenAI's least
        assert response.status == "incomplete", model
        assert response.incomplete_details.reason == "max_output_tokens"
        assert response.output[-1].status == "incomplete"
        events = list(sdk.responses.create(model=model, input="word " * 30, stream=True,
                                           max_output_tokens=16))
        assert events[-1].type == "response.incomplete", model
        assert events[-2].type == "response.output_item.done"
        assert events[-2].item.status == events[-1].response.output[-1].status == "incomplete"


def test_content_filter_is_incomplete_and_reasoning_tokens_counted(sdk, gemini_emu):
    gemini_emu.next_answer("safety")
    filtered = sdk.responses.create(model=GEMINI, input="something unsafe")
    assert filtered.status == "incomplete"
    assert filtered.incomplete_details.reason == "content_filter"
    gemini_emu.thinking_tokens = 7
    thought = sdk.responses.create(model=GEMINI, input="think first")
    assert thought.usage.output_tokens_details.reasoning_tokens == 7


def test_mid_stream_failure_ends_with_response_failed(sdk, gemini_emu):
    gemini_emu.next_answer("mid_stream_error")
    events = list(sdk.responses.create(model=GEMINI, input="hello", stream=True))
    assert events[-1].type == "response.failed"
    assert events[-1].response.status == "failed" and events[-1].response.error.message
    assert [e.sequence_number for e in events] == list(range(len(events)))


def test_azure_gets_the_request_on_its_v1_responses_path(sdk, azure_emu):
    response = sdk.responses.create(model="azure/my-gpt4o", input="hi azure")
    assert response.output_text == "Hello! You said: hi azure"
    call = azure_emu.calls[-1]
    assert call.path == "/openai/v1/responses" and call.headers["api-key"] == azure_emu.api_key
    assert call.body == {"model": "my-gpt4o", "input": "hi azure"}


def test_compatible_server_declaring_the_responses_api(proxy, openai_emu):
    config = ("model_list:\n"
              "  - model_name: local-responses\n"
              f"    params: {{model: openai/served-model, api_base: '{openai_emu.base_url}/v1',"
              " api: responses}\n"
              "  - model_name: local-chat\n"
              f"    params: {{model: openai/served-model, api_base: '{openai_emu.base_url}/v1'}}\n")
    sdk = sdk_for(proxy(config))
    for model, path in (("local-responses", "/v1/responses"),
                        ("local-chat", "/v1/chat/completions")):
        assert sdk.responses.create(model=model, input="hi").output_text == \
            "Hello! You said: hi"
        assert openai_emu.calls[-1].path == path, model


def test_paths_without_v1(proxy):
    client = proxy().test_client()
    created = client.post("/responses", json={"model": CLAUDE, "input": "hi"})
    assert created.status_code == 200 and created.json["object"] == "response"
    stored = client.get(f"/responses/{created.json['id']}")
    assert stored.json["output"] == created.json["output"]
    listed = client.get(f"/responses/{created.json['id']}/input_items")
    assert listed.json["object"] == "list" and listed.json["data"][0]["content"] == "hi"
    assert client.delete(f"/responses/{created.json['id']}").json["deleted"] is True


def test_ledger_rows_name_the_responses_api(proxy):
    app = proxy()
    sdk = sdk_for(app)
    sdk.responses.create(model=OPENAI, input="one")
    for _ in sdk.responses.create(model=CLAUDE, input="two", stream=True):
        pass
    ledger = ledger_of(app.extensions["switchboard"])
    assert ledger.flush(10)
    rows, _ = Spend(ledger.database).logs(Window(), LogFilter(api="responses"), 10)
    assert sorted(r["provider"] for r in rows) == ["anthropic", "openai"]
    assert all(r["prompt_tokens"] > 0 for r in rows)


def test_cache_serves_a_repeated_request_as_a_new_response(proxy, anthropic_emu):
    client = proxy("cache: {enabled: true, mode: exact}\n").test_client()
    body = {"model": CLAUDE, "input": "cache me", "temperature": 0}
    first = client.post("/v1/responses", json=body)
    second = client.post("/v1/responses", json=body)
    assert first.headers["x-switchboard-cache"] == "miss"
    assert second.headers["x-switchboard-cache"] == "hit" and len(anthropic_emu.calls) == 1
    assert second.json["id"] != first.json["id"]
    assert second.json["output"][0]["content"] == first.json["output"][0]["content"]
    other = client.post("/v1/responses", json={**body, "instructions": "Be brief."})
    assert other.headers["x-switchboard-cache"] == "miss"


# -- bad input: a clear 4xx, never a 500 --------------------------------------------------
BAD = {
    "unknown item type": ({"input": [{"type": "telepathy", "thought": "x"}]}, "input[0].type"),
    "unmatched call_id": ({"input": [{"type": "function_call_output", "call_id": "call_nope",
                                      "output": "x"}]}, "input[0].call_id"),
    "unknown previous response": ({"input": "x", "previous_response_id": "resp_sb_nothing"},
                                  "previous_response_id"),
    "message without role": ({"input": [{"type": "message", "content": "x"}]}, "input[0].role"),
    "input not a list": ({"input": 7}, "input"),
    "bad text format": ({"input": "x", "text": {"format": {"type": "yaml"}}}, "text.format.type"),
    "missing model": ({"input": "x", "model": None}, "model"),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
@pytest.mark.parametrize("model", [OPENAI, CLAUDE])
def test_bad_input_is_a_clear_400(case, model, proxy):
    body, param = BAD[case]
    response = proxy().test_client().post("/v1/responses", json={"model": model, **body})
    assert response.status_code == 400, response.json
    error = response.json["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error"
