"""Emulators of OpenAI-compatible providers, each the OpenAI emulator on the provider's path
held to the provider's own OpenAPI contract (Mistral's and Groq's refuse fields they do not
define, `additionalProperties: false`), with its way of reporting a stream's usage."""
from __future__ import annotations

import re

from tests.emulators.contracts import Contract
from tests.emulators.openai import OpenAIEmulator, openai_error
from tests.emulators.server import Call, Reply

MISTRAL_CALL_ID = re.compile(r"[A-Za-z0-9]{9}")


class CompatibleEmulator(OpenAIEmulator):
    """One provider: its contract, the path the proxy calls (`base_path` + `chat_path`) and the
    route as its contract names it. A stream's last chunk carries usage unasked."""

    chat_path = "/chat/completions"
    contract_route = "/chat/completions"

    @property
    def paths(self) -> tuple[str, ...]:
        return (self.base_path + self.chat_path,)

    def contract_pointer(self) -> str:
        return self.contract.request_body_pointer(self.contract_route)

    def stream_usage(self, body: dict, usage: dict) -> dict | None:
        return {"choices": [], "usage": usage}

    def operation_pointer(self, path: str) -> str:
        """/v1/embeddings (and /v1/fim/completions) in Mistral's own contract."""
        return self.contract.request_body_pointer(f"/v1{path}")


class MistralEmulator(CompatibleEmulator):
    name = "mistral"
    contract = Contract("mistral/openapi.yaml")
    contract_route = "/v1/chat/completions"
    api_key = "mistral-test-key-0123456789abcdef"
    key_env, base_env, base_path = "MISTRAL_API_KEY", "MISTRAL_API_BASE", "/v1"

    def handle(self, call: Call) -> Reply:
        """The live API also refuses a tool-call id that is not 9 letters and digits (not in
        its contract: WIRE-FORMATS §3.9)."""
        problems = call_id_problems(call.body) if call.path in self.paths else []
        if problems:
            self.check_contract(problems, f"request to {call.path}")
            return openai_error(400, problems[0], "invalid_request_error")
        return super().handle(call)


def call_id_problems(body) -> list[str]:
    """Mistral's refusal of each tool-call id outside its form."""
    messages = body.get("messages") if isinstance(body, dict) else None
    ids = [call.get("id") for m in messages or () for call in m.get("tool_calls") or ()]
    ids += [m["tool_call_id"] for m in messages or () if "tool_call_id" in m]
    return [f"Tool call id was {i} but must be a-z, A-Z, 0-9, with a length of 9."
            for i in ids if not isinstance(i, str) or not MISTRAL_CALL_ID.fullmatch(i)]


class GroqEmulator(CompatibleEmulator):
    """A stream's usage comes in `x_groq.usage` at its end."""

    name = "groq"
    contract = Contract("groq/openapi.yaml")
    contract_route = "/openai/v1/chat/completions"
    api_key = "gsk_test_groq_key_0123456789abcdef"
    key_env, base_env, base_path = "GROQ_API_KEY", "GROQ_API_BASE", "/openai/v1"

    def stream_usage(self, body: dict, usage: dict) -> dict | None:
        return {"choices": [], "x_groq": {"id": "req_emu", "usage": usage}}


class TogetherEmulator(CompatibleEmulator):
    """Its contract takes extra fields but has no max_completion_tokens."""

    name = "together"
    contract = Contract("together/openapi.yaml")
    api_key = "together-test-key-0123456789abcdef"
    key_env, base_env, base_path = "TOGETHER_API_KEY", "TOGETHER_API_BASE", "/v1"
