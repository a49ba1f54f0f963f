"""Emulators of OpenAI-compatible providers whose chat contract refuses fields it does not
define (`additionalProperties: false`): Mistral and Groq. Each is the OpenAI emulator on
the provider's path, held to the provider's own OpenAPI contract, with its way of
reporting a stream's usage."""
from __future__ import annotations

from tests.emulators.contracts import Contract
from tests.emulators.openai import OpenAIEmulator


class MistralEmulator(OpenAIEmulator):
    """POST /v1/chat/completions like api.mistral.ai; a stream's last chunk carries usage."""

    name = "mistral"
    contract = Contract("mistral/openapi.yaml")
    api_key = "mistral-test-key-0123456789abcdef"
    key_env, base_env, base_path = "MISTRAL_API_KEY", "MISTRAL_API_BASE", "/v1"
    paths = ("/v1/chat/completions",)

    def contract_pointer(self) -> str:
        return self.contract.request_body_pointer("/v1/chat/completions")

    def stream_usage(self, body: dict, usage: dict) -> dict | None:
        return {"choices": [], "usage": usage}

    def operation_pointer(self, path: str) -> str:
        """/v1/embeddings (and /v1/fim/completions) in Mistral's own contract."""
        return self.contract.request_body_pointer(f"/v1{path}")


class GroqEmulator(OpenAIEmulator):
    """POST /openai/v1/chat/completions like api.groq.com; a stream's usage comes in
    `x_groq.usage` at its end."""

    name = "groq"
    contract = Contract("groq/openapi.yaml")
    api_key = "gsk_test_groq_key_0123456789abcdef"
    key_env, base_env, base_path = "GROQ_API_KEY", "GROQ_API_BASE", "/openai/v1"
    paths = ("/openai/v1/chat/completions",)

    def contract_pointer(self) -> str:
        return self.contract.request_body_pointer("/openai/v1/chat/completions")

    def stream_usage(self, body: dict, usage: dict) -> dict | None:
        return {"choices": [], "x_groq": {"id": "req_emu", "usage": usage}}


class TogetherEmulator(OpenAIEmulator):
    """POST /v1/chat/completions like api.together.xyz (its contract takes extra fields but
    has no max_completion_tokens); a stream's last chunk carries usage."""

    name = "together"
    contract = Contract("together/openapi.yaml")
    api_key = "together-test-key-0123456789abcdef"
    key_env, base_env, base_path = "TOGETHER_API_KEY", "TOGETHER_API_BASE", "/v1"
    paths = ("/v1/chat/completions",)

    def contract_pointer(self) -> str:
        return self.contract.request_body_pointer("/chat/completions")

    def stream_usage(self, body: dict, usage: dict) -> dict | None:
        return {"choices": [], "usage": usage}
