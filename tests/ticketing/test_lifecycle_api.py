"""The ticket life cycle through ``/api/tickets`` on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from callcenter.db.models import Role
from callcenter.routing.calendar import SHANGHAI
from tests.ticketing.conftest import CITY, TicketEnv


async def test_given_a_new_request_when_walked_through_every_step_then_history_tells_all(
    tenv: TicketEnv,
) -> None:
    agent, handler = await tenv.actor(), await tenv.actor()
    follow = await tenv.actor(Role.FOLLOWUP)
    ticket = await tenv.create(agent, green_channel=True, urgency="urgent")
    tid = ticket["id"]
    assert ticket["state"] == "accepted" and ticket["state_label"] == "受理"
    assert ticket["number"].startswith(f"{CITY}-") and ticket["version"] == 1
    assert ticket["category_label"] == "法律援助" and ticket["request_type_label"] == "求助"
    assert ticket["caller_number"] == "13805730001" and not ticket["number_masked"]

    steps = [
        (
            agent,
            "dispatch",
            {"assignee_id": handler.user_id, "handling_unit": "嘉兴市法律援助中心"},
        ),
        (handler, "sign", None),
        (handler, "start", {"reason": "联系当事人"}),
        (handler, "resolve", {"result": "已指派律师", "answer": "可申请法律援助"}),
        (follow, "visit", {"satisfaction": "satisfied"}),
        (follow, "archive", None),
    ]
    states = ["dispatched", "signed", "in_progress", "resolved", "visited", "archived"]
    for (actor, action, body), state in zip(steps, states, strict=True):
        response = await tenv.act(actor, tid, action, body)
        assert response.status_code == 200, response.text
        assert response.json()["state"] == state

    final = (await tenv.get(agent, f"/api/tickets/{tid}")).json()
    assert final["version"] == 7 and final["assignee_id"] == handler.user_id
    assert final["satisfaction_label"] == "满意" and final["result"] == "已指派律师"
    assert final["signed_at"] and final["resolved_at"]

    history = await tenv.history(agent, tid)
    assert [h["action"] for h in history] == ["create", *(s[1] for s in steps)]
    assert [h["from_state"] for h in history] == [None, "accepted", *states[:-1]]
    assert [h["to_state"] for h in history] == ["accepted", *states]
    assert [h["actor_id"] for h in history] == [agent.user_id, *(s[0].user_id for s in steps)]
    assert history[3]["reason"] == "联系当事人" and history[3]["actor_username"] == handler.username
    assert history[1]["details"]["handling_unit"] == "嘉兴市法律援助中心"
    assert history[5]["details"] == {"satisfaction": "satisfied"}


async def test_given_a_consultation_answered_on_the_call_then_it_is_resolved_at_once(
    tenv: TicketEnv,
) -> None:
    agent = await tenv.actor()
    ticket = await tenv.create(
        agent,
        category="legal_consultation",
        request_type="consultation",
        answer="劳动争议可先申请劳动仲裁",
        resolved_on_call=True,
    )
    assert ticket["state"] == "resolved" and ticket["resolved_on_call"]
    assert ticket["result"] == "劳动争议可先申请劳动仲裁" and ticket["resolved_at"]
    history = await tenv.history(agent, ticket["id"])
    assert [(h["action"], h["from_state"], h["to_state"]) for h in history] == [
        ("create", None, "accepted"),
        ("resolve", "accepted", "resolved"),
    ]


async def test_given_an_illegal_step_then_409_names_the_current_state_and_nothing_changes(
    tenv: TicketEnv,
) -> None:
    agent = await tenv.actor()
    ticket = await tenv.create(agent)
    before = await tenv.row_counts()
    response = await tenv.act(agent, ticket["id"], "sign")
    assert response.status_code == 409
    body = response.json()
    assert body["error_id"] == "illegal-transition" and body["details"]["state"] == "accepted"
    assert "is accepted (受理)" in body["message"] and "dispatched (派单)" in body["message"]
    assert await tenv.row_counts() == before

    sup = await tenv.actor(Role.SUPERVISOR)
    await tenv.act(agent, ticket["id"], "resolve", {"result": "已答复"})
    response = await tenv.act(sup, ticket["id"], "supervise", {"reason": "超期"})
    assert response.status_code == 409 and "resolved (办结)" in response.json()["message"]


async def test_given_a_stale_version_then_409_and_the_current_version_is_reported(
    tenv: TicketEnv,
) -> None:
    agent = await tenv.actor()
    ticket = await tenv.create(agent)
    ok = await tenv.act(
        agent, ticket["id"], "dispatch", {"handling_unit": "南湖区司法局", "version": 1}
    )
    assert ok.status_code == 200
    stale = await tenv.act(agent, ticket["id"], "urge", {"version": 1})
    assert stale.status_code == 409 and stale.json()["error_id"] == "ticket-changed"
    assert stale.json()["details"] == {"state": "dispatched", "version": 2}


async def test_given_return_and_reassign_then_assignee_and_unit_follow(tenv: TicketEnv) -> None:
    agent, first, second = await tenv.actor(), await tenv.actor(), await tenv.actor()
    tid = (await tenv.create(agent))["id"]
    await tenv.act(agent, tid, "dispatch", {"assignee_id": first.user_id})
    refused = await tenv.act(second, tid, "sign")  # sent to someone else
    assert refused.status_code == 403 and refused.json()["error_id"] == "not-assignee"
    assert (await tenv.act(first, tid, "sign")).status_code == 200

    moved = await tenv.act(
        agent, tid, "reassign", {"assignee_id": second.user_id, "reason": "专长"}
    )
    assert moved.status_code == 200
    assert moved.json()["state"] == "dispatched" and moved.json()["signed_at"] is None
    assert (await tenv.act(second, tid, "sign")).status_code == 200

    returned = await tenv.act(second, tid, "return", {"reason": "不属于本单位受理范围"})
    assert returned.status_code == 200
    assert returned.json() | {"id": 0} == returned.json() | {
        "id": 0,
        "state": "accepted",
        "assignee_id": None,
        "handling_unit": None,
    }
    history = await tenv.history(agent, tid)
    assert history[-1]["reason"] == "不属于本单位受理范围"
    assert history[-1]["details"]["assignee_id"] == second.user_id
    assert history[-3]["details"]["previous_assignee_id"] == first.user_id


async def test_given_extension_requests_then_only_supervisors_approve_within_15_days(
    tenv: TicketEnv,
) -> None:
    tenv.now = datetime(2026, 9, 30, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai, eve of 国庆
    agent, sup = await tenv.actor(), await tenv.actor(Role.SUPERVISOR)
    tid = (await tenv.create(agent))["id"]
    await tenv.act(agent, tid, "dispatch", {"assignee_id": agent.user_id})
    await tenv.act(agent, tid, "sign")
    ticket = (await tenv.act(agent, tid, "start")).json()
    assert ticket["resolve_by"] == "2026-10-13T02:00:00Z"

    asked = await tenv.act(agent, tid, "request_extension", {"days": 10, "reason": "需调查取证"})
    assert asked.status_code == 200 and asked.json()["extension_requested_days"] == 10
    again = await tenv.act(agent, tid, "request_extension", {"days": 1, "reason": "again"})
    assert again.status_code == 409 and "pending" in again.json()["message"]
    assert (await tenv.act(agent, tid, "approve_extension")).status_code == 403

    approved = (await tenv.act(sup, tid, "approve_extension")).json()
    assert approved["extended_days"] == 10 and approved["extension_requested_days"] is None
    assert approved["resolve_by"] == "2026-10-27T02:00:00Z"
    too_long = await tenv.act(agent, tid, "request_extension", {"days": 6, "reason": "more"})
    assert too_long.status_code == 409 and "limit of 15" in too_long.json()["message"]
    assert (await tenv.act(sup, tid, "reject_extension", {"reason": "x"})).status_code == 409

    await tenv.act(agent, tid, "request_extension", {"days": 5, "reason": "补充材料"})
    rejected = await tenv.act(sup, tid, "reject_extension", {"reason": "材料已齐"})
    assert rejected.json()["resolve_by"] == "2026-10-27T02:00:00Z"
    history = await tenv.history(sup, tid)
    assert [h["action"] for h in history][-4:] == [
        "request_extension",
        "approve_extension",
        "request_extension",
        "reject_extension",
    ]
    assert history[-3]["details"]["previous_resolve_by"].startswith("2026-10-13T")


async def test_given_urge_and_supervise_then_flags_and_history_but_same_state(
    tenv: TicketEnv,
) -> None:
    agent, sup = await tenv.actor(), await tenv.actor(Role.SUPERVISOR)
    tid = (await tenv.create(agent))["id"]
    assert (await tenv.act(agent, tid, "supervise", {"reason": "x"})).status_code == 403
    supervised = await tenv.act(sup, tid, "supervise", {"reason": "群众反映强烈"})
    assert supervised.json()["supervised"] and supervised.json()["state"] == "accepted"
    assert (await tenv.act(sup, tid, "urge")).status_code == 409  # nobody to urge yet
    await tenv.act(agent, tid, "dispatch", {"handling_unit": "南湖区司法局"})
    await tenv.act(sup, tid, "urge", {"reason": "请尽快签收"})
    urged = (await tenv.act(agent, tid, "urge")).json()
    assert urged["urge_count"] == 2 and urged["state"] == "dispatched"
    assert [h["action"] for h in await tenv.history(sup, tid)] == [
        "create",
        "supervise",
        "dispatch",
        "urge",
        "urge",
    ]


async def test_given_a_change_then_it_is_published_on_the_region_channel(tenv: TicketEnv) -> None:
    agent = await tenv.actor()
    async with tenv.services.bus.subscribe(f"tickets.{CITY}") as sub:
        ticket = await tenv.create(agent)
        await tenv.act(agent, ticket["id"], "dispatch", {"handling_unit": "南湖区司法局"})
        created, dispatched = await sub.get(timeout=2), await sub.get(timeout=2)
    assert created.data["action"] == "create" and created.data["state"] == "accepted"
    assert dispatched.data | {"at": ""} == {
        "event": "ticket",
        "action": "dispatch",
        "ticket_id": ticket["id"],
        "number": ticket["number"],
        "region_code": CITY,
        "from_state": "accepted",
        "state": "dispatched",
        "version": 2,
        "assignee_id": None,
        "at": "",
    }


@pytest.mark.parametrize(
    ("received", "fields", "accept_by", "resolve_by"),
    [
        # 09-30 10:00 Shanghai, eve of 国庆: the clock jumps the holiday, 10-10 (调休) counts.
        ("2026-09-30T02:00:00Z", {}, "2026-10-08T02:00:00Z", "2026-10-13T02:00:00Z"),
        # green channel: accepted the same day (midnight Shanghai = 16:00 UTC).
        ("2026-09-30T02:00:00Z", {"green_channel": True}, "2026-09-30T16:00:00Z", None),
        # an emergency on a holiday night: one hour, wall clock.
        ("2026-10-02T15:30:00Z", {"urgency": "emergency"}, "2026-10-02T16:30:00Z", None),
        # received on a holiday: the clock starts on 10-08; five working days are 10-08, 09,
        # 10 (调休), 12 and 13, so the result is due when 10-13 ends (16:00 UTC).
        ("2026-10-03T03:00:00Z", {}, "2026-10-08T16:00:00Z", "2026-10-13T16:00:00Z"),
    ],
)
async def test_given_a_clock_when_created_then_deadlines_follow_the_official_calendar(
    tenv: TicketEnv,
    received: str,
    fields: dict[str, Any],
    accept_by: str,
    resolve_by: str | None,
) -> None:
    tenv.now = datetime.fromisoformat(received)
    ticket = await tenv.create(await tenv.actor(), **fields)
    assert ticket["accept_by"] == accept_by
    if resolve_by is not None:
        assert ticket["resolve_by"] == resolve_by
    assert ticket["created_at"] == received
    assert (
        ticket["number"]
        == f"{CITY}-{tenv.now.astimezone(SHANGHAI):%Y%m%d}-" + ticket["number"].rsplit("-", 1)[1]
    )


async def test_the_openapi_document_lists_the_ticket_routes(tenv: TicketEnv) -> None:
    paths = tenv.app.openapi()["paths"]
    assert {"/api/tickets", "/api/tickets/{ticket_id}", "/api/tickets/{ticket_id}/history"} <= set(
        paths
    )
    act = paths["/api/tickets/{ticket_id}/actions/{action}"]["post"]
    assert "request_extension: days" in act["description"]
