"""Actions the bridge sends, answered over real TCP as the Asterisk traces show.

Requests are the traces' own bytes where they fit the simulator's state (the lab's queues and
seats, trace 03's first half; trace 05c); where they name a channel, the same request is
re-encoded with the simulator's channel name.  Compared: message names, header order,
``Response`` / ``Message`` / ``ActionID`` values, and member-event values except their history.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from callcenter.ami.codec import Frame, FrameDecoder, encode_action
from callcenter.ami.normalize import Normalizer
from callcenter.pbxsim import hotline_lab
from callcenter.pbxsim.clock import SimClock
from callcenter.pbxsim.simulator import PbxSimulator
from tests.ami.conftest import Trace, TraceLoader
from tests.pbxsim.wire import AmiClient, login, sent, shape

ACTIONS_03 = "03-agent-actions-queue-and-status"
REDIRECT_04 = "04-redirect-blind-transfer-to-12345"
CALLBACK_05 = "05-originate-callback-survey"
FAILURES_05C = "05c-originate-failures"
MEMBER_EVENTS = ("QueueMemberAdded", "QueueMemberRemoved", "QueueMemberPause", "QueueMemberPenalty")
HISTORY_FIELDS = frozenset({"LoginTime", "LastPause", "LastCall", "CallsTaken"})
"""Values that depend on what happened before the capture (times, calls already taken)."""


@pytest_asyncio.fixture
async def sim() -> AsyncIterator[PbxSimulator]:
    clock = SimClock(start=1795254145.0, speed=None)  # trace 03 time of Getvar EPOCH
    simulator = PbxSimulator(model=hotline_lab(clock=clock.now), clock=clock, seed=3)
    await simulator.start()
    yield simulator
    await simulator.stop()


@pytest_asyncio.fixture
async def client(sim: PbxSimulator, traces: TraceLoader) -> AsyncIterator[AmiClient]:
    conn = await AmiClient.connect(sim.server.port)
    await login(conn, traces(ACTIONS_03))
    yield conn
    await conn.close()


def reply_of(trace: Trace, request: bytes) -> list[Frame]:
    """The response to ``request`` and what follows it up to the next response: list items
    with its ActionID and the member events the action caused."""
    action_id = FrameDecoder(expect_banner=False).feed(request)[0]["ActionID"]
    frames = trace.frames()
    start = next(i for i, f in enumerate(frames) if f.get("ActionID") == action_id)
    out = [frames[start]]
    for frame in frames[start + 1 :]:
        if frame.is_response:
            break
        if frame.get("ActionID") == action_id or frame.get("Event") in MEMBER_EVENTS:
            out.append(frame)
    return out


def values(frame: Frame) -> list[tuple[str, str]]:
    return [(k, v) for k, v in frame.items() if k not in HISTORY_FIELDS]


def retarget(request: bytes, **changes: str) -> bytes:
    """The same action with some header values replaced (e.g. our channel names)."""
    frame = FrameDecoder(expect_banner=False).feed(request)[0]
    fields = {k: v for k, v in frame.items() if k not in ("Action", "ActionID")}
    fields.update(changes)
    return encode_action(frame["Action"], fields, frame["ActionID"])


async def exchange(client: AmiClient, request: bytes, expected: list[Frame]) -> list[Frame]:
    await client.send(request)
    return [await client.next_frame() for _ in expected]


# --------------------------------------------------------------------------- queue members

QUEUE_STEPS_03 = [f"/1/{n}\r\n" for n in (*range(6, 24), 42, 43)]


async def test_queue_member_actions_replay_trace_03(client: AmiClient, traces: TraceLoader) -> None:
    """QueueAdd / QueuePause / QueuePenalty / QueueLog / ... / QueueRemove, with the errors."""
    trace = traces(ACTIONS_03)
    for needle in QUEUE_STEPS_03:
        request = sent(trace, "ami1", needle)
        expected = reply_of(trace, request)
        got = await exchange(client, request, expected)
        assert shape(got) == shape(expected), needle
        for mine, theirs in zip(got, expected, strict=True):
            if mine.get("Event") in MEMBER_EVENTS or mine.is_response:
                assert values(mine) == values(theirs), needle


async def test_member_events_normalize_to_seat_states(
    client: AmiClient, traces: TraceLoader
) -> None:
    trace = traces(ACTIONS_03)
    normalizer = Normalizer("sim")
    states = []
    for needle in ("/1/6\r\n", "/1/10\r\n", "/1/42\r\n"):
        request = sent(trace, "ami1", needle)
        for frame in await exchange(client, request, reply_of(trace, request)):
            states += [getattr(e, "state", None) for e in normalizer.feed(frame)]
    assert states == ["logged_in", "ready", "paused", "logged_out"]


# --------------------------------------------------------------------------- channels


async def test_channel_actions_on_a_live_channel(
    sim: PbxSimulator, client: AmiClient, traces: TraceLoader
) -> None:
    """Status (+Variables), Getvar, Setvar, MixMonitor/Mute/Stop, Hangup: trace 03's answers."""
    trace = traces(ACTIONS_03)
    caller = sim.model.add_local_pair("12348", "from-trunk")[1]
    caller.caller_num, caller.caller_name = "13805730001", "张三"
    caller.variables.update(HOTLINE_SERVICE="legal-consult", MEMBERNAME="李娜")
    caller.variables.update(QUEUENAME="legal-consult", MEMBERINTERFACE="Local/8002@agent-phones/n")
    seat = sim.model.add_local_pair("8002", "agent-phones", linkedid=caller.linkedid)[0]
    for needle, channel in [
        ("/1/26\r\n", caller),
        ("/1/27\r\n", caller),
        ("/1/28\r\n", None),
        ("/1/29\r\n", caller),
        ("/1/30\r\n", caller),
        ("/1/31\r\n", None),
        ("/1/32\r\n", None),
        ("/1/33\r\n", caller),
        ("/1/36\r\n", seat),
        ("/1/37\r\n", seat),
        ("/1/38\r\n", seat),
        ("/1/39\r\n", seat),
        ("/1/41\r\n", None),
    ]:
        request = sent(trace, "ami1", needle)
        if channel is not None:
            request = retarget(request, Channel=channel.name)
        expected = [f for f in trace.frames() if f.get("ActionID", "").endswith(needle.strip())]
        expected += follow_up(trace, needle)
        got = await exchange(client, request, expected)
        assert shape(got) == shape(expected), needle
        assert [f.get("Message") for f in got] == [f.get("Message") for f in expected], needle
        assert [f.get("Value") for f in got] == [f.get("Value") for f in expected], needle
        variables = [f.getall("Variable") for f in got]
        assert variables == [f.getall("Variable") for f in expected], needle
    assert caller.variables["TICKET_ID"] == "GD-330400-0001"


def follow_up(trace: Trace, needle: str) -> list[Frame]:
    """The MixMonitor* event that follows a response in trace 03 (before the next response)."""
    frames = trace.frames()
    index = next(i for i, f in enumerate(frames) if f.get("ActionID", "").endswith(needle.strip()))
    for frame in frames[index + 1 :]:
        if frame.is_response:
            break
        if (frame.get("Event") or "").startswith("MixMonitor"):
            return [frame]
    return []


async def test_hangup_of_an_unowned_channel(sim: PbxSimulator, client: AmiClient) -> None:
    channel = sim.model.add_channel("PJSIP/trunk-00000001", "from-trunk", "12348")
    await client.send(encode_action("Hangup", {"Channel": channel.name, "Cause": "16"}, "h-1"))
    reply = await client.next_frame()
    assert (reply["Response"], reply["Message"]) == ("Success", "Channel Hungup")
    events = [await client.next_frame() for _ in range(2)]
    assert [e["Event"] for e in events] == ["SoftHangupRequest", "Hangup"]
    assert sim.model.find_channel(channel.name) is None


@pytest.mark.parametrize("needle", ["/1/3\r\n", "/1/4\r\n"])
async def test_redirect_errors_match_trace_04(
    client: AmiClient, traces: TraceLoader, needle: str
) -> None:
    """Unknown channel, and a missing Priority (refused before the channel is looked up)."""
    trace = traces(REDIRECT_04)
    request = sent(trace, "ami1", needle)
    [expected] = [f for f in trace.frames() if f.get("ActionID", "").endswith(needle.strip())]
    [got] = await exchange(client, request, [expected])
    assert got.raw == expected.raw


@pytest.mark.parametrize(
    ("action", "fields", "message"),
    [
        ("BlindTransfer", {"Exten": "8003"}, "No channel specified"),
        ("BlindTransfer", {"Channel": "Local/x;1"}, "No extension specified"),
        (
            "BlindTransfer",
            {"Channel": "Local/x;1", "Exten": "1"},
            "Channel specified does not exist",
        ),
        ("Atxfer", {"Channel": "Local/x;1", "Exten": "8003"}, "Channel specified does not exist"),
        ("Hangup", {}, "No channel specified"),
        ("Getvar", {"Channel": "Local/x;1"}, "No variable specified"),
    ],
)
async def test_action_errors(
    client: AmiClient, action: str, fields: dict[str, str], message: str
) -> None:
    await client.send(encode_action(action, fields, "e-1"))
    reply = await client.next_frame()
    assert reply.items() == (("Response", "Error"), ("ActionID", "e-1"), ("Message", message))


# --------------------------------------------------------------------------- Originate


def originate_frames(trace: Trace, action_id: str) -> list[Frame]:
    return [f for f in trace.frames() if f.get("ActionID") == action_id]


@pytest.mark.parametrize("n", [2, 3, 4, 5, 6, 7, 8, 9, 10])
async def test_originate_matches_trace_05c(client: AmiClient, traces: TraceLoader, n: int) -> None:
    """Busy 5, no answer 3, congestion 8, no such number 0, unknown technology 0, synchronous
    failure, missing Channel, missing Context/Priority, and an Application originate."""
    trace = traces(FAILURES_05C)
    request = sent(trace, "ami1", f"/1/{n}\r\n")
    expected = originate_frames(
        trace, FrameDecoder(expect_banner=False).feed(request)[0]["ActionID"]
    )
    await client.send(request)
    got = [await client.next_frame() for _ in expected]
    got = [f for f in got if f.get("ActionID")]
    while len(got) < len(expected):  # Newchannel & co of a successful originate come between
        frame = await client.next_frame()
        if frame.get("ActionID"):
            got.append(frame)
    assert shape(got) == shape(expected)
    for mine, theirs in zip(got, expected, strict=True):
        for key in ("Response", "Message", "Reason", "CallerIDNum", "CallerIDName", "Context"):
            assert mine.get(key) == theirs.get(key), (n, key)
        if theirs.get("Uniqueid") == "<unknown>":
            assert mine.get("Channel") == theirs.get("Channel")
            assert mine.get("Uniqueid") == "<unknown>"


async def test_originate_to_138_is_busy_with_the_action_id(client: AmiClient) -> None:
    fields = {
        "Channel": "PJSIP/13805731234@trunk",
        "Context": "callback-survey",
        "Exten": "s",
        "Priority": "1",
        "Async": "true",
        "CallerID": '"12348热线" <12348>',
    }
    await client.send(encode_action("Originate", fields, "cb-138"))
    reply = await client.next_frame()
    assert (reply["Response"], reply["Message"]) == ("Success", "Originate successfully queued")
    event = await client.next_frame()
    assert event["Event"] == "OriginateResponse"
    assert (event["ActionID"], event["Response"], event["Reason"]) == ("cb-138", "Failure", "5")
    assert event["Uniqueid"] == "<unknown>"
    [result] = Normalizer("sim").feed(event)
    assert (getattr(result, "reason", None), getattr(result, "success", None)) == ("busy", False)


async def test_callback_with_channel_ids_matches_trace_05(
    sim: PbxSimulator, client: AmiClient, traces: TraceLoader
) -> None:
    """ChannelId / OtherChannelId become the Uniqueids; the survey reports its score."""
    trace = traces(CALLBACK_05)
    request = sent(trace, "ami1", "Action: Originate")
    expected = [f for f in trace.frames() if f.get("ActionID", "").endswith("/1/2")]
    await client.send(request)
    frames = await client.frames_until(
        lambda f: f.get("Event") == "Hangup" and "2" in f["Channel"][-1]
    )
    mine = [f for f in frames if f.get("ActionID")]
    assert shape(mine) == shape(expected)
    response = mine[-1]
    assert response["Uniqueid"] == expected[-1]["Uniqueid"]  # our ChannelId
    newchannels = [f for f in frames if f.get("Event") == "Newchannel"]
    assert [f["Uniqueid"] for f in newchannels] == [
        "cb-6ecd46ac-f2fc-46c4-bfa3-c0ac9f6ec9fc",
        "cb-6064a80e-658a-42de-a3b5-0a32721636b2",
    ]
    survey = next(f for f in frames if f.get("Event") == "UserEvent")
    assert (survey["UserEvent"], survey["TicketID"]) == ("SurveyResult", "GD-330400-0002")
    assert survey["Score"] in {"1", "2", "3", "4", "5"}
    assert not sim.model.channels


async def test_seat_first_click_to_call_matches_trace_05b(
    sim: PbxSimulator, client: AmiClient, traces: TraceLoader
) -> None:
    """The seat rings first (its queue sees it busy), answers, then the customer is dialled."""
    trace = traces("05b-originate-seat-first-click-to-call")
    request = sent(trace, "ami1", "Action: Originate")
    wanted = {"Newchannel", "QueueMemberStatus", "OriginateResponse", "BridgeEnter", "Hangup"}

    def key_events(frames: list[Frame]) -> list[str]:
        return [f["Event"] for f in frames if f.get("Event") in wanted]

    await client.send(request)
    frames = await client.frames_until(
        lambda f: f.get("Event") == "QueueMemberStatus" and f["Status"] == "1"
    )
    assert key_events(frames) == key_events(trace.frames())
    statuses = [(f["MemberName"], f["Status"]) for f in frames if "MemberName" in f]
    assert statuses == [("张伟", "2"), ("张伟", "1")]
    assert not sim.model.channels
