"""What one attempt asks of one deployment: a chat completion (the default), a text
completion, or embeddings (app/service/embeddings.py).

The attempt plan (retries, fallbacks, cooldowns, deadline) is the same for all of them; an
operation only chooses, per deployment, which of the provider's APIs to call and how to
bill the answer. The upstream caller sends `build_request` and reads `parse_response` /
`stream_translator`, so an operation hands it the provider seen through that API.
"""
from __future__ import annotations

from typing import Any, Callable

from app.config import Settings
from app.errors import InvalidRequestError
from app.providers.base import Provider, Target
from app.service.accounting import Bill, settle


class OperationView:
    """A provider whose request builder and answer readers are those of another of its APIs;
    everything else (name, errors, retry hints, stream framing) is the provider's own."""

    def __init__(self, provider: Provider, build: Callable, parse: Callable,
                 translator: Callable | None = None):
        self._provider = provider
        self.build_request = build
        self.parse_response = parse
        self.stream_translator = translator

    def __getattr__(self, name: str) -> Any:
        return getattr(self._provider, name)


class Operation:
    """A chat completion: the provider as it is, the answer billed by its usage."""

    name = "chat"

    def prepare(self, provider: Provider, params: dict[str, Any],
                target: Target) -> tuple[Any, dict[str, Any]]:
        """(the provider as this attempt calls it, the params it sends) for one deployment."""
        return provider, params

    def configured_fallbacks(self, settings: Settings, requested: str) -> list[str]:
        """The config's fallbacks for the model asked for (its own, else the defaults)."""
        return settings.fallbacks.get(requested, settings.default_fallbacks)

    def call(self, upstream, provider, params: dict[str, Any], target: Target, timeout: float,
             outcome) -> dict:
        return upstream.call(provider, params, target, timeout, outcome)

    def settle(self, target: Target, params: dict[str, Any], response: dict) -> Bill:
        return settle(target, params, response)

    def cache_scope(self) -> dict[str, Any] | None:
        """What, besides the params, tells this operation's cached answers apart."""
        return None

    def kept(self, outcome, events=()) -> dict[str, Any] | None:
        """What the cache keeps beside the chat.completion of `outcome` (JSON; `events`: a
        stream's own events), or None."""
        return None

    def cached(self, kept: dict[str, Any], stream: bool):
        """What `kept` gives a hit of this operation: the client's answer (a body, or an
        iterator of NativeEvents for a stream), or None to answer from the chat.completion."""
        return None

    def idle_every(self, provider) -> float | None:
        """Seconds of upstream silence after which a stream this attempt reads yields
        streaming.IDLE (a face keeping its client's connection alive), or None."""
        return None


CHAT = Operation()

# A text completion's fields that only a native text API reads; the chat API never gets them.
TEXT_ONLY = ("prompt", "suffix", "echo", "best_of")


class TextCompletion(Operation):
    """OpenAI's /completions: the model's own text API where it has one (completion models,
    FIM routes, TGI), else the prompt as one user message to its chat API.

    The service's params carry both forms: `prompt` (and `suffix`, ...) for a text API, and
    `messages` (the prompt as one user message) for a chat API and for counting tokens.
    """

    name = "completions"

    def prepare(self, provider: Provider, params: dict[str, Any],
                target: Target) -> tuple[Any, dict[str, Any]]:
        native = provider.speaks_text_completion(target)
        if not (native and provider.takes_prompt_lists):
            params = self._one_prompt(params, target)
        if native:
            return OperationView(provider, provider.build_text_request,
                                 provider.parse_text_response,
                                 provider.text_stream_translator), params
        if params.get("suffix") is not None:
            raise InvalidRequestError(
                f"model {target.model_group!r} is a chat model: it cannot fill in the middle, "
                f"so `suffix` is not supported; use a completion or FIM model", param="suffix",
                code="unsupported_params")
        chat = {k: v for k, v in params.items() if k not in TEXT_ONLY}
        if chat.get("logprobs") is not None:  # /completions' count of alternatives per token
            count = chat.pop("logprobs")
            chat.update({"logprobs": True, "top_logprobs": count} if count else {})
        return provider, chat


    @staticmethod
    def _one_prompt(params: dict[str, Any], target: Target) -> dict[str, Any]:
        """For an API that takes one text prompt: the prompt as text (token ids decoded, as
        the face did for `messages`); several prompts are a 400."""
        prompt = params["prompt"]
        if isinstance(prompt, str):
            return params
        if not all(isinstance(item, int) for item in prompt):
            raise InvalidRequestError(f"model {target.model_group!r} takes one prompt per "
                                      f"request; send the others in requests of their own",
                                      param="prompt", code="invalid_value")
        return {**params, "prompt": params["messages"][0]["content"]}


TEXT = TextCompletion()
