"""Two agents claiming (签收) one ticket at the same moment: exactly one wins (PostgreSQL).

The first test forces the worst interleaving: a third connection holds the ticket's row lock
while both claims read the ticket and reach their UPDATE, so both have read the same version
before either writes; then the lock is released. The second test just races many claims.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy import text

from tests.ticketing.conftest import Actor, TicketEnv

pytestmark = pytest.mark.postgres


async def _dispatched_to_unit(env: TicketEnv, agent: Actor) -> int:
    tid = int((await env.create(agent))["id"])
    response = await env.act(agent, tid, "dispatch", {"handling_unit": "南湖区司法局"})
    assert response.status_code == 200
    return tid


def _check_one_winner(responses: list[httpx.Response], claimers: list[Actor]) -> Actor:
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] + [409] * (len(claimers) - 1), [r.text for r in responses]
    for r in responses:
        if r.status_code == 409:
            assert r.json()["error_id"] == "illegal-transition", r.text
            assert "signed (签收)" in r.json()["message"], r.text
    return next(a for a, r in zip(claimers, responses, strict=True) if r.status_code == 200)


async def test_given_both_claims_read_first_when_they_write_then_exactly_one_wins(
    pg_tenv: TicketEnv,
) -> None:
    env = pg_tenv
    dispatcher, first, second = await env.actor(), await env.actor(), await env.actor()
    tid = await _dispatched_to_unit(env, dispatcher)
    async with env.services.engine.connect() as locker:
        await locker.execute(text("SELECT id FROM tickets WHERE id = :id FOR UPDATE"), {"id": tid})
        claims = [asyncio.create_task(env.act(a, tid, "sign")) for a in (first, second)]
        async with asyncio.timeout(10):
            while await env.waiting_on_locks() < 2:
                await asyncio.sleep(0.01)
        await locker.rollback()
        responses = await asyncio.gather(*claims)
    winner = _check_one_winner(list(responses), [first, second])

    ticket = (await env.get(dispatcher, f"/api/tickets/{tid}")).json()
    assert ticket["state"] == "signed" and ticket["assignee_id"] == winner.user_id
    assert ticket["version"] == 3
    history = await env.history(dispatcher, tid)
    assert [h["action"] for h in history] == ["create", "dispatch", "sign"]
    assert history[-1]["actor_id"] == winner.user_id


async def test_given_many_agents_racing_then_one_claim_per_ticket(pg_tenv: TicketEnv) -> None:
    env = pg_tenv
    dispatcher = await env.actor()
    agents = [await env.actor() for _ in range(5)]
    for _ in range(8):
        tid = await _dispatched_to_unit(env, dispatcher)
        responses = await asyncio.gather(*(env.act(a, tid, "sign") for a in agents))
        winner = _check_one_winner(list(responses), agents)
        history = await env.history(dispatcher, tid)
        assert [(h["action"], h["actor_id"]) for h in history[2:]] == [("sign", winner.user_id)]
