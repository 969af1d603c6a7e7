"""SLA supervision: yellow/red cards and 督办 from a controllable clock, exactly once, on the bus.

The clock is the ticket service's (``env.now``, when the ticket is received) and the scanner's
``now``. The dates cross the 2026 National Day holiday (10-01..10-07 off, 10-08 a working
Thursday) and the make-up working Saturday 10-10 of the official calendar. Each test works on
its own tickets: the module's PostgreSQL database is shared by its tests and the scanner scans
every ticket in it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import func, select

from callcenter.bus.base import BusMessage, Subscription
from callcenter.bus.redis import RedisBus
from callcenter.db.engine import make_engine, make_sessionmaker
from callcenter.db.models import Role
from callcenter.routing.calendar import SHANGHAI
from tests.conftest import REDIS_URL, PgDatabases
from tests.ticketing.conftest import (
    CITY,
    OTHER_CITY,
    PROVINCE,
    OpenTickets,
    TicketEnv,
    own_pg_database,
)
from ticketing.models import SlaCard, Supervision, Ticket, TicketHistory
from ticketing.supervision import (
    SlaScanner,
    SupervisionPolicy,
    TicketClock,
    due_cards,
    working_time_between,
)

HUZHOU, SHAOXING, JINHUA = "330500", "330600", "330700"


def local(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=SHANGHAI)


@pytest_asyncio.fixture(scope="module")
async def sla_pg_url(pg_databases: PgDatabases) -> str:
    return await own_pg_database(pg_databases)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def sla_url(request: pytest.FixtureRequest) -> str:
    name = "sqlite_url" if request.param == "sqlite" else "sla_pg_url"
    return str(request.getfixturevalue(name))


@pytest_asyncio.fixture
async def senv(open_tickets: OpenTickets, sla_url: str) -> AsyncIterator[TicketEnv]:
    async with open_tickets(sla_url) as env:
        yield env


def scanner(env: TicketEnv) -> SlaScanner:
    return SlaScanner(env.services.sessionmaker, env.services.bus, tz=SHANGHAI)


async def cards_of(env: TicketEnv, tid: int) -> list[tuple[str, str]]:
    async with env.services.sessionmaker() as session:
        rows = await session.execute(
            select(SlaCard.deadline_kind, SlaCard.kind)
            .where(SlaCard.ticket_id == tid)
            .order_by(SlaCard.id)
        )
        return [(str(d), str(k)) for d, k in rows]


async def supervisions_of(env: TicketEnv, tid: int) -> list[Supervision]:
    async with env.services.sessionmaker() as session:
        rows = await session.scalars(
            select(Supervision).where(Supervision.ticket_id == tid).order_by(Supervision.id)
        )
        return list(rows.all())


async def receive(env: TicketEnv, at: datetime, **fields: Any) -> int:
    """A ticket received at ``at`` (the service's clock), in 嘉兴 unless told otherwise."""
    env.now = at
    desk = await env.actor(Role.AGENT, fields.pop("region_code", CITY))
    ticket = await env.create(desk, region_code=desk.region_code, **fields)
    env.now = None
    return int(ticket["id"])


# --- pure: time left on the working calendar ---------------------------------------------------


def test_given_the_national_day_holiday_then_working_time_skips_it_and_counts_the_makeup_day() -> (
    None
):
    assert working_time_between(local(9, 30, 10), local(10, 8, 10)) == timedelta(hours=24)
    assert working_time_between(local(10, 2, 0), local(10, 7, 23)) == timedelta(0)
    # Saturday 10-10 is a make-up working day, Sunday 10-11 is not.
    assert working_time_between(local(10, 10, 0), local(10, 12, 0)) == timedelta(hours=24)
    assert working_time_between(local(10, 8, 10), local(10, 8, 9)) == timedelta(0)


def _clock(created: datetime, accept: datetime, resolve: datetime, **kw: Any) -> TicketClock:
    fields: dict[str, Any] = {"state": "accepted", "urgency": "normal", **kw}
    return TicketClock(
        1, CITY, fields["state"], fields["urgency"], created, accept.astimezone(UTC), resolve
    )


def test_given_a_deadline_after_the_holiday_then_the_yellow_card_waits_for_working_time() -> None:
    ticket = _clock(local(9, 30, 10), local(10, 8, 10), local(10, 13, 10))
    # 22 wall-clock hours before the deadline but only 10 working hours: no card yet.
    assert due_cards(ticket, local(10, 7, 12)) == []
    assert due_cards(ticket, local(10, 8, 3, 59)) == []
    (card,) = due_cards(ticket, local(10, 8, 4))
    assert (card.kind.value, card.deadline_kind.value, card.left) == (
        "yellow",
        "accept",
        timedelta(hours=6),
    )
    kinds = [(c.kind.value, c.deadline_kind.value) for c in due_cards(ticket, local(10, 8, 10))]
    assert kinds == [("red", "accept")]


def test_given_an_emergency_then_its_hour_is_wall_clock_and_warns_at_a_quarter() -> None:
    ticket = _clock(
        local(10, 3, 10), local(10, 3, 11), local(10, 9, 11), urgency="emergency"
    )  # received on a holiday: the hour still runs
    assert [c.deadline_kind.value for c in due_cards(ticket, local(10, 3, 10, 44))] == []
    (card,) = due_cards(ticket, local(10, 3, 10, 45))
    assert (card.kind.value, card.left) == ("yellow", timedelta(minutes=15))
    assert [c.kind.value for c in due_cards(ticket, local(10, 3, 11))] == ["red"]


def test_given_a_policy_then_its_bounds_are_checked() -> None:
    with pytest.raises(ValueError, match="yellow_share"):
        SupervisionPolicy(yellow_share=0)
    with pytest.raises(ValueError, match="positive"):
        SupervisionPolicy(yellow_before=timedelta(0))


# --- the scanner on the database ------------------------------------------------------------------


async def test_given_a_ticket_across_the_holiday_when_scanned_then_yellow_red_and_supervision(
    senv: TicketEnv,
) -> None:
    supervisor = await senv.actor(Role.SUPERVISOR, CITY)
    tid = await receive(senv, local(9, 30, 10))
    ticket = (await senv.get(supervisor, f"/api/tickets/{tid}")).json()
    assert ticket["accept_by"] == "2026-10-08T02:00:00Z"  # 10-08 10:00 local
    assert ticket["resolve_by"] == "2026-10-13T02:00:00Z"  # 10-08, 09, 10 (Sat), 12, 13

    await scanner(senv).scan(local(10, 7, 12))
    assert await cards_of(senv, tid) == []
    await scanner(senv).scan(local(10, 8, 4))
    await scanner(senv).scan(local(10, 8, 5))  # idempotent: nothing new
    assert await cards_of(senv, tid) == [("accept", "yellow")]
    await scanner(senv).scan(local(10, 8, 10))
    await scanner(senv).scan(local(10, 8, 11))
    assert await cards_of(senv, tid) == [("accept", "yellow"), ("accept", "red")]

    (record,) = await supervisions_of(senv, tid)
    assert (record.state, record.deadline_kind, record.region_code) == ("open", "accept", CITY)
    assert record.supervisor_id is not None
    history = await senv.history(supervisor, tid)
    assert [h["action"] for h in history] == ["create", "sla_yellow", "sla_red", "supervise"]
    assert [h["actor_id"] for h in history[1:]] == [None, None, None]
    assert history[1]["reason"] == "黄牌: 距签收时限 (2026-10-08 10:00) 仅剩 6.0 小时"
    assert history[2]["action_label"] == "红牌超时"
    assert history[3]["details"]["supervision_id"] == record.id
    after = (await senv.get(supervisor, f"/api/tickets/{tid}")).json()
    assert (after["supervised"], after["version"], after["state"]) == (True, 2, "accepted")


async def test_given_a_signed_ticket_then_only_the_result_deadline_counts_and_extension_renews(
    senv: TicketEnv,
) -> None:
    tid = await receive(senv, local(9, 30, 10))
    handler = await senv.actor(Role.AGENT, CITY)
    boss = await senv.actor(Role.SUPERVISOR, CITY)
    senv.now = local(10, 8, 9)
    for action, body in (("dispatch", {"assignee_id": handler.user_id}), ("sign", None)):
        actor = boss if action == "dispatch" else handler
        assert (await senv.act(actor, tid, action, body)).status_code == 200
    assert (await senv.act(handler, tid, "start")).status_code == 200
    senv.now = None

    await scanner(senv).scan(local(10, 8, 10))  # signed in time: the accept deadline is done
    await scanner(senv).scan(local(10, 12, 9, 59))  # 24 h 01 min of working time left
    assert await cards_of(senv, tid) == []
    await scanner(senv).scan(local(10, 12, 10))
    assert await cards_of(senv, tid) == [("resolve", "yellow")]

    senv.now = local(10, 12, 11)
    body = {"days": 3, "reason": "需补充材料"}
    assert (await senv.act(handler, tid, "request_extension", body)).status_code == 200
    assert (await senv.act(boss, tid, "approve_extension")).status_code == 200
    senv.now = None
    await scanner(senv).scan(local(10, 13, 10))  # the old deadline passes: no red card
    assert await cards_of(senv, tid) == [("resolve", "yellow")]
    await scanner(senv).scan(local(10, 15, 10))  # one working day before the new 10-16 10:00
    await scanner(senv).scan(local(10, 16, 10))
    assert await cards_of(senv, tid) == [
        ("resolve", "yellow"),
        ("resolve", "yellow"),
        ("resolve", "red"),
    ]
    (record,) = await supervisions_of(senv, tid)
    assert record.deadline == local(10, 16, 10)


async def test_given_the_makeup_saturday_then_it_is_a_working_day_for_deadline_and_cards(
    senv: TicketEnv,
) -> None:
    tid = await receive(senv, local(10, 9, 10))  # Friday after the holiday
    async with senv.services.sessionmaker() as session:
        ticket = await session.get(Ticket, tid)
        assert ticket is not None and ticket.accept_by == local(10, 10, 10)  # Saturday 调休
    await scanner(senv).scan(local(10, 10, 3, 59))
    assert await cards_of(senv, tid) == []
    await scanner(senv).scan(local(10, 10, 4))
    await scanner(senv).scan(local(10, 10, 10))
    assert await cards_of(senv, tid) == [("accept", "yellow"), ("accept", "red")]


async def test_given_a_resolved_ticket_then_no_card_however_late(senv: TicketEnv) -> None:
    senv.now = local(9, 30, 10)
    desk = await senv.actor(Role.AGENT, CITY)
    done = await senv.create(
        desk,
        category="legal_consultation",
        request_type="consultation",
        answer="已解答",
        resolved_on_call=True,
    )
    senv.now = None
    await scanner(senv).scan(local(12, 1, 10))
    assert await cards_of(senv, done["id"]) == []


async def test_given_no_city_supervisor_then_the_province_supervisor_gets_the_escalation(
    senv: TicketEnv,
) -> None:
    city_boss = await senv.actor(Role.SUPERVISOR, HUZHOU)
    await senv.actor(Role.SUPERVISOR, PROVINCE)
    in_huzhou = await receive(senv, local(10, 9, 10), region_code=HUZHOU, caller_region_code=None)
    in_shaoxing = await receive(
        senv, local(10, 9, 10), region_code=SHAOXING, caller_region_code=None
    )
    await scanner(senv).scan(local(10, 10, 10))
    (huzhou,) = await supervisions_of(senv, in_huzhou)
    assert huzhou.supervisor_id == city_boss.user_id
    (shaoxing,) = await supervisions_of(senv, in_shaoxing)
    async with senv.services.sessionmaker() as session:
        from callcenter.db.models import User

        chosen = await session.get(User, shaoxing.supervisor_id)
        assert chosen is not None and (chosen.role, chosen.region_code) == ("supervisor", PROVINCE)
    history = await senv.history(city_boss, in_huzhou)
    assert "提级至" in history[-1]["reason"]


async def test_given_a_scan_then_events_carry_ids_and_region_only(senv: TicketEnv) -> None:
    tid = await receive(senv, local(10, 9, 10), region_code=JINHUA, caller_region_code=None)
    events: list[BusMessage] = []
    sub: Subscription
    async with senv.services.bus.subscribe("ticket.*", "tickets.*") as sub:
        await scanner(senv).scan(local(10, 10, 4))
        await scanner(senv).scan(local(10, 10, 10))
        while True:
            try:
                events.append(await sub.get(timeout=0.5))
            except TimeoutError:
                break
    mine = [e for e in events if e.data.get("ticket_id") == tid]
    channels = [e.channel for e in mine]
    assert channels == [
        f"ticket.sla.yellow.{JINHUA}",
        f"ticket.sla.red.{JINHUA}",
        f"ticket.supervision.opened.{JINHUA}",
        f"tickets.{JINHUA}",
    ]
    yellow, red, opened, changed = (e.data for e in mine)
    assert set(yellow) == {
        "event",
        "ticket_id",
        "region_code",
        "at",
        "card_id",
        "deadline_kind",
        "deadline",
    }
    assert (yellow["event"], red["event"]) == ("ticket.sla.yellow", "ticket.sla.red")
    assert set(opened) == {
        "event",
        "ticket_id",
        "region_code",
        "at",
        "supervision_id",
        "card_id",
        "supervisor_id",
    }
    assert (changed["action"], changed["version"]) == ("supervise", 2)
    assert all("caller_number" not in e.data and "content" not in e.data for e in mine)


@pytest.mark.postgres
async def test_given_two_scanner_processes_at_once_then_each_card_exactly_once(
    open_tickets: OpenTickets, sla_pg_url: str
) -> None:
    async with open_tickets(sla_pg_url) as env:
        tids = [
            await receive(
                env, local(9, 30, 10), category="legal_consultation", request_type="consultation"
            )
            for _ in range(25)
        ]
    engines = [make_engine(sla_pg_url) for _ in range(2)]
    try:
        async with open_tickets(sla_pg_url) as env:
            scanners = [
                SlaScanner(make_sessionmaker(engine), env.services.bus, tz=SHANGHAI)
                for engine in engines
            ]
            reports = await asyncio.gather(*(s.scan(local(10, 20, 10)) for s in scanners))
            async with env.services.sessionmaker() as session:
                cards = await session.execute(
                    select(
                        SlaCard.ticket_id, SlaCard.deadline_kind, SlaCard.kind, SlaCard.id
                    ).where(SlaCard.ticket_id.in_(tids))
                )
                rows = list(cards)
                sups = await session.scalar(
                    select(func.count(Supervision.id)).where(Supervision.ticket_id.in_(tids))
                )
                red_rows = await session.scalar(
                    select(func.count(TicketHistory.id)).where(
                        TicketHistory.ticket_id.in_(tids), TicketHistory.action == "sla_red"
                    )
                )
                versions = set(
                    await session.scalars(select(Ticket.version).where(Ticket.id.in_(tids)))
                )
    finally:
        for engine in engines:
            await engine.dispose()
    assert sorted((t, d, k) for t, d, k, _ in rows) == sorted(
        (t, d, "red") for t in tids for d in ("accept", "resolve")
    )
    mine = {card_id for *_, card_id in rows}
    issued = [c for r in reports for c in r.red if c in mine]
    assert sorted(issued) == sorted(mine)  # every card issued by exactly one of the two
    assert sum(r.lost for r in reports) > 0  # and they did race for the same cards
    assert sups == red_rows == 2 * len(tids)
    assert versions == {3}


# --- the API --------------------------------------------------------------------------------------


async def _overdue(env: TicketEnv, region: str = CITY) -> tuple[int, int]:
    """A ticket with an open 督办 in ``region``: (ticket id, supervision id)."""
    caller = {"caller_region_code": None} if region != CITY else {}
    tid = await receive(env, local(10, 9, 10), region_code=region, **caller)
    await scanner(env).scan(local(10, 10, 10))
    (record,) = await supervisions_of(env, tid)
    return tid, record.id


async def test_given_supervisions_when_listed_then_scoped_filtered_and_paginated(
    senv: TicketEnv,
) -> None:
    boss = await senv.actor(Role.SUPERVISOR, CITY)
    other = await senv.actor(Role.SUPERVISOR, "330200")
    province = await senv.actor(Role.ADMIN, PROVINCE)
    tid, sid = await _overdue(senv)
    _, other_sid = await _overdue(senv, "330200")

    mine = await senv.get(boss, "/api/supervision", ticket=tid)
    assert mine.status_code == 200, mine.text
    (item,) = mine.json()["items"]
    assert (item["id"], item["state_label"], item["deadline_label"]) == (sid, "督办中", "签收时限")
    assert item["ticket_state_label"] == "受理"
    listed = await senv.get(boss, "/api/supervision", limit=200)
    ids = {i["id"] for i in listed.json()["items"]}
    assert sid in ids and other_sid not in ids
    assert {i["region_code"][:4] for i in listed.json()["items"]} == {CITY[:4]}
    page = await senv.get(province, "/api/supervision", limit=1, state="open")
    assert len(page.json()["items"]) == 1 and page.json()["total"] >= 2
    assert (await senv.get(other, f"/api/supervision/{sid}")).status_code == 404
    assert (await senv.get(boss, "/api/supervision", region="330200")).status_code == 404
    cards = await senv.get(boss, "/api/supervision/cards", ticket=tid, kind="red")
    assert [c["kind_label"] for c in cards.json()["items"]] == ["红牌"]
    hidden = await senv.get(other, "/api/supervision/cards", ticket=tid)
    assert hidden.json() == {"items": [], "total": 0, "limit": 50, "offset": 0}


async def test_given_the_supervision_api_then_roles_and_bad_queries_are_refused(
    senv: TicketEnv,
) -> None:
    agent = await senv.actor(Role.AGENT, CITY)
    followup = await senv.actor(Role.FOLLOWUP, CITY)
    boss = await senv.actor(Role.SUPERVISOR, CITY)
    _, sid = await _overdue(senv)
    for who in (agent, followup):
        assert (await senv.get(who, "/api/supervision")).status_code == 403
        assert (
            await senv.post(who, f"/api/supervision/{sid}/close", {"note": "x"})
        ).status_code == 403
    for params in ({"state": "lost"}, {"limit": 0}, {"kind": "blue"}, {"region": "33"}):
        path = "/api/supervision/cards" if "kind" in params else "/api/supervision"
        assert (await senv.get(boss, path, **params)).status_code == 400, params
    assert (await senv.get(boss, "/api/supervision/0")).status_code == 400
    assert (await senv.client.get("/api/supervision")).status_code == 401


async def test_given_an_open_supervision_when_closed_then_once_with_a_note(
    senv: TicketEnv,
) -> None:
    boss = await senv.actor(Role.SUPERVISOR, CITY)
    other = await senv.actor(Role.SUPERVISOR, OTHER_CITY)
    tid, sid = await _overdue(senv)
    for body in (None, {}, {"note": "  "}, {"note": "好", "state": "closed"}):
        bad = await senv.post(boss, f"/api/supervision/{sid}/close", body)
        assert bad.status_code == 400, (body, bad.text)
    assert (await supervisions_of(senv, tid))[0].state == "open"  # nothing written
    hidden = await senv.post(other, f"/api/supervision/{sid}/close", {"note": "越权"})
    assert hidden.status_code == 404

    events: list[BusMessage] = []
    async with senv.services.bus.subscribe(f"ticket.supervision.closed.{CITY}") as sub:
        senv.now = local(10, 12, 9)
        closed = await senv.post(boss, f"/api/supervision/{sid}/close", {"note": "已督促签收"})
        events.append(await sub.get(timeout=2))
    assert closed.status_code == 200, closed.text
    body = closed.json()
    assert (body["state"], body["note"], body["closed_by_id"]) == (
        "closed",
        "已督促签收",
        boss.user_id,
    )
    assert body["closed_at"] == "2026-10-12T01:00:00Z" and body["version"] == 2
    assert events[0].data["supervision_id"] == sid
    again = await senv.post(boss, f"/api/supervision/{sid}/close", {"note": "再次"})
    assert again.status_code == 409 and again.json()["error_id"] == "supervision-closed"
    assert (await supervisions_of(senv, tid))[0].note == "已督促签收"
    history = (await senv.get(boss, f"/api/tickets/{tid}/history")).json()
    entries = history["items"] if isinstance(history, dict) else history
    closing = [h for h in entries if (h.get("reason") or "").startswith("督办办结")]
    assert len(closing) == 1 and closing[0]["reason"] == "督办办结：已督促签收"


@pytest.mark.redis
async def test_given_the_redis_bus_then_another_process_subscriber_receives_the_cards(
    open_tickets: OpenTickets, sqlite_url: str
) -> None:
    async with open_tickets(sqlite_url) as env:
        tid = await receive(env, local(10, 9, 10))
        prefix = f"t{uuid.uuid4().hex[:8]}"
        async with RedisBus(REDIS_URL, prefix=prefix) as publisher:
            async with RedisBus(REDIS_URL, prefix=prefix) as listener:
                async with listener.subscribe(f"ticket.*.{CITY}") as sub:
                    sla = SlaScanner(env.services.sessionmaker, publisher, tz=SHANGHAI)
                    await sla.scan(local(10, 10, 10))
                    got = [await sub.get(timeout=5) for _ in range(2)]
    assert [m.channel for m in got] == [
        f"ticket.sla.red.{CITY}",
        f"ticket.supervision.opened.{CITY}",
    ]
    assert all(m.data["ticket_id"] == tid for m in got)


async def test_given_a_supervisor_orders_a_supervision_then_a_record_follows_it_up(
    senv: TicketEnv,
) -> None:
    boss = await senv.actor(Role.SUPERVISOR, CITY)
    admin = await senv.actor(Role.ADMIN, PROVINCE)
    tid = await receive(senv, local(10, 9, 10))
    async with senv.services.bus.subscribe(f"ticket.supervision.opened.{CITY}") as sub:
        ordered = await senv.act(boss, tid, "supervise", {"reason": "群众反映未联系"})
        opened = await sub.get(timeout=2)
    assert ordered.status_code == 200, ordered.text
    assert (opened.data["ticket_id"], opened.data["supervisor_id"]) == (tid, boss.user_id)
    by_admin = await senv.act(admin, tid, "supervise", {"reason": "省厅关注"})
    assert by_admin.status_code == 200, by_admin.text
    first, second = await supervisions_of(senv, tid)
    assert (first.card_id, first.opened_by_id, first.supervisor_id) == (
        None,
        boss.user_id,
        boss.user_id,
    )
    assert (first.deadline_kind, first.deadline) == ("accept", local(10, 10, 10))
    assert second.opened_by_id == admin.user_id and second.supervisor_id != admin.user_id
    history = await senv.history(boss, tid)
    assert history[1]["details"] == {"supervision_id": first.id, "supervisor_id": boss.user_id}
    assert opened.data["supervision_id"] == first.id
    listed = (await senv.get(boss, "/api/supervision", ticket=tid)).json()["items"]
    assert [(i["origin_label"], i["reason"]) for i in listed] == [
        ("人工督办", "省厅关注"),
        ("人工督办", "群众反映未联系"),
    ]
    assert (await supervisions_of(senv, tid)) and await cards_of(senv, tid) == []
