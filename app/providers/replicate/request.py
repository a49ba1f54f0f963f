"""Which Replicate model a name means, and the prediction create request for it.

Names (after the `replicate/` prefix): `<owner>/<name>` is an official model, created with
`POST /v1/models/<owner>/<name>/predictions`; `<owner>/<name>:<version>` and
`<name>:<version>` (a 64-hex version id) are created with `POST /v1/predictions` and
`{"version": ...}`. A registry entry may carry the version, `prompt_template`,
`max_tokens_input` and `system_prompt_input`; names not in the registry get defaults
inferred from the model name.

Replicate LLMs take one `prompt`, so the chat is rendered with the family's template
(app/providers/prompt_templates.py). A model that takes `system_prompt` gets the system
text there (an empty one when the chat has none: OpenAI semantics, not the model's
default system prompt). Otherwise the whole conversation is in the prompt, and
`prompt_template: "{prompt}"` tells models that wrap the prompt in a template of their own
(Llama 3, Mixtral) to use it verbatim; models without that input ignore it, as Replicate
ignores every input a model does not define.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from app.errors import ModelNotFoundError
from app.providers.base import Target, stop_list
from app.providers.prompt_templates import render

NAME = re.compile(r"^(?:(?P<owner>[A-Za-z0-9][\w.-]*)/)?(?P<name>[A-Za-z0-9][\w.-]*)"
                  r"(?::(?P<version>[0-9a-fA-F]{64}))?$")
NAME_HELP = ("Replicate models are named replicate/<owner>/<name> (an official model) or "
             "replicate/[<owner>/]<name>:<64-hex version id>")

# Model-name patterns -> chat template, for names the registry does not know.
INFERRED_TEMPLATES = ((re.compile(r"llama-?2(?!\d)", re.I), "llama2"),
                      (re.compile(r"llama-?3(?!\d)", re.I), "llama3"),
                      (re.compile(r"mi[sx]tral", re.I), "mistral"))
MAX_TOKENS_INPUT = {"llama3": "max_tokens"}   # others: max_new_tokens

# OpenAI params each family's models take as inputs of their own (the token limit aside),
# as the models' published input schemas list them: meta/llama-2-*-chat, meta/meta-llama-3-
# *-instruct, mistralai/mixtral-8x7b-instruct-v0.1. Unknown models ("plain") get them all.
ALWAYS = frozenset({"max_tokens", "max_completion_tokens", "stop", "stream", "stream_options"})
FAMILY_PARAMS = {
    "llama2": frozenset({"temperature", "top_p", "stop", "seed"}),
    "llama3": frozenset({"temperature", "top_p", "presence_penalty", "frequency_penalty"}),
    "mistral": frozenset({"temperature", "top_p", "presence_penalty", "frequency_penalty"}),
    "plain": frozenset({"temperature", "top_p", "stop", "seed", "presence_penalty",
                        "frequency_penalty"}),
}
INPUT_NAMES = {"stop": "stop_sequences"}     # the rest keep their OpenAI names


@dataclass(frozen=True)
class ReplicateModel:
    owner: str | None
    name: str
    version: str | None
    template: str             # a prompt_templates.TEMPLATES key
    max_tokens_input: str
    system_prompt_input: bool

    @property
    def honoured(self) -> frozenset[str]:
        """OpenAI params honoured; `stop` always is (the answer is cut at it, see response.py)."""
        return ALWAYS | FAMILY_PARAMS[self.template]


def resolve(target: Target) -> ReplicateModel:
    """The model a target names, with the registry's facts or ones inferred from the name."""
    match = NAME.match(target.upstream_model)
    info = target.info
    version = ((match and match["version"]) or info.get("version") or "").lower() or None
    if match is None or not (match["owner"] or version):
        raise ModelNotFoundError(f"{target.model_group!r} is not a Replicate model name: "
                                 f"{NAME_HELP}.", param="model")
    template = info.get("prompt_template") or next(
        (t for pattern, t in INFERRED_TEMPLATES if pattern.search(match["name"])), "plain")
    limit_input = info.get("max_tokens_input") or MAX_TOKENS_INPUT.get(template, "max_new_tokens")
    return ReplicateModel(match["owner"], match["name"], version, template, limit_input,
                          bool(info.get("system_prompt_input")))


def max_tokens(body: dict[str, Any]) -> int | None:
    return body.get("max_completion_tokens") or body.get("max_tokens")


def _stop_input(stop: Any) -> str | None:
    """`stop_sequences` is one comma-separated string, so a sequence holding a comma cannot
    be sent; the answer is still cut at it (response.py)."""
    sequences = [s for s in stop_list(stop) or () if s]
    return ",".join(sequences) if sequences and not any("," in s for s in sequences) else None


def model_input(body: dict[str, Any], model: ReplicateModel) -> dict[str, Any]:
    prompt, system = render(model.template, body["messages"],
                            system_in_prompt=not model.system_prompt_input)
    wire: dict[str, Any] = {"prompt": prompt}
    if model.system_prompt_input:
        wire["system_prompt"] = system or ""
    else:
        wire["prompt_template"] = "{prompt}"
    if max_tokens(body) is not None:
        wire[model.max_tokens_input] = max_tokens(body)
    for param in sorted(FAMILY_PARAMS[model.template]):
        value = _stop_input(body.get(param)) if param == "stop" else body.get(param)
        if value is not None:
            wire[INPUT_NAMES.get(param, param)] = value
    return wire


def create_request(body: dict[str, Any], model: ReplicateModel,
                   api_root: str) -> tuple[str, dict[str, Any]]:
    """(url, JSON body) of the prediction create call."""
    payload: dict[str, Any] = {"input": model_input(body, model)}
    if body.get("stream"):
        payload["stream"] = True
    if model.version:
        return f"{api_root}/predictions", {"version": model.version, **payload}
    return f"{api_root}/models/{model.owner}/{model.name}/predictions", payload
