"""The text completions face: OpenAI's legacy /completions, to and from the service's
chat format.

The service's request carries the prompt twice: as `prompt` for a model's own text API,
and as one user message for a chat model (and for counting tokens). Answers come back as
chat.completion (or chunks) and leave as `text_completion`, streamed in the same shape.
"""
from __future__ import annotations

from typing import Any, Iterator, Mapping

from app.faces import Face, FaceRequest
from app.faces.chat import sse_frames
from app.providers.embedding_format import decoded
from app.service.operations import TEXT
from app.service.outcome import Outcome


def prompt_text(prompt: Any) -> str:
    """The prompt as one text (token ids decoded with cl100k_base; several prompts joined,
    though only a completion model's own API takes several)."""
    if isinstance(prompt, str):
        return prompt
    if all(isinstance(item, int) for item in prompt):
        return decoded(prompt, "prompt")
    return "\n".join(prompt_text(item) for item in prompt)


def to_service(body: dict[str, Any]) -> dict[str, Any]:
    request = dict(body)
    prompt = request["prompt"]
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        request["prompt"] = prompt = prompt[0]
    request["messages"] = [{"role": "user", "content": prompt_text(prompt)}]
    return request


def to_client(answer: dict[str, Any]) -> dict[str, Any]:
    result = {"id": text_id(answer["id"]), "object": "text_completion",
              "created": answer["created"], "model": answer["model"],
              "choices": [text_choice(choice) for choice in answer["choices"]],
              "usage": answer.get("usage")}
    if answer.get("system_fingerprint"):
        result["system_fingerprint"] = answer["system_fingerprint"]
    return result


def chunks_to_client(chunks: Iterator[dict]) -> Iterator[dict]:
    """chat.completion.chunk -> the text_completion chunks OpenAI streams (usage chunk kept)."""
    for chunk in chunks:
        choices = [{"text": (choice.get("delta") or {}).get("content") or "",
                    "index": choice.get("index", 0), "logprobs": text_logprobs(choice.get("logprobs")),
                    "finish_reason": choice.get("finish_reason")}
                   for choice in chunk.get("choices") or ()]
        out = {"id": text_id(chunk["id"]), "object": "text_completion",
               "created": chunk["created"], "model": chunk["model"], "choices": choices}
        if "usage" in chunk:
            out["usage"] = chunk["usage"]
        yield out


def text_id(chat_id: str) -> str:
    return "cmpl-" + chat_id.removeprefix("chatcmpl-").removeprefix("cmpl-")


def text_choice(choice: dict[str, Any]) -> dict[str, Any]:
    message = choice.get("message") or {}
    return {"text": message.get("content") or "", "index": choice.get("index", 0),
            "logprobs": text_logprobs(choice.get("logprobs")),
            "finish_reason": choice.get("finish_reason")}


def text_logprobs(logprobs: Any) -> Any:
    """Chat logprobs ({content: [{token, logprob, top_logprobs}]}) in /completions' shape
    ({tokens, token_logprobs, top_logprobs, text_offset}); a text API's own pass as they are."""
    if not isinstance(logprobs, dict) or "content" not in logprobs:
        return logprobs
    entries = logprobs.get("content") or []
    offsets, offset = [], 0
    for entry in entries:
        offsets.append(offset)
        offset += len(entry.get("token") or "")
    return {"tokens": [e.get("token") for e in entries],
            "token_logprobs": [e.get("logprob") for e in entries],
            "top_logprobs": [{t["token"]: t["logprob"] for t in e.get("top_logprobs") or ()}
                             for e in entries],
            "text_offset": offsets}


class CompletionsFace(Face):
    name = "completions"
    operation = TEXT

    def service_request(self, body: dict[str, Any], headers: Mapping[str, str]) -> FaceRequest:
        return FaceRequest(body, to_service(body))

    def answer(self, outcome: Outcome, request: FaceRequest) -> dict[str, Any]:
        return to_client(outcome.response)

    def stream(self, outcome: Outcome, request: FaceRequest) -> Iterator[bytes]:
        return sse_frames(chunks_to_client(outcome.chunks))


COMPLETIONS = CompletionsFace()
