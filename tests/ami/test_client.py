"""The AMI client (our panoramisk adapter) against the PBX simulator over real TCP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio

from callcenter.ami.client import (
    AmiActionFailed,
    AmiClient,
    AmiNodeConfig,
    AmiNotConnected,
    AmiTimeout,
)
from callcenter.ami.codec import AmiInjectionError, Frame
from callcenter.pbxsim import AmiServer, hotline_lab
from callcenter.pbxsim.ami_server import DEFAULT_USERS
from callcenter.pbxsim.scenarios import AnsweredCall

USER = DEFAULT_USERS[0]


class Recorder:
    """Collects what the client hands to the platform: events and connection changes."""

    def __init__(self) -> None:
        self.frames: list[Frame] = []
        self.connected: list[str] = []
        self.disconnected: list[str] = []

    async def on_event(self, _node: str, frame: Frame) -> None:
        self.frames.append(frame)

    async def on_connected(self, node: str) -> None:
        self.connected.append(node)

    async def on_disconnected(self, node: str) -> None:
        self.disconnected.append(node)

    def names(self) -> list[str]:
        return [f["Event"] for f in self.frames]


@pytest_asyncio.fixture
async def pbx() -> AsyncIterator[AmiServer]:
    server = AmiServer(hotline_lab(), auth_fail_delay=0.05)
    await server.start()
    yield server
    await server.close()


def _config(port: int, **overrides: Any) -> AmiNodeConfig:
    base: dict[str, Any] = {
        "name": "js-node1",
        "host": "127.0.0.1",
        "port": port,
        "username": USER.username,
        "secret": USER.secret,
        "action_timeout": 2.0,
        "ping_interval": 0.2,
        "ping_timeout": 0.3,
        "backoff_initial": 0.05,
        "backoff_max": 0.2,
    }
    base.update(overrides)
    return AmiNodeConfig(**base)


@pytest_asyncio.fixture
async def connect(pbx: AmiServer) -> AsyncIterator[Callable[..., Any]]:
    clients: list[AmiClient] = []

    async def _connect(**overrides: Any) -> tuple[AmiClient, Recorder]:
        rec = Recorder()
        client = AmiClient(
            _config(pbx.port, **overrides),
            rec.on_event,
            on_connected=rec.on_connected,
            on_disconnected=rec.on_disconnected,
        )
        clients.append(client)
        await client.start()
        return client, rec

    yield _connect
    for client in clients:
        await client.close()


async def _until(predicate: Callable[[], bool], timeout: float = 3.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


async def test_given_simulator_when_client_starts_then_logged_in_and_events_flow(
    pbx: AmiServer, connect: Callable[..., Any]
) -> None:
    client, rec = await connect()
    await client.wait_connected(2.0)
    assert rec.connected == ["js-node1"]
    pong = await client.send("Ping")
    assert pong.success and pong.get("Ping") == "Pong"
    await AnsweredCall(pbx, "13805730001", "张三").play()
    await _until(lambda: "Hangup" in rec.names())
    await client.drain()
    names = rec.names()
    assert names[0] == "FullyBooted"
    assert {"QueueCallerJoin", "AgentConnect", "AgentComplete"} <= set(names)
    joined = next(f for f in rec.frames if f["Event"] == "QueueCallerJoin")
    assert joined["CallerIDName"] == "张三"


async def test_given_list_action_then_items_collected_until_complete(
    connect: Callable[..., Any],
) -> None:
    client, _ = await connect()
    await client.wait_connected(2.0)
    status = await client.send("QueueStatus")
    assert status.get("EventList") == "start"
    kinds = {item["Event"] for item in status.items}
    assert {"QueueParams", "QueueMember", "QueueStatusComplete"} <= kinds
    assert status.items[-1]["Event"] == "QueueStatusComplete"


async def test_given_bad_secret_then_auth_error_reported_and_retried(
    connect: Callable[..., Any],
) -> None:
    client, rec = await connect(secret="wrong")
    with pytest.raises(AmiNotConnected, match="login refused: Authentication failed"):
        await client.wait_connected(0.5)
    assert rec.connected == []
    await _until(lambda: client.status["last_error"] is not None)


async def test_given_unknown_action_then_domain_error_with_asterisk_message(
    connect: Callable[..., Any],
) -> None:
    client, _ = await connect()
    await client.wait_connected(2.0)
    with pytest.raises(AmiActionFailed, match="Invalid/unknown command"):
        await client.send("NoSuchAction")


@pytest.mark.parametrize(
    "fields",
    [
        {"Channel": "PJSIP/8001\r\nAction: Hangup"},
        {"Queue": "city-330400\nEvent: Forged"},
        {"Reason\r\n": "x"},
        {"Variable": ["A=1", "B=2\r\n"]},
    ],
)
async def test_given_cr_or_lf_in_any_field_then_refused_before_sending(
    pbx: AmiServer, connect: Callable[..., Any], fields: dict[str, Any]
) -> None:
    client, _ = await connect()
    await client.wait_connected(2.0)
    sent_before = len(pbx.sessions)
    with pytest.raises(AmiInjectionError):
        await client.send("QueuePause", fields)
    assert len(pbx.sessions) == sent_before
    assert (await client.send("Ping")).success  # connection untouched


async def test_given_silent_peer_then_action_times_out_and_pending_table_is_clean(
    pbx: AmiServer, connect: Callable[..., Any]
) -> None:
    client, _ = await connect(ping_interval=30.0)
    await client.wait_connected(2.0)
    pbx.go_silent(True)
    with pytest.raises(AmiTimeout, match=r"no answer to Ping within 0\.2 s"):
        await client.send("Ping", timeout=0.2)
    assert client._protocol is not None and client._protocol.responses == {}
    pbx.go_silent(False)


async def test_given_silent_peer_then_watchdog_reconnects(
    pbx: AmiServer, connect: Callable[..., Any]
) -> None:
    client, rec = await connect()
    await client.wait_connected(2.0)
    pbx.go_silent(True)
    await _until(lambda: rec.disconnected == ["js-node1"])
    pbx.go_silent(False)
    await pbx.drop_connections()  # the hung sockets are gone after the PBX recovers
    await _until(lambda: len(rec.connected) >= 2)
    assert (await client.send("Ping")).success


async def test_given_dropped_connection_then_reconnects_with_backoff(
    pbx: AmiServer, connect: Callable[..., Any]
) -> None:
    client, rec = await connect()
    await client.wait_connected(2.0)
    await pbx.drop_connections()
    await _until(lambda: len(rec.connected) == 2)
    assert rec.disconnected == ["js-node1"]
    assert (await client.send("Ping")).success
    assert client.status["connects"] == 2


async def test_given_restarted_pbx_then_client_comes_back(
    pbx: AmiServer, connect: Callable[..., Any]
) -> None:
    client, rec = await connect()
    await client.wait_connected(2.0)
    await pbx.close()
    await _until(lambda: not client.connected.is_set())
    with pytest.raises(AmiNotConnected):
        await client.send("Ping")
    await pbx.start()
    await _until(lambda: len(rec.connected) == 2)
    assert (await client.send("Ping")).success


async def test_given_chinese_name_split_across_reads_then_nothing_lost(
    pbx: AmiServer, connect: Callable[..., Any]
) -> None:
    client, rec = await connect(ping_interval=30.0)
    await client.wait_connected(2.0)
    message = "Event: UserEvent\r\nUserEvent: Note\r\nName: 张三李四\r\n\r\n".encode()
    cut = message.index("张".encode()) + 1  # inside the first character
    await pbx.send_raw(message[:cut])
    await asyncio.sleep(0.05)
    await pbx.send_raw(message[cut:])
    await _until(lambda: any(f.get("UserEvent") == "Note" for f in rec.frames))
    note = next(f for f in rec.frames if f.get("UserEvent") == "Note")
    assert note["Name"] == "张三李四"


async def test_given_malformed_frames_then_counted_and_connection_survives(
    pbx: AmiServer, connect: Callable[..., Any]
) -> None:
    client, rec = await connect(ping_interval=30.0)
    await client.wait_connected(2.0)
    await pbx.send_raw(b"this line has no colon\r\n\r\n" + b"X" * 70_000 + b"\r\n\r\n")
    await pbx.send_raw(b"Event: UserEvent\r\nUserEvent: After\r\n\r\n")
    await _until(lambda: any(f.get("UserEvent") == "After" for f in rec.frames))
    assert client.status["malformed_frames"] >= 2
    assert (await client.send("Ping")).success


async def test_given_failing_event_handler_then_next_events_still_handled(
    pbx: AmiServer,
) -> None:
    seen: list[str] = []

    async def handler(_node: str, frame: Frame) -> None:
        if frame.get("UserEvent") == "Boom":
            raise RuntimeError("handler bug")
        seen.append(frame.get("UserEvent") or frame["Event"])

    client = AmiClient(_config(pbx.port, ping_interval=30.0), handler)
    await client.start()
    try:
        await client.wait_connected(2.0)
        await pbx.send_raw(b"Event: UserEvent\r\nUserEvent: Boom\r\n\r\n")
        await pbx.send_raw(b"Event: UserEvent\r\nUserEvent: Fine\r\n\r\n")
        await _until(lambda: "Fine" in seen)
        assert (await client.send("Ping")).success
    finally:
        await client.close()
