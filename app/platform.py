"""The hosting platform the proxy runs on, and what it implies: Heroku, Railway, Render and
Fly.io wipe the local disk at each deploy, and Heroku's Redis and router have their own rules."""
from __future__ import annotations

from typing import Mapping

# Variables each platform sets in every dyno/service; their disks are wiped at each deploy.
EPHEMERAL_PLATFORMS = (("Heroku", "DYNO"), ("Railway", "RAILWAY_ENVIRONMENT"),
                       ("Render", "RENDER"), ("Fly.io", "FLY_APP_NAME"))
KEEPALIVE_ENV = "SWITCHBOARD_KEEPALIVE_WHITESPACE"


def hosting_platform(env: Mapping[str, str]) -> str | None:
    """The platform the proxy runs on, when it is one whose local disk does not last."""
    return next((name for name, variable in EPHEMERAL_PLATFORMS if env.get(variable)), None)


def startup_warnings(env: Mapping[str, str]) -> list[str]:
    platform = hosting_platform(env)
    warnings = []
    if platform and not env.get("DATABASE_URL"):
        warnings.append(
            f"running on {platform} without DATABASE_URL: the SQLite ledger, virtual keys and "
            f"stored responses live on the local disk, which {platform} wipes at every restart "
            f"and deploy. Add a PostgreSQL database (its DATABASE_URL is read as it is given).")
    if platform == "Heroku" and not env.get(KEEPALIVE_ENV):
        warnings.append(
            "Heroku's router ends a request that sends no byte for 30 s: set "
            f"{KEEPALIVE_ENV}=20 so that slow non-streamed answers stay open.")
    return warnings


def redis_tls_options(url: str, env: Mapping[str, str]) -> dict:
    """Heroku Redis serves `rediss://` with a self-signed certificate, and Heroku's own advice
    is not to verify it; elsewhere certificates are verified unless the URL says otherwise
    (`?ssl_cert_reqs=none`)."""
    if url.startswith("rediss://") and "ssl_cert_reqs" not in url \
            and hosting_platform(env) == "Heroku":
        return {"ssl_cert_reqs": "none"}
    return {}
