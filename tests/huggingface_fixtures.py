"""What only the Hugging Face tests share: their model names and a TGI-server config (the
generic provider fixtures come from tests/provider_fixtures.py)."""
from __future__ import annotations

import pytest

CHAT_MODEL = "huggingface/meta-llama/Meta-Llama-3-8B-Instruct"
CODE_MODEL = "stabilityai/stablecode-completion-alpha-3b-4k"
CODE_PATH = f"/hf-inference/models/{CODE_MODEL}"


@pytest.fixture
def tgi_config(write_config, hf_emu):
    """A config whose `code` model is served by its own TGI server (the emulator's /generate)."""
    def write(api_base: str | None = None, **params) -> str:
        extra = "".join(f"\n      {key}: {value}" for key, value in params.items())
        return write_config(f"""
model_list:
  - model_name: code
    params:
      model: huggingface/{CODE_MODEL}
      api_base: {api_base or hf_emu.base_url}{extra}
""")
    return write
