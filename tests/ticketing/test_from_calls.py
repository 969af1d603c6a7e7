"""Every answered call becomes exactly one ticket: from the calls row, triggered by the live
state's bus message, swept up after a restart; and end to end with the PBX simulator."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from callcenter.db.models import Call, Seat
from callcenter.pbxsim.workload import TrafficConfig
from callcenter.services import build_services
from callcenter.settings import Settings
from callcenter.state.model import Change, LiveCall
from callcenter.state.publish import channel_of, compact
from tests.ticketing.conftest import CITY, TicketEnv
from ticketing.from_calls import CallTicketer, answered_call_key, ticket_for_call
from ticketing.models import CallTicket, Ticket, TicketHistory, TicketLink


async def _call(
    env: TicketEnv,
    *,
    answered: bool = True,
    number: str | None = None,
    service_type: str | None = "wage_arrears",
    extension: str | None = None,
    satisfaction: str | None = None,
) -> Call:
    async with env.services.sessionmaker() as session:
        now = datetime.now(UTC)
        call = Call(
            node="pbx1",
            linkedid=f"{time.time():.0f}.{uuid.uuid4().int % 10**8}",
            caller_number=number or f"139{uuid.uuid4().int % 10**8:08d}",
            caller_region_code=CITY,
            called_number="12348",
            service_type=service_type,
            queue_name=f"city-{CITY}",
            agent_extension=extension,
            offered_at=now - timedelta(seconds=40),
            answered_at=now if answered else None,
            satisfaction=satisfaction,
        )
        session.add(call)
        await session.commit()
        return call


async def _tickets_of(env: TicketEnv, call_id: int) -> list[Ticket]:
    async with env.services.sessionmaker() as session:
        rows = await session.scalars(select(Ticket).where(Ticket.source_call_id == call_id))
        return list(rows.all())


async def _seat(env: TicketEnv, user_id: int) -> str:
    extension = f"7{uuid.uuid4().int % 10**6:06d}"
    async with env.services.sessionmaker() as session:
        session.add(Seat(extension=extension, name="测试坐席", region_code=CITY, user_id=user_id))
        await session.commit()
    return extension


def _message(call: Call, *, answered: bool = True) -> tuple[str, dict[str, Any]]:
    """What live state publishes for this call (masked numbers and all)."""
    now = time.time()
    live = LiveCall(
        node=call.node,
        linkedid=call.linkedid,
        uniqueid=call.linkedid,
        caller_number=call.caller_number,
        caller_name=None,
        caller_region_code=CITY,
        region_code=CITY,
        state="talking" if answered else "queued",
        state_since=now,
        offered_at=now - 40,
        queue=call.queue_name,
        agent_extension=call.agent_extension if answered else None,
        answered_at=now if answered else None,
    )
    change = Change("calls", live.key, CITY, live)
    return channel_of(change), compact(change)


async def test_given_an_answered_call_when_ticketed_twice_or_at_once_then_exactly_one_ticket(
    tenv: TicketEnv,
) -> None:
    agent = await tenv.actor()
    call = await _call(tenv, extension=await _seat(tenv, agent.user_id))
    sessions = tenv.services.sessionmaker
    ids = await asyncio.gather(*(ticket_for_call(sessions, call.id) for _ in range(5)))
    assert len(set(ids)) == 1 and ids[0] is not None
    assert await ticket_for_call(sessions, call.id) == ids[0]
    [ticket] = await _tickets_of(tenv, call.id)
    assert (ticket.channel, ticket.caller_number, ticket.caller_region_code) == (
        "phone",
        call.caller_number,
        CITY,
    )
    assert (ticket.category, ticket.request_type, ticket.green_channel) == (
        "legal_aid",
        "help",
        True,
    )
    assert ticket.state == "accepted" and ticket.region_code == CITY
    assert ticket.created_by_id == agent.user_id  # the answering seat's user
    assert ticket.content.startswith("【待坐席补录】") and "法律援助" in ticket.content
    async with sessions() as session:
        history = (
            await session.scalars(select(TicketHistory).where(TicketHistory.ticket_id == ticket.id))
        ).all()
        links = await session.scalar(
            select(func.count()).select_from(CallTicket).where(CallTicket.call_id == call.id)
        )
    assert [h.action for h in history] == ["create"] and links == 1
    # the agent sees the full number of the ticket they created; the API serves it
    shown = (await tenv.get(agent, f"/api/tickets/{ticket.id}")).json()
    assert shown["caller_number"] == call.caller_number and shown["source_call_id"] == call.id


async def test_given_an_unanswered_call_then_no_ticket(tenv: TicketEnv) -> None:
    call = await _call(tenv, answered=False)
    assert await ticket_for_call(tenv.services.sessionmaker, call.id) is None
    assert await _tickets_of(tenv, call.id) == []


async def test_given_a_survey_answer_on_the_call_then_the_ticket_carries_it(
    tenv: TicketEnv,
) -> None:
    """The survey ran before the ticket was made (e.g. by the sweep after a restart)."""
    call = await _call(tenv, satisfaction="basically_satisfied")
    await ticket_for_call(tenv.services.sessionmaker, call.id)
    [ticket] = await _tickets_of(tenv, call.id)
    assert ticket.satisfaction == "basically_satisfied"


async def test_given_no_service_type_then_a_consultation_ticket(tenv: TicketEnv) -> None:
    call = await _call(tenv, service_type=None)
    await ticket_for_call(tenv.services.sessionmaker, call.id)
    [ticket] = await _tickets_of(tenv, call.id)
    assert (ticket.category, ticket.request_type, ticket.created_by_id) == (
        "legal_consultation",
        "consultation",
        None,
    )
    assert "未选择" in ticket.content


async def test_given_the_same_caller_again_then_the_call_ticket_is_linked_as_a_repeat(
    tenv: TicketEnv,
) -> None:
    number = f"139{uuid.uuid4().int % 10**8:08d}"
    first, second = await _call(tenv, number=number), await _call(tenv, number=number)
    one = await ticket_for_call(tenv.services.sessionmaker, first.id)
    two = await ticket_for_call(tenv.services.sessionmaker, second.id)
    async with tenv.services.sessionmaker() as session:
        link = await session.scalar(select(TicketLink).where(TicketLink.ticket_id == two))
    assert link is not None and link.related_ticket_id == one


def test_given_bus_messages_then_only_answered_calls_count() -> None:
    call = Call(node="n1", linkedid="1.1", caller_number="13800000000", queue_name="q")
    call.agent_extension = "8001"
    assert answered_call_key(_message(call)[1]) == ("n1", "1.1")
    assert answered_call_key(_message(call, answered=False)[1]) is None
    assert answered_call_key({"op": "remove", "kind": "calls", "key": "n1|1.1"}) is None
    assert answered_call_key({"op": "upsert", "kind": "calls", "item": "junk"}) is None


async def test_given_the_live_message_twice_when_subscribed_then_one_ticket(
    tenv: TicketEnv,
) -> None:
    bus = tenv.services.bus
    async with CallTicketer(tenv.services.sessionmaker, bus, sweep_every=3600) as ticketer:
        call = await _call(tenv, extension="8001")
        channel, data = _message(call)
        assert channel == f"live.{CITY}.calls"
        await bus.publish(channel, data)
        await bus.publish(channel, data)
        async with asyncio.timeout(10):
            while not await _tickets_of(tenv, call.id):
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        assert len(await _tickets_of(tenv, call.id)) == 1
        assert await ticketer.catch_up() == 0


async def test_given_the_message_before_the_row_when_recorded_late_then_still_ticketed(
    tenv: TicketEnv,
) -> None:
    bus = tenv.services.bus
    async with CallTicketer(tenv.services.sessionmaker, bus, sweep_every=3600):
        early = Call(node="pbx1", linkedid=f"late.{uuid.uuid4().hex[:12]}", queue_name="q")
        early.caller_number, early.agent_extension = "13905730002", "8002"
        await bus.publish(*_message(early))
        await asyncio.sleep(0.1)  # the recorder writes the row a moment later
        async with tenv.services.sessionmaker() as session:
            session.add(
                Call(
                    node="pbx1",
                    linkedid=early.linkedid,
                    caller_number="13905730002",
                    agent_extension="8002",
                    answered_at=datetime.now(UTC),
                )
            )
            await session.commit()
        async with asyncio.timeout(10):
            while True:
                async with tenv.services.sessionmaker() as session:
                    found = await session.scalar(
                        select(Ticket.id)
                        .join(Call, Call.id == Ticket.source_call_id)
                        .where(Call.linkedid == early.linkedid)
                    )
                if found is not None:
                    break
                await asyncio.sleep(0.05)


async def test_given_calls_answered_while_down_when_restarted_then_the_sweep_tickets_them_once(
    tenv: TicketEnv,
) -> None:
    missed = [await _call(tenv) for _ in range(3)]  # no ticketer ran: messages were lost
    sessions, bus = tenv.services.sessionmaker, tenv.services.bus
    async with CallTicketer(sessions, bus, sweep_every=3600) as ticketer:
        async with asyncio.timeout(10):  # the first sweep runs at start
            while [c for c in missed if not await _tickets_of(tenv, c.id)]:
                await asyncio.sleep(0.05)
        assert await ticketer.catch_up() == 0
    async with CallTicketer(sessions, bus, sweep_every=3600) as again:  # another restart
        assert await again.catch_up() == 0
    for call in missed:
        assert len(await _tickets_of(tenv, call.id)) == 1


@pytest.mark.slow
async def test_given_the_pbx_simulator_when_seats_answer_then_every_answered_call_has_one_ticket(
    make_settings: Callable[..., Settings], sqlite_url: str
) -> None:
    traffic = TrafficConfig(
        seed=5,
        start=1795395600.0,  # a Monday 09:00 in Shanghai: city seats answer
        speed=10.0,
        calls_per_hour=600.0,
        max_calls=8,
        ivr_s=(0.5, 1.0),
        ivr_hangup_share=0.0,
        talk_s=(20.0, 40.0),
        patience_s=(300.0, 400.0),
        agent_hangup_share=0.0,
        no_answer_share=0.0,
    )
    settings = make_settings(database_url=sqlite_url)
    async with build_services(settings, telephony=True, traffic=traffic) as services:
        tel = services.telephony
        assert tel is not None
        await tel.wait_connected(5.0)
        async with asyncio.timeout(60):
            while True:
                await tel.recorder.flush(5.0)
                async with services.sessionmaker() as session:
                    answered = set(
                        await session.scalars(select(Call.id).where(Call.answered_at.is_not(None)))
                    )
                    ticketed = set(await session.scalars(select(CallTicket.call_id)))
                if len(answered) >= 3 and answered <= ticketed:
                    break
                await asyncio.sleep(0.2)
        async with services.sessionmaker() as session:
            per_call = (
                await session.execute(
                    select(Ticket.source_call_id, func.count(Ticket.id))
                    .where(Ticket.source_call_id.in_(answered))
                    .group_by(Ticket.source_call_id)
                )
            ).all()
    assert {call_id for call_id, _ in per_call} == answered
    assert all(count == 1 for _, count in per_call)
