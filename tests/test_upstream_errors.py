"""Upstream failures become clear OpenAI-style errors that name the provider, never a key."""
from __future__ import annotations

import pytest

from tests.emulators.server import Fault, Reply

USER = [{"role": "user", "content": "hi"}]


@pytest.fixture
def client(make_client, write_config):
    """A proxy that reports the first upstream failure as it is (no retries, no fallbacks)."""
    return make_client(config=write_config("num_retries: 0"))


def openai_body(message: str, type_: str = "invalid_request_error", code=None) -> dict:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


@pytest.mark.parametrize("upstream,expected,type_", [
    (400, 400, "invalid_request_error"), (401, 401, "authentication_error"),
    (403, 403, "permission_error"), (404, 404, "not_found_error"),
    (422, 400, "invalid_request_error"), (408, 504, "timeout_error"),
    (500, 502, "api_error"), (502, 502, "api_error"), (503, 502, "api_error"),
    (504, 502, "api_error"), (529, 502, "api_error"),
])
def test_status_mapping(client, openai_emu, upstream, expected, type_):
    openai_emu.fail_next(Fault(reply=Reply(upstream, openai_body(f"upstream said {upstream}"))))
    r = client.post("/v1/chat/completions", json={"model": "gpt-4", "messages": USER})
    assert r.status_code == expected
    error = r.json["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert "openai" in error["message"] and f"upstream said {upstream}" in error["message"]
    assert error["type"] == type_   # a type OpenAI's clients know, never "upstream_error"


def test_upstream_param_is_kept(client, openai_emu):
    body = openai_body("Invalid value for 'response_format'.", code="invalid_value")
    body["error"]["param"] = "response_format"
    openai_emu.fail_next(Fault(reply=Reply(400, body)))
    r = client.post("/v1/chat/completions", json={"model": "gpt-4", "messages": USER})
    assert r.status_code == 400
    assert r.json["error"]["param"] == "response_format"
    assert r.json["error"]["code"] == "invalid_value"


def test_402_credits_exhausted_is_429_insufficient_quota(client, openai_emu):
    openai_emu.fail_next(Fault(reply=Reply(402, openai_body(
        "Insufficient credits. Add more using https://example.test/credits", "payment_required"))))
    r = client.post("/v1/chat/completions", json={"model": "gpt-4", "messages": USER})
    assert r.status_code == 429
    error = r.json["error"]
    assert (error["type"], error["code"]) == ("insufficient_quota", "insufficient_quota")
    assert "Insufficient credits" in error["message"]


def test_openai_quota_error_keeps_its_type(client, openai_emu):
    openai_emu.fail_next(Fault(reply=Reply(429, openai_body(
        "You exceeded your current quota.", "insufficient_quota", "insufficient_quota"))))
    r = client.post("/v1/chat/completions", json={"model": "gpt-4", "messages": USER})
    assert r.status_code == 429
    assert r.json["error"]["type"] == "insufficient_quota"


def test_429_passes_retry_after(client, openai_emu):
    openai_emu.fail_next(Fault(reply=Reply(429, openai_body("Rate limit reached", "requests",
                                                            "rate_limit_exceeded"),
                                           {"Retry-After": "20"})))
    r = client.post("/v1/chat/completions", json={"model": "gpt-4", "messages": USER})
    assert r.status_code == 429
    assert r.headers["Retry-After"] == "20"
    assert r.json["error"]["code"] == "rate_limit_exceeded"
    assert r.json["error"]["type"] == "rate_limit_error"


def test_azure_retry_after_ms(client, azure_emu):
    azure_emu.fail_next(Fault(reply=Reply(429, openai_body("Please retry after 3 seconds."),
                                          {"retry-after-ms": "2500"})))
    r = client.post("/v1/chat/completions", json={"model": "azure/dep", "messages": USER})
    assert r.status_code == 429
    assert r.headers["Retry-After"] == "2"


def test_timeout_is_504(make_client, openai_emu, write_config):
    openai_emu.fail_next(Fault(hang=1.5, reply=Reply(200, {})))
    r = make_client(env={"SWITCHBOARD_TIMEOUT": "0.5"}, config=write_config("num_retries: 0")).post(
        "/v1/chat/completions", json={"model": "gpt-4", "messages": USER})
    assert r.status_code == 504
    assert r.json["error"]["code"] == "upstream_timeout"


def test_per_request_timeout(client, openai_emu):
    openai_emu.fail_next(Fault(hang=1.5, reply=Reply(200, {})))
    r = client.post("/v1/chat/completions", json={"model": "gpt-4", "messages": USER,
                                                  "timeout": 0.4})
    assert r.status_code == 504


def test_refused_connection_is_502(make_client, write_config):
    from tests.conftest import free_port
    r = make_client(env={"OPENAI_API_BASE": f"http://127.0.0.1:{free_port()}/v1"},
                    config=write_config("num_retries: 0")).post(
        "/v1/chat/completions", json={"model": "gpt-4", "messages": USER})
    assert r.status_code == 502
    assert r.json["error"]["code"] == "upstream_unreachable"
    assert "openai" in r.json["error"]["message"]


def test_reset_connection_is_502(client, openai_emu):
    openai_emu.fail_next(Fault(reset=True))
    r = client.post("/v1/chat/completions", json={"model": "gpt-4", "messages": USER})
    assert r.status_code == 502


@pytest.mark.parametrize("garbage", [b"<html>oops</html>", b"", b'{"choices": "nope"}',
                                     b'{"choices": [5]}', b"[1,2]"])
def test_unparseable_body_is_502(client, openai_emu, garbage):
    openai_emu.fail_next(Fault(garbage=garbage))
    r = client.post("/v1/chat/completions", json={"model": "gpt-4", "messages": USER})
    assert r.status_code == 502
    assert "openai" in r.json["error"]["message"]
    assert r.json["error"]["type"] == "api_error"


def test_non_json_error_body(client, openai_emu):
    openai_emu.fail_next(Fault(reply=Reply(503, b"<html>Service Unavailable</html>",
                                           content_type="text/html")))
    r = client.post("/v1/chat/completions", json={"model": "gpt-4", "messages": USER})
    assert r.status_code == 502
    assert "Service Unavailable" in r.json["error"]["message"]


def test_key_never_in_error(client, openai_emu):
    key = openai_emu.api_key
    openai_emu.fail_next(Fault(reply=Reply(401, openai_body(
        f"Incorrect API key provided: {key}. Find your key at platform.openai.com.",
        code="invalid_api_key"))))
    r = client.post("/v1/chat/completions", json={"model": "gpt-4", "messages": USER})
    assert r.status_code == 401
    text = r.get_data(as_text=True)
    assert key not in text and key[:12] not in text
    assert "[redacted]" in r.json["error"]["message"]
