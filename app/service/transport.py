"""The HTTP client for upstream calls: libcurl (pycurl) with keep-alive connections.

Why libcurl: on the hot path the HTTP client was the proxy's largest single cost. One call to
the bench's mock upstream costs ~70 us of CPU through pycurl against ~320 us through urllib3
(~3 ms through requests); `bench/clients.py` measures it. Each call drives libcurl's multi
interface and waits with poll(2) (app/service/readiness.py), so it works in gthread workers
(the GIL is free while waiting) and under gevent (on the hub's own watchers), with no limit
on descriptor numbers.

Every request passes `Exchange.start`, the one place a request becomes bytes on the wire:
only http and https (libcurl's protocol allow-list, redirects never followed), the URL as
`app.service.egress` parsed it, headers that cannot hold a line break, and a client's own
connection (`Route.isolated`) on an Exchange of its own that is closed afterwards, so it
never shares a pooled connection (or a pinned address) with the operator's deployments.
"""
from __future__ import annotations

import ipaddress
import os
import select
import socket
import threading
import time
from dataclasses import dataclass
from typing import Callable, Mapping

import certifi
import pycurl

from app.errors import ClientDisconnected
from app.jsonfast import dumps
from app.providers.base import UpstreamRequest
from app.service.egress import Route, header_lines, parse_url
from app.service.readiness import after_other_work, wait_ready


class TransportError(Exception):
    """The upstream could not be reached, cut the answer short, or did not answer in time."""

    def __init__(self, message: str, timed_out: bool):
        super().__init__(message)
        self.timed_out = timed_out


@dataclass
class RawResponse:
    status: int
    headers: Mapping[str, str]
    data: bytes
    seconds: float


# libcurl's wish for a socket -> the poll events that grant it.
_POLL_EVENTS = {pycurl.POLL_NONE: 0, pycurl.POLL_IN: select.POLLIN, pycurl.POLL_OUT: select.POLLOUT,
                pycurl.POLL_INOUT: select.POLLIN | select.POLLOUT}
_READABLE = select.POLLIN | select.POLLPRI | select.POLLHUP
_CONNECT_FAILURES = {pycurl.E_COULDNT_CONNECT: "refused",
                     pycurl.E_COULDNT_RESOLVE_HOST: "host name not found",
                     pycurl.E_COULDNT_RESOLVE_PROXY: "proxy not found"}


def timed_out(seconds: float) -> TransportError:
    return TransportError(f"timed out after {seconds:g} s", timed_out=True)


class Exchange:
    """One libcurl handle and the multi handle that drives it; the multi handle keeps the
    keep-alive connections, so an Exchange taken from the pool reuses them."""

    def __init__(self, pooled: bool = True):
        self.pooled = pooled  # False: one route's own, closed after its transfer
        curl = self.curl = pycurl.Curl()
        curl.setopt(pycurl.NOSIGNAL, 1)
        curl.setopt(pycurl.HTTP_VERSION, pycurl.CURL_HTTP_VERSION_1_1)
        curl.setopt(pycurl.PROXY, "")  # never an environment proxy for provider traffic
        curl.setopt(pycurl.PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS)
        curl.setopt(pycurl.REDIR_PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS)
        curl.setopt(pycurl.FOLLOWLOCATION, 0)
        curl.setopt(pycurl.CAINFO, certifi.where())
        curl.setopt(pycurl.WRITEFUNCTION, self._on_body)
        curl.setopt(pycurl.HEADERFUNCTION, self._on_header)
        self.multi = pycurl.CurlMulti()
        self.multi.setopt(pycurl.M_SOCKETFUNCTION, self._on_socket)
        self.multi.setopt(pycurl.M_TIMERFUNCTION, self._on_timer)
        self.sockets: dict[int, int] = {}
        self.timer_due: float | None = None
        self.active = False
        self.failure: tuple[int, str] | None = None
        self.body: list[bytes] = []
        self.status = 0
        self.headers: dict[str, str] = {}
        self.headers_done = False

    # libcurl's callbacks
    def _on_body(self, data: bytes) -> None:
        self.body.append(data)

    def _on_header(self, line: bytes) -> None:
        if line.startswith(b"HTTP/"):  # a status line: the first, or the next after a 1xx
            self.status, self.headers, self.headers_done = int(line.split()[1]), {}, False
        elif line in (b"\r\n", b"\n"):
            self.headers_done = self.status >= 200
        else:
            name, _, value = line.decode("latin-1").partition(":")
            name, value = name.strip().lower(), value.strip()
            self.headers[name] = f"{self.headers[name]}, {value}" if name in self.headers else value

    def _on_socket(self, what: int, fd: int, multi, socketp) -> None:
        if what == pycurl.POLL_REMOVE:
            self.sockets.pop(fd, None)
        else:
            self.sockets[fd] = _POLL_EVENTS[what]

    def _on_timer(self, milliseconds: int) -> None:
        self.timer_due = None if milliseconds < 0 else time.monotonic() + milliseconds / 1000

    def pin(self, route: Route) -> None:
        """Connect to the route's checked addresses only: libcurl's resolve override for its
        host, and a refusal at connect time of any other address. Only for a fresh Exchange
        that serves this one route (the override stays in its DNS cache)."""
        brackets = ["[" + a + "]" if ":" in a else a for a in route.addresses]
        self.curl.setopt(pycurl.RESOLVE, [f"{route.destination.authority}:{','.join(brackets)}"])
        allowed = frozenset(map(ipaddress.ip_address, route.addresses))

        def open_socket(purpose: int, address) -> socket.socket | int:
            if ipaddress.ip_address(address.addr[0]) not in allowed:
                return pycurl.SOCKET_BAD
            return socket.socket(address.family, address.socktype, address.protocol)

        self.curl.setopt(pycurl.OPENSOCKETFUNCTION, open_socket)

    # one transfer
    def start(self, request: UpstreamRequest, route: Route, connect_timeout: float) -> None:
        # "Expect:" keeps libcurl from waiting for a 100 Continue before a large body.
        headers = header_lines(request.headers) + ["Expect:"]
        curl = self.curl
        curl.setopt(pycurl.URL, route.destination.url)
        if request.method == "GET":
            curl.setopt(pycurl.HTTPGET, 1)
        else:
            curl.setopt(pycurl.POSTFIELDS, b"" if request.json is None else dumps(request.json))
        curl.setopt(pycurl.HTTPHEADER, headers)
        curl.setopt(pycurl.CONNECTTIMEOUT_MS, max(1, int(connect_timeout * 1000)))
        self.body, self.status, self.headers, self.headers_done = [], 0, {}, False
        self.failure = None
        self.multi.add_handle(curl)
        self.active = True
        self._act(pycurl.SOCKET_TIMEOUT, 0)

    def drive(self, ready: Callable[[], bool], seconds: float,
              client: "ClientWatch | None" = None) -> bool:
        """Run the transfer until `ready()` or its end; False when `seconds` ran out first.
        The one wait loop behind every deadline: a whole answer, headers, a stream's gaps.
        With a `client` connection to watch, its hang-up raises ClientDisconnected at once."""
        deadline = time.monotonic() + seconds
        while self.active and not ready():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.wait(remaining, client)
        return True

    def wait(self, seconds: float, client: "ClientWatch | None" = None) -> None:
        """Wait up to `seconds` for the sockets libcurl watches, or its timer (or the client's
        connection), then let libcurl act."""
        now = time.monotonic()
        due = now + seconds if self.timer_due is None else min(now + seconds, self.timer_due)
        watched = client.fd if client is not None else None
        sockets = self.sockets if watched is None else {**self.sockets, watched: select.POLLIN}
        if sockets:
            ready = wait_ready(sockets, due - now)
        else:
            ready = self._sleep(due - now)
        for fd, events in ready:
            if fd == watched:
                client.check()
                continue
            self._act(fd, (pycurl.CSELECT_IN if events & _READABLE else 0)
                      | (pycurl.CSELECT_OUT if events & select.POLLOUT else 0)
                      | (pycurl.CSELECT_ERR if events & (select.POLLERR | select.POLLNVAL) else 0))
        if self.active and self.timer_due is not None and time.monotonic() >= self.timer_due:
            self.timer_due = None
            self._act(pycurl.SOCKET_TIMEOUT, 0)

    def read_ready(self) -> None:
        """Let libcurl read (or write) its sockets now, as if poll had said they were ready:
        for bytes that are likely there already, without a wait and a wake-up for them."""
        for fd, events in list(self.sockets.items()):
            if self.active:
                self._act(fd, (pycurl.CSELECT_IN if events & select.POLLIN else 0)
                          | (pycurl.CSELECT_OUT if events & select.POLLOUT else 0))

    @staticmethod
    def _sleep(seconds: float) -> list:
        time.sleep(max(0.0, seconds))
        return []

    def _act(self, fd: int, events: int) -> None:
        _, running = self.multi.socket_action(fd, events)
        if running == 0 and self.active:
            _, _, failed = self.multi.info_read()
            if failed:
                self.failure = (failed[0][1], failed[0][2])
            self.multi.remove_handle(self.curl)
            self.active = False

    def abort(self) -> None:
        """Stop an unfinished transfer; libcurl closes its connection, which cannot be reused
        (and reports the sockets it drops through `_on_socket`)."""
        if self.active:
            self.active = False
            try:
                self.multi.remove_handle(self.curl)
            except pycurl.error:
                # An abandoned stream collected by the garbage collector together with its
                # handles: libcurl has cleaned them up already, nothing is left to stop.
                pass

    def take_body(self) -> bytes:
        data = b"".join(self.body)
        self.body = []
        return data

    def close(self) -> None:
        self.abort()
        self.multi.close()
        self.curl.close()


class ClientWatch:
    """The client's connection, watched while a stream waits for its upstream: a client that
    hangs up (end of file) ends the wait at once, so the upstream connection is closed and
    the provider stops generating, instead of at the next chunk the proxy fails to write."""

    def __init__(self, connection: socket.socket):
        self.connection = connection
        self.fd: int | None = connection.fileno()

    def check(self) -> None:
        """The connection is readable: raise ClientDisconnected when that means it closed."""
        try:
            gone = self.connection.recv(1, socket.MSG_PEEK) == b""
        except (BlockingIOError, InterruptedError):
            return              # nothing to read after all: keep watching
        except ValueError:      # a TLS socket cannot peek: stop watching
            gone = False
        except OSError:         # reset by the client
            gone = True
        if gone:
            raise ClientDisconnected()
        self.fd = None          # bytes sent ahead are not a hang-up; stop watching


# The longest a running stream's read waits behind its worker's other work (see read1).
RELAY_DEFER_SECONDS = 0.5


class StreamResponse:
    """An answer read as it arrives (an event stream); `close()` hands the connection back."""

    def __init__(self, transport: "Transport", exchange: Exchange, stall_timeout: float):
        self._transport = transport
        self._exchange = exchange
        self.stall_timeout = stall_timeout
        self.status = exchange.status
        self.headers = exchange.headers
        self.client: ClientWatch | None = None
        self._relaying = False   # past the first read: the stream has started

    def watch(self, connection: socket.socket) -> None:
        """Also watch the client's connection while waiting: see ClientWatch."""
        self.client = ClientWatch(connection)

    def read1(self) -> bytes:
        """The bytes that arrived since the last call, waiting for some; b"" at the end."""
        exchange = self._exchange
        if exchange is None:
            return b""
        if self._relaying and not exchange.body and after_other_work(RELAY_DEFER_SECONDS):
            # Requests starting in this worker went first (the first read is part of this
            # stream's own start); what arrived meanwhile is read without a further wait.
            exchange.read_ready()
        self._relaying = True
        if not exchange.drive(lambda: bool(exchange.body), self.stall_timeout, self.client):
            raise TransportError(f"no data for {self.stall_timeout:g} s", timed_out=True)
        if exchange.body:
            return exchange.take_body()
        if exchange.failure:
            raise Transport.error(exchange.failure, self.stall_timeout)
        return b""

    def read(self) -> bytes:
        """Everything left (an error body)."""
        pieces = []
        while piece := self.read1():
            pieces.append(piece)
        return b"".join(pieces)

    def close(self) -> None:
        if self._exchange is not None:
            self._transport.give_back(self._exchange)
            self._exchange = None


# Idle Exchanges (each with its keep-alive connection, ~20-40 KB) a process keeps. A gevent
# worker holds hundreds of slow requests in flight at once (bench scenario 3: 500 per worker):
# with a smaller pool, every request beyond it connected anew and closed after, which cost
# 20 % more CPU per request and a TIME_WAIT socket each.
POOL_SIZE = 1024


class Transport:
    def __init__(self, pool_size: int = POOL_SIZE, connect_timeout: float = 10.0):
        self.connect_timeout = connect_timeout
        self.pool_size = pool_size
        self._idle: list[Exchange] = []
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def send(self, request: UpstreamRequest, read_timeout: float,
             route: Route | None = None) -> RawResponse:
        """Send and read the whole answer within `read_timeout` seconds. `route` is how
        app.service.egress admitted the request; without one, its URL is parsed here and
        the request goes on a pooled connection. Raises UnsafeUpstream before sending
        anything a URL or header cannot carry."""
        started = time.perf_counter()
        route = route or Route(parse_url(request.url))
        exchange = self._take(route)
        try:
            exchange.start(request, route, min(self.connect_timeout, read_timeout))
            if not exchange.drive(lambda: False, read_timeout):
                raise timed_out(read_timeout)
            if exchange.failure:
                raise self.error(exchange.failure, read_timeout)
            return RawResponse(exchange.status, exchange.headers,
                               exchange.take_body(), time.perf_counter() - started)
        finally:
            self.give_back(exchange)

    def open_stream(self, request: UpstreamRequest, read_timeout: float,
                    route: Route | None = None) -> StreamResponse:
        """Send and return once the status and headers are in; the caller reads and closes.
        `read_timeout` bounds the wait for the headers and every gap between pieces; `route`
        as for `send`."""
        route = route or Route(parse_url(request.url))
        exchange = self._take(route)
        try:
            exchange.start(request, route, min(self.connect_timeout, read_timeout))
            if not exchange.drive(lambda: exchange.headers_done, read_timeout):
                raise timed_out(read_timeout)
            if exchange.failure:
                raise self.error(exchange.failure, read_timeout)
        except BaseException:
            self.give_back(exchange)
            raise
        return StreamResponse(self, exchange, read_timeout)

    @staticmethod
    def error(failure: tuple[int, str], timeout: float) -> TransportError:
        code, message = failure
        if code == pycurl.E_OPERATION_TIMEDOUT:  # the connect timeout
            return timed_out(timeout)
        reason = _CONNECT_FAILURES.get(code)
        return TransportError(f"connection failed: {reason or message}", timed_out=False)

    def _take(self, route: Route) -> Exchange:
        if not route.pooled:
            exchange = Exchange(pooled=False)
            if route.addresses:
                exchange.pin(route)
            return exchange
        with self._lock:
            if self._pid != os.getpid():  # a forked worker never shares its parent's sockets
                self._idle, self._pid = [], os.getpid()
            if self._idle:
                return self._idle.pop()
        return Exchange()

    def give_back(self, exchange: Exchange) -> None:
        # libcurl does not report the socket of a transfer stopped half-way (a stream whose
        # client hung up) as removed; pooled, its stale entry would be polled by the next
        # transfer on this handle. Such an Exchange is closed instead.
        unfinished = exchange.active
        exchange.abort()
        with self._lock:
            if exchange.pooled and not unfinished and len(self._idle) < self.pool_size:
                self._idle.append(exchange)
                return
        exchange.close()
