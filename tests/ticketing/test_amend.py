"""补录修改 (the ``amend`` action): seats fill in the ticket made for their call and correct
what was asked and answered, with the history keeping every previous value."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from callcenter.db.models import Role
from tests.ticketing.conftest import OTHER_CITY, TicketEnv

MONDAY_10 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai, a working day


async def _amend(env: TicketEnv, actor: Any, ticket_id: int, **body: Any) -> Any:
    return await env.act(actor, ticket_id, "amend", body)


async def test_given_the_seat_who_took_the_call_when_amending_then_fields_and_history_change(
    tenv: TicketEnv,
) -> None:
    tenv.now = MONDAY_10
    seat = await tenv.actor()
    placeholder = {"content": "【待坐席补录】来电已接通", "category": "legal_consultation"}
    ticket = await tenv.create(seat, request_type="consultation", **placeholder)
    response = await _amend(
        tenv,
        seat,
        ticket["id"],
        content=f"咨询劳动合同解除后的经济补偿 {tenv.marker}",
        answer="告知可申请劳动仲裁，并说明经济补偿的计算方法",
        version=ticket["version"],
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["content"].startswith("咨询劳动合同") and body["answer"].startswith("告知")
    assert (body["state"], body["version"]) == ("accepted", ticket["version"] + 1)
    last = (await tenv.history(seat, ticket["id"]))[-1]
    assert last["action"] == "amend" and last["actor_id"] == seat.user_id
    assert last["details"]["fields"] == ["answer", "content"]
    assert last["details"]["previous"] == {"content": "【待坐席补录】来电已接通", "answer": None}
    found = await tenv.get(seat, "/api/tickets", q="经济补偿")
    assert ticket["id"] in [t["id"] for t in found.json()["items"]]


async def test_given_urgency_raised_while_accepted_then_the_sla_clock_restarts_from_intake(
    tenv: TicketEnv,
) -> None:
    tenv.now = MONDAY_10
    seat = await tenv.actor()
    ticket = await tenv.create(seat)
    response = await _amend(tenv, seat, ticket["id"], urgency="emergency")
    assert response.status_code == 200, response.text
    amended = response.json()
    accept_by = datetime.fromisoformat(amended["accept_by"])
    resolve_by = datetime.fromisoformat(amended["resolve_by"])
    assert accept_by == MONDAY_10 + timedelta(hours=1)  # emergencies: taken within the hour
    assert resolve_by == MONDAY_10 + timedelta(days=1)  # and done within one working day
    previous = (await tenv.history(seat, ticket["id"]))[-1]["details"]["previous"]
    assert previous["urgency"] == "normal" and previous["resolve_by"] == ticket[
        "resolve_by"
    ].replace("Z", "+00:00")


async def test_given_another_agent_or_region_when_amending_then_refused_and_nothing_written(
    tenv: TicketEnv,
) -> None:
    seat = await tenv.actor()
    ticket = await tenv.create(seat)
    before = await tenv.row_counts()
    colleague = await tenv.actor()
    refused = await _amend(tenv, colleague, ticket["id"], content="改写")
    assert refused.status_code == 403 and refused.json()["error_id"] == "not-assignee"
    stranger = await tenv.actor(Role.SUPERVISOR, OTHER_CITY)
    assert (await _amend(tenv, stranger, ticket["id"], content="改写")).status_code == 404
    followup = await tenv.actor(Role.FOLLOWUP)
    assert (await _amend(tenv, followup, ticket["id"], content="改写")).status_code in (403, 404)
    assert await tenv.row_counts() == before
    boss = await tenv.actor(Role.SUPERVISOR)
    assert (await _amend(tenv, boss, ticket["id"], content="主管更正")).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"reason": "只有理由"},
        {"content": ""},
        {"content": "x" * 10_001},
        {"category": "astrology"},
        {"urgency": "whenever"},
        {"content": "好", "state": "resolved"},
        {"green_channel": "maybe"},
    ],
)
async def test_given_bad_amendments_then_400_and_nothing_written(
    tenv: TicketEnv, body: dict[str, Any]
) -> None:
    seat = await tenv.actor()
    ticket = await tenv.create(seat)
    before = await tenv.row_counts()
    response = await tenv.act(seat, ticket["id"], "amend", body)
    assert response.status_code == 400, (body, response.text)
    assert await tenv.row_counts() == before


async def test_given_nothing_new_or_a_closed_ticket_when_amending_then_refused(
    tenv: TicketEnv,
) -> None:
    seat = await tenv.actor()
    ticket = await tenv.create(seat)
    same = await _amend(tenv, seat, ticket["id"], category=ticket["category"])
    assert same.status_code == 400
    stale = await _amend(tenv, seat, ticket["id"], content="新内容", version=ticket["version"] + 5)
    assert stale.status_code == 409
    closed = await tenv.create(seat, answer="已当场解答", resolved_on_call=True)
    late = await _amend(tenv, seat, closed["id"], content="事后改写")
    assert late.status_code == 409 and "办结" in late.json()["message"]
