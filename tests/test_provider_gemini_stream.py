"""Gemini streaming: through the proxy with the openai SDK, and the translator on its own
fed with event sequences shaped like the live API's (`alt=sse`, no [DONE])."""
from __future__ import annotations

import json

import openai
import pytest

from app.errors import UpstreamError
from app.providers import PROVIDERS
from tests.emulators.gemini import GeminiEmulator
from tests.emulators.gemini_errors import rate_limited
from tests.emulators.server import Fault
from tests.provider_fixtures import WEATHER, provider_fixtures, sent, sse_frames

gemini_emu, gemini_env, make_proxy, proxy, http, sdk = provider_fixtures(GeminiEmulator, "gemini")

FLASH = "gemini/gemini-2.5-flash"
USER = [{"role": "user", "content": "stream this please"}]


def collect(stream) -> list:
    return list(stream)


def test_stream_text_matches_non_stream(sdk, gemini_emu):
    chunks = collect(sdk.chat.completions.create(model=FLASH, messages=USER, stream=True))
    call = gemini_emu.calls[-1]
    assert call.path == "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    assert call.query == {"alt": ["sse"]}
    assert call.body == {"contents": [{"role": "user", "parts": [{"text": "stream this please"}]}]}
    assert len(chunks) > 3 and len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks][-1] == "stop"
    assert all(c.choices[0].finish_reason is None for c in chunks[:-1])
    assert all(c.usage is None for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    plain = sdk.chat.completions.create(model=FLASH, messages=USER)
    assert text == plain.choices[0].message.content == "Hello! You said: stream this please"


def test_include_usage_gives_final_usage_chunk(sdk, gemini_emu):
    gemini_emu.thinking_tokens = 3
    chunks = collect(sdk.chat.completions.create(
        model=FLASH, messages=USER, stream=True, stream_options={"include_usage": True},
        max_tokens=2))
    assert chunks[-1].choices == []
    usage = chunks[-1].usage
    # prompt: 3 words + 1 turn; answer cut at 2 words, plus 3 thinking tokens
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (4, 5, 9)
    assert usage.completion_tokens_details.reasoning_tokens == 3
    assert chunks[-2].choices[0].finish_reason == "length"
    assert "".join(c.choices[0].delta.content or "" for c in chunks[:-1]) == "Hello! You"


def test_stream_tool_call_deltas_and_round_trip(sdk, gemini_emu):
    messages = [{"role": "user", "content": "get_weather for me"}]
    chunks = collect(sdk.chat.completions.create(model=FLASH, messages=messages,
                                                        tools=[WEATHER], stream=True))
    deltas = [tc for c in chunks for tc in c.choices[0].delta.tool_calls or ()]
    assert len(deltas) == 1
    call = deltas[0]
    assert (call.index, call.type, call.function.name) == (0, "function", "get_weather")
    assert call.id.startswith("call_")
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    signature = call.model_extra["extra_content"]["google"]["thought_signature"]
    messages += [{"role": "assistant", "content": None, "tool_calls": [{
        "id": call.id, "type": "function", "extra_content": call.model_extra["extra_content"],
        "function": {"name": "get_weather", "arguments": call.function.arguments}}]},
        {"role": "tool", "tool_call_id": call.id, "content": "cloudy"}]
    chunks = collect(sdk.chat.completions.create(model=FLASH, messages=messages,
                                                        tools=[WEATHER], stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "The tool returned: cloudy"
    assert gemini_emu.calls[-1].body["contents"][1]["parts"][0]["thoughtSignature"] == signature


def test_stream_two_candidates(sdk, gemini_emu):
    chunks = collect(sdk.chat.completions.create(model=FLASH, messages=USER, n=2,
                                                        stream=True))
    for index in (0, 1):
        mine = [c.choices[0] for c in chunks if c.choices[0].index == index]
        assert mine[0].delta.role == "assistant"
        assert "".join(c.delta.content or "" for c in mine) == \
            "Hello! You said: stream this please"
        assert [c.finish_reason for c in mine][-1] == "stop"


def test_stream_prompt_blocked(sdk, gemini_emu):
    gemini_emu.next_answer("blocked")
    chunks = collect(sdk.chat.completions.create(model=FLASH, messages=USER, stream=True))
    assert [(c.choices[0].delta.content, c.choices[0].finish_reason) for c in chunks] == \
        [(None, "content_filter")]


def test_stream_stopped_by_safety(sdk, gemini_emu):
    gemini_emu.next_answer("safety")
    chunks = collect(sdk.chat.completions.create(model=FLASH, messages=USER, stream=True))
    assert chunks[-1].choices[0].finish_reason == "content_filter"


def test_stream_mid_stream_error(sdk, gemini_emu):
    gemini_emu.next_answer("mid_stream_error")
    stream = sdk.chat.completions.create(model=FLASH, messages=USER, stream=True)
    received = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in stream:
            received.append(chunk)
    assert received[0].choices[0].delta.content == "Hello!"
    assert "An internal error has occurred" in caught.value.message


def test_stream_rate_limited_before_start(sdk, gemini_emu):
    gemini_emu.fail_next(Fault(reply=rate_limited("12s")))
    with pytest.raises(openai.RateLimitError) as caught:
        sdk.chat.completions.create(model=FLASH, messages=USER, stream=True,
                                           extra_body={"num_retries": 0})
    assert caught.value.response.headers["retry-after"] == "12"
    assert "exceeded your current quota" in caught.value.response.json()["error"]["message"]


# -- the translator alone, on recorded-shape event sequences --------------------------
def translate(events: list[dict], body: dict | None = None) -> list[dict]:
    provider = PROVIDERS["gemini"]
    translator = provider.stream_translator({"messages": USER, **(body or {})}, None)
    fragments = []
    for event in events:
        fragments += translator.on_event(None, json.dumps(event))
    return fragments + list(translator.on_end())


def test_translator_text_thoughts_and_usage():
    events = [
        {"candidates": [{"content": {"parts": [{"text": "Planning...", "thought": True}],
                                     "role": "model"}}],
         "usageMetadata": {"promptTokenCount": 5, "totalTokenCount": 5},
         "modelVersion": "gemini-2.5-flash", "responseId": "abc"},
        {"candidates": [{"content": {"parts": [{"text": "Hi"}], "role": "model"}}],
         "usageMetadata": {"promptTokenCount": 5, "totalTokenCount": 5}},
        {"candidates": [{"content": {"parts": [{"text": " there"}], "role": "model"},
                         "finishReason": "STOP"}],
         "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 2,
                           "thoughtsTokenCount": 4, "cachedContentTokenCount": 1,
                           "totalTokenCount": 11}}]
    fragments = translate(events)
    deltas = [f["choices"] for f in fragments if f["choices"]]
    assert deltas == [[{"index": 0, "delta": {"reasoning_content": "Planning..."},
                        "finish_reason": None}],
                      [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}],
                      [{"index": 0, "delta": {"content": " there"}, "finish_reason": "stop"}]]
    assert fragments[-1]["usage"] == {
        "prompt_tokens": 5, "completion_tokens": 6, "total_tokens": 11,
        "prompt_tokens_details": {"cached_tokens": 1},
        "completion_tokens_details": {"reasoning_tokens": 4}}


def test_translator_parallel_function_calls_across_chunks():
    call = {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}},
            "thoughtSignature": "c2ln"}
    events = [
        {"candidates": [{"content": {"parts": [call], "role": "model"}}]},
        {"candidates": [{"content": {"parts": [
            {"functionCall": {"name": "get_time", "id": "fc-1"}}], "role": "model"},
            "finishReason": "STOP"}]}]
    fragments = translate(events)
    first = fragments[0]["choices"][0]["delta"]["tool_calls"][0]
    second = fragments[1]["choices"][0]["delta"]["tool_calls"][0]
    assert first["index"] == 0 and first["id"].startswith("call_")
    assert first["function"] == {"name": "get_weather", "arguments": '{"city": "Oslo"}'}
    assert first["extra_content"] == {"google": {"thought_signature": "c2ln"}}
    assert second == {"index": 1, "id": "fc-1", "type": "function",
                      "function": {"name": "get_time", "arguments": "{}"}}
    assert fragments[1]["choices"][0]["finish_reason"] == "tool_calls"


@pytest.mark.parametrize("reason, mapped", [
    ("MAX_TOKENS", "length"), ("SAFETY", "content_filter"), ("RECITATION", "content_filter"),
    ("BLOCKLIST", "content_filter"), ("PROHIBITED_CONTENT", "content_filter"),
    ("SPII", "content_filter"), ("LANGUAGE", "content_filter")])
def test_translator_finish_reasons(reason, mapped):
    fragments = translate([{"candidates": [{"finishReason": reason, "index": 0}]}])
    assert fragments == [{"choices": [{"index": 0, "delta": {}, "finish_reason": mapped}]}]


@pytest.mark.parametrize("reason", ["MALFORMED_FUNCTION_CALL", "MISSING_THOUGHT_SIGNATURE",
                                    "OTHER", "NO_IMAGE"])
def test_stream_failure_finish_reason_is_a_502_then_retried(sdk, gemini_emu, reason):
    gemini_emu.next_answer(f"finish:{reason}")
    with pytest.raises(openai.APIStatusError) as caught:
        collect(sdk.chat.completions.create(model=FLASH, messages=USER, stream=True,
                                            extra_body={"num_retries": 0}))
    assert caught.value.status_code == 502
    assert reason in caught.value.message
    gemini_emu.next_answer(f"finish:{reason}")
    chunks = collect(sdk.chat.completions.create(model=FLASH, messages=USER, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == \
        "Hello! You said: stream this please"


def test_translator_second_candidate_and_logprobs():
    events = [{"candidates": [
        {"content": {"parts": [{"text": "A"}], "role": "model"},
         "logprobsResult": {"chosenCandidates": [{"token": "A", "logProbability": -0.5}],
                            "topCandidates": [{"candidates": [{"token": "A",
                                                               "logProbability": -0.5},
                                                              {"token": "B"}]}]}},
        {"index": 1, "content": {"parts": [{"text": "C"}], "role": "model"},
         "finishReason": "STOP"}]}]
    choices = translate(events, {"n": 2})[0]["choices"]
    assert [c["index"] for c in choices] == [0, 1]
    assert choices[0]["logprobs"]["content"] == [{
        "token": "A", "logprob": -0.5, "bytes": [65], "top_logprobs": [
            {"token": "A", "logprob": -0.5, "bytes": [65]},
            {"token": "B", "logprob": 0.0, "bytes": [66]}]}]
    assert choices[1]["finish_reason"] == "stop"


def test_translator_blocked_prompt_finishes_every_choice():
    fragments = translate([{"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
                            "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9}}],
                          {"n": 2})
    assert fragments[0]["choices"] == [
        {"index": 0, "delta": {}, "finish_reason": "content_filter"},
        {"index": 1, "delta": {}, "finish_reason": "content_filter"}]
    assert fragments[0]["usage"]["prompt_tokens"] == 9


@pytest.mark.parametrize("error, status, code", [
    ({"code": 500, "message": "An internal error has occurred.", "status": "INTERNAL"},
     502, "INTERNAL"),
    ({"code": 429, "message": "Resource has been exhausted", "status": "RESOURCE_EXHAUSTED",
      "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "4s"}]},
     429, "RESOURCE_EXHAUSTED"),
    ({"message": "no code at all"}, 502, None),
])
def test_translator_mid_stream_error(error, status, code):
    text = {"candidates": [{"content": {"parts": [{"text": "Hel"}], "role": "model"}}]}
    with pytest.raises(UpstreamError) as caught:
        translate([text, {"error": error}])
    assert caught.value.status == status and caught.value.code == code
    assert error["message"] in caught.value.message


def test_translator_ignores_empty_chunks():
    assert translate([{"candidates": [{"content": {"parts": [{"text": ""}],
                                                   "role": "model"}}]}, {}]) == []


def test_gunicorn_end_to_end(shared_gunicorn, gemini_emu):
    """A real gunicorn process, the SDK over TCP: a streamed tool call, then the answer."""
    proxy = shared_gunicorn()
    client = openai.OpenAI(base_url=f"{proxy.base_url}/v1", api_key="unused", max_retries=0)
    messages = [{"role": "user", "content": "get_weather now"}]
    first = client.chat.completions.create(model="gemini-2.5-pro", messages=messages,
                                           tools=[WEATHER])
    call = first.choices[0].message.tool_calls[0]
    messages += [first.choices[0].message, {"role": "tool", "tool_call_id": call.id,
                                            "content": "warm"}]
    chunks = list(client.chat.completions.create(
        model="gemini-2.5-pro", messages=messages, tools=[WEATHER], stream=True,
        stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "The tool returned: warm"
    assert chunks[-1].usage.total_tokens > 0
    assert "AIza" not in proxy.log()


# -- reasoning and thought signatures -----------------------------------------------------------
GEMINI_3 = "gemini/gemini-3-flash-preview"


def stream_frames(client, body: dict) -> tuple[list[dict], str]:
    r = client.post("/v1/chat/completions", json={**body, "stream": True})
    assert r.status_code == 200, r.get_data(as_text=True)
    return sse_frames(r), r.headers["x-switchboard-cache"]


def test_thought_signatures_survive_stream_cache_replay_and_the_next_turn(make_proxy,
                                                                          write_config,
                                                                          gemini_emu):
    """Gemini 3 refuses a function call sent back without its thought signature: the one a
    stream carried is kept by the assembled answer, by the cache's replay, and sent back."""
    client = make_proxy(config=write_config("cache: {enabled: true}\n")).test_client()
    body = {"model": GEMINI_3, "messages": [{"role": "user", "content": "use get_weather"}],
            "tools": [WEATHER], "reasoning_effort": "low"}
    for expected_cache in ("miss", "hit"):
        frames, cache = stream_frames(client, body)
        assert cache == expected_cache
        deltas = [f["choices"][0]["delta"] for f in frames if f["choices"]]
        assert "".join(d.get("reasoning_content") or "" for d in deltas) == \
            "Thinking about the question."
        [call] = [c for d in deltas for c in d.get("tool_calls") or ()]
        signature = call["extra_content"]["google"]["thought_signature"]
        assert signature
    assistant = {"role": "assistant", "content": None, "tool_calls": [
        {k: call[k] for k in ("id", "type", "function", "extra_content")}]}
    follow = {**body, "messages": body["messages"] + [
        assistant, {"role": "tool", "tool_call_id": call["id"], "content": "sunny"}]}
    r = client.post("/v1/chat/completions", json=follow)
    assert r.status_code == 200, r.json
    assert r.json["choices"][0]["message"]["content"] == "The tool returned: sunny"
    assert sent(gemini_emu)["contents"][1]["parts"][0]["thoughtSignature"] == signature


def test_reasoning_effort_maps_to_thinking_config_and_reasoning_comes_back(http, gemini_emu):
    r = http.post("/v1/chat/completions", json={"model": FLASH, "messages": USER,
                                                "reasoning_effort": "medium"})
    assert sent(gemini_emu)["generationConfig"]["thinkingConfig"] == {
        "includeThoughts": True, "thinkingBudget": 8192}
    message = r.json["choices"][0]["message"]
    assert message["reasoning_content"] == "Thinking about the question."
    assert message["content"] == "Hello! You said: stream this please"
    assert r.json["usage"]["completion_tokens_details"]["reasoning_tokens"] == 4
    http.post("/v1/chat/completions", json={"model": GEMINI_3, "messages": USER,
                                            "reasoning_effort": "high"})
    assert sent(gemini_emu)["generationConfig"]["thinkingConfig"] == {
        "includeThoughts": True, "thinkingLevel": "HIGH"}
    r = http.post("/v1/chat/completions", json={"model": FLASH, "messages": USER,
                                                "reasoning_effort": "none"})
    assert sent(gemini_emu)["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 0}
    assert "reasoning_content" not in r.json["choices"][0]["message"]
    r = http.post("/v1/chat/completions", json={"model": "gemini/gemini-2.5-pro",
                                                "messages": USER, "reasoning_effort": "none"})
    assert r.status_code == 200, r.json     # Pro cannot stop thinking: its least budget
    assert sent(gemini_emu)["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 128}


def test_stream_reasoning_and_its_tokens(sdk, gemini_emu):
    chunks = collect(sdk.chat.completions.create(
        model=FLASH, messages=USER, stream=True, reasoning_effort="low",
        stream_options={"include_usage": True}))
    assert "".join(getattr(c.choices[0].delta, "reasoning_content", None) or ""
                   for c in chunks if c.choices) == "Thinking about the question."
    assert chunks[-1].usage.completion_tokens_details.reasoning_tokens == 4


def test_text_signatures_survive_stream_ledger_cache_replay_and_the_next_turn(make_proxy,
                                                                              write_config,
                                                                              gemini_emu,
                                                                              tmp_path):
    """Gemini 3 signs a plain answer on its text (in a stream, on a last empty text part):
    the signature reaches the client as delta.extra_content, the assembled answer in the
    ledger and the cache keeps it, a cached replay returns it, and the next turn sends it
    back on the model turn's text part (the emulator refuses a moved or altered one)."""
    client = make_proxy(env={"SWITCHBOARD_DATA_DIR": str(tmp_path / "data")}, config=write_config(
        "cache: {enabled: true}\nledger: {store_messages: true}\n")).test_client()
    body = {"model": GEMINI_3, "messages": [{"role": "user", "content": "say hi"}]}
    signatures = []
    for expected_cache in ("miss", "hit"):
        frames, cache = stream_frames(client, body)
        assert cache == expected_cache
        deltas = [f["choices"][0]["delta"] for f in frames if f["choices"]]
        signatures += [d["extra_content"]["google"]["thought_signature"]
                       for d in deltas if d.get("extra_content")]
        text = "".join(d.get("content") or "" for d in deltas)
    assert len(signatures) == 2 and signatures[0] == signatures[1]
    assert text == "Hello! You said: say hi"
    [row] = [r for r in client.get("/spend/logs").json["data"] if r["cache"] == "miss"]
    assert row["response"]["choices"][0]["message"]["extra_content"] == {
        "google": {"thought_signature": signatures[0]}}

    assistant = {"role": "assistant", "content": text,
                 "extra_content": {"google": {"thought_signature": signatures[0]}}}
    follow = {"model": GEMINI_3, "messages": body["messages"] + [
        assistant, {"role": "user", "content": "again"}]}
    r = client.post("/v1/chat/completions", json=follow)
    assert r.status_code == 200, r.json
    assert sent(gemini_emu)["contents"][1] == {"role": "model", "parts": [
        {"text": text, "thoughtSignature": signatures[0]}]}


def test_translator_keeps_a_signature_on_an_empty_last_text_part():
    events = [{"candidates": [{"content": {"parts": [{"text": "Hi"}], "role": "model"}}]},
              {"candidates": [{"content": {"parts": [{"text": "", "thoughtSignature": "c2ln"}],
                                           "role": "model"}, "finishReason": "STOP"}]}]
    deltas = [f["choices"] for f in translate(events) if f["choices"]]
    assert deltas[-1] == [{"index": 0, "delta": {
        "extra_content": {"google": {"thought_signature": "c2ln"}}}, "finish_reason": "stop"}]
