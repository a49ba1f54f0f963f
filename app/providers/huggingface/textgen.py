"""Text-generation models (base and code models such as stablecode): TGI's generate API.

The conversation becomes one prompt (`prompt`); the body is `{"inputs", "parameters"}`:
- max_tokens / max_completion_tokens -> max_new_tokens; stop -> stop (a list); seed and
  frequency_penalty as they are. TGI's own knobs sent as extra fields (TGI_KNOBS) are
  passed on in `parameters`.
- temperature 0 (or top_p 0) means greedy decoding. TGI rejects temperature 0 and samples
  whenever temperature or top_p is set, so greedy is `do_sample: false` with neither
  sent. Other values go with `do_sample: true`; top_p 1.0 (TGI wants < 1) is left out as
  it changes nothing. With neither set, the server's default decoding applies.
- return_full_text false (the continuation only), details true (finish reason, token
  counts), and decoder_input_details true unless streaming (the prompt's tokens, for
  usage; TGI refuses it on streams).
Answers: serverless sends `[{"generated_text", "details"}]`, TGI the object alone. TGI
ends with `eos_token`, `stop_sequence` or `length` and leaves the stop sequence in the
text; OpenAI says `stop` and leaves it out, so the text goes through a StopScanner.
Usage: completion tokens from details.generated_tokens; prompt tokens from the prefill
(non-stream) or details.input_length (stream). Counts a server does not send are left
None, for the proxy to count with its tokenizer.
"""
from __future__ import annotations

from typing import Any, Iterable
from urllib.parse import quote

from app.errors import InvalidRequestError, ProxyError
from app.jsonfast import loads
from app.providers.base import (StopScanner, StreamTranslator, Target, UpstreamRequest,
                                chat_completion, message_text, stop_list, usage_dict)
from app.providers.prompt_templates import TEMPLATES, render

SUPPORTED = frozenset({"temperature", "top_p", "stop", "max_tokens", "max_completion_tokens",
                       "seed", "frequency_penalty", "stream", "stream_options"})
# Values outside the contract (huggingface-tasks/text-generation/input.json).
OUT_OF_RANGE = {"seed": lambda v: v < 1, "frequency_penalty": lambda v: v <= -2}

TGI_KNOBS = ("top_k", "repetition_penalty", "typical_p", "truncate", "watermark", "adapter_id")

FINISH = {"length": "length", "eos_token": "stop", "stop_sequence": "stop"}


def finish_reason(reason: str | None) -> str:
    """TGI's finish reason (its chat API uses them too) in OpenAI's terms."""
    return FINISH.get(reason, reason or "stop")


def prompt(body: dict[str, Any], target: Target) -> str:
    """The deployment's or the registry's `prompt_template` (a prompt_templates name), or
    by default the messages' text as written, in order, a blank line between them: a lone
    user message is then the prompt exactly, which is what completion models expect."""
    template = target.settings.get("prompt_template") or target.info.get("prompt_template")
    if template is None:
        texts = (_text(position, message) for position, message in enumerate(body["messages"]))
        return "\n\n".join(text for text in texts if text)
    if template not in TEMPLATES:
        raise ProxyError(f"model {target.model_group!r} is configured with prompt_template "
                         f"{template!r}; the templates are: {', '.join(TEMPLATES)}",
                         code="invalid_deployment_config")
    return render(template, body["messages"])[0]


def _text(position: int, message: dict) -> str:
    parts = message.get("content")
    if isinstance(parts, list) and any(part.get("type") != "text" for part in parts):
        raise InvalidRequestError(f"messages[{position}] has a non-text content part; this "
                                  f"model takes text only", param=f"messages[{position}].content",
                                  code="unsupported_content")
    return message_text(parts)


def text_prompt(body: dict[str, Any], target: Target) -> str:
    """A text completion's prompt as it is; with a `suffix`, wrapped in the model's
    fill-in-the-middle tokens (`fim_tokens` in the registry or the deployment's params)."""
    if body.get("suffix") is None:
        return body["prompt"]
    tokens = target.settings.get("fim_tokens") or target.info.get("fim_tokens")
    if not tokens:
        raise InvalidRequestError(f"model {target.model_group!r} has no fill-in-the-middle "
                                  f"tokens known to this proxy, so it cannot take a suffix",
                                  param="suffix", code="unsupported_params")
    return f"{tokens['prefix']}{body['prompt']}{tokens['suffix']}{body['suffix']}{tokens['middle']}"


def build_request(body: dict[str, Any], target: Target, headers: dict[str, str],
                  base: str, dedicated: bool, inputs: str | None = None) -> UpstreamRequest:
    """`{base}/generate[_stream]` on a TGI server, or the router's hf-inference route;
    `inputs` is the prompt when given (a text completion), else the messages rendered."""
    stream = bool(body.get("stream"))
    parameters = _parameters(body, stream)
    wire: dict[str, Any] = {"inputs": prompt(body, target) if inputs is None else inputs,
                            "parameters": parameters}
    if dedicated:
        url = f"{base}/generate_stream" if stream else f"{base}/generate"
    else:
        url = f"{base}/hf-inference/models/{quote(target.upstream_model, safe='/')}"
        if stream:
            wire["stream"] = True
        if parameters.get("do_sample"):  # the serverless cache would repeat a sampled answer
            headers = {**headers, "x-use-cache": "false"}
    return UpstreamRequest("POST", url, headers, wire, stream=stream)


def _parameters(body: dict[str, Any], stream: bool) -> dict[str, Any]:
    parameters = {
        "max_new_tokens": body.get("max_completion_tokens") or body.get("max_tokens"),
        "stop": stop_list(body.get("stop")) or None,
        "seed": body.get("seed"),
        "frequency_penalty": body.get("frequency_penalty"),
        **{knob: body.get(knob) for knob in TGI_KNOBS},
        **_decoding(body.get("temperature"), body.get("top_p")),
        "return_full_text": False,
        "details": True,
        "decoder_input_details": None if stream else True,
    }
    return {key: value for key, value in parameters.items() if value is not None}


def _decoding(temperature: float | None, top_p: float | None) -> dict[str, Any]:
    if temperature == 0 or top_p == 0:
        return {"do_sample": False}
    chosen = {"temperature": temperature, "top_p": None if top_p == 1 else top_p}
    chosen = {key: value for key, value in chosen.items() if value is not None}
    return {**chosen, "do_sample": True} if chosen else {}


def completion(payload: Any, body: dict[str, Any], target: Target) -> dict:
    item = payload[0] if isinstance(payload, list) and payload else payload
    if not isinstance(item, dict) or not isinstance(item.get("generated_text"), str):
        raise ValueError("the answer has no generated_text")
    details = item.get("details") or {}
    scanner = StopScanner(body.get("stop"))
    text = scanner.cut(item["generated_text"])
    prompt_tokens = len(details.get("prefill") or ()) or None  # None: the proxy counts it
    completion_tokens = details.get("generated_tokens")
    reason = "stop" if scanner.hit else finish_reason(details.get("finish_reason"))
    choice = {"index": 0, "message": {"role": "assistant", "content": text},
              "finish_reason": reason}
    return chat_completion(target.upstream_model, [choice],
                           usage_dict(prompt_tokens, completion_tokens))


class TextGenStreamTranslator(StreamTranslator):
    """TGI's stream: one unnamed event per token, no [DONE]; the last event carries
    `details` (finish reason, token counts). Special tokens (e.g. `</s>`) are not text."""

    def __init__(self, provider, stop: Any):
        self.provider = provider
        self.scanner = StopScanner(stop)

    def on_event(self, event: str | None, data: str) -> Iterable[dict]:
        message = loads(data)
        if "error" in message:
            raise self.provider.upstream_error(502, message, {})
        token = message["token"]
        text = self.scanner.feed("" if token.get("special") else token["text"])
        details = message.get("details")
        if details is None:
            return (_fragment(text, None),) if text else ()
        reason = "stop" if self.scanner.hit else finish_reason(details.get("finish_reason"))
        fragment = _fragment(text + self.scanner.flush(), reason)
        fragment["usage"] = usage_dict(details.get("input_length"),
                                       details.get("generated_tokens"))
        return (fragment,)


def _fragment(text: str, finish: str | None) -> dict:
    return {"choices": [{"index": 0, "delta": {"content": text} if text else {},
                         "finish_reason": finish}]}
