"""Batch ticket API: ``POST /api/tickets/batch`` (批量受理) and ``/api/tickets/batch/{action}``
(批量派单, 签收, 办结 ...) on SQLite and PostgreSQL.

A batch must do for each item exactly what the single endpoint does (numbers, history, SLA,
search, repeats, return visits, bus events), creation all-or-nothing, actions per item with
the single endpoint's errors. Every test runs on its own local day (see :func:`_fresh_day`), so
ticket numbers can be checked exactly: the first ticket of that day in a region is ``0001``.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text

from callcenter.bus import EventBus
from callcenter.db.models import Role
from callcenter.routing.calendar import SHANGHAI
from tests.ticketing.conftest import (
    CITY,
    OTHER_CITY,
    PROVINCE,
    Actor,
    TicketEnv,
    agent,
    retire_other_agents,
)
from ticketing.followup import sample_fraction
from ticketing.models import FollowupTask
from ticketing.schemas import BATCH_LIMIT

MISSING = 2**31 - 1
_BASE = datetime(2019, 3, 4, 10, 0, tzinfo=SHANGHAI)  # a Monday, 10:00: inside calling hours
_days = itertools.count()


def _fresh_day(env: TicketEnv) -> datetime:
    """Set the clock to a local day no other test of this run uses: its numbers start at 1."""
    env.now = _BASE + timedelta(days=7 * next(_days))
    return env.now


def _mobile() -> str:
    return f"136{uuid.uuid4().int % 10**8:08d}"


def _seq(number: str) -> int:
    return int(number.rsplit("-", 1)[1])


def _number(region: str, day: datetime, seq: int) -> str:
    return f"{region}-{day.astimezone(SHANGHAI):%Y%m%d}-{seq:04d}"


def _item(env: TicketEnv, index: int = 0, **fields: Any) -> dict[str, Any]:
    """One create body (a legal-aid request by a caller of its own unless told otherwise)."""
    return {
        "channel": "phone",
        "caller_number": _mobile(),
        "caller_region_code": CITY,
        "category": "legal_aid",
        "request_type": "help",
        "content": f"批量受理 {index} {env.marker}",
    } | fields


async def _create(env: TicketEnv, actor: Actor, items: list[dict[str, Any]]) -> httpx.Response:
    return await env.post(actor, "/api/tickets/batch", {"tickets": items})


async def _created(env: TicketEnv, actor: Actor, items: list[dict[str, Any]]) -> list[Any]:
    response = await _create(env, actor, items)
    assert response.status_code == 201, response.text
    tickets: list[Any] = response.json()["tickets"]
    assert len(tickets) == len(items)
    return tickets


async def _act(
    env: TicketEnv, actor: Actor, action: str, items: list[dict[str, Any]]
) -> httpx.Response:
    return await env.post(actor, f"/api/tickets/batch/{action}", {"items": items})


async def _acted(
    env: TicketEnv, actor: Actor, action: str, items: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """A batch action where every item must succeed; the tickets in item order."""
    response = await _act(env, actor, action, items)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["succeeded"], body["failed"]) == (len(items), 0), response.text
    assert [r["id"] for r in body["results"]] == [i["id"] for i in items]
    return [r["ticket"] for r in body["results"]]


async def _ticket(env: TicketEnv, actor: Actor, ticket_id: int) -> dict[str, Any]:
    response = await env.get(actor, f"/api/tickets/{ticket_id}")
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def _actions(env: TicketEnv, actor: Actor, ticket_id: int) -> list[str]:
    return [h["action"] for h in await env.history(actor, ticket_id)]


async def _task_reason(env: TicketEnv, ticket_id: int) -> str | None:
    """The return-visit task's reason for the ticket, ``None`` when none was scheduled."""
    async with env.services.sessionmaker() as session:
        rows = (
            await session.scalars(
                select(FollowupTask.reason).where(FollowupTask.ticket_id == ticket_id)
            )
        ).all()
    assert len(rows) <= 1, rows
    return rows[0] if rows else None


def _subscribe(bus: EventBus, *regions: str) -> Any:
    return bus.subscribe(*(f"tickets.{r}" for r in regions))


async def _drain(bus: EventBus, sub: Any, *regions: str) -> list[dict[str, Any]]:
    """Every event published so far on the regions' channels: a sentinel is published on each
    after the request, and a channel delivers in order, so nothing can arrive later."""
    token = uuid.uuid4().hex
    for region in regions:
        await bus.publish(f"tickets.{region}", {"event": "sentinel", "token": token})
    events: list[dict[str, Any]] = []
    seen = 0
    while seen < len(regions):
        data = dict((await sub.get(timeout=2)).data)
        if data.get("token") == token:
            seen += 1
        else:
            events.append(data)
    return events


def _fields(response: httpx.Response) -> list[str]:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error_id"] == "invalid-input", response.text
    return [f["field"] for f in body["details"]["fields"]]


def _blind(error: dict[str, Any], ticket_id: int, number: str | None = None) -> dict[str, Any]:
    """An error body with the ticket's own id and number replaced, to compare two tickets."""
    message = str(error["message"]).replace(f"ticket {ticket_id} ", "ticket <id> ")
    if number is not None:
        message = message.replace(number, "<number>")
    details = {
        key: "<id>" if key == "ticket_id" and value == ticket_id else value
        for key, value in error["details"].items()
    }
    return {**error, "message": message, "details": details}


def _no_ids(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in row.items() if k != "id"} for row in history]


def _identity_free(ticket: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in ticket.items() if k not in ("id", "number")}


# --- 批量受理: creating ------------------------------------------------------------------------


async def test_given_a_batch_when_created_then_each_ticket_is_made_as_if_alone(
    tenv: TicketEnv,
) -> None:
    day = _fresh_day(tenv)
    agent = await tenv.actor()
    caller = _mobile()
    items = [
        _item(tenv, 0, caller_number=caller),
        _item(
            tenv,
            1,
            category="legal_consultation",
            request_type="consultation",
            answer="劳动争议可先申请劳动仲裁",
            resolved_on_call=True,
        ),
        _item(tenv, 2, answer="已告知申请法律援助的条件", resolved_on_call=True),
        _item(tenv, 3, caller_number=caller),  # the same matter again: a repeat of item 0
        _item(tenv, 4, caller_number=caller, category="notarization", request_type="consultation"),
        _item(tenv, 5, green_channel=True, urgency="urgent"),
    ]
    async with _subscribe(tenv.services.bus, CITY) as sub:
        tickets = await _created(tenv, agent, items)
        events = await _drain(tenv.services.bus, sub, CITY)
    ids = [t["id"] for t in tickets]

    assert [t["content"] for t in tickets] == [i["content"] for i in items]
    assert [t["number"] for t in tickets] == [_number(CITY, day, n) for n in range(1, 7)]
    assert len(set(ids)) == 6
    assert [t["state"] for t in tickets] == ["accepted", "resolved", "resolved", *["accepted"] * 3]
    assert [t["version"] for t in tickets] == [1, 2, 2, 1, 1, 1]
    assert tickets[1]["result"] == "劳动争议可先申请劳动仲裁" and tickets[1]["resolved_at"]
    assert all(t["created_by_id"] == agent.user_id and t["region_code"] == CITY for t in tickets)
    assert all(
        t["caller_number"] == i["caller_number"] for t, i in zip(tickets, items, strict=True)
    )

    for ticket in tickets:
        history = await tenv.history(agent, ticket["id"])
        expected: list[tuple[str, str | None, str]] = [("create", None, "accepted")]
        if ticket["resolved_on_call"]:
            expected.append(("resolve", "accepted", "resolved"))
        assert [(h["action"], h["from_state"], h["to_state"]) for h in history] == expected
        assert all(h["actor_id"] == agent.user_id for h in history)

    found = (await tenv.get(agent, "/api/tickets", q=tenv.marker, limit=50)).json()
    assert found["total"] == 6 and {t["id"] for t in found["items"]} == set(ids)
    in_answer = await tenv.get(agent, "/api/tickets", q=f"劳动仲裁 {tenv.marker}")
    assert [t["id"] for t in in_answer.json()["items"]] == [ids[1]]

    # SLA deadlines are the single path's: a ticket made alone at the same moment agrees.
    for index in (0, 5):
        alone = await tenv.create(agent, **(items[index] | {"caller_number": _mobile()}))
        assert (alone["accept_by"], alone["resolve_by"]) == (
            tickets[index]["accept_by"],
            tickets[index]["resolve_by"],
        )

    # Return visits by the policy: legal aid always, consultations by their number's sample.
    share = tenv.services.settings.followup_consultation_share
    assert await _task_reason(tenv, ids[2]) == "legal_aid"
    sampled = sample_fraction(tickets[1]["number"]) < share
    assert await _task_reason(tenv, ids[1]) == ("sampled" if sampled else None)
    assert [await _task_reason(tenv, i) for i in (ids[0], ids[3], ids[4], ids[5])] == [None] * 4

    family = (await tenv.get(agent, f"/api/tickets/{ids[3]}/related")).json()
    assert family["root_id"] == ids[0] and family["repeat_count"] == 1
    assert [t["id"] for t in family["items"]] == [ids[0], ids[3]]
    other_matter = (await tenv.get(agent, f"/api/tickets/{ids[4]}/related")).json()
    assert other_matter["repeat_count"] == 0 and [t["id"] for t in other_matter["items"]] == [
        ids[4]
    ]

    mine = [e for e in events if e["ticket_id"] in ids]
    assert [e["ticket_id"] for e in mine] == ids
    assert [(e["action"], e["state"], e["number"]) for e in mine] == [
        ("create", t["state"], t["number"]) for t in tickets
    ]


async def test_given_a_provincial_batch_then_numbers_run_per_region_in_request_order(
    tenv: TicketEnv,
) -> None:
    day = _fresh_day(tenv)
    admin = await tenv.actor(Role.ADMIN, PROVINCE)
    regions = [CITY, OTHER_CITY, CITY, CITY, OTHER_CITY]
    items = [_item(tenv, i, region_code=r) for i, r in enumerate(regions)]
    tickets = await _created(tenv, admin, items)
    assert [t["region_code"] for t in tickets] == regions
    assert [t["number"] for t in tickets] == [
        _number(CITY, day, 1),
        _number(OTHER_CITY, day, 1),
        _number(CITY, day, 2),
        _number(CITY, day, 3),
        _number(OTHER_CITY, day, 2),
    ]
    follow = await tenv.create(admin, region_code=OTHER_CITY)
    assert follow["number"] == _number(OTHER_CITY, day, 3)


BAD_ITEMS: list[tuple[int, dict[str, Any], str]] = [
    # pydantic errors: the usual validation shape, located in the list
    (2, {"category": "tax"}, "tickets.2.category"),
    (1, {"content": "   "}, "tickets.1.content"),
    (3, {"extra": 1}, "tickets.3.extra"),
    (4, {"caller_number": "1;2"}, "tickets.4.caller_number"),
    (0, {"resolved_on_call": True}, "tickets.0.resolved_on_call"),
    # domain errors found by the service
    (3, {"region_code": OTHER_CITY}, "tickets.3.region_code"),
    (2, {"region_code": "330499"}, "tickets.2.region_code"),
    (4, {"caller_region_code": "339999"}, "tickets.4.caller_region_code"),
    (1, {"source_call_id": 999_999}, "tickets.1.source_call_id"),
]


@pytest.mark.parametrize(("bad", "fields", "field"), BAD_ITEMS, ids=[f for _, _, f in BAD_ITEMS])
async def test_given_one_bad_item_then_400_names_it_and_nothing_is_written(
    tenv: TicketEnv, bad: int, fields: dict[str, Any], field: str
) -> None:
    day = _fresh_day(tenv)
    agent = await tenv.actor()
    assert (await tenv.create(agent))["number"] == _number(CITY, day, 1)
    items = [_item(tenv, i) for i in range(5)]
    items[bad] |= fields
    before = await tenv.row_counts()
    async with _subscribe(tenv.services.bus, CITY, OTHER_CITY) as sub:
        response = await _create(tenv, agent, items)
        events = await _drain(tenv.services.bus, sub, CITY, OTHER_CITY)
    assert field in _fields(response), response.text
    if fields.keys() & {"region_code", "caller_region_code", "source_call_id"}:  # the service
        assert _fields(response)[0] == field
    assert await tenv.row_counts() == before
    assert events == []
    listed = await tenv.get(agent, "/api/tickets", q=f"批量受理 {tenv.marker}")
    assert listed.json()["total"] == 0
    assert (await tenv.create(agent))["number"] == _number(CITY, day, 2)  # no gap


async def test_given_batch_create_limits_and_roles_then_400_or_403_and_nothing_written(
    tenv: TicketEnv,
) -> None:
    _fresh_day(tenv)
    agent, follow = await tenv.actor(), await tenv.actor(Role.FOLLOWUP)
    before = await tenv.row_counts()
    assert "tickets" in _fields(await _create(tenv, agent, []))
    too_many = [_item(tenv, i) for i in range(BATCH_LIMIT + 1)]
    assert "tickets" in _fields(await _create(tenv, agent, too_many))
    assert "tickets" in _fields(await tenv.post(agent, "/api/tickets/batch", {}))
    assert "tickets" in _fields(await tenv.post(agent, "/api/tickets/batch", {"tickets": {}}))
    assert _fields(await tenv.post(agent, "/api/tickets/batch", [_item(tenv)])) != []
    refused = await _create(tenv, follow, [_item(tenv)])
    assert refused.status_code == 403 and refused.json()["error_id"] == "permission-denied"
    assert (
        await tenv.client.post("/api/tickets/batch", json={"tickets": [_item(tenv)]})
    ).status_code == 401
    assert await tenv.row_counts() == before


async def test_given_the_limit_when_creating_and_dispatching_200_then_all_are_done(
    tenv: TicketEnv,
) -> None:
    day = _fresh_day(tenv)
    agent = await tenv.actor()
    before = await tenv.row_counts()
    tickets = await _created(tenv, agent, [_item(tenv, i) for i in range(BATCH_LIMIT)])
    assert [t["number"] for t in tickets] == [
        _number(CITY, day, n) for n in range(1, BATCH_LIMIT + 1)
    ]
    after = await tenv.row_counts()
    assert after == (before[0] + 200, before[1] + 200, before[2] + 200)
    order = [{"id": t["id"], "handling_unit": "南湖区司法局"} for t in tickets]
    dispatched = await _acted(tenv, agent, "dispatch", order)
    assert {(t["state"], t["version"]) for t in dispatched} == {("dispatched", 2)}
    assert (await tenv.row_counts())[1] == after[1] + 200
    too_many = [*order, {"id": MISSING, "handling_unit": "南湖区司法局"}]
    assert "items" in _fields(await _act(tenv, agent, "urge", too_many))


# --- batch actions ------------------------------------------------------------------------


async def test_given_a_batch_when_walked_to_resolved_by_batches_then_histories_tell_all(
    tenv: TicketEnv,
) -> None:
    _fresh_day(tenv)
    agent, handler = await tenv.actor(), await tenv.actor()
    tickets = await _created(
        tenv,
        agent,
        [
            _item(tenv, 0),
            _item(tenv, 1, category="complaint_suggestion", request_type="complaint"),
            _item(tenv, 2, category="legal_consultation", request_type="consultation"),
        ],
    )
    ids = [t["id"] for t in tickets]
    steps: list[tuple[Actor, str, dict[str, Any], str]] = [
        (
            agent,
            "dispatch",
            {"assignee_id": handler.user_id, "handling_unit": "嘉兴市法律援助中心"},
            "dispatched",
        ),
        (handler, "sign", {}, "signed"),
        (handler, "start", {"reason": "联系当事人"}, "in_progress"),
        (handler, "resolve", {"result": "已答复"}, "resolved"),
    ]
    answers = ["可申请法律援助", None, "可咨询公证处"]  # two shapes of change in one batch
    async with _subscribe(tenv.services.bus, CITY) as sub:
        for version, (actor, action, body, state) in enumerate(steps, start=2):
            items = [{"id": i, **body} for i in ids]
            if action == "resolve":
                items = [
                    i | ({"answer": a} if a else {}) for i, a in zip(items, answers, strict=True)
                ]
            done = await _acted(tenv, actor, action, items)
            assert [(t["id"], t["state"], t["version"]) for t in done] == [
                (i, state, version) for i in ids
            ]
        events = await _drain(tenv.services.bus, sub, CITY)

    for tid, answer in zip(ids, answers, strict=True):
        final = await _ticket(tenv, agent, tid)
        assert final["assignee_id"] == handler.user_id and final["result"] == "已答复"
        assert final["signed_at"] and final["resolved_at"] and final["answer"] == answer
    for tid in ids:
        history = await tenv.history(agent, tid)
        assert [(h["action"], h["to_state"]) for h in history] == [
            ("create", "accepted"),
            *((s[1], s[3]) for s in steps),
        ]
        assert [h["actor_id"] for h in history] == [
            agent.user_id,
            agent.user_id,
            *[handler.user_id] * 3,
        ]
        assert history[1]["details"]["handling_unit"] == "嘉兴市法律援助中心"
        assert history[3]["reason"] == "联系当事人"
    mine = Counter((e["ticket_id"], e["action"]) for e in events)
    assert mine == Counter({(i, s[1]): 1 for i in ids for s in steps})

    # 办结 owes return visits like the single path: always for legal aid and complaints.
    assert await _task_reason(tenv, ids[0]) == "legal_aid"
    assert await _task_reason(tenv, ids[1]) == "complaint"
    share = tenv.services.settings.followup_consultation_share
    sampled = sample_fraction(tickets[2]["number"]) < share
    assert await _task_reason(tenv, ids[2]) == ("sampled" if sampled else None)


async def test_given_follow_up_staff_then_they_visit_and_archive_finished_tickets_in_batches(
    tenv: TicketEnv,
) -> None:
    _fresh_day(tenv)
    agent, follow = await tenv.actor(), await tenv.actor(Role.FOLLOWUP)
    done = {"answer": "已解答", "resolved_on_call": True}
    made = await _created(
        tenv, agent, [_item(tenv, 0, **done), _item(tenv, 1, **done), _item(tenv, 2)]
    )
    closed1, closed2, still_open = (t["id"] for t in made)
    visited = await _act(
        tenv,
        follow,
        "visit",
        [
            {"id": closed1, "satisfaction": "satisfied"},
            {"id": still_open, "satisfaction": "satisfied"},  # not theirs to see yet
            {"id": closed2, "satisfaction": "basically_satisfied"},
        ],
    )
    results = visited.json()["results"]
    assert [r["ok"] for r in results] == [True, False, True], visited.text
    assert _blind(results[1]["error"], still_open) == _blind(
        (await tenv.get(follow, f"/api/tickets/{MISSING}")).json(), MISSING
    )
    assert [r["ticket"]["satisfaction"] for r in (results[0], results[2])] == [
        "satisfied",
        "basically_satisfied",
    ]
    archived = await _acted(tenv, follow, "archive", [{"id": closed2}, {"id": closed1}])
    assert [(t["id"], t["state"]) for t in archived] == [
        (closed2, "archived"),
        (closed1, "archived"),
    ]
    assert await _actions(tenv, agent, closed1) == ["create", "resolve", "visit", "archive"]
    assert await _actions(tenv, agent, still_open) == ["create"]


async def test_given_a_mixed_batch_then_good_items_commit_and_failed_ones_change_nothing(
    tenv: TicketEnv,
) -> None:
    _fresh_day(tenv)
    agent, handler, colleague = await tenv.actor(), await tenv.actor(), await tenv.actor()
    stranger = await tenv.actor(Role.AGENT, OTHER_CITY)
    made = await _created(tenv, agent, [_item(tenv, i) for i in range(6)])
    good1, good2, accepted, stale, theirs, good3 = (t["id"] for t in made)
    await _acted(
        tenv,
        agent,
        "dispatch",
        [
            {"id": good1, "assignee_id": handler.user_id},
            {"id": good2, "handling_unit": "南湖区司法局"},
            {"id": stale, "assignee_id": handler.user_id},
            {"id": theirs, "assignee_id": colleague.user_id},
            {"id": good3, "assignee_id": handler.user_id},
        ],
    )
    other = (await tenv.create(stranger))["id"]
    before = {t: await _ticket(tenv, agent, t) for t in (accepted, stale, theirs)}
    history_before = {t: len(await tenv.history(agent, t)) for t in (accepted, stale, theirs)}
    counts = await tenv.row_counts()

    items = [
        {"id": good1},
        {"id": MISSING},
        {"id": other},
        {"id": accepted},
        {"id": stale, "version": 1},
        {"id": good2, "version": 2},
        {"id": theirs},
        {"id": good3, "reason": "立即签收"},
    ]
    async with _subscribe(tenv.services.bus, CITY, OTHER_CITY) as sub:
        response = await _act(tenv, handler, "sign", items)
        events = await _drain(tenv.services.bus, sub, CITY, OTHER_CITY)
    assert response.status_code == 200, response.text
    body = response.json()
    results = body["results"]
    assert [r["id"] for r in results] == [i["id"] for i in items]
    assert [r["ok"] for r in results] == [True, False, False, False, False, True, False, True]
    assert (body["succeeded"], body["failed"]) == (3, 5)
    assert [r.get("status") for r in results] == [None, 404, 404, 409, 409, None, 403, None]
    errors = {r["id"]: r["error"] for r in results if not r["ok"]}
    assert all(r.get("ticket") is None for r in results if not r["ok"])
    assert all(r.get("error") is None for r in results if r["ok"])

    # Another region's ticket and a missing one cannot be told apart.
    assert _blind(errors[other], other) == _blind(errors[MISSING], MISSING)
    assert errors[MISSING] == (await tenv.get(handler, f"/api/tickets/{MISSING}")).json()
    assert errors[other] == (await tenv.act(handler, other, "sign")).json()
    assert errors[accepted]["error_id"] == "illegal-transition"
    assert errors[accepted]["details"]["state"] == "accepted"
    assert "accepted (受理)" in errors[accepted]["message"]
    assert errors[stale]["error_id"] == "ticket-changed"
    assert errors[stale]["details"] == {"state": "dispatched", "version": 2}
    assert errors[theirs]["error_id"] == "not-assignee"

    for result in (r for r in results if r["ok"]):
        assert result["ticket"]["state"] == "signed" and result["ticket"]["version"] == 3
        assert result["ticket"]["assignee_id"] == handler.user_id
    for tid in (good1, good2, good3):
        assert await _actions(tenv, agent, tid) == ["create", "dispatch", "sign"]
        assert (await _ticket(tenv, agent, tid))["state"] == "signed"
    assert (await tenv.history(agent, good3))[-1]["reason"] == "立即签收"
    for tid, ticket in before.items():
        assert await _ticket(tenv, agent, tid) == ticket
        assert len(await tenv.history(agent, tid)) == history_before[tid]
    assert (await _ticket(tenv, stranger, other))["version"] == 1
    assert await tenv.row_counts() == (counts[0], counts[1] + 3, counts[2])
    assert sorted(e["ticket_id"] for e in events) == sorted([good1, good2, good3])


async def test_given_per_item_rule_failures_then_each_gets_the_single_endpoints_error(
    tenv: TicketEnv,
) -> None:
    _fresh_day(tenv)
    agent, sup = await tenv.actor(), await tenv.actor(Role.SUPERVISOR)
    stranger = await tenv.actor(Role.AGENT, OTHER_CITY)
    ids = [t["id"] for t in await _created(tenv, agent, [_item(tenv, i) for i in range(3)])]
    sent = await _act(
        tenv,
        agent,
        "dispatch",
        [
            {"id": ids[0], "assignee_id": agent.user_id},
            {"id": ids[1], "assignee_id": stranger.user_id},  # not theirs to dispatch to
            {"id": ids[2], "assignee_id": MISSING},
        ],
    )
    results = sent.json()["results"]
    assert [r["ok"] for r in results] == [True, False, False]
    assert [r["status"] for r in results[1:]] == [400, 400]
    assert results[1]["error"]["error_id"] == "invalid-input"
    assert [f["field"] for f in results[2]["error"]["details"]["fields"]] == ["assignee_id"]
    assert await _actions(tenv, agent, ids[1]) == ["create"]

    await _acted(tenv, agent, "sign", [{"id": ids[0]}])
    await _acted(tenv, agent, "request_extension", [{"id": ids[0], "days": 10, "reason": "取证"}])
    again = await _act(tenv, agent, "request_extension", [{"id": ids[0], "days": 1, "reason": "x"}])
    assert again.status_code == 200
    refused = again.json()["results"][0]
    assert (refused["ok"], refused["status"]) == (False, 409)
    assert refused["error"]["error_id"] == "extension-refused"
    approved = await _acted(tenv, sup, "approve_extension", [{"id": ids[0]}])
    assert approved[0]["extended_days"] == 10
    assert await _actions(tenv, agent, ids[0]) == [
        "create",
        "dispatch",
        "sign",
        "request_extension",
        "approve_extension",
    ]


async def test_given_a_batch_dispatch_without_target_then_load_is_spread_as_one_by_one(
    aenv: TicketEnv,
) -> None:
    """批量派单 by the rules: each item sees the load the earlier items added, as N single
    dispatches in a row would; not the whole batch to whoever was least loaded at the start."""
    _fresh_day(aenv)
    desk = await aenv.actor(Role.SUPERVISOR)
    first, second = await agent(aenv, skills=["legal_aid"]), await agent(aenv, skills=["legal_aid"])
    await retire_other_agents(aenv, [first, second])
    ids = [t["id"] for t in await _created(aenv, desk, [_item(aenv, i) for i in range(4)])]
    done = await _acted(aenv, desk, "dispatch", [{"id": t} for t in ids])
    low, high = sorted((first.user_id, second.user_id))
    assert [t["assignee_id"] for t in done] == [low, high, low, high]


# --- bad batch requests ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "items", "field"),
    [
        ("sign", [{"id": 0}, {"id": 0}], "items.1.id"),  # ids replaced below: 0, 0 = same
        ("dispatch", [{"id": 0}, {"id": 1}, {"id": 2, "color": "red"}], "items.2.color"),
        (
            "dispatch",
            [{"id": 0}, {"id": 1}, {"id": 2, "handling_unit": "司" * 129}],
            "items.2.handling_unit",
        ),
        ("return", [{"id": 0, "reason": "x"}, {"id": 1}], "items.1.reason"),
        ("urge", [{"id": 0}, {"version": 1}], "items.1.id"),
        ("urge", [{"id": 0}, {"id": -1}], "items.1.id"),
        ("request_extension", [{"id": 0, "days": 16, "reason": "x"}], "items.0.days"),
    ],
)
async def test_given_a_bad_batch_payload_then_400_names_the_item_and_nothing_is_written(
    tenv: TicketEnv, action: str, items: list[dict[str, Any]], field: str
) -> None:
    _fresh_day(tenv)
    agent = await tenv.actor()
    ids = [t["id"] for t in await _created(tenv, agent, [_item(tenv, i) for i in range(3)])]
    concrete = [i | ({"id": ids[i["id"]]} if i.get("id", -1) >= 0 else {}) for i in items]
    before = await tenv.row_counts()
    response = await _act(tenv, agent, action, concrete)
    assert field in _fields(response), response.text
    assert await tenv.row_counts() == before
    for tid in ids:
        assert (await _ticket(tenv, agent, tid))["version"] == 1


async def test_given_bad_batch_requests_then_400_403_404_and_nothing_is_written(
    tenv: TicketEnv,
) -> None:
    _fresh_day(tenv)
    agent, sup, follow = (
        await tenv.actor(),
        await tenv.actor(Role.SUPERVISOR),
        await tenv.actor(Role.FOLLOWUP),
    )
    tid = (await _created(tenv, agent, [_item(tenv)]))[0]["id"]
    before = await tenv.row_counts()
    assert "items" in _fields(await _act(tenv, agent, "urge", []))
    assert "items" in _fields(await tenv.post(agent, "/api/tickets/batch/urge", {}))
    # Deliberate per-ticket acts and creation are not batch actions.
    for actor, action, body in (
        (sup, "supervise", {"reason": "超期"}),
        (agent, "amend", {"content": "改"}),
        (agent, "create", {}),
    ):
        response = await _act(tenv, actor, action, [{"id": tid, **body}])
        assert response.status_code == 404, (action, response.text)
        assert response.json()["error_id"] == "not-found"
    # Unknown or internal actions: whatever the single endpoint answers.
    for action in ("teleport", "sla_red"):
        single = await tenv.act(sup, tid, action)
        batch = await _act(tenv, sup, action, [{"id": tid}])
        assert batch.status_code == single.status_code and batch.status_code in (400, 404)
    # A role that may never do the action: 403 for the whole request, even on good ids.
    for actor, action, body in (
        (follow, "sign", {}),
        (agent, "approve_extension", {}),
        (agent, "visit", {"satisfaction": "satisfied"}),
    ):
        response = await _act(tenv, actor, action, [{"id": tid, **body}, {"id": MISSING, **body}])
        assert response.status_code == 403, (action, response.text)
        assert response.json()["error_id"] == "permission-denied"
    assert (
        await tenv.client.post("/api/tickets/batch/urge", json={"items": [{"id": tid}]})
    ).status_code == 401
    assert await tenv.row_counts() == before
    assert (await _ticket(tenv, agent, tid))["version"] == 1


# --- region scope -------------------------------------------------------------------------


async def test_given_regions_then_a_city_acts_on_its_own_and_the_province_on_all(
    tenv: TicketEnv,
) -> None:
    _fresh_day(tenv)
    agent, other_agent = await tenv.actor(), await tenv.actor(Role.AGENT, OTHER_CITY)
    province = await tenv.actor(Role.SUPERVISOR, PROVINCE)
    mine = (await _created(tenv, agent, [_item(tenv, 0)]))[0]["id"]
    theirs = (await _created(tenv, other_agent, [_item(tenv, 1, caller_region_code=OTHER_CITY)]))[
        0
    ]["id"]

    for role in (Role.AGENT, Role.SUPERVISOR, Role.ADMIN):
        city = agent if role is Role.AGENT else await tenv.actor(role, CITY)
        response = await _act(
            tenv,
            city,
            "dispatch",
            [{"id": theirs, "assignee_id": other_agent.user_id}],
        )
        assert response.status_code == 200, response.text
        result = response.json()["results"][0]
        assert (result["ok"], result["status"]) == (False, 404), role
        assert _blind(result["error"], theirs) == _blind(
            (await tenv.get(city, f"/api/tickets/{MISSING}")).json(), MISSING
        )
    assert (await _ticket(tenv, other_agent, theirs))["version"] == 1

    done = await _acted(
        tenv,
        province,
        "dispatch",
        [
            {"id": mine, "assignee_id": agent.user_id},
            {"id": theirs, "assignee_id": other_agent.user_id},
        ],
    )
    assert [(t["region_code"], t["assignee_id"]) for t in done] == [
        (CITY, agent.user_id),
        (OTHER_CITY, other_agent.user_id),
    ]
    assert await _actions(tenv, other_agent, theirs) == ["create", "dispatch"]


# --- a batch of one is the single endpoint ------------------------------------------------


async def test_given_a_batch_of_one_then_it_creates_exactly_like_the_single_endpoint(
    tenv: TicketEnv,
) -> None:
    _fresh_day(tenv)
    agent = await tenv.actor()
    variants: list[dict[str, Any]] = [
        {},
        {"green_channel": True, "urgency": "urgent", "handling_unit": "南湖区司法局"},
        {"category": "mediation", "answer": "已调解", "resolved_on_call": True},
    ]
    for fields in variants:
        body = _item(tenv, 0, **fields)
        single = await tenv.create(agent, **body)
        batched = (await _created(tenv, agent, [body]))[0]
        assert _seq(batched["number"]) == _seq(single["number"]) + 1
        assert _identity_free(batched) == _identity_free(single)
        assert _no_ids(await tenv.history(agent, batched["id"])) == _no_ids(
            await tenv.history(agent, single["id"])
        )
    for fields in ({"region_code": OTHER_CITY}, {"caller_region_code": "339999"}):
        single_error = await tenv.post(agent, "/api/tickets", _item(tenv, 0, **fields))
        batch_error = await _create(tenv, agent, [_item(tenv, 0, **fields)])
        assert batch_error.status_code == single_error.status_code == 400
        expected = single_error.json()
        for f in expected["details"]["fields"]:
            f["field"] = f"tickets.0.{f['field']}"
        assert batch_error.json()["details"] == expected["details"]


async def _pair(env: TicketEnv, agent: Actor, steps: list[tuple[str, dict[str, Any]]]) -> list[int]:
    """Two tickets of the same caller brought the same way (single endpoint) to the same state."""
    caller = _mobile()
    pair = [t["id"] for t in await _created(env, agent, [_item(env, 0, caller_number=caller)] * 2)]
    for action, body in steps:
        for tid in pair:
            assert (await env.act(agent, tid, action, body)).status_code == 200
    return pair


SAME_AS_SINGLE: list[tuple[list[tuple[str, dict[str, Any]]], str, dict[str, Any]]] = [
    ([], "dispatch", {"handling_unit": "南湖区司法局", "version": 1}),
    ([("dispatch", {"handling_unit": "南湖区司法局"})], "sign", {}),
    ([], "resolve", {"result": "直接答复", "answer": "可申请"}),
    ([], "sign", {}),  # illegal: not dispatched
    ([("dispatch", {"handling_unit": "南湖区司法局"})], "urge", {"version": 1}),  # stale
    ([], "dispatch", {"assignee_id": MISSING}),  # unknown assignee
    ([], "return", {"reason": "x"}),  # illegal from accepted
]


@pytest.mark.parametrize(
    ("steps", "action", "body"),
    SAME_AS_SINGLE,
    ids=["dispatch", "sign", "resolve", "illegal", "stale", "unknown-assignee", "return"],
)
async def test_given_a_batch_of_one_then_it_acts_exactly_like_the_single_endpoint(
    tenv: TicketEnv, steps: list[tuple[str, dict[str, Any]]], action: str, body: dict[str, Any]
) -> None:
    _fresh_day(tenv)
    agent = await tenv.actor()
    alone, batched = await _pair(tenv, agent, steps)
    numbers = {t: (await _ticket(tenv, agent, t))["number"] for t in (alone, batched)}
    single = await tenv.act(agent, alone, action, body)
    response = await _act(tenv, agent, action, [{"id": batched, **body}])
    assert response.status_code == 200, response.text
    result = response.json()["results"][0]
    assert result["id"] == batched and result["ok"] is (single.status_code == 200)
    if single.status_code == 200:
        assert _identity_free(result["ticket"]) == _identity_free(single.json())
        assert (response.json()["succeeded"], response.json()["failed"]) == (1, 0)
    else:
        assert result["status"] == single.status_code
        assert _blind(result["error"], batched, numbers[batched]) == _blind(
            single.json(), alone, numbers[alone]
        )
        assert (response.json()["succeeded"], response.json()["failed"]) == (0, 1)
    assert _no_ids(await tenv.history(agent, batched)) == _no_ids(await tenv.history(agent, alone))
    assert _identity_free(await _ticket(tenv, agent, batched)) == _identity_free(
        await _ticket(tenv, agent, alone)
    )


# --- concurrency on PostgreSQL --------------------------------------------------------------


async def _sign_both(
    env: TicketEnv, pair: tuple[Actor, Actor], batches: tuple[list[int], list[int]], forced: bool
) -> list[httpx.Response]:
    """Both batches at once; ``forced``: a third connection holds the overlapping rows until
    both batches wait on them, so both have read every ticket before either writes."""
    requests = [
        _act(env, actor, "sign", [{"id": t} for t in batch])
        for actor, batch in zip(pair, batches, strict=True)
    ]
    if not forced:
        return list(await asyncio.gather(*requests))
    overlap = sorted(set(batches[0]) & set(batches[1]))
    async with env.services.engine.connect() as locker:
        await locker.execute(
            text("SELECT id FROM tickets WHERE id = ANY(:ids) FOR UPDATE"), {"ids": overlap}
        )
        tasks = [asyncio.create_task(r) for r in requests]
        async with asyncio.timeout(10):
            while await env.waiting_on_locks() < 2:
                await asyncio.sleep(0.01)
        await locker.rollback()
        return list(await asyncio.gather(*tasks))


@pytest.mark.postgres
@pytest.mark.parametrize("forced", [False, True], ids=["gather", "forced"])
@pytest.mark.parametrize("reverse", [False, True], ids=["same-order", "reverse-order"])
async def test_given_two_batches_signing_overlapping_tickets_then_each_is_signed_once(
    pg_tenv: TicketEnv, reverse: bool, forced: bool
) -> None:
    env = pg_tenv
    _fresh_day(env)
    dispatcher, first, second = await env.actor(), await env.actor(), await env.actor()
    for _ in range(2 if forced else 4):
        ids = [t["id"] for t in await _created(env, dispatcher, [_item(env, i) for i in range(6)])]
        await _acted(
            env, dispatcher, "dispatch", [{"id": t, "handling_unit": "南湖区司法局"} for t in ids]
        )
        mine, yours = ids[:4], ids[2:]
        if reverse:
            yours = yours[::-1]
        async with _subscribe(env.services.bus, CITY) as sub:
            responses = await _sign_both(env, (first, second), (mine, yours), forced)
            events = await _drain(env.services.bus, sub, CITY)
        winners: dict[int, list[int]] = {t: [] for t in ids}
        for actor, response in zip((first, second), responses, strict=True):
            assert response.status_code == 200, response.text
            for result in response.json()["results"]:
                if result["ok"]:
                    winners[result["id"]].append(actor.user_id)
                else:
                    assert result["status"] == 409, result
                    assert result["error"]["error_id"] in ("illegal-transition", "ticket-changed")
        assert all(len(w) == 1 for w in winners.values()), winners
        assert [winners[t][0] for t in ids[:2]] == [first.user_id] * 2
        assert [winners[t][0] for t in ids[4:]] == [second.user_id] * 2
        signed = Counter(e["ticket_id"] for e in events if e["action"] == "sign")
        assert signed == Counter(ids), events  # one event per ticket: none for the losers
        for tid in ids:
            history = await env.history(dispatcher, tid)
            assert [(h["action"], h["actor_id"]) for h in history[2:]] == [
                ("sign", winners[tid][0])
            ]
            ticket = await _ticket(env, dispatcher, tid)
            assert (ticket["state"], ticket["version"]) == ("signed", 3)
            assert ticket["assignee_id"] == winners[tid][0]


@pytest.mark.postgres
async def test_given_concurrent_single_and_batch_creators_then_numbers_stay_gap_free(
    pg_tenv: TicketEnv,
) -> None:
    env = pg_tenv
    day = _fresh_day(env)
    agents = [await env.actor() for _ in range(3)]
    batches = [[_item(env, i) for i in range(5)] for _ in agents]
    singles = [_item(env, 100 + i) for i in range(6)]
    responses = await asyncio.gather(
        *(_create(env, a, b) for a, b in zip(agents, batches, strict=True)),
        *(env.post(agents[i % 3], "/api/tickets", s) for i, s in enumerate(singles)),
    )
    assert all(r.status_code == 201 for r in responses), [r.text for r in responses]
    numbers: list[str] = []
    for response in responses[:3]:
        batch = [t["number"] for t in response.json()["tickets"]]
        seqs = [_seq(n) for n in batch]
        assert seqs == list(range(seqs[0], seqs[0] + 5)), batch  # consecutive, in order
        numbers += batch
    numbers += [r.json()["number"] for r in responses[3:]]
    assert sorted(numbers) == [_number(CITY, day, n) for n in range(1, 22)]
