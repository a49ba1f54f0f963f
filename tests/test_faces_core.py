"""The faces core through the library API: a NativeRequest passes through untouched to a
provider that speaks its format and is translated for any other, per attempt, with the
usage read from the native answer for the bill and the ledger's `api` column."""
from __future__ import annotations

from app.config import load_settings
from app.faces.messages import MESSAGES
from app.providers.base import NativeEvent, NativeRequest
from app.service.completion import CompletionService
from app.service.events import RequestContext
from app.service.passthrough import Passthrough
from app.usage.ledger import ledger_of
from app.usage.spend import LogFilter, Spend, Window
from tests.emulators.anthropic import AnthropicEmulator, anthropic_error
from tests.emulators.server import Fault
from tests.provider_fixtures import emulator_fixture

anthropic_emu = emulator_fixture(AnthropicEmulator, "anthropic_emu")

NATIVE = {"model": "claude-sonnet-4-5", "max_tokens": 64,
          "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
          "messages": [{"role": "user", "content": [{"type": "text", "text": "ping"}]}],
          "top_k": 5, "metadata": {"user_id": "u-1"}}
# What a face would hand the service as the translation of NATIVE.
PARAMS = {"model": "claude-sonnet-4-5", "max_tokens": 64,
          "messages": [{"role": "system", "content": "Be brief."},
                       {"role": "user", "content": "ping"}]}


def service(env, config=None) -> CompletionService:
    return CompletionService(load_settings(env, config))


def env_of(anthropic_emu, provider_env):
    return {**provider_env, **anthropic_emu.proxy_env()}


def test_native_body_passes_through_and_is_billed(anthropic_emu, provider_env):
    svc = service(env_of(anthropic_emu, provider_env))
    native = NativeRequest("messages", NATIVE, {"anthropic-beta": "context-1m-2025-08-07",
                                                "anthropic-version": "2023-06-01"})
    outcome = svc.complete(dict(PARAMS), RequestContext(api="messages"),
                           Passthrough(native, MESSAGES))
    call = anthropic_emu.calls[-1]
    assert call.body == NATIVE  # untouched: system blocks, cache_control, top_k, metadata
    assert call.headers["anthropic-beta"] == "context-1m-2025-08-07"
    assert outcome.passthrough and outcome.native["type"] == "message"
    assert outcome.native["content"][0]["text"] == outcome.response["choices"][0]["message"][
        "content"]
    assert outcome.bill.counts.prompt == outcome.native["usage"]["input_tokens"] + (
        outcome.native["usage"].get("cache_creation_input_tokens") or 0) + (
        outcome.native["usage"].get("cache_read_input_tokens") or 0)
    assert outcome.bill.cost > 0
    ledger = ledger_of(svc)
    assert ledger.flush(10)
    rows, _ = Spend(ledger.database).logs(Window(), LogFilter(api="messages"), 10)
    assert [(r["api"], r["provider"]) for r in rows] == [("messages", "anthropic")]


def test_native_stream_events_pass_unchanged(anthropic_emu, provider_env):
    svc = service(env_of(anthropic_emu, provider_env))
    native = NativeRequest("messages", {**NATIVE, "stream": True})
    outcome = svc.complete({**PARAMS, "stream": True}, RequestContext(api="messages"),
                           Passthrough(native, MESSAGES))
    events = list(outcome.chunks)
    assert all(isinstance(e, NativeEvent) for e in events)
    assert [e.event for e in events][0] == "message_start"
    assert [e.event for e in events][-1] == "message_stop"
    assert outcome.stream.bill.cost > 0 and outcome.stream.completion()["choices"][0][
        "message"]["content"]


def test_fallback_from_native_to_translated_in_one_request(anthropic_emu, openai_emu,
                                                           provider_env, tmp_path):
    anthropic_emu.fail_next(Fault(reply=anthropic_error(529, "overloaded_error", "busy"),
                                  times=5))
    svc = service(env_of(anthropic_emu, provider_env))
    native = NativeRequest("messages", {**NATIVE, "model": "claude-sonnet-4-5"})
    outcome = svc.complete({**PARAMS, "fallbacks": ["gpt-4o-mini"], "num_retries": 0},
                           RequestContext(api="messages"), Passthrough(native, MESSAGES))
    assert not outcome.passthrough and outcome.native is None
    assert outcome.target.provider == "openai" and outcome.trail.fallbacks == 1
    assert openai_emu.calls[-1].body["messages"][0] == {"role": "system", "content": "Be brief."}
