"""Scripted calls through the dialplan contract: our AgiServer runs a small test flow, the
simulator plays Asterisk (AMI events as app_queue / app_dial produce them)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
import pytest_asyncio

from callcenter.agi.server import AgiHangup, AgiRequest, AgiServer
from callcenter.ami.codec import Frame
from callcenter.ami.events import CallAbandoned, CallAnswered, CallQueued
from callcenter.pbxsim.agi_caller import AgiCaller
from callcenter.pbxsim.clock import SimClock
from callcenter.pbxsim.engine import HangupCommand
from callcenter.pbxsim.model import Fields
from callcenter.pbxsim.province import SeatPlan, province_model
from callcenter.pbxsim.scripts import CallScript, PlacedCall
from callcenter.pbxsim.simulator import PbxSimulator
from callcenter.pbxsim.workload import TrafficConfig
from callcenter.regions.provinces import load_province, province_file
from tests.pbxsim.wire import frames_of, normalize

PROVINCE = load_province(province_file("330000"))
START = 1795254000.0
CITY = "330400"


@dataclass
class Flow:
    """A tiny IVR on our FastAGI server, one branch per main-menu key."""

    seen: list[tuple[str, dict[str, str], list[str]]] = field(default_factory=list)
    results: dict[str, str] = field(default_factory=dict)
    surveys: list[str] = field(default_factory=list)

    async def __call__(self, req: AgiRequest) -> None:
        entry = req.query.get("entry", "main")
        self.seen.append((entry, dict(req.query), list(req.args)))
        try:
            await getattr(self, entry)(req)
        except AgiHangup:
            self.results[entry] = "hangup"
            raise

    async def main(self, req: AgiRequest) -> None:
        await req.command("ANSWER")
        await req.set_variable("CHANNEL(language)", "zh-CN")
        await req.command("STREAM", "FILE", "hotline/welcome", "")
        key = str((await req.command("GET", "DATA", "hotline/menu", "5000", "1"))["result"][0])
        await req.set_variable("IVR_CHOICE", key)
        if key == "1":
            await req.set_variable("HOTLINE_QUEUE", f"city-{CITY}")
            await req.set_variable("HOTLINE_OVERFLOW_QUEUE", "province")
            await req.set_variable("HOTLINE_OVERFLOW_AFTER", "30")
            await req.set_variable("HOTLINE_ACTION", "queue")
        elif key in ("7", "8"):
            await req.set_variable("HOTLINE_TRANSFER", "12345" if key == "7" else "999")
            await req.set_variable("HOTLINE_ACTION", "transfer")
        elif key == "2":
            await req.set_variable("HOTLINE_QUEUE", f"city-{CITY}")  # no HOTLINE_ACTION
        elif key == "3":
            await req.set_variable("HOTLINE_QUEUE", "city-999999")
            await req.set_variable("HOTLINE_ACTION", "queue")
        else:
            await req.command("STREAM", "FILE", "hotline/goodbye", "")
            await req.set_variable("HOTLINE_ACTION", "hangup")

    async def virtual_hold(self, req: AgiRequest) -> None:
        key = await req.command("GET", "DATA", "hotline/vh-offer", "5000", "1")
        self.results["virtual_hold"] = str(key["result"][0])
        await req.set_variable("HOTLINE_ACTION", "hangup")

    async def survey(self, req: AgiRequest) -> None:
        key = await req.command("GET", "DATA", "hotline/survey", "5000", "1")
        self.results["survey"] = str(key["result"][0])
        self.surveys.append(self.results["survey"])
        await req.set_variable("HOTLINE_ACTION", "hangup")


@dataclass
class Rig:
    sim: PbxSimulator
    flow: Flow
    events: list[Fields]

    def names(self, placed: PlacedCall) -> list[str]:
        """Event names of the caller's channel (and its Dest side), in order."""
        out = []
        for fields in self.events:
            d = dict(fields)
            if placed.uniqueid in (d.get("Uniqueid"), d.get("DestUniqueid")):
                out.append(d["Event"])
        return out

    def of(self, placed: PlacedCall, name: str) -> list[dict[str, str]]:
        return [
            dict(f) for f in self.events
            if dict(f).get("Event") == name and placed.uniqueid in dict(f).values()
        ]  # fmt: skip

    def frames(self) -> list[Frame]:
        return frames_of(self.events)


@pytest_asyncio.fixture
async def rig() -> AsyncIterator[Rig]:
    server = AgiServer(command_timeout=5.0)
    flow = Flow()
    server.add_route("ivr", flow)
    port = await server.start("127.0.0.1", 0)
    config = TrafficConfig(
        speed=None,
        start=START,
        calls_per_hour=0.0,
        no_answer_share=0.0,
        answer_delay_s=(2.0, 2.0),
        city_timeout_s=30.0,
        fastagi_url=f"agi://127.0.0.1:{port}/ivr",
        node_name="js1",
    )
    model = province_model(PROVINCE, SeatPlan(seats_per_city=1, province_seats=1))
    sim = PbxSimulator(model=model, traffic=config)
    events: list[Fields] = []
    sim.server.listeners.append(events.append)
    await sim.start()
    try:
        yield Rig(sim, flow, events)
    finally:
        await sim.stop()
        await server.close()


async def _place(rig: Rig, script: CallScript) -> tuple[PlacedCall, str]:
    placed = rig.sim.place_call(CITY, "13957330001", "王芳", script)
    outcome = await placed.finished(10)
    return placed, outcome


def _exten_steps(rig: Rig, placed: PlacedCall) -> list[tuple[str, str, str, str, str]]:
    return [
        (e["Context"], e["Exten"], e["Priority"], e["Application"], e["AppData"])
        for e in rig.of(placed, "Newexten")
        if e["Uniqueid"] == placed.uniqueid
    ]


# --------------------------------------------------------------------------- main entry


async def test_given_queue_action_when_seat_hangs_up_then_survey_entry_runs(rig: Rig) -> None:
    script = CallScript(main=AgiCaller(inputs=["1"]), survey=AgiCaller(inputs=["2"]), talk_s=20)
    placed, outcome = await _place(rig, script)
    assert outcome == "answered"
    assert [entry for entry, _, _ in rig.flow.seen] == ["main", "survey"]
    assert rig.flow.seen[0][1] == {"entry": "main", "node": "js1"}
    assert rig.flow.seen[0][2] == [CITY, "zh-CN"]
    assert rig.flow.seen[1][2] == [CITY, "zh-CN"]  # ${HOTLINE_CITY},${CHANNEL(language)}
    assert rig.flow.results == {"survey": "2"}
    assert placed.sessions["main"].prompts == ["hotline/welcome", "hotline/menu"]
    assert placed.sessions["survey"].prompts == ["hotline/survey"]
    assert placed.variables["HOTLINE_ACTION"] == "hangup"  # the survey entry's last word
    url = rig.sim.traffic.config.fastagi_url if rig.sim.traffic else ""
    steps = _exten_steps(rig, placed)
    assert steps[:3] == [
        ("from-trunk", "12348", "1", "NoOp", f"12348 {CITY}"),
        ("from-trunk", "12348", "2", "Set", f"__HOTLINE_CITY={CITY}"),
        ("from-trunk", "12348", "3", "AGI", f"{url}?entry=main&node=js1,{CITY},zh-CN"),
    ]
    assert steps[3:8] == [
        ("from-trunk", "12348", "4", "GotoIf", "0?fallback"),
        ("from-trunk", "12348", "5", "GotoIf", "0?hotline-transfer,,1"),
        ("from-trunk", "12348", "6", "GotoIf", "0?done"),
        ("from-trunk", "12348", "7", "MixMonitor", f"{placed.uniqueid}.wav,b"),
        ("from-trunk", "12348", "8", "Queue", f"city-{CITY},tc,,,30"),
    ]
    assert steps[-3:] == [
        ("from-trunk", "12348", "9", "GotoIf", "1?hotline-survey,s,1"),
        ("hotline-survey", "s", "1", "AGI", f"{url}?entry=survey&node=js1,{CITY},zh-CN"),
        ("hotline-survey", "s", "2", "Hangup", ""),
    ]
    complete = rig.of(placed, "AgentComplete")
    assert [(c["Reason"], c["TalkTime"]) for c in complete] == [("agent", "20")]
    names = rig.names(placed)
    assert names.index("AgentComplete") < names.index("Hangup")
    assert names[-1] == "Hangup"


async def test_given_caller_hangs_up_after_talk_then_no_survey(rig: Rig) -> None:
    script = CallScript(main=AgiCaller(inputs=["1"]), seat_hangs_up=False, talk_s=12)
    placed, outcome = await _place(rig, script)
    assert outcome == "answered" and set(placed.sessions) == {"main"}
    assert [c["Reason"] for c in rig.of(placed, "AgentComplete")] == ["caller"]


async def test_given_ivr_ends_call_then_hangup_at_done(rig: Rig) -> None:
    placed, outcome = await _place(rig, CallScript(main=AgiCaller(inputs=["5"])))
    assert outcome == "ivr-ended"
    assert _exten_steps(rig, placed)[-3:] == [
        ("from-trunk", "12348", "5", "GotoIf", "0?hotline-transfer,,1"),
        ("from-trunk", "12348", "6", "GotoIf", "1?done"),
        ("from-trunk", "12348", "11", "Hangup", ""),
    ]
    assert "QueueCallerJoin" not in rig.names(placed)


async def test_given_caller_hangs_up_mid_menu_then_ivr_hangup(rig: Rig) -> None:
    placed, outcome = await _place(rig, CallScript(main=AgiCaller(inputs=["hangup"])))
    assert outcome == "ivr-hangup"
    assert rig.flow.results == {"main": "hangup"}
    assert placed.sessions["main"].hung_up
    assert "QueueCallerJoin" not in rig.names(placed)
    assert rig.names(placed)[-1] == "Hangup"


async def test_given_no_hotline_action_then_classic_queue_as_before(rig: Rig) -> None:
    placed, outcome = await _place(rig, CallScript(main=AgiCaller(inputs=["2"]), talk_s=5))
    assert outcome == "answered"
    steps = _exten_steps(rig, placed)
    assert ("from-trunk", "2", "1", "NoOp", "IVR choice 2 legal-aid") in steps
    queue = [s for s in steps if s[3] == "Queue"]
    assert queue == [("from-trunk", "2", "5", "Queue", f"city-{CITY},t,,,600")]
    assert set(placed.sessions) == {"main"}  # no F option: no survey


# --------------------------------------------------------------------------- queue exit


async def test_given_exit_key_while_queued_then_leave_without_abandon_and_virtual_hold(
    rig: Rig,
) -> None:
    # the only seat of the city is busy with a first caller, so the second one waits
    first = rig.sim.place_call(CITY, "13957330002", "李四", CallScript(
        main=AgiCaller(inputs=["1"]), talk_s=300))  # fmt: skip
    script = CallScript(
        main=AgiCaller(inputs=["1"]),
        exit_queue_after_s=12,
        virtual_hold=AgiCaller(inputs=["1"]),
    )
    placed, outcome = await _place(rig, script)
    assert outcome == "virtual-hold"
    assert rig.flow.results["virtual_hold"] == "1"
    names = rig.names(placed)
    assert "QueueCallerAbandon" not in names
    join, leave = rig.of(placed, "QueueCallerJoin")[0], rig.of(placed, "QueueCallerLeave")[0]
    assert (join["Queue"], join["Position"]) == (f"city-{CITY}", "2")  # 李四 was first
    assert (leave["Queue"], leave["Count"]) == (f"city-{CITY}", "0")
    steps = _exten_steps(rig, placed)
    url = rig.sim.traffic.config.fastagi_url if rig.sim.traffic else ""
    assert steps[-2:] == [
        ("hotline-queue-exit", "1", "1", "AGI", f"{url}?entry=virtual_hold&node=js1,{CITY},zh-CN"),
        ("hotline-queue-exit", "1", "2", "Hangup", ""),
    ]
    assert names.index("QueueCallerLeave") < names.index(
        "Newexten", names.index("QueueCallerLeave")
    )
    assert placed.sessions["virtual_hold"].prompts == ["hotline/vh-offer"]
    assert first.call.accept(first.call.caller, HangupCommand()) is None
    assert await first.finished(10) == "answered"

    _, calls = normalize(rig.frames())
    history = calls[placed.uniqueid]
    assert not any(isinstance(e, (CallAbandoned, CallAnswered)) for e in history)
    assert any(isinstance(e, CallQueued) for e in history)


async def test_given_exit_key_while_seat_rings_then_ring_cancelled_and_seat_free(
    rig: Rig,
) -> None:
    script = CallScript(main=AgiCaller(inputs=["1"]), exit_queue_after_s=1)  # rings 2 s
    placed, outcome = await _place(rig, script)
    assert outcome == "virtual-hold"
    names = rig.names(placed)
    assert "AgentCalled" in names and "AgentConnect" not in names
    assert "AgentRingNoAnswer" not in names and "QueueCallerAbandon" not in names
    statuses = [
        dict(f)["Status"] for f in rig.events if dict(f).get("Event") == "QueueMemberStatus"
    ]
    assert statuses[-1] == "1"


async def test_given_patience_runs_out_then_abandoned(rig: Rig) -> None:
    rig.sim.place_call(CITY, "13957330002", "李四", CallScript(
        main=AgiCaller(inputs=["1"]), talk_s=300))  # fmt: skip
    placed, outcome = await _place(rig, CallScript(main=AgiCaller(inputs=["1"]), patience_s=10))
    assert outcome == "abandoned"
    assert "QueueCallerAbandon" in rig.names(placed)


# --------------------------------------------------------------------------- transfer


async def test_given_transfer_action_then_dial_to_trunk_events(rig: Rig) -> None:
    script = CallScript(main=AgiCaller(inputs=["7"]), transfer_talk_s=15)
    placed, outcome = await _place(rig, script)
    assert outcome == "transferred"
    steps = _exten_steps(rig, placed)
    assert steps[-2:] == [
        ("from-trunk", "12348", "5", "GotoIf", "1?hotline-transfer,12345,1"),
        ("hotline-transfer", "12345", "1", "Dial", "PJSIP/12345@trunk-gov,60"),
    ]
    names = [n for n in rig.names(placed) if n != "Newexten"]
    tail = names[names.index("DialBegin") :]
    assert tail == [
        "DialBegin", "DialEnd", "BridgeEnter", "HangupRequest", "BridgeLeave",
        "SoftHangupRequest", "Hangup",
    ]  # fmt: skip
    begin, end = rig.of(placed, "DialBegin")[0], rig.of(placed, "DialEnd")[0]
    assert begin["DestChannel"].startswith("PJSIP/trunk-gov-")
    assert begin["DialString"] == "12345@trunk-gov" and end["DialStatus"] == "ANSWER"
    keys = list(begin)
    assert keys.index("Linkedid") < keys.index("DestChannel") < keys.index("DialString")
    dest = begin["DestChannel"]
    dest_events = [dict(f)["Event"] for f in rig.events if dict(f).get("Channel") == dest]
    assert dest_events == ["Newchannel", "BridgeEnter", "BridgeLeave", "HangupRequest", "Hangup"]
    assert rig.sim.stats.city(CITY).transferred == 1


async def test_given_transfer_to_unknown_target_then_call_ends(rig: Rig) -> None:
    placed, outcome = await _place(rig, CallScript(main=AgiCaller(inputs=["8"])))
    assert outcome == "transfer-failed"
    assert "DialBegin" not in rig.names(placed)
    assert rig.names(placed)[-1] == "Hangup"


# --------------------------------------------------------------------------- API errors


async def test_given_unknown_city_when_place_call_then_clear_error(rig: Rig) -> None:
    with pytest.raises(ValueError, match="no 12348 line for city '999999'"):
        rig.sim.place_call("999999", "13957330001", "王芳")
    assert rig.sim.stats.total().offered == 0


async def test_given_quiet_simulator_without_url_when_place_call_then_clear_error() -> None:
    sim = PbxSimulator()
    with pytest.raises(ValueError, match="needs fastagi_url"):
        sim.place_call(CITY, "13957330001")


@pytest.mark.parametrize(
    "bad",
    [{"exit_queue_after_s": -1.0}, {"talk_s": -5.0}, {"exit_key": "12"}, {"patience_s": -1.0}],
)
def test_given_bad_script_values_then_value_error(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="CallScript"):
        CallScript(**bad)  # type: ignore[arg-type]


async def test_given_two_calls_at_once_then_outcomes_independent(rig: Rig) -> None:
    a = rig.sim.place_call(CITY, "13957330003", "甲", CallScript(main=AgiCaller(inputs=["5"])))
    b = rig.sim.place_call(CITY, "13957330004", "乙", CallScript(main=AgiCaller(inputs=["7"])))
    assert await asyncio.gather(a.finished(10), b.finished(10)) == ["ivr-ended", "transferred"]


# --------------------------------------------------------------------------- generated traffic


async def _generated(**changes: object) -> tuple[PbxSimulator, Flow, list[Fields]]:
    server = AgiServer(command_timeout=5.0)
    flow = Flow()
    server.add_route("ivr", flow)
    port = await server.start("127.0.0.1", 0)
    base: dict[str, object] = {
        "seed": 3,
        "speed": None,
        "start": START,
        "calls_per_hour": 0.0,
        "city_rates": {CITY: 600.0},
        "max_calls": 24,
        "talk_s": (5.0, 20.0),
        "patience_s": (200.0, 300.0),
        "fastagi_url": f"agi://127.0.0.1:{port}/ivr",
    }
    base.update(changes)
    model = province_model(PROVINCE, SeatPlan(seats_per_city=1, province_seats=1))
    sim = PbxSimulator(model=model, traffic=TrafficConfig(**base))  # type: ignore[arg-type]
    events: list[Fields] = []
    sim.server.listeners.append(events.append)
    await sim.start()
    try:
        assert sim.traffic is not None
        await asyncio.wait_for(sim.traffic.wait_finished(), 30)
    finally:
        await sim.stop()
        await server.close()
    return sim, flow, events


async def test_given_shares_when_traffic_generated_then_exits_surveys_and_transfers() -> None:
    sim, flow, _ = await _generated(
        ivr_scripts=((3.0, ("1",)), (1.0, ("7",))),
        queue_exit_share=0.5,
        queue_exit_after_s=(5.0, 10.0),
        survey_share=1.0,
        survey_answers=((1.0, "1"), (1.0, "4")),
        agent_hangup_share=1.0,
    )
    total = sim.stats.total()
    entries = [entry for entry, _, _ in flow.seen]
    assert total.offered == 24 == entries.count("main")
    assert total.transferred > 0 and total.virtual_holds > 0 and total.surveys > 0
    assert entries.count("virtual_hold") == total.virtual_holds
    assert entries.count("survey") == total.surveys == total.answered
    assert len(flow.surveys) == total.surveys and set(flow.surveys) == {"1", "4"}
    assert total.answered + total.abandoned + total.virtual_holds + total.transferred == 24


async def test_given_default_shares_with_contract_flow_then_no_exit_and_no_survey() -> None:
    sim, flow, _ = await _generated(agent_hangup_share=1.0)
    entries = [entry for entry, _, _ in flow.seen]
    assert set(entries) == {"main"}  # default mix: nobody exits the queue or stays for a survey
    assert sim.stats.total().virtual_holds == sim.stats.total().surveys == 0


async def test_given_same_seed_then_same_contract_events() -> None:
    changes = {"ivr_scripts": ((1.0, ("1",)), (1.0, ("7",))), "queue_exit_share": 0.3}
    _, _, first = await _generated(**changes)
    _, _, second = await _generated(**changes)
    assert len(first) > 300
    strip = {"AppData"}  # holds the FastAGI server's port, which differs between runs
    one = [[kv for kv in e if kv[0] not in strip] for e in first]
    two = [[kv for kv in e if kv[0] not in strip] for e in second]
    assert one == two


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("queue_exit_share", 1.5),
        ("survey_share", -0.1),
        ("ivr_scripts", ((1.0, ("abc",)),)),
        ("survey_answers", ((0.0, "1"),)),
    ],
)
def test_given_bad_traffic_config_then_clear_error(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=r"TrafficConfig|caller input"):
        TrafficConfig(**{field: value})  # type: ignore[arg-type]


async def test_given_quiet_simulator_with_url_when_place_call_then_call_runs() -> None:
    server = AgiServer(command_timeout=5.0)
    flow = Flow()
    server.add_route("ivr", flow)
    port = await server.start("127.0.0.1", 0)
    model = province_model(PROVINCE, SeatPlan(seats_per_city=1, province_seats=1))
    sim = PbxSimulator(model=model, clock=SimClock(start=START, speed=None))
    await sim.start()
    try:
        url = f"agi://127.0.0.1:{port}/ivr"
        script = CallScript(main=AgiCaller(inputs=["1"]), survey=AgiCaller(inputs=["5"]))
        placed = sim.place_call(CITY, "13957330001", "王芳", script, fastagi_url=url)
        assert await placed.finished(10) == "answered"
        assert flow.surveys == ["5"] and placed.queues == [f"city-{CITY}"]
        assert placed.variables["HOTLINE_QUEUE"] == f"city-{CITY}"
        assert sim.stats.total().offered == 0  # placed calls are not generated traffic
    finally:
        await sim.stop()
        await server.close()


async def test_given_traffic_without_url_when_place_call_then_clear_error() -> None:
    sim = PbxSimulator(traffic=TrafficConfig(calls_per_hour=0.0))
    with pytest.raises(ValueError, match=r"set TrafficConfig\.fastagi_url"):
        sim.place_call(CITY, "13957330001", fastagi_url="agi://127.0.0.1:1/ivr")


async def test_given_hangup_action_during_transfer_then_both_legs_end() -> None:
    """An AMI ``Hangup`` of the trunk leg while the caller talks to 12345 ends the call."""
    server = AgiServer(command_timeout=5.0)
    server.add_route("ivr", Flow())
    port = await server.start("127.0.0.1", 0)
    config = TrafficConfig(
        speed=1000.0, start=START, calls_per_hour=0.0, fastagi_url=f"agi://127.0.0.1:{port}/ivr"
    )
    sim = PbxSimulator(model=province_model(PROVINCE, SeatPlan()), traffic=config)
    events: list[Fields] = []
    sim.server.listeners.append(events.append)
    await sim.start()
    try:
        script = CallScript(main=AgiCaller(inputs=["7"]), transfer_talk_s=3600)
        placed = sim.place_call(CITY, "13957330001", "王芳", script)
        async with asyncio.timeout(5):
            while placed.call.phase != "dialled" or placed.outcome != "transferred":
                await asyncio.sleep(0.005)
        dest = placed.call.dialled
        assert dest is not None
        assert placed.call.accept(dest, HangupCommand(cause=16)) is None
        assert await placed.finished(5) == "transferred"
    finally:
        await sim.stop()
        await server.close()
    hangups = [dict(e)["Channel"] for e in events if dict(e)["Event"] == "Hangup"]
    assert hangups == [dest.name, placed.channel]
    assert sim.model.find_channel(dest.name) is None


async def test_given_queue_the_pbx_lacks_then_queue_fails_and_call_ends(rig: Rig) -> None:
    placed, outcome = await _place(rig, CallScript(main=AgiCaller(inputs=["3"])))
    assert outcome == "queue-unknown"
    assert _exten_steps(rig, placed)[-4:] == [
        ("from-trunk", "12348", "8", "Queue", "city-999999,tc,,,"),
        ("from-trunk", "12348", "9", "GotoIf", "0?hotline-survey,s,1"),
        ("from-trunk", "12348", "10", "GotoIf", "0?overflow"),
        ("from-trunk", "12348", "11", "Hangup", ""),
    ]
    assert "QueueCallerJoin" not in rig.names(placed)
