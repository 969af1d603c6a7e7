"""The AMI codec against the real traces, random TCP chunking, garbage and injection attempts."""

from __future__ import annotations

import itertools
import random
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callcenter.ami.codec import (
    MAX_MESSAGE_BYTES,
    AmiEncodingError,
    AmiInjectionError,
    Frame,
    FrameDecoder,
    MalformedFrame,
    display_text,
    encode_action,
    has_undecodable,
    raw_bytes,
)
from tests.ami.conftest import ALL_TRACES, Trace, TraceLoader

FUZZ = settings(
    max_examples=60,
    deadline=timedelta(seconds=2),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def oracle_frames(trace: Trace, conn: str) -> list[Frame]:
    """Frames cut from the transcript the simple way: whole messages, CRLF lines, ': ' split."""
    frames = []
    for message in trace.incoming(conn):
        if message.note == "(banner)":
            continue
        for chunk in message.data.split(b"\r\n\r\n"):
            body = chunk.lstrip(b"\r\n")
            if not body:
                continue
            fields = []
            for line in body.split(b"\r\n"):
                key, _, value = line.partition(b":")
                value = value[1:] if value.startswith(b" ") else value
                fields.append(
                    (
                        key.decode("utf-8", "surrogateescape"),
                        value.decode("utf-8", "surrogateescape"),
                    )
                )
            frames.append(Frame(tuple(fields), body + b"\r\n\r\n"))
    return frames


def feed_chunks(decoder: FrameDecoder, chunks: list[bytes]) -> list[Frame]:
    frames: list[Frame] = []
    for chunk in chunks:
        frames += decoder.feed(chunk)
    return frames


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(data), *cuts})
    return [data[a:b] for a, b in itertools.pairwise(points)]


# --------------------------------------------------------------------------- traces


def test_every_trace_file_is_replayed(traces_dir: Path) -> None:
    assert {p.stem for p in traces_dir.glob("*.jsonl")} == set(ALL_TRACES)


@pytest.mark.parametrize("name", ALL_TRACES)
def test_given_trace_chunks_when_decoded_then_frames_equal_transcript(
    trace_loader: TraceLoader, name: str
) -> None:
    trace = trace_loader(name)
    for conn in trace.ami_connections():
        chunks = trace.recv_chunks(conn)
        assert b"".join(chunks) == b"".join(m.data for m in trace.incoming(conn))
        decoder = FrameDecoder()
        frames = feed_chunks(decoder, chunks)
        assert decoder.banner is not None and decoder.banner.text == "Asterisk Call Manager/11.0.0"
        assert frames == oracle_frames(trace, conn), conn
        assert decoder.error_count == 0
        assert decoder.buffered_bytes == 0


@pytest.mark.parametrize("name", ["02c-ivr-hangup-before-choice", "12-odd-caller-names"])
def test_given_one_byte_reads_when_decoded_then_same_frames(
    trace_loader: TraceLoader, name: str
) -> None:
    trace = trace_loader(name)
    data = b"".join(trace.recv_chunks("ami1"))
    decoder = FrameDecoder()
    frames = feed_chunks(decoder, [data[i : i + 1] for i in range(len(data))])
    assert frames == trace.frames("ami1")
    assert decoder.banner is not None


@FUZZ
@given(st.data())
def test_given_random_chunking_when_decoded_then_same_frames(
    trace_loader: TraceLoader, data: st.DataObject
) -> None:
    trace = trace_loader(data.draw(st.sampled_from(ALL_TRACES)))
    conn = data.draw(st.sampled_from(trace.ami_connections()))
    stream = b"".join(trace.recv_chunks(conn))
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=300))
    assert feed_chunks(FrameDecoder(), split_at(stream, cuts)) == trace.frames(conn)


def test_given_cuts_inside_every_multibyte_character_then_text_is_intact(
    trace_loader: TraceLoader,
) -> None:
    stream = b"".join(trace_loader("01-ivr-queue-answer-mixmonitor").recv_chunks("ami1"))
    cuts = [i for i, byte in enumerate(stream) if 0x80 <= byte < 0xC0]  # continuation bytes
    frames = feed_chunks(FrameDecoder(), split_at(stream, cuts))
    names = {f.get("CallerIDName") for f in frames if f.get("Event") == "NewCallerid"}
    assert "张三" in names
    assert not any(has_undecodable(v) for f in frames for _, v in f.items())


def test_given_gbk_caller_name_then_bytes_survive(trace_loader: TraceLoader) -> None:
    frames = trace_loader("12-odd-caller-names").frames()
    gbk = [
        f["CallerIDName"]
        for f in frames
        if f.get("Event") == "NewCallerid" and has_undecodable(f["CallerIDName"])
    ]
    assert gbk, "trace 12 has a GBK-encoded CallerIDName"
    assert raw_bytes(gbk[0]) == b"\xd5\xc5\xc8\xfd"
    assert display_text(gbk[0]) == "张三"
    display_text(gbk[0]).encode("utf-8")  # clean text: no lone surrogates


def test_given_escaped_crlf_in_name_then_value_keeps_the_characters(
    trace_loader: TraceLoader,
) -> None:
    frames = trace_loader("12-odd-caller-names").frames()
    names = {f["CallerIDName"] for f in frames if f.get("Event") == "NewCallerid"}
    assert "坏人\\r\\nEvent: FakeEvent\\r\\nX: y" in names


def test_given_raw_cr_lf_in_cdr_callerid_then_one_value(trace_loader: TraceLoader) -> None:
    frames = trace_loader("12-odd-caller-names").frames()
    cdr = [f for f in frames if f.get("Event") == "Cdr" and "\r" in f["CallerID"]]
    assert cdr
    assert cdr[0]["CallerID"].startswith('"坏人\\\r\\\nEvent: FakeEvent')
    assert cdr[0]["Channel"].startswith("Local/")


def test_given_forged_message_then_it_is_a_separate_frame(trace_loader: TraceLoader) -> None:
    frames = trace_loader("12-odd-caller-names").frames()
    forged = [f for f in frames if f.get("Channel") == "Local/forged-00000000;2"]
    assert [f.items() for f in forged] == [
        (("Event", "Hangup"), ("Channel", "Local/forged-00000000;2"), ("Cause", "16"))
    ]


def test_given_injected_header_in_appdata_then_first_event_wins(trace_loader: TraceLoader) -> None:
    frames = trace_loader("12-odd-caller-names").frames()
    tampered = [f for f in frames if len(f.getall("Event")) > 1]
    assert tampered and tampered[0]["Event"] == "Newexten"
    assert tampered[0].getall("Event") == ("Newexten", "FakeEvent")


def test_given_chanvariable_lines_then_getall_returns_them(trace_loader: TraceLoader) -> None:
    frames = trace_loader("13-variant-systemname-timestamp-chanvars").frames()
    with_vars = [f for f in frames if f.getall("ChanVariable")]
    assert with_vars
    assert all(
        v.partition("=")[0] in {"HOTLINE_SERVICE", "CDR(userfield)"}
        for f in with_vars
        for v in f.getall("ChanVariable")
    )


# --------------------------------------------------------------------------- framing details


def test_frame_access() -> None:
    frame = FrameDecoder(expect_banner=False).feed(
        b"Event: Test\r\nchanvariable: A=1\r\nChanVariable: B=2\r\nEmpty: \r\n\r\n"
    )[0]
    assert frame["event"] == "Test"
    assert frame.get("Missing") is None
    assert frame.getall("ChanVariable") == ("A=1", "B=2")
    assert frame["Empty"] == ""
    assert "Event" in frame and "Nope" not in frame
    assert frame.name == "Test" and frame.is_event and not frame.is_response
    with pytest.raises(KeyError):
        frame["Nope"]


def test_given_lf_only_input_then_frames() -> None:
    decoder = FrameDecoder(expect_banner=False)
    frames = decoder.feed(b"Action: Ping\nActionID: lf-only-1\n\nAction:Ping\n\n")
    assert [f.items() for f in frames] == [
        (("Action", "Ping"), ("ActionID", "lf-only-1")),
        (("Action", "Ping"),),
    ]
    assert decoder.line_ending == "lf"


def test_given_lf_mode_then_crlf_lines_are_accepted_too() -> None:
    decoder = FrameDecoder(line_ending="lf", expect_banner=False)
    frames = decoder.feed(b"Action: Ping\nActionID: a\r\n\r\nAction: Ping\r\n\r\n")
    assert [f["Action"] for f in frames] == ["Ping", "Ping"]


def test_given_value_spacing_then_kept_exactly() -> None:
    frame = FrameDecoder(expect_banner=False).feed(
        b"Output:    Members: \r\nA:b\r\nC:  d\r\nE: f: g\r\n\r\n"
    )[0]
    assert frame.items() == (("Output", "   Members: "), ("A", "b"), ("C", " d"), ("E", "f: g"))


def test_given_blank_lines_between_messages_then_ignored() -> None:
    decoder = FrameDecoder()
    frames = decoder.feed(
        b"Asterisk Call Manager/11.0.0\r\n\r\n\r\nEvent: A\r\n\r\n\r\nEvent: B\r\n\r\n"
    )
    assert [f["Event"] for f in frames] == ["A", "B"]
    assert decoder.stray_blank_lines == 3


def test_given_no_banner_then_first_line_is_a_header() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(b"Event: A\r\n\r\n")[0]["Event"] == "A"
    assert decoder.banner is None


# --------------------------------------------------------------------------- malformed input


def test_given_line_without_colon_then_malformed_and_resync() -> None:
    seen: list[MalformedFrame] = []
    decoder = FrameDecoder(expect_banner=False, on_error=seen.append)
    frames = decoder.feed(b"Event: A\r\ngarbage line\r\nMore: x\r\n\r\nEvent: B\r\n\r\n")
    assert [f["Event"] for f in frames] == ["B"]
    assert [m.reason for m in seen] == ["line-without-colon"]
    assert seen[0].data == b"Event: A\r\ngarbage line\r\n"


def test_given_oversize_message_then_malformed_truncated_and_resync() -> None:
    seen: list[MalformedFrame] = []
    decoder = FrameDecoder(expect_banner=False, on_error=seen.append)
    big = b"Event: Big\r\n" + b"X: " + b"y" * 100 + b"\r\n"
    frames = decoder.feed(big * 700 + b"\r\nEvent: Next\r\n\r\n")
    assert [f["Event"] for f in frames] == ["Next"]
    assert [m.reason for m in seen] == ["oversize-message"]
    assert len(seen[0].data) <= 256 and seen[0].size > MAX_MESSAGE_BYTES


def test_given_unterminated_flood_then_memory_bounded_and_resync() -> None:
    decoder = FrameDecoder(expect_banner=False)
    for _ in range(200):
        assert decoder.feed(b"z" * 4096) == []
        assert decoder.buffered_bytes <= MAX_MESSAGE_BYTES
    assert decoder.error_count == 1
    frames = decoder.feed(b"\r\n\r\nEvent: After\r\n\r\n")
    assert [f["Event"] for f in frames] == ["After"]


def test_given_failing_error_hook_then_feed_does_not_raise() -> None:
    def hook(bad: MalformedFrame) -> None:
        raise RuntimeError("boom")

    decoder = FrameDecoder(expect_banner=False, on_error=hook)
    assert decoder.feed(b"no colon\r\n\r\nEvent: Ok\r\n\r\n")[0]["Event"] == "Ok"
    assert decoder.error_count == 1


GOOD = b"Event: Good\r\nCallerIDName: \xe5\xbc\xa0\xe4\xb8\x89\r\n\r\n"


@FUZZ
@given(st.binary(max_size=4096), st.lists(st.integers(0, 4096), max_size=20))
def test_fuzz_arbitrary_bytes_never_raise_and_resync(garbage: bytes, cuts: list[int]) -> None:
    decoder = FrameDecoder()
    for chunk in split_at(garbage, [c for c in cuts if c <= len(garbage)]):
        decoder.feed(chunk)
        assert decoder.buffered_bytes <= MAX_MESSAGE_BYTES
    frames = decoder.feed(b"\r\n\r\n" + GOOD)
    assert frames and frames[-1].items() == (("Event", "Good"), ("CallerIDName", "张三"))


MUTATION_BYTES = [b"\r", b"\n", b"\r\n", b"\r\n\r\n", b":", b"\x00", b"\xff", b"\xe5\xbc", b" "]


@FUZZ
@given(st.data())
def test_fuzz_mutated_real_frames_never_raise(
    trace_loader: TraceLoader, data: st.DataObject
) -> None:
    frames = trace_loader("01-ivr-queue-answer-mixmonitor").frames()
    stream = bytearray(
        b"".join(
            f.raw for f in data.draw(st.lists(st.sampled_from(frames), min_size=1, max_size=8))
        )
    )
    rng = random.Random(data.draw(st.integers(0, 2**32)))
    for _ in range(data.draw(st.integers(1, 20))):
        pos = rng.randrange(len(stream) + 1)
        action = rng.choice(("insert", "replace", "delete"))
        if action == "delete":
            del stream[pos : pos + rng.randint(1, 8)]
        else:
            piece = rng.choice(MUTATION_BYTES)
            stream[pos : pos + (len(piece) if action == "replace" else 0)] = piece
    decoder = FrameDecoder(expect_banner=False)
    for chunk in split_at(bytes(stream), [rng.randrange(len(stream) + 1) for _ in range(10)]):
        for frame in decoder.feed(chunk):
            assert frame.raw.endswith(b"\n")
    assert decoder.feed(b"\r\n\r\n" + GOOD)[-1]["Event"] == "Good"


# --------------------------------------------------------------------------- encoder


def test_given_login_then_bytes_equal_the_trace(trace_loader: TraceLoader) -> None:
    sent = trace_loader("01-ivr-queue-answer-mixmonitor").outgoing("ami1")[0].data
    assert sent == encode_action(
        "Login",
        {"Secret": "hotline-secret-12348", "Username": "hotline"},
        "action/c072c7be-88db-493a-85be-71739707b1a0/1/1",
    )


def test_given_originate_with_variables_then_repeated_lines(trace_loader: TraceLoader) -> None:
    sent = [m.data for m in trace_loader("01-ivr-queue-answer-mixmonitor").outgoing("gen")][1]
    assert sent == encode_action(
        "Originate",
        {
            "Async": "true",
            "CallerID": '"张三" <13805730001>',
            "Channel": "Local/12348@from-trunk",
            "Context": "sim-caller",
            "Exten": "press",
            "Priority": "1",
            "Timeout": "30000",
            "Variable": ["SIM_WAIT1=2", "SIM_DIGITS=1", "SIM_STAY=14"],
        },
        "action/1a8a4bb3-da6b-4b9c-a3fb-e46947232cf4/1/2",
    )


BAD = ["\r", "\n", "\r\n", "\x00", "a\r\nEvent: Hangup", "x\n\nAction: Originate"]


@pytest.mark.parametrize("bad", BAD)
def test_given_control_char_in_value_then_refused(bad: str) -> None:
    with pytest.raises(AmiInjectionError, match="CallerID"):
        encode_action("Setvar", {"CallerID": f"张三{bad}"}, "id-1")


@pytest.mark.parametrize("bad", BAD)
def test_given_control_char_in_list_value_then_refused(bad: str) -> None:
    with pytest.raises(AmiInjectionError, match="Variable"):
        encode_action("Originate", {"Variable": ["A=1", f"B={bad}"]}, "id-1")


@pytest.mark.parametrize("bad", BAD)
def test_given_control_char_in_key_then_refused(bad: str) -> None:
    with pytest.raises(AmiInjectionError, match="key"):
        encode_action("Setvar", {f"Var{bad}": "x"}, "id-1")


@pytest.mark.parametrize("bad", BAD)
def test_given_control_char_in_name_or_action_id_then_refused(bad: str) -> None:
    with pytest.raises(AmiInjectionError, match="action name"):
        encode_action(f"Ping{bad}", {}, "id-1")
    with pytest.raises(AmiInjectionError, match="ActionID"):
        encode_action("Ping", {}, f"id{bad}")


@pytest.mark.parametrize("key", ["", "Channel: evil", "Two words", " Lead", "Action", "actionid"])
def test_given_bad_key_then_refused(key: str) -> None:
    with pytest.raises(AmiEncodingError):
        encode_action("Setvar", {key: "x"}, "id-1")


def test_given_too_long_line_then_refused() -> None:
    with pytest.raises(AmiEncodingError, match="1024"):
        encode_action("Originate", {"Variable": ["X=" + "y" * 1100]}, "id-1")


def test_given_non_str_value_then_refused() -> None:
    with pytest.raises(AmiEncodingError):
        encode_action("Originate", {"Variable": [1]}, "id-1")  # type: ignore[list-item]


_SAFE_TEXT = st.text(
    st.characters(blacklist_characters="\r\n\x00", blacklist_categories=["Cs"]), max_size=60
)


@FUZZ
@given(
    st.dictionaries(st.from_regex(r"\A[A-Za-z][A-Za-z0-9_-]{0,20}\Z"), _SAFE_TEXT, max_size=6),
    _SAFE_TEXT,
)
def test_given_safe_fields_then_round_trip(fields: dict[str, str], action_id: str) -> None:
    fields = {k: v for k, v in fields.items() if k.lower() not in ("action", "actionid")}
    wire = encode_action("Test", fields, action_id)
    frame = FrameDecoder(expect_banner=False).feed(wire)[0]
    assert frame.items() == (("Action", "Test"), ("ActionID", action_id), *fields.items())
    assert frame.raw == wire


@FUZZ
@given(_SAFE_TEXT, st.sampled_from(["\r", "\n", "\x00"]), _SAFE_TEXT)
def test_given_any_forbidden_char_then_refused_before_output(a: str, bad: str, b: str) -> None:
    with pytest.raises(AmiInjectionError):
        encode_action("Test", {"Ok": "fine", "Field": a + bad + b}, "id")
