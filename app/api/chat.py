"""POST /chat/completions and /v1/chat/completions: the chat face (app/faces/chat.py)."""
from __future__ import annotations

from app.api.faces import face_blueprint
from app.api.schemas import validate_chat_request
from app.faces.chat import CHAT

bp = face_blueprint("chat", CHAT, ("/chat/completions", "/v1/chat/completions"),
                    validate_chat_request)
