"""Config reload without downtime: `kill -HUP` and POST /config/reload re-read
SWITCHBOARD_CONFIG; streams in flight finish, later requests see the new models, and an
invalid file is refused with the running config kept."""
from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest
import urllib3

from tests.emulators.server import Fault, Reply, sse
from tests.keys_fixtures import ADMIN, MASTER, bearer, keyed  # noqa: F401

ALPHA = "model_list:\n  - {model_name: alpha, params: {model: openai/gpt-4o-mini}}\n"
BETA = ALPHA + "  - {model_name: beta, params: {model: openai/gpt-4o}}\n"
WORDS = [f"w{i} " for i in range(8)]


def _chat(proxy, model: str, **headers):
    return urllib3.request("POST", f"{proxy.base_url}/v1/chat/completions", headers=headers,
                           json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
                           timeout=10, retries=False)


def _serves(proxy, model: str, **headers) -> bool:
    """`model` answers 200. A kept-alive connection that an old worker closed as it stopped
    may be reset as the request goes out on it: not served yet (clients retry those)."""
    try:
        return _chat(proxy, model, **headers).status == 200
    except urllib3.exceptions.ProtocolError:
        return False


def _wait_for(predicate, limit: float = 15.0) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def _slow_stream_reply() -> Reply:
    """A stream of 8 pieces, 0.4 s apart: about 3 s in flight."""
    def frame(delta, finish=None):
        return sse({"id": "chatcmpl-slow", "object": "chat.completion.chunk", "created": 1,
                    "model": "gpt-4o-mini", "choices": [{"index": 0, "delta": delta,
                                                         "finish_reason": finish}]})
    events = [frame({"role": "assistant", "content": ""})]
    events += [frame({"content": word}) for word in WORDS]
    events += [frame({}, "stop"), b"data: [DONE]\n\n"]
    return Reply(200, events=events, event_delay=0.4, content_type="text/event-stream")


@pytest.fixture
def reloadable(start_gunicorn, provider_env, tmp_path):
    path = tmp_path / "switchboard.yaml"
    path.write_text(ALPHA)
    proxy = start_gunicorn({**provider_env, "SWITCHBOARD_CONFIG": str(path),
                            "SWITCHBOARD_MASTER_KEY": MASTER})
    return proxy, path


def test_hup_reload_keeps_streams_and_serves_new_models(reloadable, openai_emu):
    proxy, path = reloadable
    assert _chat(proxy, "beta", **ADMIN).status == 404
    openai_emu.fail_next(Fault(reply=_slow_stream_reply()))
    received: dict = {}

    def stream():
        response = urllib3.request(
            "POST", f"{proxy.base_url}/v1/chat/completions", headers=ADMIN, timeout=30,
            json={"model": "alpha", "stream": True,
                  "messages": [{"role": "user", "content": "hi"}]}, preload_content=True)
        received["status"], received["body"] = response.status, response.data.decode()

    reader = threading.Thread(target=stream)
    reader.start()
    time.sleep(0.8)  # the stream is under way
    path.write_text(BETA)
    os.kill(proxy.process.pid, signal.SIGHUP)
    assert _wait_for(lambda: _serves(proxy, "beta", **ADMIN))
    reader.join(30)
    assert received["status"] == 200
    frames = [line[6:] for line in received["body"].splitlines() if line.startswith("data: ")]
    assert frames[-1] == "[DONE]"
    text = "".join(json.loads(f)["choices"][0]["delta"].get("content") or ""
                   for f in frames[:-1] if json.loads(f).get("choices"))
    assert text == "".join(WORDS)  # every piece arrived: the old worker finished the stream
    assert _chat(proxy, "alpha", **ADMIN).status == 200


def test_invalid_file_is_refused_and_running_config_kept(reloadable):
    proxy, path = reloadable
    path.write_text("model_list: [{model_name: broken}]\n")
    os.kill(proxy.process.pid, signal.SIGHUP)
    assert _wait_for(lambda: "config reload refused" in proxy.log())
    assert "model_list[0] (model_name 'broken')" in proxy.log()
    time.sleep(1.0)  # the new workers are up
    assert _chat(proxy, "alpha", **ADMIN).status == 200


def test_reload_endpoint(reloadable):
    proxy, path = reloadable
    http = urllib3.PoolManager()
    key = json.loads(http.request("POST", f"{proxy.base_url}/key/generate", json={},
                                  headers=ADMIN).data)["key"]
    refused = http.request("POST", f"{proxy.base_url}/config/reload", headers=bearer(key))
    assert refused.status == 403
    path.write_text("model_list: [{model_name: broken}]\n")
    bad = http.request("POST", f"{proxy.base_url}/config/reload", headers=ADMIN)
    assert bad.status == 400
    error = json.loads(bad.data)["error"]
    assert error["code"] == "invalid_config" and "model_name 'broken'" in error["message"]
    path.write_text(BETA)
    accepted = http.request("POST", f"{proxy.base_url}/config/reload", headers=ADMIN)
    assert accepted.status == 202 and json.loads(accepted.data)["status"] == "reloading"
    assert _wait_for(lambda: _serves(proxy, "beta", **bearer(key)))


def test_reload_endpoint_outside_gunicorn(keyed):
    client = keyed()
    answer = client.post("/config/reload", headers=ADMIN)
    assert answer.status_code == 501
    assert answer.json["error"]["code"] == "reload_unsupported"
