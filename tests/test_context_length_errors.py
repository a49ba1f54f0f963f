"""Context-length errors in each provider's own wording: OpenAI's 400
`context_length_exceeded`, and the request moves on to `context_window_fallbacks`."""
from __future__ import annotations

import openai
import pytest

from tests.emulators.anthropic import AnthropicEmulator, anthropic_error
from tests.emulators.cohere import CohereEmulator, cohere_error
from tests.emulators.gemini import GeminiEmulator
from tests.emulators.gemini_errors import google_error
from tests.emulators.huggingface import HuggingFaceEmulator, hf_error
from tests.emulators.openai import AzureEmulator, OpenAIEmulator, openai_error
from tests.emulators.server import Fault, Reply
from tests.huggingface_fixtures import CHAT_MODEL
from tests.provider_fixtures import proxy_app, sdk_for

USER = [{"role": "user", "content": "a very long prompt"}]
TGI_TOO_LONG = ("Input validation error: `inputs` tokens + `max_new_tokens` must be <= 4096. "
                "Given: 4000 `inputs` tokens and 200 `max_new_tokens`")

# provider: (emulator, small model, larger model, the provider's answer to a too-long prompt)
CASES = {
    "anthropic": (AnthropicEmulator, "claude-3-5-haiku-20241022", "claude-sonnet-4-5",
                  anthropic_error(400, "invalid_request_error",
                                  "prompt is too long: 210034 tokens > 200000 maximum")),
    "cohere": (CohereEmulator, "command-r", "command-r-plus", cohere_error(
        400, "too many tokens: total number of tokens in the prompt cannot exceed 4081 - "
             "received 5000. Try using a shorter prompt, or enabling prompt truncating.")),
    "gemini": (GeminiEmulator, "gemini/gemini-2.0-flash", "gemini/gemini-2.5-pro", google_error(
        400, "INVALID_ARGUMENT", "The input token count (1200000) exceeds the maximum number "
                                 "of tokens allowed (1048576).")),
    "huggingface": (HuggingFaceEmulator, CHAT_MODEL, "huggingface/Qwen/Qwen2.5-72B-Instruct",
                    hf_error(422, TGI_TOO_LONG, "validation")),
    "azure": (AzureEmulator, "azure/small-deployment", "azure/large-deployment", openai_error(
        400, "This model's maximum context length is 8192 tokens. However, your messages "
             "resulted in 9000 tokens. Please reduce the length of the messages.",
        "invalid_request_error", "context_length_exceeded")),
    "vllm": (OpenAIEmulator, "openai/small-model", "openai/large-model", Reply(400, {
        "object": "error", "type": "BadRequestError", "param": None, "code": 400,
        "message": "This model's maximum context length is 4096 tokens. However, you requested "
                   "5000 tokens (4000 in the messages, 1000 in the completion). Please reduce "
                   "the length of the messages or completion."})),
    "mistral": (OpenAIEmulator, "mistral/mistral-small-latest", "mistral/mistral-large-latest",
                Reply(400, {"object": "error", "type": "invalid_request_error", "param": None,
                            "code": "3051", "message": "Prompt contains 40000 tokens and 0 "
                            "draft tokens, too large for model with 32768 maximum context "
                            "length"})),
}


@pytest.fixture(params=list(CASES))
def case(request, emulators, tmp_path, write_config):
    """(proxy sdk without fallbacks, proxy sdk with the small model's context fallback,
    emulator, small model, the provider's answer to a too-long prompt)."""
    emulator_class, small, large, reply = CASES[request.param]
    emulator = emulators(emulator_class)
    emulator.reset_state()
    env = {**emulator.proxy_env(), "SWITCHBOARD_DATA_DIR": str(tmp_path / "data")}
    if request.param == "mistral":   # a compatible server, played by the OpenAI emulator
        env.update(MISTRAL_API_KEY=emulator.api_key, MISTRAL_API_BASE=env["OPENAI_API_BASE"])
    config = write_config(f"context_window_fallbacks: {{'{small}': ['{large}']}}\n")
    yield (sdk_for(proxy_app(env)), sdk_for(proxy_app(env, config)), emulator, small, reply)
    emulator.violations.clear()   # Mistral's body checked against OpenAI's contract: not ours


def test_provider_wording_is_openais_context_length_exceeded(case):
    sdk, _, emulator, small, reply = case
    emulator.fail_next(Fault(reply=reply))
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(model=small, messages=USER)
    assert caught.value.body["code"] == "context_length_exceeded"
    assert caught.value.body["type"] == "invalid_request_error"
    assert len(emulator.calls) == 1     # not retried: the same prompt would fail the same way


def test_provider_wording_triggers_context_window_fallbacks(case):
    _, sdk, emulator, small, reply = case
    emulator.fail_next(Fault(reply=reply))
    r = sdk.chat.completions.with_raw_response.create(model=small, messages=USER)
    assert r.headers["x-switchboard-attempted-fallbacks"] == "1"
    assert r.parse().choices[0].message.content
    assert len(emulator.calls) == 2
