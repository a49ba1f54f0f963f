"""One cache for every worker process and every instance, under real gunicorn: an entry
stored by one worker is found by the others, exact and semantic; with Redis, by another
instance too. Streams through the official SDK: stored whole, replayed as SSE."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import openai
import pytest
import urllib3

from tests.test_cache_fixtures import MODEL, PARAPHRASE, QUESTION as STORED

pytestmark = pytest.mark.timeout(120)

CLOSE = {"Connection": "close"}       # a new connection per request: any worker may take it
HTTP = urllib3.PoolManager(maxsize=16)


@pytest.fixture
def semantic_proxy(start_gunicorn, provider_env, write_config, tmp_path):
    """A gunicorn proxy (two workers) with the semantic cache on `lines`' backend."""
    def start(env: dict | None = None, lines: str = ""):
        config = write_config(f"cache:\n  enabled: true\n  mode: semantic\n"
                              f"  dir: {tmp_path / 'cache'}\n{lines}")
        return start_gunicorn({**provider_env, **(env or {}), "SWITCHBOARD_CONFIG": config,
                               "SWITCHBOARD_DATA_DIR": str(tmp_path / "data")})
    return start


def ask(proxy, text: str) -> urllib3.BaseHTTPResponse:
    return HTTP.request("POST", f"{proxy.base_url}/v1/chat/completions", headers=CLOSE,
                        json={"model": MODEL, "messages": [{"role": "user", "content": text}]},
                        timeout=30)


def each_worker(proxy, path: str = "/cache/stats", tries: int = 60) -> dict[int, dict]:
    """`path`'s answer from every worker process, by pid."""
    seen: dict[int, dict] = {}
    for _ in range(tries):
        answer = HTTP.request("GET", f"{proxy.base_url}{path}", headers=CLOSE).json()
        seen[answer["process"]["pid"]] = answer
        if len(seen) == 2:
            break
    assert len(seen) == 2, "only one worker answered"
    return seen


def test_workers_share_exact_and_semantic_entries(semantic_proxy, openai_emu):
    proxy = semantic_proxy()
    assert ask(proxy, STORED).headers["x-switchboard-cache"] == "miss"
    with ThreadPoolExecutor(max_workers=12) as pool:
        for _ in range(8):                      # until both workers have answered lookups
            replies = list(pool.map(lambda text: ask(proxy, text), [STORED, PARAPHRASE] * 12))
            seen = [r.headers["x-switchboard-cache"] for r in replies]
            assert seen == ["hit", "semantic-hit"] * 12, (seen, proxy.log()[-2000:])
            workers = each_worker(proxy)
            if all(w["process"]["lookups"] >= 2 for w in workers.values()):
                break
    assert all(r.json()["choices"][0]["message"]["content"] == f"Hello! You said: {STORED}"
               for r in replies)
    for worker in workers.values():             # each found the other's entry, and indexed it
        assert worker["process"]["lookups"] >= 2 and worker["process"]["indexed"] == 1
    assert len(openai_emu.calls) == 1
    lookups = sum(w["process"]["lookups"] for w in workers.values())
    stats = next(iter(each_worker(proxy).values()))   # each worker has added its counts now
    assert stats["entries"] == 1 and stats["misses"] == 1
    assert stats["hits"] + stats["semantic_hits"] == lookups - 1


def test_streams_through_the_sdk_are_stored_and_replayed(semantic_proxy, openai_emu):
    proxy = semantic_proxy()
    client = openai.OpenAI(base_url=f"{proxy.base_url}/v1", api_key="unused", max_retries=0)
    request = dict(model=MODEL, messages=[{"role": "user", "content": "stream me a reply"}],
                   stream=True, stream_options={"include_usage": True})
    first = client.chat.completions.with_raw_response.create(**request)
    assert first.headers["x-switchboard-cache"] == "miss"
    original = list(first.parse())
    for _ in range(4):                           # whichever worker takes the connection
        again = client.chat.completions.with_raw_response.create(**request)
        assert again.headers["x-switchboard-cache"] == "hit"
        assert again.headers["content-type"].startswith("text/event-stream")
        chunks = list(again.parse())
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == "Hello! You said: stream me a reply"
        assert chunks[-1].usage.total_tokens == original[-1].usage.total_tokens > 0
    plain = client.chat.completions.create(model=MODEL, messages=request["messages"])
    assert plain.choices[0].message.content == "Hello! You said: stream me a reply"
    assert len(openai_emu.calls) == 1


def test_instances_share_one_redis(semantic_proxy, openai_emu, redis_url):
    first = semantic_proxy({"REDIS_URL": redis_url}, "  backend: redis\n")
    second = semantic_proxy({"REDIS_URL": redis_url}, "  backend: redis\n")
    assert ask(first, STORED).headers["x-switchboard-cache"] == "miss"
    for _ in range(3):
        assert ask(second, STORED).headers["x-switchboard-cache"] == "hit"
        assert ask(second, PARAPHRASE).headers["x-switchboard-cache"] == "semantic-hit"
    assert HTTP.request("POST", f"{second.base_url}/cache/flush").status == 200
    assert ask(first, PARAPHRASE).headers["x-switchboard-cache"] == "miss"
    assert ask(second, STORED).headers["x-switchboard-cache"] == "semantic-hit"
    stats = each_worker(first)
    assert all(w["entries"] == 1 and w["backend"] == "redis" for w in stats.values())
    assert len(openai_emu.calls) == 2
