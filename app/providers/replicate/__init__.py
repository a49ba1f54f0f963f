"""Replicate predictions (`replicate/<owner>/<name>[:<version>]`, `replicate/<name>:<version>`).

Non-streaming: create the prediction with `Prefer: wait` (Replicate holds the request until
the prediction ends or its wait runs out), then poll `urls.get` with backoff until it
succeeds, fails or is canceled; the service bounds the total by the request's deadline.
The poll number travels in the FollowUp's request (`UpstreamRequest.attempt`), so the
provider keeps no state. Streaming: create with `"stream": true`, then read `urls.stream`
as an event stream (stream.py).

Errors are problem details `{"title","detail","status"}`: the base class reads `detail`
and the shared status mapping applies (422 -> 400); a 429's "Expected available in N
second(s)" stands in for a missing Retry-After. A prediction that ends failed, canceled or
aborted is a 502 with Replicate's message (response.py).
"""
from __future__ import annotations

from typing import Any, Mapping

from app.errors import InvalidRequestError, UpstreamError
from app.providers.base import (FollowUp, Provider, StreamTranslator, Target, UpstreamRequest,
                                UpstreamResponse, params_outside)
from app.providers.upstream_errors import retry_after_seconds, upstream_error
from app.providers.replicate.request import ALWAYS, FAMILY_PARAMS, create_request, resolve
from app.providers.replicate.response import (ENDED_BADLY, RUNNING, backoff, completion,
                                              prediction_error, retry_hint)
from app.providers.replicate.stream import ReplicateStreamTranslator


def api_root(base: str) -> str:
    """`REPLICATE_API_BASE` is the host (https://api.replicate.com); a trailing /v1 is kept."""
    base = base.rstrip("/")
    return base if base.endswith("/v1") else f"{base}/v1"


class ReplicateProvider(Provider):
    name = "replicate"
    key_env = ("REPLICATE_API_TOKEN", "REPLICATE_API_KEY")
    base_env = "REPLICATE_API_BASE"
    default_base = "https://api.replicate.com"
    # Tools, logit_bias, logprobs, n > 1 and response_format have no Replicate counterpart;
    # which sampling params a model takes depends on its family (unsupported_params_for).
    supported_params = ALWAYS.union(*FAMILY_PARAMS.values())

    def unsupported_params_for(self, body: Mapping[str, Any], target: Target) -> list[str]:
        return params_outside(body, resolve(target).honoured)

    def headers(self, target: Target) -> dict[str, str]:
        return {"Authorization": f"Bearer {target.api_key}"} if target.api_key else {}

    def build_request(self, body: dict[str, Any], target: Target) -> UpstreamRequest:
        url, payload = create_request(body, resolve(target), api_root(target.api_base))
        headers = {**self.headers(target), "Content-Type": "application/json"}
        if not body.get("stream"):
            headers["Prefer"] = "wait"
        return UpstreamRequest("POST", url, headers, payload)

    def parse_response(self, response: UpstreamResponse, body: dict[str, Any],
                       target: Target) -> dict | FollowUp:
        prediction = response.payload
        if not isinstance(prediction, dict):
            raise ValueError("the prediction is not a JSON object")
        status = prediction.get("status")
        if status in ENDED_BADLY:
            raise prediction_error(self.name, response.status, prediction)
        if body.get("stream"):
            return self._stream_follow_up(prediction, target)
        if status == "succeeded":
            return completion(prediction, body, resolve(target), target.upstream_model)
        if status in RUNNING:
            attempt = (response.request.attempt if response.request else 0) + 1
            poll = UpstreamRequest("GET", prediction["urls"]["get"], self.headers(target),
                                   attempt=attempt)
            return FollowUp(poll, backoff(attempt))
        raise ValueError(f"unknown prediction status {status!r}")

    def _stream_follow_up(self, prediction: dict[str, Any], target: Target) -> FollowUp:
        url = (prediction.get("urls") or {}).get("stream")
        if not url:
            raise InvalidRequestError(
                f"Replicate model {target.model_group!r} does not stream its output; send the "
                f"request without stream", param="stream", code="stream_unsupported")
        headers = {**self.headers(target), "Accept": "text/event-stream",
                   "Cache-Control": "no-store"}
        return FollowUp(UpstreamRequest("GET", url, headers, stream=True))

    def stream_translator(self, body: dict[str, Any], target: Target) -> StreamTranslator:
        return ReplicateStreamTranslator(self.name, body, target.upstream_model)

    def upstream_error(self, status: int, payload: Any,
                       headers: Mapping[str, str]) -> UpstreamError:
        wait = retry_after_seconds(headers)
        if wait is None and status == 429:
            wait = retry_hint(payload)
        return upstream_error(self.name, status, self.error_message(payload),
                              self.error_code(payload), wait)
