"""Embeddings through the attempt plan: an input over the model's token limit is refused
before any call, and a batch larger than the provider's limits (inputs or tokens per call)
is split, sent concurrently within the attempt's deadline and merged in input order."""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any

from app.cache.options import cache_options
from app.cache.types import CacheRequest
from app.errors import InvalidRequestError
from app.providers.base import Provider, Target
from app.providers.embedding_format import embedding_list
from app.service.accounting import Bill
from app.service.operations import Operation, OperationView
from app.service.client_connection import take_client_connection
from app.service.compatibility import check_configured, check_requested, embedding_facts
from app.service.outcome import Outcome, Trail
from app.service.upstream import timeout_error
from app.usage.tokens import count_input

# Inputs are counted with the tokenizer of OpenAI's embedding models (cl100k_base), for the
# token limits and batches, and for usage where a provider reports none.
EMBEDDING_TOKENIZER = "text-embedding-3-small"

# Batches of one request sent at once (the rest queue behind them); threads are greenlets
# under the gevent worker.
_BATCHES = ThreadPoolExecutor(max_workers=32, thread_name_prefix="embed-batch")


def batches(tokens: list[int], size: int | None, token_limit: int | None) -> list[range]:
    """Consecutive index ranges, each within `size` inputs and `token_limit` tokens."""
    ranges, start, total = [], 0, 0
    for index, count in enumerate(tokens):
        full = (size is not None and index - start >= size) or (
            token_limit is not None and index > start and total + count > token_limit)
        if full:
            ranges.append(range(start, index))
            start, total = index, 0
        total += count
    ranges.append(range(start, len(tokens)))
    return ranges


class Embeddings(Operation):
    """One request's embeddings; `tokens` counts each input sent (the proxy's tokenizer)."""

    name = "embeddings"

    def __init__(self, tokens: list[int]):
        self.tokens = tokens

    def configured_fallbacks(self, settings, requested: str) -> list[str]:
        """The model's own configured fallbacks (checked at start), never the defaults,
        which are chat models."""
        return settings.fallbacks.get(requested, [])

    def prepare(self, provider: Provider, params: dict[str, Any],
                target: Target) -> tuple[Any, dict[str, Any]]:
        mode = target.settings.get("mode") or target.info.get("mode")
        if mode not in (None, "embedding"):
            raise InvalidRequestError(f"model {target.model_group!r} is a {mode} model, not an "
                                      f"embedding model", param="model",
                                      code="unsupported_operation")
        limit = target.settings.get("max_input_tokens") or target.info.get("max_input_tokens")
        for index, count in enumerate(self.tokens):
            if limit and count > limit:
                raise InvalidRequestError(
                    f"Invalid 'input': the input at index {index} has {count} tokens, more than "
                    f"model {target.model_group!r} takes ({limit}).", param="input",
                    code="context_length_exceeded")
        view = OperationView(provider, provider.build_embedding_request,
                             provider.parse_embedding_response)
        view.unsupported_params_for = lambda body, target: []   # nothing of chat's applies
        return view, params

    def call(self, upstream, provider, params: dict[str, Any], target: Target, timeout: float,
             outcome: Outcome) -> dict:
        ranges = batches(self.tokens, provider.embedding_batch_size,
                         provider.embedding_batch_tokens)
        if len(ranges) == 1:
            return upstream.call(provider, params, target, timeout, outcome)
        deadline = time.monotonic() + timeout
        parts = [Outcome(None, target) for _ in ranges]
        futures = [_BATCHES.submit(upstream.call, provider,
                                   {**params, "input": params["input"][r.start:r.stop]},
                                   target, timeout, part) for r, part in zip(ranges, parts)]
        done, pending = wait(futures, timeout=max(0.0, deadline - time.monotonic()))
        for future in pending:
            future.cancel()
        if pending:
            raise timeout_error(provider.name, timeout)
        answers = [future.result() for future in futures]   # the first failure is raised
        outcome.upstream_seconds += max(part.upstream_seconds for part in parts)
        return merged(answers)

    def settle(self, target: Target, params: dict[str, Any], response: dict) -> Bill:
        """The provider's input token count, or the proxy's where it reported none."""
        reported = response["usage"].get("prompt_tokens")
        tokens = sum(self.tokens) if reported is None else reported
        response["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
        return Bill(dict(response["usage"]), reported is None, target)


def merged(answers: list[dict]) -> dict:
    """Batch answers as one, vectors renumbered in input order."""
    vectors = [item["embedding"] for answer in answers for item in answer["data"]]
    counts = [answer["usage"].get("prompt_tokens") for answer in answers]
    tokens = None if None in counts else sum(counts)
    return embedding_list(answers[0]["model"], vectors, tokens)


class EmbeddingService:
    """An embeddings request end to end: the per-input cache, then the attempt plan for the
    inputs it did not hold, answers merged in input order."""

    def __init__(self, service):
        self.service = service   # the CompletionService: its runner, cache and settings
        check_configured(service.router, service.settings.fallbacks)
        self.vectors = None
        if getattr(service.cache, "backend", None) is not None:   # the proxy's own cache
            from app.cache.embeddings import VectorCache   # imported only when caching is on
            self.vectors = VectorCache(service.cache)

    def run(self, body: dict[str, Any], context, trail: Trail) -> Outcome:
        params, options = self.service._split(body)
        requested = params.pop("model")
        connection = take_client_connection(params, requested, self.service.router)
        if embedding_facts(self.service.router, requested)[0] == "embedding":
            check_requested(self.service.router, requested, options.get("fallbacks"),
                            params.get("dimensions"))
        inputs = params["input"]
        request = None if connection or self.vectors is None else self._cache_request(
            requested, params, options, context)
        found = self.vectors.lookup(request, inputs) if request else [None] * len(inputs)
        missing = [i for i, entry in enumerate(found) if entry is None]
        if missing:
            sent = {**params, "input": [inputs[i] for i in missing]}
            tokens = [count_input(EMBEDDING_TOKENIZER, item) for item in sent["input"]]
            outcome = self.service.runner(connection).run(
                requested, sent, options, trail, context.models, Embeddings(tokens))
            if request:
                self._store(request, sent["input"], outcome, tokens)
        else:
            first = found[0]
            target = Target(requested, first["model"], first["provider"], first["model"], None,
                            None, "cache")
            outcome = Outcome(embedding_list(first["model"], [], 0), target,
                              bill=Bill.free({"prompt_tokens": 0, "total_tokens": 0}))
        outcome.response = self._answer(outcome.response, found, missing)
        outcome.saved_cost = sum(entry["cost"] for entry in found if entry)
        outcome.cached_inputs = len(inputs) - len(missing)
        outcome.cache = ("off" if request is None else "miss" if len(missing) == len(inputs)
                         else "hit" if not missing else "partial")
        return outcome

    def _cache_request(self, requested: str, params: dict[str, Any], options: dict[str, Any],
                       context) -> CacheRequest | None:
        controls = cache_options(options.get("cache"))
        if controls.get("no-cache") and controls.get("no-store"):
            return None
        keyed = {name: value for name, value in params.items() if name != "input"}
        return CacheRequest(requested, keyed, controls, context.key_id)

    def _store(self, request: CacheRequest, inputs: list, outcome: Outcome,
               tokens: list[int]) -> None:
        """Each new vector with its share of the bill (the cost per token of this answer)."""
        bill = outcome.bill
        per_token = bill.cost / bill.counts.prompt if bill.counts.prompt else 0.0
        self.vectors.store(request, inputs, outcome.response, tokens, per_token,
                           outcome.target.model, outcome.target.provider)

    @staticmethod
    def _answer(fresh: dict, found: list[dict | None], missing: list[int]) -> dict:
        """The whole batch in input order: stored vectors where the cache had them, the
        upstream's for the rest; usage counts every input, billed or not."""
        vectors = [entry["embedding"] if entry else None for entry in found]
        for position, item in zip(missing, fresh["data"]):
            vectors[position] = item["embedding"]
        cached = sum(entry["tokens"] for entry in found if entry)
        return embedding_list(fresh["model"], vectors,
                              cached + (fresh["usage"].get("prompt_tokens") or 0))


def without_vectors(answer: dict) -> dict:
    """An embeddings answer as events carry it to the ledger and integrations: each vector's
    length instead of its values (kilobytes of floats tell a log reader nothing)."""
    data = [{"object": "embedding", "index": item["index"],
             "dimensions": len(item["embedding"])} for item in answer["data"]]
    return {**answer, "data": data}
