"""The `responses` face: OpenAI's Responses API (`POST /v1/responses`) around the service.

One face instance serves one request. It resolves `previous_response_id` and
`item_reference` input items from the response store (the whole earlier context, or the
referenced items, so the conversation continues on any provider; a key sees only what it
stored itself), hands the service both the translated chat request and the client's own body
(OpenAI, Azure and servers declaring `api: responses` get that body as it is), and turns
the outcome back into a `response` object or event stream, which it stores when the
request asks (`store`, true by default).
"""
from __future__ import annotations

from typing import Any, Iterator, Mapping

from app.errors import InvalidRequestError, UnsupportedParamsError
from app.faces import Face, FaceRequest
from app.faces.responses import native
from app.faces.responses.answer import issued_by_proxy, response_from_completion, response_id
from app.faces.responses.request import (WEB_SEARCH_TOOLS, ToolNames, bad, chat_request,
                                         check_call_outputs, input_items)
from app.faces.responses.stream import EventStream
from app.jsonfast import dumps, loads
from app.providers.base import NativeEvent, NativeRequest
from app.service.completion import as_proxy_error
from app.service.outcome import Outcome
from app.service.passthrough import NativeAnswer
from app.storage.responses import Owner, ResponseStore

API = "responses"
# The proxy's own body fields (as on /chat/completions); never sent upstream.
PROXY_OPTIONS = ("fallbacks", "cache", "drop_params", "num_retries", "timeout",
                 "context_window_fallbacks")
TRANSLATED_TOOLS = ("function", "namespace", *WEB_SEARCH_TOOLS)
FINAL_EVENTS = ("response.completed", "response.incomplete")  # carry the whole response


class ResponsesFace(Face):
    name = API

    def __init__(self, store: ResponseStore | None = None, owner: Owner | None = None,
                 drop_params: bool = False):
        self.store = store
        self.owner = owner or Owner(None)
        self.drop_params = drop_params   # the config's default; the request may say otherwise
        self.dropped: list[str] = []     # built-in tools left out of the translation
        self.identifier = response_id()
        self.context: list[dict] = []
        self.expanded = False   # the earlier context came from our store
        self.names = ToolNames()

    # -- request --------------------------------------------------------------------
    def service_request(self, body: dict[str, Any], headers: Mapping[str, str]) -> FaceRequest:
        """The chat translation for every other provider, and the client's body for those
        that speak Responses; what only the native format can carry is the translation's
        refusal, raised by an attempt that translates (under drop_params built-in tools are
        left out of the translation instead, and named in x-switchboard-dropped-params)."""
        native_body = {k: v for k, v in body.items() if k not in PROXY_OPTIONS}
        history, refusal = self._history(body)
        items, resolved, missing = self._referenced(input_items(body))
        refusal = refusal or missing
        self.context = history + items
        if self.expanded:
            native_body["input"] = self.context
            native_body.pop("previous_response_id", None)
        elif resolved:
            native_body["input"] = items
        if refusal is None:  # else OpenAI holds the earlier turns
            check_call_outputs(self.context)
        tools = body.get("tools") or []
        builtin = [t for t in tools if t.get("type") not in TRANSLATED_TOOLS]
        try:
            params, self.names = chat_request({**body, "tools": [
                t for t in tools if t not in builtin]}, self.context)
        except InvalidRequestError as error:
            refusal = refusal or error
            bare = _bare(body)
            params, self.names = chat_request(bare, input_items(bare))
        kinds = list(dict.fromkeys(str(t.get("type")) for t in builtin))
        if kinds and body.get("drop_params", self.drop_params):
            self.dropped = [f"tools.{kind}" for kind in kinds]
        elif kinds and refusal is None:
            refusal = UnsupportedParamsError(
                f"tools of type {', '.join(kinds)} are OpenAI's built-in tools and have no "
                "equivalent for this model; remove them, or set drop_params: true to drop them.",
                param=",".join(f"tools.{kind}" for kind in kinds))
        params.update({k: body[k] for k in PROXY_OPTIONS if k in body})
        return FaceRequest(body, params, NativeRequest(API, native_body, refusal=refusal))

    def _history(self, body: dict[str, Any]) -> tuple[list[dict], InvalidRequestError | None]:
        """The stored context `previous_response_id` continues, or, for an id only OpenAI
        knows, nothing and the refusal a translating attempt raises."""
        previous = body.get("previous_response_id")
        if not previous:
            return [], None
        stored = self.store.get(previous, self.owner) if self.store else None
        if stored is not None:
            self.expanded = True
            return stored.conversation(), None
        missing = bad(f"Previous response with id '{previous}' not found.",
                      "previous_response_id", "previous_response_not_found")
        if issued_by_proxy(previous) or (self.store and self.store.known(previous)):
            raise missing
        return [], missing  # OpenAI's own id: only OpenAI can continue it

    def _referenced(self, items: list[dict]) -> tuple[list[dict], bool,
                                                       InvalidRequestError | None]:
        """(the items with each `item_reference` to a stored item replaced by that item,
        whether any was, the refusal a translating attempt raises for one only OpenAI may
        know). A reference to an item this proxy stored for another key is refused here."""
        resolved, missing, out = False, None, []
        for position, item in enumerate(items):
            if item.get("type") != "item_reference":
                out.append(item)
                continue
            found = self.store.item(item["id"], self.owner) if self.store else None
            if found is not None:
                out.append(found)
                resolved = True
                continue
            error = bad(f"Item with id '{item['id']}' not found.", f"input[{position}].id",
                        "item_not_found")
            if self.store and self.store.known_item(item["id"]):
                raise error
            missing = missing or error
            out.append(item)
        return out, resolved, missing

    # -- answer ---------------------------------------------------------------------
    def answer(self, outcome: Outcome, request: FaceRequest) -> dict[str, Any]:
        body = request.body
        self._name_dropped(outcome)
        if outcome.passthrough:
            response = dict(outcome.native)
            if self.expanded:
                response["previous_response_id"] = body.get("previous_response_id")
        else:
            response = response_from_completion(outcome.response, body, self.names,
                                                self.identifier)
        self._keep(response, body)
        return response

    def stream(self, outcome: Outcome, request: FaceRequest) -> Iterator[bytes]:
        self._name_dropped(outcome)
        if outcome.passthrough:
            return self._native_frames(outcome.chunks, request.body)
        return self._translated_frames(outcome.chunks, request.body)

    def native_answer(self, kept: NativeAnswer) -> dict[str, Any]:
        return native.answer(kept, self.identifier)

    def native_events(self, kept: NativeAnswer) -> Iterator[NativeEvent]:
        return native.events(kept, self.identifier)

    def _translated_frames(self, chunks, body: dict[str, Any]) -> Iterator[bytes]:
        events = EventStream(body, self.names, self.identifier)
        for event in events.events(chunks):
            yield frame(event["type"], dumps(event))
        if events.response["status"] != "failed":
            self._keep(events.response, body)

    def _native_frames(self, events, body: dict[str, Any]) -> Iterator[bytes]:
        """The upstream's events unchanged; a failure after them is an `error` event
        numbered after the last one."""
        count = 0
        try:
            for event in events:
                if event.event in FINAL_EVENTS:
                    response = loads(event.data).get("response") or {}
                    if self.expanded:
                        response["previous_response_id"] = body.get("previous_response_id")
                    self._keep(response, body)
                yield frame(event.event, event.data.encode())
                count += 1
        except Exception as exc:
            error = as_proxy_error(exc)
            yield frame("error", dumps({"type": "error", "code": error.code or error.type,
                                        "message": error.message, "param": error.param,
                                        "sequence_number": count}))

    def _name_dropped(self, outcome: Outcome) -> None:
        """Before the headers are written: what the translation left out, where it was used."""
        if self.dropped and not outcome.passthrough:
            outcome.dropped_params = [*outcome.dropped_params, *self.dropped]

    def _keep(self, response: dict, body: dict[str, Any]) -> None:
        if self.store is not None and body.get("store", True) and response.get("id"):
            self.store.save(response, self.context, self.owner.key_id)


def frame(event: str | None, data: bytes) -> bytes:
    head = f"event: {event}\n".encode() if event else b""
    return head + b"data: " + data + b"\n\n"


def _bare(body: dict[str, Any]) -> dict[str, Any]:
    """A request's settings with its text only: what accounting needs when only the native
    format can express the rest."""
    text = " ".join(_texts(body.get("input")))
    return {"model": body["model"], "stream": body.get("stream"),
            "input": text or "(native request)"}


def _texts(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, list):
        for item in node:
            yield from _texts(item)
    elif isinstance(node, dict):
        for key in ("text", "content", "output", "arguments"):
            if key in node:
                yield from _texts(node[key])
