"""Provider failures as the proxy reports them: the one mapping from a provider's HTTP status
and error to the OpenAI-style error a client sees, shared by every provider module."""
from __future__ import annotations

from typing import TYPE_CHECKING, Mapping

from app.errors import InvalidRequestError, UpstreamError

if TYPE_CHECKING:
    from app.providers.base import Target


def unsupported_operation(provider: str, target: Target, operation: str) -> InvalidRequestError:
    return InvalidRequestError(f"model {target.model_group!r} (provider {provider}) has no "
                               f"{operation} API", param="model", code="unsupported_operation")


# 402 (credits exhausted) is reported as OpenAI reports an exhausted quota: 429.
_STATUS_MAP = {400: 400, 401: 401, 402: 429, 403: 403, 404: 404, 408: 504, 413: 413, 422: 400,
               424: 502, 429: 429}  # 424: the upstream's own dependency (the model) failed
# Only types OpenAI's own API reports (its clients and SDKs know them).
_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error",
                403: "permission_error", 404: "not_found_error", 413: "invalid_request_error",
                429: "rate_limit_error", 502: "api_error", 503: "api_error",
                504: "timeout_error"}
QUOTA = "insufficient_quota"


def upstream_error(provider: str, status: int, message: str | None, code: str | None = None,
                   retry_after: float | None = None, param: str | None = None) -> UpstreamError:
    """The one mapping from a provider's HTTP status to ours (5xx -> 502, 408 -> 504, ...)."""
    mapped = _STATUS_MAP.get(status, 502 if status >= 500 else status)
    text = f"{provider} returned HTTP {status}: {message or 'no error message'}"
    headers = {"Retry-After": str(max(1, round(retry_after)))} if retry_after and mapped == 429 else {}
    if status == 402 or code == QUOTA:
        error_type, code = QUOTA, QUOTA
    else:
        error_type = _ERROR_TYPES.get(mapped, "api_error")
    return UpstreamError(text, provider=provider, upstream_status=status, status=mapped,
                         type=error_type, code=code, param=param, retry_after=retry_after,
                         headers=headers)


def in_band_error(provider: str, status: int, message: str) -> UpstreamError:
    """A failure the provider reported inside a successful HTTP answer (a failed generation's
    finish reason, an error event in a stream): `status` is ours for the client to see; the
    message claims no HTTP status the provider never sent."""
    return UpstreamError(f"{provider} reported a failed generation: {message}",
                         provider=provider, upstream_status=None, status=status,
                         type=_ERROR_TYPES.get(status, "api_error"))


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from `retry-after-ms` or `Retry-After` (seconds; HTTP dates ignored)."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        raw = headers.get(name)
        if raw:
            try:
                return max(0.0, float(raw) * scale)
            except ValueError:
                continue
    return None
