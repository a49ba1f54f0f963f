"""A deployment dies mid-run under real gunicorn: no request is lost."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import openai

from tests.emulators.openai import OpenAIEmulator

TOTAL = 160


def test_killing_a_deployment_loses_no_request(start_gunicorn, provider_env, write_config,
                                                azure_emu):
    first, second = OpenAIEmulator().start(), OpenAIEmulator().start()
    try:
        config = write_config(f"""
model_list:
  - model_name: team-model
    params: {{model: openai/gpt-4o, api_base: "{first.base_url}/v1", api_key: {first.api_key}}}
  - model_name: team-model
    params: {{model: openai/gpt-4o, api_base: "{second.base_url}/v1", api_key: {second.api_key}}}
  - model_name: backup
    params: {{model: azure/backup-deployment}}
fallbacks: {{team-model: [backup]}}
""")
        proxy = start_gunicorn({**provider_env, "SWITCHBOARD_CONFIG": config})
        client = openai.OpenAI(base_url=f"{proxy.base_url}/v1", api_key="x", max_retries=0,
                               timeout=30)
        done = 0
        lock = threading.Lock()
        killed = threading.Event()

        def one(i: int) -> str:
            nonlocal done
            reply = client.chat.completions.create(
                model="team-model", messages=[{"role": "user", "content": f"request {i}"}])
            with lock:
                done += 1
                if done == TOTAL // 3 and not killed.is_set():
                    killed.set()
                    first.stop()
            return reply.choices[0].message.content

        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(pool.map(one, range(TOTAL)))
        assert answers == [f"Hello! You said: request {i}" for i in range(TOTAL)]
        assert killed.is_set()
        assert first.calls and second.calls
    finally:
        first.stop()
        second.stop()
