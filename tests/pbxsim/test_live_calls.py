"""AMI actions steering generated calls over real TCP: Hangup, Redirect, BlindTransfer, Atxfer.

One caller in 嘉兴 at a time (speed 50: a 400 s talk lasts 8 s real), one seat in its queue,
the provincial seats as transfer targets.  The events that follow each response are compared
with the traces (platform events, ``Newexten`` aside), and the normalizer must read them as the
transfer / abandon the action was.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest_asyncio

from callcenter.ami.codec import Frame, encode_action
from callcenter.ami.events import CallAbandoned, CallEnded, CallHeld, CallTransferred
from callcenter.ami.normalize import USED_EVENTS, Normalizer
from callcenter.pbxsim.inbound import InboundCall
from callcenter.pbxsim.province import SeatPlan, province_model
from callcenter.pbxsim.simulator import PbxSimulator
from callcenter.pbxsim.workload import TrafficConfig
from callcenter.regions.provinces import load_province, province_file
from tests.ami.conftest import Trace, TraceLoader
from tests.pbxsim.wire import AmiClient, login

PROVINCE = load_province(province_file("330000"))
Start = Callable[..., Awaitable[tuple[PbxSimulator, AmiClient]]]


@pytest_asyncio.fixture
async def start(traces: TraceLoader) -> AsyncIterator[Start]:
    made: list[tuple[PbxSimulator, AmiClient]] = []

    async def _start(city_seats: int = 1, **changes: Any) -> tuple[PbxSimulator, AmiClient]:
        config = TrafficConfig(
            seed=5,
            speed=50.0,
            calls_per_hour=0.0,
            city_rates={"330400": 3600.0},
            max_calls=1,
            ivr_s=(1.0, 1.0),
            ivr_hangup_share=0.0,
            answer_delay_s=(1.0, 1.0),
            no_answer_share=0.0,
            agent_hangup_share=0.0,
            talk_s=(400.0, 400.0),
            patience_s=(900.0, 900.0),
            city_timeout_s=900.0,
            **changes,
        )
        plan = SeatPlan(seats_per_city=city_seats, province_seats=2)
        sim = PbxSimulator(model=province_model(PROVINCE, plan), traffic=config)
        await sim.start()
        client = await AmiClient.connect(sim.server.port)
        await login(client, traces("01-ivr-queue-answer-mixmonitor"))
        made.append((sim, client))
        return sim, client

    yield _start
    for sim, client in made:
        await client.close()
        await sim.stop()


async def live_call(sim: PbxSimulator, phase: str) -> InboundCall:
    assert sim.traffic is not None
    for _ in range(300):
        calls = [c for c in sim.traffic.live.values() if c.phase == phase]
        if calls:
            return calls[0]
        await asyncio.sleep(0.01)
    raise AssertionError(f"no call reached {phase}")


async def act(client: AmiClient, action: str, **fields: str) -> list[Frame]:
    """Send an action; return every frame up to and including its response."""
    await client.send(encode_action(action, fields, f"{action}-1"))
    return await client.frames_until(lambda f: f.get("ActionID") == f"{action}-1")


async def after(client: AmiClient, last: Callable[[Frame], bool]) -> list[Frame]:
    return await client.frames_until(last)


def platform(frames: list[Frame]) -> list[str]:
    return [
        f["Event"]
        for f in frames
        if f.get("Event") in USED_EVENTS and f["Event"] not in ("Newexten", "OriginateResponse")
    ]


def trace_after(trace: Trace, needle: str, count: int, skip: str = ";1") -> list[str]:
    """Platform events after the response to ``needle`` (the lab's caller phone left out)."""
    frames = trace.frames()
    action_id = next(
        f["ActionID"] for f in frames if f.get("ActionID", "").endswith(needle) and f.is_response
    )
    index = next(i for i, f in enumerate(frames) if f.get("ActionID") == action_id)
    rest = [
        f
        for f in frames[index + 1 :]
        if not (f.get("Channel", "").endswith(skip) and "12348@" in f.get("Channel", ""))
    ]
    return platform(rest)[:count]


def normalized(frames: list[Frame]) -> list[Any]:
    normalizer = Normalizer("sim")
    return [e for f in frames for e in normalizer.feed(f)]


# --------------------------------------------------------------------------- tests


async def test_hangup_of_a_waiting_caller_is_a_final_abandon(
    start: Start, traces: TraceLoader
) -> None:
    sim, client = await start(city_seats=0)
    call = await live_call(sim, "queue")
    frames = await act(client, "Hangup", Channel=call.caller.name, Cause="16")
    assert (frames[-1]["Response"], frames[-1]["Message"]) == ("Success", "Channel Hungup")
    mine = await after(client, lambda f: f.get("Event") == "Hangup")
    expected = trace_after(traces("03-agent-actions-queue-and-status"), "/1/40", 4)
    assert platform(mine) == expected
    assert expected == ["QueueCallerAbandon", "QueueCallerLeave", "SoftHangupRequest", "Hangup"]
    frames += mine
    events = normalized(frames)
    abandon = next(e for e in events if isinstance(e, CallAbandoned))
    assert abandon.final and abandon.queue == "city-330400"
    assert isinstance(events[-1], CallEnded)


async def test_redirect_of_an_answered_caller(start: Start, traces: TraceLoader) -> None:
    sim, client = await start()
    call = await live_call(sim, "talk")
    frames = await act(
        client,
        "Redirect",
        Channel=call.caller.name,
        Context="transfer-targets",
        Exten="12345",
        Priority="1",
    )
    assert frames[-1]["Message"] == "Redirect successful"
    mine = await after(client, lambda f: f.get("Event") == "QueueMemberStatus")
    expected = trace_after(traces("04-redirect-blind-transfer-to-12345"), "/1/2", 7)
    assert platform(mine) == expected
    frames += mine
    frames += await act(client, "Hangup", Channel=call.caller.name)
    frames += await after(client, lambda f: f.get("Event") == "Hangup")
    events = normalized(frames)
    moved = next(e for e in events if isinstance(e, CallTransferred))
    assert (moved.via, moved.target) == ("Redirect", "12345@transfer-targets")
    assert any(f.get("Event") == "AgentComplete" and f["Reason"] == "caller" for f in frames)
    assert isinstance(events[-1], CallEnded)


async def test_blind_transfer_of_the_seat_leg(start: Start, traces: TraceLoader) -> None:
    sim, client = await start()
    call = await live_call(sim, "talk")
    assert call.leg is not None
    frames = await act(
        client,
        "BlindTransfer",
        Channel=call.leg.one.name,
        Context="transfer-targets",
        Exten="89001",
    )
    assert frames[-1]["Message"] == "Transfer succeeded"
    mine = await after(client, lambda f: f.get("Event") == "Hangup")
    expected = trace_after(traces("04b-blindtransfer-action-to-seat"), "/1/2", 7)
    assert platform(mine) == expected
    frames += mine
    frames += await after(
        client, lambda f: f.get("Event") == "BridgeEnter" and f["Channel"] == call.caller.name
    )
    assert call.party is not None and call.party.one.name.startswith("Local/89001@agent-phones-")
    events = normalized(frames)
    moved = next(e for e in events if isinstance(e, CallTransferred))
    assert (moved.kind, moved.via, moved.target) == (
        "blind",
        "BlindTransfer",
        "89001@transfer-targets",
    )
    complete = next(f for f in frames if f.get("Event") == "AgentComplete")
    assert complete["Reason"] == "transfer"


async def test_attended_transfer_completes_when_the_seat_hangs_up(start: Start) -> None:
    sim, client = await start()
    call = await live_call(sim, "talk")
    assert call.leg is not None
    seat = call.leg.one.name
    frames = await act(client, "Atxfer", Channel=seat, Context="transfer-targets", Exten="89002")
    assert frames[-1]["Message"] == "Atxfer successfully queued"
    frames += await after(
        client, lambda f: f.get("Event") == "BridgeEnter" and f["Channel"] == seat
    )
    refused = await act(client, "BlindTransfer", Channel=call.caller.name, Exten="1")
    assert refused[-1]["Response"] == "Error"
    frames += refused
    frames += await act(client, "Hangup", Channel=seat)
    frames += await after(client, lambda f: f.get("Event") == "QueueMemberStatus")
    names = platform(frames)
    assert names.index("Hold") < names.index("AttendedTransfer") < names.index("AgentComplete")
    events = normalized(frames)
    assert any(isinstance(e, CallHeld) for e in events)
    moved = next(e for e in events if isinstance(e, CallTransferred))
    assert (moved.kind, moved.via, moved.target) == (
        "attended",
        "AttendedTransfer",
        "89002@agent-phones",
    )


async def test_hangup_of_the_seat_leg_ends_the_call_by_the_agent(start: Start) -> None:
    sim, client = await start()
    call = await live_call(sim, "talk")
    assert call.leg is not None
    frames = await act(client, "Hangup", Channel=call.leg.one.name)
    frames += await after(
        client, lambda f: f.get("Channel") == call.caller.name and f.get("Event") == "Hangup"
    )
    complete = next(f for f in frames if f.get("Event") == "AgentComplete")
    assert complete["Reason"] == "agent"
    assert isinstance(normalized(frames)[-1], CallEnded)
    assert sim.stats.total().answered == 1
