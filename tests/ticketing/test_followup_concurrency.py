"""Follow-up staff taking the next task at the same moment get different tasks (PostgreSQL).

The first test forces the worst interleaving: a third connection holds a lock on every open
task while all claimers read their candidates and reach their UPDATE; then it lets go. The
second races many claims over the HTTP API with no help.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from sqlalchemy import text, update

from callcenter.db.models import Role
from tests.ticketing.conftest import TicketEnv
from tests.ticketing.test_followup import MONDAY_10
from ticketing.models import FollowupTask

pytestmark = pytest.mark.postgres


async def _prepare(env: TicketEnv, tasks: int, staff: int) -> tuple[list[Any], set[int]]:
    async with env.services.sessionmaker() as session:  # only this test's tasks are open
        await session.execute(
            update(FollowupTask)
            .where(FollowupTask.status.in_(("pending", "claimed")))
            .values(status="closed")
        )
        await session.commit()
    env.now = MONDAY_10
    agent = await env.actor()
    made: set[int] = set()
    for _ in range(tasks):
        ticket = await env.create(
            agent,
            answer="已解答",
            resolved_on_call=True,
            caller_number=f"139{uuid.uuid4().int % 10**8:08d}",
        )
        made.add(int(ticket["id"]))
    people = [await env.actor(Role.FOLLOWUP) for _ in range(staff)]
    return people, made


async def _claim(env: TicketEnv, actor: Any) -> dict[str, Any] | None:
    response = await env.post(actor, "/api/followups/next")
    assert response.status_code == 200, response.text
    task: dict[str, Any] | None = response.json()["task"]
    return task


async def test_given_rows_locked_while_all_read_when_released_then_claims_are_distinct(
    pg_tenv: TicketEnv,
) -> None:
    people, made = await _prepare(pg_tenv, tasks=3, staff=3)
    async with pg_tenv.services.engine.connect() as holder:
        await holder.execute(
            text("SELECT id FROM followup_tasks WHERE status = 'pending' FOR UPDATE")
        )
        claims = [asyncio.create_task(_claim(pg_tenv, p)) for p in people]
        await asyncio.sleep(0.5)  # every claimer skips the locked rows or waits on them
        await holder.rollback()
    got = await asyncio.gather(*claims)
    taken = [t for t in got if t is not None]
    ids = [t["id"] for t in taken]
    assert len(ids) == len(set(ids)), ids
    assert {t["ticket_id"] for t in taken} <= made
    assert all(t["claimed_by_id"] in {p.user_id for p in people} for t in taken)
    # whoever came back empty-handed (rows were locked) gets one of the rest now
    for person, task in zip(people, got, strict=True):
        if task is None:
            retry = await _claim(pg_tenv, person)
            assert retry is not None and retry["id"] not in ids
            ids.append(retry["id"])
    assert len(set(ids)) == 3


async def test_given_many_staff_at_once_when_taking_next_then_no_task_is_given_twice(
    pg_tenv: TicketEnv,
) -> None:
    people, made = await _prepare(pg_tenv, tasks=8, staff=12)
    got = await asyncio.gather(*(_claim(pg_tenv, p) for p in people))
    taken = [t for t in got if t is not None]
    ids = [t["id"] for t in taken]
    assert len(ids) == len(set(ids)) == 8, ids
    assert {t["ticket_id"] for t in taken} == made
    holders = [t["claimed_by_id"] for t in taken]
    assert len(holders) == len(set(holders))
