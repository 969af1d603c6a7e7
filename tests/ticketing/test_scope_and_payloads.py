"""Region scope and roles on every endpoint, bad payloads, listing and search."""

from __future__ import annotations

from typing import Any

import pytest

from callcenter.db.models import Role
from tests.ticketing.conftest import CITY, OTHER_CITY, PROVINCE, TicketEnv
from ticketing.schemas import ACTION_BODIES

VALID_BODIES: dict[str, dict[str, Any]] = {
    "dispatch": {"handling_unit": "南湖区司法局"},
    "reassign": {"handling_unit": "秀洲区司法局", "reason": "x"},
    "resolve": {"result": "x"},
    "visit": {"satisfaction": "satisfied"},
    "return": {"reason": "x"},
    "request_extension": {"days": 1, "reason": "x"},
    "reject_extension": {"reason": "x"},
    "supervise": {"reason": "x"},
    "amend": {"content": "x"},
}


async def test_given_another_regions_ticket_then_every_endpoint_answers_404(
    tenv: TicketEnv,
) -> None:
    owner = await tenv.actor()
    tid = (await tenv.create(owner))["id"]
    before = await tenv.row_counts()
    for role in (Role.AGENT, Role.SUPERVISOR, Role.ADMIN):
        stranger = await tenv.actor(role, OTHER_CITY)
        for path in (f"/api/tickets/{tid}", f"/api/tickets/{tid}/history"):
            response = await tenv.get(stranger, path)
            assert response.status_code == 404, (role, path)
            assert response.json()["message"] == f"ticket {tid} not found"
        assert (await tenv.get(stranger, "/api/tickets", region=CITY)).status_code == 404
        listed = (await tenv.get(stranger, "/api/tickets", q=tenv.marker)).json()
        assert listed["total"] == 0
        for action in ACTION_BODIES:
            response = await tenv.act(stranger, tid, action, VALID_BODIES.get(action))
            assert response.status_code in (403, 404), (role, action)
            if response.status_code == 403:  # the role may never do it: says nothing of tid
                assert "requires role" in response.json()["message"]
    missing = await tenv.get(owner, "/api/tickets/2147483647")
    assert missing.status_code == 404 and missing.json() == {
        "error_id": "not-found",
        "message": "ticket 2147483647 not found",
        "details": {"ticket_id": 2147483647},
    }
    assert await tenv.row_counts() == before


async def test_given_province_scope_then_every_city_is_visible(tenv: TicketEnv) -> None:
    city_agent, admin = await tenv.actor(), await tenv.actor(Role.ADMIN, PROVINCE)
    other = await tenv.actor(Role.AGENT, OTHER_CITY)
    await tenv.create(city_agent)
    await tenv.create(other)
    page = (await tenv.get(admin, "/api/tickets", q=tenv.marker)).json()
    assert {t["region_code"] for t in page["items"]} == {CITY, OTHER_CITY}
    only = (await tenv.get(admin, "/api/tickets", q=tenv.marker, region=OTHER_CITY)).json()
    assert [t["region_code"] for t in only["items"]] == [OTHER_CITY]
    # A city agent cannot file a ticket for another city, nor dispatch to its staff.
    refused = await tenv.post(
        city_agent,
        "/api/tickets",
        {
            "category": "mediation",
            "request_type": "help",
            "content": "x",
            "region_code": OTHER_CITY,
        },
    )
    assert refused.status_code == 400
    assert refused.json()["details"]["fields"][0]["field"] == "region_code"
    tid = (await tenv.create(city_agent))["id"]
    sent = await tenv.act(city_agent, tid, "dispatch", {"assignee_id": other.user_id})
    assert sent.status_code == 400
    assert sent.json()["details"]["fields"] == [
        {"field": "assignee_id", "message": f"unknown user {other.user_id}"}
    ]


async def test_given_follow_up_staff_then_they_see_finished_tickets_only(tenv: TicketEnv) -> None:
    agent, follow = await tenv.actor(), await tenv.actor(Role.FOLLOWUP)
    open_id = (await tenv.create(agent))["id"]
    done = await tenv.create(agent, answer="已答复", resolved_on_call=True)
    assert (await tenv.get(follow, f"/api/tickets/{open_id}")).status_code == 404
    assert (await tenv.act(follow, open_id, "visit", VALID_BODIES["visit"])).status_code == 404
    page = (await tenv.get(follow, "/api/tickets", q=tenv.marker)).json()
    assert [t["id"] for t in page["items"]] == [done["id"]]
    assert page["items"][0]["caller_number"] == "13805730001"  # they call back
    assert (await tenv.post(follow, "/api/tickets", {"content": "x"})).status_code == 400
    create_body = {"category": "mediation", "request_type": "help", "content": "x"}
    assert (await tenv.post(follow, "/api/tickets", create_body)).status_code == 403


async def test_given_a_colleague_then_the_caller_number_is_masked(tenv: TicketEnv) -> None:
    agent, colleague = await tenv.actor(), await tenv.actor()
    sup = await tenv.actor(Role.SUPERVISOR)
    tid = (await tenv.create(agent))["id"]
    for viewer in (colleague, sup):
        seen = (await tenv.get(viewer, f"/api/tickets/{tid}")).json()
        assert seen["caller_number"] == "138****0001" and seen["number_masked"]
    await tenv.act(agent, tid, "dispatch", {"assignee_id": colleague.user_id})
    seen = (await tenv.get(colleague, f"/api/tickets/{tid}")).json()
    assert seen["caller_number"] == "13805730001"


BAD_CREATES: list[tuple[dict[str, Any], str]] = [
    ({"request_type": "help", "content": "x"}, "category"),
    ({"category": "tax", "request_type": "help", "content": "x"}, "category"),
    ({"category": "legal_aid", "request_type": "help", "content": "   "}, "content"),
    ({"category": "legal_aid", "request_type": "help", "content": "x", "extra": 1}, "extra"),
    (
        {"category": "legal_aid", "request_type": "help", "content": "x", "urgency": "asap"},
        "urgency",
    ),
    (
        {"category": "legal_aid", "request_type": "help", "content": "x", "caller_number": "1;2"},
        "caller_number",
    ),
    (
        {
            "category": "legal_consultation",
            "request_type": "consultation",
            "content": "x",
            "resolved_on_call": True,
        },
        "resolved_on_call",
    ),
    (
        {
            "category": "legal_aid",
            "request_type": "help",
            "content": "x",
            "caller_region_code": "339999",
        },
        "caller_region_code",
    ),
    (
        {"category": "legal_aid", "request_type": "help", "content": "x", "source_call_id": 999999},
        "source_call_id",
    ),
]


@pytest.mark.parametrize(("body", "field"), BAD_CREATES, ids=[f for _, f in BAD_CREATES])
async def test_given_a_bad_create_payload_then_400_names_the_field_and_nothing_is_written(
    tenv: TicketEnv, body: dict[str, Any], field: str
) -> None:
    agent = await tenv.actor()
    before = await tenv.row_counts()
    response = await tenv.post(agent, "/api/tickets", body)
    assert response.status_code == 400, response.text
    assert response.json()["error_id"] == "invalid-input"
    assert field in [f["field"] for f in response.json()["details"]["fields"]]
    assert await tenv.row_counts() == before


@pytest.mark.parametrize(
    ("action", "body", "field"),
    [
        ("return", None, "reason"),
        ("return", {"reason": "  "}, "reason"),
        ("dispatch", {"handling_unit": "司" * 129}, "handling_unit"),
        ("dispatch", {"assignee_id": 0}, "assignee_id"),
        ("dispatch", {"assignee_id": 999_999_999}, "assignee_id"),
        ("request_extension", {"days": 16, "reason": "x"}, "days"),
        ("visit", {"satisfaction": "great"}, "satisfaction"),
        ("sign", {"color": "red"}, "color"),
        ("resolve", [1, 2], ""),
    ],
)
async def test_given_a_bad_action_payload_then_400_and_nothing_is_written(
    tenv: TicketEnv, action: str, body: Any, field: str
) -> None:
    agent = await tenv.actor()
    tid = (await tenv.create(agent))["id"]
    before = await tenv.row_counts()
    response = await tenv.act(agent, tid, action, body)
    assert response.status_code == 400, response.text
    assert field in [f["field"] for f in response.json()["details"]["fields"]]
    assert await tenv.row_counts() == before
    assert (await tenv.get(agent, f"/api/tickets/{tid}")).json()["version"] == 1


async def test_given_bad_paths_and_queries_then_400(tenv: TicketEnv) -> None:
    agent = await tenv.actor()
    assert (await tenv.act(agent, 1, "teleport")).status_code == 400
    assert (await tenv.get(agent, "/api/tickets/0")).status_code == 400
    assert (await tenv.get(agent, "/api/tickets", limit=0)).status_code == 400
    assert (await tenv.get(agent, "/api/tickets", state="lost")).status_code == 400
    created = await tenv.post(agent, "/api/tickets/1/actions/create", {})
    assert created.status_code == 404
    assert (await tenv.client.get("/api/tickets")).status_code == 401


async def test_list_filters_search_and_pagination(tenv: TicketEnv) -> None:
    agent, other = await tenv.actor(), await tenv.actor()
    first = await tenv.create(agent, content=f"工资 50% 被拖欠 {tenv.marker}")
    second = await tenv.create(agent, category="mediation", answer=f"邻里纠纷 {tenv.marker}_a")
    third = await tenv.create(agent)
    await tenv.act(agent, third["id"], "dispatch", {"assignee_id": other.user_id})

    async def ids(**params: Any) -> list[int]:
        response = await tenv.get(agent, "/api/tickets", **params)
        assert response.status_code == 200, response.text
        return [t["id"] for t in response.json()["items"]]

    assert await ids(q=tenv.marker) == [third["id"], second["id"], first["id"]]
    assert await ids(q=f"{tenv.marker}_a") == [second["id"]]  # found in the answer
    assert await ids(q=tenv.marker, category="mediation") == [second["id"]]
    assert await ids(q=tenv.marker, state="dispatched") == [third["id"]]
    assert await ids(q=tenv.marker, assignee_id=other.user_id) == [third["id"]]
    assert await ids(q="50%") == [first["id"]]  # % is a character, not a wildcard
    assert await ids(q="0%被") == []
    page = (await tenv.get(agent, "/api/tickets", q=tenv.marker, limit=2, offset=1)).json()
    assert [t["id"] for t in page["items"]] == [second["id"], first["id"]]
    assert (page["total"], page["limit"], page["offset"]) == (3, 2, 1)
    both = await tenv.client.get(
        "/api/tickets",
        params=[("q", tenv.marker), ("state", "dispatched"), ("state", "accepted")],
        headers=agent.headers,
    )
    assert len(both.json()["items"]) == 3
