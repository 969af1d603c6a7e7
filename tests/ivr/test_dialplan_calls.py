"""Whole calls through the simulated PBX's dialplan (docs/dialplan-contract.md), the AMI bridge
and the flow engine: main entry → queue → seat → survey entry, virtual hold, hang-up, and what
the platform recorded on the call."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
import pytest_asyncio
from sqlalchemy import select

from callcenter.db.models import Call
from callcenter.pbxsim.agi_caller import AgiCaller
from callcenter.pbxsim.scripts import ANSWERED, IVR_HANGUP, VIRTUAL_HOLD, CallScript, PlacedCall
from callcenter.pbxsim.workload import TrafficConfig
from callcenter.services import Services, build_services
from callcenter.settings import Settings
from ticketing.models import FollowupTask

pytestmark = [pytest.mark.asyncio, pytest.mark.slow]

MONDAY_9AM_SHANGHAI = 1795395600.0


@pytest_asyncio.fixture
async def platform(
    make_settings: Callable[..., Settings], sqlite_url: str
) -> AsyncIterator[Services]:
    quiet = TrafficConfig(
        seed=7, speed=60.0, calls_per_hour=0.0, max_calls=0, start=MONDAY_9AM_SHANGHAI
    )
    settings = make_settings(database_url=sqlite_url)
    async with build_services(settings, telephony=True, traffic=quiet) as services:
        assert services.telephony is not None
        await services.telephony.wait_connected(5.0)
        yield services


async def _place(services: Services, script: CallScript, number: str = "13905730001") -> PlacedCall:
    tel = services.telephony
    assert tel is not None and tel.simulator is not None
    placed = tel.simulator.place_call("330400", number, "张三", script)
    await placed.finished(60.0)
    for node in tel.nodes.values():
        await node.client.drain()
    await tel.recorder.flush(10.0)
    return placed


async def _row(services: Services, linkedid: str) -> Call:
    async with services.sessionmaker() as s:
        return (await s.execute(select(Call).where(Call.linkedid == linkedid))).scalar_one()


async def test_given_green_channel_call_answered_then_survey_stored_on_the_call(
    platform: Services,
) -> None:
    script = CallScript(
        main=AgiCaller(inputs=["1", "2", "1"]), talk_s=5.0, survey=AgiCaller(inputs=["1"])
    )
    placed = await _place(platform, script)
    assert placed.outcome == ANSWERED
    assert placed.variables["HOTLINE_SERVICE"] == "wage_arrears"
    assert set(placed.sessions) == {"main", "survey"}
    assert placed.sessions["survey"].prompts == ["hotline/survey-question", "hotline/survey-thanks"]
    call = await _row(platform, placed.linkedid)
    assert call.satisfaction == "very_satisfied"
    assert call.service_type == "wage_arrears" and call.language == "zh-CN"
    assert call.routing[0]["priority"] == 10
    assert call.ivr_path[:6] == [
        "welcome",
        "emergency_notice",
        "choose_language:zh-CN",
        "hours",
        "main_menu:2",
        "aid_menu:1",
    ]
    assert call.ivr_path[-1] == "survey:1"


async def test_given_queued_caller_takes_virtual_hold_then_callback_booked_and_call_ends(
    platform: Services,
) -> None:
    script = CallScript(
        main=AgiCaller(inputs=["1", "3"]), exit_queue_after_s=0.0, virtual_hold=AgiCaller(inputs=[])
    )
    placed = await _place(platform, script, number="13905730003")
    assert placed.outcome == VIRTUAL_HOLD, placed.outcome
    assert placed.sessions["virtual_hold"].prompts == ["hotline/callback-booked"]
    async with platform.sessionmaker() as s:
        task = (await s.execute(select(FollowupTask))).scalar_one()
    assert (task.reason, task.source_linkedid, task.service_type) == (
        "virtual_hold",
        placed.linkedid,
        "mediation",
    )
    call = await _row(platform, placed.linkedid)
    assert call.ivr_path[-1] == "vh_book:booked"


async def test_given_caller_hangs_up_in_the_main_menu_then_ivr_hangup_with_its_path(
    platform: Services,
) -> None:
    placed = await _place(platform, CallScript(main=AgiCaller(inputs=["1", "hangup"])))
    assert placed.outcome == IVR_HANGUP
    call = await _row(platform, placed.linkedid)
    assert call.disposition == "ivr_hangup" and call.routing == []
    assert call.ivr_path[-2:] == ["main_menu", "hangup"]
