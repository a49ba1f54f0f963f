"""POST /completions and /v1/completions: the text completions face
(app/faces/completions.py), plain or streamed."""
from __future__ import annotations

from flask import Blueprint

from app.api.face_paths import claim
from app.api.face_schemas import validate_text_completion_request
from app.api.faces import serve
from app.faces.completions import COMPLETIONS

bp = Blueprint("text_completions", __name__)
PATHS = ("/completions", "/v1/completions")
claim(COMPLETIONS, *PATHS)


@bp.post(PATHS[0])
@bp.post(PATHS[1])
def create_completion():
    return serve(COMPLETIONS, validate_text_completion_request)
