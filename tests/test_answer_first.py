"""Under gunicorn a request's metrics and integration events are handed over after its
answer is written (app/service/events.answer_first); its ledger line and the key's spend
before it. Both workers still count every request."""
from __future__ import annotations

import http.client
import json

from app.service.events import answer_first
from tests.capture import make_proxy
from tests.test_metrics import scrape
from tests.test_metrics_gunicorn import SERVED, scrape as scrape_url


def test_metrics_wait_for_the_answer_the_ledger_does_not(provider_env, openai_emu,
                                                         write_config):
    proxy = make_proxy(provider_env, write_config("num_retries: 0\n"))
    before = scrape(proxy.client).get(SERVED, 0)
    with answer_first():   # as a gunicorn worker serves a request
        assert proxy.chat("first").status_code == 200
        assert proxy.event("first").status == 200   # subscribed before the answer
        assert scrape(proxy.client).get(SERVED, 0) == before
    assert scrape(proxy.client)[SERVED] == before + 1
    assert proxy.chat("second").status_code == 200   # outside: counted at once
    assert scrape(proxy.client)[SERVED] == before + 2
    proxy.close()


def test_each_worker_counts_after_answering(worker_class, start_gunicorn, provider_env,
                                            openai_emu, tmp_path):
    proxy = start_gunicorn({**provider_env, "TMPDIR": str(tmp_path), "WEB_CONCURRENCY": "1",
                            "SWITCHBOARD_WORKER_CLASS": worker_class})
    body = json.dumps({"model": "gpt-4", "messages": [{"role": "user", "content": "hi"}]})
    connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    try:
        for _ in range(3):   # one kept-alive connection: each after the one before answered
            connection.request("POST", "/v1/chat/completions", body,
                               {"Content-Type": "application/json"})
            reply = connection.getresponse()
            assert reply.status == 200, reply.read()
            reply.read()
        assert scrape_url(proxy.base_url)[SERVED] == 3
    finally:
        connection.close()
        proxy.stop()
