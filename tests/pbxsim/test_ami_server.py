"""The simulator's AMI server over real TCP, compared field by field with the Asterisk traces."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import pytest_asyncio

from callcenter.ami.codec import Frame, FrameDecoder
from callcenter.ami.events import AgentStateChanged, CallOffered, OriginateResult
from callcenter.ami.normalize import USED_EVENTS, Normalizer
from callcenter.pbxsim import AmiServer, hotline_lab
from callcenter.pbxsim import messages as m
from callcenter.pbxsim.scenarios import AnsweredCall
from tests.ami.conftest import TraceLoader
from tests.pbxsim.wire import AmiClient, answer, login, sent, shape

LOGIN_01 = "01-ivr-queue-answer-mixmonitor"
ACTIONS_03 = "03-agent-actions-queue-and-status"
LOGIN_07 = "07-ami-banner-login"


@pytest_asyncio.fixture
async def server() -> AsyncIterator[AmiServer]:
    srv = AmiServer(hotline_lab(), auth_fail_delay=0.05)
    await srv.start()
    yield srv
    await srv.close()


@pytest_asyncio.fixture
async def connect(server: AmiServer) -> AsyncIterator[Callable[[], Awaitable[AmiClient]]]:
    clients: list[AmiClient] = []

    async def _connect() -> AmiClient:
        client = await AmiClient.connect(server.port)
        clients.append(client)
        return client

    yield _connect
    for client in clients:
        await client.close()


# --------------------------------------------------------------------------- exchanges vs traces


async def test_banner_is_byte_exact(
    connect: Callable[[], Awaitable[AmiClient]], traces: TraceLoader
) -> None:
    client = await connect()
    assert client.chunks[0] == traces(LOGIN_01).incoming("ami1")[0].data


async def test_login_matches_trace(
    connect: Callable[[], Awaitable[AmiClient]], traces: TraceLoader
) -> None:
    trace = traces(LOGIN_01)
    client = await connect()
    frames = await login(client, trace)
    expected = trace.frames()[:3]
    assert shape(frames) == shape(expected)
    assert frames[0].raw == expected[0].raw  # Response, ActionID, Message byte for byte
    assert frames[1]["Status"] == "Fully Booted"
    assert frames[2]["AccountID"] == "hotline"
    assert frames[2]["RemoteAddress"].startswith("IPV4/TCP/127.0.0.1/")


@pytest.mark.parametrize("needle", ["Action: Ping", "Action: QueueSummary", "Action: QueueStatus"])
async def test_actions_match_trace_03(
    connect: Callable[[], Awaitable[AmiClient]], traces: TraceLoader, needle: str
) -> None:
    trace = traces(ACTIONS_03)
    client = await connect()
    await login(client, trace)
    request = sent(trace, "ami1", needle)
    expected = answer(trace, "ami1", request)
    await client.send(request)
    got = [await client.next_frame() for _ in expected]
    assert shape(got) == shape(expected)
    assert [f.get("Queue") for f in got] == [f.get("Queue") for f in expected]
    assert [f.get("Name") for f in got] == [f.get("Name") for f in expected]
    assert got[0].items()[:2] == expected[0].items()[:2]


async def test_filtered_queue_status_matches_trace(
    server: AmiServer, connect: Callable[[], Awaitable[AmiClient]], traces: TraceLoader
) -> None:
    trace = traces(ACTIONS_03)
    client = await connect()
    await login(client, trace)
    request = sent(trace, "ami1", "Member: Local/8001")
    expected = answer(trace, "ami1", request)
    await client.send(request)
    got = [await client.next_frame() for _ in expected]
    assert shape(got) == shape(expected)


async def test_core_show_channels_matches_trace(
    server: AmiServer, connect: Callable[[], Awaitable[AmiClient]], traces: TraceLoader
) -> None:
    trace = traces(ACTIONS_03)
    expected = [f for f in trace.frames() if f.get("ActionID", "").endswith("/1/24")]
    for _ in range(3):
        _one, two = server.model.add_local_pair("12348", "from-trunk")
        two.application, two.app_data = "Queue", "legal-consult,t,,,120"
    client = await connect()
    await login(client, trace)
    await client.send(sent(trace, "ami1", "/1/24\r\n"))
    got = [await client.next_frame() for _ in expected]
    assert shape(got) == shape(expected)
    assert got[-1]["ListItems"] == "6"


@pytest.mark.parametrize(
    "note",
    [
        "(no Action header)",
        "(Ping without ActionID)",
        "(LF-only line ends)",
        "(lower-case keys)",
        "(no space after colon)",
        "(UTF-8 ActionID)",
        "(one header line longer than 1024 bytes)",
        "(three actions in one write)",
        "(one more CRLF to terminate the LF-only message, if needed)",
    ],
)
async def test_lenient_parsing_matches_trace_07(
    connect: Callable[[], Awaitable[AmiClient]], traces: TraceLoader, note: str
) -> None:
    trace = traces(LOGIN_07)
    messages = [msg for msg in trace.messages if msg.conn == "d"]
    index = next(i for i, msg in enumerate(messages) if msg.note == note)
    replies = []
    for msg in messages[index + 1 :]:
        if not msg.incoming:
            break
        replies += FrameDecoder(expect_banner=False).feed(msg.data)
    client = await connect()
    await login(client, trace, "mon")
    await client.send(messages[index].data)
    got = [await client.next_frame() for _ in replies]
    assert shape(got) == shape(replies)
    for mine, theirs in zip(got, replies, strict=True):
        assert mine.get("ActionID") == theirs.get("ActionID")
        assert mine.get("Message") == theirs.get("Message")
        assert mine.get("Response") == theirs.get("Response")


@pytest.mark.parametrize(
    "needle",
    ["/1/1\r\n", "/1/2\r\n", "/1/6\r\n", "/1/7\r\n", "/1/8\r\n", "/1/11\r\n"],
)
async def test_session_c_exchanges_are_byte_exact(
    connect: Callable[[], Awaitable[AmiClient]], traces: TraceLoader, needle: str
) -> None:
    """Before login: Permission denied.  After: second Login, Events off/on, Logoff."""
    trace = traces(LOGIN_07)
    client = await connect()
    request = sent(trace, "c", needle)
    if b"/1/1\r\n" not in request and b"/1/2\r\n" not in request:
        await login(client, trace, "mon")
    [expected] = [f for f in trace.frames("c") if f.get("ActionID", "").endswith(needle.strip())]
    await client.send(request)
    assert (await client.next_frame()).raw == expected.raw


async def test_failed_login_waits_answers_and_closes(
    server: AmiServer, connect: Callable[[], Awaitable[AmiClient]], traces: TraceLoader
) -> None:
    server.auth_fail_delay = 0.2
    trace = traces(LOGIN_07)
    client = await connect()
    began = time.monotonic()
    await client.send(trace.outgoing("a")[0].data)
    reply = await client.next_frame()
    assert time.monotonic() - began >= 0.2
    assert reply.raw == trace.frames("a")[0].raw
    assert await client.at_eof()


async def test_logoff_says_goodbye_and_closes(
    connect: Callable[[], Awaitable[AmiClient]], traces: TraceLoader
) -> None:
    trace = traces(LOGIN_07)
    client = await connect()
    await login(client, trace, "f")
    request = sent(trace, "f", "Action: Logoff")
    await client.send(request)
    assert (await client.next_frame()).raw == trace.frames("f")[-1].raw
    assert await client.at_eof()


async def test_unknown_action_is_byte_exact(
    connect: Callable[[], Awaitable[AmiClient]], traces: TraceLoader
) -> None:
    trace = traces(LOGIN_07)
    client = await connect()
    await login(client, trace, "mon")
    await client.send(sent(trace, "d", "NoSuchAction"))
    expected = [f for f in trace.frames("d") if "unknown command" in (f.get("Message") or "")]
    assert (await client.next_frame()).raw == expected[0].raw


async def test_events_off_login_gets_no_events(
    server: AmiServer, connect: Callable[[], Awaitable[AmiClient]], traces: TraceLoader
) -> None:
    trace = traces(LOGIN_01)
    quiet = await connect()
    await quiet.send(trace.outgoing("gen")[0].data)  # Login with Events: off
    assert (await quiet.next_frame())["Message"] == "Authentication accepted"
    listener = await connect()
    await login(listener, trace)
    await server.emit_channel_event(
        "Newchannel", server.model.add_channel("PJSIP/trunk-1", "from-trunk", "12348")
    )
    assert (await listener.next_frame())["Event"] == "Newchannel"
    await quiet.send(b"Action: Ping\r\nActionID: q\r\n\r\n")
    assert (await quiet.next_frame())["ActionID"] == "q"  # the first thing it gets: no event


# --------------------------------------------------------------------------- event layout


@pytest.mark.parametrize(
    "event", ["Newchannel", "Hangup", "QueueCallerJoin", "AgentCalled", "DialBegin"]
)
def test_channel_event_layout_matches_trace(traces: TraceLoader, event: str) -> None:
    real = next(f for f in traces(LOGIN_01).frames() if f.get("Event") == event and "Channel" in f)
    model = hotline_lab()
    caller = model.add_channel("Local/12348@from-trunk-00000000;2", "from-trunk", "12348")
    seat = model.add_channel("Local/8001@agent-phones-00000001;1", "agent-phones", "8001")
    extra = [
        (k, v)
        for k, v in real.items()[2:]
        if not k.startswith("Dest") and k not in dict(caller.snapshot())
    ]
    fields = m.channel_event(
        model,
        event,
        caller,
        *extra,
        privilege=real["Privilege"],
        dest=seat if "DestChannel" in real else None,
    )
    assert [k for k, _ in fields] == list(real.keys())


def test_variant_headers_match_trace_13(traces: TraceLoader) -> None:
    real = next(
        f
        for f in traces("13-variant-systemname-timestamp-chanvars").frames()
        if f.get("Event") == "Newchannel"
    )
    model = hotline_lab(
        systemname="js-node1",
        timestamp_events=True,
        channelvars=("HOTLINE_SERVICE", "CDR(userfield)"),
    )
    channel = model.add_channel("Local/12348@from-trunk-00000000;1", "from-trunk", "12348")
    fields = m.channel_event(model, "Newchannel", channel)
    assert [k for k, _ in fields] == list(real.keys())
    assert dict(fields)["Uniqueid"].startswith("js-node1-")
    assert [v for k, v in fields if k == "ChanVariable"] == list(real.getall("ChanVariable"))


def test_member_event_layout_matches_trace(traces: TraceLoader) -> None:
    real = next(f for f in traces(LOGIN_01).frames() if f.get("Event") == "QueueMemberStatus")
    member = hotline_lab().queues["legal-consult"].members[0]
    fields = m.event(hotline_lab(), "QueueMemberStatus", "agent,all", *member.event_fields())
    assert [k for k, _ in fields] == list(real.keys())
    assert dict(fields)["MemberName"] == real["MemberName"] == "张伟"


# --------------------------------------------------------------------------- faults


async def test_drop_connections_keeps_listening(
    server: AmiServer, connect: Callable[[], Awaitable[AmiClient]]
) -> None:
    client = await connect()
    await server.drop_connections()
    assert await client.at_eof()
    again = await connect()
    assert again.decoder.banner is not None


async def test_go_silent_keeps_socket_but_answers_nothing(
    server: AmiServer, connect: Callable[[], Awaitable[AmiClient]], traces: TraceLoader
) -> None:
    client = await connect()
    await login(client, traces(LOGIN_01))
    server.go_silent(True)
    await client.send(b"Action: Ping\r\nActionID: s-1\r\n\r\n")
    await server.emit(m.event(server.model, "Test", "call,all"))
    with pytest.raises(TimeoutError):
        await client.next_frame(timeout=0.3)
    server.go_silent(False)
    await client.send(b"Action: Ping\r\nActionID: s-2\r\n\r\n")
    assert (await client.next_frame())["ActionID"] == "s-2"


async def test_restart_same_port_forgets_sessions(
    server: AmiServer, connect: Callable[[], Awaitable[AmiClient]], traces: TraceLoader
) -> None:
    port = server.port
    client = await connect()
    await login(client, traces(LOGIN_01))
    assert await server.restart() == port
    assert await client.at_eof()
    fresh = await connect()
    await fresh.send(b"Action: Ping\r\nActionID: r\r\n\r\n")
    assert (await fresh.next_frame())["Message"] == "Permission denied"


async def test_send_raw_reaches_clients_as_is(
    server: AmiServer, connect: Callable[[], Awaitable[AmiClient]]
) -> None:
    client = await connect()
    await server.send_raw(b"garbage without colon\r\n\r\nEvent: After\r\n\r\n")
    assert (await client.next_frame())["Event"] == "After"
    assert client.decoder.error_count == 1


async def test_chunked_writes_split_utf8_but_frames_survive(traces: TraceLoader) -> None:
    server = AmiServer(hotline_lab(), chunk_size=5)
    await server.start()
    client = await AmiClient.connect(server.port)
    try:
        await login(client, traces(LOGIN_01))
        await client.send(b"Action: QueueSummary\r\nActionID: c\r\n\r\n")
        frames = await client.frames_until(lambda f: f.get("Event") == "QueueSummaryComplete")
        assert len(client.chunks) > 100
        assert [f.get("Queue") for f in frames[1:-1]] == list(server.model.queues)
        status = await AmiClient.connect(server.port)
        await login(status, traces(LOGIN_01))
        await status.send(b"Action: QueueStatus\r\nQueue: legal-consult\r\n\r\n")
        names = [
            f.get("Name")
            for f in await status.frames_until(lambda f: "EventList" in f and f.get("Event"))
        ]
        assert "张伟" in names and "李娜" in names

        def splits_a_character(chunk: bytes) -> bool:
            try:
                chunk.decode("utf-8")
            except UnicodeDecodeError:
                return True
            return False

        assert any(splits_a_character(c) for c in status.chunks)
        await status.close()
    finally:
        await client.close()
        await server.close()


# --------------------------------------------------------------------------- scripted call


def platform_view(frames: list[Frame], phone: str) -> list[Frame]:
    """Events the platform uses, without the lab's artefacts (the caller's ``;1`` phone half)."""
    return [
        f
        for f in frames
        if f.get("Event") in USED_EVENTS
        and f.get("Event") not in ("OriginateResponse", "FullyBooted", "SuccessfulAuth")
        and f.get("Channel") != phone
    ]


async def test_scripted_call_replays_trace_01_layout(
    server: AmiServer, connect: Callable[[], Awaitable[AmiClient]], traces: TraceLoader
) -> None:
    trace = traces(LOGIN_01)
    expected = platform_view(trace.frames(), "Local/12348@from-trunk-00000000;1")
    client = await connect()
    await login(client, trace)
    caller = await AnsweredCall(server, "13905730555", "欧阳娜娜").play()
    got = [await client.next_frame() for _ in expected]
    assert shape(got) == shape(expected)
    assert not server.model.channels

    normalizer, reference = Normalizer("sim"), Normalizer("lab")
    events = [e for f in got for e in normalizer.feed(f)]
    real = [type(e).__name__ for f in trace.frames() for e in reference.feed(f)]
    assert [type(e).__name__ for e in events] == [n for n in real if n != OriginateResult.__name__]
    assert any(isinstance(e, AgentStateChanged) for e in events)
    offered = events[0]
    assert isinstance(offered, CallOffered)
    assert (offered.caller_name, offered.uniqueid) == ("欧阳娜娜", caller.uniqueid)
    assert normalizer.stats.untracked == normalizer.stats.inconsistent == 0
