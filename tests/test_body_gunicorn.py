"""A JSON body under gunicorn (read in one call when it ends the input stream at the body's
end: app/api/body.py): the same answers as werkzeug's reading gives, under both workers."""
from __future__ import annotations

import http.client
import json


def post(proxy, body: bytes, content_type: str = "application/json",
         length: int | None = None) -> tuple[int, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    try:
        connection.putrequest("POST", "/v1/chat/completions")
        connection.putheader("Content-Type", content_type)
        connection.putheader("Content-Length", str(len(body) if length is None else length))
        connection.endheaders(body)
        reply = connection.getresponse()
        return reply.status, json.loads(reply.read())
    finally:
        connection.close()


def ask(**extra) -> bytes:
    return json.dumps({"model": "gpt-4", "messages": [{"role": "user", "content": "hi"}],
                       **extra}).encode()


def nested(depth: int) -> object:
    value: object = "x"
    for _ in range(depth):
        value = {"a": value}
    return value


def test_json_bodies_read_whole_and_checked(shared_gunicorn, worker_class, openai_emu):
    proxy = shared_gunicorn(worker_class)
    assert post(proxy, ask())[0] == 200
    assert post(proxy, ask(), "application/json; charset=utf-8")[0] == 200
    status, reply = post(proxy, ask(), "text/plain")
    assert (status, reply["error"]["code"]) == (415, "unsupported_media_type")
    status, reply = post(proxy, ask(metadata=nested(70)))
    assert (status, reply["error"]["code"]) == (400, "too_deeply_nested")
    # more containers than the depth limit, side by side: nothing too deep
    assert post(proxy, ask(metadata={f"k{n}": {"v": [n]} for n in range(40)}))[0] == 200
    status, reply = post(proxy, ask()[:-5])
    assert (status, reply["error"]["code"]) == (400, "invalid_json")
    # refused from its Content-Length, before a byte of it is waited for
    status, reply = post(proxy, ask(), length=10 ** 9)
    assert status == 413 and reply["error"]["type"] == "invalid_request_error"
