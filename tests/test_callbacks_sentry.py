"""Sentry beyond request events: a fault inside the proxy reaches it through the Flask and
logging integrations, with the HTTP request attached and no credential in it."""
from __future__ import annotations

import pytest

from tests.capture import SUPABASE_KEY, make_proxy, start_services
from tests.emulators.server import Fault, Reply


@pytest.fixture
def services():
    started = start_services()
    yield started
    started.stop()


def test_a_proxy_fault_reaches_sentry_scrubbed(services, provider_env, openai_emu,
                                               write_config):
    proxy = make_proxy({**provider_env, **services.env()},
                       write_config("callbacks: {failure: [sentry], timeout: 2}\n"))

    def broken_view():  # a bug anywhere in a view: the app's error handler logs it
        raise RuntimeError(f"fault while holding {openai_emu.api_key}")

    proxy.client.application.add_url_rule("/broken", "broken", broken_view)
    reply = proxy.client.get("/broken?x=1", headers={"Authorization": f"Bearer {SUPABASE_KEY}",
                                                     "x-request-id": "fault-1"})
    assert reply.status_code == 500 and reply.json["error"]["code"] == "internal_error"
    proxy.close()

    posts = services.servers["sentry"].requests
    reports = [item for post in posts for item in post.envelope() if "exception" in item]
    assert len(reports) == 1
    report = reports[0]
    exception = report["exception"]["values"][-1]
    assert exception["type"] == "RuntimeError"
    assert exception["value"] == "fault while holding [Filtered]"
    assert report["logentry"]["message"] == "unexpected error"
    assert report["request"]["url"].endswith("/broken") and report["request"]["method"] == "GET"
    text = b"".join(post.body for post in posts).decode()
    assert openai_emu.api_key not in text and SUPABASE_KEY not in text


@pytest.mark.parametrize("status,code", [(401, "invalid_api_key"), (403, "model_not_allowed")])
def test_upstream_refusing_the_proxy_key_reaches_sentry(services, provider_env, openai_emu,
                                                        write_config, status, code):
    """The proxy's own provider key is wrong or lacks access: an operator must act, so Sentry
    gets it with model, provider, status and request id, and never the key."""
    proxy = make_proxy({**provider_env, **services.env()},
                       write_config("callbacks: {failure: [sentry], timeout: 2}\n"))
    key = openai_emu.api_key
    openai_emu.fail_next(Fault(reply=Reply(status, {"error": {
        "message": f"Incorrect API key provided: {key}.", "type": "invalid_request_error",
        "param": None, "code": code}})))
    reply = proxy.chat(f"refused-{status}", model="gpt-4o-mini")
    assert reply.status_code == status
    proxy.close()

    posts = services.servers["sentry"].requests
    reports = [item for post in posts for item in post.envelope() if "exception" in item]
    assert len(reports) == 1
    tags = reports[0]["tags"]
    assert (tags["model"], tags["provider"], tags["status"], tags["request_id"]) == (
        "gpt-4o-mini", "openai", str(status), f"refused-{status}")
    assert tags["upstream_status"] == str(status)
    text = b"".join(post.body for post in posts).decode()
    assert key not in text and key[:12] not in text


def test_a_client_mistake_does_not_reach_sentry(services, provider_env, openai_emu,
                                                write_config):
    proxy = make_proxy({**provider_env, **services.env()},
                       write_config("callbacks: {failure: [sentry], timeout: 2}\n"))
    openai_emu.fail_next(Fault(reply=Reply(400, {"error": {
        "message": "bad request", "type": "invalid_request_error", "param": None,
        "code": None}})))
    assert proxy.chat("client-400", model="gpt-4o-mini").status_code == 400
    proxy.close()
    reports = [item for post in services.servers["sentry"].requests
               for item in post.envelope() if "exception" in item]
    assert reports == []
