#!/usr/bin/env python3
"""Load generators for the benchmark (wrk does plain throughput). Each mode is bounded in
request count and in time, and prints one line `RESULT {json}`.

  latency  one request at a time over one keep-alive connection: latency percentiles and the
           median of a response header (the proxy's own x-switchboard-overhead-ms)
  stream   C concurrent streams in a closed loop: time to first token (TTFT) and total time
  burst    N streams opened at once: how many finish with every chunk and `[DONE]`, and how
           many were open at the same moment (first chunk received, [DONE] not yet)
  count    N requests over C connections (bounded by --max-seconds), e.g. to age a process
"""
import argparse
import asyncio
import bisect
import http.client
import json
import statistics
import sys
import time
from urllib.parse import urlsplit

import aiohttp

PATH = "/v1/chat/completions"


def percentile(sorted_values, p):
    if not sorted_values:
        return None
    k = (len(sorted_values) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


# Upper bounds (ms) of the latency histogram's buckets, the same as wrk_chat.lua's; the last
# bucket takes everything above.
HIST_MS = (0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)


def histogram(sorted_values):
    """[[upper bound ms or None, % of the values], ...]: where the tail sits, not just how far
    it goes."""
    shares, below = [], 0
    for bound in HIST_MS + (None,):
        within = len(sorted_values) if bound is None else bisect.bisect_right(sorted_values, bound)
        shares.append([bound, round(100 * (within - below) / len(sorted_values), 3)])
        below = within
    return shares


def stats(values):
    s = sorted(values)
    if not s:
        return None
    return {"n": len(s), "mean": round(statistics.fmean(s), 3), "p50": round(percentile(s, 50), 3),
            "p90": round(percentile(s, 90), 3), "p99": round(percentile(s, 99), 3),
            "p99.9": round(percentile(s, 99.9), 3), "max": round(s[-1], 3), "hist": histogram(s)}


def body(args, stream=False):
    """A chat request; --body-kb pads the conversation to about that many KB of messages;
    --body-file sends that file's body as it is (to --path)."""
    if args.body_file:
        with open(args.body_file, "rb") as fh:
            return fh.read()
    messages = [{"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": "Say hello in one short sentence."}]
    if args.body_kb:
        line = "The quick brown fox jumps over the lazy dog near the river bank. "
        turns, size = [], 0
        while size < args.body_kb * 1024:
            text = line * 15  # ~1 KB per turn
            turns.append({"role": "user" if len(turns) % 2 == 0 else "assistant", "content": text})
            size += len(text) + 40
        messages = [messages[0]] + turns + [messages[1]]
    payload = {"model": args.model, "messages": messages, "max_tokens": 32, "temperature": 0}
    if stream:
        payload["stream"] = True
    return json.dumps(payload, separators=(",", ":")).encode()


def headers(args):
    return {"Content-Type": "application/json", "Authorization": "Bearer " + args.api_key}


def emit(result):
    print("RESULT " + json.dumps(result), flush=True)


# ------------------------------------------------------------------ latency (c=1)
def run_latency(args):
    url = urlsplit(args.url)
    data, hdrs = body(args), headers(args)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=args.timeout)
    latencies, header_values, errors = [], [], {}

    def one(record):
        nonlocal conn
        t0 = time.perf_counter()
        try:
            conn.request("POST", args.path, body=data, headers=hdrs)
            resp = conn.getresponse()
            resp.read()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            conn = http.client.HTTPConnection(url.hostname, url.port, timeout=args.timeout)
            if record:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
            return
        elapsed = (time.perf_counter() - t0) * 1000
        if not record:
            return
        if resp.status != 200:
            errors[f"status_{resp.status}"] = errors.get(f"status_{resp.status}", 0) + 1
            return
        latencies.append(elapsed)
        value = resp.getheader(args.header) if args.header else None
        if value is not None:
            try:
                header_values.append(float(value))
            except ValueError:
                pass

    warm_end = time.perf_counter() + args.warmup
    warmed = 0
    while time.perf_counter() < warm_end and warmed < args.max_requests:
        one(False)
        warmed += 1
    t_start = time.perf_counter()
    end = t_start + args.duration
    n = 0
    while time.perf_counter() < end and n < args.max_requests:
        one(True)
        n += 1
    elapsed = time.perf_counter() - t_start
    conn.close()
    emit({"mode": "latency", "requests": n, "warmup_requests": warmed, "ok": len(latencies),
          "errors": errors, "error_count": sum(errors.values()), "rps": round(len(latencies) / elapsed, 2),
          "latency_ms": stats(latencies), "header": args.header,
          "header_ms": stats(header_values), "body_bytes": len(data)})


# ------------------------------------------------------------------ streaming
async def read_stream(session, url, data, hdrs, expect_chunks):
    """One streamed completion -> (error kind or None, ttft_s, first_chunk_at, done_at, started_at)."""
    t0 = time.perf_counter()
    ttft_at = None
    chunks = 0
    done = False
    try:
        async with session.post(url, data=data, headers=hdrs) as resp:
            if resp.status != 200:
                await resp.read()
                return f"status_{resp.status}", None, None, None, None
            async for line in resp.content:
                if not line.startswith(b"data:"):
                    continue
                payload = line[5:].strip()
                if payload == b"[DONE]":
                    done = True
                    continue
                if done:
                    return "data_after_done", None, None, None, None
                try:
                    event = json.loads(payload)
                except ValueError:
                    return "bad_json", None, None, None, None
                if "error" in event:
                    return "error_event", None, None, None, None
                choices = event.get("choices") or []
                if choices and (choices[0].get("delta") or {}).get("content"):
                    chunks += 1
                    if ttft_at is None:
                        ttft_at = time.perf_counter()
    except asyncio.TimeoutError:
        return "timeout", None, None, None, None
    except Exception as exc:  # noqa: BLE001 - every failure is counted by its kind
        return "exc_" + type(exc).__name__, None, None, None, None
    end = time.perf_counter()
    if ttft_at is None:
        return "no_content", None, None, None, None
    if not done:
        return "no_done", None, None, None, None
    if expect_chunks and chunks != expect_chunks:
        return "dropped_chunks" if chunks < expect_chunks else "extra_chunks", None, None, None, None
    return None, ttft_at - t0, ttft_at, end, t0


def session_for(concurrency, timeout):
    conn = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency, keepalive_timeout=60)
    return aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=timeout))


async def run_stream(args):
    url, data, hdrs = args.url.rstrip("/") + PATH, body(args, stream=True), headers(args)
    ttfts, totals, errors = [], [], {}
    started = warmed = 0
    async with session_for(args.concurrency, args.timeout) as session:
        async def worker(until, record):
            nonlocal started, warmed
            while time.perf_counter() < until and (started if record else warmed) < args.max_requests:
                if record:
                    started += 1
                else:
                    warmed += 1
                err, ttft, _first, end, t0 = await read_stream(session, url, data, hdrs,
                                                               args.expect_chunks)
                if not record:
                    continue
                if err:
                    errors[err] = errors.get(err, 0) + 1
                else:
                    ttfts.append(ttft * 1000)
                    totals.append((end - t0) * 1000)
        if args.warmup > 0:
            until = time.perf_counter() + args.warmup
            await asyncio.gather(*(worker(until, False) for _ in range(args.concurrency)))
        t_start = time.perf_counter()
        until = t_start + args.duration
        await asyncio.gather(*(worker(until, True) for _ in range(args.concurrency)))
        elapsed = time.perf_counter() - t_start
    emit({"mode": "stream", "concurrency": args.concurrency, "requests": started,
          "warmup_requests": warmed,
          "ok": len(ttfts), "errors": errors, "error_count": sum(errors.values()),
          "rps": round(len(ttfts) / elapsed, 2), "ttft_ms": stats(ttfts), "total_ms": stats(totals)})


async def run_burst(args):
    url, data, hdrs = args.url.rstrip("/") + PATH, body(args, stream=True), headers(args)
    async with session_for(args.streams, args.timeout) as session:
        t_start = time.perf_counter()
        results = await asyncio.gather(*(read_stream(session, url, data, hdrs, args.expect_chunks)
                                         for _ in range(args.streams)))
        wall = time.perf_counter() - t_start
    errors, ttfts, totals, edges = {}, [], [], []
    for r in results:
        if r[0]:
            errors[r[0]] = errors.get(r[0], 0) + 1
            continue
        _, ttft, first_at, end, t0 = r
        ttfts.append(ttft * 1000)
        totals.append((end - t0) * 1000)
        edges += [(first_at, 1), (end, -1)]
    open_now = peak = 0
    for _, step in sorted(edges):
        open_now += step
        peak = max(peak, open_now)
    emit({"mode": "burst", "streams": args.streams, "ok": len(ttfts), "errors": errors,
          "error_count": sum(errors.values()), "wall_s": round(wall, 3),
          "peak_open_streams": peak, "ttft_ms": stats(ttfts), "total_ms": stats(totals)})


async def run_count(args):
    url, data, hdrs = args.url.rstrip("/") + PATH, body(args), headers(args)
    errors, done = {}, 0
    sent = 0
    t_start = time.perf_counter()
    until = t_start + args.max_seconds
    async with session_for(args.concurrency, args.timeout) as session:
        async def worker():
            nonlocal sent, done
            while sent < args.requests and time.perf_counter() < until:
                sent += 1
                try:
                    async with session.post(url, data=data, headers=hdrs) as resp:
                        await resp.read()
                        if resp.status == 200:
                            done += 1
                        else:
                            errors[f"status_{resp.status}"] = errors.get(f"status_{resp.status}", 0) + 1
                except Exception as exc:  # noqa: BLE001
                    errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
        await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    elapsed = time.perf_counter() - t_start
    emit({"mode": "count", "requests": sent, "ok": done, "errors": errors,
          "error_count": sum(errors.values()), "seconds": round(elapsed, 2),
          "rps": round(done / elapsed, 2), "stopped_by_time": sent < args.requests})


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["latency", "stream", "burst", "count"])
    ap.add_argument("--url", required=True, help="base URL, e.g. http://127.0.0.1:5000")
    ap.add_argument("--model", default="gpt-3.5-turbo")
    ap.add_argument("--api-key", default="sk-bench")
    ap.add_argument("--body-kb", type=float, default=0, help="pad the messages to about this size")
    ap.add_argument("--body-file", help="send this body instead of a chat request")
    ap.add_argument("--path", default=PATH, help="the endpoint (latency mode)")
    ap.add_argument("--duration", type=float, default=10)
    ap.add_argument("--warmup", type=float, default=1)
    ap.add_argument("--max-requests", type=int, default=1_000_000)
    ap.add_argument("--timeout", type=float, default=60)
    ap.add_argument("--header", default="x-switchboard-overhead-ms")
    ap.add_argument("--concurrency", "-c", type=int, default=1)
    ap.add_argument("--streams", type=int, default=100)
    ap.add_argument("--expect-chunks", type=int, default=20)
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--max-seconds", type=float, default=300)
    args = ap.parse_args()
    if args.mode == "latency":
        return run_latency(args)
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    runner = {"stream": run_stream, "burst": run_burst, "count": run_count}[args.mode]
    asyncio.run(runner(args))


if __name__ == "__main__":
    sys.exit(main())
