"""Fuzzing every face a client can reach: random and mutated bodies, pathological JSON,
control characters in every string field and header. The bar: never a 5xx, always an
OpenAI-style error body, and no worker stalls (under real gunicorn, /health keeps
answering at once)."""
from __future__ import annotations

import json
import random
import socket
import time

import pytest
import urllib3

from tests.keys_fixtures import ADMIN, MASTER, ask
from tests.keys_fixtures import keyed  # noqa: F401  (the fixture)

pytestmark = pytest.mark.timeout(300)
CONTROL = [chr(c) for c in range(0x20)] + ["\x7f", "\u2028", "\u2029", "\ufeff", "\ud7ff"]
PATHS = ["/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/key/generate",
         "/key/update", "/key/info", "/key/delete", "/spend/calculate", "/utils/token_counter"]
SEEDS = {"chat": ask(max_tokens=5), "completions": {"model": "gpt-3.5-turbo-instruct",
                                                    "prompt": "hi", "max_tokens": 5},
         "embeddings": {"model": "text-embedding-3-small", "input": ["a", "b"]},
         "key": {"alias": "a", "models": ["gpt-4o-mini"], "max_budget": 1, "rpm_limit": 5,
                 "metadata": {"team": "x"}, "budget_duration": "30d", "expires": "30d"}}


def odd_string(rng: random.Random) -> str:
    """Text with control characters, quotes, escapes and odd Unicode mixed in."""
    parts = [rng.choice(CONTROL) for _ in range(rng.randint(1, 6))]
    parts += rng.sample(["hi", '"', "\\", "\\u0000", "%00", "\r\n\r\nGET / HTTP/1.1",
                         "sk-sb-x", "{{7*7}}", "'; DROP TABLE api_keys;--", "é", "𝔘", "\u0301",
                         "a" * rng.choice((1, 300, 70_000))], 3)
    rng.shuffle(parts)
    return "".join(parts)


def odd_value(rng: random.Random, depth: int = 0):
    kind = rng.randrange(12 if depth < 3 else 10)
    if kind == 10:
        return [odd_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    if kind == 11:
        return {odd_string(rng)[:20]: odd_value(rng, depth + 1) for _ in range(rng.randint(0, 3))}
    if kind == 9:
        return odd_string(rng)
    return [None, True, False, 0, -1, 2 ** 63, 2 ** 64 - 1, 1e308, -0.0][kind]


def mutate(seed: dict, rng: random.Random):
    """A seed body with some fields replaced, removed, added or turned into odd text."""
    body = json.loads(json.dumps(seed))
    for _ in range(rng.randint(1, 4)):
        move = rng.randrange(4)
        if move == 0 and body:
            body.pop(rng.choice(list(body)))
        elif move == 1 and body:
            body[rng.choice(list(body))] = odd_value(rng)
        elif move == 2:
            body[rng.choice(["n", "stream", "tools", "timeout", "fallbacks", "cache", "user",
                             "metadata", "key", "key_id", "stop", "logit_bias", "messages",
                             "input", "prompt", "max_budget", "completion", odd_string(rng)])] \
                = odd_value(rng)
        else:  # every string field of the body becomes odd text
            body = json.loads(json.dumps(body), object_hook=lambda o: {
                k: (odd_string(rng) if isinstance(v, str) else v) for k, v in o.items()})
    return body


def assert_clean(response, what) -> None:
    assert response.status_code < 500, (what, response.status_code, response.data[:300])
    if response.status_code >= 400:
        error = response.json["error"]
        assert {"message", "type", "param", "code"} <= set(error), (what, error)
        assert MASTER not in response.get_data(as_text=True)


def test_mutated_bodies_and_odd_headers_never_fail_the_proxy(keyed, openai_emu):
    client = keyed()
    rng = random.Random(1313)
    seeds = list(SEEDS.values())
    for number in range(400):
        path = rng.choice(PATHS)
        body = mutate(rng.choice(seeds), rng)
        headers = {**ADMIN, rng.choice(["x-request-id", "x-switchboard-key", "Cache-Control",
                                        "x-switchboard-callbacks", "User-Agent", "api-key"]):
                   # CR and LF cannot be sent here (gunicorn's own test below sends them)
                   odd_string(rng)[:200].encode("utf-8", "surrogatepass").decode("latin-1")
                   .replace("\r", " ").replace("\n", " ")}
        if number % 5 == 0:
            headers["Authorization"] = "Bearer " + odd_string(rng)[:100].translate(
                {ord("\r"): " ", ord("\n"): " "})
        response = client.post(path, json=body, headers=headers)
        assert_clean(response, (path, body if len(str(body)) < 500 else "...", headers))


@pytest.mark.parametrize("raw", [
    b"", b"{", b"[]", b"null", b"\xff\xfe", b'{"model": "\xff"}', b'"\\ud800"',
    b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "\\ud800"}]}',
    b'{"model": "gpt-4o-mini", "messages": [], "n": 1e999}',
    b'{"model": "gpt-4o-mini", "max_tokens": 18446744073709551615, "messages": '
    b'[{"role": "user", "content": "x"}]}',
    b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "n": '
    + b"9" * 5000 + b"}",
    b'{"a": 1, "a": 2}' * 3, b"[" * 5000 + b"]" * 5000, b'{"a":' * 5000 + b"1" + b"}" * 5000,
    b'["' + b"\\u0000" * 100_000 + b'"]', b'{"model": "' + b"\\\\" * 50_000 + b'"}',
], ids=lambda raw: repr(raw[:24]))
def test_pathological_json_is_a_clean_4xx(keyed, openai_emu, raw):
    client = keyed()
    for path in PATHS:
        response = client.post(path, data=raw, content_type="application/json", headers=ADMIN)
        assert_clean(response, (path, raw[:60]))


def exchange(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        pieces = []
        try:
            while piece := sock.recv(65536):
                pieces.append(piece)
        except OSError:
            pass
    return b"".join(pieces)


def test_raw_garbage_under_gunicorn_never_5xx_nor_stalls_a_worker(start_gunicorn, provider_env):
    proxy = start_gunicorn({**provider_env, "SWITCHBOARD_MASTER_KEY": MASTER,
                            "WEB_CONCURRENCY": "1", "SWITCHBOARD_HEADER_TIMEOUT": "2"})
    rng = random.Random(4242)
    body = json.dumps(ask()).encode()
    attacks = [
        b"\x00" * 100, b"GET / HTTP/1.1\r\n\r\n", b"POST /v1/chat/completions HTTP/1.1\r\n"
        b"Host: x\r\nContent-Length: -1\r\n\r\n", b"GET /health HTTP/9.9\r\n\r\n",
        b"GET /health?\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"zz\r\n\r\n",
    ]
    for _ in range(60):  # random header names and values, control characters included
        name = bytes(rng.choice(b"abcxyz-_\x00\x01\r\x7f:") for _ in range(rng.randint(1, 12)))
        value = odd_string(rng)[:300].encode("utf-8", "surrogatepass")
        attacks.append(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                       + MASTER.encode() + b"\r\nContent-Type: application/json\r\n" + name
                       + b": " + value + b"\r\nContent-Length: " + str(len(body)).encode()
                       + b"\r\n\r\n" + body)
    for _ in range(40):  # random bytes where a request should be
        attacks.append(bytes(rng.randrange(256) for _ in range(rng.randint(1, 400))))
    for data in attacks:
        reply = exchange(proxy.port, data)
        if reply:
            status = int(reply.split(b" ", 2)[1])
            assert status < 500, (data[:120], reply[:300])
        started = time.monotonic()
        assert urllib3.request("GET", f"{proxy.base_url}/health", timeout=5).status == 200
        assert time.monotonic() - started < 2.0  # a stalled worker takes far longer
    proxy.stop()
    assert proxy.log().count("Booting worker") == 1  # the worker never crashed
