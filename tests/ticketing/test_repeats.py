"""Repeat calls (重复诉求): same caller, same category, open or recently closed → linked to the
first ticket of the matter, shown on every ticket of it, counted (SQLite and PostgreSQL)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from callcenter.db.models import Role
from callcenter.routing.calendar import SHANGHAI
from tests.ticketing.conftest import OTHER_CITY, TicketEnv
from ticketing.repeats import number_variants

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=SHANGHAI)


def _mobile() -> str:
    return f"135{uuid.uuid4().int % 10**8:08d}"


async def _related(env: TicketEnv, actor: Any, ticket_id: int) -> dict[str, Any]:
    response = await env.get(actor, f"/api/tickets/{ticket_id}/related")
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def test_given_the_same_caller_and_matter_when_calling_again_then_linked_and_counted(
    tenv: TicketEnv,
) -> None:
    tenv.now = NOW
    agent = await tenv.actor()
    number = _mobile()
    first = await tenv.create(agent, caller_number=number)
    tenv.now = NOW + timedelta(days=2)
    second = await tenv.create(agent, caller_number=f"+86{number}")  # another spelling
    tenv.now = NOW + timedelta(days=3)
    third = await tenv.create(agent, caller_number=number)
    for ticket in (first, second, third):
        family = await _related(tenv, agent, ticket["id"])
        assert family["root_id"] == first["id"] and family["repeat_count"] == 2
        assert [t["id"] for t in family["items"]] == [first["id"], second["id"], third["id"]]
        assert [t["is_root"] for t in family["items"]] == [True, False, False]
        assert family["items"][0]["state_label"] == "受理"


async def test_given_another_category_or_caller_then_not_linked(tenv: TicketEnv) -> None:
    tenv.now = NOW
    agent = await tenv.actor()
    number = _mobile()
    first = await tenv.create(agent, caller_number=number)
    other_matter = await tenv.create(
        agent, caller_number=number, category="notarization", request_type="consultation"
    )
    other_caller = await tenv.create(agent, caller_number=_mobile())
    for ticket in (first, other_matter, other_caller):
        family = await _related(tenv, agent, ticket["id"])
        assert family["repeat_count"] == 0 and [t["id"] for t in family["items"]] == [ticket["id"]]


async def test_given_a_ticket_closed_long_ago_then_a_new_call_starts_a_new_matter(
    tenv: TicketEnv,
) -> None:
    agent = await tenv.actor()
    number = _mobile()
    tenv.now = NOW - timedelta(days=45)
    old = await tenv.create(agent, caller_number=number, answer="已解答", resolved_on_call=True)
    tenv.now = NOW - timedelta(days=10)
    recent = await tenv.create(agent, caller_number=number, answer="已解答", resolved_on_call=True)
    tenv.now = NOW
    new = await tenv.create(agent, caller_number=number)
    assert (await _related(tenv, agent, old["id"]))["repeat_count"] == 0
    family = await _related(tenv, agent, new["id"])
    assert family["root_id"] == recent["id"] and family["repeat_count"] == 1


async def test_given_an_open_ticket_of_any_age_then_the_new_call_is_linked(
    tenv: TicketEnv,
) -> None:
    agent = await tenv.actor()
    number = _mobile()
    tenv.now = NOW - timedelta(days=90)
    open_one = await tenv.create(agent, caller_number=number)
    tenv.now = NOW
    new = await tenv.create(agent, caller_number=number)
    assert (await _related(tenv, agent, new["id"]))["root_id"] == open_one["id"]


async def test_given_another_region_or_a_hidden_ticket_then_related_is_404(
    tenv: TicketEnv,
) -> None:
    tenv.now = NOW
    agent = await tenv.actor()
    ticket = await tenv.create(agent, caller_number=_mobile())
    for role in (Role.AGENT, Role.SUPERVISOR, Role.ADMIN):
        stranger = await tenv.actor(role, OTHER_CITY)
        response = await tenv.get(stranger, f"/api/tickets/{ticket['id']}/related")
        assert response.status_code == 404 and response.json()["error_id"] == "not-found"
    followup = await tenv.actor(Role.FOLLOWUP)  # an open ticket is not theirs to see
    assert (await tenv.get(followup, f"/api/tickets/{ticket['id']}/related")).status_code == 404
    assert (await tenv.get(agent, "/api/tickets/0/related")).status_code == 400


def test_given_a_number_then_its_usual_spellings_are_matched() -> None:
    spellings = number_variants("13805730001")
    for spelling in ("13805730001", "+8613805730001", "008613805730001", "8613805730001"):
        assert spelling in spellings
    assert "057312348000" in number_variants("+8657312348000")
    assert number_variants("anonymous") == ["anonymous"]
