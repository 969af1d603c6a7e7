"""The decoder's two paths agree: whole messages (fast) and line by line (the state machine).

``FrameDecoder`` cuts clean CRLF messages at their blank line and hands anything else to the
line-by-line path.  The oracle here is the same decoder with the fast path switched off on the
instance, fed the same bytes: frames, dropped input, counters and the banner must be the same
for real traces, mutated traces, any chunking and small size limits.
"""

from __future__ import annotations

import itertools
import random
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callcenter.ami.codec import MAX_MESSAGE_BYTES, Frame, FrameDecoder
from tests.ami.conftest import ALL_TRACES, TraceLoader

FUZZ = settings(
    max_examples=150,
    deadline=timedelta(seconds=5),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
MUTATIONS = [
    b"\r",
    b"\n",
    b"\r\n",
    b"\r\n\r\n",
    b":",
    b"\x00",
    b"\xff",
    b"\xe5\xbc",
    b" ",
    b"Event: X\r\n",
    b"z" * 700,
]
END = b"\r\n\r\nEvent: Good\r\n\r\n"


def line_by_line(**options: Any) -> FrameDecoder:
    decoder = FrameDecoder(**options)
    decoder._between_messages = lambda: False  # type: ignore[method-assign]
    return decoder


def outcome(decoder: FrameDecoder, frames: list[Frame]) -> tuple[Any, ...]:
    banner = decoder.banner
    return (
        [(f.fields, f.raw) for f in frames],
        [(e.reason, e.data, e.size) for e in decoder.errors],
        decoder.error_count,
        decoder.stray_blank_lines,
        (banner.text, banner.raw) if banner else None,
        decoder.buffered_bytes,
        decoder.line_ending,
    )


def both(stream: bytes, cuts: list[int], **options: Any) -> tuple[Any, Any]:
    fast, slow = FrameDecoder(**options), line_by_line(**options)
    fast_frames: list[Frame] = []
    slow_frames: list[Frame] = []
    limit = options.get("max_message", 64 * 1024)
    for a, b in itertools.pairwise(sorted({0, len(stream), *cuts})):
        fast_frames += fast.feed(stream[a:b])
        slow_frames += slow.feed(stream[a:b])
        assert fast.buffered_bytes <= limit
    return outcome(fast, fast_frames), outcome(slow, slow_frames)


@pytest.mark.parametrize("name", ALL_TRACES)
def test_given_trace_when_fed_as_recorded_or_bytewise_then_paths_agree(
    trace_loader: TraceLoader, name: str
) -> None:
    trace = trace_loader(name)
    for conn in trace.ami_connections():
        chunks = trace.recv_chunks(conn)
        stream = b"".join(chunks)
        recorded = list(itertools.accumulate(len(c) for c in chunks))
        fast, slow = both(stream, recorded)
        assert fast == slow
        assert fast[0] or fast[4], "the connection has frames or at least a banner"
        if name.startswith(("01", "12")):
            fast, slow = both(stream, list(range(len(stream))))
            assert fast == slow


@FUZZ
@given(st.data())
def test_given_mutated_trace_any_chunking_and_limit_then_paths_agree(
    trace_loader: TraceLoader, data: st.DataObject
) -> None:
    trace = trace_loader(data.draw(st.sampled_from(ALL_TRACES)))
    stream = bytearray(b"".join(trace.recv_chunks(trace.ami_connections()[0])))
    rng = random.Random(data.draw(st.integers(0, 2**32)))
    start = rng.randrange(len(stream))
    stream = stream[start : start + rng.randint(1, 6000)]
    for _ in range(data.draw(st.integers(0, 30))):
        pos = rng.randrange(len(stream) + 1)
        action = rng.choice(("insert", "replace", "delete"))
        if action == "delete":
            del stream[pos : pos + rng.randint(1, 40)]
        else:
            piece = rng.choice(MUTATIONS)
            stream[pos : pos + (len(piece) if action == "replace" else 0)] = piece
    stream += END
    cuts = [rng.randrange(len(stream) + 1) for _ in range(data.draw(st.integers(0, 60)))]
    options = {
        "line_ending": data.draw(st.sampled_from(["auto", "crlf", "lf"])),
        "expect_banner": data.draw(st.booleans()),
        "max_message": data.draw(st.sampled_from([64 * 1024, 2000, 300, 100])),
        "empty_frames": data.draw(st.booleans()),
    }
    fast, slow = both(bytes(stream), cuts, **options)
    assert fast == slow


def test_given_odd_message_between_clean_ones_then_only_it_is_dropped() -> None:
    decoder = FrameDecoder(expect_banner=False)
    frames = decoder.feed(
        b"Event: A\r\n\r\n\r\nEvent: B\r\nno colon\r\nX: y\r\n\r\nEvent: C\r\nK:  v: w\r\n\r\n"
    )
    assert [f.items() for f in frames] == [
        (("Event", "A"),),
        (("Event", "C"), ("K", " v: w")),
    ]
    assert [(e.reason, e.data) for e in decoder.errors] == [
        ("line-without-colon", b"Event: B\r\nno colon\r\n")
    ]
    assert decoder.stray_blank_lines == 1


def test_given_message_split_everywhere_then_one_frame_and_linear_scan() -> None:
    message = b"Event: Big\r\n" + b"X: " + b"y" * 30_000 + b"\r\n\r\n"
    decoder = FrameDecoder(expect_banner=False)
    frames = [f for i in range(len(message)) for f in decoder.feed(message[i : i + 1])]
    assert [f["Event"] for f in frames] == ["Big"] and frames[0].raw == message
    assert decoder.buffered_bytes == 0


@pytest.mark.parametrize("flood", [b"z" * 4096, b"Event: Flood\r\n" + b"X: y\r\n" * 400])
def test_given_flood_after_clean_messages_then_bounded_and_resync(flood: bytes) -> None:
    decoder = FrameDecoder(expect_banner=False)
    assert [f["Event"] for f in decoder.feed(b"Event: Before\r\n\r\n")] == ["Before"]
    for _ in range(200):
        assert decoder.feed(flood) == []
        assert decoder.buffered_bytes <= MAX_MESSAGE_BYTES
    assert decoder.error_count == 1
    frames = decoder.feed(b"\r\n\r\nEvent: After\r\n\r\n")
    assert [f["Event"] for f in frames] == ["After"]
    assert decoder.feed(b"Event: Next\r\n\r\n")[0]["Event"] == "Next"


# --------------------------------------------------------------------------- Frame lookups


def test_given_repeated_keys_in_any_case_then_first_wins_and_all_are_kept() -> None:
    frame = Frame((("event", "Newexten"), ("AppData", "x"), ("Event", "FakeEvent"), ("A", "1")))
    assert frame["EVENT"] == frame.get("Event") == "Newexten"
    assert frame.getall("Event") == ("Newexten", "FakeEvent")
    assert frame.count("Event") == 2 and frame.count("a") == 1 and frame.count("Nope") == 0
    assert frame.getall("a") == ("1",) and frame.getall("Nope") == ()
    assert "appdata" in frame and "Nope" not in frame


def test_given_frames_with_and_without_lookups_then_equal() -> None:
    fields = (("Event", "Hangup"), ("Channel", "PJSIP/8001-00000001"))
    looked_up = Frame(fields, b"raw")
    assert looked_up["Channel"] == "PJSIP/8001-00000001"
    assert looked_up == Frame(fields, b"raw") and hash(looked_up) == hash(Frame(fields, b"raw"))
    assert "_index" not in repr(looked_up)
