"""A stream's total duration is bounded by the request's own `timeout`, and a virtual key's
parallel slot is held for as long as its stream runs, however long that is."""
from __future__ import annotations

import json
import time

import pytest
import urllib3

from tests.emulators.server import Fault, Reply, sse
from tests.keys_fixtures import ADMIN, ask, bearer, generate
from tests.keys_fixtures import keyed  # noqa: F401  (the fixture)

pytestmark = pytest.mark.timeout(120)


def slow_stream(words: int, delay: float) -> Fault:
    """An OpenAI stream of `words` chunks, `delay` seconds apart."""
    def events():
        for i in range(words):
            yield sse({"id": "s", "object": "chat.completion.chunk", "created": 1,
                       "model": "gpt-4o-mini", "choices": [{"index": 0, "delta": {
                           "content": f"w{i} "}, "finish_reason": None}]})
        yield sse({"id": "s", "object": "chat.completion.chunk", "created": 1,
                   "model": "gpt-4o-mini", "choices": [{"index": 0, "delta": {},
                                                        "finish_reason": "stop"}]})
        yield b"data: [DONE]\n\n"
    return Fault(reply=Reply(200, events=events(), event_delay=delay,
                             content_type="text/event-stream"))


def frames(raw: bytes) -> list:
    return [json.loads(line[6:]) if line != b"data: [DONE]" else "[DONE]"
            for line in raw.split(b"\n\n") if line.startswith(b"data: ")]


def test_a_stream_ends_at_the_requests_timeout(shared_gunicorn, openai_emu):
    proxy = shared_gunicorn()
    url = f"{proxy.base_url}/v1/chat/completions"
    assert urllib3.request("POST", url, json=ask(), timeout=60).status == 200  # warm
    openai_emu.fail_next(slow_stream(40, 0.1))  # 4 s of chunks, never silent for long
    started = time.monotonic()
    reply = urllib3.request("POST", url, json=ask(stream=True, timeout=1.5), timeout=20)
    elapsed = time.monotonic() - started
    assert reply.status == 200
    assert 1.0 < elapsed < 3.0
    sent = frames(reply.data)
    assert sent[-1] == "[DONE]"
    assert sent[-2]["error"]["code"] == "stream_timeout"
    assert sent[-2]["error"]["type"] == "timeout_error"
    assert 3 <= len(sent) - 2 < 40  # some words came, not all
    # without a timeout of its own, the same stream runs to its end
    openai_emu.fail_next(slow_stream(20, 0.1))
    whole = frames(urllib3.request("POST", url, json=ask(stream=True), timeout=20).data)
    assert whole[-1] == "[DONE]" and whole[-2]["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize("counters", ["sql", "redis"])
def test_a_keys_parallel_slot_is_held_as_long_as_its_stream_runs(keyed, write_config,
                                                                 openai_emu, monkeypatch,
                                                                 request, counters):
    # the emulator's first call loads the API contract it checks calls against: not in 2 s
    assert urllib3.request("POST", f"{openai_emu.base_url}/v1/chat/completions", json=ask(),
                           headers=bearer(openai_emu.api_key), timeout=60).status == 200
    monkeypatch.setattr("app.keys.service.LEASE_MARGIN_SECONDS", 0.0)  # a lease of 2 s
    env = {"REDIS_URL": request.getfixturevalue("redis_url")} if counters == "redis" else {}
    client = keyed(env, config=write_config("request_timeout: 2\nnum_retries: 0\n"))
    made = generate(client, max_parallel_requests=1)
    openai_emu.fail_next(slow_stream(25, 0.2))  # 5 s, over two leases long
    stream = client.post("/v1/chat/completions", json=ask(stream=True),
                         headers=bearer(made["key"]), buffered=False)
    chunks = iter(stream.response)
    started = time.monotonic()
    while time.monotonic() - started < 2.8:  # the client reads on, past the first lease
        next(chunks)
    second = client.post("/v1/chat/completions", json=ask(), headers=bearer(made["key"]))
    assert second.status_code == 429
    assert second.json["error"]["code"] == "rate_limit_exceeded"
    rest = b"".join(chunks)
    stream.close()
    assert rest.endswith(b"data: [DONE]\n\n") and b'"finish_reason":"stop"' in rest
    assert client.post("/v1/chat/completions", json=ask(),
                       headers=bearer(made["key"])).status_code == 200
    assert client.get("/key/info", query_string={"key_id": made["key_id"]},
                      headers=ADMIN).status_code == 200
