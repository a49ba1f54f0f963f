"""Streaming from OpenAI-format upstreams: framing, chunk order, usage, failures."""
from __future__ import annotations

import json

import pytest

from tests.emulators.server import Fault, Reply, sse

USER = [{"role": "user", "content": "stream this please"}]


def frames(response) -> list:
    text = response.get_data(as_text=True)
    assert text.endswith("data: [DONE]\n\n")
    out = []
    for block in text.split("\n\n"):
        if block.startswith("data: ") and block != "data: [DONE]":
            out.append(json.loads(block[len("data: "):]))
    return out


def test_stream_frames_and_text_match_non_stream(client):
    r = client.post("/v1/chat/completions", json={"model": "gpt-4", "messages": USER,
                                                  "stream": True})
    assert r.status_code == 200
    assert r.mimetype == "text/event-stream"
    assert r.headers["Cache-Control"] == "no-cache"
    assert r.headers["X-Accel-Buffering"] == "no"
    chunks = frames(r)
    assert len({c["id"] for c in chunks}) == 1
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert all("usage" not in c for c in chunks)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    plain = client.post("/v1/chat/completions", json={"model": "gpt-4", "messages": USER})
    assert text == plain.json["choices"][0]["message"]["content"]


def test_include_usage_adds_final_usage_chunk(client):
    r = client.post("/v1/chat/completions", json={
        "model": "gpt-4", "messages": USER, "stream": True,
        "stream_options": {"include_usage": True}})
    chunks = frames(r)
    assert chunks[-1]["choices"] == []
    usage = chunks[-1]["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0
    assert all(c["usage"] is None for c in chunks[:-1])


@pytest.mark.parametrize("model, emulator", [("gpt-4", "openai_emu"),
                                             ("azure/prod-35", "azure_emu")])
def test_stream_always_asks_upstream_for_usage_and_strips_it(client, request, model, emulator):
    """The ledger bills the provider's own counts, not an estimate, even when the client
    did not ask for the usage chunk; the client does not get one."""
    r = client.post("/v1/chat/completions", headers={"x-request-id": "req-usage"}, json={
        "model": model, "messages": USER, "stream": True})
    chunks = frames(r)
    upstream = request.getfixturevalue(emulator)
    assert upstream.calls[-1].body["stream_options"] == {"include_usage": True}
    assert all("usage" not in c for c in chunks) and chunks[-1]["choices"]
    rows = {row["request_id"]: row for row in client.get(
        "/spend/logs", query_string={"limit": 10}).json["data"]}
    row = rows["req-usage"]
    assert row["usage_estimated"] is False
    assert (row["prompt_tokens"], row["completion_tokens"]) == (4, 6)   # the emulator's counts


def test_tool_call_deltas(client):
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {
        "type": "object", "required": ["q"], "properties": {"q": {"type": "string"}}}}}]
    r = client.post("/v1/chat/completions", json={
        "model": "gpt-4", "messages": [{"role": "user", "content": "lookup now"}],
        "tools": tools, "stream": True})
    chunks = frames(r)
    calls = [tc for c in chunks for tc in c["choices"][0]["delta"].get("tool_calls") or ()]
    assert calls[0]["id"] and calls[0]["function"]["name"] == "lookup"
    assert "".join(tc["function"].get("arguments", "") for tc in calls) == '{"q": "Paris"}'
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_upstream_error_before_first_byte_is_plain_http_error(client, openai_emu):
    openai_emu.fail_next(Fault(reply=Reply(429, {"error": {
        "message": "Rate limit reached", "type": "requests", "param": None,
        "code": "rate_limit_exceeded"}}, {"Retry-After": "7"})))
    r = client.post("/v1/chat/completions", json={"model": "gpt-4", "messages": USER,
                                                  "stream": True, "num_retries": 0})
    assert r.status_code == 429
    assert r.headers["Retry-After"] == "7"
    assert "Rate limit reached" in r.json["error"]["message"]


def test_stream_cut_mid_way_ends_with_error_frame(client, openai_emu):
    def events():
        yield sse({"id": "x", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4",
                   "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hel"},
                                "finish_reason": None}]})
    openai_emu.fail_next(Fault(reply=Reply(200, events=events(),
                                           content_type="text/event-stream")))
    r = client.post("/v1/chat/completions", json={"model": "gpt-4", "messages": USER,
                                                  "stream": True})
    assert r.status_code == 200
    chunks = frames(r)
    assert chunks[0]["choices"][0]["delta"]["content"] == "Hel"
    assert chunks[-1]["error"]["code"] == "stream_truncated"
    assert set(chunks[-1]["error"]) == {"message", "type", "param", "code"}


def test_in_stream_error_event(client, openai_emu):
    def events():
        yield sse({"id": "x", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4",
                   "choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}]})
        yield sse({"error": {"message": "The server had an error", "type": "server_error"}})
    openai_emu.fail_next(Fault(reply=Reply(200, events=events(),
                                           content_type="text/event-stream")))
    chunks = frames(client.post("/v1/chat/completions", json={
        "model": "gpt-4", "messages": USER, "stream": True}))
    assert "The server had an error" in chunks[-1]["error"]["message"]
