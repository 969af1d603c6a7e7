"""The FastAGI server against the simulator's Asterisk-like client and against hostile peers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from callcenter.agi.server import AgiError, AgiHangup, AgiRequest, AgiServer, split_script
from callcenter.pbxsim.fastagi_client import AgiCaller, FastAgiSession
from callcenter.pbxsim.model import Channel


class Script:
    """A route that records what it saw and what happened."""

    def __init__(self) -> None:
        self.seen: list[AgiRequest] = []
        self.outcome: list[str] = []

    async def __call__(self, req: AgiRequest) -> None:
        self.seen.append(req)
        try:
            await req.command("ANSWER")
            digits = await req.command("GET", "DATA", "hotline/main-menu", "5000", "1")
            await req.set_variable("IVR_CHOICE", str(digits["result"][0]))
            self.outcome.append("done")
        except AgiHangup:
            self.outcome.append("hangup")
            raise


@pytest_asyncio.fixture
async def agi() -> AsyncIterator[tuple[AgiServer, Script, int]]:
    server = AgiServer(command_timeout=2.0)
    script = Script()
    server.add_route("ivr", script)
    port = await server.start("127.0.0.1", 0)
    yield server, script, port
    await server.close()


def _caller(name: str = "郑十一") -> Channel:
    return Channel(
        name="PJSIP/trunk-00000001",
        uniqueid="1795200000.1",
        linkedid="1795200000.1",
        caller_num="13805730001",
        caller_name=name,
        context="from-trunk",
        exten="12348",
    )


async def test_given_query_string_script_then_route_found_and_args_parsed(
    agi: tuple[AgiServer, Script, int],
) -> None:
    server, script, port = agi
    channel = _caller()
    session = FastAgiSession(
        channel, "agi://127.0.0.1/ivr?city=330400&node=js1", ("330400", "zh-CN"), AgiCaller("2")
    )
    await session.run("127.0.0.1", port)
    assert script.outcome == ["done"]
    req = script.seen[0]
    assert (req.path, req.query) == ("ivr", {"city": "330400", "node": "js1"})
    assert req.args == ["330400", "zh-CN"] and req.text("agi_calleridname") == "郑十一"
    assert channel.variables["IVR_CHOICE"] == "2"
    assert server.failures == 0


async def test_given_caller_hangs_up_mid_menu_then_script_stops_cleanly(
    agi: tuple[AgiServer, Script, int],
) -> None:
    server, script, port = agi
    session = FastAgiSession(
        _caller(), "agi://127.0.0.1/ivr", (), AgiCaller("1", hang_up_during="GET DATA")
    )
    await session.run("127.0.0.1", port)
    assert script.outcome == ["hangup"]
    assert server.failures == 0  # a hang-up is normal, not a failure
    assert not any(c.startswith("SET VARIABLE") for c in session.commands)


async def _raw(port: int, data: bytes, *, close: bool = True) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    if close:
        writer.write_eof()
    try:
        return await asyncio.wait_for(reader.read(), 3)
    finally:
        writer.close()
        await writer.wait_closed()


async def _until_sessions(server: AgiServer, n: int) -> None:
    async with asyncio.timeout(3):
        while server.sessions < n:
            await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"agi_network_script: ivr\n", "closed before the blank line (panoramisk spins here)"),
        (b"agi_network_script: nosuch\n\n", "unknown route"),
        (b"agi_request: x\n" + b"agi_x: " + b"A" * 20_000 + b"\n\n", "oversized environment"),
        (b"\xff\xfe\n\n", "garbage"),
    ],
)
async def test_given_hostile_peer_then_session_refused_and_server_keeps_working(
    agi: tuple[AgiServer, Script, int], data: bytes, why: str
) -> None:
    server, script, port = agi
    assert await _raw(port, data) == b"", why
    await _until_sessions(server, 1)
    assert server.failures == 1 and script.outcome == []
    session = FastAgiSession(_caller(), "agi://127.0.0.1/ivr", (), AgiCaller("3"))
    await session.run("127.0.0.1", port)
    assert script.outcome == ["done"]


async def test_given_gbk_caller_name_then_decoded_not_crashed(
    agi: tuple[AgiServer, Script, int],
) -> None:
    server, script, port = agi
    env = (
        b"agi_network_script: ivr\nagi_calleridname: \xd5\xc5\xc8\xfd\n"
        b"agi_callerid: 13805730001\n\n"
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(env)
    assert await reader.readline() == b"ANSWER\n"
    writer.write(b"200 result=0\n")
    await reader.readline()  # GET DATA
    writer.write(b"HANGUP\n")
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), 3) == b""
    writer.close()
    await writer.wait_closed()
    assert script.seen[0].text("agi_calleridname") == "张三"
    assert script.outcome == ["hangup"] and server.failures == 0


async def test_given_cr_lf_in_a_value_then_command_refused_before_sending(
    agi: tuple[AgiServer, Script, int],
) -> None:
    server, _, port = agi
    refused: list[str] = []

    async def evil(req: AgiRequest) -> None:
        try:
            await req.set_variable("NAME", "x\nEXEC Dial PJSIP/premium-number")
        except AgiError as exc:
            refused.append(str(exc))

    server.add_route("evil", evil)
    session = FastAgiSession(_caller(), "agi://127.0.0.1/evil", ())
    await session.run("127.0.0.1", port)
    assert refused and "control character" in refused[0]
    assert session.commands == []  # nothing reached "Asterisk"


def test_split_script() -> None:
    assert split_script("ivr?city=330400&node=js%2D1") == (
        "ivr",
        {"city": "330400", "node": "js-1"},
    )
    assert split_script("/ivr/") == ("ivr", {})


# --- shutdown -------------------------------------------------------------------------------


class Writer:
    """A route that 'writes to the database' (waits on ``release``) and then talks to the PBX."""

    def __init__(self) -> None:
        self.started, self.release = asyncio.Event(), asyncio.Event()
        self.outcome: list[str] = []

    async def __call__(self, req: AgiRequest) -> None:
        self.started.set()
        try:
            await self.release.wait()
            self.outcome.append("written")
            await req.command("ANSWER")
            self.outcome.append("answered")
        except AgiHangup:
            self.outcome.append("hangup")
            raise
        except asyncio.CancelledError:
            self.outcome.append("cancelled")
            raise


async def _open_session(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A peer that sends its environment and then says nothing more."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"agi_network: yes\nagi_network_script: ivr\nagi_channel: PJSIP/t-1\n\n")
    await writer.drain()
    return reader, writer


async def test_given_a_route_mid_write_when_closing_then_it_waits_and_hangs_up() -> None:
    server, route = AgiServer(command_timeout=30.0), Writer()
    server.add_route("ivr", route)
    port = await server.start("127.0.0.1", 0)
    _, peer = await _open_session(port)
    await asyncio.wait_for(route.started.wait(), 5)
    closing = asyncio.create_task(server.close())
    await asyncio.sleep(0.2)
    assert not closing.done()  # the write in progress is not cut off
    route.release.set()
    await asyncio.wait_for(closing, 5)
    assert route.outcome == ["written", "hangup"]  # then the closed session ends the route
    peer.close()


async def test_given_a_route_waiting_on_a_silent_peer_when_closing_then_it_ends_at_once() -> None:
    server, route = AgiServer(command_timeout=30.0), Writer()
    route.release.set()
    server.add_route("ivr", route)
    port = await server.start("127.0.0.1", 0)
    reader, peer = await _open_session(port)
    assert (await asyncio.wait_for(reader.readline(), 5)).startswith(b"ANSWER")
    await asyncio.wait_for(server.close(), 2)  # well inside the 30 s command timeout
    assert route.outcome == ["written", "hangup"]
    assert await reader.read() == b""  # the PBX sees the session closed
    peer.close()


async def test_given_a_route_past_the_grace_when_closing_then_it_is_cancelled_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server, route = AgiServer(), Writer()
    server.add_route("ivr", route)
    port = await server.start("127.0.0.1", 0)
    _, peer = await _open_session(port)
    await asyncio.wait_for(route.started.wait(), 5)
    await asyncio.wait_for(server.close(grace=0.2), 5)
    assert route.outcome == ["cancelled"]
    assert "still running after 0.2 s at shutdown: cancelled" in caplog.text
    peer.close()
