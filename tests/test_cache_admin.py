"""Cache administration and operation: off unless configured, GET /cache/stats, DELETE
/cache/<key>, POST /cache/flush, the size bound and its eviction order, a broken backend,
and the config section's validation."""
from __future__ import annotations

import logging
import time

import pytest

from app.cache import build_cache
from app.config import ConfigError, load_settings
from app.service.completion import CompletionService
from tests.servers import free_port
from tests.test_cache_fixtures import ask, backend, cached, status  # noqa: F401  (fixtures)


def test_off_unless_configured(client, openai_emu):
    assert status(ask(client)) == "off" and status(ask(client)) == "off"
    assert len(openai_emu.calls) == 2
    assert client.get("/cache/stats").get_json() == {"enabled": False}
    refused = client.post("/cache/flush")
    assert refused.status_code == 409
    assert refused.get_json()["error"]["code"] == "cache_disabled"


def test_stats_delete_and_flush(cached, openai_emu):
    client = cached()
    ask(client), ask(client, "Another question")
    key = ask(client).headers["x-switchboard-cache-key"]
    stats = client.get("/cache/stats").get_json()
    assert stats["enabled"] is True and stats["available"] is True
    counts = [stats[name] for name in ("entries", "hits", "misses", "semantic_hits")]
    assert counts == [2, 1, 2, 0]
    assert stats["hit_rate"] == pytest.approx(1 / 3, abs=1e-4) and stats["bytes"] > 0
    assert stats["faults"] == 0
    assert client.delete(f"/cache/{key}").get_json() == {"deleted": True, "key": key}
    for unknown in (key, "0" * 32, "not-a-key", "a/b"):
        gone = client.delete(f"/cache/{unknown}")
        assert gone.status_code == 404
        assert gone.get_json()["error"]["code"] == "cache_key_not_found"
    assert status(ask(client)) == "miss"
    assert client.post("/cache/flush").get_json() == {"flushed": True}
    assert client.get("/cache/stats").get_json()["entries"] == 0
    assert status(ask(client, "Another question")) == "miss"


def test_least_recently_used_entries_go_first(cached, openai_emu):
    client = cached("  max_size_mb: 0.25\n")
    padding = "word " * 8000                            # ~40 KB answers (the emulator echoes)
    for n in (1, 2, 3):
        assert status(ask(client, f"{n} {padding}")) == "miss"
    time.sleep(1.1)                     # the disk backend counts reads within 1 s as one use
    assert status(ask(client, f"1 {padding}")) == "hit"            # 1 is now the most recent
    for n in (4, 5, 6, 7):
        assert status(ask(client, f"{n} {padding}")) == "miss"
    kept = {n: status(ask(client, f"{n} {padding}", cache={"no-store": True}))
            for n in range(1, 8)}
    assert kept[1] == "hit" and kept[7] == "hit" and kept[2] == "miss"
    stats = client.get("/cache/stats").get_json()
    assert stats["bytes"] <= 0.25 * 1024 * 1024 and stats["entries"] < 7


def test_a_broken_backend_serves_uncached_and_counts_faults(
        make_client, write_config, tmp_path, openai_emu, caplog):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    broken = {
        "disk": ({}, f"cache:\n  enabled: true\n  mode: semantic\n  dir: {blocker}\n"),
        "redis": ({"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"},   # nothing listens
                  "cache:\n  enabled: true\n  backend: redis\n"),
    }
    for name, (env, config) in broken.items():
        client = make_client(env=env, config=write_config(config))
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="switchboard.cache"):
            started = time.monotonic()
            answers = [ask(client) for _ in range(5)]
            elapsed = time.monotonic() - started
        assert [status(a) for a in answers] == ["miss"] * 5, name
        assert all(a.get_json()["choices"][0]["message"]["content"] for a in answers)
        assert elapsed < 3, name                 # one connect timeout, then the breaker
        reports = [r for r in caplog.records if r.name == "switchboard.cache"]
        assert len(reports) == 1 and "serving uncached" in reports[0].getMessage(), name
        stats = client.get("/cache/stats").get_json()
        assert stats["faults"] >= 1 and stats["available"] is False, name
        assert client.post("/cache/flush").status_code == 503
    assert len(openai_emu.calls) == 10


def test_cache_section_is_validated_at_start(write_config, provider_env):
    for text, where in (("cache:\n  enabled: true\n  mode: fuzzy\n", "cache.mode"),
                        ("cache:\n  enabled: true\n  similarity_threshold: 2\n",
                         "cache.similarity_threshold"),
                        ("cache:\n  enabled: true\n  ttl: -1\n", "cache.ttl"),
                        ("cache:\n  enabled: true\n  colour: blue\n", "cache.colour"),
                        ("cache:\n  enabled: true\n  backend: redis\n", "REDIS_URL")):
        with pytest.raises(ConfigError, match=where.replace(".", r"\.")):
            CompletionService(load_settings(provider_env, write_config(text)))
    url = "redis://:hunter2-secret@[bad"
    with pytest.raises(ConfigError) as info:
        build_cache(load_settings({**provider_env, "REDIS_URL": url}, write_config(
            "cache:\n  enabled: true\n  backend: redis\n")))
    assert "hunter2" not in str(info.value)
