#!/usr/bin/env python3
"""Mock OpenAI upstream on aiohttp: the fallback for machines without nginx + lua.

Answers like nginx.conf.tmpl: POST /v1/chat/completions returns a chat.completion, or with
"stream": true an SSE stream of --chunks chunk events then `data: [DONE]`; POST
/v1/responses a Responses-API `response`, POST /v1/messages an Anthropic message. Latency and the
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


TEXT = "Hello from the bench mock upstream."
RESPONSE = compact({
    "id": "resp_benchmock", "object": "response", "created_at": 1700000000,
    "status": "completed", "error": None, "incomplete_details": None, "instructions": None,
    "model": "gpt-3.5-turbo-0125", "output": [{
        "id": "msg_benchmock", "type": "message", "role": "assistant", "status": "completed",
        "content": [{"type": "output_text", "text": TEXT, "annotations": [], "logprobs": []}]}],
    "parallel_tool_calls": True, "store": False, "temperature": 0, "top_p": 1,
    "tool_choice": "auto", "tools": [], "metadata": {},
    "usage": {"input_tokens": 9, "input_tokens_details": {"cached_tokens": 0},
              "output_tokens": 7, "output_tokens_details": {"reasoning_tokens": 0},
              "total_tokens": 16}})
MESSAGE = compact({
    "id": "msg_benchmock", "type": "message", "role": "assistant",
    "model": "claude-3-5-haiku-20241022", "content": [{"type": "text", "text": TEXT}],
    "stop_reason": "end_turn", "stop_sequence": None,
    "usage": {"input_tokens": 9, "output_tokens": 7}})


def build_app(latency_s, interval_s, chunks):
    reply, events, usage = canned(chunks)

    def whole(answer):
        """A handler that answers every request with `answer`, after the latency."""
        async def serve(request):
            await request.read()
            if latency_s > 0:
                await asyncio.sleep(latency_s)
            return web.Response(body=answer, content_type="application/json")
        return serve

    embeddings = whole(embeddings_reply())

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
    app.router.add_post("/v1/responses", whole(RESPONSE))
    app.router.add_post("/v1/messages", whole(MESSAGE))
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
