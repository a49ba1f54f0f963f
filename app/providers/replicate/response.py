"""A Replicate prediction -> OpenAI chat.completion, or the error it ended with.

A prediction has no finish reason: "length" is reported when the output reached the
max-tokens limit, "stop" otherwise. The answer is cut at the first `stop` sequence here,
whether the model stopped on it, went past it, or never took `stop_sequences` at all.

Usage comes from `metrics.input_token_count` / `output_token_count` when the model reports
them; counts it does not report are left None, for the proxy to count with its tokenizer.
"""
from __future__ import annotations

import re
from typing import Any

from app.errors import UpstreamError
from app.providers.base import StopScanner, chat_completion, usage_dict
from app.providers.replicate.request import ReplicateModel, max_tokens
from app.usage.tokens import count_text

RUNNING = ("starting", "processing")
ENDED_BADLY = ("failed", "canceled", "aborted")
_HINT = re.compile(r"available in (\d+(?:\.\d+)?) second")


def finish_reason(stopped: bool, completion_tokens: int, body: dict[str, Any]) -> str:
    limit = max_tokens(body)
    return "length" if not stopped and limit and completion_tokens >= limit else "stop"


def backoff(attempt: int) -> float:
    """Seconds before poll number `attempt` (1, 2, ...): 0.25 doubling up to 2."""
    return min(2.0, 0.25 * 2 ** max(0, attempt - 1))


def output_text(output: Any) -> str:
    """LLM output is a list of text chunks (a string from some models; null when empty)."""
    if output is None or isinstance(output, str):
        return output or ""
    if not isinstance(output, list) or not all(isinstance(piece, str) for piece in output):
        raise ValueError("the prediction output is not text")
    return "".join(output)


def _count(metrics: dict[str, Any], key: str) -> int | None:
    value = metrics.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def completion(prediction: dict[str, Any], body: dict[str, Any], model: ReplicateModel,
               model_name: str) -> dict:
    text = output_text(prediction.get("output"))
    stops = StopScanner(body.get("stop"))
    content = stops.cut(text)
    metrics = prediction.get("metrics") if isinstance(prediction.get("metrics"), dict) else {}
    completion_tokens = _count(metrics, "output_token_count")
    produced = completion_tokens if completion_tokens is not None else count_text(model_name, text)
    choice = {"index": 0, "message": {"role": "assistant", "content": content},
              "logprobs": None, "finish_reason": finish_reason(stops.hit, produced, body)}
    return chat_completion(model_name, [choice],
                           usage_dict(_count(metrics, "input_token_count"), completion_tokens))


def prediction_error(provider: str, status: int, prediction: dict[str, Any]) -> UpstreamError:
    """A prediction that failed, was canceled or aborted: a 502 with Replicate's message.
    (The HTTP answer itself was a success, so the shared status mapping does not apply.)"""
    state = prediction.get("status")
    message = prediction.get("error") or ("no error message" if state == "failed"
                                          else f"the prediction was {state}")
    return UpstreamError(f"{provider} prediction {prediction.get('id', '')} {state}: {message}",
                         provider=provider, upstream_status=status, status=502,
                         code=f"prediction_{state}")


def retry_hint(payload: Any) -> float | None:
    """Seconds from a 429's "Expected available in N second(s)", when no Retry-After came."""
    detail = payload.get("detail") if isinstance(payload, dict) else None
    found = _HINT.search(detail) if isinstance(detail, str) else None
    return float(found.group(1)) if found else None
