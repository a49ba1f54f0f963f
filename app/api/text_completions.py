"""POST /completions and /v1/completions: the text completions face
(app/faces/completions.py), plain or streamed."""
from __future__ import annotations

from app.api.face_schemas import validate_text_completion_request
from app.api.faces import face_blueprint
from app.faces.completions import COMPLETIONS

bp = face_blueprint("text_completions", COMPLETIONS, ("/completions", "/v1/completions"),
                    validate_text_completion_request)
