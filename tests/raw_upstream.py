"""An HTTP/1.1 upstream on raw sockets that records exactly what arrives: every byte of every
connection, and each request with the number of the connection it came on. Answers come from
`respond(conn, head, body)`; by default an OpenAI chat completion, or whatever a test's
`answer(head, body)` returns."""
from __future__ import annotations

import json
import socket
import threading
from typing import Callable, Iterator

import pytest


def http_answer(payload: object, status: str = "200 OK") -> bytes:
    data = json.dumps(payload).encode()
    return (f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n\r\n").encode() + data


COMPLETION = {"id": "chatcmpl-raw", "object": "chat.completion", "created": 1,
              "model": "gpt-4o-mini",
              "choices": [{"index": 0, "finish_reason": "stop",
                           "message": {"role": "assistant", "content": "raw upstream"}}],
              "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}


class RawUpstream:
    def __init__(self, host: str = "127.0.0.1",
                 answer: Callable[[bytes, bytes], bytes] | None = None, port: int = 0):
        self.answer = answer or (lambda head, body: http_answer(COMPLETION))
        self.connections = 0
        self.received: list[bytes] = []             # raw bytes, one entry per connection
        self.requests: list[tuple[int, bytes, bytes]] = []  # (connection, head, body)
        self.closed: set[int] = set()              # connections the client hung up
        self._lock = threading.Lock()
        self.listener = socket.create_server((host, port), backlog=256)
        self.host, self.port = host, self.listener.getsockname()[1]
        self.base = f"http://{host}:{self.port}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with self._lock:
                number = self.connections
                self.connections += 1
                self.received.append(b"")
            threading.Thread(target=self._serve, args=(conn, number), daemon=True).start()

    def _serve(self, conn: socket.socket, number: int) -> None:
        buffer = b""
        try:
            while True:
                while b"\r\n\r\n" not in buffer:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buffer += data
                    self.received[number] += data
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                while len(buffer) < length:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buffer += data
                    self.received[number] += data
                body, buffer = buffer[:length], buffer[length:]
                with self._lock:
                    self.requests.append((number, head + b"\r\n\r\n", body))
                self.respond(conn, head + b"\r\n\r\n", body)
        except OSError:
            pass
        finally:
            self.closed.add(number)
            conn.close()

    def respond(self, conn: socket.socket, head: bytes, body: bytes) -> None:
        conn.sendall(self.answer(head, body))

    def all_bytes(self) -> bytes:
        return b"".join(self.received)

    def close(self) -> None:
        self.listener.close()


def upstream_fixture(answer: Callable[[bytes, bytes], bytes]):
    """A module's raw upstream on 127.0.0.1 answering with `answer`."""
    @pytest.fixture(scope="module")
    def upstream() -> Iterator[RawUpstream]:
        server = RawUpstream(answer=answer)
        yield server
        server.close()
    return upstream


def gunicorn_on(folder, config: str, env: dict[str, str]):
    """A real gunicorn (tests/conftest.py) on the config text and env, storage in `folder`;
    the caller stops it."""
    from tests.conftest import GunicornProxy
    path = folder / "switchboard.yaml"
    path.write_text(config)
    return GunicornProxy({"SWITCHBOARD_CONFIG": str(path),
                          "SWITCHBOARD_DATA_DIR": str(folder / "data"), **env},
                         folder / "gunicorn.log")
