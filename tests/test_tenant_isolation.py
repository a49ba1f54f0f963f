"""One tenant cannot change another's routes, under real gunicorn: a client's own short
`timeout` never cools a shared deployment down, and configured fallbacks never answer a key
with a model outside its `models`."""
from __future__ import annotations

import pytest
import urllib3

from tests.emulators.openai import openai_error
from tests.emulators.server import Fault
from tests.keys_fixtures import ADMIN, MASTER, ask, bearer

pytestmark = pytest.mark.timeout(120)


def post(proxy, body: dict, headers: dict, timeout: float = 20) -> urllib3.BaseHTTPResponse:
    return urllib3.request("POST", f"{proxy.base_url}/v1/chat/completions", json=body,
                           headers=headers, timeout=timeout, retries=False)


def deployment_state(proxy, name: str) -> dict:
    rows = urllib3.request("GET", f"{proxy.base_url}/health/deployments", headers=ADMIN).json()
    return {row["deployment"]: row for row in rows["deployments"]}[name]


@pytest.fixture
def shared(start_gunicorn, provider_env, write_config, openai_emu):
    """One worker (cooldowns are per worker without Redis), one shared deployment that
    has 1 s to answer; warmed up, so that the first call's set-up costs are behind it."""
    config = write_config(f"""
model_list:
  - model_name: shared
    params: {{model: openai/gpt-4o-mini, api_base: "{openai_emu.base_url}/v1",
              api_key: {openai_emu.api_key}, timeout: 1}}
allowed_fails: 3
cooldown_time: 60
num_retries: 0
""")
    # the emulator's first call loads the API contract it checks calls against: not in 1 s
    assert urllib3.request("POST", f"{openai_emu.base_url}/v1/chat/completions", json=ask(),
                           headers=bearer(openai_emu.api_key), timeout=60).status == 200
    proxy = start_gunicorn({**provider_env, "SWITCHBOARD_CONFIG": config,
                            "SWITCHBOARD_MASTER_KEY": MASTER, "WEB_CONCURRENCY": "1"})
    assert post(proxy, ask(model="shared"), ADMIN).status == 200
    return proxy


def test_a_clients_short_timeout_does_not_cool_a_shared_deployment(shared, openai_emu):
    openai_emu.fail_next(Fault(hang=0.3, times=3))
    for _ in range(3):
        reply = post(shared, ask(model="shared", timeout=0.05), ADMIN)
        assert reply.status == 504 and reply.json()["error"]["code"] == "upstream_timeout"
    state = deployment_state(shared, "shared[0]")
    assert state["state"] == "healthy" and state["recent_failures"] == 0
    after = post(shared, ask(model="shared"), ADMIN)
    assert after.status == 200


def test_the_deployments_own_timeout_still_counts(shared, openai_emu):
    openai_emu.fail_next(Fault(hang=2.0, times=3))
    for _ in range(3):  # no client timeout: the deployment's 1 s runs out
        assert post(shared, ask(model="shared"), ADMIN).status == 504
    assert deployment_state(shared, "shared[0]")["state"] == "cooling_down"


def test_config_fallbacks_respect_the_keys_models(start_gunicorn, provider_env, write_config,
                                                  openai_emu):
    config = write_config(f"""
model_list:
  - model_name: primary
    params: {{model: openai/gpt-4o-mini, api_base: "{openai_emu.base_url}/v1",
              api_key: {openai_emu.api_key}}}
  - model_name: backup
    params: {{model: openai/gpt-4o, api_base: "{openai_emu.base_url}/v1",
              api_key: {openai_emu.api_key}}}
fallbacks: {{primary: [backup]}}
default_fallbacks: [backup]
context_window_fallbacks: {{primary: [backup]}}
num_retries: 0
""")
    proxy = start_gunicorn({**provider_env, "SWITCHBOARD_CONFIG": config,
                            "SWITCHBOARD_MASTER_KEY": MASTER})
    made = urllib3.request("POST", f"{proxy.base_url}/key/generate", headers=ADMIN,
                           json={"models": ["primary"]}).json()
    down = Fault(reply=openai_error(500, "down", "server_error"), times=1)
    openai_emu.fail_next(down)
    refused = post(proxy, ask(model="primary"), bearer(made["key"]))
    assert refused.status == 502
    assert [call.body["model"] for call in openai_emu.calls] == ["gpt-4o-mini"]
    # an unlimited caller still falls back
    openai_emu.fail_next(down)
    answered = post(proxy, ask(model="primary"), ADMIN)
    assert answered.status == 200 and answered.headers["x-switchboard-model"] == "openai/gpt-4o"
