"""The library API: completion() and acompletion(), sync and streaming, without the server."""
from __future__ import annotations

import asyncio
import time

import pytest

import app.service as service_module
from app import acompletion, completion
from app.config import load_settings
from app.service.completion import CompletionService
from tests.emulators.server import Fault, Reply

USER = [{"role": "user", "content": "library call"}]


@pytest.fixture(autouse=True)
def library_service(provider_env):
    service_module._default = CompletionService(load_settings(provider_env))
    yield
    service_module._default = None


def test_completion(openai_emu):
    result = completion("gpt-4", USER, temperature=0)
    assert result["choices"][0]["message"]["content"] == "Hello! You said: library call"
    assert openai_emu.calls[-1].body["temperature"] == 0


def test_completion_stream():
    chunks = list(completion("gpt-4", USER, stream=True))
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == \
        "Hello! You said: library call"


def test_completion_errors_are_proxy_errors():
    from app.errors import ProxyError
    with pytest.raises(ProxyError) as info:
        completion("no-such-model-xyz", USER)
    assert info.value.status == 404 and info.value.code == "model_not_found"


def test_acompletion_does_not_block_the_loop(openai_emu):
    openai_emu.fail_next(Fault(hang=0.5, reply=Reply(200, {
        "id": "chatcmpl-x", "object": "chat.completion", "created": 1, "model": "gpt-4",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "late"},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})))

    async def main():
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.05)
                ticks += 1

        task = asyncio.create_task(ticker())
        result = await acompletion("gpt-4", USER)
        task.cancel()
        return result, ticks

    result, ticks = asyncio.run(main())
    assert result["choices"][0]["message"]["content"] == "late"
    assert ticks >= 5


def test_acompletion_stream_and_concurrency():
    async def one(i):
        stream = await acompletion("gpt-4", [{"role": "user", "content": f"n{i}"}], stream=True)
        return "".join([c["choices"][0]["delta"].get("content") or "" async for c in stream])

    async def main():
        return await asyncio.gather(*(one(i) for i in range(5)))

    assert asyncio.run(main()) == [f"Hello! You said: n{i}" for i in range(5)]


def test_acompletion_stream_stopped_early_frees_upstream(openai_emu):
    async def main():
        stream = await acompletion("gpt-4", USER, stream=True)
        async for _ in stream:
            break
        await stream.aclose()

    before = openai_emu.closed_streams
    asyncio.run(main())
    deadline = time.monotonic() + 5
    while openai_emu.closed_streams == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert openai_emu.closed_streams > before


def test_acompletion_error():
    from app.errors import ProxyError
    with pytest.raises(ProxyError) as info:
        asyncio.run(acompletion("no-such-model-xyz", USER))
    assert info.value.code == "model_not_found"


def test_library_input_is_validated_like_http():
    from app.errors import InvalidRequestError
    with pytest.raises(InvalidRequestError) as info:
        completion("gpt-4", ["not a message"])
    assert info.value.param == "messages[0]"
    with pytest.raises(InvalidRequestError) as info:
        completion("gpt-4", USER, temperature=7)
    assert info.value.param == "temperature"


def test_a_proxy_fault_still_publishes_its_event(monkeypatch):
    service = service_module._default
    events = []
    service.events.subscribe(events.append)

    def broken(*args, **kwargs):
        raise RuntimeError("bug")

    monkeypatch.setattr(service.attempts, "run", broken)
    with pytest.raises(RuntimeError):
        completion("gpt-4", USER)
    assert events[-1].status == 500 and events[-1].error_code == "internal_error"
