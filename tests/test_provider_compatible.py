"""OpenAI-compatible providers held to their own contracts (Mistral, Groq): what langchain
and the openai SDK send is renamed, dropped and named, or refused under the normal policy,
and every request the emulators receive is checked against the provider's contract."""
from __future__ import annotations

import openai
import pytest
import urllib3

from tests.emulators.compatible import GroqEmulator, MistralEmulator, TogetherEmulator
from tests.emulators.contracts import needs_specs
from tests.provider_fixtures import emulator_fixture, proxy_app, sdk_for, sent

mistral_emu = emulator_fixture(MistralEmulator, "mistral_emu")
groq_emu = emulator_fixture(GroqEmulator, "groq_emu")
together_emu = emulator_fixture(TogetherEmulator, "together_emu")


@pytest.fixture
def mistral(mistral_emu, tmp_path):
    return sdk_for(proxy_app({**mistral_emu.proxy_env(),
                              "SWITCHBOARD_DATA_DIR": str(tmp_path / "data")}))


@pytest.fixture
def groq(groq_emu, tmp_path):
    return sdk_for(proxy_app({**groq_emu.proxy_env(),
                              "SWITCHBOARD_DATA_DIR": str(tmp_path / "data")}))


USER = [{"role": "user", "content": "ping"}]
MISTRAL = "mistral/mistral-small-latest"
GROQ = "groq/llama-3.3-70b-versatile"


def test_mistral_takes_what_langchain_sends(mistral, mistral_emu):
    """langchain-openai always sends max_completion_tokens (and often user, seed)."""
    r = mistral.chat.completions.with_raw_response.create(
        model=MISTRAL, messages=USER, max_completion_tokens=50, max_tokens=999, user="u-1",
        seed=7, temperature=0.2)
    assert r.parse().choices[0].message.content == "Hello! You said: ping"
    assert r.headers["x-switchboard-dropped-params"] == "user"
    assert sent(mistral_emu) == {"model": "mistral-small-latest", "messages": USER,
                                 "max_tokens": 50, "random_seed": 7, "temperature": 0.2}


def test_mistral_neutral_values_outside_the_contract_are_dropped_and_named(mistral, mistral_emu):
    r = mistral.chat.completions.with_raw_response.create(model=MISTRAL, messages=USER,
                                                          logprobs=False)
    assert r.headers["x-switchboard-dropped-params"] == "logprobs"
    assert "logprobs" not in sent(mistral_emu)


@pytest.mark.parametrize("extra", [{"logit_bias": {"42": 5}}, {"logprobs": True},
                                   {"extra_body": {"top_k": 5}}])
def test_mistral_refuses_what_its_contract_lacks_unless_dropped(mistral, mistral_emu, extra):
    name = next(iter(extra.get("extra_body", extra)))
    with pytest.raises(openai.BadRequestError) as refused:
        mistral.chat.completions.create(model=MISTRAL, messages=USER, **extra)
    assert refused.value.body["param"] == name
    assert "mistral" in refused.value.body["message"]
    assert not mistral_emu.calls
    body = dict(extra.get("extra_body", {}), drop_params=True)
    r = mistral.chat.completions.with_raw_response.create(
        model=MISTRAL, messages=USER, extra_body=body,
        **{k: v for k, v in extra.items() if k != "extra_body"})
    assert r.headers["x-switchboard-dropped-params"] == name
    assert name not in sent(mistral_emu)


WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}}}}
# A history from OpenAI and Anthropic: ids Mistral refuses, next to one in its own form.
FOREIGN_HISTORY = [
    {"role": "user", "content": "weather in Oslo, Rome and Lima"},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": call_id, "type": "function",
         "function": {"name": "get_weather", "arguments": f'{{"city": "{city}"}}'}}
        for call_id, city in (("call_abc123def456ghi789", "Oslo"),
                              ("toolu_01A09q90qw90lq917835lq9", "Rome"),
                              ("D681PevKs", "Lima"))]},
    {"role": "tool", "tool_call_id": "toolu_01A09q90qw90lq917835lq9", "content": "sunny"},
    {"role": "tool", "tool_call_id": "call_abc123def456ghi789", "content": "rain"},
    {"role": "tool", "tool_call_id": "D681PevKs", "content": "mild"}]


@pytest.mark.parametrize("stream", [False, True])
def test_mistral_gets_foreign_tool_call_ids_as_nine_letters_and_digits(mistral_emu, tmp_path,
                                                                        stream):
    """Each id becomes the same 9-character id in the assistant's tool_calls and in the tool
    message answering it, in every request; an id already in Mistral's form is kept. The
    emulator refuses any other id, as the live API does."""
    client = proxy_app({**mistral_emu.proxy_env(),
                        "SWITCHBOARD_DATA_DIR": str(tmp_path / "data")}).test_client()
    sent_ids = []
    for _ in range(2):
        r = client.post("/v1/chat/completions", json={
            "model": MISTRAL, "messages": FOREIGN_HISTORY, "tools": [WEATHER], "stream": stream})
        assert r.status_code == 200, r.get_data(as_text=True)
        wire = sent(mistral_emu)["messages"]
        calls = [call["id"] for call in wire[1]["tool_calls"]]
        answers = [m["tool_call_id"] for m in wire[2:]]
        sent_ids.append(calls)
        assert answers == [calls[1], calls[0], calls[2]]
        assert all(len(i) == 9 and i.isalnum() and i.isascii() for i in calls)
        assert len(set(calls)) == 3 and calls[2] == "D681PevKs"
        assert [c["function"] for c in wire[1]["tool_calls"]] == \
            [c["function"] for c in FOREIGN_HISTORY[1]["tool_calls"]]
    assert sent_ids[0] == sent_ids[1]


@pytest.mark.parametrize("include_usage", [False, True])
def test_mistral_stream_bills_its_own_usage(mistral, mistral_emu, include_usage):
    options = {"stream_options": {"include_usage": True}} if include_usage else {}
    chunks = list(mistral.chat.completions.create(model=MISTRAL, messages=USER, stream=True,
                                                   user="u-1", **options))
    assert "stream_options" not in sent(mistral_emu) and "user" not in sent(mistral_emu)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == \
        "Hello! You said: ping"
    if include_usage:
        assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (2, 4)
    else:
        assert all(c.usage is None for c in chunks)


def test_groq_keeps_its_fields_and_reads_usage_from_x_groq(groq, groq_emu):
    groq.chat.completions.create(model=GROQ, messages=USER, max_completion_tokens=40,
                                 user="u-1")
    assert sent(groq_emu)["max_completion_tokens"] == 40 and sent(groq_emu)["user"] == "u-1"
    chunks = list(groq.chat.completions.create(model=GROQ, messages=USER, stream=True,
                                               stream_options={"include_usage": True}))
    assert "stream_options" not in sent(groq_emu)
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (2, 4)
    with pytest.raises(openai.BadRequestError) as refused:
        groq.chat.completions.create(model=GROQ, messages=USER, extra_body={"top_k": 3})
    assert refused.value.body["param"] == "top_k"


@needs_specs
@pytest.mark.parametrize("emulator_class, path", [(MistralEmulator, "/v1/chat/completions"),
                                                  (GroqEmulator, "/openai/v1/chat/completions")])
def test_emulators_refuse_fields_their_contract_lacks(emulators, emulator_class, path):
    emulator = emulators(emulator_class)
    emulator.reset_state()
    r = urllib3.request("POST", emulator.base_url + path, retries=False, json={
        "model": "m", "messages": USER, "stream_options": {"include_usage": True}},
        headers={"authorization": f"Bearer {emulator.api_key}"})
    assert r.status == 400 and "stream_options" in r.data.decode()
    emulator.reset_state()   # sent on purpose


def test_together_gets_max_tokens_for_max_completion_tokens(together_emu, tmp_path):
    sdk = sdk_for(proxy_app({**together_emu.proxy_env(),
                             "SWITCHBOARD_DATA_DIR": str(tmp_path / "data")}))
    reply = sdk.chat.completions.create(model="together/meta-llama/Llama-3.3-70B-Instruct-Turbo",
                                        messages=USER, max_completion_tokens=3, user="u-1")
    assert reply.choices[0].finish_reason == "length"
    assert sent(together_emu)["max_tokens"] == 3
    assert "max_completion_tokens" not in sent(together_emu)
