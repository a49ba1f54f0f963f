"""What reaches an upstream, through a real gunicorn: client connection values that could
smuggle a request, a client's own connection kept off the operator's pooled ones, follow-up
URLs held to the deployment's origin and to http(s), and api_base hosts read by one parser,
resolved once and connected to at the checked addresses only; servers on the proxy's own
host (Ollama, LM Studio) reachable only where the operator configured them. Raw-socket
upstreams record every byte that reaches them."""
from __future__ import annotations

import json
import socket
import time

import pytest
import urllib3

from app.config import ConfigError
from tests.provider_fixtures import proxy_app
from tests.raw_upstream import (COMPLETION, RawUpstream, gunicorn_on, http_answer,
                                upstream_fixture)

OPERATOR_KEY = "sk-operator-secret-00000000001"
CLIENT_KEY = "sk-client-own-key-00000000002"
REPLICATE_MODEL = "meta/meta-llama-3-8b-instruct"
FOLLOW_UPS: dict[str, str] = {}   # the urls a prediction hands back, set by each test
SMUGGLED = ("x\r\nContent-Length: 0\r\n\r\nPOST /v1/chat/completions HTTP/1.1\r\n"
            "Host: x\r\nX-Forged: 1\r\nContent-Length: 500\r\n\r\n")


def answer(head: bytes, body: bytes) -> bytes:
    """The OpenAI, Azure and Replicate routes the tests use; Replicate's urls as scripted."""
    method, path = head.split(b" ")[:2]
    if method == b"POST" and path.endswith(b"/predictions"):
        return http_answer({"id": "p1", "status": "starting", "urls": dict(FOLLOW_UPS)},
                           "201 Created")
    if path.startswith(b"/v1/predictions/"):
        return http_answer({"id": "p1", "status": "succeeded", "output": ["raw ", "upstream"]})
    if path.startswith(b"/v1/streams/"):
        events = b"event: output\ndata: raw upstream\n\nevent: done\ndata: {}\n\n"
        return (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                b"Content-Length: %d\r\n\r\n" % len(events)) + events
    if b'"stream":true' in body:
        chunk = {"id": "chatcmpl-raw", "object": "chat.completion.chunk", "created": 1,
                 "model": "gpt-4o-mini", "choices": [{"index": 0, "finish_reason": "stop",
                                                      "delta": {"content": "raw upstream"}}]}
        events = f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode()
        return (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                b"Content-Length: %d\r\n\r\n" % len(events)) + events
    return http_answer(COMPLETION)


upstream = upstream_fixture(answer)


@pytest.fixture(scope="module")
def elsewhere():
    """A host no request may reach."""
    server = RawUpstream("127.0.0.2")
    yield server
    server.close()


@pytest.fixture(scope="module")
def proxy(upstream, tmp_path_factory):
    base = upstream.base
    # One worker: its one pool of upstream connections is what the tests look into.
    server = gunicorn_on(tmp_path_factory.mktemp("upstream-safety"), f"""
model_list:
  - model_name: byo
    params: {{model: openai/gpt-4o-mini, api_base: "{base}/v1", api_key: {OPERATOR_KEY},
             allow_client_connection: true, client_networks: ["127.0.0.0/8"]}}
  - model_name: byo-public
    params: {{model: openai/gpt-4o-mini, api_base: "{base}/v1", api_key: {OPERATOR_KEY},
             allow_client_connection: true}}
  - model_name: azure-byo
    params: {{model: azure/dep, api_base: "{base}", api_key: {OPERATOR_KEY},
             allow_client_connection: true}}
  - model_name: llama
    params: {{model: replicate/{REPLICATE_MODEL}, api_base: "{base}", api_key: r8_operator0001}}
  - model_name: local-llama
    params: {{model: ollama/llama3}}
""", {"WEB_CONCURRENCY": "1", "LMSTUDIO_API_BASE": f"{base}/v1",
      "HUGGINGFACE_API_BASE": base, "HUGGINGFACE_API_KEY": "hf_operator0000000001"})
    yield server
    server.stop()


def ask(proxy, model: str = "byo", **extra) -> urllib3.BaseHTTPResponse:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}
    return urllib3.request("POST", f"{proxy.base_url}/v1/chat/completions", json=body,
                           timeout=20, retries=False)


def new_requests(upstream: RawUpstream, before: int) -> list[tuple[int, bytes, bytes]]:
    return upstream.requests[before:]


@pytest.mark.parametrize("model,field,value", [
    ("byo", "api_key", SMUGGLED), ("byo", "api_key", "sk-x\nX-Forged: 1"),
    ("byo", "api_key", "sk-x\rX-Forged: 1"), ("byo", "api_key", "sk-\x00x"),
    ("byo", "api_key", "sk-\u00e9x"), ("byo", "api_key", "sk-\u2028x"),
    ("azure-byo", "api_version", "2024-10-21\r\nX-Forged: 1"),
    ("byo", "api_base", "http://127.0.0.1/v1\r\nX-Forged: 1"),
    ("byo", "base_url", "http://127.0.0.1/v1 HTTP/1.1\r\nX-Forged: 1"),
])
def test_control_characters_in_client_connection_values_never_reach_the_upstream(
        proxy, upstream, model, field, value):
    before = len(upstream.requests)
    refused = ask(proxy, model, **{field: value})
    assert refused.status == 400, refused.data
    error = refused.json()["error"]
    assert error["param"] == field and error["type"] == "invalid_request_error"
    assert value not in refused.data.decode()
    # the next tenant's request gets the upstream's own answer, on a clean connection
    after = ask(proxy, model)
    assert after.status == 200
    assert after.json()["choices"][0]["message"]["content"] == "raw upstream"
    assert len(new_requests(upstream, before)) == 1
    assert b"X-Forged" not in upstream.all_bytes()


def test_a_clients_own_connection_never_shares_the_operators_pooled_one(proxy, upstream):
    before = len(upstream.requests)
    plan = [("operator", {}), ("operator", {}), ("client key", {"api_key": CLIENT_KEY}),
            ("operator", {}),
            ("client base", {"api_base": f"{upstream.base}/v1", "api_key": CLIENT_KEY}),
            ("operator", {}), ("client stream", {"api_key": CLIENT_KEY, "stream": True}),
            ("operator", {"stream": True})]
    for _, extra in plan:
        response = ask(proxy, **extra)
        assert response.status == 200, response.data
    arrived = new_requests(upstream, before)
    assert len(arrived) == len(plan)
    operator_connections = {c for (who, _), (c, _, _) in zip(plan, arrived) if who == "operator"}
    client_connections = [c for (who, _), (c, _, _) in zip(plan, arrived) if who != "operator"]
    assert len(operator_connections) == 1           # the pooled keep-alive connection
    assert len(set(client_connections)) == 3        # each its own, ...
    assert not operator_connections & set(client_connections)
    deadline = time.monotonic() + 5                 # ... hung up after its one request
    while set(client_connections) - upstream.closed and time.monotonic() < deadline:
        time.sleep(0.02)
    assert set(client_connections) <= upstream.closed
    for connection in client_connections:
        assert OPERATOR_KEY.encode() not in upstream.received[connection]
        assert [c for c, _, _ in upstream.requests].count(connection) == 1
    for connection in operator_connections:
        assert CLIENT_KEY.encode() not in upstream.received[connection]


@pytest.mark.parametrize("model", ["huggingface/acme/../../whoami", "huggingface/acme/./x",
                                   "huggingface/../acme"])
def test_a_model_name_cannot_climb_out_of_its_url_path(proxy, upstream, model):
    before = len(upstream.requests)
    refused = urllib3.request("POST", f"{proxy.base_url}/v1/embeddings", timeout=20,
                              json={"model": model, "input": "hi"}, retries=False)
    assert refused.status == 400, refused.data
    assert refused.json()["error"]["code"] == "invalid_upstream_value"
    assert new_requests(upstream, before) == []


def scripted(get: str | None = None, stream: str | None = None) -> None:
    FOLLOW_UPS.clear()
    FOLLOW_UPS.update({k: v for k, v in (("get", get), ("stream", stream)) if v})


@pytest.mark.parametrize("stream", [False, True])
def test_follow_ups_on_the_deployments_origin_are_followed(proxy, upstream, stream):
    scripted(f"{upstream.base}/v1/predictions/p1", f"{upstream.base}/v1/streams/p1")
    response = ask(proxy, "llama", stream=stream)
    assert response.status == 200, response.data
    assert "raw upstream" in response.data.decode()


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("url", [
    "file:///etc/passwd", "dict://127.0.0.1:{port}/info", "gopher://127.0.0.1:{port}/_INFO",
    "ftp://127.0.0.1:{port}/x", "http://127.0.0.2:{elsewhere}/v1/predictions/p1",
    "http://localhost:{port}/v1/predictions/p1", "https://127.0.0.1:{port}/v1/predictions/p1",
    "http://127.0.0.1:{port}@127.0.0.2:{elsewhere}/v1/predictions/p1",
    "http://127.0.0.2:{elsewhere}\\@127.0.0.1:{port}/v1/predictions/p1",
    "//127.0.0.2:{elsewhere}/v1/predictions/p1", "http://127.0.0.1:{port}/v1/\r\nX-Forged: 1",
])
def test_follow_up_urls_off_the_deployments_origin_are_never_fetched(
        proxy, upstream, elsewhere, url, stream):
    target = url.format(port=upstream.port, elsewhere=elsewhere.port)
    scripted(*((None, target) if stream else (target, None)))
    before = len(upstream.requests)
    response = ask(proxy, "llama", stream=stream)
    assert response.status == 502, response.data
    assert response.json()["error"]["code"] == "upstream_url_refused"
    arrived = new_requests(upstream, before)
    assert all(head.startswith(b"POST ") for _, head, _ in arrived)  # only the creates
    assert elsewhere.connections == 0
    assert b"X-Forged" not in upstream.all_bytes()


def test_a_follow_up_to_the_providers_documented_host_must_resolve_to_public_addresses(
        make_client, write_config, upstream, monkeypatch):
    """api.replicate.com, rebound here to loopback: refused after the same check as a
    client's api_base, before any connection."""
    real = socket.getaddrinfo
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, port, *args, **kwargs: (
        [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]
        if host == "api.replicate.com" else real(host, port, *args, **kwargs)))
    client = make_client(config=write_config(f"""
model_list:
  - model_name: llama
    params: {{model: replicate/{REPLICATE_MODEL}, api_base: "{upstream.base}", api_key: r8_x0000001}}
"""))
    scripted(f"https://api.replicate.com:{upstream.port}/v1/predictions/p1")
    response = client.post("/v1/chat/completions", json={
        "model": "llama", "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 502
    assert response.json["error"]["code"] == "upstream_url_refused"
    scripted("https://api.replicate.com/v1/predictions/p1")
    before = len(upstream.requests)
    response = client.post("/v1/chat/completions", json={
        "model": "llama", "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 502
    assert "not a public address" in response.json["error"]["message"]
    assert all(head.startswith(b"POST ") for _, head, _ in new_requests(upstream, before))


@pytest.mark.parametrize("base", [
    "http://evil.invalid?@127.0.0.1:{port}/v1", "http://evil.invalid#@127.0.0.1:{port}/v1",
    "http://127.0.0.1:{port}\\@example.com/v1", "http://[::127.0.0.1]:{port}/v1",
    "http://[::ffff:7f00:1]:{port}/v1", "http://[64:ff9b:1::7f00:1]:{port}/v1",
    "http://[64:ff9b::127.0.0.1]:{port}/v1", "http://[::1%25lo]:{port}/v1",
    "http://0x7f.1:{port}/v1", "http://127.1:{port}/v1", "http://017700000001:{port}/v1",
    "http://0177.0.0.1:{port}/v1", "http://127.0.0.1.:{port}/v1", "HTTP://LOCALHOST:{port}/v1",
    "http:/127.0.0.1:{port}/v1", "http://127.0.0.1:{port}:80/v1", " http://127.0.0.1:{port}/v1",
])
def test_api_base_forms_that_parsers_read_differently_reach_no_private_address(
        proxy, upstream, base):
    before = len(upstream.requests)
    response = ask(proxy, "byo-public", api_base=base.format(port=upstream.port),
                   api_key=CLIENT_KEY)
    assert response.status == 400, response.data
    error = response.json()["error"]
    assert error["param"] == "api_base" and error["code"] in ("api_base_not_allowed",
                                                              "invalid_value")
    assert new_requests(upstream, before) == []


def test_api_base_is_resolved_once_and_connected_to_at_the_checked_address(
        make_client, write_config, monkeypatch):
    """A rebinding DNS name: the check's answer (127.0.0.2, an allowed network) is where the
    request goes, whatever any later lookup would say (127.0.0.1 here)."""
    checked = RawUpstream("127.0.0.2", answer=answer)
    try:
        rebound = RawUpstream("127.0.0.1", port=checked.port)
    except OSError:
        checked.close()
        pytest.skip("the checked server's port is taken on 127.0.0.1")
    lookups: list[str] = []
    real = socket.getaddrinfo

    def rebinding(host, port, *args, **kwargs):
        if host != "rebind.test":
            return real(host, port, *args, **kwargs)
        lookups.append(host)
        address = "127.0.0.2" if len(lookups) == 1 else "127.0.0.1"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    client = make_client(config=write_config("""
model_list:
  - model_name: byo
    params: {model: openai/gpt-4o-mini, allow_client_connection: true,
             client_networks: ["127.0.0.2/32"]}
"""))
    try:
        for _ in range(2):
            lookups.clear()
            response = client.post("/v1/chat/completions", json={
                "model": "byo", "messages": [{"role": "user", "content": "hi"}],
                "api_base": f"http://rebind.test:{checked.port}/v1", "api_key": CLIENT_KEY})
            assert response.status_code == 200, response.json
            assert lookups == ["rebind.test"]  # once, for the check; never again to connect
        assert len(checked.requests) == 2 and rebound.connections == 0
        assert f"Host: rebind.test:{checked.port}".encode() in checked.requests[0][1]
    finally:
        checked.close()
        rebound.close()


def test_servers_on_the_proxys_own_host_are_reached_only_where_configured(proxy, upstream):
    for name in ("ollama/llama3", "ollama/some-model"):
        refused = ask(proxy, name)
        assert refused.status == 404, refused.data
        error = refused.json()["error"]
        assert error["code"] == "model_not_found" and "OLLAMA_API_BASE" in error["message"]
    listed = urllib3.request("GET", f"{proxy.base_url}/v1/models", timeout=10).json()["data"]
    assert not [m for m in listed if m["id"].startswith("ollama/")]
    # LMSTUDIO_API_BASE is set: LM Studio models go there
    before = len(upstream.requests)
    served = ask(proxy, "lmstudio/qwen2.5-7b-instruct")
    assert served.status == 200, served.data
    assert b"qwen2.5-7b-instruct" in new_requests(upstream, before)[0][2]
    # a model_list entry opens the default address (nothing listens there in the test)
    configured = ask(proxy, "local-llama")
    assert configured.status != 404, configured.data


@pytest.mark.parametrize("base", ["localhost:8000/v1", "ftp://files.example/v1",
                                  "http://a b/v1", "http://user:pw@example.com/v1",
                                  "http://example.com/v1/../admin"])
def test_a_deployment_api_base_the_parser_refuses_stops_the_start(write_config, tmp_path, base):
    config = write_config(f"""
model_list:
  - model_name: m
    params: {{model: openai/x, api_base: "{base}"}}
""")
    with pytest.raises(ConfigError) as caught:
        proxy_app({"SWITCHBOARD_DATA_DIR": str(tmp_path / "data")}, config)
    assert "model_list[0]" in str(caught.value) and "api_base" in str(caught.value)


@pytest.mark.parametrize("variable", ["OPENAI_API_BASE", "MISTRAL_API_BASE", "GEMINI_API_BASE"])
@pytest.mark.parametrize("base", ["localhost:8000/v1", "http://user:s3cret-pw@example.com/v1",
                                  "http://example.com/v1/../admin", "http://a b/v1"])
def test_a_provider_base_url_variable_the_parser_refuses_stops_the_start(tmp_path, variable,
                                                                         base):
    """Named at start, like a model_list entry, never echoing what may hold credentials."""
    with pytest.raises(ConfigError) as caught:
        proxy_app({"SWITCHBOARD_DATA_DIR": str(tmp_path / "data"), variable: base})
    assert f"environment variable {variable}" in str(caught.value)
    assert "s3cret" not in str(caught.value) and base not in str(caught.value)


def test_provider_base_url_variables_the_parser_takes_start(tmp_path):
    app = proxy_app({"SWITCHBOARD_DATA_DIR": str(tmp_path / "data"),
                     "OPENAI_API_BASE": "http://127.0.0.1:9/v1", "MISTRAL_API_BASE": ""})
    assert app.test_client().get("/health").status_code == 200
