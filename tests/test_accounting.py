"""Usage and cost on every completion: the provider's usage, else counted; the cost header."""
from __future__ import annotations

from decimal import Decimal

from app.usage.tokens import count_messages, count_text
from tests.emulators.server import Fault, Reply

USER = [{"role": "user", "content": "price this"}]


def completion_body(usage):
    return {"id": "chatcmpl-u", "object": "chat.completion", "created": 1, "model": "gpt-4",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "two words"},
                         "finish_reason": "stop"}], **({"usage": usage} if usage else {})}


def test_cost_header_from_registry_prices(client, openai_emu):
    r = client.post("/v1/chat/completions", json={"model": "gpt-4", "messages": USER})
    usage = r.json["usage"]
    # gpt-4: $0.00003 per input token, $0.00006 per output token (registry)
    expected = Decimal("0.00003") * usage["prompt_tokens"] + \
        Decimal("0.00006") * usage["completion_tokens"]
    assert Decimal(r.headers["x-switchboard-cost"]) == expected


def test_cached_tokens_priced_at_cache_read_price(client, openai_emu):
    openai_emu.fail_next(Fault(reply=Reply(200, completion_body({
        "prompt_tokens": 1000, "completion_tokens": 10, "total_tokens": 1010,
        "prompt_tokens_details": {"cached_tokens": 800}}))))
    r = client.post("/v1/chat/completions", json={"model": "gpt-4o", "messages": USER})
    # gpt-4o: input 2.5e-06, cached input 1.25e-06, output 1e-05
    expected = Decimal("200") * Decimal("0.0000025") + Decimal("800") * Decimal("0.00000125") + \
        Decimal("10") * Decimal("0.00001")
    assert Decimal(r.headers["x-switchboard-cost"]) == expected


def test_deployment_price_override(make_client, write_config, openai_emu):
    client = make_client(config=write_config(f"""
model_list:
  - model_name: tuned
    params: {{model: openai/ft:gpt-4o:acme, api_base: "{openai_emu.base_url}/v1",
             api_key: {openai_emu.api_key}, input_cost_per_token: 0.001,
             output_cost_per_token: 0.002}}
"""))
    r = client.post("/v1/chat/completions", json={"model": "tuned", "messages": USER})
    usage = r.json["usage"]
    expected = Decimal("0.001") * usage["prompt_tokens"] + Decimal("0.002") * usage[
        "completion_tokens"]
    assert Decimal(r.headers["x-switchboard-cost"]) == expected


def test_missing_usage_is_counted_with_tiktoken(client, openai_emu):
    openai_emu.fail_next(Fault(reply=Reply(200, completion_body(None))))
    r = client.post("/v1/chat/completions", json={"model": "gpt-4", "messages": USER})
    usage = r.json["usage"]
    assert usage["prompt_tokens"] == count_messages("gpt-4", USER)
    assert usage["completion_tokens"] == count_text("gpt-4", "two words")
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_stream_usage_chunk_carries_cost(client):
    r = client.post("/v1/chat/completions", json={
        "model": "gpt-4", "messages": USER, "stream": True,
        "stream_options": {"include_usage": True}})
    import json
    frames = [json.loads(b[6:]) for b in r.get_data(as_text=True).split("\n\n")
              if b.startswith("data: {")]
    usage = frames[-1]["usage"]
    expected = Decimal("0.00003") * usage["prompt_tokens"] + \
        Decimal("0.00006") * usage["completion_tokens"]
    assert Decimal(repr(usage["cost"])).quantize(Decimal("1e-12")) == expected


def test_base_model_gives_an_azure_deployment_its_prices(make_client, write_config, azure_emu):
    client = make_client(config=write_config("""
model_list:
  - model_name: team-gpt
    params: {model: azure/prod-gpt4o, base_model: gpt-4o}
"""))
    r = client.post("/v1/chat/completions", json={"model": "team-gpt", "messages": USER})
    usage = r.json["usage"]
    expected = Decimal("0.0000025") * usage["prompt_tokens"] + \
        Decimal("0.00001") * usage["completion_tokens"]
    assert Decimal(r.headers["x-switchboard-cost"]) == expected > 0


def test_unknown_base_model_is_a_config_error(write_config):
    from app.config import load_settings
    from app.service.completion import CompletionService
    import pytest
    from app.config import ConfigError
    with pytest.raises(ConfigError, match="base_model"):
        CompletionService(load_settings({}, write_config(
            "model_list: [{model_name: x, params: {model: azure/d, base_model: gpt-nope}}]")))
