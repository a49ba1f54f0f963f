"""Every bad input a client can send: the right status and an OpenAI-style error body."""
from __future__ import annotations

import pytest

OK_MESSAGES = [{"role": "user", "content": "hi"}]

# (description, body or raw bytes, status, param, words the message must contain)
CASES = [
    ("invalid JSON", b'{"model": "gpt-4", "messages": [', 400, None, "not valid JSON"),
    ("body is a list", b"[1, 2]", 400, None, "JSON object"),
    ("body is a string", b'"hello"', 400, None, "JSON object"),
    ("body is null", b"null", 400, None, "JSON object"),
    ("missing model", {"messages": OK_MESSAGES}, 400, "model", "required"),
    ("empty model", {"model": "", "messages": OK_MESSAGES}, 400, "model", "empty"),
    ("model not a string", {"model": 4, "messages": OK_MESSAGES}, 400, "model", "string"),
    ("missing messages", {"model": "gpt-4"}, 400, "messages", "required"),
    ("empty messages", {"model": "gpt-4", "messages": []}, 400, "messages", "at least one"),
    ("messages not a list", {"model": "gpt-4", "messages": "hi"}, 400, "messages", "array"),
    ("message not an object", {"model": "gpt-4", "messages": ["hi"]}, 400, "messages[0]",
     "object"),
    ("unknown role", {"model": "gpt-4", "messages": [{"role": "robot", "content": "x"}]}, 400,
     "messages[0].role", "robot"),
    ("missing role", {"model": "gpt-4", "messages": [{"content": "x"}]}, 400,
     "messages[0].role", "required"),
    ("missing content", {"model": "gpt-4", "messages": [{"role": "user"}]}, 400,
     "messages[0].content", "required"),
    ("null content for user", {"model": "gpt-4", "messages": [{"role": "user", "content": None}]},
     400, "messages[0].content", "required"),
    ("content of wrong type", {"model": "gpt-4", "messages": [{"role": "user", "content": 5}]},
     400, "messages[0].content", "string"),
    ("content part without type", {"model": "gpt-4", "messages": [
        {"role": "user", "content": [{"text": "x"}]}]}, 400, "messages[0].content[0]", "type"),
    ("second message bad", {"model": "gpt-4", "messages": [
        {"role": "user", "content": "a"}, {"role": "user", "content": ["x"]}]}, 400,
     "messages[1].content[0]", "type"),
    ("temperature too high", {"model": "gpt-4", "messages": OK_MESSAGES, "temperature": 2.5},
     400, "temperature", "between 0 and 2"),
    ("temperature negative", {"model": "gpt-4", "messages": OK_MESSAGES, "temperature": -0.1},
     400, "temperature", "between 0 and 2"),
    ("temperature as string", {"model": "gpt-4", "messages": OK_MESSAGES, "temperature": "0.5"},
     400, "temperature", "number"),
    ("temperature as bool", {"model": "gpt-4", "messages": OK_MESSAGES, "temperature": True},
     400, "temperature", "number"),
    ("top_p above 1", {"model": "gpt-4", "messages": OK_MESSAGES, "top_p": 1.5}, 400, "top_p",
     "between 0 and 1"),
    ("n zero", {"model": "gpt-4", "messages": OK_MESSAGES, "n": 0}, 400, "n", "between 1"),
    ("n float", {"model": "gpt-4", "messages": OK_MESSAGES, "n": 1.5}, 400, "n", "integer"),
    ("stream not bool", {"model": "gpt-4", "messages": OK_MESSAGES, "stream": "yes"}, 400,
     "stream", "boolean"),
    ("stop too many", {"model": "gpt-4", "messages": OK_MESSAGES, "stop": ["a"] * 5}, 400,
     "stop", "at most 4"),
    ("stop wrong type", {"model": "gpt-4", "messages": OK_MESSAGES, "stop": 5}, 400, "stop",
     "string"),
    ("max_tokens zero", {"model": "gpt-4", "messages": OK_MESSAGES, "max_tokens": 0}, 400,
     "max_tokens", "at least 1"),
    ("max_tokens string", {"model": "gpt-4", "messages": OK_MESSAGES, "max_tokens": "10"}, 400,
     "max_tokens", "integer"),
    ("presence_penalty range", {"model": "gpt-4", "messages": OK_MESSAGES,
                                "presence_penalty": 3}, 400, "presence_penalty", "between -2"),
    ("frequency_penalty range", {"model": "gpt-4", "messages": OK_MESSAGES,
                                 "frequency_penalty": -3}, 400, "frequency_penalty", "between -2"),
    ("logit_bias not object", {"model": "gpt-4", "messages": OK_MESSAGES, "logit_bias": [1]},
     400, "logit_bias", "object"),
    ("tools not list", {"model": "gpt-4", "messages": OK_MESSAGES, "tools": {}}, 400, "tools",
     "array"),
    ("tool without name", {"model": "gpt-4", "messages": OK_MESSAGES,
                           "tools": [{"type": "function", "function": {}}]}, 400,
     "tools[0].function.name", "required"),
    ("tool_choice unknown", {"model": "gpt-4", "messages": OK_MESSAGES, "tool_choice": "maybe"},
     400, "tool_choice", "one of"),
    ("response_format not object", {"model": "gpt-4", "messages": OK_MESSAGES,
                                    "response_format": "json"}, 400, "response_format", "object"),
    ("seed float", {"model": "gpt-4", "messages": OK_MESSAGES, "seed": 1.5}, 400, "seed",
     "integer"),
    ("top_logprobs range", {"model": "gpt-4", "messages": OK_MESSAGES, "top_logprobs": 30},
     400, "top_logprobs", "between 0 and 20"),
    ("user not string", {"model": "gpt-4", "messages": OK_MESSAGES, "user": 5}, 400, "user",
     "string"),
    ("api_base in request", {"model": "gpt-4", "messages": OK_MESSAGES,
                             "api_base": "http://169.254.169.254"}, 400, "api_base",
     "cannot be set"),
    ("unknown model", {"model": "no-such-model-xyz", "messages": OK_MESSAGES}, 404, "model",
     "/v1/models"),
    ("retired palm", {"model": "palm/chat-bison", "messages": OK_MESSAGES}, 404, "model",
     "Gemini"),
]


@pytest.mark.parametrize("description,body,status,param,words", CASES,
                         ids=[c[0] for c in CASES])
def test_bad_input(client, openai_emu, description, body, status, param, words):
    if isinstance(body, bytes):
        r = client.post("/v1/chat/completions", data=body, content_type="application/json")
    else:
        r = client.post("/v1/chat/completions", json=body)
    assert r.status_code == status, r.json
    error = r.json["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["param"] == param
    assert words in error["message"]
    if status == 400:
        assert error["type"] == "invalid_request_error"
    if status == 404:
        assert error["code"] == "model_not_found"
    assert not openai_emu.calls, "a bad request must not reach the upstream"


def test_wrong_content_type_is_415(client):
    r = client.post("/v1/chat/completions", data="model=gpt-4", content_type="text/plain")
    assert r.status_code == 415
    assert r.json["error"]["code"] == "unsupported_media_type"


def test_form_content_type_is_415(client):
    r = client.post("/v1/chat/completions", data={"model": "gpt-4"})
    assert r.status_code == 415


def test_oversized_body_is_413(make_client):
    small = make_client(env={"SWITCHBOARD_MAX_REQUEST_BYTES": "1000"})
    r = small.post("/v1/chat/completions", json={
        "model": "gpt-4", "messages": [{"role": "user", "content": "x" * 5000}]})
    assert r.status_code == 413
    assert r.json["error"]["code"] == "request_too_large"


def test_unknown_path_is_json_404(client):
    r = client.get("/nope")
    assert r.status_code == 404
    assert r.json["error"]["code"] == "not_found"


def test_wrong_method_is_json_405(client):
    r = client.delete("/v1/models")
    assert r.status_code == 405
    assert r.json["error"]["code"] == "method_not_allowed"
    assert "GET" in r.headers["Allow"]


def test_missing_credential_names_the_variable(make_client, openai_emu):
    r = make_client(env={"OPENAI_API_KEY": ""}).post(
        "/v1/chat/completions", json={"model": "gpt-4", "messages": OK_MESSAGES})
    assert r.status_code == 401
    assert "OPENAI_API_KEY" in r.json["error"]["message"]
    assert not openai_emu.calls


def test_nested_garbage_never_500(client):
    weird = [{"model": "gpt-4", "messages": [{"role": "user", "content": [{"type": 5}]}]},
             {"model": "gpt-4", "messages": [{"role": ["user"], "content": "x"}]},
             {"model": "gpt-4", "messages": [{"role": "assistant", "content": None,
                                              "tool_calls": "x"}]},
             {"model": {"a": 1}, "messages": None},
             {"model": "gpt-4", "messages": OK_MESSAGES, "stream_options": 3},
             {"model": "gpt-4", "messages": OK_MESSAGES, "functions": [{"name": ""}]}]
    for body in weird:
        r = client.post("/v1/chat/completions", json=body)
        assert r.status_code == 400, (body, r.json)
