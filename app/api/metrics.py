"""GET /metrics: Prometheus text format, summed over all gunicorn workers.

Under gunicorn each worker writes its values to files in PROMETHEUS_MULTIPROC_DIR (set by
gunicorn.conf.py) and this endpoint, in whichever worker answers, adds up every worker's
files. Elsewhere (tests, a single process) it reports this process's own values.
"""
from __future__ import annotations

import os

from flask import Blueprint, Response
from prometheus_client import (CONTENT_TYPE_PLAIN_0_0_4, REGISTRY, CollectorRegistry,
                               generate_latest)
from prometheus_client.multiprocess import MultiProcessCollector

import app.callbacks.metrics  # noqa: F401  (defines the metrics before the first scrape)

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics():
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_PLAIN_0_0_4)
