"""The fast validation path never accepts what the full schema refuses."""
from __future__ import annotations

from hypothesis import given, settings, strategies as st

from app.api.schemas import _SCHEMA, _plainly_valid

scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 300), st.floats(-3, 3),
                    st.text(max_size=5), st.lists(st.text(max_size=3), max_size=6),
                    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
messages = st.lists(st.fixed_dictionaries(
    {"role": st.sampled_from(["system", "user", "assistant", "tool", "robot", 5]),
     "content": st.one_of(st.text(max_size=10), st.none(), st.integers())},
    optional={"name": st.one_of(st.text(max_size=4), st.integers())}), max_size=3)
bodies = st.fixed_dictionaries(
    {"messages": messages},
    optional={"model": st.one_of(st.text(max_size=6), st.integers()),
              **{name: scalars for name in ("temperature", "top_p", "n", "stream", "stop",
                                            "max_tokens", "presence_penalty", "seed", "user",
                                            "logprobs", "top_logprobs", "timeout",
                                            "num_retries", "metadata", "extra_field")}})


@settings(max_examples=600, deadline=None)
@given(bodies)
def test_fast_path_agrees_with_schema(body):
    if _plainly_valid(body):
        assert _SCHEMA.validate(body) == {}, body


def test_fast_path_takes_the_common_request():
    assert _plainly_valid({"model": "gpt-4", "temperature": 0.2, "max_tokens": 10,
                           "messages": [{"role": "system", "content": "Be brief."},
                                        {"role": "user", "content": "Hi", "name": "ann"}]})
