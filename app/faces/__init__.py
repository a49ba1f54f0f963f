"""Faces: one module per client-facing API format, around one service.

The proxy answers several client formats ("faces"): OpenAI chat (`chat`), Anthropic
Messages (`messages`), and more. There is one service (`app.service.CompletionService`),
one attempt plan, one cache, one ledger and one set of keys; a face only translates.

A face (a `Face` subclass, in `app/faces/<name>.py`, knowing nothing of Flask):
- `service_request(body, headers)` turns the client's validated body into a `FaceRequest`:
  `params`, the service's request (OpenAI chat params plus the proxy's own options:
  `fallbacks`, `cache`, `metadata`, `num_retries`, `timeout`, ...), and, when some provider
  speaks the face's format natively, `native`: a `NativeRequest` with the client's body as
  it came (minus the proxy's fields) and the headers that API defines. The service sends
  that body, not the translation, to every deployment whose provider declares the format
  in `Provider.native_apis`; the choice is made per attempt, so a fallback from a
  pass-through model to a translated one works within one request. What the translation
  cannot carry goes in `NativeRequest.refusal`, raised only by an attempt that translates.
- `answer(outcome, request)` is the client's JSON answer: `outcome.native` when
  `outcome.passthrough` is set (the provider's own answer, unchanged), else translated from
  `outcome.response` (a `chat.completion`).
- `stream(outcome, request)` yields the response's bytes from `outcome.chunks`: the
  upstream's own `NativeEvent`s when `outcome.passthrough`, else `chat.completion.chunk`
  dicts to translate. A failure raised while iterating becomes the face's in-band error, so
  a cut stream never looks finished.
- `error_body(error)` / `error_status(error)`: a `ProxyError` in the face's own error shape.
- `native_answer(kept)` / `native_events(kept)` (faces with a native format): a cache hit
  on an entry a pass-through stored gets the provider's own answer again, as a body or as
  the events of a stream, with this request's own id (app/service/passthrough.py).

Adding a face:
1. `app/faces/<name>.py` (or a package): a `Face` subclass with `name` = the ledger's `api`
   value (`chat`, `messages`, `responses`, `embeddings`, `completions`).
2. If a provider speaks the format natively: set `native_apis` on it and implement
   `build_native_request` / `parse_native_response` / `native_stream_translator` in the
   provider module (the parse side turns the native answer into a chat.completion, so
   usage, cost, limits and the ledger work unchanged). The service runs such a request as
   the `Passthrough` operation (app/service/passthrough.py), one of the attempt plan's
   operations (app/service/operations.py).
3. `app/api/<name>.py`: a blueprint whose view is `app.api.faces.serve(face, validate)`
   (marshmallow validation of the client's body), and `app.api.face_paths.claim(face,
   *paths)` so every error on those paths (bad input, auth, 404, 413, ...) takes the face's
   shape and refused requests are recorded under its name. Add the blueprint to
   `BLUEPRINTS` in `app/api/__init__.py`. Endpoints that only need the shared steps use
   `admitted(validate, api)` and `described(response, outcome, started)` from there.
The ledger's `api` column, `/spend/apis` and `/spend?group_by=api` then show the face.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Mapping

from app.errors import ProxyError
from app.providers.base import NativeRequest
from app.service.operations import CHAT as CHAT_OPERATION, Operation
from app.service.outcome import Outcome


@dataclass
class FaceRequest:
    body: dict[str, Any]                 # the client's validated body
    params: dict[str, Any]               # the service's request
    native: NativeRequest | None = None  # for providers that speak the face's format


class Face:
    name: str = ""   # also the ledger's `api` value
    # What the service does for a translated request (app/service/operations.py): a chat
    # completion unless the face needs another of the providers' operations.
    operation: Operation = CHAT_OPERATION

    def service_request(self, body: dict[str, Any], headers: Mapping[str, str]) -> FaceRequest:
        raise NotImplementedError

    def answer(self, outcome: Outcome, request: FaceRequest) -> dict[str, Any]:
        raise NotImplementedError

    def stream(self, outcome: Outcome, request: FaceRequest) -> Iterator[bytes]:
        raise NotImplementedError

    def native_answer(self, kept) -> dict[str, Any]:
        """A kept pass-through answer (`passthrough.NativeAnswer`) as this request's body."""
        raise NotImplementedError

    def native_events(self, kept) -> Iterator:
        """A kept pass-through answer as this request's stream of NativeEvents."""
        raise NotImplementedError

    def keepalive(self, settings) -> float | None:
        """Seconds of upstream silence after which `stream` gets streaming.IDLE among the
        chunks of a translated stream (to send the format's keep-alive event), or None."""
        return None

    def error_body(self, error: ProxyError, request_id: str | None = None) -> dict[str, Any]:
        """OpenAI's error body unless the face has its own."""
        return error.to_dict()

    def error_status(self, error: ProxyError) -> int:
        return error.status
