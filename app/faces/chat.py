"""The OpenAI chat face: the service's own format, so the request and answer pass as they are."""
from __future__ import annotations

import logging
from typing import Any, Iterable, Iterator, Mapping

from app.errors import ClientDisconnected, ProxyError
from app.faces import Face, FaceRequest
from app.jsonfast import dumps
from app.service.outcome import Outcome

log = logging.getLogger("switchboard")


def sse_frames(chunks: Iterable[dict]) -> Iterator[bytes]:
    """`data: <chunk>` frames, then `data: [DONE]`. A failure after the first byte becomes an
    in-band error frame, so a cut stream never looks like a finished one."""
    try:
        for chunk in chunks:
            yield b"data: " + dumps(chunk) + b"\n\n"
    except ClientDisconnected:
        return  # nobody is left to read an error frame
    except ProxyError as exc:
        yield b"data: " + dumps(exc.to_dict()) + b"\n\n"
    except Exception:
        log.exception("stream failed")
        yield b"data: " + dumps(ProxyError("The stream failed inside the proxy.",
                                           code="internal_error").to_dict()) + b"\n\n"
    yield b"data: [DONE]\n\n"


class ChatFace(Face):
    name = "chat"

    def service_request(self, body: dict[str, Any], headers: Mapping[str, str]) -> FaceRequest:
        return FaceRequest(body, body)

    def answer(self, outcome: Outcome, request: FaceRequest) -> dict[str, Any]:
        return outcome.response

    def stream(self, outcome: Outcome, request: FaceRequest) -> Iterator[bytes]:
        return sse_frames(outcome.chunks)


CHAT = ChatFace()
