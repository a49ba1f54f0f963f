"""A collector for the tests: receives OTLP/HTTP protobuf span exports on 127.0.0.1 and keeps
each span as a plain dict (decoded with opentelemetry-proto, the official message types)."""
from __future__ import annotations

import threading
import time
from http.server import ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest, ExportTraceServiceResponse)

from tests.emulators.server import PromptHandler


def _value(any_value):
    kind = any_value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in any_value.array_value.values]
    return getattr(any_value, kind) if kind else None


def _span(span, resource: dict) -> dict:
    return {"name": span.name, "trace_id": span.trace_id.hex(), "span_id": span.span_id.hex(),
            "parent_span_id": span.parent_span_id.hex() or None, "kind": span.kind,
            "start": span.start_time_unix_nano, "end": span.end_time_unix_nano,
            "attributes": {a.key: _value(a.value) for a in span.attributes},
            "status": span.status.code, "status_message": span.status.message,
            "events": [{"name": e.name, "time": e.time_unix_nano,
                        "attributes": {a.key: _value(a.value) for a in e.attributes}}
                       for e in span.events],
            "resource": resource}


class OtlpCollector:
    def __init__(self):
        self.spans: list[dict] = []
        self.raw: list[bytes] = []
        self.headers: list[dict] = []
        self._lock = threading.Lock()
        collector = self

        class Handler(PromptHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                with collector._lock:
                    collector.raw.append(body)
                    collector.headers.append({k.lower(): v for k, v in self.headers.items()})
                    for resource_spans in request.resource_spans:
                        resource = {a.key: _value(a.value)
                                    for a in resource_spans.resource.attributes}
                        for scope in resource_spans.scope_spans:
                            collector.spans.extend(_span(s, resource) for s in scope.spans)
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def wait_for(self, predicate, limit: float = 10.0) -> list[dict]:
        """The spans so far, once `predicate(spans)` holds (or the limit passes)."""
        deadline = time.monotonic() + limit
        while True:
            with self._lock:
                spans = list(self.spans)
            if predicate(spans) or time.monotonic() > deadline:
                return spans
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
