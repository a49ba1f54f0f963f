"""POST /v1/completions with the official openai SDK and plain HTTP: OpenAI's completion
models (plain, streamed, with suffix and echo), a chat model answering a prompt, and the
400s for what a chat model cannot do."""
from __future__ import annotations

import pytest

from tests.provider_fixtures import proxy_app, sse_frames

MODEL = "gpt-3.5-turbo-instruct"


def test_sdk_plain(sdk, openai_emu):
    answer = sdk.completions.create(model=MODEL, prompt="def add(a, b):", max_tokens=10)
    assert answer.object == "text_completion"
    assert answer.id.startswith("cmpl-")
    assert answer.choices[0].text == " b): and so on"
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage.completion_tokens > 0
    call = openai_emu.calls[-1]
    assert call.path == "/v1/completions"
    assert call.body == {"model": MODEL, "prompt": "def add(a, b):", "max_tokens": 10}


def test_sdk_streamed(sdk):
    chunks = list(sdk.completions.create(model=MODEL, prompt="count to", stream=True,
                                         stream_options={"include_usage": True}))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == " to and so on"
    assert all(c.object == "text_completion" for c in chunks)
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage.total_tokens > 0


def test_sdk_suffix(sdk, openai_emu):
    answer = sdk.completions.create(model=MODEL, prompt="def f(x):\n    return",
                                    suffix="\n\nprint(f(2))", max_tokens=20)
    assert answer.choices[0].text == " [middle of return and print(f(2))]"
    assert openai_emu.calls[-1].body["suffix"] == "\n\nprint(f(2))"


def test_echo_and_several_prompts(app):
    r = app.test_client().post("/v1/completions", json={
        "model": MODEL, "prompt": ["one two", "three"], "echo": True, "n": 2})
    assert r.status_code == 200, r.json
    texts = [c["text"] for c in r.json["choices"]]
    assert texts == ["one two two and so on"] * 2 + ["three three and so on"] * 2


def test_stream_over_http_ends_with_done(app):
    r = app.test_client().post("/completions", json={"model": MODEL, "prompt": "a", "stream": True})
    frames = sse_frames(r)
    assert frames and all(f["object"] == "text_completion" for f in frames)


def test_chat_model_gets_the_prompt_as_one_user_message(sdk, openai_emu):
    answer = sdk.completions.create(model="gpt-4o-mini", prompt="ping")
    assert answer.choices[0].text == "Hello! You said: ping"
    call = openai_emu.calls[-1]
    assert call.path == "/v1/chat/completions"
    assert call.body["messages"] == [{"role": "user", "content": "ping"}]
    assert "prompt" not in call.body


def test_chat_model_refuses_suffix(app, openai_emu):
    r = app.test_client().post("/v1/completions", json={
        "model": "gpt-4o-mini", "prompt": "a", "suffix": "b"})
    assert r.status_code == 400
    assert r.json["error"]["param"] == "suffix"
    assert not openai_emu.calls


@pytest.mark.parametrize("body, param", [
    ({"model": MODEL}, "prompt"),
    ({"model": MODEL, "prompt": ""}, "prompt"),
    ({"model": MODEL, "prompt": "a", "max_tokens": "5"}, "max_tokens"),
    ({"model": MODEL, "prompt": "a", "logprobs": 9}, "logprobs"),
    ({"prompt": "a"}, "model"),
])
def test_bad_input(app, body, param):
    r = app.test_client().post("/v1/completions", json=body)
    assert r.status_code == 400
    assert r.json["error"]["param"] == param


# -- other providers' text APIs ------------------------------------------------------------
from tests.emulators.compatible import MistralEmulator  # noqa: E402
from tests.emulators.huggingface import HuggingFaceEmulator  # noqa: E402
from tests.provider_fixtures import emulator_fixture  # noqa: E402

hf_emu = emulator_fixture(HuggingFaceEmulator, "hf_emu")
mistral_emu = emulator_fixture(MistralEmulator, "mistral_emu")


def compatible_env(emulator, provider: str, tmp_path) -> dict:
    return {f"{provider.upper()}_API_KEY": emulator.api_key,
            f"{provider.upper()}_API_BASE": emulator.base_url + "/v1",
            "SWITCHBOARD_DATA_DIR": str(tmp_path / "data")}


def test_mistral_fim(mistral_emu, tmp_path):
    openai_emu = mistral_emu
    client = proxy_app(compatible_env(mistral_emu, "mistral", tmp_path)).test_client()
    r = client.post("/v1/completions", json={"model": "mistral/codestral-latest",
                                             "prompt": "def f():", "suffix": "return 1",
                                             "max_tokens": 20, "seed": 3})
    assert r.status_code == 200, r.json
    assert r.json["choices"][0]["text"] == " [middle of f(): and return]"
    call = openai_emu.calls[-1]
    assert call.path == "/v1/fim/completions"
    assert call.body["random_seed"] == 3 and call.body["suffix"] == "return 1"
    streamed = client.post("/v1/completions", json={"model": "mistral/codestral-latest",
                                                    "prompt": "x = ", "suffix": "y",
                                                    "stream": True})
    frames = sse_frames(streamed)
    assert "".join(f["choices"][0]["text"] for f in frames if f["choices"]) == \
        " [middle of = and y]"


def test_deepseek_fim_beta(openai_emu, tmp_path):
    client = proxy_app(compatible_env(openai_emu, "deepseek", tmp_path)).test_client()
    r = client.post("/v1/completions", json={"model": "deepseek/deepseek-chat",
                                             "prompt": "a b", "suffix": "c"})
    assert r.status_code == 200, r.json
    assert openai_emu.calls[-1].path == "/beta/completions"
    assert r.json["choices"][0]["text"] == " [middle of b and c]"


def test_vllm_server_completions(openai_emu, tmp_path, write_config):
    config = write_config(f"""
model_list:
  - model_name: local-coder
    params: {{model: vllm/Qwen/Qwen2.5-Coder-7B, api_base: "{openai_emu.base_url}/v1",
              api_key: {openai_emu.api_key}}}
""")
    env = {"SWITCHBOARD_DATA_DIR": str(tmp_path / "data")}
    r = proxy_app(env, config).test_client().post(
        "/v1/completions", json={"model": "local-coder", "prompt": "import"})
    assert r.status_code == 200, r.json
    assert openai_emu.calls[-1].path == "/v1/completions"
    assert openai_emu.calls[-1].body["model"] == "Qwen/Qwen2.5-Coder-7B"


def test_stablecode_fill_in_the_middle_tokens(hf_emu, tmp_path):
    env = {**hf_emu.proxy_env(), "SWITCHBOARD_DATA_DIR": str(tmp_path / "data")}
    client = proxy_app(env).test_client()
    r = client.post("/v1/completions", json={
        "model": "stabilityai/stablecode-completion-alpha-3b-4k", "prompt": "def add(a, b):",
        "suffix": "\n", "max_tokens": 8})
    assert r.status_code == 200, r.json
    sent = hf_emu.calls[-1]
    assert sent.path == "/hf-inference/models/stabilityai/stablecode-completion-alpha-3b-4k"
    assert sent.body["inputs"] == "<fim_prefix>def add(a, b):<fim_suffix>\n<fim_middle>"
    assert r.json["object"] == "text_completion" and r.json["choices"][0]["text"]
    plain = client.post("/v1/completions", json={
        "model": "huggingface/bigcode/starcoder", "prompt": "print(", "stream": True})
    assert sse_frames(plain)[-1]["choices"][0]["finish_reason"] in ("stop", "length")
    assert hf_emu.calls[-1].body["inputs"] == "print("


def test_chat_model_with_token_ids_the_encoding_lacks_is_a_400(app, openai_emu):
    r = app.test_client().post("/v1/completions", json={"model": "gpt-4o-mini",
                                                        "prompt": [[1, 2], [2 ** 40]]})
    assert r.status_code == 400, r.json
    assert r.json["error"]["param"] == "prompt"
    assert not openai_emu.calls


def test_one_prompt_apis(app, hf_emu, tmp_path):
    """Several prompts go only to an API that takes several; token ids reach a TGI model as
    text."""
    r = app.test_client().post("/v1/completions", json={"model": "gpt-4o-mini",
                                                        "prompt": ["a", "b"]})
    assert r.status_code == 400 and r.json["error"]["param"] == "prompt"
    env = {**hf_emu.proxy_env(), "SWITCHBOARD_DATA_DIR": str(tmp_path / "hf")}
    client = proxy_app(env).test_client()
    r = client.post("/v1/completions", json={"model": "huggingface/bigcode/starcoder",
                                             "prompt": [15339, 1917]})
    assert r.status_code == 200, r.json
    assert hf_emu.calls[-1].body["inputs"] == "hello world"
