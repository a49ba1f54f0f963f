"""Stored responses through /v1/responses with the official openai SDK: previous_response_id
continued on another provider or after a fallback, item_reference resolved from stored
items, retrieve / delete / input_items, store false, and an id OpenAI itself issued."""
from __future__ import annotations

import json

import openai
import pytest

from tests.emulators.server import Fault
from tests.provider_fixtures import sdk_for
from tests.responses_fixtures import (CLAUDE, GEMINI, MODELS, OPENAI, WEATHER,  # noqa: F401
                                      anthropic_emu, env, gemini_emu, proxy, sdk)


def test_previous_response_continues_on_another_provider(sdk, anthropic_emu, gemini_emu):
    first = sdk.responses.create(model=CLAUDE, input="my name is Ada", instructions="Be kind.")
    second = sdk.responses.create(model=GEMINI, input="what is my name",
                                  previous_response_id=first.id)
    assert second.output_text == "Hello! You said: what is my name"
    contents = gemini_emu.calls[-1].body["contents"]
    assert [c["role"] for c in contents] == ["user", "model", "user"]
    assert contents[1]["parts"][0]["text"] == "Hello! You said: my name is Ada"
    # Instructions are not carried over (as OpenAI does).
    assert "Be kind." not in json.dumps(gemini_emu.calls[-1].body)


def test_fallback_from_openai_to_claude_then_continue(proxy, openai_emu, anthropic_emu):
    sdk = sdk_for(proxy(f"fallbacks: {{{OPENAI}: [{CLAUDE}]}}\nnum_retries: 0\n"))
    openai_emu.fail_next(Fault(reply=None, reset=True, times=1))
    raw = sdk.responses.with_raw_response.create(model=OPENAI, input="hello")
    first = raw.parse()
    assert raw.headers["x-switchboard-provider"] == "anthropic"
    assert raw.headers["x-switchboard-attempted-fallbacks"] == "1"
    assert first.id.startswith("resp_sb_") and first.output_text == "Hello! You said: hello"
    second = sdk.responses.create(model=OPENAI, input="and again", previous_response_id=first.id)
    sent = openai_emu.calls[-1].body  # OpenAI gets the whole conversation as items
    assert "previous_response_id" not in sent
    assert [item.get("role") for item in sent["input"]] == ["user", "assistant", "user"]
    assert second.previous_response_id == first.id


@MODELS
def test_item_reference_resolves_stored_items(model, sdk, openai_emu):
    """Items of a stored response (an output item, a listed input item) referenced by id
    from any provider; the referenced items reach the upstream, never the reference."""
    first = sdk.responses.create(model=CLAUDE, input="call get_weather", tools=[WEATHER])
    [call] = [item for item in first.output if item.type == "function_call"]
    second = sdk.responses.create(model=model, tools=[WEATHER], input=[
        {"type": "item_reference", "id": call.id},
        {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}])
    assert second.output_text == "The tool returned: sunny"
    [asked] = sdk.responses.input_items.list(first.id).data
    third = sdk.responses.create(model=model, input=[{"type": "item_reference", "id": asked.id}])
    assert third.output_text == "Hello! You said: call get_weather"
    if model == OPENAI:
        sent = openai_emu.calls[-1].body
        assert sent["input"][0]["content"] == "call get_weather"
        assert "item_reference" not in json.dumps(sent)


@pytest.mark.parametrize("model", [CLAUDE, GEMINI])
def test_item_reference_to_an_unknown_item_is_400(model, sdk, anthropic_emu, gemini_emu):
    calls = len(anthropic_emu.calls) + len(gemini_emu.calls)
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.responses.create(model=model, input=[
            {"role": "user", "content": "hi"}, {"type": "item_reference", "id": "msg_nowhere"}])
    error = refused.value.body
    assert error["param"] == "input[1].id" and "msg_nowhere" in error["message"]
    assert len(anthropic_emu.calls) + len(gemini_emu.calls) == calls


@MODELS
def test_retrieve_delete_and_input_items(model, sdk):
    first = sdk.responses.create(model=model, input="remember this")
    second = sdk.responses.create(model=model, input="and this", previous_response_id=first.id)
    assert sdk.responses.retrieve(second.id).output_text == second.output_text
    items = sdk.responses.input_items.list(second.id, order="asc")
    texts = [json.dumps(item.content[0].model_dump()) if isinstance(item.content, list)
             else item.content for item in items.data]
    assert len(items.data) == 3 and "remember this" in texts[0] and "and this" in texts[2]
    assert len({item.id for item in items.data}) == 3
    newest = sdk.responses.input_items.list(second.id, limit=1)
    assert newest.has_more and newest.data[0].id == items.data[-1].id
    sdk.responses.delete(second.id)
    with pytest.raises(openai.NotFoundError):
        sdk.responses.retrieve(second.id)
    with pytest.raises(openai.NotFoundError):
        sdk.responses.delete(second.id)


def test_store_false_keeps_nothing(sdk):
    response = sdk.responses.create(model=CLAUDE, input="secret", store=False)
    with pytest.raises(openai.NotFoundError):
        sdk.responses.retrieve(response.id)


def test_openai_issued_previous_id_passes_through(proxy, openai_emu):
    client = proxy().test_client()
    direct = openai.OpenAI(base_url=openai_emu.base_url + "/v1", api_key=openai_emu.api_key)
    # A response made at OpenAI itself, unknown to the proxy: its id goes to OpenAI as it is.
    upstream_id = direct.responses.create(model=OPENAI, input="hi").id
    second = client.post("/v1/responses", json={"model": OPENAI, "input": "again",
                                                "previous_response_id": upstream_id})
    assert second.status_code == 200
    assert openai_emu.calls[-1].body["previous_response_id"] == upstream_id
    refused = client.post("/v1/responses", json={"model": CLAUDE, "input": "again",
                                                 "previous_response_id": upstream_id})
    assert refused.status_code == 400
    assert refused.json["error"]["code"] == "previous_response_not_found"
