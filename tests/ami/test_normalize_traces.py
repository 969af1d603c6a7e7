"""Normalized call events from the real traces (expectations from the traces' README table)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callcenter.ami.codec import Frame
from callcenter.ami.events import (
    AgentStateChanged,
    CallEnded,
    CallEvent,
    CallOffered,
    OriginateResult,
)
from callcenter.ami.normalize import (
    HANDLED_EVENTS,
    USED_EVENTS,
    Normalizer,
    is_inbound_caller,
)
from tests.ami.conftest import ALL_TRACES, TraceLoader

SCENARIOS = (
    "01",
    "02",
    "02b",
    "02c",
    "04",
    "04b",
    "04c",
    "05",
    "05c",
    "08",
    "09",
    "10",
    "12",
    "13",
)
ODD = ("from-trunk", "odd-callers")

Expected = list[tuple[str, dict[str, Any]]]


def trace_name(prefix: str) -> str:
    return next(n for n in ALL_TRACES if n.split("-")[0] == prefix)


def run(
    loader: TraceLoader, prefix: str, contexts: tuple[str, ...] = ("from-trunk",)
) -> tuple[Normalizer, list[CallEvent]]:
    normalizer = Normalizer("js-node1", inbound_contexts=contexts)
    events = [e for f in loader(trace_name(prefix)).frames() for e in normalizer.feed(f)]
    return normalizer, events


def call_events(events: list[CallEvent]) -> list[CallEvent]:
    return [e for e in events if not isinstance(e, AgentStateChanged | OriginateResult)]


def assert_sequence(events: list[CallEvent], expected: Expected) -> None:
    """Same event types in the same order; each listed field has the listed value."""
    assert [type(e).__name__ for e in events] == [name for name, _ in expected]
    for event, (_, fields) in zip(events, expected, strict=True):
        actual = {k: getattr(event, k) for k in fields}
        assert actual == fields, type(event).__name__


IVR_1 = [("IvrEntered", {"exten": "12348"}), ("IvrLeft", {"reason": "selected", "selection": "1"})]


def queue_answer(queue: str, member: str, interface: str, hold: int = 2) -> Expected:
    return [
        ("CallQueued", {"queue": queue, "position": 1, "count": 1}),
        ("AgentRinging", {"queue": queue, "member_name": member, "interface": interface}),
        (
            "CallAnswered",
            {"queue": queue, "member_name": member, "hold_time_s": hold, "ring_time_s": 2},
        ),
    ]


ENDED = ("CallEnded", {"cause": 16, "cause_text": "Normal Clearing"})
SEAT_8001 = "Local/8001@agent-phones/n"


def offered(number: str, name: str) -> tuple[str, dict[str, Any]]:
    return ("CallOffered", {"caller_number": number, "caller_name": name, "called_number": "12348"})


# --------------------------------------------------------------------------- scenarios


def test_01_ivr_queue_answer_recording(trace_loader: TraceLoader) -> None:
    _, events = run(trace_loader, "01")
    assert_sequence(
        call_events(events),
        [
            offered("13805730001", "张三"),
            *IVR_1,
            ("RecordingStarted", {"channel": "Local/12348@from-trunk-00000000;2"}),
            *queue_answer("legal-consult", "张伟", SEAT_8001),
            ENDED,
        ],
    )
    assert {e.uniqueid for e in call_events(events)} == {"1795254061.1"}
    assert {e.linkedid for e in call_events(events)} == {"1795254061.0"}
    seat = [(e.queue, e.state) for e in events if isinstance(e, AgentStateChanged)]
    assert seat == [("legal-consult", "in_call"), ("legal-consult", "ready")]


def test_02_abandon_after_unanswered_rings(trace_loader: TraceLoader) -> None:
    _, events = run(trace_loader, "02")
    ring = ("AgentRinging", {"queue": "legal-aid", "member_name": "王芳"})
    miss = ("AgentNoAnswer", {"ring_time_ms": 5000})
    assert_sequence(
        call_events(events),
        [
            offered("13905730002", "李四"),
            IVR_1[0],
            ("IvrLeft", {"selection": "2"}),
            ("CallQueued", {"queue": "legal-aid", "position": 1}),
            *[ring, miss] * 3,
            ring,
            (
                "CallAbandoned",
                {
                    "queue": "legal-aid",
                    "position": 1,
                    "original_position": 1,
                    "hold_time_s": 18,
                    "final": True,
                },
            ),
            ENDED,
        ],
    )


def test_02b_abandon_in_empty_queue(trace_loader: TraceLoader) -> None:
    _, events = run(trace_loader, "02b")
    assert_sequence(
        call_events(events),
        [
            ("CallOffered", {"caller_name": "王五"}),
            IVR_1[0],
            ("IvrLeft", {"selection": "3"}),
            ("CallQueued", {"queue": "mediation"}),
            ("CallAbandoned", {"queue": "mediation", "final": True}),
            ENDED,
        ],
    )


def test_02c_hangup_in_ivr(trace_loader: TraceLoader) -> None:
    _, events = run(trace_loader, "02c")
    assert_sequence(
        call_events(events),
        [
            ("CallOffered", {"caller_name": "赵六"}),
            IVR_1[0],
            ("IvrLeft", {"reason": "hangup", "selection": None}),
            ENDED,
        ],
    )


@pytest.mark.parametrize(
    ("prefix", "member", "middle", "transfer"),
    [
        (
            "04",
            "张伟",
            [],
            {"kind": "blind", "target": "12345@transfer-targets", "via": "Redirect"},
        ),
        (
            "04b",
            "李娜",
            [],
            {"kind": "blind", "target": "8003@transfer-targets", "via": "BlindTransfer"},
        ),
        (
            "04c",
            "张伟",
            [("CallHeld", {"channel": "Local/8001@agent-phones-00000012;1"})],
            {"kind": "attended", "target": "8003@transfer-targets", "via": "AttendedTransfer"},
        ),
    ],
)
def test_04_transfers(
    trace_loader: TraceLoader, prefix: str, member: str, middle: Expected, transfer: dict[str, Any]
) -> None:
    _, events = run(trace_loader, prefix)
    seat = f"Local/{'8002' if member == '李娜' else '8001'}@agent-phones/n"
    assert_sequence(
        call_events(events),
        [
            ("CallOffered", {}),
            *IVR_1,
            ("RecordingStarted", {}),
            *queue_answer("legal-consult", member, seat),
            *middle,
            ("CallTransferred", transfer),
            ENDED,
        ],
    )


def test_05_callback_is_an_originate_result_not_a_call(trace_loader: TraceLoader) -> None:
    _, events = run(trace_loader, "05")
    assert call_events(events) == []
    [result] = [e for e in events if isinstance(e, OriginateResult)]
    assert (result.success, result.reason_code, result.reason) == (True, 4, "answered")
    assert result.uniqueid is not None and result.uniqueid.startswith("cb-")  # the preset ChannelId
    assert result.action_id is not None and result.action_id.startswith("action/")


def test_05c_originate_failures(trace_loader: TraceLoader) -> None:
    _, events = run(trace_loader, "05c")
    results = [
        (e.success, e.reason_code, e.reason, e.uniqueid is None)
        for e in events
        if isinstance(e, OriginateResult)
    ]
    assert results == [
        (False, 5, "busy", True),
        (False, 3, "no_answer", True),
        (False, 8, "congestion", True),
        (False, 0, "failed", True),
        (False, 0, "failed", True),
        (True, 4, "answered", False),
    ]


def test_08_supervisor_legs_are_not_callers(trace_loader: TraceLoader) -> None:
    _, events = run(trace_loader, "08")
    assert_sequence(
        call_events(events),
        [
            ("CallOffered", {}),
            *IVR_1,
            ("RecordingStarted", {}),
            *queue_answer("legal-consult", "张伟", SEAT_8001),
            ENDED,
        ],
    )
    spies = [
        e
        for e in events
        if isinstance(e, OriginateResult) and e.channel and "supervisor" in e.channel
    ]
    assert len(spies) == 2


def test_09_timeout_abandon_is_not_final_and_overflows(trace_loader: TraceLoader) -> None:
    _, events = run(trace_loader, "09")
    ring_city = ("AgentRinging", {"queue": "city-330400", "member_name": "王芳"})
    assert_sequence(
        call_events(events),
        [
            ("CallOffered", {"caller_number": "057312348000", "caller_name": "卫十四"}),
            IVR_1[0],
            ("IvrLeft", {"selection": "4"}),
            ("CallQueued", {"queue": "city-330400"}),
            ring_city,
            ("AgentNoAnswer", {"ring_time_ms": 5000}),
            ring_city,
            ("AgentNoAnswer", {"ring_time_ms": 2000}),
            ("CallAbandoned", {"queue": "city-330400", "hold_time_s": 8, "final": False}),
            *queue_answer("province", "省中心-陈静", "Local/8004@agent-phones/n"),
            ENDED,
        ],
    )


def test_10_five_callers_positions_and_outcomes(trace_loader: TraceLoader) -> None:
    _, events = run(trace_loader, "10")
    queued = [(e.position, e.count) for e in events if type(e).__name__ == "CallQueued"]  # type: ignore[attr-defined]
    assert queued == [(1, 1), (2, 2), (3, 3), (4, 4), (5, 5)]
    callers = [e.uniqueid for e in events if isinstance(e, CallOffered)]
    outcome = {}
    for e in events:
        if type(e).__name__ in ("CallAnswered", "CallAbandoned"):
            outcome[e.uniqueid] = type(e).__name__
    assert [outcome[c] for c in callers] == ["CallAnswered"] * 4 + ["CallAbandoned"]
    [abandon] = [e for e in events if type(e).__name__ == "CallAbandoned"]
    assert (abandon.original_position, abandon.final) == (5, True)  # type: ignore[attr-defined]
    assert sum(isinstance(e, CallEnded) for e in events) == 5


@pytest.mark.parametrize("contexts", [("from-trunk",), ODD])
def test_12_forged_hangup_is_ignored(trace_loader: TraceLoader, contexts: tuple[str, ...]) -> None:
    normalizer, events = run(trace_loader, "12", contexts)
    forged = [
        f for reason, f in normalizer.rejected if f.get("Channel") == "Local/forged-00000000;2"
    ]
    assert [f["Event"] for f in forged] == ["Hangup"]
    assert normalizer.stats.untracked == 1
    assert normalizer.stats.tampered == 1  # the Newexten whose AppData carried "Event: FakeEvent"
    assert not any("forged" in (getattr(e, "channel", "") or "") for e in events)
    ended = [e for e in events if isinstance(e, CallEnded)]
    assert len(ended) == (5 if contexts == ODD else 0)


def test_12_names_are_clean_text(trace_loader: TraceLoader) -> None:
    _, events = run(trace_loader, "12", ODD)
    names = [e.caller_name for e in events if isinstance(e, CallOffered)]
    assert names[0] == "坏人\\r\\nEvent: FakeEvent\\r\\nX: y"
    for event in events:
        for value in dataclasses.asdict(event).values():
            if isinstance(value, str):
                value.encode("utf-8")  # no lone surrogates reach the platform
                assert "\r" not in value and "\n" not in value


def test_13_systemname_and_timestamps(trace_loader: TraceLoader) -> None:
    _, events = run(trace_loader, "13")
    assert_sequence(
        call_events(events),
        [
            ("CallOffered", {}),
            *IVR_1,
            ("RecordingStarted", {}),
            *queue_answer("legal-consult", "张伟", SEAT_8001),
            ENDED,
        ],
    )
    assert all(e.uniqueid and e.uniqueid.startswith("js-node1-") for e in call_events(events))
    assert all(isinstance(e.timestamp, float) and e.timestamp > 1.7e9 for e in events)
    assert all(e.node == "js-node1" for e in events)


def test_03_seat_states_and_seat_leg_recording(trace_loader: TraceLoader) -> None:
    _, events = run(trace_loader, "03")
    zhao = [
        (e.state, e.reason)
        for e in events
        if isinstance(e, AgentStateChanged) and e.member_name == "赵敏"
    ]
    assert zhao == [("logged_in", None), ("ready", None), ("paused", "小休"), ("logged_out", None)]
    recordings = [
        type(e).__name__
        for e in events
        if "Recording" in type(e).__name__ and "agent-phones" in e.channel
    ]  # type: ignore[attr-defined]
    assert recordings == ["RecordingStarted", "RecordingStopped"]
    abandons = [e for e in events if type(e).__name__ == "CallAbandoned"]
    assert [(a.queue, a.final) for a in abandons] == [("mediation", True)]  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- all traces


@pytest.mark.parametrize("prefix", SCENARIOS)
def test_given_trace_fed_twice_then_no_extra_events(trace_loader: TraceLoader, prefix: str) -> None:
    contexts = ODD if prefix == "12" else ("from-trunk",)
    normalizer, first = run(trace_loader, prefix, contexts)
    assert first
    again = [e for f in trace_loader(trace_name(prefix)).frames() for e in normalizer.feed(f)]
    assert again == []
    assert normalizer.active_calls == 0


@pytest.mark.parametrize("name", ALL_TRACES)
def test_given_each_frame_twice_then_same_events(trace_loader: TraceLoader, name: str) -> None:
    frames = trace_loader(name).frames(trace_loader(name).ami_connections()[0])
    once, twice = Normalizer("n"), Normalizer("n")
    expected = [e for f in frames for e in once.feed(f)]
    actual = [e for f in frames for e in twice.feed(f) + twice.feed(f)]
    assert actual == expected


@pytest.mark.parametrize("name", [n for n in ALL_TRACES if not n.startswith("12")])
def test_given_genuine_trace_then_nothing_rejected_as_forged(
    trace_loader: TraceLoader, name: str
) -> None:
    normalizer = Normalizer("n")
    for frame in trace_loader(name).frames(trace_loader(name).ami_connections()[0]):
        normalizer.feed(frame)
    assert (
        normalizer.stats.untracked,
        normalizer.stats.inconsistent,
        normalizer.stats.tampered,
    ) == (0, 0, 0)


def test_used_events_cover_handlers_and_exist_on_the_wire(trace_loader: TraceLoader) -> None:
    assert HANDLED_EVENTS <= USED_EVENTS
    seen = {
        f.get("Event")
        for name in ALL_TRACES
        for conn in trace_loader(name).ami_connections()
        for f in trace_loader(name).frames(conn)
    }
    assert seen >= USED_EVENTS
    assert "VarSet" not in USED_EVENTS and "Cdr" not in USED_EVENTS


# --------------------------------------------------------------------------- synthetic frames


def frame(*pairs: tuple[str, str]) -> Frame:
    return Frame(tuple(pairs))


def channel_frame(
    event: str, name: str, uid: str, context: str = "from-trunk", *extra: tuple[str, str]
) -> Frame:
    return frame(
        ("Event", event),
        ("Privilege", "call,all"),
        ("Channel", name),
        ("CallerIDNum", "13800000000"),
        ("CallerIDName", "测试"),
        ("Context", context),
        ("Exten", "12348"),
        ("Uniqueid", uid),
        ("Linkedid", uid),
        *extra,
    )


CALLER = "PJSIP/trunk-00000001"


def test_given_hangup_with_known_uniqueid_but_other_channel_then_rejected() -> None:
    normalizer = Normalizer("n")
    normalizer.feed(channel_frame("Newchannel", CALLER, "1.1"))
    forged = channel_frame(
        "Hangup", "Local/forged-00000000;2", "1.1", "from-trunk", ("Cause", "16")
    )
    assert normalizer.feed(forged) == []
    assert normalizer.stats.inconsistent == 1
    events = normalizer.feed(channel_frame("Hangup", CALLER, "1.1", "from-trunk", ("Cause", "16")))
    assert [type(e).__name__ for e in events] == ["CallOffered", "CallEnded"]
    assert normalizer.feed(channel_frame("Hangup", CALLER, "1.1")) == []
    assert normalizer.stats.ended == 1


def test_given_production_trunk_channel_then_offered_with_callerid() -> None:
    normalizer = Normalizer("n")
    assert normalizer.feed(channel_frame("Newchannel", CALLER, "1.1")) == []
    [event] = normalizer.feed(
        channel_frame("Newexten", CALLER, "1.1", "from-trunk", ("Application", "Answer"))
    )
    assert isinstance(event, CallOffered)
    assert (event.caller_number, event.caller_name, event.called_number) == (
        "13800000000",
        "测试",
        "12348",
    )


def test_given_gbk_caller_name_then_offered_name_is_decoded_and_flagged() -> None:
    gbk = b"\xd5\xc5\xc8\xfd".decode("utf-8", "surrogateescape")
    normalizer = Normalizer("n")
    new = channel_frame("Newchannel", CALLER, "1.1")
    normalizer.feed(Frame(tuple((k, gbk if k == "CallerIDName" else v) for k, v in new.items())))
    [event] = normalizer.feed(
        channel_frame("Newexten", CALLER, "1.1", "from-trunk", ("Application", "Answer"))
    )
    assert isinstance(event, CallOffered)
    assert (event.caller_name, event.caller_name_lossy) == ("张三", True)


def test_given_wrapuptime_then_wrap_up_after_complete() -> None:
    normalizer = Normalizer("n")
    member = (
        ("Queue", "q"),
        ("MemberName", "张伟"),
        ("Interface", "PJSIP/8001"),
        ("Wrapuptime", "15"),
        ("Paused", "0"),
    )
    normalizer.feed(
        frame(("Event", "QueueMemberStatus"), *member, ("Status", "2"), ("CallsTaken", "0"))
    )
    normalizer.feed(channel_frame("Newchannel", CALLER, "1.1"))
    normalizer.feed(channel_frame("QueueCallerJoin", CALLER, "1.1", "from-trunk", ("Queue", "q")))
    done = channel_frame(
        "AgentComplete",
        CALLER,
        "1.1",
        "from-trunk",
        ("Queue", "q"),
        ("Interface", "PJSIP/8001"),
        ("MemberName", "张伟"),
        ("DestUniqueid", "1.2"),
        ("Reason", "agent"),
    )
    states = [e.state for e in normalizer.feed(done) if isinstance(e, AgentStateChanged)]
    assert states == ["wrap_up"]


@pytest.mark.parametrize(
    ("channel", "context", "expected"),
    [
        ("PJSIP/trunk-0000000a", "from-trunk", True),
        ("Local/12348@from-trunk-00000000;2", "from-trunk", True),
        ("Local/12348@from-trunk-00000000;1", "from-trunk", False),
        ("Local/8001@agent-phones-00000001;2", "agent-phones", False),
        ("PJSIP/8001-00000003", "agent-phones", False),
        ("Local/13905730011@pstn-out-00000015;2", "pstn-out", False),
    ],
)
def test_who_is_the_caller(channel: str, context: str, expected: bool) -> None:
    assert is_inbound_caller(channel, context, ("from-trunk",)) is expected


_KEYS = [
    "Event",
    "Channel",
    "Uniqueid",
    "Linkedid",
    "Context",
    "Exten",
    "Queue",
    "Position",
    "Count",
    "Status",
    "Paused",
    "Interface",
    "Reason",
    "Response",
    "DestUniqueid",
    "Application",
    "Cause",
    "TransfereeUniqueid",
    "TransfereeChannel",
    "Result",
    "DestBridgeUniqueid",
    "BridgeUniqueid",
]


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.lists(
            st.tuples(
                st.sampled_from(_KEYS),
                st.one_of(
                    st.sampled_from(sorted(HANDLED_EVENTS)),
                    st.sampled_from(["1.1", "1.2", "x", "", "-1", "1e999"]),
                    st.text(max_size=8),
                ),
            ),
            max_size=10,
        ).map(
            lambda pairs: (
                Frame((("Event", "Newchannel"), *pairs))
                if pairs and pairs[0][0] != "Event"
                else Frame(tuple(pairs))
            )
        ),
        max_size=40,
    )
)
def test_fuzz_normalizer_never_raises(frames: list[Frame]) -> None:
    normalizer = Normalizer("n", inbound_contexts=("from-trunk", ""))
    for f in frames:
        normalizer.feed(f)
