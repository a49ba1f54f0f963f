"""SWITCHBOARD_LOG_FORMAT=json: every line gunicorn and the proxy write is one JSON object,
requests are findable by id, and no key or message text is in them."""
from __future__ import annotations

import json

import urllib3

from tests.keys_fixtures import ADMIN, MASTER, ask, bearer
from tests.servers import free_port

SECRET_TEXT = "my very private prompt 7731"


def _lines(proxy) -> list[dict]:
    text = proxy.log()
    lines = [line for line in text.splitlines() if line.strip()]
    parsed = []
    for line in lines:
        parsed.append(json.loads(line))  # fails the test on any line that is not JSON
    return parsed


def test_json_logs_by_request_id_without_secrets(start_gunicorn, provider_env, tmp_path,
                                                  openai_emu):
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    config = tmp_path / "switchboard.yaml"
    config.write_text("cache: {enabled: true, backend: redis}\n")
    # No SWITCHBOARD_ACCESS_LOG: the JSON format has its access line per request by default.
    proxy = start_gunicorn({**provider_env, "SWITCHBOARD_LOG_FORMAT": "json",
                            "SWITCHBOARD_MASTER_KEY": MASTER,
                            "REDIS_URL": dead_redis, "SWITCHBOARD_CONFIG": str(config)})
    http = urllib3.PoolManager()
    key = json.loads(http.request("POST", f"{proxy.base_url}/key/generate", json={},
                                  headers=ADMIN).data)["key"]
    answer = http.request("POST", f"{proxy.base_url}/v1/chat/completions",
                          json=ask(SECRET_TEXT), headers={**bearer(key), "x-request-id": "req-42"})
    assert answer.status == 200
    proxy.stop()
    lines = _lines(proxy)
    assert all({"time", "level", "message"} <= set(line) for line in lines)
    access = [line for line in lines if line.get("request_id") == "req-42"
              and line["message"] == "request"]
    assert len(access) == 1
    entry = access[0]
    assert entry["status"] == 200 and entry["path"] == "/v1/chat/completions"
    assert entry["model"] == "gpt-4o-mini" and entry["latency_ms"] > 0
    assert entry["key_id"] and key.startswith(f"sk-sb-{entry['key_id']}")
    # The cache failure logged while serving the request carries its id too.
    inside = [line for line in lines if line.get("request_id") == "req-42"
              and line["message"].startswith("cache ")]
    assert inside and inside[0]["level"] == "WARNING"
    text = proxy.log()
    for secret in (key, MASTER, openai_emu.api_key, SECRET_TEXT):
        assert secret not in text


def test_text_logs_stay_the_default(start_gunicorn, provider_env):
    proxy = start_gunicorn({**provider_env, "SWITCHBOARD_ACCESS_LOG": "-"})
    urllib3.request("GET", f"{proxy.base_url}/health")
    proxy.stop()
    assert "Booting worker" in proxy.log()
    assert not proxy.log().lstrip().startswith("{")
