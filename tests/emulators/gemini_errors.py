"""Gemini's error answers in Google's RPC shape, as generativelanguage.googleapis.com sends
them: a bad key is HTTP 400 API_KEY_INVALID, a missing one 403, quota 429 with RetryInfo."""
from __future__ import annotations

from tests.emulators.server import Reply

INTERNAL = ("An internal error has occurred. Please retry or report in "
            "https://developers.generativeai.google/guide/troubleshooting")


def google_error(code: int, status: str, message: str, details: list | None = None) -> Reply:
    """A Google RPC error answer, as generativelanguage.googleapis.com sends it."""
    error = {"code": code, "message": message, "status": status}
    if details is not None:
        error["details"] = details
    return Reply(code, {"error": error})


def rate_limited(delay: str = "30s") -> Reply:
    return google_error(429, "RESOURCE_EXHAUSTED", "You exceeded your current quota, please "
                        "check your plan and billing details.", [
                            {"@type": "type.googleapis.com/google.rpc.QuotaFailure",
                             "violations": [{"quotaMetric": "generativelanguage.googleapis.com/"
                                             "generate_content_free_tier_requests",
                                             "quotaId": "GenerateRequestsPerMinutePerProject"}]},
                            {"@type": "type.googleapis.com/google.rpc.Help", "links": [
                                {"description": "Learn more about Gemini API quotas",
                                 "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]},
                            {"@type": "type.googleapis.com/google.rpc.RetryInfo",
                             "retryDelay": delay}])


def overloaded() -> Reply:
    return google_error(503, "UNAVAILABLE", "The model is overloaded. Please try again later.")


def internal() -> Reply:
    return google_error(500, "INTERNAL", INTERNAL)


def bad_key() -> Reply:
    message = "API key not valid. Please pass a valid API key."
    return google_error(400, "INVALID_ARGUMENT", message, [
        {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
         "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}},
        {"@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US",
         "message": message}])


def no_key() -> Reply:
    return google_error(403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers "
                        "(callers without established identity). Please use API Key or other "
                        "form of API consumer identity to call this API.")
