"""POST /v1/responses with the official openai SDK: passed through to OpenAI (the
emulator's /v1/responses, held to the official contract) and translated for Anthropic and
Gemini; stored responses (retrieve, delete, input_items, previous_response_id across
providers), streams, and the clear 4xx for bad input."""
from __future__ import annotations

import json

import openai
import pytest

from app.usage.ledger import ledger_of
from app.usage.spend import LogFilter, Spend, Window
from tests.emulators.anthropic import AnthropicEmulator
from tests.emulators.gemini import GeminiEmulator
from tests.emulators.server import Fault
from tests.provider_fixtures import emulator_fixture, sdk_for

anthropic_emu = emulator_fixture(AnthropicEmulator, "anthropic_emu")
gemini_emu = emulator_fixture(GeminiEmulator, "gemini_emu")

OPENAI, CLAUDE, GEMINI = "gpt-4o-mini", "claude-sonnet-4-5", "gemini-2.5-flash"
MODELS = pytest.mark.parametrize("model", [OPENAI, CLAUDE, GEMINI])
WEATHER = {"type": "function", "name": "get_weather", "description": "Weather in a city",
           "strict": True,
           "parameters": {"type": "object", "required": ["city"], "additionalProperties": False,
                          "properties": {"city": {"type": "string"}}}}
PIXEL = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
         "+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")


@pytest.fixture
def env(provider_env, anthropic_emu, gemini_emu):
    return {**provider_env, **anthropic_emu.proxy_env(), **gemini_emu.proxy_env()}


@pytest.fixture
def proxy(env, write_config):
    from tests.provider_fixtures import proxy_app
    made = []

    def make(config: str | None = None, **extra):
        app = proxy_app({**env, **extra}, write_config(config) if config else None)
        made.append(app.extensions["switchboard"])
        return app
    yield make
    for service in made:
        service.close(5.0)


@pytest.fixture
def sdk(proxy) -> openai.OpenAI:
    return sdk_for(proxy())


def emulator_of(model, openai_emu, anthropic_emu, gemini_emu):
    return {OPENAI: openai_emu, CLAUDE: anthropic_emu, GEMINI: gemini_emu}[model]


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


def test_paths_without_v1(proxy):
    client = proxy().test_client()
    created = client.post("/responses", json={"model": CLAUDE, "input": "hi"})
    assert created.status_code == 200 and created.json["object"] == "response"
    stored = client.get(f"/responses/{created.json['id']}")
    assert stored.json["output"] == created.json["output"]
    listed = client.get(f"/responses/{created.json['id']}/input_items")
    assert listed.json["object"] == "list" and listed.json["data"][0]["content"] == "hi"
    assert client.delete(f"/responses/{created.json['id']}").json["deleted"] is True


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
