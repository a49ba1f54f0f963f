"""The fast validation path never accepts what the full schema refuses."""
from __future__ import annotations

from hypothesis import given, settings, strategies as st

from app.api.schemas import _SCHEMA, _plainly_valid, validate_chat_request

odd = st.one_of(st.none(), st.booleans(), st.integers(-5, 300), st.floats(-3, 3),
                st.text(max_size=5), st.lists(st.text(max_size=3), max_size=6),
                st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))


def mostly(valid):
    """Usually a valid value, sometimes anything at all."""
    return st.one_of(valid, valid, valid, odd)


# Every top-level field where OpenAI's spec allows null (issue 14).
NULLABLE = ("temperature", "top_p", "n", "stream", "presence_penalty", "frequency_penalty",
            "max_tokens", "max_completion_tokens", "stop", "seed", "user", "response_format",
            "parallel_tool_calls", "logprobs", "top_logprobs", "stream_options")

FIELDS = {
    "model": mostly(st.text(min_size=1, max_size=6)),
    "temperature": mostly(st.floats(0, 2)), "top_p": mostly(st.floats(0, 1)),
    "n": mostly(st.integers(1, 128)), "stream": mostly(st.booleans()),
    "stop": mostly(st.one_of(st.text(max_size=3), st.lists(st.text(max_size=3), max_size=4))),
    "max_tokens": mostly(st.integers(1, 10_000)), "presence_penalty": mostly(st.floats(-2, 2)),
    "frequency_penalty": mostly(st.floats(-2, 2)),
    "max_completion_tokens": mostly(st.integers(1, 10_000)),
    "parallel_tool_calls": mostly(st.booleans()),
    "response_format": mostly(st.just({"type": "json_object"})),
    "stream_options": mostly(st.just({"include_usage": True})),
    "seed": mostly(st.integers()), "user": mostly(st.text(max_size=4)),
    "logprobs": mostly(st.booleans()), "top_logprobs": mostly(st.integers(0, 20)),
    "timeout": mostly(st.floats(0.1, 60)), "num_retries": mostly(st.integers(0, 10)),
    "metadata": mostly(st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)),
    "extra_field": odd,
}
message = st.fixed_dictionaries(
    {"role": mostly(st.sampled_from(["system", "developer", "user", "assistant", "tool",
                                      "function"])),
     "content": mostly(st.text(max_size=10))},
    optional={"name": mostly(st.text(max_size=4))})
bodies = st.fixed_dictionaries({"messages": mostly(st.lists(message, min_size=1, max_size=3))},
                               optional=FIELDS)


@settings(max_examples=1500, deadline=None)
@given(bodies)
def test_fast_path_agrees_with_schema(body):
    if _plainly_valid(body):
        assert _SCHEMA.validate(body) == {}, body


@settings(max_examples=300, deadline=None)
@given(st.fixed_dictionaries({"model": st.just("gpt-4"), "messages": st.just(
    [{"role": "user", "content": "hi"}])}, optional={name: st.none() for name in NULLABLE}))
def test_null_is_not_given_on_both_paths(body):
    """null where OpenAI allows it is accepted and taken out, on the fast path and the full one."""
    expected = {"model": "gpt-4", "messages": [{"role": "user", "content": "hi"}]}
    assert validate_chat_request(body) == expected
    assert _SCHEMA.validate(body) == {}


def test_fast_path_takes_the_common_request():
    assert _plainly_valid({"model": "gpt-4", "temperature": 0.2, "max_tokens": 10,
                           "messages": [{"role": "system", "content": "Be brief."},
                                        {"role": "user", "content": "Hi", "name": "ann"}]})
