"""Which face serves which path: errors there (bad input, auth, 404, 413, ...) take that
face's shape, and requests refused there are recorded under its name."""
from __future__ import annotations

from app.faces import Face
from app.faces.chat import CHAT

# path (no trailing slash) -> the face that serves it; filled by `claim` at import.
PATH_FACES: dict[str, Face] = {}


def claim(face: Face, *paths: str) -> None:
    for path in paths:
        PATH_FACES[path] = face


def face_for(path: str) -> Face:
    """The face serving `path` (OpenAI's shape for every other path)."""
    return PATH_FACES.get(path.rstrip("/") or "/", CHAT)
