"""Hostile input through a real gunicorn: control characters, line breaks, NUL, lone
surrogates and invalid UTF-8 in every string field of every endpoint's body and in every
header the proxy reads, seeded random JSON bodies and random bytes. The bar: no 5xx, no
worker stall (the proxy answers /health and a normal request at once afterwards), and
nothing malformed reaches the upstream (a raw-socket upstream records every byte)."""
from __future__ import annotations

import copy
import json
import random
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import urllib3

from tests.raw_upstream import COMPLETION, gunicorn_on, http_answer, upstream_fixture

# Characters that break out of a header line, end a string early, or are not text at all.
AMMO = ["a\r\nX-Forged: 1", "\r", "\x00", "\x1b[31m\x7f", "\u2028", "\udfff\ud800",
        "x" * 3000]
OTHER_TYPES = [None, -1, 1e308, True, [], {"a": [[]]}]
TOOL = {"type": "function", "function": {"name": "f", "description": "d",
                                         "parameters": {"type": "object", "properties": {}}}}
BODIES = {
    "/v1/chat/completions": {
        "model": "gpt-4o-mini", "user": "u", "stop": ["s"], "tools": [TOOL],
        "tool_choice": "auto", "response_format": {"type": "text"},
        "metadata": {"team": "t"}, "fallbacks": ["gpt-4o-mini"],
        "messages": [{"role": "system", "content": "s"},
                     {"role": "user", "name": "n", "content": [{"type": "text", "text": "t"}]},
                     {"role": "assistant", "content": None, "tool_calls": [
                         {"id": "c1", "type": "function",
                          "function": {"name": "f", "arguments": "{}"}}]},
                     {"role": "tool", "tool_call_id": "c1", "content": "r"}]},
    "/v1/chat/completions#byo": {
        "model": "byo", "messages": [{"role": "user", "content": "hi"}],
        "api_key": "sk-client-0000000001", "api_version": "2024-10-21"},
    "/v1/embeddings": {"model": "text-embedding-3-small", "input": ["a", "b"], "user": "u",
                       "encoding_format": "float"},
    "/v1/completions": {"model": "gpt-3.5-turbo-instruct", "prompt": "p", "suffix": "s",
                        "stop": "x", "user": "u"},
    "/key/generate": {"alias": "a", "models": ["gpt-4o-mini"], "budget_duration": "30d",
                      "expires": "90d", "metadata": {"owner": "o"}},
    "/key/info": {"key": "sk-sb-abc"},
    "/key/update": {"key_id": "k", "alias": "b"},
    "/key/delete": {"key_id": "k"},
    "/utils/token_counter": {"model": "gpt-4o-mini", "messages": [{"role": "user",
                                                                   "content": "c"}]},
    "/spend/calculate": {"model": "gpt-4o-mini", "messages": [{"role": "user",
                                                               "content": "c"}]},
}
HEADERS = ["Authorization", "api-key", "x-api-key", "x-request-id", "traceparent",
           "Content-Type", "Origin", "x-switchboard-key", "Cache-Control", "User-Agent"]
HEADER_AMMO = [b"\x00", b"\x7f", b"\xff\xfe", b"\x1b[0m", b"a\rb", b"sk-\xc3\x28", b" " * 50]


def answer(head: bytes, body: bytes) -> bytes:
    """Well-formed answers for each route the fuzzed requests can reach."""
    path = head.split(b" ")[1]
    if path.endswith(b"/embeddings"):
        return http_answer({"object": "list", "model": "text-embedding-3-small",
                            "data": [{"object": "embedding", "index": i, "embedding": [0.1]}
                                     for i in range(len(json.loads(body).get("input") or [0]))],
                            "usage": {"prompt_tokens": 2, "total_tokens": 2}})
    if path.endswith(b"/completions") and not path.endswith(b"/chat/completions"):
        return http_answer({"id": "cmpl-1", "object": "text_completion", "created": 1,
                            "model": "gpt-3.5-turbo-instruct",
                            "choices": [{"index": 0, "text": "ok", "finish_reason": "stop",
                                         "logprobs": None}],
                            "usage": {"prompt_tokens": 1, "completion_tokens": 1,
                                      "total_tokens": 2}})
    return http_answer(COMPLETION)


upstream = upstream_fixture(answer)


@pytest.fixture(scope="module")
def proxy(upstream, tmp_path_factory):
    server = gunicorn_on(tmp_path_factory.mktemp("fuzz"), f"""
model_list:
  - model_name: byo
    params: {{model: azure/dep, api_base: "{upstream.base}", api_key: sk-operator-0000000001,
             allow_client_connection: true}}
""", {"OPENAI_API_BASE": f"{upstream.base}/v1", "OPENAI_API_KEY": "sk-operator-0000000002"})
    yield server
    server.stop()


def leaves(value, path=()):
    """Every (path, value) below `value`, containers included."""
    yield path, value
    items = value.items() if isinstance(value, dict) else (
        enumerate(value) if isinstance(value, list) else ())
    for key, inner in items:
        yield from leaves(inner, (*path, key))


def replaced(body, path, value):
    body = copy.deepcopy(body)
    holder = body
    for key in path[:-1]:
        holder = holder[key]
    holder[path[-1]] = value
    return body


def post(proxy, path: str, data: bytes, headers: dict | None = None) -> int:
    response = urllib3.request("POST", f"{proxy.base_url}{path}", body=data, timeout=30,
                               retries=False,
                               headers={"Content-Type": "application/json", **(headers or {})})
    return response.status


def raw_status(proxy, request: bytes) -> int:
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=30) as conn:
        conn.sendall(request)
        reply = b""
        while b"\r\n" not in reply:
            data = conn.recv(4096)
            if not data:
                break
            reply += data
    assert reply.startswith(b"HTTP/1."), request[:200]
    return int(reply.split(b" ")[1])


def assert_still_serving(proxy) -> None:
    started = time.monotonic()
    health = urllib3.request("GET", f"{proxy.base_url}/health", timeout=1.0, retries=False)
    assert health.status == 200 and time.monotonic() - started < 1.0
    body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user",
                                                             "content": "hi"}]}).encode()
    assert post(proxy, "/v1/chat/completions", body) == 200


@pytest.mark.parametrize("endpoint", sorted(BODIES))
def test_control_characters_in_every_string_field_never_5xx(proxy, upstream, endpoint):
    template, path = BODIES[endpoint], endpoint.partition("#")[0]
    assert post(proxy, path, json.dumps(template).encode()) < 500
    shots = []
    for where, value in list(leaves(template))[1:]:
        for shot in [value + ammo if isinstance(value, str) else ammo for ammo in AMMO]:
            shots.append((where, json.dumps(replaced(template, where, shot)).encode()))
        shots += [(where, json.dumps(replaced(template, where, other)).encode())
                  for other in OTHER_TYPES]
        if isinstance(value, str):  # invalid UTF-8 inside the string itself
            data = json.dumps(replaced(template, where, "\u0001fuzz\u0001")).encode()
            shots.append((where, data.replace(b"\\u0001fuzz\\u0001", b"\xff\xfe\xc3(")))
    with ThreadPoolExecutor(4) as pool:
        statuses = list(pool.map(lambda shot: post(proxy, path, shot[1]), shots))
    assert [(where, data[:120], status) for (where, data), status in zip(shots, statuses)
            if status >= 500] == []
    assert b"\r\nX-Forged" not in upstream.all_bytes()  # a header line, not JSON text
    assert_still_serving(proxy)


def test_control_characters_in_every_header_never_5xx(proxy, upstream):
    body = json.dumps(BODIES["/v1/chat/completions"]).encode()
    failures = []
    for name in HEADERS:
        for ammo in HEADER_AMMO:
            request = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                       b"Content-Type: application/json\r\nContent-Length: %d\r\n"
                       b"%s: %s\r\nConnection: close\r\n\r\n" % (len(body), name.encode(), ammo)
                       ) + body
            status = raw_status(proxy, request)
            if status >= 500:
                failures.append((name, ammo, status))
    assert failures == []
    assert_still_serving(proxy)


def random_json(rng: random.Random, depth: int = 0):
    kind = rng.randrange(8 if depth < 6 else 5)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False, 0, -1, 2**63, 1e-300, float(rng.randint(-9, 9))])
    if kind in (2, 3, 4):
        return "".join(chr(rng.choice([rng.randrange(32), rng.randrange(32, 127),
                                       rng.randrange(0xD800, 0xE000),
                                       rng.randrange(0x80, 0x10FFFF)]))
                       for _ in range(rng.randrange(12)))
    if kind in (5, 6):
        keys = ["model", "messages", "role", "content", "input", "prompt", "stream", "n",
                "tools", "max_tokens", "key", "api_key", "api_base", "cache", "timeout"]
        return {rng.choice(keys): random_json(rng, depth + 1) for _ in range(rng.randrange(6))}
    return [random_json(rng, depth + 1) for _ in range(rng.randrange(5))]


def test_random_bodies_never_5xx(proxy):
    rng = random.Random(1313)
    paths = sorted({endpoint.partition("#")[0] for endpoint in BODIES})
    failures = []
    for round_number in range(300):
        path = rng.choice(paths)
        if round_number % 3 == 0:
            data = bytes(rng.randrange(256) for _ in range(rng.randrange(200)))
        else:
            body = random_json(rng)
            if isinstance(body, dict) and rng.random() < 0.5:
                body["model"] = rng.choice(["gpt-4o-mini", "byo", "text-embedding-3-small"])
            data = json.dumps(body).encode()
        status = post(proxy, path, data)
        if status >= 500:
            failures.append((path, data[:80], status))
    assert failures == []
    assert_still_serving(proxy)
