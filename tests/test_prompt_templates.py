"""Chat -> prompt templates (shared by text-generation providers) and the stop-sequence cutter."""
from __future__ import annotations

import pytest

from app.errors import InvalidRequestError
from app.providers.base import StopScanner
from app.providers.prompt_templates import render

CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "How are you?"}]


@pytest.mark.parametrize("template, expected", [
    ("llama2", "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello! </s>"
               "<s>[INST] How are you? [/INST]"),
    ("llama3", "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
               "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
               "<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>"
               "<|start_header_id|>user<|end_header_id|>\n\nHow are you?<|eot_id|>"
               "<|start_header_id|>assistant<|end_header_id|>\n\n"),
    ("mistral", "<s>[INST] Be brief.\n\nHi [/INST] Hello!</s>[INST] How are you? [/INST]"),
    ("plain", "System: Be brief.\nUser: Hi\nAssistant: Hello!\nUser: How are you?\nAssistant:"),
])
def test_family_formats(template, expected):
    assert render(template, CHAT) == (expected, None)


@pytest.mark.parametrize("template, expected", [
    ("llama2", "<s>[INST] Hi [/INST] Hello! </s><s>[INST] How are you? [/INST]"),
    ("plain", "User: Hi\nAssistant: Hello!\nUser: How are you?\nAssistant:"),
])
def test_system_given_apart(template, expected):
    assert render(template, CHAT, system_in_prompt=False) == (expected, "Be brief.")
    assert render(template, CHAT[1:], system_in_prompt=False)[1] is None


def test_system_messages_anywhere_join_in_order():
    messages = [{"role": "user", "content": "a"}, {"role": "system", "content": "one"},
                {"role": "developer", "content": [{"type": "text", "text": "two"}]},
                {"role": "system", "content": "  "}]
    assert render("plain", messages) == ("System: one\n\ntwo\nUser: a\nAssistant:", None)


def test_consecutive_turns_merge_and_text_is_trimmed():
    messages = [{"role": "user", "content": " a "}, {"role": "user", "content": "b\n"},
                {"role": "assistant", "content": "c"}, {"role": "assistant", "content": "d"},
                {"role": "user", "content": "e"}]
    assert render("llama2", messages)[0] == \
        "<s>[INST] a\n\nb [/INST] c\n\nd </s><s>[INST] e [/INST]"


@pytest.mark.parametrize("template, expected", [
    ("llama2", "<s>[INST] Hi [/INST] Sure,"),
    ("llama3", "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
               "<|start_header_id|>assistant<|end_header_id|>\n\nSure,"),
    ("mistral", "<s>[INST] Hi [/INST] Sure,"),
    ("plain", "User: Hi\nAssistant: Sure,"),
])
def test_final_assistant_message_is_left_open(template, expected):
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Sure,"}]
    assert render(template, messages)[0] == expected


def test_leading_assistant_gets_an_empty_instruction():
    messages = [{"role": "assistant", "content": "Welcome."}, {"role": "user", "content": "Hi"}]
    assert render("llama2", messages)[0] == "<s>[INST]  [/INST] Welcome. </s><s>[INST] Hi [/INST]"


def test_system_only_conversation():
    assert render("llama2", [{"role": "system", "content": "S"}])[0] == \
        "<s>[INST] <<SYS>>\nS\n<</SYS>>\n\n [/INST]"
    assert render("llama3", [{"role": "system", "content": "S"}], system_in_prompt=False) == (
        "<|begin_of_text|><|start_header_id|>assistant<|end_header_id|>\n\n", "S")


def test_tool_calls_and_results_become_text():
    messages = [{"role": "user", "content": "weather?"},
                {"role": "assistant", "content": "Checking.", "tool_calls": [{
                    "id": "call_1", "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
                {"role": "assistant", "content": None,
                 "function_call": {"name": "lookup", "arguments": "{}"}},
                {"role": "function", "name": "lookup", "content": "found"}]
    assert render("plain", messages)[0] == (
        "User: weather?\nAssistant: Checking.\n"
        '[tool call call_1: get_weather({"city":"Paris"})]\n'
        "User: [tool result call_1: sunny]\nAssistant: [tool call : lookup({})]\n"
        "User: [tool result lookup: found]\nAssistant:")


def test_non_text_part_is_refused():
    with pytest.raises(InvalidRequestError) as raised:
        render("plain", [{"role": "user", "content": "x"}, {"role": "user", "content": [
            {"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}]}])
    assert raised.value.param == "messages[1].content"
    assert "input_audio" in raised.value.message


# -- StopScanner ----------------------------------------------------------------------------
def test_stop_scanner_whole_text():
    assert StopScanner(["x", "lo"]).cut("hello x") == "hel"
    assert StopScanner("STOP").cut("no stop here") == "no stop here"
    assert StopScanner(None).cut("any") == "any"
    assert StopScanner([""]).cut("empty sequences are ignored") == "empty sequences are ignored"


def test_stop_scanner_across_pieces():
    scanner = StopScanner(["abc", "zz"])
    assert [scanner.feed(p) for p in ("1a", "b", "2z", "z3", "abc")] == ["1", "", "ab2", "", ""]
    assert scanner.hit


def test_stop_scanner_holds_only_a_possible_start():
    scanner = StopScanner(["abc"])
    assert scanner.feed("xxab") == "xx"
    assert scanner.feed("x") == "abx"
    assert scanner.feed("a") == ""
    assert scanner.flush() == "a"
    assert not scanner.hit
