"""Retries, fallbacks, deadlines, cooldowns and balancing, with faults injected upstream."""
from __future__ import annotations

import time

import pytest

from tests.emulators.openai import OpenAIEmulator, openai_error
from tests.emulators.server import Fault, Reply

USER = [{"role": "user", "content": "hi"}]


def ask(client, model="gpt-4", **extra):
    return client.post("/v1/chat/completions", json={"model": model, "messages": USER, **extra})


def models_called(emulator) -> list[str]:
    return [c.body["model"] for c in emulator.calls]


@pytest.mark.parametrize("fault", [
    Fault(reply=openai_error(500, "boom", "server_error")),
    Fault(reply=openai_error(502, "bad gateway", "server_error")),
    Fault(reply=openai_error(503, "overloaded", "server_error")),
    Fault(reply=openai_error(408, "request timeout", "server_error")),
    Fault(reset=True),
    Fault(garbage=b"<html>proxy error</html>"),
], ids=["500", "502", "503", "408", "reset", "garbage"])
def test_transient_failure_is_retried(client, openai_emu, fault):
    openai_emu.fail_next(fault)
    r = ask(client)
    assert r.status_code == 200, r.json
    assert len(openai_emu.calls) == 2
    assert r.headers["x-switchboard-attempted-retries"] == "1"
    assert r.headers["x-switchboard-attempted-fallbacks"] == "0"


def test_fail_first_k_then_succeed(client, openai_emu):
    openai_emu.fail_next(Fault(reply=openai_error(500, "boom", "server_error"), times=3))
    r = ask(client, num_retries=3)
    assert r.status_code == 200
    assert len(openai_emu.calls) == 4
    assert r.headers["x-switchboard-attempted-retries"] == "3"


def test_retries_are_bounded(client, openai_emu):
    openai_emu.fail_next(Fault(reply=openai_error(500, "still down", "server_error"), times=10))
    r = ask(client, num_retries=2)
    assert r.status_code == 502
    assert len(openai_emu.calls) == 3
    assert r.json["error"]["message"].count("still down") == 3


def test_retry_after_is_honoured(client, openai_emu):
    openai_emu.fail_next(Fault(reply=openai_error(429, "slow down", "requests",
                                                  headers={"Retry-After": "1"})))
    started = time.monotonic()
    r = ask(client)
    assert r.status_code == 200
    assert time.monotonic() - started >= 0.95
    assert len(openai_emu.calls) == 2


def test_retry_after_beyond_deadline_falls_back_at_once(client, openai_emu):
    openai_emu.fail_next(Fault(reply=openai_error(429, "slow down", "requests",
                                                  headers={"Retry-After": "120"})))
    started = time.monotonic()
    r = ask(client, timeout=5, fallbacks=["gpt-4o"])
    assert r.status_code == 200
    assert time.monotonic() - started < 2
    assert models_called(openai_emu) == ["gpt-4", "gpt-4o"]
    assert r.headers["x-switchboard-attempted-fallbacks"] == "1"
    assert r.json["model"] == "gpt-4o"


def test_request_error_is_not_retried_nor_fallen_back(client, openai_emu):
    openai_emu.fail_next(Fault(reply=openai_error(400, "Invalid 'messages': bad", "invalid_request_error")))
    r = ask(client, fallbacks=["gpt-4o"])
    assert r.status_code == 400
    assert len(openai_emu.calls) == 1


@pytest.mark.parametrize("status", [401, 403, 404])
def test_provider_auth_and_not_found_fall_back_without_retry(client, openai_emu, status):
    openai_emu.fail_next(Fault(reply=openai_error(status, "nope", "invalid_request_error")))
    r = ask(client, fallbacks=["gpt-4o"])
    assert r.status_code == 200
    assert models_called(openai_emu) == ["gpt-4", "gpt-4o"]
    assert r.headers["x-switchboard-model"] == "gpt-4o"


def test_missing_credentials_fall_back(make_client, openai_emu, azure_emu):
    client = make_client(env={"OPENAI_API_KEY": ""})
    r = ask(client, fallbacks=["azure/backup"])
    assert r.status_code == 200
    assert r.headers["x-switchboard-provider"] == "azure"
    assert not openai_emu.calls


def test_config_fallbacks_and_default_fallbacks(make_client, write_config, openai_emu):
    client = make_client(config=write_config("""
fallbacks: {gpt-4: [gpt-4o-mini]}
default_fallbacks: [gpt-4.1]
num_retries: 0
"""))
    openai_emu.fail_next(Fault(reply=openai_error(500, "down", "server_error")))
    assert ask(client).headers["x-switchboard-model"] == "gpt-4o-mini"
    openai_emu.reset_state()
    openai_emu.fail_next(Fault(reply=openai_error(500, "down", "server_error")))
    assert ask(client, model="gpt-4o").headers["x-switchboard-model"] == "gpt-4.1"


def test_upstream_context_length_error_goes_to_larger_model(make_client, write_config, openai_emu):
    client = make_client(config=write_config(
        "context_window_fallbacks: {gpt-3.5-turbo: [gpt-3.5-turbo-16k]}"))
    openai_emu.fail_next(Fault(reply=openai_error(
        400, "This model's maximum context length is 4097 tokens. However, your messages "
             "resulted in 5000 tokens.", "invalid_request_error", "context_length_exceeded")))
    r = ask(client, model="gpt-3.5-turbo")
    assert r.status_code == 200
    assert models_called(openai_emu) == ["gpt-3.5-turbo", "gpt-3.5-turbo-16k"]


def test_context_length_error_without_context_fallback_uses_fallbacks(client, openai_emu):
    openai_emu.fail_next(Fault(reply=openai_error(
        400, "maximum context length exceeded", "invalid_request_error",
        "context_length_exceeded")))
    r = ask(client, fallbacks=["gpt-4o"])
    assert r.status_code == 200 and r.headers["x-switchboard-model"] == "gpt-4o"


def test_context_window_known_before_the_call(make_client, write_config, openai_emu):
    client = make_client(config=write_config("context_window_fallbacks: {gpt-4: [gpt-4o]}"))
    long_text = "word " * 9000  # gpt-4's registry window is 8,192 tokens
    r = client.post("/v1/chat/completions", json={
        "model": "gpt-4", "messages": [{"role": "user", "content": long_text}]})
    assert r.status_code == 200
    assert models_called(openai_emu) == ["gpt-4o"]
    short = ask(client)
    assert short.status_code == 200 and models_called(openai_emu)[-1] == "gpt-4"


def test_every_route_failing_lists_each_attempt(client, openai_emu):
    openai_emu.fail_next(Fault(reply=openai_error(500, "primary down", "server_error")))
    openai_emu.fail_next(Fault(reply=openai_error(429, "fallback busy", "requests",
                                                  headers={"Retry-After": "99"})))
    r = ask(client, num_retries=0, fallbacks=["gpt-4o", "no-such-model-xyz"])
    assert r.status_code == 429
    assert r.headers["Retry-After"] == "99"
    message = r.json["error"]["message"]
    assert "primary down" in message and "fallback busy" in message
    assert "no-such-model-xyz" in message
    assert set(r.json["error"]) == {"message", "type", "param", "code"}


def test_deadline_bounds_retries_and_fallbacks(client, openai_emu):
    openai_emu.fail_next(Fault(hang=3, reply=openai_error(500, "slow", "server_error"), times=5))
    started = time.monotonic()
    r = ask(client, timeout=1, num_retries=5, fallbacks=["gpt-4o"])
    elapsed = time.monotonic() - started
    assert r.status_code == 504
    assert elapsed < 1.5


def test_hang_falls_back_within_deadline(client, openai_emu):
    openai_emu.fail_next(Fault(hang=2, reply=openai_error(500, "late", "server_error")))
    started = time.monotonic()
    r = ask(client, timeout=3, num_retries=0, fallbacks=["gpt-4o"])
    assert r.status_code == 200
    assert time.monotonic() - started < 3


def test_stream_falls_back_before_first_byte(client, openai_emu):
    openai_emu.fail_next(Fault(reply=openai_error(503, "overloaded", "server_error"), times=3))
    r = ask(client, stream=True, fallbacks=["gpt-4o"])
    assert r.status_code == 200
    assert r.headers["x-switchboard-model"] == "gpt-4o"
    assert r.get_data(as_text=True).endswith("data: [DONE]\n\n")


@pytest.fixture
def second_openai():
    emulator = OpenAIEmulator().start()
    yield emulator
    emulator.stop()


def two_deployments(write_config, first, second, extra=""):
    return write_config(f"""
model_list:
  - model_name: team-model
    params: {{model: openai/gpt-4o, api_base: "{first.base_url}/v1", api_key: {first.api_key}}}
  - model_name: team-model
    params: {{model: openai/gpt-4o, api_base: "{second.base_url}/v1", api_key: {second.api_key}}}
{extra}""")


def test_failed_deployment_cools_down_and_others_serve(make_client, write_config, openai_emu,
                                                      second_openai):
    client = make_client(config=two_deployments(
        write_config, openai_emu, second_openai, "allowed_fails: 2\ncooldown_time: 30"))
    openai_emu.fail_next(Fault(reply=openai_error(500, "down", "server_error"), times=100))
    for _ in range(20):
        assert ask(client, model="team-model").status_code == 200
    assert len(openai_emu.calls) == 2  # then it was cooled down and skipped
    health = client.get("/health/deployments").json["deployments"]
    states = {d["deployment"]: d for d in health}
    assert states["team-model[0]"]["state"] == "cooling_down"
    assert states["team-model[0]"]["cooling_down_until"] > time.time()
    assert states["team-model[1]"]["state"] == "healthy"
    assert states["team-model[1]"]["successes"] >= 18


def test_cooldown_ends_by_itself(make_client, write_config, openai_emu, second_openai):
    client = make_client(config=two_deployments(
        write_config, openai_emu, second_openai, "allowed_fails: 1\ncooldown_time: 0.5"))
    openai_emu.fail_next(Fault(reply=openai_error(500, "down", "server_error"), times=1))
    while not openai_emu.calls:
        ask(client, model="team-model")
    time.sleep(0.6)
    for _ in range(30):
        ask(client, model="team-model")
    assert len(openai_emu.calls) > 1


def test_weights_steer_traffic(make_client, write_config, openai_emu, second_openai):
    config = write_config(f"""
model_list:
  - model_name: team-model
    params: {{model: openai/gpt-4o, api_base: "{openai_emu.base_url}/v1", api_key: {openai_emu.api_key}, weight: 0}}
  - model_name: team-model
    params: {{model: openai/gpt-4o, api_base: "{second_openai.base_url}/v1", api_key: {second_openai.api_key}, weight: 5}}
""")
    client = make_client(config=config)
    for _ in range(10):
        ask(client, model="team-model")
    assert not openai_emu.calls and len(second_openai.calls) == 10


def test_shuffle_spreads_load(make_client, write_config, openai_emu, second_openai):
    client = make_client(config=two_deployments(write_config, openai_emu, second_openai))
    for _ in range(40):
        ask(client, model="team-model")
    assert len(openai_emu.calls) >= 5 and len(second_openai.calls) >= 5


@pytest.mark.parametrize("strategy", ["least-busy", "lowest-latency"])
def test_other_strategies_serve(make_client, write_config, openai_emu, second_openai, strategy):
    client = make_client(config=two_deployments(write_config, openai_emu, second_openai,
                                                f"routing_strategy: {strategy}"))
    for _ in range(10):
        assert ask(client, model="team-model").status_code == 200
    assert openai_emu.calls and second_openai.calls


def test_invalid_per_request_options(client):
    assert ask(client, fallbacks="gpt-4o").json["error"]["param"] == "fallbacks"
    assert ask(client, num_retries=-1).json["error"]["param"] == "num_retries"
    assert ask(client, timeout=0).json["error"]["param"] == "timeout"


def test_cooldowns_shared_through_redis(make_client, write_config, openai_emu, second_openai,
                                        redis_url):
    """Two proxies (think: two workers or instances) share one cooldown state in Redis."""
    config = two_deployments(write_config, openai_emu, second_openai,
                             "allowed_fails: 1\ncooldown_time: 30")
    first = make_client(env={"REDIS_URL": redis_url}, config=config)
    other = make_client(env={"REDIS_URL": redis_url}, config=config)
    openai_emu.fail_next(Fault(reply=openai_error(500, "down", "server_error"), times=100))
    while not openai_emu.calls:
        assert ask(first, model="team-model").status_code == 200
    for _ in range(20):
        assert ask(other, model="team-model").status_code == 200
    assert len(openai_emu.calls) == 1  # the other proxy skipped the cooled deployment
    states = {d["deployment"]: d for d in other.get("/health/deployments").json["deployments"]}
    assert states["team-model[0]"]["state"] == "cooling_down"


def test_unreachable_redis_does_not_fail_requests(make_client, write_config, openai_emu,
                                                  second_openai):
    from tests.conftest import free_port
    config = two_deployments(write_config, openai_emu, second_openai, "allowed_fails: 1")
    client = make_client(env={"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}, config=config)
    openai_emu.fail_next(Fault(reply=openai_error(500, "down", "server_error"), times=3))
    for _ in range(6):
        assert ask(client, model="team-model").status_code == 200
