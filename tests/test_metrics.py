"""GET /metrics: what each kind of request adds, read back through the endpoint."""
from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.capture import make_proxy, start_services
from tests.emulators.server import Fault, Reply


def scrape(client) -> dict:
    reply = client.get("/metrics")
    assert reply.status_code == 200 and reply.mimetype == "text/plain"
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(reply.get_data(as_text=True))
            for s in family.samples}


class Delta:
    """Differences between two scrapes: what the requests in between added."""

    def __init__(self, before: dict, after: dict):
        self.before, self.after = before, after

    def __call__(self, name: str, **labels) -> float:
        key = (name, tuple(sorted(labels.items())))
        return self.after.get(key, 0.0) - self.before.get(key, 0.0)


def test_requests_latency_tokens_cost(provider_env, openai_emu, write_config):
    proxy = make_proxy(provider_env, write_config("num_retries: 0\n"))
    before = scrape(proxy.client)
    ok = proxy.chat("m-ok")
    proxy.chat("m-stream", stream=True, stream_options={"include_usage": True}).get_data()
    proxy.chat("m-unknown", model="made-up-model-7")
    delta = Delta(before, scrape(proxy.client))
    usage = ok.json["usage"]
    assert delta("switchboard_requests_total", model="gpt-4", provider="openai",
                 status="200") == 2
    assert delta("switchboard_requests_total", model="other", provider="none",
                 status="404") == 1  # a name a client invents gets no series of its own
    assert delta("switchboard_request_errors_total", model="other", provider="none",
                 type="invalid_request_error") == 1
    assert delta("switchboard_request_latency_seconds_count", model="gpt-4",
                 provider="openai") == 2
    assert delta("switchboard_time_to_first_token_seconds_count", model="gpt-4",
                 provider="openai") == 1
    assert delta("switchboard_overhead_seconds_count", provider="openai") == 1  # not streams
    assert delta("switchboard_tokens_total", model="gpt-4", kind="prompt") >= \
        usage["prompt_tokens"] * 2
    assert delta("switchboard_cost_usd_total", model="gpt-4") > float(
        ok.headers["x-switchboard-cost"])
    proxy.close()


def test_retries_fallbacks_and_cache(provider_env, openai_emu, write_config):
    config = ("num_retries: 1\nfallbacks: {gpt-4: [gpt-4o-mini]}\n"
              "cache: {enabled: true, mode: exact}\n")
    proxy = make_proxy(provider_env, write_config(config))
    before = scrape(proxy.client)
    openai_emu.fail_next(Fault(reply=Reply(503, {"error": {"message": "busy"}})))
    same = [{"role": "user", "content": "same question"}]
    assert proxy.chat("m-retried", messages=same).status_code == 200
    openai_emu.fail_next(Fault(reply=Reply(503, {"error": {"message": "busy"}}), times=2))
    reply = proxy.chat("m-fallback", messages=[{"role": "user", "content": "other"}])
    assert reply.headers["x-switchboard-model"] == "gpt-4o-mini"
    assert proxy.chat("m-hit", messages=same).headers["x-switchboard-cache"] == "hit"
    delta = Delta(before, scrape(proxy.client))
    assert delta("switchboard_retries_total", model="gpt-4") == 2
    assert delta("switchboard_fallbacks_total", model="gpt-4") == 1
    assert delta("switchboard_requests_total", model="gpt-4", provider="openai",
                 status="200") == 3  # by the name asked for; the provider that answered
    assert delta("switchboard_cache_lookups_total", result="miss") == 2
    assert delta("switchboard_cache_lookups_total", result="hit") == 1
    assert delta("switchboard_cache_saved_cost_usd_total", model="gpt-4") > 0
    proxy.close()


def test_callback_queue_metrics(provider_env, openai_emu, write_config):
    services = start_services()
    try:
        services.servers["posthog"].fail()
        config = "callbacks: {success: [helicone, posthog], max_retries: 0, timeout: 2}\n"
        proxy = make_proxy({**provider_env, **services.env()}, write_config(config))
        before = scrape(proxy.client)
        proxy.chat("q-1")
        proxy.chat("q-2")
        proxy.close()
        delta = Delta(before, scrape(proxy.client))
    finally:
        services.stop()
    assert delta("switchboard_callback_events_total", integration="helicone", outcome="sent") == 2
    assert delta("switchboard_callback_events_total", integration="posthog",
                 outcome="failed") == 2
    assert delta("switchboard_callback_errors_total", integration="posthog") >= 1
    assert ("switchboard_callback_queue_depth", (("integration", "helicone"),)) in before
