"""What every provider module implements: OpenAI format in, wire format out, and back.

A provider knows nothing of Flask, caching, retries or logging. It builds requests and
reads responses; the service sends them. Multi-step protocols (Replicate's polling, a
stream URL handed out by a create call) are expressed by returning a `FollowUp`.
"""
from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, NamedTuple

from app.errors import ProxyError, UpstreamError
from app.providers import context_length
from app.providers.upstream_errors import retry_after_seconds, unsupported_operation, upstream_error

# Every request field OpenAI's chat API defines; anything else is a forward-compatible extra.
OPENAI_PARAMS = frozenset({
    "temperature", "top_p", "n", "stream", "stop", "max_tokens", "max_completion_tokens",
    "presence_penalty", "frequency_penalty", "logit_bias", "user", "functions",
    "function_call", "tools", "tool_choice", "parallel_tool_calls", "response_format", "seed",
    "stream_options", "logprobs", "top_logprobs", "reasoning_effort",
    "web_search_options",
})

# Values that ask for nothing beyond the default, so a provider without the parameter honours them.
NEUTRAL_VALUES: dict[str, tuple] = {
    "n": (1,), "logprobs": (False,), "stream_options": ({},),
    "presence_penalty": (0, 0.0), "frequency_penalty": (0, 0.0), "logit_bias": ({},),
    "parallel_tool_calls": (True,), "reasoning_effort": ("none",),
}


@dataclass(frozen=True)
class Target:
    """One concrete place a request can go: provider, its model id, and how to reach it."""

    model_group: str          # the name the client asked for
    model: str                # provider-qualified name, e.g. "azure/my-gpt4"
    provider: str
    upstream_model: str       # the id the provider's API wants
    api_base: str | None
    api_key: str | None
    key_source: str           # the variable the key came from, for error messages
    api_version: str | None = None
    info: Mapping[str, Any] = field(default_factory=dict)      # registry facts
    settings: Mapping[str, Any] = field(default_factory=dict)  # deployment params from config
    key_required: bool = True
    deployment_id: str = ""   # unique per deployment, for cooldowns and balancing
    # Set when the request brought its own api_base or api_key (app/service/client_connection.py):
    # its connections are never pooled with the operator's, and a client's api_base is
    # connected to only at the addresses checked when the request arrived.
    own_connection: bool = False
    pinned_addresses: tuple[str, ...] = ()


@dataclass
class UpstreamRequest:
    method: str
    url: str
    headers: dict[str, str]
    json: Any = None
    stream: bool = False      # read the answer as an event stream
    attempt: int = 0          # times a polling FollowUp has repeated this request (for backoff)
    from_upstream: bool = False  # sent as a FollowUp: its URL may come from an upstream's answer


@dataclass(frozen=True)
class NativeRequest:
    """A client's body in a format some providers speak natively (a face's own format).

    A face hands it to the service besides the translated OpenAI request; an attempt whose
    provider speaks `api` sends this body upstream (pass-through), any other attempt the
    OpenAI request (translation), so the choice is made per deployment.
    """

    api: str                      # the face's name: "messages", "responses", ...
    body: dict[str, Any]          # as the client sent it, the proxy's own fields removed
    headers: Mapping[str, str] = field(default_factory=dict)  # client headers the API defines
    # What the translation could not carry (a ProxyError), raised by an attempt that
    # translates; None when the translation is whole.
    refusal: Exception | None = None


class NativeEvent(NamedTuple):
    """One event of a native upstream stream, passed to the client unchanged."""

    event: str | None
    data: str


@dataclass
class UpstreamResponse:
    status: int
    headers: Mapping[str, str]
    payload: Any              # parsed JSON
    request: UpstreamRequest | None = None  # what this answers; a poller reads its `attempt`


@dataclass
class FollowUp:
    """The answer is not ready: send `request` after `delay` seconds and parse again."""

    request: UpstreamRequest
    delay: float = 0.0


def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def chat_completion(model: str, choices: list[dict], usage: dict | None,
                    response_id: str | None = None, created: int | None = None) -> dict:
    """An OpenAI chat.completion body; providers fill in choices and what usage they know
    (the service counts whatever is missing)."""
    return {
        "id": response_id or completion_id(),
        "object": "chat.completion",
        "created": created or int(time.time()),
        "model": model,
        "choices": choices,
        "usage": usage or {"prompt_tokens": None, "completion_tokens": None, "total_tokens": None},
    }


def usage_dict(prompt_tokens: int | None, completion_tokens: int | None, **extra) -> dict:
    """OpenAI usage; a count the provider did not report is None, for the service to count."""
    total = None if prompt_tokens is None or completion_tokens is None else (
        prompt_tokens + completion_tokens)
    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
             "total_tokens": total}
    usage.update({k: v for k, v in extra.items() if v is not None})
    return usage


def stop_list(stop: Any) -> list[str] | None:
    """OpenAI's `stop` is a string or a list; most providers want a list."""
    if stop is None:
        return None
    return [stop] if isinstance(stop, str) else list(stop)


class StopScanner:
    """Cuts generated text at the first stop sequence, as OpenAI does (the stop text itself is
    never returned), for upstreams that return it or cannot stop on it at all.

    `feed` takes text pieces as they arrive and returns what is safe to pass on: a tail that
    could be the start of a stop sequence split across pieces is held back until the next
    piece (or `flush`) decides. After a hit, `hit` is True and everything else is dropped.
    """

    def __init__(self, stop: Any):
        self.sequences = [s for s in stop_list(stop) or () if s]
        self.hit = False
        self.matched: str | None = None   # the stop sequence that was hit
        self._held = ""

    def feed(self, text: str) -> str:
        if self.hit:
            return ""
        text = self._held + text
        found = [(at, s) for s in self.sequences if (at := text.find(s)) >= 0]
        if found:
            at, self.matched = min(found)
            self.hit, self._held = True, ""
            return text[:at]
        keep = max((k for s in self.sequences for k in range(1, min(len(s), len(text) + 1))
                    if text.endswith(s[:k])), default=0)
        self._held = text[len(text) - keep:] if keep else ""
        return text[:len(text) - keep]

    def flush(self) -> str:
        """The held-back tail once the text has ended (it was not a stop sequence after all)."""
        held, self._held = self._held, ""
        return held

    def cut(self, text: str) -> str:
        """A whole text at once: feed plus flush."""
        return self.feed(text) + self.flush()


def params_outside(body: Mapping[str, Any], supported: frozenset[str]) -> list[str]:
    """OpenAI params in `body` outside `supported` (`user` and neutral values excepted); for
    providers whose support differs per model (see Provider.unsupported_params_for)."""
    return sorted(
        key for key, value in body.items()
        if key in OPENAI_PARAMS and key not in supported and key != "user"
        and value is not None and value not in NEUTRAL_VALUES.get(key, ())
    )


def token_count(payload: Any, field: str, missing: int | None = None) -> int:
    """The count a token-count answer gives in `field` (`missing` where it may be left
    out); ValueError when it is not a non-negative integer."""
    count = payload.get(field, missing) if isinstance(payload, dict) else None
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise ValueError(f"the token count has no {field}")
    return count


def message_text(content: Any) -> str:
    """The text of an OpenAI message content: a string, None, or a list of parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content
                   if isinstance(part, dict) and part.get("type") == "text")


class Provider:
    """Base provider. Subclasses set the class attributes and override the translators."""

    name: str = ""
    key_env: tuple[str, ...] = ()       # variables that may hold the key, first set wins
    base_env: str | None = None
    version_env: str | None = None
    default_base: str | None = None
    # True when default_base is on the proxy's own host (localhost): only a model_list
    # deployment or the provider's base variable opens it.
    local_default: bool = False
    key_required: bool = True
    # True where the same API is also served by self-hosted servers that need no key; a
    # deployment with its own api_base then needs no key.
    self_hosted_without_key: bool = False
    # OpenAI params this provider honours; None means every param passes through unchanged.
    supported_params: frozenset[str] | None = None
    # How an event stream from this provider is framed: "sse" or "ndjson".
    stream_format: str = "sse"
    # Client-facing formats (faces) this provider's API speaks itself, e.g. {"messages"}:
    # a request in one of them is passed through instead of translated (see app/faces).
    native_apis: frozenset[str] = frozenset()

    def unsupported_params(self, body: Mapping[str, Any]) -> list[str]:
        """OpenAI params in `body` that this provider cannot honour (neutral values excepted)."""
        if self.supported_params is None:
            return []
        return params_outside(body, self.supported_params)

    def unsupported_params_for(self, body: Mapping[str, Any], target: Target) -> list[str]:
        """`unsupported_params` for one deployment: override when support depends on the model
        (e.g. Hugging Face chat vs text-generation models)."""
        return self.unsupported_params(body)

    # How this provider words "the prompt does not fit the model's context window".
    context_length_wording: re.Pattern = context_length.OPENAI_FAMILY

    def reported(self, error: ProxyError) -> ProxyError:
        """A failure as our client sees it: a context-length error in this provider's wording
        becomes OpenAI's 400 `context_length_exceeded` (and moves to a larger model)."""
        return context_length.marked(error, self.context_length_wording)

    def dropped_params(self, body: Mapping[str, Any], target: Target) -> list[str]:
        """Params this provider leaves out by its own rule whatever `drop_params` says, because
        sending them would fail and leaving them out changes nothing the client asked for
        (e.g. Anthropic's `top_p: 1` beside `temperature`); reported to the client."""
        return []

    def build_request(self, body: dict[str, Any], target: Target) -> UpstreamRequest:
        raise NotImplementedError

    def parse_response(self, response: UpstreamResponse, body: dict[str, Any],
                       target: Target) -> dict | FollowUp:
        raise NotImplementedError

    def stream_translator(self, body: dict[str, Any], target: Target) -> "StreamTranslator":
        raise NotImplementedError

    # -- other operations (app/providers/operations.py): embeddings and text completions ------
    # The embeddings API's limits per call: inputs, and tokens summed over them (None: none).
    embedding_batch_size: int | None = None
    embedding_batch_tokens: int | None = None

    def build_embedding_request(self, body: dict[str, Any], target: Target) -> UpstreamRequest:
        """The provider's embeddings call for `body` = {input: [text or token ids], dimensions?,
        user?, input_type?}; providers without an embeddings API refuse."""
        raise unsupported_operation(self.name, target, "embeddings")

    def parse_embedding_response(self, response: UpstreamResponse, body: dict[str, Any],
                                 target: Target) -> dict:
        """OpenAI's embedding list, float vectors in input order (usage counts may be None)."""
        raise unsupported_operation(self.name, target, "embeddings")

    # Whether the text API takes several prompts (or token ids) in one request, as OpenAI's.
    takes_prompt_lists = False

    def speaks_text_completion(self, target: Target) -> bool:
        """True where the model has a prompt-in, text-out API (legacy /completions, FIM, TGI);
        elsewhere a text completion is sent as one user message to the chat API."""
        return False

    def build_text_request(self, body: dict[str, Any], target: Target) -> UpstreamRequest:
        """The native text completion call for `body` = OpenAI's /completions params."""
        raise unsupported_operation(self.name, target, "text completions")

    def parse_text_response(self, response: UpstreamResponse, body: dict[str, Any],
                            target: Target) -> dict | FollowUp:
        """A native text completion answer as a chat.completion (the service's format)."""
        raise unsupported_operation(self.name, target, "text completions")

    def text_stream_translator(self, body: dict[str, Any], target: Target) -> "StreamTranslator":
        raise unsupported_operation(self.name, target, "text completions")

    def counts_prompts(self, target: Target) -> bool:
        """True where the provider has its own endpoint counting a chat prompt's input tokens
        (used by count_tokens before the local tiktoken estimate)."""
        return False

    def build_count_request(self, body: dict[str, Any], target: Target) -> UpstreamRequest:
        """The provider's token-count call for the OpenAI chat request `body`."""
        raise unsupported_operation(self.name, target, "token count")

    def parse_count_response(self, response: UpstreamResponse, body: dict[str, Any],
                             target: Target) -> int:
        """The input tokens a token-count answer gives."""
        raise unsupported_operation(self.name, target, "token count")

    def speaks(self, api: str, target: Target) -> bool:
        """Whether `target` takes requests of the face `api` as they are (pass-through);
        override when it depends on the deployment."""
        return api in self.native_apis

    def build_native_request(self, native: NativeRequest, target: Target) -> UpstreamRequest:
        """The upstream request for a client body in one of `native_apis`: the body as it
        came, with the deployment's model name."""
        raise NotImplementedError

    def parse_native_response(self, api: str, response: UpstreamResponse,
                              target: Target) -> dict:
        """A native answer as a chat.completion, for usage, cost, ledger and logs (the client
        gets the native answer itself)."""
        raise NotImplementedError

    def native_stream_translator(self, api: str, target: Target) -> "StreamTranslator":
        """Reads a native stream's events into chunk fragments, for the same accounting."""
        raise NotImplementedError

    def error_message(self, payload: Any) -> str | None:
        """The provider's own error text from an error body (each provider nests it differently)."""
        if isinstance(payload, dict):
            error = payload.get("error", payload)
            if isinstance(error, dict):
                return error.get("message") or error.get("detail")
            if isinstance(error, str):
                return error
        return None

    def error_code(self, payload: Any) -> str | None:
        if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
            code = payload["error"].get("code") or payload["error"].get("type")
            return str(code) if code is not None else None
        return None

    def error_param(self, payload: Any) -> str | None:
        """The request field an OpenAI-style error body blames, kept for our client."""
        if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
            param = payload["error"].get("param")
            return param if isinstance(param, str) and param else None
        return None

    def upstream_error(self, status: int, payload: Any, headers: Mapping[str, str]) -> UpstreamError:
        """Map a provider error answer to the OpenAI-style error our client sees."""
        return upstream_error(self.name, status, self.error_message(payload),
                              self.error_code(payload), retry_after_seconds(headers),
                              self.error_param(payload))

    def retry_after_error(self, status: int, payload: Any,
                          request: UpstreamRequest) -> FollowUp | None:
        """An error answer that only means "not yet" (e.g. Hugging Face's 503 while a model
        loads): return the FollowUp to send instead of failing; None fails as usual."""
        return None


class StreamTranslator:
    """Turns one provider's stream events into OpenAI chunk fragments.

    Each fragment is a dict with "choices" (and optionally "usage"); the service adds
    id, object, created and model so that they are the same on every chunk.
    `response_id`: the upstream's own id of its answer, once an event named it (a
    passed-through stream's answer keeps it, as the client sees it).
    """

    response_id: str | None = None

    def on_event(self, event: str | None, data: str) -> Iterable[dict]:
        raise NotImplementedError

    def on_end(self) -> Iterable[dict]:
        return ()
