"""Authentication: the master key, virtual keys, and every odd way a key can be sent."""
from __future__ import annotations

import pytest

from tests.keys_fixtures import ADMIN, MASTER, ask, bearer, generate
from tests.keys_fixtures import keyed  # noqa: F401  (the fixture)

ADMIN_PATHS = [("GET", "/key/list"), ("POST", "/key/generate"), ("GET", "/spend"),
               ("GET", "/spend/logs"), ("GET", "/health/deployments"), ("GET", "/metrics"),
               ("POST", "/utils/token_counter"), ("GET", "/no/such/path")]


@pytest.fixture
def client(keyed):
    return keyed()


def test_probes_are_open_and_everything_else_needs_a_key(client):
    assert client.get("/health").status_code == 200
    assert client.get("/health/").status_code == 200
    assert client.get("/health/readiness").status_code == 200
    for method, path in [*ADMIN_PATHS, ("POST", "/v1/chat/completions"), ("GET", "/v1/models"),
                         ("POST", "/chat/completions"), ("GET", "/models")]:
        response = client.open(path, method=method, json={})
        assert response.status_code == 401, path
        assert response.json["error"]["code"] == "api_key_required"
        assert response.headers["WWW-Authenticate"] == "Bearer"


def test_the_master_key_opens_everything(client):
    assert client.get("/key/list", headers=ADMIN).status_code == 200
    assert client.get("/health/deployments", headers=ADMIN).status_code == 200
    assert client.post("/chat/completions", json=ask(), headers=ADMIN).status_code == 200
    assert client.get("/no/such/path", headers=ADMIN).status_code == 404


def test_virtual_keys_may_only_complete_and_list_models(client):
    key = generate(client)["key"]
    assert client.post("/v1/chat/completions", json=ask(), headers=bearer(key)).status_code == 200
    assert client.get("/v1/models", headers=bearer(key)).status_code == 200
    for method, path in ADMIN_PATHS:
        response = client.open(path, method=method, json={}, headers=bearer(key))
        assert response.status_code == 403, path
        assert response.json["error"]["code"] == "master_key_required"


@pytest.mark.parametrize("headers", [
    {"Authorization": f"Bearer {MASTER}"},
    {"Authorization": f"bearer {MASTER}"},
    {"Authorization": f"Bearer    {MASTER}   "},   # RFC 6750 allows more than one space
    {"api-key": MASTER},
    {"x-api-key": MASTER},
])
def test_accepted_ways_to_send_the_key(client, headers):
    assert client.get("/key/list", headers=headers).status_code == 200


@pytest.mark.parametrize("headers, code", [
    ({"Authorization": f"Basic {MASTER}"}, "invalid_api_key"),
    ({"Authorization": MASTER}, "invalid_api_key"),
    ({"Authorization": "Bearer"}, "invalid_api_key"),
    ({"Authorization": "Bearer "}, "invalid_api_key"),
    ({"Authorization": f"Bearer {MASTER} extra"}, "invalid_api_key"),
    ({"Authorization": f"Bearer\t{MASTER}"}, "invalid_api_key"),
    ({"Authorization": f"Bearer {MASTER}x"}, "invalid_api_key"),
    ({"Authorization": f"Bearer {MASTER[:-1]}"}, "invalid_api_key"),
    ({"Authorization": "Bearer sk-sb-0123456789abcdef_" + "A" * 43}, "invalid_api_key"),
    ({"Authorization": "Bearer sk-sb-'; DROP TABLE api_keys; --"}, "invalid_api_key"),
    ({"Authorization": "Bearer " + "k" * 5000}, "invalid_api_key"),
    ({"x-api-key": ""}, "invalid_api_key"),
    ({"X-Master-Key": MASTER}, "api_key_required"),
    ({"Cookie": f"api_key={MASTER}"}, "api_key_required"),
])
def test_wrong_malformed_and_misplaced_keys_are_refused(client, headers, code):
    response = client.get("/key/list", headers=headers)
    assert response.status_code == 401
    assert response.json["error"]["code"] == code
    assert MASTER not in response.get_data(as_text=True)


def test_a_key_in_the_query_string_does_not_work(client):
    key = generate(client)["key"]
    for name in ("key", "api_key", "api-key", "token"):
        assert client.get("/key/list", query_string={name: MASTER}).status_code == 401
        assert client.post("/chat/completions", query_string={name: key},
                           json=ask()).status_code == 401


def test_refusals_never_echo_the_key_and_are_recorded(client):
    made = generate(client)
    wrong = made["key"][:-4] + "AAAA"
    response = client.post("/chat/completions", json=ask(), headers=bearer(wrong))
    assert response.status_code == 401
    text = response.get_data(as_text=True)
    assert wrong not in text and made["key"] not in text
    logs = client.get("/spend/logs", headers=ADMIN).json["data"]
    assert [(r["status"], r["error_code"], r["key_id"]) for r in logs] == [
        (401, "invalid_api_key", None)]
    assert wrong not in str(logs)


def test_without_a_master_key_everything_is_open_but_virtual_keys_still_count(keyed):
    client = keyed(master=None)
    assert client.get("/key/list").status_code == 200
    placeholder = client.post("/chat/completions", json=ask(), headers=bearer("anything"))
    assert placeholder.status_code == 200
    made = generate(client, models=["gpt-4o"])
    refused = client.post("/chat/completions", json=ask(), headers=bearer(made["key"]))
    assert refused.status_code == 403
    client.post("/key/delete", json={"key_id": made["key_id"]})
    revoked = client.post("/chat/completions", json=ask(), headers=bearer(made["key"]))
    assert revoked.status_code == 401


def test_metrics_can_be_made_public(keyed, write_config):
    client = keyed(config=write_config("keys: {public_metrics: true}"))
    assert client.get("/metrics").status_code == 200
    assert client.get("/spend").status_code == 401


def test_bad_keys_section_stops_the_start(keyed, write_config):
    from app.config import ConfigError
    with pytest.raises(ConfigError, match="keys.public_metric"):
        keyed(config=write_config("keys: {public_metric: true}"))


def test_cors_is_off_by_default(client):
    response = client.get("/health", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in response.headers
    preflight = client.options("/v1/chat/completions", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert "Access-Control-Allow-Origin" not in preflight.headers


def test_cors_when_configured(keyed, write_config):
    client = keyed(config=write_config(
        "cors: {allow_origins: ['https://app.example'], allow_headers: [Authorization, "
        "Content-Type]}"))
    preflight = client.options("/v1/chat/completions", headers={
        "Origin": "https://app.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type"})
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert preflight.headers["Access-Control-Allow-Headers"] == "Authorization, Content-Type"
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    other = client.options("/v1/chat/completions", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert "Access-Control-Allow-Origin" not in other.headers
    # The real request still needs its key; the answer carries the CORS headers.
    response = client.post("/v1/chat/completions", json=ask(),
                           headers={**ADMIN, "Origin": "https://app.example"})
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert "x-request-id" in response.headers["Access-Control-Expose-Headers"]
    unauthenticated = client.post("/v1/chat/completions", json=ask(),
                                  headers={"Origin": "https://app.example"})
    assert unauthenticated.status_code == 401


def test_bad_cors_section_stops_the_start(keyed, write_config):
    from app.config import ConfigError
    with pytest.raises(ConfigError, match="cors.allow_origins"):
        keyed(config=write_config("cors: {allow_origins: ['not an origin']}"))
