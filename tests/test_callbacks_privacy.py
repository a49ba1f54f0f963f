"""What leaves the proxy: no credential in any payload or log line, no prompt or completion
under `redact_messages`, nothing at all for a request that opted out (when allowed)."""
from __future__ import annotations

import json

import pytest
import urllib3

from tests.capture import (CONFIG, INTEGRATION_SECRETS, MIXPANEL_TOKEN, POSTHOG_KEY, make_proxy,
                           metric, start_services)
from tests.emulators.server import Fault, Reply

CONFIG_KEY = "sk-config-literal-key-0123456789abcdef"


@pytest.fixture
def services():
    started = start_services()
    yield started
    started.stop()


def payloads(services) -> list[tuple[str, str]]:
    """Every captured request as text (headers and body), less the one place each protocol
    requires the service's own credential: PostHog's body `api_key`, Mixpanel's `token`."""
    found = []
    for name, server in services.servers.items():
        for request in server.requests:
            body = request.body.decode()
            if name == "posthog":
                body = json.dumps({k: v for k, v in request.json().items() if k != "api_key"})
                assert POSTHOG_KEY not in body
            if name == "mixpanel":
                events = json.loads(request.form()["data"])
                for event in events:
                    assert event["properties"].pop("token") == MIXPANEL_TOKEN
                body = json.dumps(events)
            headers = {k: v for k, v in request.headers.items()
                       if k not in ("authorization", "apikey", "x-sentry-auth")}
            found.append((name, json.dumps(headers) + body))
    return found


def test_no_secret_in_any_payload_or_log_line(services, start_gunicorn, provider_env,
                                              openai_emu, write_config):
    config = write_config(CONFIG + f"""
model_list:
  - model_name: team-model
    params: {{model: openai/gpt-4, api_key: {CONFIG_KEY}, api_base: {openai_emu.base_url}/v1}}
""")
    proxy = start_gunicorn({**provider_env, **services.env(), "SWITCHBOARD_CONFIG": config})
    services.servers["helicone"].fail()  # failures get logged: those lines are checked too
    http = urllib3.PoolManager()

    def chat(model, request_id, text="hi", metadata=None):
        return http.request("POST", f"{proxy.base_url}/v1/chat/completions",
                            json={"model": model, "user": "u1", "metadata": metadata or {},
                                  "messages": [{"role": "user", "content": text}]},
                            headers={"x-request-id": request_id, "authorization": "Bearer "
                                     + openai_emu.api_key})
    assert chat("gpt-4", "s-ok").status == 200
    # A user pastes a key into a prompt (the emulator echoes it back in the answer) and
    # into metadata: the proxy's own credentials are filtered from what it logs.
    assert chat("gpt-4", "s-pasted", text=f"is {INTEGRATION_SECRETS[0]} valid?",
                metadata={"note": openai_emu.api_key}).status == 200
    # An upstream that echoes the key it was sent, in its error message.
    for key in (openai_emu.api_key, CONFIG_KEY):
        openai_emu.fail_next(Fault(reply=Reply(500, {"error": {
            "message": f"internal error for key {key}", "type": "server_error"}})))
    assert chat("gpt-4", "s-echo-1").status == 502
    assert chat("team-model", "s-echo-2").status == 502
    proxy.stop()  # graceful: every queue is flushed

    secrets = (*INTEGRATION_SECRETS, CONFIG_KEY, *(v for k, v in provider_env.items()
                                                   if k.endswith("_KEY")))
    sent = payloads(services)
    assert {name for name, _ in sent} == {"supabase", "posthog", "mixpanel", "sentry",
                                          "helicone"}
    assert any("s-echo-1" in text and "[Filtered]" in text for name, text in sent
               if name == "sentry")
    for name, text in sent:
        for secret in secrets:
            assert secret not in text, f"{name} received a credential"
    log = proxy.log()
    assert "helicone: " in log and "HTTP 500" in log
    for secret in secrets:
        assert secret not in log


def test_redact_messages_keeps_prompts_and_answers_home(services, provider_env, openai_emu,
                                                       write_config):
    proxy = make_proxy({**provider_env, **services.env()},
                       write_config(CONFIG + "redact_messages: true\n"))
    secret_prompt = "my bank PIN is 4821"
    assert proxy.chat("r-ok", messages=[{"role": "user", "content": secret_prompt}]).status_code \
        == 200
    proxy.chat("r-stream", stream=True,
               messages=[{"role": "user", "content": secret_prompt}]).get_data()
    openai_emu.fail_next(Fault(reply=Reply(500, {"error": {"message": "down"}})))
    proxy.chat("r-fail", messages=[{"role": "user", "content": secret_prompt}])
    proxy.close()
    sent = payloads(services)
    for name, text in sent:
        assert "4821" not in text and "You said" not in text, name
    rows = {r["request_id"]: r for p in services.servers["supabase"].requests for r in p.json()}
    ok = rows["r-ok"]
    assert ok["messages"] is None and "message" not in ok["response"]["choices"][0]
    assert ok["prompt_tokens"] > 0 and ok["cost"] > 0 and ok["model"] == "gpt-4"
    assert ok["response"]["usage"]["total_tokens"] > 0 and ok["latency_ms"] > 0
    assert rows["r-stream"]["completion_tokens"] > 0


@pytest.mark.parametrize("allowed", [True, False])
def test_a_request_can_opt_out_when_the_operator_allows(services, provider_env, openai_emu,
                                                        write_config, allowed):
    config = CONFIG.replace("timeout: 2", f"timeout: 2\n  allow_client_opt_out: {allowed}")
    proxy = make_proxy({**provider_env, **services.env()}, write_config(config))
    counted = metric("switchboard_requests_total", model="gpt-4", provider="openai",
                     status="200")
    proxy.chat("quiet", headers={"x-switchboard-callbacks": "off"})
    proxy.chat("loud")
    proxy.close()
    rows = [r["request_id"] for p in services.servers["supabase"].requests for r in p.json()]
    assert rows == (["loud"] if allowed else ["quiet", "loud"])
    assert metric("switchboard_requests_total", model="gpt-4", provider="openai",
                  status="200") - counted == 2  # the operator's metrics count both
