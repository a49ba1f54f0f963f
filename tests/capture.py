"""Capture servers: threaded HTTP servers on 127.0.0.1 that play a logging service (Supabase,
PostHog, Mixpanel, Sentry, Helicone) and record every request that arrives.

Each request is kept with its method, path, query, headers and body (gunzipped when sent
gzipped, as Sentry's envelopes are). A server answers 200 (or what its `responder` says),
or misbehaves on demand: after `hang()` it holds each request unanswered until `release()` or
the server stops (then hangs up without an answer); after `fail()` it answers 500.

Below the server: the environment and config that point every integration at its capture
server, and a proxy (Flask test client) whose request events are also recorded.
"""
from __future__ import annotations

import gzip
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

from app.api import create_app
from app.config import load_settings
from app.service.completion import CompletionService
from prometheus_client import REGISTRY
from tests.emulators.server import PromptHandler

HANG_LIMIT_SECONDS = 60.0


@dataclass
class Captured:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]        # names in lower case
    body: bytes                    # after gunzip

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode()).items()}

    def envelope(self) -> list[dict]:
        """A Sentry envelope: its header, then each item's header and payload, as JSON."""
        return [json.loads(line) for line in self.body.splitlines() if line.strip()]


Responder = Callable[[Captured], "tuple[int, bytes]"]


class CaptureServer:
    def __init__(self, responder: Responder | None = None, body: bytes = b'{"status": 1}'):
        self.responder = responder
        self.body = body
        self.mode = "ok"
        self.requests: list[Captured] = []
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._released = threading.Event()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "CaptureServer":
        capture = self

        class Handler(PromptHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                capture._handle(self)

            do_GET = do_PUT = do_PATCH = do_POST

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def hang(self) -> None:
        self._released.clear()
        self.mode = "hang"

    def fail(self) -> None:
        self.mode = "fail"

    def release(self) -> None:
        """Let held requests go (unanswered) and answer the next ones normally."""
        self.mode = "ok"
        self._released.set()

    def stop(self) -> None:
        self._released.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length)
        if handler.headers.get("Content-Encoding") == "gzip":
            raw = gzip.decompress(raw)
        parts = urlsplit(handler.path)
        captured = Captured(handler.command, parts.path, parse_qs(parts.query),
                            {k.lower(): v for k, v in handler.headers.items()}, raw)
        with self._arrived:
            self.requests.append(captured)
            self._arrived.notify_all()
        if self.mode == "hang":
            self._released.wait(HANG_LIMIT_SECONDS)
            handler.close_connection = True
            return
        status, body = (500, b'{"error": "capture server told to fail"}') \
            if self.mode == "fail" else \
            self.responder(captured) if self.responder else (200, self.body)
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def wait_for(self, count: int, timeout: float = 10.0,
                 where: Callable[[Captured], bool] | None = None) -> list[Captured]:
        """The requests received (those matching `where`) once there are `count` of them."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while True:
                found = [r for r in self.requests if where is None or where(r)]
                if len(found) >= count or time.monotonic() >= deadline:
                    return found
                self._arrived.wait(max(0.0, deadline - time.monotonic()))


# -- the five services and a proxy pointed at them ----------------------------------------

SUPABASE_KEY = "sb-service-role-key-0123456789abcdef"
POSTHOG_KEY = "phc_posthog_project_key_0123456789"
MIXPANEL_TOKEN = "mixpanel-project-token-0123456789"
SENTRY_KEY = "sentrypublickey0123456789abcdef"
HELICONE_KEY = "sk-helicone-secret-key-0123456789"
INTEGRATION_SECRETS = (SUPABASE_KEY, POSTHOG_KEY, MIXPANEL_TOKEN, SENTRY_KEY, HELICONE_KEY)
NAMES = ("supabase", "posthog", "mixpanel", "sentry", "helicone")

# The example configuration; short timeouts keep shutdown quick in tests.
CONFIG = """
num_retries: 0
callbacks:
  success: [supabase, posthog, mixpanel, helicone]
  failure: [sentry, supabase, posthog, mixpanel]
  timeout: 2
  max_retries: 1
"""


@dataclass
class Services:
    servers: dict[str, CaptureServer]

    def env(self) -> dict[str, str]:
        sentry_port = self.servers["sentry"].url.rsplit(":", 1)[1]
        return {
            "SUPABASE_URL": self.servers["supabase"].url, "SUPABASE_KEY": SUPABASE_KEY,
            "POSTHOG_API_KEY": POSTHOG_KEY, "POSTHOG_HOST": self.servers["posthog"].url,
            "MIXPANEL_TOKEN": MIXPANEL_TOKEN, "MIXPANEL_API_HOST": self.servers["mixpanel"].url,
            "SENTRY_DSN": f"http://{SENTRY_KEY}@127.0.0.1:{sentry_port}/1",
            "SENTRY_ENVIRONMENT": "test",
            "HELICONE_API_KEY": HELICONE_KEY, "HELICONE_API_BASE": self.servers["helicone"].url,
        }

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()


def start_services(**responders) -> Services:
    return Services({name: CaptureServer(responders.get(name)).start() for name in NAMES})


@dataclass
class Proxy:
    """A Flask test client on a service whose every request event is also recorded here."""

    service: CompletionService
    events: list = field(default_factory=list)

    def __post_init__(self):
        self.client = create_app(self.service).test_client()
        self.service.events.subscribe(self.events.append)

    def chat(self, request_id: str, headers: dict | None = None, **body):
        body.setdefault("model", "gpt-4")
        body.setdefault("messages", [{"role": "user", "content": f"question {request_id}"}])
        return self.client.post("/v1/chat/completions", json=body,
                                headers={"x-request-id": request_id, **(headers or {})})

    def event(self, request_id: str):
        return next(e for e in self.events if e.request_id == request_id)

    def close(self, timeout: float = 15.0) -> None:
        self.service.close(timeout)


def metric(name: str, **labels) -> float:
    """A sample's current value in this process (0 before it is first counted)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def make_proxy(env: dict, config_path: str) -> Proxy:
    return Proxy(CompletionService(load_settings(env, config_path)))
