"""WSGI entry point: `gunicorn -c gunicorn.conf.py wsgi:app`."""
import logging
import sys

from app.api import create_app
from app.config import ConfigError

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

try:
    app = create_app()
except ConfigError as exc:
    sys.stderr.write(f"switchboard: invalid configuration: {exc}\n")
    sys.exit(3)
