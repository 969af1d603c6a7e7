"""Typed actions on live calls: through the bridge to the simulator, and back as events.

Channel names come from the simulator's call objects (the agent console will read them from
live state); everything else goes over AMI like in production.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import select

from callcenter.db.models import Call
from callcenter.pbxsim.workload import TrafficConfig
from callcenter.services import Services, build_services
from callcenter.settings import Settings
from callcenter.telephony import Node, Telephony

pytestmark = pytest.mark.slow
MONDAY_9AM_SHANGHAI = 1795395600.0


@pytest_asyncio.fixture
async def talking(
    make_settings: Callable[..., Settings], sqlite_url: str
) -> AsyncIterator[tuple[Services, Telephony, Node, list[Any]]]:
    traffic = TrafficConfig(
        seed=11,
        start=MONDAY_9AM_SHANGHAI,  # working hours: city seats answer (after hours: duty queue)
        speed=10.0,  # the 8 s consult window must outlast a loaded CI machine
        calls_per_hour=600.0,
        max_calls=25,
        ivr_s=(1.0, 2.0),
        ivr_hangup_share=0.0,
        talk_s=(400.0, 600.0),
        patience_s=(300.0, 400.0),
        agent_hangup_share=0.0,
        no_answer_share=0.0,
    )
    settings = make_settings(database_url=sqlite_url)
    async with build_services(settings, telephony=True, traffic=traffic) as services:
        tel = services.telephony
        assert tel is not None and tel.simulator is not None and tel.simulator.traffic is not None
        await tel.wait_connected(5.0)
        live = tel.simulator.traffic.live
        async with asyncio.timeout(20):
            while sum(1 for c in live.values() if c.phase == "talk") < 4:
                await asyncio.sleep(0.05)
        calls = [c for c in live.values() if c.phase == "talk"]
        yield services, tel, next(iter(tel.nodes.values())), calls


async def _live_call(tel: Telephony, node: Node, uid: str, check: Callable[[Any], bool]) -> Any:
    async with asyncio.timeout(10):
        while True:
            await node.client.drain()
            call = tel.live.call(node.client.name, uid)
            if call is not None and check(call):
                return call
            await asyncio.sleep(0.02)


async def test_redirect_blind_and_attended_transfer_and_recording(
    talking: tuple[Services, Telephony, Node, list[Any]],
) -> None:
    services, tel, node, calls = talking
    actions = node.actions
    a, b, c, d = calls[:4]

    await actions.redirect(a.caller.name, "transfer-targets", "12345")
    moved = await _live_call(tel, node, a.caller.linkedid, lambda x: x.transfer_target)
    assert "12345" in moved.transfer_target

    assert b.leg is not None
    await actions.blind_transfer(b.leg.one.name, "transfer-targets", "8003")
    blind = await _live_call(tel, node, b.caller.linkedid, lambda x: x.transfer_target)
    assert "8003" in blind.transfer_target

    assert c.leg is not None
    agent_leg = c.leg.one.name
    await actions.attended_transfer(agent_leg, "transfer-targets", "8003")
    async with asyncio.timeout(5):  # the agent talks to the target, then hangs up
        while c.phase != "consult":
            await asyncio.sleep(0.01)
    await actions.hangup(agent_leg)
    attended = await _live_call(tel, node, c.caller.linkedid, lambda x: x.transfer_target)
    assert attended.transfer_target

    assert d.leg is not None
    await actions.start_recording(d.leg.one.name, f"{d.caller.uniqueid}.wav")
    await _live_call(tel, node, d.caller.linkedid, lambda x: x.recording)
    await actions.stop_recording(d.leg.one.name)
    await _live_call(tel, node, d.caller.linkedid, lambda x: not x.recording)

    await asyncio.sleep(0.2)
    await tel.recorder.flush(5.0)
    async with services.sessionmaker() as s:
        rows = {r.linkedid: r for r in (await s.execute(select(Call))).scalars()}
    for call in (a, b, c):
        assert rows[call.caller.linkedid].disposition in ("transferred", "answered")
