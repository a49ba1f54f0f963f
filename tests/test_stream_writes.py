"""How a gevent worker writes a stream to its client (app/gunicorn_writes.py): chunks that
arrived together go out in one write; chunks that arrive apart go out as each arrives."""
from __future__ import annotations

import json
import socket
import time

import pytest

from tests.conftest import module_gunicorn
from tests.emulators.server import Fault, Reply, sse

BODY = json.dumps({"model": "gpt-4", "stream": True,
                   "messages": [{"role": "user", "content": "count"}]}).encode()
EVENTS = 20


def frames(count: int = EVENTS) -> list[bytes]:
    chunk = {"id": "w", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4"}
    return [*(sse({**chunk, "choices": [{"index": 0, "delta": {"content": f"w{i} "},
                                         "finish_reason": None}]}) for i in range(count)),
            sse({**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
            b"data: [DONE]\n\n"]


@pytest.fixture(scope="module")
def proxy(request):
    return module_gunicorn(request, {"SWITCHBOARD_WORKER_CLASS": "gevent", "WEB_CONCURRENCY": "1"})


def http_chunks(port: int) -> list[tuple[float, bytes]]:
    """(arrival time, data) of each HTTP chunk of a streamed completion's answer."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=15)
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                 b"Content-Type: application/json\r\n"
                 + f"Content-Length: {len(BODY)}\r\n\r\n".encode() + BODY)
    buffer, chunks, head_done = b"", [], False
    while True:
        piece = sock.recv(65536)
        now = time.monotonic()
        if not piece:
            break
        buffer += piece
        if not head_done:
            if b"\r\n\r\n" not in buffer:
                continue
            head, buffer = buffer.split(b"\r\n\r\n", 1)
            assert head.startswith(b"HTTP/1.1 200") and b"chunked" in head.lower(), head
            head_done = True
        while b"\r\n" in buffer:
            size_line, rest = buffer.split(b"\r\n", 1)
            size = int(size_line, 16)
            if len(rest) < size + 2:
                break
            if size:
                chunks.append((now, rest[:size]))
            buffer = rest[size + 2:]
    sock.close()
    return chunks


def content_of(chunks: list[tuple[float, bytes]]) -> bytes:
    return b"".join(data for _, data in chunks)


def test_chunks_that_arrived_together_go_out_in_one_write(proxy, openai_emu):
    openai_emu.fail_next(Fault(reply=Reply(200, events=[b"".join(frames())],
                                           content_type="text/event-stream")))
    chunks = http_chunks(proxy.port)
    body = content_of(chunks)
    assert body.count(b'"content":"w') == EVENTS and body.endswith(b"data: [DONE]\n\n")
    assert len(chunks) <= 2, [len(data) for _, data in chunks]   # gunicorn alone: 22


def test_chunks_that_arrive_apart_go_out_as_each_arrives(proxy, openai_emu):
    openai_emu.fail_next(Fault(reply=Reply(200, events=frames(), event_delay=0.05,
                                           content_type="text/event-stream")))
    chunks = http_chunks(proxy.port)
    body = content_of(chunks)
    assert body.count(b'"content":"w') == EVENTS and body.endswith(b"data: [DONE]\n\n")
    assert len(chunks) >= EVENTS // 2   # not held back for the next ones
    first_word = next(t for t, data in chunks if b'"content":"w0 "' in data)
    assert chunks[-1][0] - first_word >= 0.5   # 20 events 50 ms apart: ~1 s


def test_what_came_before_a_failure_is_written_before_it_is_raised():
    from app.gunicorn_writes import Coalesced

    def body():
        yield b"data: 1\n\n"
        yield b"data: 2\n\n"
        raise RuntimeError("the app failed")

    written: list[bytes] = []
    with pytest.raises(RuntimeError):
        list(Coalesced(body(), written.append))
    assert written == [b"data: 1\n\ndata: 2\n\n"]
