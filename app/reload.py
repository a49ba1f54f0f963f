"""Config reload without downtime (`kill -HUP <master>`, or POST /config/reload).

gunicorn, told HUP, starts new workers and lets the old ones finish what they serve (streams
included) within the graceful timeout. The app is preloaded in the master, so the master
builds a new app from the re-read SWITCHBOARD_CONFIG before it forks the new workers; a file
that does not load is refused with its reason logged, and the new workers get the running app.
"""
from __future__ import annotations

import logging

from app.config import ConfigError

log = logging.getLogger("switchboard")


def reloaded_app(running):
    """The app the next workers serve: built from the config as it is now, or `running`."""
    from app.api import create_app
    try:
        app = create_app()
    except ConfigError as exc:
        log.error("config reload refused, the running config is kept: %s", exc)
        return running
    log.info("config reloaded: %d model_list entries",
             len(app.extensions["switchboard"].settings.deployments))
    return app
