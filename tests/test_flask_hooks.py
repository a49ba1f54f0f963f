"""Flask's per-call check of each hook and view (`ensure_sync`: is it a coroutine function?)
made once per function, not at every request: the answer cannot change."""
from __future__ import annotations

from flask import app as flask_app

CHAT = {"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": "hi"}]}


def test_hooks_and_views_are_checked_once(client, monkeypatch):
    assert client.post("/v1/chat/completions", json=CHAT).status_code == 200
    checked = []
    real = flask_app.iscoroutinefunction
    monkeypatch.setattr(flask_app, "iscoroutinefunction",
                        lambda func: checked.append(func) or real(func))
    for _ in range(3):
        assert client.post("/v1/chat/completions", json=CHAT).status_code == 200
    assert checked == []
