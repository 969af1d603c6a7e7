"""The trace comparison itself: it must see what differs, and only what may not differ."""

from __future__ import annotations

from callcenter.ami.codec import Frame
from tests.ami.conftest import TraceLoader
from tests.pbxsim.parity import Waiver, differences, expected_frames

JOIN = (
    ("Event", "QueueCallerJoin"),
    ("Channel", "Local/12348@from-trunk-00000000;2"),
    ("Uniqueid", "1795254061.1"),
    ("Queue", "legal-consult"),
    ("Position", "1"),
)
LEAVE = (("Event", "QueueCallerLeave"), *JOIN[1:])


def changed(fields: tuple[tuple[str, str], ...], key: str, value: str) -> Frame:
    return Frame(tuple((k, value if k == key else v) for k, v in fields))


def test_identical_messages_have_no_differences() -> None:
    assert differences([Frame(JOIN), Frame(LEAVE)], [Frame(JOIN), Frame(LEAVE)]) == []


def test_order_of_messages_counts() -> None:
    [problem] = differences([Frame(LEAVE), Frame(JOIN)], [Frame(JOIN), Frame(LEAVE)])
    assert problem.startswith("message names differ")


def test_order_of_keys_counts() -> None:
    swapped = Frame((JOIN[0], JOIN[1], JOIN[2], JOIN[4], JOIN[3]))
    [problem] = differences([swapped], [Frame(JOIN)])
    assert "keys" in problem


def test_stable_values_count_ids_do_not() -> None:
    assert differences([changed(JOIN, "Uniqueid", "1.1")], [Frame(JOIN)]) == []
    [problem] = differences([changed(JOIN, "Position", "2")], [Frame(JOIN)])
    assert "Position='2' != '1'" in problem


def test_waiver_covers_only_its_keys() -> None:
    waiver = Waiver("test", keys=lambda f: frozenset({"Position"}))
    assert differences([changed(JOIN, "Position", "2")], [Frame(JOIN)], [waiver]) == []
    assert differences([changed(JOIN, "Queue", "x")], [Frame(JOIN)], [waiver]) != []


def test_expected_frames_leave_out_lab_artefacts_only(traces: TraceLoader) -> None:
    """Trace 01: no caller-phone (``;1``) event, no generator OriginateResponse, no login
    events; trace 04: the platform's Redirect responses stay."""
    frames = expected_frames(traces("01-ivr-queue-answer-mixmonitor"))
    assert not any((f.get("Channel") or "").endswith("00000000;1") for f in frames)
    names = {f.name for f in frames}
    assert names.isdisjoint({"OriginateResponse", "FullyBooted", "SuccessfulAuth", "VarSet"})
    assert {"Newexten", "AgentConnect", "Hangup", "QueueMemberStatus"} <= names
    redirect = expected_frames(traces("04-redirect-blind-transfer-to-12345"))
    messages = [f.get("Message") for f in redirect if f.is_response]
    assert messages == [
        "Redirect successful",
        "Channel does not exist: Local/nonexistent-00000000;2",
        "Priority not specified",
    ]
