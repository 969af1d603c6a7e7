"""Live state from the real traces: FrameDecoder → Normalizer → LiveState."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from callcenter.ami.codec import Frame
from callcenter.ami.events import CallAnswered, CallEnded, CallEvent, CallOffered, CallQueued
from callcenter.ami.normalize import Normalizer
from callcenter.state import LiveState, Regions
from callcenter.state.model import Item, LiveAgent, LiveCall
from tests.state.conftest import NODE, Ticker, Traces, feed

SEAT_8001 = "Local/8001@agent-phones/n"
SEAT_8002 = "Local/8002@agent-phones/n"
SEAT_8004 = "Local/8004@agent-phones/n"
SEAT_8009 = "Local/8009@agent-phones/n"
ODD = ("from-trunk", "odd-callers")


async def feed_until(
    live: LiveState, events: list[CallEvent], stop: type[CallEvent], n: int = 1
) -> list[CallEvent]:
    """Apply events up to and including the ``n``-th of type ``stop``; return the rest."""
    seen = 0
    for i, event in enumerate(events):
        await live.apply(event)
        seen += isinstance(event, stop)
        if seen == n:
            return events[i + 1 :]
    raise AssertionError(f"fewer than {n} {stop.__name__} events")


def only_call(live: LiveState) -> LiveCall:
    [call] = live.calls
    return call


def agent(live: LiveState, interface: str) -> LiveAgent:
    found = live.agent(NODE, interface)
    assert found is not None
    return found


async def test_01_answered_call_then_gone(live: LiveState, traces: Traces) -> None:
    rest = await feed_until(live, traces.events("01"), CallAnswered)
    call = only_call(live)
    assert (call.state, call.queue, call.agent_name, call.agent_extension) == (
        "talking",
        "legal-consult",
        "张伟",
        "8001",
    )
    assert (call.caller_number, call.caller_name, call.ivr_path) == ("13805730001", "张三", ("1",))
    assert call.recording
    assert call.queued_at is not None and call.answered_at is not None
    assert call.offered_at < call.queued_at < call.answered_at
    # legal-consult belongs to no region: the call goes by the caller's (located in Jiaxing)
    assert (call.caller_region_code, call.region_code) == ("330400", "330400")
    assert agent(live, SEAT_8001).current_call == call.linkedid

    await feed(live, rest)
    assert live.calls == []
    queue = live.queue(NODE, "legal-consult")
    assert queue is not None and (queue.waiting, queue.answered_today) == ((), 1)
    seat = agent(live, SEAT_8001)
    assert (seat.state, seat.current_call, seat.answered_today, seat.missed_today) == (
        "ready",
        None,
        1,
        0,
    )
    assert seat.talk_seconds_today > 0


async def test_02_abandoned_after_ring_no_answer(live: LiveState, traces: Traces) -> None:
    rest = await feed_until(live, traces.events("02"), CallQueued)
    queue = live.queue(NODE, "legal-aid")
    assert queue is not None and [w.caller_name for w in queue.waiting] == ["李四"]
    await feed(live, rest)
    assert live.calls == []
    queue = live.queue(NODE, "legal-aid")
    assert queue is not None
    assert (queue.waiting, queue.abandoned_today, queue.answered_today) == ((), 1, 0)
    seat = agent(live, SEAT_8009)
    assert seat.missed_today == 1  # rang four times for one call: one missed call
    assert seat.region_code == "330400"  # member of city-330400 (and legal-aid)
    assert {m.queue for m in seat.queues} == {"city-330400", "legal-aid"}


async def test_09_overflow_moves_the_call_from_city_to_province(
    live: LiveState, traces: Traces
) -> None:
    events = traces.events("09")
    rest = await feed_until(live, events, CallQueued)
    assert (only_call(live).region_code, only_call(live).queue) == ("330400", "city-330400")
    rest = await feed_until(live, rest, CallQueued)
    call = only_call(live)
    assert (call.region_code, call.queue, call.state) == ("330000", "province", "queued")
    assert call.caller_region_code == "330400"
    city = live.queue(NODE, "city-330400")
    assert city is not None and (city.waiting, city.overflowed_today, city.abandoned_today) == (
        (),
        1,
        0,
    )
    await feed(live, rest)
    province = live.queue(NODE, "province")
    assert province is not None and province.answered_today == 1
    assert agent(live, SEAT_8004).answered_today == 1
    assert agent(live, SEAT_8004).region_code == "330000"


async def test_10_positions_follow_the_queue(live: LiveState, traces: Traces) -> None:
    rest = await feed_until(live, traces.events("10"), CallQueued, n=5)
    queue = live.queue(NODE, "legal-consult")
    assert queue is not None
    assert [(w.caller_name, w.position) for w in queue.waiting] == [
        ("蒋一", 1),
        ("沈二", 2),
        ("韩三", 3),
        ("杨四", 4),
        ("朱五", 5),
    ]
    assert queue.longest_wait_since == queue.waiting[0].since
    assert {c.caller_name: c.position for c in live.calls} == {
        "蒋一": 1,
        "沈二": 2,
        "韩三": 3,
        "杨四": 4,
        "朱五": 5,
    }
    rest = await feed_until(live, rest, CallAnswered, n=2)
    queue = live.queue(NODE, "legal-consult")
    assert queue is not None
    assert [(w.caller_name, w.position) for w in queue.waiting] == [
        ("韩三", 1),
        ("杨四", 2),
        ("朱五", 3),
    ]
    talking = sorted((c.caller_name, c.agent_name) for c in live.calls if c.state == "talking")
    assert talking == [("沈二", "张伟"), ("蒋一", "李娜")]
    await feed(live, rest)
    queue = live.queue(NODE, "legal-consult")
    assert queue is not None
    assert (queue.waiting, queue.answered_today, queue.abandoned_today) == ((), 4, 1)
    assert agent(live, SEAT_8001).answered_today + agent(live, SEAT_8002).answered_today == 4


async def test_12_forged_hangup_changes_nothing(live: LiveState, traces: Traces) -> None:
    normalizer = Normalizer(NODE, inbound_contexts=ODD)
    forged_seen = False
    for frame in traces.frames("12"):
        before = snapshot(live)
        for event in normalizer.feed(frame):
            await live.apply(event)
        if is_forged(frame):
            forged_seen = True
            assert snapshot(live) == before
            assert len(live.calls) == 1  # the second caller is still on the line
    assert forged_seen
    assert live.calls == []


def is_forged(frame: Frame) -> bool:
    return frame.get("Channel") == "Local/forged-00000000;2"


async def test_12_names_stay_clean_text(live: LiveState, traces: Traces) -> None:
    events = normalize_odd(traces)
    await feed_until(live, events, CallOffered)
    name = only_call(live).caller_name
    assert name == "坏人\\r\\nEvent: FakeEvent\\r\\nX: y"


def normalize_odd(traces: Traces) -> list[CallEvent]:
    normalizer = Normalizer(NODE, inbound_contexts=ODD)
    return [e for f in traces.frames("12") for e in normalizer.feed(f)]


def snapshot(live: LiveState) -> list[Item]:
    return sorted(live.items(), key=lambda i: i.key)


def without_since(items: list[Item]) -> list[Item]:
    return [replace(i, state_since=0.0) if isinstance(i, LiveAgent) else i for i in items]


async def test_each_event_twice_changes_nothing_the_second_time(
    regions: Regions, traces: Traces
) -> None:
    once, twice = LiveState(regions, clock=Ticker(step=0)), LiveState(regions, clock=Ticker(step=0))
    for prefix in ("01", "02", "09", "10"):
        for event in traces.events(prefix):
            first = await once.apply(event)
            assert await twice.apply(event) == first
            assert await twice.apply(event) == []
    assert snapshot(twice) == snapshot(once)


async def test_whole_trace_replayed_changes_no_call_or_counter(
    live: LiveState, traces: Traces
) -> None:
    events = [e for prefix in ("01", "02", "09", "10") for e in traces.events(prefix)]
    await feed(live, events)
    before = snapshot(live)
    await feed(live, events)
    assert live.calls == []
    assert without_since(snapshot(live)) == without_since(before)


async def test_today_counters_restart_at_local_midnight(regions: Regions, traces: Traces) -> None:
    shanghai = ZoneInfo("Asia/Shanghai")
    clock = Ticker(datetime(2026, 11, 21, 23, 59, tzinfo=shanghai).timestamp(), step=0.5)
    live = LiveState(regions, clock=clock, tz=shanghai)
    await feed(live, traces.events("01"))
    assert agent(live, SEAT_8001).answered_today == 1
    clock.now = datetime(2026, 11, 22, 0, 0, 1, tzinfo=shanghai).timestamp()
    await feed(live, traces.events("02")[:1])
    assert agent(live, SEAT_8001).answered_today == 0
    assert agent(live, SEAT_8001).talk_seconds_today == 0
    queue = live.queue(NODE, "legal-consult")
    assert queue is not None and queue.answered_today == 0


CALL_TRACES = (
    "01",
    "02",
    "02b",
    "02c",
    "04",
    "04b",
    "04c",
    "05",
    "05b",
    "06",
    "08",
    "09",
    "10",
    "13",
)


@pytest.mark.parametrize("prefix", CALL_TRACES)
async def test_every_trace_ends_with_nothing_live(
    live: LiveState, traces: Traces, prefix: str
) -> None:
    """Whatever happened (transfers, spying, callbacks), hung-up calls leave live state."""
    await feed(live, traces.events(prefix))
    assert live.calls == []
    assert all(q.waiting == () for q in live.queues)
    assert all(a.current_call is None for a in live.agents)


async def test_13_event_timestamps_are_used(live: LiveState, traces: Traces) -> None:
    """With ``timestampevents = yes`` the times come from Asterisk, not from our clock."""
    events = traces.events("13")
    assert all(e.timestamp is not None for e in events)
    answered = next(e for e in events if isinstance(e, CallAnswered))
    ended = next(e for e in events if isinstance(e, CallEnded))
    rest = await feed_until(live, events, CallAnswered)
    assert only_call(live).answered_at == answered.timestamp
    await feed(live, rest)
    talk = agent(live, SEAT_8001).talk_seconds_today
    assert answered.timestamp is not None and ended.timestamp is not None
    assert talk == pytest.approx(ended.timestamp - answered.timestamp)  # 3.2 s in this capture
