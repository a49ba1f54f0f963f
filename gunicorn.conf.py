"""gunicorn settings, bound to HOST:PORT (default 0.0.0.0:5000).

Worker classes (SWITCHBOARD_WORKER_CLASS):
- gthread (default): WEB_CONCURRENCY processes x SWITCHBOARD_THREADS threads. Each open
  stream or in-flight request holds one thread, so the ceiling is workers x threads
  (2 x 64 = 128 by default).
- gevent: one greenlet per request, up to SWITCHBOARD_WORKER_CONNECTIONS (default 2000)
  per worker; for thousands of slow requests or streams at once.
"""
import os

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '5000')}"
wsgi_app = "wsgi:app"
worker_class = os.environ.get("SWITCHBOARD_WORKER_CLASS", "gthread")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("SWITCHBOARD_THREADS", "64"))
worker_connections = int(os.environ.get("SWITCHBOARD_WORKER_CONNECTIONS", "2000"))
timeout = int(os.environ.get("SWITCHBOARD_WORKER_TIMEOUT", "660"))  # above the 600 s request default
graceful_timeout = 30
keepalive = 75
# Load the app once in the master (workers share its memory) except under gevent, whose
# monkey-patching must happen before the app creates sockets and locks.
preload_app = worker_class != "gevent"
control_socket_disable = True  # gunicorn 27 opens ~/.gunicorn/ control sockets otherwise
accesslog = os.environ.get("SWITCHBOARD_ACCESS_LOG") or None


def worker_exit(server, worker):
    """Graceful stop (SIGTERM, restart): flush the ledger and integration queues first."""
    service = getattr(worker.wsgi, "extensions", {}).get("switchboard") if worker.wsgi else None
    if service is not None:
        service.close(timeout=graceful_timeout - 5)
