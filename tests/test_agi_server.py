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
