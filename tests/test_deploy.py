"""What a deploy to Heroku or Railway meets: a warning when the ledger would live on a wiped
disk, keep-alive whitespace for routers that cut silent requests, Heroku Redis over TLS with
its self-signed certificate, and the platform's WEB_CONCURRENCY."""
from __future__ import annotations

import json
import logging
import shutil
import socket
import subprocess
import time
from pathlib import Path

import openai
import pytest
import urllib3

from tests.conftest import module_gunicorn
from tests.emulators.server import Fault, Reply
from tests.servers import _stop, _wait_port, free_port

ROOT = Path(__file__).resolve().parents[1]
# A worker's first request also waits for the emulator to load its contract: allow for it.
http = urllib3.PoolManager(timeout=30, retries=False)
CHAT = {"model": "gpt-4", "messages": [{"role": "user", "content": "slow one"}]}


def test_warns_on_ephemeral_platform_without_database(make_client, caplog):
    with caplog.at_level(logging.WARNING, logger="switchboard"):
        make_client({"DYNO": "web.1"})
    assert any("Heroku without DATABASE_URL" in r.getMessage() for r in caplog.records)
    assert any("SWITCHBOARD_KEEPALIVE_WHITESPACE" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="switchboard"):
        make_client({"RAILWAY_ENVIRONMENT": "production"})
    assert any("Railway without DATABASE_URL" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="switchboard"):
        make_client()
    assert not any("DATABASE_URL" in r.getMessage() for r in caplog.records)


def test_bad_keepalive_setting_stops_the_start(start_gunicorn, provider_env):
    with pytest.raises(RuntimeError) as info:
        start_gunicorn({**provider_env, "SWITCHBOARD_KEEPALIVE_WHITESPACE": "soon"})
    assert "SWITCHBOARD_KEEPALIVE_WHITESPACE must be a number" in str(info.value)


def _raw_post(port: int, body: dict) -> tuple[socket.socket, float]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    data = json.dumps(body).encode()
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                 b"Content-Type: application/json\r\nContent-Length: "
                 + str(len(data)).encode() + b"\r\n\r\n" + data)
    return sock, time.monotonic()


def _read_all(sock: socket.socket) -> tuple[bytes, float]:
    """Everything the proxy sends, and how long the first byte took."""
    first, chunks, started = None, [], time.monotonic()
    while piece := sock.recv(65536):
        first = first or time.monotonic() - started
        chunks.append(piece)
    sock.close()
    return b"".join(chunks), first


@pytest.fixture(scope="module", params=["gevent", "gthread"])
def padded(request):
    """Whitespace after 0.2 s of silence, one gunicorn per worker class for the tests below."""
    return module_gunicorn(request, {"SWITCHBOARD_KEEPALIVE_WHITESPACE": "0.2",
                                     "SWITCHBOARD_WORKER_CLASS": request.param})


def test_slow_json_answer_is_padded_with_whitespace(padded, openai_emu):
    openai_emu.fail_next(Fault(hang=1.5))
    sock, _ = _raw_post(padded.port, CHAT)
    raw, first_byte = _read_all(sock)
    head, _, body = raw.partition(b"\r\n\r\n")
    assert first_byte < 1.0  # the router saw bytes long before the answer was ready
    assert head.startswith(b"HTTP/1.1 200")
    assert b"application/json" in head.lower()
    decoded = body.decode()
    if "chunked" in head.decode().lower():
        decoded = _dechunk(body).decode()
    assert decoded.startswith("\n")
    assert json.loads(decoded)["choices"][0]["message"]["content"].endswith("slow one")


def _dechunk(body: bytes) -> bytes:
    out = b""
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        out, body = out + rest[:size], rest[size + 2:]
    return out


@pytest.mark.parametrize("padded", ["gevent"], indirect=True)
def test_padding_keeps_sdk_and_error_bodies_working(padded, openai_emu):
    client = openai.OpenAI(base_url=f"{padded.base_url}/v1", api_key="unused", max_retries=0)
    openai_emu.fail_next(Fault(hang=1.0))
    answer = client.chat.completions.create(**CHAT)
    assert answer.choices[0].message.content.endswith("slow one")
    # A failure found after the padding began: status 200 was sent, the body says what failed.
    openai_emu.fail_next(Fault(hang=1.0, reply=Reply(400, {"error": {
        "message": "bad thing", "type": "invalid_request_error", "param": None, "code": None}})))
    response = http.request("POST", f"{padded.base_url}/v1/chat/completions", json=CHAT)
    assert response.status == 200
    assert "bad thing" in json.loads(response.data)["error"]["message"]


@pytest.mark.parametrize("padded", ["gevent"], indirect=True)
def test_fast_answers_and_streams_are_not_padded(padded, openai_emu):
    fast = http.request("POST", f"{padded.base_url}/v1/chat/completions", json=CHAT)
    assert fast.status == 200 and not fast.data.startswith(b"\n")
    error = http.request("POST", f"{padded.base_url}/v1/chat/completions",
                            json={**CHAT, "model": "no-such-model"})
    assert error.status == 404  # a failure before the first pause keeps its status
    openai_emu.fail_next(Fault(hang=1.0))
    stream = http.request("POST", f"{padded.base_url}/v1/chat/completions",
                             json={**CHAT, "stream": True})
    assert stream.status == 200
    assert stream.headers["content-type"].startswith("text/event-stream")
    assert stream.data.startswith(b"data: ")


def test_web_concurrency_from_the_platform(start_gunicorn, provider_env):
    proxy = start_gunicorn({**provider_env, "WEB_CONCURRENCY": "3"})
    deadline = time.monotonic() + 10
    while proxy.log().count("Booting worker") < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert proxy.log().count("Booting worker") == 3


@pytest.fixture
def tls_redis(tmp_path):
    """redis-server speaking TLS only, with a self-signed certificate (as Heroku Redis does)."""
    binary, openssl = shutil.which("redis-server"), shutil.which("openssl")
    if binary is None or openssl is None:
        pytest.skip("redis-server or openssl is not installed")
    key, cert = tmp_path / "redis.key", tmp_path / "redis.crt"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=redis.example", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
         "--tls-cert-file", str(cert), "--tls-key-file", str(key), "--tls-auth-clients", "no",
         "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_port(port, process, "redis-server (TLS)")
    except RuntimeError:
        _stop(process)
        pytest.skip("this redis-server was built without TLS")
    yield f"rediss://127.0.0.1:{port}/0"
    _stop(process)


def test_heroku_redis_tls_with_self_signed_certificate(tls_redis, monkeypatch):
    from app.storage.redis_client import redis_client
    monkeypatch.delenv("DYNO", raising=False)
    import redis
    with pytest.raises(redis.exceptions.ConnectionError):
        redis_client(tls_redis, 2.0).ping()  # elsewhere a certificate must verify
    assert redis_client(tls_redis + "?ssl_cert_reqs=none", 2.0).ping()  # the URL's own word
    monkeypatch.setenv("DYNO", "web.1")
    assert redis_client(tls_redis, 2.0).ping()  # Heroku: as given
