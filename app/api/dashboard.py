"""GET /dashboard: one page that charts the /spend API in the browser (SVG drawn by a small
script served from here), so it works with no network beyond this proxy."""
from __future__ import annotations

from pathlib import Path

from flask import Blueprint

STATIC = Path(__file__).with_name("static") / "dashboard"
bp = Blueprint("dashboard", __name__, static_folder=str(STATIC),
               static_url_path="/dashboard/assets")

# Everything from this origin only: no script, style, font or request may leave it.
POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
          "img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


@bp.get("/dashboard")
def page():
    response = bp.send_static_file("index.html")
    response.headers["Content-Security-Policy"] = POLICY
    response.headers["Cache-Control"] = "no-cache"
    return response
