"""Return visits (回访): sampling policy, calling hours, attempts and their limit, 不满意 → 重办,
the workbench API with its roles, region scope and bad payloads (SQLite and PostgreSQL)."""

from __future__ import annotations

import uuid
from datetime import datetime, time, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update

from callcenter.db.models import Role
from callcenter.routing.calendar import SHANGHAI
from tests.ticketing.conftest import CITY, OTHER_CITY, PROVINCE, Actor, TicketEnv
from ticketing.followup import (
    FollowupPolicy,
    in_calling_hours,
    next_calling_time,
    sample_fraction,
    visit_reason,
)
from ticketing.models import FollowupAttempt, FollowupTask, TaskReason, Ticket

MONDAY_10 = datetime(2026, 11, 23, 10, 0, tzinfo=SHANGHAI)


def _local(hour: int, minute: int, day: int = 23) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=SHANGHAI)


# --- calling hours and sampling (pure) -------------------------------------------------------


@pytest.mark.parametrize(
    ("hour", "minute", "inside"),
    [(7, 59, False), (8, 0, True), (20, 59, True), (21, 0, False), (0, 0, False)],
)
def test_given_a_local_time_when_checked_then_calling_hours_are_0800_to_2100(
    hour: int, minute: int, inside: bool
) -> None:
    assert in_calling_hours(_local(hour, minute)) is inside


def test_given_a_time_outside_calling_hours_when_scheduled_then_moves_to_next_opening() -> None:
    assert next_calling_time(_local(7, 59)) == _local(8, 0)
    assert next_calling_time(_local(8, 0)) == _local(8, 0)
    assert next_calling_time(_local(20, 59)) == _local(20, 59)
    assert next_calling_time(_local(21, 0)) == _local(8, 0, day=24)
    assert next_calling_time(_local(23, 30)) == _local(8, 0, day=24)
    custom = FollowupPolicy(opens=time(9, 0), closes=time(17, 30))
    assert next_calling_time(_local(17, 30), custom) == _local(9, 0, day=24)
    with pytest.raises(ValueError, match="naive"):
        next_calling_time(datetime(2026, 11, 23, 10, 0))


def _ticket(number: str, **fields: Any) -> Ticket:
    values: dict[str, Any] = {
        "category": "legal_consultation",
        "request_type": "consultation",
        "urgency": "normal",
        "green_channel": False,
    } | fields
    return Ticket(number=number, **values)


MANDATORY: list[tuple[dict[str, Any], TaskReason]] = [
    ({"category": "legal_aid", "request_type": "help"}, TaskReason.LEGAL_AID),
    ({"category": "complaint_suggestion", "request_type": "suggestion"}, TaskReason.COMPLAINT),
    ({"category": "notarization", "request_type": "complaint"}, TaskReason.COMPLAINT),
    ({"green_channel": True}, TaskReason.GREEN_CHANNEL),
    ({"urgency": "emergency"}, TaskReason.EMERGENCY),
]


@pytest.mark.parametrize(("fields", "reason"), MANDATORY)
def test_given_a_mandatory_class_when_sampled_then_every_ticket_is_visited(
    fields: dict[str, Any], reason: TaskReason
) -> None:
    policy = FollowupPolicy(consultation_share=0.0)
    picked = [visit_reason(_ticket(f"330400-{i:06d}", **fields), policy) for i in range(1000)]
    assert picked == [reason] * 1000


def test_given_1000_consultations_when_sampled_then_the_share_holds_and_reruns_agree() -> None:
    tickets = [_ticket(f"3304002026112{i:05d}") for i in range(1000)]
    policy = FollowupPolicy(consultation_share=0.30)
    first = [visit_reason(t, policy) for t in tickets]
    share = sum(r is TaskReason.SAMPLED for r in first) / len(tickets)
    assert 0.26 <= share <= 0.34, share
    assert [visit_reason(t, policy) for t in tickets] == first  # deterministic per ticket
    assert set(first) == {TaskReason.SAMPLED, None}
    nobody = FollowupPolicy(consultation_share=0.0)
    everybody = FollowupPolicy(consultation_share=1.0)
    assert all(visit_reason(t, nobody) is None for t in tickets)
    assert all(visit_reason(t, everybody) is TaskReason.SAMPLED for t in tickets)
    assert sample_fraction("x") == sample_fraction("x")


def test_given_bad_policy_values_when_built_then_refused() -> None:
    with pytest.raises(ValueError, match="share"):
        FollowupPolicy(consultation_share=1.5)
    with pytest.raises(ValueError, match="open before"):
        FollowupPolicy(opens=time(21, 0), closes=time(8, 0))
    with pytest.raises(ValueError, match="attempt limit"):
        FollowupPolicy(max_attempts=0)


# --- helpers for the API tests ----------------------------------------------------------------


async def _quiet(env: TicketEnv) -> None:
    """Close every open task left by earlier tests on the shared PostgreSQL database, so that
    ``next`` can only hand out this test's tasks."""
    async with env.services.sessionmaker() as session:
        await session.execute(
            update(FollowupTask)
            .where(FollowupTask.status.in_(("pending", "claimed")))
            .values(status="closed")
        )
        await session.commit()


def _number() -> str:
    return f"139{uuid.uuid4().int % 10**8:08d}"


async def _closed_ticket(env: TicketEnv, agent: Actor, **fields: Any) -> dict[str, Any]:
    """A legal-aid ticket answered and closed on the call (一次办结): always visited."""
    body: dict[str, Any] = {
        "answer": "已告知申请法律援助的条件和材料",
        "resolved_on_call": True,
        "caller_number": _number(),
    } | fields
    return await env.create(agent, **body)


async def _task_of(env: TicketEnv, ticket_id: int) -> FollowupTask | None:
    async with env.services.sessionmaker() as session:
        return await session.scalar(select(FollowupTask).where(FollowupTask.ticket_id == ticket_id))


async def _next(env: TicketEnv, actor: Actor) -> dict[str, Any]:
    response = await env.post(actor, "/api/followups/next")
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def _claimed(env: TicketEnv) -> tuple[Actor, Actor, dict[str, Any], dict[str, Any]]:
    """A quiet workbench on a Monday at 10:00: an agent closes a legal-aid ticket (always
    visited) and a follow-up staff member claims its task. Returns agent, staff, ticket, task."""
    await _quiet(env)
    env.now = MONDAY_10
    agent, staff = await env.actor(), await env.actor(Role.FOLLOWUP)
    ticket = await _closed_ticket(env, agent)
    task: dict[str, Any] = (await _next(env, staff))["task"]
    return agent, staff, ticket, task


async def _attempt(env: TicketEnv, actor: Actor, task_id: int, **body: Any) -> Any:
    return await env.post(actor, f"/api/followups/{task_id}/attempts", body)


async def _attempt_rows(env: TicketEnv, task_id: int) -> int:
    async with env.services.sessionmaker() as session:
        count = await session.scalar(
            select(func.count(FollowupAttempt.id)).where(FollowupAttempt.task_id == task_id)
        )
        return int(count or 0)


# --- creation by the policy -------------------------------------------------------------------


async def test_given_a_legal_aid_ticket_when_closed_then_one_return_visit_task_is_due(
    tenv: TicketEnv,
) -> None:
    tenv.now = MONDAY_10
    agent = await tenv.actor()
    ticket = await _closed_ticket(tenv, agent)
    task = await _task_of(tenv, ticket["id"])
    assert task is not None
    assert (task.kind, task.reason, task.status) == ("return_visit", "legal_aid", "pending")
    assert task.due_at == MONDAY_10 and task.max_attempts == 3 and task.attempts == 0
    assert task.region_code == CITY and task.caller_number == ticket["caller_number"]

    tenv.now = _local(21, 30)  # closed after hours: visited from tomorrow's opening
    late = await _closed_ticket(tenv, agent)
    late_task = await _task_of(tenv, late["id"])
    assert late_task is not None and late_task.due_at == _local(8, 0, day=24)


async def test_given_the_normal_life_cycle_when_resolved_then_the_task_is_created(
    tenv: TicketEnv,
) -> None:
    tenv.now = MONDAY_10
    agent = await tenv.actor()
    tid = (await tenv.create(agent, category="complaint_suggestion", request_type="complaint"))[
        "id"
    ]
    assert await _task_of(tenv, tid) is None  # only 办结 creates it
    for action, body in (
        ("dispatch", {"assignee_id": agent.user_id}),
        ("sign", None),
        ("start", None),
        ("resolve", {"result": "已向投诉人说明处理结果"}),
    ):
        assert (await tenv.act(agent, tid, action, body)).status_code == 200
    task = await _task_of(tenv, tid)
    assert task is not None and task.reason == "complaint" and task.priority == 50


async def test_given_consultations_when_closed_then_tasks_follow_the_deterministic_sample(
    tenv: TicketEnv,
) -> None:
    tenv.now = MONDAY_10
    agent = await tenv.actor()
    for _ in range(12):
        ticket = await _closed_ticket(
            tenv, agent, category="legal_consultation", request_type="consultation"
        )
        expected = sample_fraction(ticket["number"]) < 0.30
        assert (await _task_of(tenv, ticket["id"]) is not None) is expected, ticket["number"]


# --- the workbench: claim, attempts, limit ----------------------------------------------------


async def test_given_calling_hours_when_taking_the_next_task_then_refused_at_0759_given_at_0800(
    tenv: TicketEnv,
) -> None:
    await _quiet(tenv)
    tenv.now = _local(7, 0)
    agent, staff = await tenv.actor(), await tenv.actor(Role.FOLLOWUP)
    ticket = await _closed_ticket(tenv, agent)
    tenv.now = _local(7, 59)
    refused = await tenv.post(staff, "/api/followups/next")
    assert refused.status_code == 409
    assert refused.json()["error_id"] == "outside-calling-hours"
    assert "08:00" in refused.json()["message"]
    tenv.now = _local(8, 0)
    got = await _next(tenv, staff)
    assert got["task"]["ticket_id"] == ticket["id"]
    assert got["task"]["status"] == "claimed" and got["task"]["claimed_by_id"] == staff.user_id
    assert got["task"]["caller_number"] == ticket["caller_number"]  # staff see full numbers
    again = await _next(tenv, staff)  # the unfinished claim comes back, no second task
    assert again["task"]["id"] == got["task"]["id"]
    tenv.now = _local(21, 0)
    assert (await tenv.post(staff, "/api/followups/next")).status_code == 409


async def test_given_no_answer_three_times_when_recorded_then_rescheduled_then_unreachable(
    tenv: TicketEnv,
) -> None:
    _agent, staff, ticket, task = await _claimed(tenv)
    task_id = task["id"]

    first = await _attempt(tenv, staff, task_id, outcome="no_answer")
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "pending" and first.json()["attempts"] == 1
    assert datetime.fromisoformat(first.json()["due_at"]) == MONDAY_10 + timedelta(hours=2)
    assert first.json()["claimed_by_id"] is None
    # not due yet: nothing to hand out
    assert (await _next(tenv, staff))["task"] is None

    tenv.now = _local(20, 0)  # +2 h would be 22:00: moves to tomorrow 08:00
    second = await _attempt(tenv, staff, task_id, outcome="busy")
    assert second.json()["status"] == "pending" and second.json()["attempts"] == 2
    assert datetime.fromisoformat(second.json()["due_at"]) == _local(8, 0, day=24)

    tenv.now = _local(8, 0, day=24)
    assert (await _next(tenv, staff))["task"]["id"] == task_id
    third = await _attempt(tenv, staff, task_id, outcome="powered_off", note="关机")
    assert third.json()["status"] == "unreachable" and third.json()["attempts"] == 3
    assert third.json()["closed_at"] is not None

    fourth = await _attempt(tenv, staff, task_id, outcome="no_answer")
    assert fourth.status_code == 409 and fourth.json()["error_id"] == "task-closed"
    assert await _attempt_rows(tenv, task_id) == 3
    listed = (await tenv.get(staff, f"/api/followups/{task_id}/attempts")).json()
    assert [a["outcome"] for a in listed] == ["no_answer", "busy", "powered_off"]
    assert [a["outcome_label"] for a in listed] == ["无人接听", "占线", "关机/停机"]
    fresh = (await tenv.get(staff, f"/api/tickets/{ticket['id']}")).json()
    assert fresh["state"] == "resolved"  # an unreachable caller changes nothing on the ticket


async def test_given_a_dissatisfied_caller_when_recorded_then_the_ticket_is_reopened_for_redo(
    tenv: TicketEnv,
) -> None:
    agent, staff, ticket, task = await _claimed(tenv)
    task_id = task["id"]
    done = await _attempt(
        tenv, staff, task_id, outcome="reached", satisfaction="dissatisfied", note="未解决欠薪"
    )
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "completed" and done.json()["satisfaction"] == "dissatisfied"
    fresh = (await tenv.get(agent, f"/api/tickets/{ticket['id']}")).json()
    assert fresh["state"] == "accepted" and fresh["satisfaction"] == "dissatisfied"
    assert fresh["resolved_at"] is None
    history = await tenv.history(agent, ticket["id"])
    last = history[-1]
    assert (last["action"], last["action_label"], last["from_state"]) == (
        "reopen",
        "重办",
        "resolved",
    )
    assert "回访不满意 (不满意)" in last["reason"] and "未解决欠薪" in last["reason"]
    assert last["actor_id"] == staff.user_id


async def test_given_a_satisfied_caller_when_recorded_then_the_ticket_is_visited(
    tenv: TicketEnv,
) -> None:
    _agent, staff, ticket, task = await _claimed(tenv)
    task_id = task["id"]
    done = await _attempt(tenv, staff, task_id, outcome="reached", satisfaction="very_satisfied")
    assert done.status_code == 200, done.text
    fresh = (await tenv.get(staff, f"/api/tickets/{ticket['id']}")).json()
    assert (fresh["state"], fresh["satisfaction"]) == ("visited", "very_satisfied")
    assert (await tenv.history(staff, ticket["id"]))[-1]["action"] == "visit"


async def test_given_a_wrong_number_when_recorded_then_the_task_closes_at_once(
    tenv: TicketEnv,
) -> None:
    _agent, staff, _ticket, task = await _claimed(tenv)
    task_id = task["id"]
    closed = await _attempt(tenv, staff, task_id, outcome="wrong_number")
    assert (closed.json()["status"], closed.json()["attempts"]) == ("closed", 1)


# --- bad payloads: 400 and nothing written ----------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"outcome": "maybe"},
        {"outcome": "reached"},  # a return visit reached needs the satisfaction
        {"outcome": "no_answer", "satisfaction": "satisfied"},
        {"outcome": "reached", "satisfaction": "happy"},
        {"outcome": "busy", "note": ""},
        {"outcome": "busy", "extra": 1},
        {},
    ],
)
async def test_given_a_bad_attempt_when_recorded_then_400_and_nothing_written(
    tenv: TicketEnv, body: dict[str, Any]
) -> None:
    _agent, staff, ticket, task = await _claimed(tenv)
    task_id = task["id"]
    before = (await tenv.get(staff, f"/api/followups/{task_id}")).json()
    response = await tenv.post(staff, f"/api/followups/{task_id}/attempts", body)
    assert response.status_code == 400, response.text
    assert response.json()["details"]["fields"], response.text
    assert (await tenv.get(staff, f"/api/followups/{task_id}")).json() == before
    assert await _attempt_rows(tenv, task_id) == 0
    assert (await tenv.get(staff, f"/api/tickets/{ticket['id']}")).json()["state"] == "resolved"


async def test_given_a_stale_version_when_recorded_then_409_and_nothing_written(
    tenv: TicketEnv,
) -> None:
    _agent, staff, _ticket, task = await _claimed(tenv)
    stale = await _attempt(tenv, staff, task["id"], outcome="busy", version=task["version"] - 1)
    assert stale.status_code == 409 and stale.json()["error_id"] == "task-taken"
    assert await _attempt_rows(tenv, task["id"]) == 0


# --- roles and region scope -------------------------------------------------------------------


async def test_given_another_regions_task_then_every_endpoint_answers_404_and_next_skips_it(
    tenv: TicketEnv,
) -> None:
    await _quiet(tenv)
    tenv.now = MONDAY_10
    agent = await tenv.actor()
    await _closed_ticket(tenv, agent)
    task = await _task_of(tenv, (await _closed_ticket(tenv, agent))["id"])
    assert task is not None
    for role in (Role.FOLLOWUP, Role.SUPERVISOR, Role.ADMIN):
        stranger = await tenv.actor(role, OTHER_CITY)
        for path in (f"/api/followups/{task.id}", f"/api/followups/{task.id}/attempts"):
            assert (await tenv.get(stranger, path)).status_code == 404, (role, path)
        listed = (await tenv.get(stranger, "/api/followups")).json()
        assert all(t["region_code"].startswith("3301") for t in listed["items"])
        assert (await tenv.get(stranger, "/api/followups", region=CITY)).status_code == 404
        if role is not Role.SUPERVISOR:
            attempt = await _attempt(tenv, stranger, task.id, outcome="busy")
            assert attempt.status_code == 404, role
            dial = await tenv.post(stranger, f"/api/followups/{task.id}/dial")
            assert dial.status_code == 404, role
            assert (await _next(tenv, stranger))["task"] is None
    assert await _attempt_rows(tenv, task.id) == 0
    admin = await tenv.actor(Role.ADMIN, PROVINCE)
    assert (await tenv.get(admin, f"/api/followups/{task.id}")).status_code == 200


async def test_given_roles_when_using_the_workbench_then_agents_are_refused_supervisors_read(
    tenv: TicketEnv,
) -> None:
    await _quiet(tenv)
    tenv.now = MONDAY_10
    agent, supervisor = await tenv.actor(), await tenv.actor(Role.SUPERVISOR)
    ticket = await _closed_ticket(tenv, agent)
    task = await _task_of(tenv, ticket["id"])
    assert task is not None
    for path in ("/api/followups", f"/api/followups/{task.id}"):
        assert (await tenv.get(agent, path)).status_code == 403
    assert (await tenv.post(agent, "/api/followups/next")).status_code == 403
    seen = (await tenv.get(supervisor, f"/api/followups/{task.id}")).json()
    assert seen["number_masked"] is True
    assert seen["caller_number"] != ticket["caller_number"] and "****" in seen["caller_number"]
    assert (await tenv.post(supervisor, "/api/followups/next")).status_code == 403
    refused = await _attempt(tenv, supervisor, task.id, outcome="busy")
    assert refused.status_code == 403
    assert (await tenv.post(supervisor, f"/api/followups/{task.id}/dial")).status_code == 403
    assert (
        (await tenv.get(agent, "/api/followups"))
        .json()["message"]
        .endswith("admin, followup, supervisor")
    )


async def test_given_a_list_query_when_filtered_then_paginated_and_bad_filters_are_400(
    tenv: TicketEnv,
) -> None:
    await _quiet(tenv)
    tenv.now = MONDAY_10
    agent, staff = await tenv.actor(), await tenv.actor(Role.FOLLOWUP)
    for _ in range(3):
        await _closed_ticket(tenv, agent)
    page = (
        await tenv.get(staff, "/api/followups", status="pending", kind="return_visit", limit=2)
    ).json()
    assert page["total"] >= 3 and len(page["items"]) == 2 and page["limit"] == 2
    assert all(t["status_label"] == "待处理" for t in page["items"])
    for bad in ({"status": "lost"}, {"limit": 0}, {"region": "33"}, {"kind": "x"}, {"zz": 1}):
        response = await tenv.get(staff, "/api/followups", **bad)
        assert response.status_code == 400, (bad, response.text)


# --- dialling ---------------------------------------------------------------------------------


async def test_given_no_pbx_or_closed_hours_when_dialling_then_503_or_409(
    tenv: TicketEnv,
) -> None:
    _agent, staff, _ticket, task = await _claimed(tenv)
    task_id = task["id"]
    no_pbx = await tenv.post(staff, f"/api/followups/{task_id}/dial")
    assert no_pbx.status_code == 503, no_pbx.text
    assert "no PBX" in no_pbx.json()["message"]
    tenv.now = _local(21, 0)
    late = await tenv.post(staff, f"/api/followups/{task_id}/dial")
    assert late.status_code == 409 and late.json()["error_id"] == "outside-calling-hours"


async def test_given_share_setting_when_closed_through_the_api_then_the_setting_decides(
    tenv: TicketEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CALLCENTER_FOLLOWUP_CONSULTATION_SHARE reaches tickets closed through /api/tickets."""
    tenv.now = MONDAY_10
    agent = await tenv.actor()
    settings = tenv.services.settings
    consultation = {"category": "legal_consultation", "request_type": "consultation"}

    def share(value: float) -> None:
        changed = settings.model_copy(update={"followup_consultation_share": value})
        monkeypatch.setattr(tenv.services, "settings", changed)

    share(1.0)
    every = [await _closed_ticket(tenv, agent, **consultation) for _ in range(4)]
    assert all([await _task_of(tenv, t["id"]) is not None for t in every])
    share(0.0)
    none = [await _closed_ticket(tenv, agent, **consultation) for _ in range(4)]
    assert all([await _task_of(tenv, t["id"]) is None for t in none])
