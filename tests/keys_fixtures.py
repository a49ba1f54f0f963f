"""Helpers for the key, auth and hardening tests: a proxy with a master key and its own
database, and requests made with a key."""
from __future__ import annotations

import time

import pytest

from app.keys.limits import window_left

MASTER = "sb-master-Zq8vN3kT5wYp0123"
ADMIN = {"Authorization": f"Bearer {MASTER}"}
MODEL = "gpt-4o-mini"  # priced in the registry, served by the OpenAI emulator


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def ask(text: str = "hi", model: str = MODEL, **extra) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


def fresh_window(needed: float) -> None:
    """Wait for the next rate window when fewer than `needed` seconds are left in this one,
    so a test's requests all fall in one window."""
    left = window_left(time.time())
    if left < needed:
        time.sleep(left + 0.05)


@pytest.fixture
def keyed(make_client, tmp_path):
    """A Flask test client with the master key set and a fresh database; extra env/config.
    Each proxy made is stopped gracefully (its ledger flushed) at the end of the test."""
    made = []

    def make(env: dict | None = None, config: str | None = None, master: str | None = MASTER):
        base = {"SWITCHBOARD_DATA_DIR": str(tmp_path / "data")}
        if master:
            base["SWITCHBOARD_MASTER_KEY"] = master
        client = make_client({**base, **(env or {})}, config)
        made.append(client.application.extensions["switchboard"])
        return client
    yield make
    for service in made:  # a graceful stop while the databases are still up
        service.close(5.0)


def generate(client, **settings) -> dict:
    response = client.post("/key/generate", json=settings, headers=ADMIN)
    assert response.status_code == 200, response.json
    return response.json


def ledger_rows(client, key_id: str) -> list[dict]:
    response = client.get("/spend/logs", query_string={"key_id": key_id}, headers=ADMIN)
    assert response.status_code == 200, response.json
    return response.json["data"]
