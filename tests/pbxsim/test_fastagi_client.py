"""The simulator's FastAGI client against FastAGI servers: byte for byte as traces 06 and 06b."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from panoramisk import fast_agi

from callcenter.ami.events import CallQueued, IvrEntered, IvrLeft
from callcenter.pbxsim.fastagi_client import AgiCaller, FastAgiSession, split_agi_args
from callcenter.pbxsim.model import Channel
from callcenter.pbxsim.province import SeatPlan, province_model
from callcenter.pbxsim.simulator import PbxSimulator
from callcenter.pbxsim.workload import TrafficConfig
from callcenter.regions.provinces import load_province, province_file
from tests.ami.conftest import Trace, TraceLoader
from tests.pbxsim.wire import frames_of, normalize

REQUEST = "agi://127.0.0.1:4573/ivr?city=330400"
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def lab_channel(name: str, uniqueid: str, linkedid: str, number: str, caller: str) -> Channel:
    channel = Channel(name, uniqueid, linkedid, "from-trunk", "12349", priority=2, state=4)
    channel.caller_num, channel.caller_name = number, caller
    channel.connected_num, channel.connected_name = number, caller
    return channel


def agi_stream(trace: Trace, conn: str, incoming: bool) -> list[bytes]:
    return [m.data for m in trace.messages if m.conn == conn and m.incoming == incoming]


@asynccontextmanager
async def server(handler: Handler) -> AsyncIterator[int]:
    srv = await asyncio.start_server(handler, "127.0.0.1", 0)
    try:
        yield int(srv.sockets[0].getsockname()[1])
    finally:
        srv.close()
        await srv.wait_closed()


def replaying(commands: list[bytes], received: list[bytes]) -> Handler:
    """A raw FastAGI server that sends the trace's commands and records every byte it gets."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await reader.readuntil(b"\n\n"))
        for command in commands:
            writer.write(command)
            await writer.drain()
            await asyncio.sleep(0.02)  # let every answer line arrive before the next command
            received.append(await read_available(reader))
        writer.close()
        await writer.wait_closed()

    return handle


async def read_available(reader: asyncio.StreamReader) -> bytes:
    data = await reader.read(65536)
    while True:
        try:
            data += await asyncio.wait_for(reader.read(65536), 0.02)
        except TimeoutError:
            return data


async def test_session_replays_trace_06_byte_for_byte(traces: TraceLoader) -> None:
    trace = traces("06-fastagi-ivr-to-queue")
    channel = lab_channel(
        "Local/12349@from-trunk-0000001e;2",
        "1795254320.61",
        "1795254320.60",
        "13905730020",
        "郑十一",
    )
    session = FastAgiSession(channel, REQUEST, ("330400", "zh-CN"), AgiCaller(digits="1"))
    received: list[bytes] = []
    async with server(replaying(agi_stream(trace, "agi1", False), received)) as port:
        await asyncio.wait_for(session.run("127.0.0.1", port), 10)
    assert b"".join(received) == b"".join(agi_stream(trace, "agi1", True))
    assert session.choice == "1" and not session.hung_up
    assert channel.variables["CALLER_CITY"] == "嘉兴市"


async def test_caller_hang_up_replays_trace_06b(traces: TraceLoader) -> None:
    trace = traces("06b-fastagi-caller-hangup")
    channel = lab_channel(
        "Local/12349@from-trunk-00000020;2",
        "1795254349.65",
        "1795254349.64",
        "13905730021",
        "冯十二",
    )
    caller = AgiCaller(digits="", hang_up_during="GET DATA")
    session = FastAgiSession(channel, REQUEST, ("330400", "zh-CN"), caller)
    received: list[bytes] = []
    async with server(replaying(agi_stream(trace, "agi2", False), received)) as port:
        await asyncio.wait_for(session.run("127.0.0.1", port), 10)
    assert b"".join(received) == b"".join(agi_stream(trace, "agi2", True))
    assert session.hung_up


async def test_against_a_panoramisk_fastagi_application() -> None:
    results: dict[str, Any] = {}

    async def ivr(request: fast_agi.Request) -> None:
        results["headers"] = dict(request.headers)
        results["answer"] = await request.send_command("ANSWER")
        results["data"] = await request.send_command("GET DATA vm-press 6000 1")
        await request.send_command('SET VARIABLE IVR_CHOICE "2"')
        results["choice"] = await request.send_command("GET VARIABLE IVR_CHOICE")
        results["bad"] = await request.send_command("FOO BAR")

    app = fast_agi.Application()
    app.add_route("ivr?city=330400", ivr)
    channel = lab_channel(
        "PJSIP/trunk-00000007", "1795254400.7", "1795254400.7", "13957330001", "王芳"
    )
    session = FastAgiSession(channel, REQUEST, ("330400",), AgiCaller(digits="2"))
    async with server(app.handler) as port:
        await asyncio.wait_for(session.run("127.0.0.1", port), 10)
    headers = results["headers"]
    assert (headers["agi_channel"], headers["agi_calleridname"]) == (channel.name, "王芳")
    assert headers["agi_type"] == "PJSIP" and headers["agi_arg_1"] == "330400"
    assert results["answer"]["result"] == ("0", "")
    assert results["data"]["result"] == ("2", "")
    assert results["choice"]["result"] == ("1", "2")
    assert results["bad"]["error"] == "AGIInvalidCommand"
    assert channel.state == 6


def test_agi_arguments_are_split_like_asterisk() -> None:
    assert split_agi_args('STREAM FILE beep ""') == ["STREAM", "FILE", "beep", ""]
    assert split_agi_args('SET VARIABLE X "a b\\"c"') == ["SET", "VARIABLE", "X", 'a b"c']
    assert split_agi_args("NOOP 你好") == ["NOOP", "你好"]


async def test_generated_callers_run_the_ivr_on_a_fastagi_server() -> None:
    """With ``fastagi_url`` the IVR key comes from the FastAGI script (IVR_CHOICE)."""
    seen: list[dict[str, str]] = []

    async def ivr(request: fast_agi.Request) -> None:
        seen.append(dict(request.headers))
        await request.send_command("ANSWER")
        await request.send_command("GET DATA vm-press 6000 1")
        await request.send_command('SET VARIABLE IVR_CHOICE "3"')

    app = fast_agi.Application()
    async with server(app.handler) as port:
        app.add_route("ivr?entry=main", ivr)  # the dialplan contract's main entry
        config = TrafficConfig(
            seed=2,
            speed=None,
            calls_per_hour=0.0,
            city_rates={"330400": 600.0},
            arrivals_for_s=60.0,
            talk_s=(5.0, 10.0),
            ivr_hangup_share=0.0,
            fastagi_url=f"agi://127.0.0.1:{port}/ivr",
        )
        province = load_province(province_file("330000"))
        sim = PbxSimulator(model=province_model(province, SeatPlan()), traffic=config)
        events: list[Any] = []
        sim.server.listeners.append(events.append)
        await sim.start()
        try:
            assert sim.traffic is not None
            await asyncio.wait_for(sim.traffic.wait_finished(), 10)
        finally:
            await sim.stop()
    calls = normalize(frames_of(events))[1]
    assert seen and len(seen) == len(calls) == sim.stats.total().offered
    for history in calls.values():
        entered = next(e for e in history if isinstance(e, IvrEntered))
        left = next(e for e in history if isinstance(e, IvrLeft))
        assert entered.application == "AGI"
        assert (left.reason, left.selection) == ("selected", "3")
        assert any(isinstance(e, CallQueued) and e.queue == "city-330400" for e in history)
