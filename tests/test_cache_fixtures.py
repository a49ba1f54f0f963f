"""What the cache tests share: a proxy with the cache on, on the disk backend and on a real
Redis, and the requests they send."""
from __future__ import annotations

import pytest

MODEL = "gpt-4o-mini"
QUESTION = "What is the capital of Australia?"
PARAPHRASE = "So, what is the capital of Australia?"   # a semantic hit for QUESTION


@pytest.fixture(params=["disk", "redis"])
def backend(request, tmp_path) -> tuple[dict, str]:
    """(environment, config lines) of a cache backend."""
    if request.param == "redis":
        return {"REDIS_URL": request.getfixturevalue("redis_url")}, "  backend: redis\n"
    return {}, f"  dir: {tmp_path / 'cache'}\n"


@pytest.fixture
def cached(make_client, write_config, backend):
    """A test client of a proxy with the cache on; `lines` are more `cache:` settings."""
    def make(lines: str = ""):
        env, backend_lines = backend
        config = write_config("cache:\n  enabled: true\n" + backend_lines + lines)
        return make_client(env=env, config=config)
    return make


def ask(client, text: str = QUESTION, headers: dict | None = None, system: str | None = None,
        **fields):
    messages = ([{"role": "system", "content": system}] if system else []) + \
        [{"role": "user", "content": text}]
    body = {"model": MODEL, "messages": messages, **fields}
    return client.post("/v1/chat/completions", json=body, headers=headers or {})


def status(response) -> str:
    assert response.status_code == 200, response.get_json()
    return response.headers["x-switchboard-cache"]
