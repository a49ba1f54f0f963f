"""WSGI entry point: `gunicorn -c gunicorn.conf.py wsgi:app`."""
import os
import sys

from app.api import create_app
from app.config import ConfigError
from app.logs import configure_logging

try:
    configure_logging(os.environ)
    app = create_app()
except ConfigError as exc:
    sys.stderr.write(f"switchboard: invalid configuration: {exc}\n")
    sys.exit(3)
