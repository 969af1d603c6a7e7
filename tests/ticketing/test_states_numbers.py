"""The transition table's shape, and ticket numbers (unique and gap-free under concurrency)."""

from __future__ import annotations

import asyncio
from datetime import date

import pytest

from callcenter.db.engine import make_engine, make_sessionmaker
from callcenter.errors import Conflict
from ticketing.numbers import format_number, next_number
from ticketing.states import TRANSITIONS, Action, State, target_state


def test_every_state_is_reachable_and_archived_is_final() -> None:
    seen, todo = {State.ACCEPTED}, [State.ACCEPTED]
    while todo:
        current = todo.pop()
        for moves in TRANSITIONS.values():
            nxt = moves.get(current)
            if nxt is not None and nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    assert seen == set(State)
    assert all(State.ARCHIVED not in moves for moves in TRANSITIONS.values())
    assert Action.CREATE not in TRANSITIONS


def test_an_illegal_move_names_the_current_state_and_the_allowed_ones() -> None:
    with pytest.raises(Conflict) as caught:
        target_state(Action.VISIT, State.SIGNED, number="330400-20261121-0001")
    message = caught.value.message
    assert message.startswith("ticket 330400-20261121-0001 is signed (签收)")
    assert "visit (回访) is only allowed from resolved (办结)" in message
    assert caught.value.details == {"state": "signed", "action": "visit"}


def test_number_format() -> None:
    assert format_number("330400", date(2026, 11, 21), 1) == "330400-20261121-0001"
    assert format_number("330400", date(2026, 11, 21), 12345) == "330400-20261121-12345"


async def _allocate_concurrently(url: str, count: int, region: str, day: date) -> list[str]:
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    gate = asyncio.Event()

    async def one() -> str:
        async with sessions() as session:
            await gate.wait()
            number = await next_number(session, region, day)
            await asyncio.sleep(0.001)  # hold the row lock a moment, as a ticket insert would
            await session.commit()
            return number

    try:
        tasks = [asyncio.create_task(one()) for _ in range(count)]
        await asyncio.sleep(0.05)
        gate.set()
        return await asyncio.gather(*tasks)
    finally:
        await engine.dispose()


@pytest.mark.postgres
async def test_given_concurrent_creators_when_numbering_then_unique_and_gap_free(
    pg_url: str,
) -> None:
    day = date(2031, 1, 2)  # a day no other test uses in the shared database
    numbers = await _allocate_concurrently(pg_url, 25, "330500", day)
    assert sorted(numbers) == [f"330500-20310102-{i:04d}" for i in range(1, 26)]


async def test_numbers_are_per_region_and_day(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    try:
        async with make_sessionmaker(engine)() as session:
            got = [
                await next_number(session, "330400", date(2026, 11, 21)),
                await next_number(session, "330400", date(2026, 11, 21)),
                await next_number(session, "330100", date(2026, 11, 21)),
                await next_number(session, "330400", date(2026, 11, 22)),
            ]
            await session.rollback()
            again = await next_number(session, "330400", date(2026, 11, 21))
    finally:
        await engine.dispose()
    assert got == [
        "330400-20261121-0001",
        "330400-20261121-0002",
        "330100-20261121-0001",
        "330400-20261122-0001",
    ]
    assert again == "330400-20261121-0001"  # a rolled-back ticket gives its number back
