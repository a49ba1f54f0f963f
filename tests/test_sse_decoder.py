"""The upstream event-stream decoders, fed in awkward pieces."""
from __future__ import annotations

from app.service.sse import NDJSONDecoder, SSEDecoder

STREAM = (b"event: message_start\ndata: {\"a\": 1}\n\n"
          b": a comment\n\n"
          b"data: line one\r\ndata: line two\r\n\r\n"
          b"event: ping\rdata: {}\r\r"
          b"data: [DONE]\n\n")
EXPECTED = [("message_start", '{"a": 1}'), (None, "line one\nline two"), ("ping", "{}"),
            (None, "[DONE]")]


def decode(pieces) -> list:
    decoder = SSEDecoder()
    events = [e for piece in pieces for e in decoder.feed(piece)]
    return events + list(decoder.close())


def test_whole_stream_in_one_read():
    assert decode([STREAM]) == EXPECTED


def test_every_split_point_gives_the_same_events():
    for cut in range(1, len(STREAM)):
        assert decode([STREAM[:cut], STREAM[cut:]]) == EXPECTED, cut


def test_byte_by_byte():
    assert decode([STREAM[i:i + 1] for i in range(len(STREAM))]) == EXPECTED


# Line feeds only, as providers send them: lines are split all at once (another path).
LF_STREAM = (b"event: message_start\ndata: {\"a\": 1}\n\n: a comment\n\n"
             b"data:tight\ndata\ndata: line two\n\nid: 7\nretry: 10\ndata: [DONE]\n\n")
LF_EXPECTED = [("message_start", '{"a": 1}'), (None, "tight\n\nline two"), (None, "[DONE]")]


def test_line_feed_streams_at_every_split_point_and_byte_by_byte():
    assert decode([LF_STREAM]) == LF_EXPECTED
    for cut in range(1, len(LF_STREAM)):
        assert decode([LF_STREAM[:cut], LF_STREAM[cut:]]) == LF_EXPECTED, cut
    assert decode([LF_STREAM[i:i + 1] for i in range(len(LF_STREAM))]) == LF_EXPECTED


def test_last_event_without_blank_line_still_counts():
    assert decode([b"data: tail"]) == [(None, "tail")]


def test_multibyte_utf8_split_across_reads():
    data = "data: héllo ✓\n\n".encode()
    assert decode([data[:8], data[8:]]) == [(None, "héllo ✓")]


def test_ndjson_split_lines():
    decoder = NDJSONDecoder()
    events = list(decoder.feed(b'{"a":1}\n{"b"')) + list(decoder.feed(b':2}\n\n{"c":3}'))
    events += list(decoder.close())
    assert events == [(None, '{"a":1}'), (None, '{"b":2}'), (None, '{"c":3}')]
