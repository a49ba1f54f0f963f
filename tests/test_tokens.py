"""Token counting works offline from the shipped encodings and matches tiktoken's own."""
from __future__ import annotations

import hashlib
import os

import pytest

from app.usage.tokens import ENCODINGS_DIR, count_messages, count_text, encoding

EXPECTED_SHA256 = {
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
}


def test_shipped_files_are_the_published_encodings():
    for name, sha in EXPECTED_SHA256.items():
        url = f"https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"
        path = ENCODINGS_DIR / hashlib.sha1(url.encode()).hexdigest()
        assert hashlib.sha256(path.read_bytes()).hexdigest() == sha


def test_known_token_ids():
    # "hello world" is [15339, 1917] in cl100k_base and [24912, 2375] in o200k_base.
    assert encoding("cl100k_base").encode("hello world") == [15339, 1917]
    assert encoding("o200k_base").encode("hello world") == [24912, 2375]


def test_loading_leaves_environment_alone(monkeypatch):
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "/somewhere/else")
    encoding.cache_clear()
    encoding("cl100k_base")
    assert os.environ["TIKTOKEN_CACHE_DIR"] == "/somewhere/else"


@pytest.mark.parametrize("model,encoding_name", [("gpt-4", "cl100k_base"),
                                                 ("gpt-4o-mini", "o200k_base"),
                                                 ("openai/o3-mini", "o200k_base"),
                                                 ("claude-2", "cl100k_base")])
def test_model_encoding(model, encoding_name):
    text = "Tokenise this sentence, please: 12345 ✓"
    assert count_text(model, text) == len(encoding(encoding_name).encode(text))


def test_chat_message_overhead():
    messages = [{"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": "Hello!", "name": "bob"}]
    enc = encoding("cl100k_base")
    expected = 3 + sum(3 + len(enc.encode(m["role"])) + len(enc.encode(m["content"]))
                       for m in messages) + 1 + len(enc.encode("bob"))
    assert count_messages("gpt-4", messages) == expected


def test_special_token_text_is_counted_not_rejected():
    assert count_text("gpt-4", "<|endoftext|>") > 1


def test_a_resent_message_text_is_counted_once(monkeypatch):
    """A keyed request counts its prompt before every call and clients resend the same texts
    (system prompts, earlier turns): a short text is encoded once per process; a long one
    each time. The counts are tiktoken's either way."""
    import tiktoken

    encoded = []
    original = tiktoken.Encoding.encode
    monkeypatch.setattr(tiktoken.Encoding, "encode",
                        lambda self, text, **kw: encoded.append(text) or original(self, text, **kw))
    system = f"You are assistant number {os.getpid()}, answering briefly."  # new to this process
    long_text = "word " * 2000   # above the cached length
    messages = [{"role": "system", "content": system}, {"role": "user", "content": long_text}]
    first = count_messages("gpt-3.5-turbo", messages)
    assert first == count_messages("gpt-3.5-turbo", messages)
    assert encoded.count(system) == 1 and encoded.count(long_text) == 2
    assert first == 3 + 2 * 4 + count_text("gpt-3.5-turbo", system) + \
        count_text("gpt-3.5-turbo", long_text)
