"""A threaded HTTP server on 127.0.0.1 that plays one provider, with scripted faults.

Each emulator subclass implements `handle(call)` for its provider's routes. The server
records every call, checks request bodies against the provider's official contract, and
can be told to misbehave (error statuses, hangs, resets, garbage) for the next calls.
"""
from __future__ import annotations

import itertools
import json
import select
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterable
from urllib.parse import parse_qs, urlsplit


class PromptHandler(BaseHTTPRequestHandler):
    """A request handler whose answers leave at once. It writes the headers and the body in
    two sends: with Nagle on, the body waited for the client's delayed ACK of the headers,
    40 ms per answer on a kept-alive connection."""

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


@dataclass
class Call:
    """One request the emulator received."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any
    raw: bytes


@dataclass
class Reply:
    status: int = 200
    body: Any = None                        # JSON-serialisable, or bytes sent as they are
    headers: dict[str, str] = field(default_factory=dict)
    events: Iterable[bytes] | None = None   # a stream: each item is written and flushed
    event_delay: float = 0.0
    content_type: str = "application/json"


@dataclass
class Fault:
    """What to do instead of answering normally: a canned reply, a hang, a reset or garbage."""

    reply: Reply | None = None
    hang: float = 0.0
    reset: bool = False
    garbage: bytes | None = None
    times: int = 1


class Emulator:
    """Base emulator; subclasses set `name`, `api_key`, the proxy's env names for them
    (`key_env`, `base_env`, and `base_path` when the proxy's base URL carries one) and
    implement `handle`; per-test knobs go in `reset_knobs`."""

    name = "emulator"
    api_key = ""
    key_env = base_env = base_path = ""

    def __init__(self):
        self.calls: list[Call] = []
        self.violations: list[str] = []
        self.faults: list[Fault] = []
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._server: ThreadingHTTPServer | None = None
        self.open_streams = 0
        self.closed_streams = 0
        self._connections: set[socket.socket] = set()
        self.reset_knobs()

    # -- lifecycle ------------------------------------------------------------------
    def start(self) -> "Emulator":
        emulator = self

        class Handler(PromptHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                pass

            def setup(self):
                super().setup()
                with emulator._lock:
                    emulator._connections.add(self.connection)

            def finish(self):
                with emulator._lock:
                    emulator._connections.discard(self.connection)
                super().finish()

            def _serve(self):
                emulator._dispatch(self)

            do_GET = do_POST = do_PUT = do_DELETE = _serve

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop like a dead host: refuse new connections and cut the kept-alive ones."""
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            with self._lock:
                connections = list(self._connections)
            for connection in connections:
                try:
                    connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def proxy_env(self) -> dict[str, str]:
        """The environment that points the proxy at this emulator."""
        return {self.key_env: self.api_key, self.base_env: self.base_url + self.base_path}

    # -- test controls --------------------------------------------------------------
    def fail_next(self, fault: Fault) -> None:
        with self._lock:
            self.faults.append(fault)

    def reset_state(self) -> None:
        with self._lock:
            self.calls.clear()
            self.violations.clear()
            self.faults.clear()
        self.reset_knobs()

    def reset_knobs(self) -> None:
        """Set a subclass's scripted behaviour to its default (at start and before each test)."""

    def check_contract(self, problems: list[str], what: str) -> None:
        """Record contract violations; the test fixture fails the test on any."""
        if problems:
            with self._lock:
                self.violations.append(f"{self.name} {what}: " + "; ".join(problems))

    def check_answer(self, problems: list[str], what: str) -> None:
        """Record where the emulator's own answer breaks the contract, so it cannot drift."""
        self.check_contract(problems, f"own {what}")

    def handle(self, call: Call) -> Reply:
        raise NotImplementedError

    # -- plumbing -------------------------------------------------------------------
    def _next_fault(self) -> Fault | None:
        with self._lock:
            if not self.faults:
                return None
            fault = self.faults[0]
            fault.times -= 1
            if fault.times <= 0:
                self.faults.pop(0)
            return fault

    def _dispatch(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        parts = urlsplit(handler.path)
        call = Call(handler.command, parts.path, parse_qs(parts.query),
                    {k.lower(): v for k, v in handler.headers.items()}, body, raw)
        with self._lock:
            self.calls.append(call)
        fault = self._next_fault()
        if fault is not None:
            if fault.hang:
                time.sleep(fault.hang)
            if fault.reset:
                handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                              struct.pack("ii", 1, 0))
                handler.close_connection = True
                return
            if fault.garbage is not None:
                self._write(handler, Reply(200, fault.garbage, content_type="application/json"))
                return
            if fault.reply is not None:
                self._write(handler, fault.reply)
                return
        try:
            reply = self.handle(call)
        except Exception as exc:  # an emulator bug must show up, not hang the proxy
            reply = Reply(500, {"error": {"message": f"emulator crashed: {exc!r}"}})
        self._write(handler, reply)

    def _write(self, handler: BaseHTTPRequestHandler, reply: Reply) -> None:
        handler.send_response(reply.status)
        for name, value in reply.headers.items():
            handler.send_header(name, value)
        if reply.events is not None:
            handler.send_header("Content-Type", reply.content_type)
            handler.send_header("Cache-Control", "no-cache")
            handler.send_header("Connection", "close")
            handler.end_headers()
            handler.close_connection = True
            with self._lock:
                self.open_streams += 1
            try:
                for event in reply.events:
                    handler.wfile.write(event)
                    handler.wfile.flush()
                    if reply.event_delay and _hung_up(handler.connection, reply.event_delay):
                        break
            except OSError:
                pass  # the proxy closed the stream
            finally:
                with self._lock:
                    self.closed_streams += 1
            return
        data = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
        handler.send_header("Content-Type", reply.content_type)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)


def _hung_up(connection: socket.socket, seconds: float) -> bool:
    """Wait `seconds` between two stream events, noticing at once when the proxy closes the
    connection (as a real provider stops generating then, not at its next write). poll, not
    select: a long test run's descriptor numbers pass select's limit of 1024."""
    poller = select.poll()
    poller.register(connection, select.POLLIN)
    if not poller.poll(seconds * 1000):
        return False
    try:
        return connection.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


def sse(data: Any, event: str | None = None) -> bytes:
    """One Server-Sent Event frame."""
    text = data if isinstance(data, str) else json.dumps(data)
    head = f"event: {event}\n" if event else ""
    return (head + "".join(f"data: {line}\n" for line in text.split("\n")) + "\n").encode()
