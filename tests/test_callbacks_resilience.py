"""Logging stays off the request path: a hung or failing service adds no latency, fails no
request, loses no other integration's events; a full queue drops its oldest events; a
graceful close is bounded; failures are counted and logged once in a while."""
from __future__ import annotations

import logging
import statistics
import time

import pytest

from tests.capture import CONFIG, make_proxy, metric, start_services
from tests.emulators.server import Fault, Reply

REQUESTS = 12


@pytest.fixture
def services():
    started = start_services()
    yield started
    started.stop()


def events_total(integration: str, outcome: str) -> float:
    return metric("switchboard_callback_events_total", integration=integration, outcome=outcome)


def timed(proxy, request_id: str) -> float:
    started = time.perf_counter()
    reply = proxy.chat(request_id)
    assert reply.status_code == 200
    return time.perf_counter() - started


def test_hung_and_failing_services_cost_requests_nothing(services, provider_env, openai_emu,
                                                         write_config, caplog):
    caplog.set_level(logging.WARNING, logger="switchboard.callbacks")
    services.servers["posthog"].hang()
    services.servers["supabase"].fail()
    plain = make_proxy(provider_env, write_config("num_retries: 0\n"))
    logged = make_proxy({**provider_env, **services.env()}, write_config(CONFIG))
    failed_before = events_total("supabase", "failed")
    off, on = [], []
    for n in range(REQUESTS):  # interleaved, so both see the same machine load
        off.append(timed(plain, f"plain-{n}"))
        on.append(timed(logged, f"logged-{n}"))
    openai_emu.fail_next(Fault(reply=Reply(500, {"error": {"message": "boom"}})))
    assert logged.chat("logged-failure").status_code == 502
    # Generous: the point is that no request waited for a 2 s service timeout.
    assert statistics.median(on) < statistics.median(off) * 3 + 0.05
    assert max(on) < 1.0

    ids = {f"logged-{n}" for n in range(REQUESTS)}
    services.servers["mixpanel"].wait_for(  # the last event: the earlier ones went before it
        1, where=lambda r: "logged-failure" in r.form()["data"])
    mixpanel = services.servers["mixpanel"].requests
    helicone = services.servers["helicone"].wait_for(REQUESTS)
    sentry = services.servers["sentry"].wait_for(1)
    assert all(f'"{i}"' in "".join(r.form()["data"] for r in mixpanel) for i in ids)
    assert {r.json()["providerRequest"]["meta"]["Helicone-Property-Request-Id"]
            for r in helicone} == ids
    assert b"logged-failure" in sentry[0].body

    started = time.monotonic()
    logged.close(timeout=3)
    assert time.monotonic() - started < 6  # bounded, though PostHog never answers
    plain.close()
    supabase_posts = services.servers["supabase"].requests
    assert len(supabase_posts) >= 2  # tried, and retried with backoff
    assert events_total("supabase", "failed") - failed_before == REQUESTS + 1
    reports = [r for r in caplog.records if r.getMessage().startswith("supabase:")]
    assert 1 <= len(reports) <= 2, "failures are logged once a minute, not per request"
    assert "HTTP 500" in reports[0].getMessage()


def test_a_full_queue_drops_its_oldest_events(services, provider_env, openai_emu,
                                              write_config):
    helicone = services.servers["helicone"]
    helicone.hang()
    config = ("callbacks: {success: [helicone], queue_size: 3, max_retries: 2, "
              "timeout: 10}\n")
    proxy = make_proxy({**provider_env, **services.env()}, write_config(config))
    dropped_before = events_total("helicone", "dropped")
    assert proxy.chat("queued-first").status_code == 200
    helicone.wait_for(1)  # its delivery is held by the hung service
    ids = [f"queued-{n}" for n in range(10)]
    for request_id in ids:
        assert proxy.chat(request_id).status_code == 200
    assert metric("switchboard_callback_queue_depth", integration="helicone") == 3
    assert events_total("helicone", "dropped") - dropped_before == len(ids) - 3
    helicone.release()  # the held call is cut unanswered: retried, then the queue drains
    delivered = helicone.wait_for(5)
    proxy.close()
    arrived = [r.json()["providerRequest"]["meta"]["Helicone-Property-Request-Id"]
               for r in delivered]
    assert arrived[:2] == ["queued-first", "queued-first"]  # the cut call, then its retry
    assert sorted(arrived[2:]) == ids[-3:]  # the newest three; the oldest seven made room


def test_close_gives_up_on_a_hung_service_in_time(services, provider_env, openai_emu,
                                                  write_config):
    services.servers["supabase"].hang()
    config = "callbacks: {success: [supabase, helicone], timeout: 30}\n"
    proxy = make_proxy({**provider_env, **services.env()}, write_config(config))
    dropped_before = events_total("supabase", "dropped")
    for n in range(3):
        proxy.chat(f"closing-{n}")
    services.servers["supabase"].wait_for(1)
    started = time.monotonic()
    proxy.close(timeout=1.0)
    assert time.monotonic() - started < 3
    # Helicone, healthy, delivered everything within the same second.
    assert len(services.servers["helicone"].wait_for(3, timeout=0)) == 3
    in_flight = len(services.servers["supabase"].requests[0].json())
    assert events_total("supabase", "dropped") - dropped_before == 3 - in_flight
