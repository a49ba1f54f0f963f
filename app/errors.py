"""Errors the service raises, each already shaped as an OpenAI error body.

They live outside the web layer so that library users (`from app import completion`)
get the same status, type and code as HTTP clients do.
"""
from __future__ import annotations


class ProxyError(Exception):
    """Base error: an HTTP status plus OpenAI's {"error": {message, type, param, code}}."""

    status = 500
    type = "server_error"
    code: str | None = None

    def __init__(self, message: str, *, status: int | None = None, type: str | None = None,
                 param: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        if type is not None:
            self.type = type
        if code is not None:
            self.code = code
        self.param = param
        self.headers = dict(headers or {})

    def to_dict(self) -> dict:
        return {"error": {"message": self.message, "type": self.type,
                          "param": self.param, "code": self.code}}


class InvalidRequestError(ProxyError):
    status = 400
    type = "invalid_request_error"


class ModelNotFoundError(ProxyError):
    status = 404
    type = "invalid_request_error"
    code = "model_not_found"


class MissingCredentialError(ProxyError):
    """The operator has not configured the key a provider needs; no upstream call is made."""

    status = 401
    type = "authentication_error"
    code = "missing_api_key"


class ClientDisconnected(ProxyError):
    """The client hung up before its stream ended (recorded as 499, as nginx does)."""

    status = 499
    type = "client_disconnected"
    code = "client_disconnected"

    def __init__(self, message: str = "the client disconnected before the stream ended"):
        super().__init__(message)


class UnsupportedParamsError(InvalidRequestError):
    code = "unsupported_params"


class UpstreamError(ProxyError):
    """A provider answered with an error, or could not be reached.

    `upstream_status` keeps what the provider said (None when it said nothing) so that
    retries and fallbacks can judge the failure; `status` is what our client sees. The type
    is one OpenAI clients know: `api_error` is what OpenAI reports for its own server faults.
    """

    type = "api_error"

    def __init__(self, message: str, *, provider: str, upstream_status: int | None = None,
                 retry_after: float | None = None, **kwargs):
        super().__init__(message, **kwargs)
        self.provider = provider
        self.upstream_status = upstream_status
        self.retry_after = retry_after
