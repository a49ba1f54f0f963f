"""What the live Gemini API refuses in a generate request beyond the contract's schema:
unknown field names (Google's JSON is proto-backed), roles other than `user`/`model`, empty
turns or text, more than one data field in a part, function responses that do not answer
the model turn just before them, and Gemini 3's thinking levels and thought signatures."""
from __future__ import annotations

import base64
import hashlib
from collections import Counter

from tests.emulators.contracts import load_spec

SPEC = "gemini/openapi.json"
DATA_FIELDS = ("text", "inlineData", "fileData", "functionCall", "functionResponse",
               "executableCode", "codeExecutionResult", "toolCall", "toolResponse")


def unknown_fields(instance, schema: dict, path: str = "") -> list[str]:
    """Field names the schema does not declare (the live API refuses them: proto JSON)."""
    spec = load_spec(SPEC)
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    problems = []
    if isinstance(instance, dict) and "properties" in schema:
        for key, value in instance.items():
            if key not in schema["properties"]:
                problems.append(f'Unknown name "{key}" at \'{path or "request"}\': '
                                f'Cannot find field.')
            else:
                problems += unknown_fields(value, schema["properties"][key],
                                           f"{path}.{key}".strip("."))
    elif isinstance(instance, list) and "items" in schema:
        for i, item in enumerate(instance):
            problems += unknown_fields(item, schema["items"], f"{path}[{i}]")
    return problems


MISSING_SIGNATURE = ("Function call is missing a thought_signature in functionCall parts. This "
                     "is required for tools to work correctly, and missing thought_signature may "
                     "lead to degraded model performance.")


BAD_SIGNATURE = "Unable to submit request because the thought signature is not valid."


def text_signature(text: str) -> str:
    """The signature Gemini 3 puts on an answer without function calls (here: tied to the
    text it signs, so a signature moved to other text or another part is caught)."""
    return base64.b64encode(f"sig:text:{hashlib.sha256(text.encode()).hexdigest()[:16]}"
                            .encode()).decode()


def text_signature_rules(content: dict) -> list[str]:
    """A text signature sent back must be the one given for that text, on the turn's last
    text part (where Gemini put it)."""
    texts = [p for p in content.get("parts") or () if "text" in p]
    problems = []
    for position, part in enumerate(texts):
        signature = part.get("thoughtSignature")
        if signature and (signature != text_signature(part["text"])
                          or position != len(texts) - 1):
            problems.append(BAD_SIGNATURE)
    return problems


def thinking_rules(body: dict, model: str) -> list[str]:
    """Gemini 3: thinking levels, every function call sent back with its signature, and
    text signatures sent back unchanged where they were given."""
    problems = []
    config = (body.get("generationConfig") or {}).get("thinkingConfig") or {}
    if not model.startswith("gemini-3"):
        if "thinkingLevel" in config:
            problems.append("Thinking level is not supported for this model.")
        if model.startswith("gemini-2.5-pro") and config.get("thinkingBudget") == 0:
            problems.append("Budget 0 is invalid. This model only works in thinking mode.")
        return problems
    for content in body.get("contents") or ():
        if content.get("role") == "model":
            problems += text_signature_rules(content)
        for part in content.get("parts") or ():
            if content.get("role") == "model" and "functionCall" in part and \
                    not part.get("thoughtSignature"):
                problems.append(MISSING_SIGNATURE)
    return problems


def api_rules(body: dict, model: str) -> list[str]:
    """What the live API refuses although the schema allows it."""
    contents = body.get("contents") or []
    problems = [] if contents else ["* GenerateContentRequest.contents: contents is not specified"]
    system = body.get("systemInstruction")
    for i, content in enumerate(contents + ([system] if system else [])):
        where = f"contents[{i}]" if i < len(contents) else "systemInstruction"
        if where != "systemInstruction" and content.get("role") not in ("user", "model"):
            problems.append(f"{where}.role: Please use a valid role: user, model.")
        if not content.get("parts"):
            problems.append(f"{where}.parts: must not be empty")
        for j, part in enumerate(content.get("parts") or ()):
            fields = [f for f in DATA_FIELDS if f in part]
            if len(fields) != 1:
                problems.append(f"{where}.parts[{j}]: a part must hold exactly one data field")
            if part.get("text") == "":
                problems.append("Unable to submit request because it has an empty text "
                                "parameter. Add a value to the parameter and try again.")
    for i, content in enumerate(contents):
        answers = [p["functionResponse"]["name"] for p in content.get("parts") or ()
                   if "functionResponse" in p]
        if not answers:
            continue
        before = contents[i - 1] if i else {}
        calls = [p["functionCall"]["name"] for p in before.get("parts") or ()
                 if "functionCall" in p]
        if before.get("role") != "model" or Counter(calls) != Counter(answers):
            problems.append("Please ensure that the number of function response parts is equal "
                            "to the number of function call parts of the function call turn, "
                            "and that the function response turn comes immediately after a "
                            "function call turn.")
    problems += thinking_rules(body, model)
    declared = {d["name"] for d in declarations(body)}
    calling = (body.get("toolConfig") or {}).get("functionCallingConfig") or {}
    allowed = calling.get("allowedFunctionNames")
    if allowed and (calling.get("mode") not in ("ANY", "VALIDATED") or set(allowed) - declared):
        problems.append("allowed_function_names must name declared functions and needs mode ANY")
    return problems


def declarations(body: dict) -> list[dict]:
    return [d for tool in body.get("tools") or () for d in tool.get("functionDeclarations") or ()]
