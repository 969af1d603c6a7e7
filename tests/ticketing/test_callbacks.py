"""Callbacks booked from the IVR: idempotent per call, bad numbers refused with nothing written,
due inside calling hours, and worked in the same workbench (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import func, select, update

from callcenter.db.models import Role
from callcenter.routing.calendar import SHANGHAI
from tests.ticketing.conftest import CITY, OTHER_CITY, TicketEnv
from ticketing.callbacks import (
    BadCallbackNumber,
    CallbackRefused,
    IvrCallbackRequest,
    book_ivr_callback,
    callback_number,
)
from ticketing.models import FollowupTask


def _request(**fields: Any) -> IvrCallbackRequest:
    base = IvrCallbackRequest(
        caller_number="13805730001",
        region_code=CITY,
        reason="virtual_hold",
        linkedid=f"1795395600.{uuid.uuid4().int % 10**6}",
        node="pbx1",
        language="zh",
        service_type="legal_aid",
        requested_at=datetime(2026, 11, 23, 10, 5, tzinfo=SHANGHAI),
    )
    return replace(base, **fields)


async def _count(env: TicketEnv) -> int:
    async with env.services.sessionmaker() as session:
        return int(await session.scalar(select(func.count(FollowupTask.id))) or 0)


async def _task(env: TicketEnv, task_id: int) -> FollowupTask:
    async with env.services.sessionmaker() as session:
        task = await session.get(FollowupTask, task_id)
        assert task is not None
        return task


async def test_given_the_same_call_when_booked_twice_or_at_once_then_one_task(
    tenv: TicketEnv,
) -> None:
    sessions = tenv.services.sessionmaker
    request = _request()
    before = await _count(tenv)
    first = await book_ivr_callback(sessions, request)
    assert await book_ivr_callback(sessions, request) == first
    assert await _count(tenv) == before + 1

    racing = _request()
    ids = await asyncio.gather(*(book_ivr_callback(sessions, racing) for _ in range(6)))
    assert len(set(ids)) == 1
    assert await _count(tenv) == before + 2

    other_reason = await book_ivr_callback(sessions, replace(request, reason="after_hours"))
    assert other_reason != first  # idempotent per (node, linkedid, reason)


async def test_given_a_booking_then_the_task_holds_the_call_and_is_due_at_once(
    tenv: TicketEnv,
) -> None:
    request = _request(caller_number="+86 138-0573-0001", service_type="mediation")
    task = await _task(tenv, await book_ivr_callback(tenv.services.sessionmaker, request))
    assert (task.kind, task.reason, task.status) == ("callback", "virtual_hold", "pending")
    assert task.caller_number == "13805730001"  # national digits, ready for a dial string
    assert (task.region_code, task.source_node, task.source_linkedid) == (
        CITY,
        "pbx1",
        request.linkedid,
    )
    assert (task.language, task.service_type, task.ticket_id) == ("zh", "mediation", None)
    assert task.due_at == request.requested_at and task.priority == 70
    assert task.max_attempts == 3


async def test_given_an_after_hours_booking_then_due_at_the_next_opening(
    tenv: TicketEnv,
) -> None:
    request = _request(
        reason="after_hours",
        requested_at=datetime(2026, 11, 23, 22, 40, tzinfo=SHANGHAI),
        region_code=None,
        caller_number="057312348000",
    )
    task = await _task(tenv, await book_ivr_callback(tenv.services.sessionmaker, request))
    assert task.due_at == datetime(2026, 11, 24, 8, 0, tzinfo=SHANGHAI)
    assert task.region_code == "330000"  # no city known: the provincial centre calls back
    assert task.caller_number == "057312348000" and task.priority == 60


@pytest.mark.parametrize(
    "number",
    [
        *("", "   ", "anonymous", "12345", "110", "1380573000", "+12025550123"),
        *("13805730001\r\n", "0086-abc", "1" * 41, "138 0573 0001; DROP TABLE"),
    ],
)
async def test_given_a_bad_number_when_booked_then_refused_and_nothing_written(
    tenv: TicketEnv, number: str
) -> None:
    before = await _count(tenv)
    with pytest.raises(BadCallbackNumber) as caught:
        await book_ivr_callback(tenv.services.sessionmaker, _request(caller_number=number))
    assert caught.value.error_id == "bad-callback-number"
    assert caught.value.status_code == 400
    assert "回拨号码无效" in caught.value.message
    assert caught.value.details["fields"][0]["field"] == "caller_number"
    assert await _count(tenv) == before


@pytest.mark.parametrize(
    ("fields", "name"),
    [
        ({"reason": "whenever"}, "reason"),
        ({"linkedid": "17953 95600.1"}, "linkedid"),
        ({"linkedid": "1795\r\nAction: Originate"}, "linkedid"),
        ({"linkedid": ""}, "linkedid"),
        ({"node": "pbx 1"}, "node"),
        ({"region_code": "339999"}, "region_code"),
        ({"region_code": "33"}, "region_code"),
        ({"language": ""}, "language"),
        ({"requested_at": datetime(2026, 11, 23, 10, 0)}, "requested_at"),
    ],
)
async def test_given_a_malformed_request_when_booked_then_refused_naming_the_field(
    tenv: TicketEnv, fields: dict[str, Any], name: str
) -> None:
    before = await _count(tenv)
    with pytest.raises(CallbackRefused) as caught:
        await book_ivr_callback(tenv.services.sessionmaker, _request(**fields))
    assert caught.value.details["fields"][0]["field"] == name
    assert await _count(tenv) == before


def test_given_number_spellings_when_normalized_then_national_digits() -> None:
    assert callback_number("13805730001") == "13805730001"
    assert callback_number("+8613805730001") == "13805730001"
    assert callback_number("008613805730001") == "13805730001"
    assert callback_number("０５７３-１２３４８０００") == "057312348000"  # full-width digits


async def test_given_a_booked_callback_then_staff_of_its_region_work_it_in_the_workbench(
    tenv: TicketEnv,
) -> None:
    async with tenv.services.sessionmaker() as session:  # only this test's tasks are open
        await session.execute(
            update(FollowupTask)
            .where(FollowupTask.status.in_(("pending", "claimed")))
            .values(status="closed")
        )
        await session.commit()
    tenv.now = datetime(2026, 11, 23, 10, 30, tzinfo=SHANGHAI)
    task_id = await book_ivr_callback(tenv.services.sessionmaker, _request())
    stranger = await tenv.actor(Role.FOLLOWUP, OTHER_CITY)
    assert (await tenv.get(stranger, f"/api/followups/{task_id}")).status_code == 404
    assert (await tenv.post(stranger, "/api/followups/next")).json()["task"] is None
    staff = await tenv.actor(Role.FOLLOWUP, CITY)
    listed = (await tenv.get(staff, "/api/followups", kind="callback")).json()
    assert task_id in [t["id"] for t in listed["items"]]
    got = (await tenv.post(staff, "/api/followups/next")).json()["task"]
    assert (got["id"], got["kind_label"], got["reason_label"]) == (task_id, "回拨", "排队预约回拨")
    done = await tenv.post(staff, f"/api/followups/{task_id}/attempts", {"outcome": "reached"})
    assert done.status_code == 200 and done.json()["status"] == "completed"
