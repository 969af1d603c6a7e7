"""Typed AMI actions through our client against the PBX simulator over TCP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from callcenter.ami.actions import AmiActions, SpyMode
from callcenter.ami.client import AmiActionFailed, AmiClient, AmiNodeConfig
from callcenter.ami.codec import Frame
from callcenter.errors import InvalidInput
from callcenter.pbxsim.ami_server import DEFAULT_USERS
from callcenter.pbxsim.simulator import PbxSimulator


class Events:
    def __init__(self) -> None:
        self.frames: list[Frame] = []

    async def __call__(self, _node: str, frame: Frame) -> None:
        self.frames.append(frame)

    async def wait_for(self, name: str, timeout: float = 3.0, **fields: str) -> Frame:
        async with asyncio.timeout(timeout):
            while True:
                for f in self.frames:
                    if f.name == name and all(f.get(k) == v for k, v in fields.items()):
                        return f
                await asyncio.sleep(0.01)


@pytest_asyncio.fixture
async def ami() -> AsyncIterator[tuple[AmiActions, Events, PbxSimulator]]:
    sim = PbxSimulator()
    port = await sim.start()
    events = Events()
    user = DEFAULT_USERS[0]
    client = AmiClient(
        AmiNodeConfig("node1", "127.0.0.1", port, user.username, user.secret, ping_interval=30),
        events,
    )
    await client.start()
    await client.wait_connected(3.0)
    yield AmiActions(client), events, sim
    await client.close()
    await sim.stop()


async def test_given_busy_customer_when_originating_then_failure_reason_busy(
    ami: tuple[AmiActions, Events, PbxSimulator],
) -> None:
    actions, _, _ = ami
    outcome = await actions.originate(
        "Local/13805730099@pstn-out", context="callback-survey", exten="s", timeout_s=5
    )
    assert outcome.success is False and outcome.reason == "busy" and outcome.reason_code == 5
    assert outcome.action_id


async def test_click_to_call_reports_the_seat_leg(
    ami: tuple[AmiActions, Events, PbxSimulator],
) -> None:
    """As in trace 05b: OriginateResponse is about the agent's seat, which answers first."""
    actions, _, _ = ami
    outcome = await actions.click_to_call(
        "Local/8001@agent-phones/n", "13905730012", caller_id=("回拨", "8001"), ticket_id="T-1"
    )
    assert outcome.success is True and outcome.reason == "answered"


async def test_given_answering_customer_when_calling_back_then_answered(
    ami: tuple[AmiActions, Events, PbxSimulator],
) -> None:
    actions, _, _ = ami
    outcome = await actions.originate(
        "Local/13905730011@pstn-out",
        context="callback-survey",
        exten="s",
        caller_id=("12348热线", "12348"),
        variables={"TICKET_ID": "GD-330400-0002", "CALLBACK_KIND": "回访"},
        account="callback",
        timeout_s=5,
    )
    assert outcome.success is True and outcome.reason == "answered"


async def test_pause_with_reason_then_ready_produces_member_events(
    ami: tuple[AmiActions, Events, PbxSimulator],
) -> None:
    actions, events, _ = ami
    await actions.queue_pause("Local/8001@agent-phones/n", True, reason="小休")
    paused = await events.wait_for("QueueMemberPause", Paused="1")
    assert paused["PausedReason"] == "小休"
    await actions.queue_pause("Local/8001@agent-phones/n", False)
    await events.wait_for("QueueMemberPause", Paused="0")


async def test_login_and_logout_of_a_queue(ami: tuple[AmiActions, Events, PbxSimulator]) -> None:
    actions, events, _ = ami
    await actions.queue_add("mediation", "Local/8003@agent-phones/n", member_name="赵敏", penalty=1)
    added = await events.wait_for("QueueMemberAdded", Queue="mediation")
    assert added["MemberName"] == "赵敏"
    with pytest.raises(AmiActionFailed, match="Unable to add interface"):
        await actions.queue_add("mediation", "Local/8003@agent-phones/n", member_name="赵敏")
    await actions.queue_remove("mediation", "Local/8003@agent-phones/n")
    await events.wait_for("QueueMemberRemoved", Queue="mediation")


async def test_hangup_of_unknown_channel_is_a_domain_error(
    ami: tuple[AmiActions, Events, PbxSimulator],
) -> None:
    actions, _, _ = ami
    with pytest.raises(AmiActionFailed, match="No such channel"):
        await actions.hangup("Local/nonexistent-00000000;2")


async def test_supervisor_spy_originates_supervisor_phone(
    ami: tuple[AmiActions, Events, PbxSimulator],
) -> None:
    actions, _, _ = ami
    outcome = await actions.spy(
        "Local/spy@supervisor/n",
        "Local/8001@agent-phones-00000022;1",
        SpyMode.WHISPER,
        supervisor=("班长-卫", "9001"),
    )
    assert outcome.success


@pytest.mark.parametrize(
    ("call", "kwargs"),
    [
        ("redirect", {"channel": "PJSIP/trunk-1\r\nAction: Hangup", "context": "x", "exten": "1"}),
        ("redirect", {"channel": "PJSIP/trunk-1", "context": "bad context", "exten": "1"}),
        ("queue_pause", {"interface": "PJSIP/8001", "paused": True, "reason": "午休\r\nX: y"}),
        ("hangup", {"channel": "PJSIP/8001", "cause": 999}),
        ("queue_add", {"queue": "q", "interface": "PJSIP/8001\n", "member_name": "x"}),
        ("click_to_call", {"agent_interface": "PJSIP/8001", "customer_number": "139;evil",
                           "caller_id": ("x", "8001")}),
        ("start_recording", {"channel": "PJSIP/8001-1", "filename": "../../etc/passwd.wav"}),
    ],
)  # fmt: skip
async def test_given_bad_value_then_refused_before_anything_is_sent(
    ami: tuple[AmiActions, Events, PbxSimulator], call: str, kwargs: dict[str, Any]
) -> None:
    actions, _, sim = ami
    before = len(sim.server.sessions)
    with pytest.raises(InvalidInput):
        await getattr(actions, call)(**kwargs)
    assert len(sim.server.sessions) == before
