"""gunicorn settings: threaded workers (gthread), bound to HOST:PORT (default 0.0.0.0:5000)."""
import os

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '5000')}"
wsgi_app = "wsgi:app"
worker_class = os.environ.get("SWITCHBOARD_WORKER_CLASS", "gthread")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("SWITCHBOARD_THREADS", "64"))
timeout = int(os.environ.get("SWITCHBOARD_WORKER_TIMEOUT", "660"))  # above the 600 s request default
graceful_timeout = 30
keepalive = 75
preload_app = True
control_socket_disable = True  # gunicorn 27 opens ~/.gunicorn/ control sockets otherwise
accesslog = os.environ.get("SWITCHBOARD_ACCESS_LOG") or None
