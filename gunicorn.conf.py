"""gunicorn settings, bound to HOST:PORT (default 0.0.0.0:5000).

Worker classes (SWITCHBOARD_WORKER_CLASS):
- gevent (default): one greenlet per request, up to SWITCHBOARD_WORKER_CONNECTIONS (default
  2000) per worker. LLM calls are slow, so a proxy mostly waits on many of them at once;
  greenlets wait for almost nothing, where 500 threads per process fight over the GIL. Same
  machine, same code (bench/, scenario 3: upstream 1 s, 1,000 requests in flight): gevent
  93 % of the ideal 1,000 req/s with +4 ms p50 added; gthread 75 % with +272 ms.
- gthread: WEB_CONCURRENCY processes x SWITCHBOARD_THREADS threads (default 512); each open
  stream or in-flight request holds one thread. For code added to the proxy that blocks
  in C without releasing the loop.
Both are gunicorn's, with deadlines on slow clients and room near the connection limit
(app/gunicorn_clients.py).

Metrics: GET /metrics adds up every worker's values (prometheus_client's multiprocess mode):
each worker writes its values to files in PROMETHEUS_MULTIPROC_DIR. prometheus_client picks
that mode when it is first imported, which is when gunicorn loads the app, after this file,
so the folder is settled here: PROMETHEUS_MULTIPROC_DIR if set (emptied at start, so a new run
starts from zero), else a fresh temporary folder, removed when gunicorn exits.
"""
import gc
import glob
import os
import shutil
import tempfile


def _metrics_dir() -> str:
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="switchboard-metrics-")
        os.environ["SWITCHBOARD_METRICS_TEMPORARY"] = "1"
    path = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    os.makedirs(path, exist_ok=True)
    # Once per master process: gunicorn re-reads this file on reload (HUP), while workers run.
    if os.environ.get("SWITCHBOARD_METRICS_OWNER") != str(os.getpid()):
        os.environ["SWITCHBOARD_METRICS_OWNER"] = str(os.getpid())
        for stale in glob.glob(os.path.join(path, "*.db")):
            os.remove(stale)
    return path


metrics_dir = _metrics_dir()

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '5000')}"
wsgi_app = "wsgi:app"
worker_class = os.environ.get("SWITCHBOARD_WORKER_CLASS", "gevent")
if worker_class == "gevent":
    # Patched here, in the master, before it loads the app (preload below): every lock, socket
    # and thread the app makes is then gevent's, in the master and in the workers it forks.
    from gevent import monkey
    monkey.patch_all()
    worker_class = "app.gunicorn_worker.GeventWorker"  # gunicorn's, with a prompt graceful stop
    # gevent's monitor thread (GEVENT_MONITOR_THREAD_ENABLE: bench/hubwatch.py, tests) watches
    # the workers only (post_worker_init). In the master, its report of the master's own long
    # step before a fork (pre_fork's collection) was printed while the master forked: the
    # child inherited stderr's lock held by a thread it does not have, and hung at its first
    # log line.
    import gevent
    watch_worker_hubs = gevent.config.monitor_thread
    gevent.config.monitor_thread = False
elif worker_class == "gthread":
    worker_class = "app.gunicorn_thread_worker.ThreadWorker"  # gunicorn's, with client deadlines

from app.gunicorn_errors import install as answer_parse_errors_in_json  # noqa: E402
from app.gunicorn_environ import install as find_error_streams_when_written  # noqa: E402
from app.gunicorn_response import install as answer_in_one_write  # noqa: E402
from app.metrics_pid import install as count_without_getpid  # noqa: E402

answer_parse_errors_in_json()
answer_in_one_write()
find_error_streams_when_written()
count_without_getpid()  # before the app is loaded: it makes metric values as it starts
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("SWITCHBOARD_THREADS", "512"))
worker_connections = int(os.environ.get("SWITCHBOARD_WORKER_CONNECTIONS", "2000"))
timeout = int(os.environ.get("SWITCHBOARD_WORKER_TIMEOUT", "660"))  # above the 600 s request default
graceful_timeout = 30
keepalive = 75
# Load the app once in the master: workers share its memory, and a bad config stops the start.
preload_app = True
# Each worker listens on its own socket (SO_REUSEPORT) and the kernel spreads new connections
# evenly over them. On one shared socket the worker that happens to wake first takes the
# connection, so under load one worker served up to twice its share and its queue made the
# p99 (bench/: "share of requests per worker").
reuse_port = True
# gunicorn's own parser, even where its C parser (gunicorn[fast]) is installed: app/gunicorn_errors.py
# turns the Python parser's errors into JSON bodies without the request's bytes; the C parser's
# messages quote the request line, keys included.
http_parser = "python"
logger_class = "app.gunicorn_logging.GunicornLogger"  # JSON with SWITCHBOARD_LOG_FORMAT=json
control_socket_disable = True  # gunicorn 27 opens ~/.gunicorn/ control sockets otherwise


def _access_log() -> str | None:
    """SWITCHBOARD_ACCESS_LOG: a file, `-` (stdout) or `off`. Unset: stdout with JSON logs (a
    line per request is part of what that format promises: status, latency, model, key id),
    none with the text log."""
    from app.logs import wants_json
    chosen = (os.environ.get("SWITCHBOARD_ACCESS_LOG") or "").strip()
    if chosen:
        return None if chosen.lower() == "off" else chosen
    return "-" if wants_json(os.environ) else None


accesslog = _access_log()
# The path without its query string: a client may (wrongly) put a key in the URL.
access_log_format = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms'
# Header limits: beyond them gunicorn answers 400 before the app sees the request.
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190


def child_exit(server, worker):
    """A worker is gone (stopped, crashed, replaced): its live gauges stop counting; its
    counters stay in the sums."""
    from prometheus_client import multiprocess
    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    if os.environ.get("SWITCHBOARD_METRICS_TEMPORARY"):
        shutil.rmtree(metrics_dir, ignore_errors=True)


def post_worker_init(worker):
    """A new worker (one replacing a killed worker, say) replays the ledger journals that
    stopped processes left behind, at once rather than at its first request; under gevent's
    monitor, its hub is watched from now on."""
    from app.usage.ledger import ledger_of
    if worker_class.endswith("GeventWorker") and watch_worker_hubs:
        import gevent
        gevent.config.monitor_thread = True
        gevent.get_hub().start_periodic_monitoring_thread()
    service = getattr(worker.wsgi, "extensions", {}).get("switchboard")
    ledger = ledger_of(service) if service is not None else None
    if ledger is not None:
        ledger.start()


# A full collection walks every live object, and a gevent worker's requests in flight are
# all live: with hundreds of slow requests in flight, each took 30-100 ms, during which the
# worker answered nothing, and the default thresholds (700, 10, 10) ran one every few
# seconds (every request promotes its objects while it waits). The young collections
# still run as often; the full one only after 1,000 of them (minutes), and nearly nothing
# waits for it: the per-request objects are freed by reference counting (no cycles).
GC_THRESHOLDS = (700, 10, 1000)


def pre_fork(server, worker):
    """What the master loaded (the app, the model registry, tiktoken's tables) lives as long
    as the workers do: frozen, the garbage collector never walks it again, so a worker's
    full collections stay short (they made a slice of requests wait tens of ms) and the pages
    stay shared with the master instead of being copied when the collector touches them.
    Full collections are rare (GC_THRESHOLDS). tiktoken's tables are loaded first, to be shared
    the same way and to spare each worker's first token count."""
    from app.usage.tokens import load_encodings
    load_encodings()
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def on_reload(server):
    """HUP: the workers started next serve an app built from the re-read config (the running
    one when the file does not load); see app/reload.py."""
    from app.reload import reloaded_app
    server.app.callable = reloaded_app(server.app.callable)


def worker_exit(server, worker):
    """Graceful stop (SIGTERM, restart): flush the ledger and integration queues first. gunicorn
    also calls this in the master for a worker that vanished before it was told to stop: that
    copy of the worker never loaded the app (no `wsgi`), and the master must go on stopping."""
    wsgi = getattr(worker, "wsgi", None)
    service = getattr(wsgi, "extensions", {}).get("switchboard") if wsgi else None
    if service is not None:
        service.close(timeout=graceful_timeout - 5)
    from app.tracing import flush
    flush(timeout=3)
