#!/usr/bin/env python3
"""What a traced request's spans alone cost, outside the proxy: the CPU to
make, fill and end a plain chat request's two spans (the SERVER span with its 19 attributes,
the attempt's CLIENT span with its 14) and to encode them for OTLP, with the official encoder
and with app/tracing/wire.py. The floor under what tracing can add to a request; the bench's
`tracing` scenario measures what it does add, through gunicorn.

    .venv/bin/python bench/tracing_floor.py [--requests 5000] [--gevent] [--official]

--gevent: threading patched as gunicorn.conf.py patches it. The spans are the proxy's
(app/tracing/lean_sdk.py's LeanSpans, started by the SDK's provider); --official: the SDK's
own spans, for comparison.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

SERVER_START = {"http.request.method": "POST", "url.path": "/v1/chat/completions"}
SERVER_OUTCOME = {
    "switchboard.cache": "off", "switchboard.cost": 1.5e-05, "switchboard.retries": 0,
    "switchboard.fallbacks": 0, "gen_ai.operation.name": "chat", "switchboard.api": "chat",
    "gen_ai.request.model": "gpt-3.5-turbo", "gen_ai.provider.name": "openai",
    "gen_ai.response.model": "gpt-3.5-turbo-0125", "gen_ai.response.id": "chatcmpl-1",
    "switchboard.model": "gpt-3.5-turbo", "switchboard.deployment": "gpt-3.5-turbo",
    "gen_ai.usage.input_tokens": 9, "gen_ai.usage.output_tokens": 7,
    "gen_ai.response.finish_reasons": ["stop"]}
SERVER_END = {"switchboard.request_id": "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
              "http.response.status_code": 200}
ATTEMPT_START = {
    "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-3.5-turbo",
    "gen_ai.request.max_tokens": 32, "gen_ai.request.temperature": 0, "switchboard.attempt": 1,
    "switchboard.deployment": "gpt-3.5-turbo", "switchboard.model": "gpt-3.5-turbo",
    "gen_ai.provider.name": "openai", "server.address": "127.0.0.1"}
ATTEMPT_ANSWER = {
    "gen_ai.response.model": "gpt-3.5-turbo-0125", "gen_ai.response.id": "chatcmpl-1",
    "gen_ai.response.finish_reasons": ["stop"], "gen_ai.usage.input_tokens": 9,
    "gen_ai.usage.output_tokens": 7}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=5000)
    ap.add_argument("--gevent", action="store_true")
    ap.add_argument("--official", action="store_true",
                    help="the SDK's own spans instead of app/tracing/lean_sdk.py's")
    args = ap.parse_args()
    if args.gevent:
        from gevent import monkey
        monkey.patch_all()
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from opentelemetry import context, trace
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from app.tracing import lean_sdk, wire
    lean_sdk.install()  # as the proxy runs

    kept = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "floor"}))
    # The proxy's processor: spans queued as they end, exported in the background (here once
    # the timing is done, by the flush).
    provider.add_span_processor(BatchSpanProcessor(kept, max_queue_size=4 * args.requests + 1000,
                                                   max_export_batch_size=4 * args.requests + 1000,
                                                   schedule_delay_millis=3_600_000))
    tracer = provider.get_tracer("switchboard")
    if not args.official:
        tracer = lean_sdk.LeanTracer(tracer)

    def one_request() -> None:
        server = tracer.start_span("POST /v1/chat/completions", kind=trace.SpanKind.SERVER,
                                   attributes=SERVER_START, context=context.Context())
        token = context.attach(trace.set_span_in_context(server))
        attempt = tracer.start_span("chat gpt-3.5-turbo", kind=trace.SpanKind.CLIENT,
                                    attributes=ATTEMPT_START)
        attempt.set_attributes(ATTEMPT_ANSWER)
        attempt.end()
        server.set_attributes(SERVER_OUTCOME)
        context.detach(token)
        server.set_attributes(SERVER_END)
        server.end()

    for _ in range(200):
        one_request()
    provider.force_flush()
    kept.clear()
    n = args.requests
    started = time.process_time()
    for _ in range(n):
        one_request()
    make = (time.process_time() - started) / n
    provider.force_flush()
    spans = kept.get_finished_spans()
    batches = [spans[i:i + 512] for i in range(0, len(spans), 512)]
    timings = {}
    for name, encode in (("official", lambda b: encode_spans(b).SerializePartialToString()),
                         ("wire.py", wire.encode_spans)):
        started = time.process_time()
        for batch in batches:
            encode(batch)
        timings[name] = (time.process_time() - started) / n
    print(f"{n} requests, 2 spans each{' (gevent)' if args.gevent else ''}"
          f"{' (official SDK)' if args.official else ''}: CPU per request")
    print(f"  make, fill, end the spans: {make * 1e6:6.1f} us")
    for name, seconds in timings.items():
        print(f"  encode ({name}):{' ' * (12 - len(name))}{seconds * 1e6:6.1f} us"
              f"  -> floor {1e6 * (make + seconds):6.1f} us")


if __name__ == "__main__":
    main()
