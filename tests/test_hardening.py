"""Hostile input: upstream settings aimed inside the network, oversized and deeply nested
bodies, oversized headers, and secrets that must never come back out."""
from __future__ import annotations

import socket
import time

import pytest
import urllib3

from tests.emulators.server import Fault, Reply
from tests.keys_fixtures import ADMIN, MASTER, ask, bearer, generate
from tests.keys_fixtures import keyed  # noqa: F401  (the fixture)

BLOCKED_BASES = [
    "http://127.0.0.1:{port}/v1", "http://localhost:{port}/v1", "http://[::1]:{port}/v1",
    "http://[::ffff:127.0.0.1]:{port}/v1", "http://2130706433:{port}/v1", "http://0.0.0.0/v1",
    "http://169.254.169.254/latest/meta-data/", "http://metadata.google.internal/v1",
    "http://[fe80::1]/v1", "http://10.1.2.3/v1", "http://192.168.0.1/v1", "http://172.16.0.1/v1",
    "http://100.64.0.1/v1", "http://[fd00:ec2::254]/v1", "http://[64:ff9b::7f00:1]/v1",
    "http://[2002:7f00:1::]/v1", "file:///etc/passwd", "gopher://127.0.0.1:6379/_INFO",
    "http://user:secret@example.com/v1", "http://:80/v1", "http://example.com:99999/v1",
]


@pytest.fixture
def open_models(keyed, write_config):
    """Two models whose operators let clients choose the connection: one for public hosts
    only, one that also allows loopback."""
    return keyed(config=write_config("""
model_list:
  - model_name: byo
    params: {model: openai/gpt-4o-mini, allow_client_connection: true}
  - model_name: byo-local
    params: {model: openai/gpt-4o-mini, allow_client_connection: true,
             client_networks: ["127.0.0.0/8"]}
"""))


@pytest.mark.parametrize("field", ["api_base", "base_url", "api_key", "api_version",
                                   "organization", "extra_headers"])
def test_connection_settings_are_refused_by_default(keyed, openai_emu, field):
    value = ({"Host": "internal"} if field == "extra_headers"
             else f"http://127.0.0.1:{openai_emu.port}")
    response = keyed().post("/chat/completions", json=ask(**{field: value}), headers=ADMIN)
    assert response.status_code == 400
    assert response.json["error"] == {**response.json["error"], "param": field,
                                      "code": "forbidden_param"}
    assert openai_emu.calls == []


@pytest.mark.parametrize("base", BLOCKED_BASES)
def test_internal_addresses_are_refused_even_where_allowed(open_models, openai_emu, base):
    response = open_models.post("/chat/completions", headers=ADMIN, json=ask(
        model="byo", api_base=base.format(port=openai_emu.port), api_key="sk-client-own-key-1"))
    assert response.status_code == 400, base
    assert response.json["error"]["code"] == "api_base_not_allowed"
    assert "sk-client-own-key-1" not in response.get_data(as_text=True)
    assert openai_emu.calls == []


def test_organization_and_headers_stay_refused_where_allowed(open_models, openai_emu):
    for field, value in (("organization", "org-x"), ("extra_headers", {"X-A": "b"})):
        response = open_models.post("/chat/completions", headers=ADMIN,
                                    json=ask(model="byo", **{field: value}))
        assert response.status_code == 400 and response.json["error"]["param"] == field


def test_a_listed_network_is_reached_with_the_clients_key_never_the_operators(
        open_models, openai_emu):
    base = f"http://127.0.0.1:{openai_emu.port}/v1"
    without_key = open_models.post("/chat/completions", headers=ADMIN,
                                   json=ask(model="byo-local", api_base=base))
    assert without_key.status_code == 401  # the emulator wants a key; ours is not sent
    assert "authorization" not in openai_emu.calls[-1].headers
    with_key = open_models.post("/chat/completions", headers=ADMIN, json=ask(
        "own server", model="byo-local", api_base=base, api_key=openai_emu.api_key))
    assert with_key.status_code == 200
    assert with_key.json["choices"][0]["message"]["content"] == "Hello! You said: own server"
    logs = open_models.get("/spend/logs", headers=ADMIN).json["data"]
    assert openai_emu.api_key not in str(logs)


def test_deeply_nested_bodies_are_refused_before_validation(keyed):
    client = keyed()
    nested: object = "x"
    for _ in range(70):
        nested = {"a": nested}
    response = client.post("/chat/completions", json=ask(metadata=nested), headers=ADMIN)
    assert response.status_code == 400
    assert response.json["error"]["code"] == "too_deeply_nested"
    listed: object = 1
    for _ in range(70):
        listed = [listed]
    response = client.post("/key/generate", json={"metadata": {"x": listed}}, headers=ADMIN)
    assert response.status_code == 400
    assert response.json["error"]["code"] == "too_deeply_nested"
    # Deeper than the JSON parser goes: still a clean 400.
    bomb = "[" * 100_000 + "]" * 100_000
    response = client.post("/chat/completions", data=bomb, content_type="application/json",
                           headers=ADMIN)
    assert response.status_code == 400
    shallow: object = "x"
    for _ in range(60):
        shallow = {"a": shallow}
    response = client.post("/chat/completions", json=ask(metadata=shallow), headers=ADMIN)
    assert response.status_code == 200


def test_oversized_bodies_are_refused_before_auth_reads_them(keyed):
    client = keyed({"SWITCHBOARD_MAX_REQUEST_BYTES": "1000"})
    response = client.post("/chat/completions", json=ask("x" * 2000), headers=ADMIN)
    assert response.status_code == 413
    assert client.post("/chat/completions", json=ask("x" * 2000)).status_code == 401


def test_upstream_errors_are_scrubbed_of_virtual_and_master_keys(keyed, openai_emu):
    client = keyed()
    key = generate(client)["key"]
    openai_emu.fail_next(Fault(reply=Reply(400, {"error": {
        "message": f"echo: {key} and {MASTER} and {openai_emu.api_key}",
        "type": "invalid_request_error"}})))
    response = client.post("/chat/completions", json=ask(), headers=bearer(key))
    assert response.status_code == 400
    text = response.get_data(as_text=True)
    assert "echo:" in text and "[redacted]" in text
    for secret in (key, MASTER, openai_emu.api_key):
        assert secret not in text
    assert key not in str(client.get("/spend/logs", headers=ADMIN).json)


def test_gunicorn_limits_headers_and_keeps_secrets_out_of_its_log(start_gunicorn, provider_env,
                                                                   tmp_path):
    proxy = start_gunicorn({**provider_env, "SWITCHBOARD_MASTER_KEY": MASTER,
                            "SWITCHBOARD_DATA_DIR": str(tmp_path / "data"),
                            "SWITCHBOARD_ACCESS_LOG": "-"})
    http = urllib3.PoolManager()
    made = http.request("POST", f"{proxy.base_url}/key/generate", json={}, headers=ADMIN).json()
    key = made["key"]
    url = f"{proxy.base_url}/v1/chat/completions"
    assert http.request("POST", url, json=ask(), headers=bearer(key)).status == 200
    assert http.request("POST", f"{url}?api_key={key}", json=ask()).status == 401
    assert http.request("POST", url, json=ask(), headers=bearer(key + "x")).status == 401
    many = {f"x-h{i}": "v" for i in range(120)}
    too_many = http.request("POST", url, json=ask(), headers={**many, **bearer(key)})
    huge = http.request("POST", url, json=ask(), headers={"x-big": "v" * 9000, **bearer(key)})
    long_line = http.request("GET", f"{proxy.base_url}/health?" + "q" * 9000)
    # gunicorn refuses these before the app runs; the answers still take OpenAI's shape
    for answer, status, code in ((too_many, 431, "request_headers_too_large"),
                                 (huge, 431, "request_headers_too_large"),
                                 (long_line, 414, "request_line_too_long")):
        assert answer.status == status
        assert answer.headers["Content-Type"] == "application/json"
        error = answer.json()["error"]
        assert error["code"] == code and error["type"] == "invalid_request_error"
        assert set(error) == {"message", "type", "param", "code"}
    # a header line without its colon is quoted back by gunicorn: never the key in it
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as raw:
        raw.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                    b"Authorization Bearer " + key.encode() + b"\r\n\r\n")
        reply = raw.recv(65536).decode()
    assert reply.startswith("HTTP/1.1 400 ") and '"code":"invalid_request"' in reply
    assert key not in reply and "[redacted]" in reply
    proxy.stop()
    log = proxy.log()
    assert "POST /v1/chat/completions" in log  # the access log is on
    assert "Invalid HTTP Header" in log  # gunicorn logged the bad header line, scrubbed
    for secret in (MASTER, key, key.split("_", 1)[1]):
        assert secret not in log
    assert "SWITCHBOARD_MASTER_KEY is not set" not in log


def test_gunicorn_warns_once_when_no_master_key_is_set(start_gunicorn, provider_env, tmp_path):
    proxy = start_gunicorn({**provider_env, "SWITCHBOARD_DATA_DIR": str(tmp_path / "data")})
    proxy.stop()
    assert proxy.log().count("SWITCHBOARD_MASTER_KEY is not set") == 1


def test_a_body_may_hold_a_bounded_number_of_json_values(keyed):
    from app.api.limits import MAX_JSON_VALUES
    client = keyed()
    # ask() holds 6 values; metadata's object and array 2 more
    at_limit = ask(metadata={"x": [0] * (MAX_JSON_VALUES - 8)})
    assert client.post("/chat/completions", json=at_limit, headers=ADMIN).status_code == 200
    over = ask(metadata={"x": [0] * (MAX_JSON_VALUES - 7)})
    response = client.post("/chat/completions", json=over, headers=ADMIN)
    assert response.status_code == 400
    assert response.json["error"]["code"] == "too_many_values"
    assert str(MAX_JSON_VALUES) in response.json["error"]["message"]
    # commas and brackets inside strings are text, not values
    text = ask("[a], {b}, " * (MAX_JSON_VALUES // 2), max_tokens=5)
    assert client.post("/chat/completions", json=text, headers=ADMIN).status_code == 200
    escaped = ask('\\"[1,2]\\", ' * (MAX_JSON_VALUES // 2), max_tokens=5)
    assert client.post("/chat/completions", json=escaped, headers=ADMIN).status_code == 200


def test_millions_of_tiny_values_are_refused_at_once_without_stalling_the_worker(
        start_gunicorn, provider_env):
    proxy = start_gunicorn({**provider_env, "WEB_CONCURRENCY": "1"})
    http = urllib3.PoolManager()
    url = f"{proxy.base_url}/v1/chat/completions"
    assert http.request("POST", url, json=ask(), timeout=60).status == 200  # warm
    body = (b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], '
            b'"metadata": {"x": [' + b",".join([b"[]"] * 3_300_000) + b"]}}")
    assert len(body) < 10 * 1024 * 1024
    for _ in range(3):
        started = time.monotonic()
        response = http.request("POST", url, body=body, timeout=30,
                                headers={"Content-Type": "application/json"})
        assert response.status == 400 and response.json()["error"]["code"] == "too_many_values"
        assert time.monotonic() - started < 3.0  # parsing it alone took 5-10 s
    started = time.monotonic()
    assert http.request("GET", f"{proxy.base_url}/health").status == 200
    assert time.monotonic() - started < 1.0
