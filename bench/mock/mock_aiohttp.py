#!/usr/bin/env python3
"""Mock OpenAI upstream on aiohttp: the fallback for machines without nginx + lua.

Answers like nginx.conf.tmpl: POST /v1/chat/completions returns a chat.completion, or with
"stream": true an SSE stream of --chunks chunk events then `data: [DONE]`. Latency and the
gap between chunks are asyncio sleeps, so a slow upstream costs no CPU.
"""
import argparse
import asyncio
import json
import re

from aiohttp import web

HEAD = {"id": "chatcmpl-benchmock", "created": 1700000000, "model": "gpt-3.5-turbo-0125"}
WANTS_STREAM = re.compile(rb'"stream"\s*:\s*true')
WANTS_USAGE = re.compile(rb'"include_usage"\s*:\s*true')


def compact(obj):
    return json.dumps(obj, separators=(",", ":")).encode()


def canned(chunks):
    reply = compact({**HEAD, "object": "chat.completion", "choices": [{
        "index": 0, "message": {"role": "assistant", "content": "Hello from the bench mock upstream."},
        "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 7, "total_tokens": 16}})
    events = []
    for i in range(1, chunks + 1):
        delta = {"role": "assistant"} if i == 1 else {}
        delta["content"] = f"w{i} "
        events.append(b"data: " + compact({**HEAD, "object": "chat.completion.chunk", "choices": [{
            "index": 0, "delta": delta, "logprobs": None,
            "finish_reason": "stop" if i == chunks else None}]}) + b"\n\n")
    usage = b"data: " + compact({**HEAD, "object": "chat.completion.chunk", "choices": [],
                                 "usage": {"prompt_tokens": 9, "completion_tokens": chunks,
                                           "total_tokens": 9 + chunks}}) + b"\n\n"
    return reply, events, usage


def embeddings_reply():
    """16 vectors of 1536 floats, as the nginx mock sends them."""
    vector = [round(((j * 7919) % 2000 - 1000) / 40000, 6) for j in range(1, 1537)]
    return compact({"object": "list", "model": "text-embedding-3-small",
                    "data": [{"object": "embedding", "index": i, "embedding": vector}
                             for i in range(16)],
                    "usage": {"prompt_tokens": 64, "total_tokens": 64}})


def build_app(latency_s, interval_s, chunks):
    reply, events, usage = canned(chunks)
    vectors = embeddings_reply()

    async def embeddings(request):
        await request.read()
        if latency_s > 0:
            await asyncio.sleep(latency_s)
        return web.Response(body=vectors, content_type="application/json")

    async def chat(request):
        body = await request.read()
        if not WANTS_STREAM.search(body):
            if latency_s > 0:
                await asyncio.sleep(latency_s)
            return web.Response(body=reply, content_type="application/json")
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                               "Cache-Control": "no-cache"})
        if latency_s > 0:
            await asyncio.sleep(latency_s)
        await response.prepare(request)
        if interval_s <= 0:
            await response.write(b"".join(events))
        else:
            for i, event in enumerate(events):
                if i:
                    await asyncio.sleep(interval_s)
                await response.write(event)
        if WANTS_USAGE.search(body):
            await response.write(usage)
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def health(_request):
        return web.Response(text="ok\n")

    async def traces(request):  # an OTLP/HTTP sink for the tracing scenario
        await request.read()
        return web.Response(status=200)

    app = web.Application(client_max_size=16 * 1024 * 1024)
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/chat/completions", chat)
    app.router.add_post("/v1/embeddings", embeddings)
    app.router.add_post("/embeddings", embeddings)
    app.router.add_get("/health", health)
    app.router.add_post("/v1/traces", traces)
    return app


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--latency-ms", type=float, default=0)
    ap.add_argument("--interval-ms", type=float, default=0)
    ap.add_argument("--chunks", type=int, default=20)
    a = ap.parse_args()
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    web.run_app(build_app(a.latency_ms / 1000, a.interval_ms / 1000, a.chunks),
                host="127.0.0.1", port=a.port, access_log=None, print=None, backlog=4096)


if __name__ == "__main__":
    main()
