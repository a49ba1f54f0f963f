"""The OTLP collector and traced gunicorn proxies of the tracing tests, and how they read
the spans a collector received: a request's SERVER span (by its x-request-id) and a span's
children."""
from __future__ import annotations

import pytest
import urllib3

from tests.keys_fixtures import MASTER
from tests.otlp_capture import OtlpCollector

# A worker's first request also waits for the emulator to load its contract: allow for it.
http = urllib3.PoolManager(timeout=30, retries=False)
TRACED = {"OTEL_BSP_SCHEDULE_DELAY": "50", "OTEL_SERVICE_NAME": "sb-test",
          "SWITCHBOARD_MASTER_KEY": MASTER}


@pytest.fixture
def collector():
    collector = OtlpCollector()
    yield collector
    collector.stop()


@pytest.fixture
def traced(collector, start_gunicorn, provider_env, tmp_path):
    """A proxy of the test's own, exporting to the test's own collector. (The collector is
    set up first, so that it is stopped last: a proxy's graceful stop flushes its spans,
    and an absent collector would make it wait out the exporter's retries.)"""
    def start(config: str = "", **env):
        path = tmp_path / "switchboard.yaml"
        path.write_text(config or "{}\n")
        return start_gunicorn({**provider_env, "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint,
                               **TRACED, "SWITCHBOARD_CONFIG": str(path), **env})
    return start


def server_span(spans, request_id):
    """The SERVER span of the request with that x-request-id, if it was received."""
    return next((s for s in spans if s["attributes"].get("switchboard.request_id") == request_id
                 and s["kind"] == 2), None)


def has_request(request_id):
    return lambda spans: server_span(spans, request_id) is not None


def children_of(spans, parent):
    """The spans made under `parent`, in the order they started."""
    return sorted((s for s in spans if s["parent_span_id"] == parent["span_id"]),
                  key=lambda s: s["start"])
