"""POST /chat/completions and /v1/chat/completions: the chat face (app/faces/chat.py)."""
from __future__ import annotations

from flask import Blueprint

from app.api.face_paths import claim
from app.api.faces import serve
from app.api.schemas import validate_chat_request
from app.faces.chat import CHAT

bp = Blueprint("chat", __name__)
PATHS = ("/chat/completions", "/v1/chat/completions")
claim(CHAT, *PATHS)


@bp.post(PATHS[0])
@bp.post(PATHS[1])
def chat_completions():
    return serve(CHAT, validate_chat_request)
