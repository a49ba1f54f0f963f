"""Replicate streaming: the prediction's own event stream (create with "stream": true, then
GET urls.stream), through the SDK, raw SSE frames and gunicorn; and the translator fed
recorded-shape event sequences."""
from __future__ import annotations

import json

import openai
import pytest

from app.usage.tokens import count_messages, count_text

from app.errors import UpstreamError
from app.providers import get_provider
from app.providers.base import Target
from tests.emulators.replicate import LLAMA2_VERSION, ReplicateEmulator, throttled
from tests.emulators.server import Fault
from tests.provider_fixtures import provider_fixtures, sse_frames, streamed_text

replicate_emu, replicate_env, make_proxy, proxy, http, sdk = provider_fixtures(
    ReplicateEmulator, "replicate")

LLAMA2 = f"replicate/meta/llama-2-70b-chat:{LLAMA2_VERSION}"
LLAMA3 = "replicate/meta/meta-llama-3-70b-instruct"
USER = [{"role": "user", "content": "stream this please"}]


@pytest.mark.parametrize("model", [LLAMA2, LLAMA3])
def test_stream_text_equals_non_stream_text(sdk, replicate_emu, model):
    chunks = list(sdk.chat.completions.create(model=model, messages=USER, stream=True))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.choices[0].finish_reason is None for c in chunks[:-1])
    assert len({c.id for c in chunks}) == 1
    plain = sdk.chat.completions.create(model=model, messages=USER)
    assert streamed_text(chunks) == plain.choices[0].message.content == \
        "Hello! You said: stream this please"


def test_stream_request_shape(sdk, replicate_emu):
    list(sdk.chat.completions.create(model=LLAMA2, messages=USER, stream=True))
    create, read = replicate_emu.calls
    assert (create.method, create.path) == ("POST", "/v1/predictions")
    assert create.body == {"version": LLAMA2_VERSION, "stream": True, "input": {
        "prompt": "<s>[INST] stream this please [/INST]", "system_prompt": ""}}
    assert "prefer" not in create.headers
    prediction = next(iter(replicate_emu.predictions.values()))
    assert (read.method, read.path) == ("GET", f"/v1/streams/{prediction.id}")
    assert read.headers["accept"] == "text/event-stream"


def test_include_usage_gives_a_final_usage_chunk(sdk, replicate_emu):
    chunks = list(sdk.chat.completions.create(model=LLAMA3, messages=USER, stream=True,
                                              stream_options={"include_usage": True}))
    assert chunks[-1].choices == []
    usage = chunks[-1].usage
    # The stream reports no counts: the proxy counts them with its tokenizer.
    assert usage.completion_tokens == count_text(LLAMA3, "Hello! You said: stream this please")
    assert usage.prompt_tokens == count_messages(LLAMA3, USER)
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert all(c.usage is None for c in chunks[:-1])


def test_multi_line_output_piece(sdk, replicate_emu):
    """A piece holding newlines arrives as several data: lines and is joined back."""
    chunks = list(sdk.chat.completions.create(model=LLAMA3, stream=True, messages=[
        {"role": "user", "content": "line one\nline two\n\nend"}]))
    assert streamed_text(chunks) == "Hello! You said: line one\nline two\n\nend"


def test_stop_split_across_pieces(sdk, replicate_emu):
    chunks = list(sdk.chat.completions.create(model=LLAMA3, messages=USER, stream=True,
                                              stop=["ou sa"]))
    assert streamed_text(chunks) == "Hello! Y"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert sum(1 for c in chunks if c.choices and c.choices[0].finish_reason) == 1


def test_max_tokens_reached_in_stream_is_length(sdk, replicate_emu):
    chunks = list(sdk.chat.completions.create(model=LLAMA2, messages=USER, stream=True,
                                              max_tokens=2))
    assert streamed_text(chunks) == "Hello! You"
    assert chunks[-1].choices[0].finish_reason == "length"


def test_error_event_mid_stream_ends_with_an_error_frame(http, replicate_emu):
    replicate_emu.configure(ending="failed", error="CUDA out of memory")
    r = http.post("/v1/chat/completions", json={"model": LLAMA3, "messages": USER,
                                                "stream": True})
    chunks = sse_frames(r)
    assert chunks[0]["choices"][0]["delta"]["content"] == "Hello!"
    error = chunks[-1]["error"]
    assert "CUDA out of memory" in error["message"] and error["code"] == "prediction_failed"
    assert set(error) == {"message", "type", "param", "code"}


def test_canceled_stream_ends_with_an_error_frame(http, replicate_emu):
    replicate_emu.configure(ending="canceled")
    chunks = sse_frames(http.post("/v1/chat/completions", json={
        "model": LLAMA3, "messages": USER, "stream": True}))
    assert chunks[-1]["error"]["code"] == "prediction_canceled"
    assert "canceled" in chunks[-1]["error"]["message"]


def test_stream_cut_before_done_is_not_a_finished_answer(http, replicate_emu):
    replicate_emu.configure(stream_cut=True)
    chunks = sse_frames(http.post("/v1/chat/completions", json={
        "model": LLAMA3, "messages": USER, "stream": True}))
    assert chunks[-1]["error"]["code"] == "stream_truncated"
    assert not any(c.get("choices") and c["choices"][0]["finish_reason"] for c in chunks)


def test_throttled_create_is_a_plain_429(sdk, replicate_emu):
    replicate_emu.fail_next(Fault(reply=throttled(2)))
    with pytest.raises(openai.RateLimitError) as raised:
        sdk.chat.completions.create(model=LLAMA3, messages=USER, stream=True,
                                    extra_body={"num_retries": 0})
    assert raised.value.response.headers["retry-after"] == "2"
    assert "Request was throttled" in raised.value.body["message"]


def test_through_gunicorn(shared_gunicorn, replicate_emu):
    proxy_process = shared_gunicorn()
    client = openai.OpenAI(base_url=proxy_process.base_url + "/v1", api_key="x", max_retries=0)
    chunks = list(client.chat.completions.create(model=LLAMA2, messages=USER, stream=True))
    assert streamed_text(chunks) == "Hello! You said: stream this please"
    plain = client.chat.completions.create(model=LLAMA2, messages=USER)
    assert plain.choices[0].message.content == streamed_text(chunks)


# -- the translator, fed event sequences in the shape Replicate sends -----------------------
def translator(body: dict | None = None, model: str = "meta/meta-llama-3-70b-instruct"):
    target = Target(model, f"replicate/{model}", "replicate", model,
                    "https://api.replicate.com", "r8_x", "REPLICATE_API_TOKEN")
    body = {"messages": [{"role": "user", "content": "hi there"}], "stream": True, **(body or {})}
    return get_provider("replicate").stream_translator(body, target)


def feed(t, events) -> list[dict]:
    return [f for event, data in events for f in t.on_event(event, data)] + list(t.on_end())


def text_of(fragments) -> str:
    return "".join(c["delta"].get("content", "") for f in fragments for c in f["choices"])


def test_translator_success_sequence():
    fragments = feed(translator(), [
        ("logs", "Loading weights"), ("output", "Hello"), ("output", " there,"),
        ("logs", "step 3"), ("output", "\nfriend"), ("done", "{}")])
    assert text_of(fragments) == "Hello there,\nfriend"
    last = fragments[-1]
    assert last["choices"] == [{"index": 0, "delta": {}, "finish_reason": "stop"}]
    assert "usage" not in last  # the stream reports no counts; the proxy counts them
    assert all(f["choices"][0]["finish_reason"] is None for f in fragments[:-1])


def test_translator_ignores_unknown_events_and_empty_output():
    fragments = feed(translator(), [("output", ""), ("message", "x"), (None, "y"),
                                    ("output", "ok"), ("done", "")])
    assert text_of(fragments) == "ok"


def test_translator_length_and_stop():
    fragments = feed(translator({"max_tokens": 2}), [("output", "one"), ("output", " two"),
                                                      ("done", "{}")])  # 2 tokens
    assert fragments[-1]["choices"][0]["finish_reason"] == "length"
    t = translator({"stop": ["END"]})
    fragments = feed(t, [("output", "keep E"), ("output", "N"), ("output", "D drop"),
                         ("output", " more"), ("done", "{}")])
    assert text_of(fragments) == "keep "
    assert [c["finish_reason"] for f in fragments for c in f["choices"]].count("stop") == 1
    assert fragments[-1]["choices"][0]["finish_reason"] == "stop"


def test_translator_held_tail_is_released_at_done():
    fragments = feed(translator({"stop": "ENDING"}), [("output", "almost EN"), ("done", "{}")])
    assert text_of(fragments) == "almost EN"


def test_translator_error_event_mid_stream():
    t = translator()
    assert text_of(t.on_event("output", "partial")) == "partial"
    with pytest.raises(UpstreamError) as raised:
        t.on_event("error", json.dumps({"detail": "Prediction interrupted; please retry"}))
    assert "Prediction interrupted; please retry" in raised.value.message
    assert raised.value.status == 502 and raised.value.code == "prediction_failed"


@pytest.mark.parametrize("data, code", [('{"reason": "canceled"}', "prediction_canceled"),
                                        ('{"reason": "error"}', "prediction_failed")])
def test_translator_done_with_a_reason_raises(data, code):
    t = translator()
    t.on_event("output", "partial")
    with pytest.raises(UpstreamError) as raised:
        t.on_event("done", data)
    assert raised.value.code == code


def test_translator_error_event_that_is_not_json():
    with pytest.raises(UpstreamError) as raised:
        translator().on_event("error", "upstream exploded")
    assert "upstream exploded" in raised.value.message
