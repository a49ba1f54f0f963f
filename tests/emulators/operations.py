"""The embedding and text completion operations of the OpenAI-shaped emulators (OpenAI,
Azure, the compatible family, Mistral's FIM route, DeepSeek's FIM beta route): answers in
OpenAI's wire format, held to OpenAI's response schemas."""
from __future__ import annotations

import base64
import struct
import time

from tests.emulators.model import complete_text, count_words, embed_text, stream_pieces
from tests.emulators.server import Reply, sse

# Vector lengths of the models the tests name; other models answer with DEFAULT_DIMENSIONS.
DIMENSIONS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072,
              "text-embedding-ada-002": 1536, "mistral-embed": 1024}
DEFAULT_DIMENSIONS = 16


def text_of(item) -> str:
    """An input as text; token ids read as words `t<id>`, one token each."""
    return item if isinstance(item, str) else " ".join(f"t{token}" for token in item)


def inputs_of(given) -> list:
    if isinstance(given, str) or (given and all(isinstance(i, int) for i in given)):
        return [given]
    return list(given)


def embedding_reply(body: dict, model: str, dimensions: int | None) -> dict:
    """OpenAI's CreateEmbeddingResponse for the body's inputs."""
    inputs = inputs_of(body["input"])
    size = dimensions or DIMENSIONS.get(model, DEFAULT_DIMENSIONS)
    data = []
    for index, item in enumerate(inputs):
        vector = embed_text(text_of(item), size)
        if body.get("encoding_format") == "base64":
            vector = base64.b64encode(struct.pack(f"<{size}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": vector})
    tokens = sum(count_words(text_of(item)) for item in inputs)
    return {"object": "list", "data": data, "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


def text_generations(body: dict) -> list:
    """One generation per prompt and per `n`, in OpenAI's order (prompt-major)."""
    prompts = inputs_of(body["prompt"])
    stop = body.get("stop")
    stop = [stop] if isinstance(stop, str) else stop
    return [complete_text(text_of(prompt), body.get("suffix"), body.get("max_tokens"), stop)
            for prompt in prompts for _ in range(body.get("n") or 1)]


def text_reply(body: dict, model: str, generations: list) -> dict:
    """OpenAI's CreateCompletionResponse (`echo` puts the prompt before the text)."""
    prompts = inputs_of(body["prompt"])
    per_prompt = len(generations) // len(prompts)
    choices = []
    for index, g in enumerate(generations):
        text = (text_of(prompts[index // per_prompt]) if body.get("echo") else "") + g.text
        choices.append({"text": text, "index": index, "logprobs": None,
                        "finish_reason": g.finish})
    prompt_tokens = sum(count_words(text_of(p)) for p in prompts)
    completion_tokens = sum(g.completion_tokens for g in generations)
    return {"id": f"cmpl-emu{int(time.time() * 1000)}", "object": "text_completion",
            "created": int(time.time()), "model": model, "system_fingerprint": "fp_emulator",
            "choices": choices, "usage": {"prompt_tokens": prompt_tokens,
                                          "completion_tokens": completion_tokens,
                                          "total_tokens": prompt_tokens + completion_tokens}}


def text_stream(body: dict, model: str, generations: list):
    """The streamed form: text_completion chunks, then (with include_usage) usage, [DONE]."""
    whole = text_reply(body, model, generations)
    include_usage = (body.get("stream_options") or {}).get("include_usage")
    for index, g in enumerate(generations):
        for piece in stream_pieces(g.text):
            yield sse({**whole, "choices": [{"text": piece, "index": index, "logprobs": None,
                                             "finish_reason": None}], "usage": None})
        yield sse({**whole, "choices": [{"text": "", "index": index, "logprobs": None,
                                         "finish_reason": g.finish}], "usage": None})
    if include_usage:
        yield sse({**whole, "choices": []})
    yield b"data: [DONE]\n\n"


def fim_reply(body: dict, model: str, generation) -> dict:
    """Mistral's FIM answer: a chat.completion whose message is the middle."""
    prompt_tokens = count_words(body["prompt"]) + count_words(body.get("suffix") or "")
    return {"id": f"fim-emu{int(time.time() * 1000)}", "object": "chat.completion",
            "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": generation.text,
                                                 "tool_calls": None, "prefix": False},
                         "finish_reason": generation.finish}],
            "usage": {"prompt_tokens": prompt_tokens,
                      "completion_tokens": generation.completion_tokens,
                      "total_tokens": prompt_tokens + generation.completion_tokens}}


def fim_stream(body: dict, model: str, generation):
    whole = fim_reply(body, model, generation)
    base = {k: whole[k] for k in ("id", "object", "created", "model")}
    base["object"] = "chat.completion.chunk"
    for piece in stream_pieces(generation.text):
        yield sse({**base, "choices": [{"index": 0, "delta": {"content": piece},
                                        "finish_reason": None}]})
    yield sse({**base, "choices": [{"index": 0, "delta": {"content": ""},
                                    "finish_reason": generation.finish}],
               "usage": whole["usage"]})
    yield b"data: [DONE]\n\n"


def stream_or_body(body: dict, whole: dict, events) -> Reply:
    if body.get("stream"):
        return Reply(200, events=events, content_type="text/event-stream")
    return Reply(200, whole)
