"""Rebuild after a reconnect from the real list-action answers of trace 03 (and 10).

Trace 03 asks ``CoreShowChannels``, ``QueueStatus`` and ``QueueSummary`` while call A (张三) talks
to seat 8002 and call B (钱七) waits in ``mediation``; both end later in the trace.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from callcenter.ami.events import CallOffered, CallQueued
from callcenter.ami.normalize import Normalizer
from callcenter.db.engine import make_engine, make_sessionmaker
from callcenter.db.models import Call
from callcenter.state import CallRecorder, LiveState, rebuild_from_ami
from callcenter.state.resync import SendList
from tests.state.conftest import Ticker, Traces, normalize

Sessions = async_sessionmaker[AsyncSession]
CSC = "CoreShowChannels"


@pytest.fixture
def node() -> str:
    return f"node-{uuid.uuid4().hex[:8]}"


@pytest_asyncio.fixture
async def sessions(db_url: str) -> AsyncIterator[Sessions]:
    engine = make_engine(db_url)
    yield make_sessionmaker(engine)
    await engine.dispose()


def sender(traces: Traces, prefix: str, occurrences: dict[str, int]) -> SendList:
    """``send(action)`` answering with the items Asterisk really sent for that action."""

    async def send(action: str) -> Sequence[dict[str, Any]]:
        return traces.list_items(prefix, action, occurrences.get(action, -1))

    return send


def ghost_events(node: str) -> list[Any]:
    """A caller we saw join a queue, who hung up while the AMI connection was down."""
    return [
        CallOffered(
            node=node,
            uniqueid="ghost.2",
            linkedid="ghost.1",
            channel="PJSIP/t-1",
            caller_number="13805730999",
            caller_name="幽灵",
            called_number="12348",
            context="from-trunk",
        ),
        CallQueued(
            node=node,
            uniqueid="ghost.2",
            linkedid="ghost.1",
            channel="PJSIP/t-1",
            queue="city-330400",
            position=1,
            count=1,
        ),
    ]


async def test_resync_closes_vanished_calls_and_keeps_live_ones(
    live: LiveState, sessions: Sessions, traces: Traces, node: str
) -> None:
    normalizer = Normalizer(node)
    frames = traces.frames("03")
    before = traces.frames_before("03", CSC, occurrence=1)
    events = [*normalize(before, normalizer), *ghost_events(node)]
    recorder = CallRecorder(sessions, clock=Ticker())
    async with recorder:
        for event in events:
            await live.apply(event)
            recorder.handle(event)
        assert {c.caller_name for c in live.calls} == {"张三", "钱七", "幽灵"}

        send = sender(traces, "03", {CSC: 1})
        result = await rebuild_from_ami(send, live, node, recorder=recorder)
        assert [c.caller_name for c in result.closed] == ["幽灵"]
        assert result.created == ()
        by_name = {c.caller_name: c for c in live.calls}
        assert set(by_name) == {"张三", "钱七"}
        assert (by_name["张三"].state, by_name["张三"].agent_name) == ("talking", "李娜")
        assert (by_name["钱七"].state, by_name["钱七"].queue, by_name["钱七"].position) == (
            "queued",
            "mediation",
            1,
        )
        city = live.queue(node, "city-330400")
        assert city is not None and city.waiting == ()
        zhao = live.agent(node, "Local/8003@agent-phones/n")
        assert zhao is not None and (zhao.state, zhao.reason) == ("paused", "小休")

        await recorder.flush(10)
        ghost = await row(sessions, node, "ghost.1")
        assert (ghost.disposition, ghost.ended_at is not None) == ("ended_while_disconnected", True)
        still_open = {r.caller_name for r in await all_rows(sessions, node) if r.ended_at is None}
        assert still_open == {"张三", "钱七"}

        for event in normalize(frames[len(before) :], normalizer):
            await live.apply(event)
            recorder.handle(event)
        await recorder.flush(10)
    assert live.calls == []
    found = await all_rows(sessions, node)
    assert sorted((r.caller_name, r.disposition) for r in found) == [
        ("幽灵", "ended_while_disconnected"),
        ("张三", "answered"),
        ("钱七", "abandoned"),
    ]


async def test_fresh_process_rebuilds_live_calls_without_duplicate_rows(
    live: LiveState, sessions: Sessions, traces: Traces, node: str
) -> None:
    """The bridge restarted: live state, normalizer and recorder know nothing; then the rest
    of the stream (and a replay of what came before) must not duplicate a row."""
    frames = traces.frames("03")
    before = traces.frames_before("03", CSC, occurrence=1)
    earlier = CallRecorder(sessions, clock=Ticker())
    async with earlier:  # what the previous process wrote before it died
        for event in normalize(before, Normalizer(node)):
            earlier.handle(event)

    normalizer = Normalizer(node)
    recorder = CallRecorder(sessions, clock=Ticker())
    async with recorder:
        send = sender(traces, "03", {CSC: 1})
        result = await rebuild_from_ami(send, live, node, recorder=recorder, normalizer=normalizer)
        assert sorted(c.caller_name or "" for c in result.created) == ["张三", "钱七"]
        by_name = {c.caller_name: c for c in live.calls}
        assert (by_name["张三"].state, by_name["张三"].agent_extension) == ("talking", "8002")
        assert (by_name["钱七"].state, by_name["钱七"].position) == ("queued", 1)
        queue = live.queue(node, "mediation")
        assert queue is not None and [w.caller_name for w in queue.waiting] == ["钱七"]
        seat = live.agent(node, "Local/8002@agent-phones/n")
        assert seat is not None and seat.current_call == by_name["张三"].linkedid

        for event in normalize(frames[len(before) :], normalizer):
            await live.apply(event)
            recorder.handle(event)
        await recorder.flush(10)
    assert live.calls == []
    found = await all_rows(sessions, node)
    assert sorted((r.caller_name, r.disposition) for r in found) == [
        ("张三", "answered"),
        ("钱七", "abandoned"),
    ]


async def test_resync_rebuilds_positions_of_waiting_callers(
    live: LiveState, traces: Traces, node: str
) -> None:
    """Trace 10's QueueStatus: three callers waiting with their positions and waits."""
    status = traces.list_items("10", "QueueStatus")
    entries = [i for i in status if i["Event"] == "QueueEntry"]
    channels = [{"Uniqueid": e["Uniqueid"], "Channel": e["Channel"]} for e in entries]
    params = [i for i in status if i["Event"] == "QueueParams"]
    members = [i for i in status if i["Event"] == "QueueMember"]
    result = await live.resync(node, channels, params, members, entries, now=2_000_000_000.0)
    assert len(result.created) == 3
    queue = live.queue(node, "legal-consult")
    assert queue is not None
    waits = [2_000_000_000.0 - w.since for w in queue.waiting]
    assert [w.position for w in queue.waiting] == [1, 2, 3]
    assert waits == sorted(waits, reverse=True) and waits[0] > 0
    assert [w.caller_name for w in queue.waiting] == ["韩三", "杨四", "朱五"]


async def test_resync_twice_is_idempotent(live: LiveState, traces: Traces, node: str) -> None:
    send = sender(traces, "03", {CSC: 1})
    await rebuild_from_ami(send, live, node)
    first = sorted(live.items(), key=lambda i: i.key)
    again = await rebuild_from_ami(send, live, node)
    assert again.closed == () and again.created == ()
    assert sorted(live.items(), key=lambda i: i.key) == first


async def row(sessions: Sessions, node: str, linkedid: str) -> Call:
    async with sessions() as session:
        found = await session.scalar(
            select(Call).where(Call.node == node, Call.linkedid == linkedid)
        )
        assert found is not None
        return found


async def all_rows(sessions: Sessions, node: str) -> list[Call]:
    async with sessions() as session:
        return list((await session.scalars(select(Call).where(Call.node == node))).all())
