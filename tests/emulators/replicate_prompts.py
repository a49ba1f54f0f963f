"""The chat formats Replicate's language models read (Llama 2, Llama 3, Mistral, and a
plain `Role: text` format), parsed back into (role, text) turns, so that the emulator can
tell a well-formed prompt from one wrapped twice or malformed."""
from __future__ import annotations


def _pairs_format(prompt: str, opener: str, closer: str, system: str = "") -> list[tuple]:
    """Turns from `<opener>user [/INST] reply<closer><opener>...` (Llama 2, Mistral)."""
    segments = prompt.split(opener)
    if segments[0] != "" or len(segments) < 2:
        raise ValueError(f"the prompt does not start with {opener!r}")
    turns = [("system", system)] if system else []
    for i, segment in enumerate(segments[1:]):
        user, found, rest = segment.partition(" [/INST]")
        if not found or "[INST]" in user or "<s>" in user:
            raise ValueError(f"instruction {i} is malformed: {segment!r}")
        turns.append(("user", user))
        last = i == len(segments) - 2
        if rest and not rest.startswith(" "):
            raise ValueError(f"reply {i} does not follow ' [/INST] '")
        if not last and not rest.endswith(closer):
            raise ValueError(f"reply {i} does not end with {closer!r}")
        if rest:
            turns.append(("assistant", rest[1:] if last else rest[1:-len(closer)]))
    return turns


def parse_llama2(prompt: str) -> list[tuple]:
    if "[INST]" not in prompt:
        return [("user", prompt)]          # the model wraps a bare prompt itself
    system = ""
    if prompt.startswith("<s>[INST] <<SYS>>\n"):
        system, found, rest = prompt[len("<s>[INST] <<SYS>>\n"):].partition("\n<</SYS>>\n\n")
        if not found:
            raise ValueError("<<SYS>> is not closed")
        prompt = "<s>[INST] " + rest
    return _pairs_format(prompt.replace("<s>[INST] ", "\x00"), "\x00", " </s>", system)


def parse_mistral(prompt: str) -> list[tuple]:
    if not prompt.startswith("<s>[INST] "):
        raise ValueError("the prompt does not start with <s>[INST]")
    return _pairs_format(prompt[3:], "[INST] ", "</s>")


def parse_llama3(prompt: str) -> list[tuple]:
    if not prompt.startswith("<|begin_of_text|><|start_header_id|>"):
        raise ValueError("the prompt does not start with <|begin_of_text|> and a header")
    blocks = prompt[len("<|begin_of_text|>"):].split("<|start_header_id|>")[1:]
    turns = []
    for i, block in enumerate(blocks):
        role, found, text = block.partition("<|end_header_id|>\n\n")
        last = i == len(blocks) - 1
        if not found or role not in ("system", "user", "assistant") or (
                role == "system" and i > 0):
            raise ValueError(f"header {i} is malformed: {block!r}")
        if last != (not text.endswith("<|eot_id|>")) or (last and role != "assistant"):
            raise ValueError("only a last, open assistant turn may lack <|eot_id|>")
        text = text if last else text[:-len("<|eot_id|>")]
        if "<|eot_id|>" in text or "<|begin_of_text|>" in text:
            raise ValueError(f"turn {i} holds a special token")
        if not (last and not text):
            turns.append((role, text))
    return turns


def parse_plain(prompt: str) -> list[tuple]:
    labels = {"System": "system", "User": "user", "Assistant": "assistant"}
    turns: list[list] = []
    for line in prompt.split("\n"):
        label, found, text = line.partition(": ")
        if line == "Assistant:":
            turns.append(["assistant", ""])
        elif found and label in labels:
            turns.append([labels[label], text])
        elif turns:
            turns[-1][1] += "\n" + line
        else:
            raise ValueError(f"the prompt does not start with a role label: {line!r}")
    if not turns or turns[-1][0] != "assistant":
        raise ValueError("the prompt does not end with 'Assistant:'")
    return [tuple(t) for t in turns if t[1] or t is not turns[-1]]


PARSERS = {"llama2": parse_llama2, "llama3": parse_llama3, "mistral": parse_mistral,
           "plain": parse_plain}
