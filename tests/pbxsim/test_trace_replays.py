"""Every call scenario of ``shared/asterisk-traces`` replayed by the simulator, compared with
the trace's ``ami1`` connection message by message (see :mod:`tests.pbxsim.parity`).

The test plays the lab's platform: it logs in with the trace's own Login, and sends the
trace's own actions byte for byte (the replay names its channels like the trace) whenever the
replay reaches the point where the lab's platform acted.  Then:

* the simulator's messages have the trace's names, header keys in order and stable values,
  except the documented :data:`WAIVERS`;
* :class:`~callcenter.ami.normalize.Normalizer` reads both as the same normalized events.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from callcenter.ami.codec import Frame, FrameDecoder
from callcenter.ami.events import (
    CallAbandoned,
    CallAnswered,
    CallEnded,
    CallEvent,
    CallOffered,
    CallQueued,
    OriginateResult,
)
from callcenter.ami.normalize import Normalizer
from callcenter.pbxsim.replays import LAB_REPLAYS
from callcenter.pbxsim.scripted import LabReplay
from callcenter.pbxsim.simulator import PbxSimulator
from tests.ami.conftest import Trace, TraceLoader
from tests.ami.test_normalize_traces import (
    ENDED,
    IVR_1,
    SEAT_8001,
    Expected,
    assert_sequence,
    call_events,
    offered,
    queue_answer,
)
from tests.pbxsim.parity import (
    Waiver,
    action_ids,
    differences,
    expected_frames,
    platform_actions,
)
from tests.pbxsim.wire import AmiClient, login

SYNC = b"Action: Ping\r\nActionID: replay-sync\r\n\r\n"

QUEUE_STATISTICS = frozenset(
    {
        "Holdtime",
        "HoldTime",
        "TalkTime",
        "Completed",
        "Abandoned",
        "ServicelevelPerf",
        "ServicelevelPerf2",
    }
)

WAIVERS: dict[str, tuple[Waiver, ...]] = {
    "10": (
        Waiver(
            "QueueParams / QueueSummary carry legal-consult's statistics since the lab's Asterisk"
            " started (7 calls of the earlier traces completed, their average hold and talk"
            " time, the service level); the replay starts with a fresh queue.",
            keys=lambda f: (
                QUEUE_STATISTICS
                if f.get("Event") in ("QueueParams", "QueueSummary")
                else frozenset()
            ),
        ),
    ),
}
"""Per scenario: where the simulator knowingly differs from the lab, and why."""

INBOUND = ("from-trunk", "odd-callers")
"""Trace 12's callers come in through the lab's ``odd-callers`` context."""

NORMALIZED_VOLATILE = frozenset({"node", "uniqueid", "linkedid", "timestamp"})


@dataclasses.dataclass
class Replayed:
    trace: Trace
    frames: list[Frame]
    sim: PbxSimulator


async def read_answer(client: AmiClient, action: bytes) -> list[Frame]:
    """Everything up to the action's response, or up to its list's ``…Complete``."""
    action_id = FrameDecoder(expect_banner=False).feed(action)[0].get("ActionID")
    frames = [await client.next_frame()]
    while frames[-1].get("ActionID") != action_id or frames[-1].get("EventList") == "start":
        frames.append(await client.next_frame())
    return frames


async def replay(lab: LabReplay, trace: Trace) -> tuple[list[Frame], PbxSimulator]:
    """Run the replay, playing the platform with the trace's own actions at each turn."""
    sim = lab.simulator()
    await sim.start()
    client = await AmiClient.connect(sim.server.port)
    try:
        await login(client, trace)
        run = lab.start(sim)
        frames: list[Frame] = []
        for action in platform_actions(trace):
            at_turn = await run.next_turn()
            await client.send(action)
            frames += await read_answer(client, action)
            if at_turn:
                run.resume()
        await run.finished()
        await client.send(SYNC)
        frames += (await client.frames_until(lambda f: f.get("ActionID") == "replay-sync"))[:-1]
        return frames, sim
    finally:
        await client.close()
        await sim.stop()


@pytest_asyncio.fixture(params=sorted(LAB_REPLAYS))
async def replayed(request: pytest.FixtureRequest, traces: TraceLoader) -> AsyncIterator[Replayed]:
    lab = LAB_REPLAYS[request.param]
    trace = traces(lab.trace)
    frames, sim = await replay(lab, trace)
    yield Replayed(trace, frames, sim)


def prefix_of(trace: Trace) -> str:
    return trace.name.split("-")[0]


# --------------------------------------------------------------------------- the wire


async def test_same_messages_keys_and_stable_values(replayed: Replayed) -> None:
    waivers = WAIVERS.get(prefix_of(replayed.trace), ())
    expected = expected_frames(replayed.trace, waivers)
    problems = differences(replayed.frames, expected, waivers)
    assert not problems, "\n".join(problems[:40])


async def test_nothing_left_behind(replayed: Replayed) -> None:
    """Every channel of the replay hung up, every caller left its queue."""
    model = replayed.sim.model
    assert not model.channels
    assert all(not queue.entries for queue in model.queues.values())


# --------------------------------------------------------------------------- normalized


def normalized(frames: list[Frame], keep_originates: set[str]) -> list[dict[str, Any]]:
    """Normalized events as comparable dicts (type + fields, ids and times left out)."""
    normalizer = Normalizer("replay", inbound_contexts=INBOUND)
    events: list[CallEvent] = [e for f in frames for e in normalizer.feed(f)]
    out = []
    for event in events:
        if isinstance(event, OriginateResult) and event.action_id not in keep_originates:
            continue  # the lab generator's Originate that created the caller
        fields = {
            k: v for k, v in dataclasses.asdict(event).items() if k not in NORMALIZED_VOLATILE
        }
        out.append({"type": type(event).__name__, **fields})
    return out


async def test_normalizes_like_the_trace(replayed: Replayed) -> None:
    trace = replayed.trace
    own = action_ids(trace)
    mine = normalized(replayed.frames, own)
    real = normalized(trace.frames(), own)
    assert [e["type"] for e in mine] == [e["type"] for e in real]
    assert mine == real
    assert mine  # every scenario means something to the platform


# --------------------------------------------------------------------------- key facts

BLIND = {"kind": "blind", "via": "BlindTransfer", "target": "8003@transfer-targets"}
RING_WANG = ("AgentRinging", {"member_name": "王芳"})
KEY_FACTS: dict[str, Expected] = {
    "01": [offered("13805730001", "张三"), *IVR_1, ("RecordingStarted", {}),
           *queue_answer("legal-consult", "张伟", SEAT_8001), ENDED],
    "02": [offered("13905730002", "李四"), IVR_1[0], ("IvrLeft", {"selection": "2"}),
           ("CallQueued", {"queue": "legal-aid", "position": 1}),
           *[RING_WANG, ("AgentNoAnswer", {"ring_time_ms": 5000})] * 3, RING_WANG,
           ("CallAbandoned", {"queue": "legal-aid", "hold_time_s": 18, "final": True}), ENDED],
    "02b": [offered("02112348000", "王五"), IVR_1[0], ("IvrLeft", {"selection": "3"}),
            ("CallQueued", {"queue": "mediation"}),
            ("CallAbandoned", {"queue": "mediation", "hold_time_s": 12, "final": True}), ENDED],
    "02c": [offered("13705730003", "赵六"), IVR_1[0],
            ("IvrLeft", {"reason": "hangup", "selection": None}), ENDED],
    "04": [("CallOffered", {}), *IVR_1, ("RecordingStarted", {}),
           *queue_answer("legal-consult", "张伟", SEAT_8001),
           ("CallTransferred", {**BLIND, "via": "Redirect", "target": "12345@transfer-targets"}),
           ENDED],
    "04b": [("CallOffered", {}), *IVR_1, ("RecordingStarted", {}),
            *queue_answer("legal-consult", "李娜", "Local/8002@agent-phones/n"),
            ("CallTransferred", BLIND), ENDED],
    "04c": [("CallOffered", {}), *IVR_1, ("RecordingStarted", {}),
            *queue_answer("legal-consult", "张伟", SEAT_8001),
            ("CallHeld", {"channel": "Local/8001@agent-phones-00000012;1"}),
            ("CallTransferred", {**BLIND, "kind": "attended", "via": "AttendedTransfer"}), ENDED],
    "05": [],
    "05b": [],
    "08": [("CallOffered", {}), *IVR_1, ("RecordingStarted", {}),
           *queue_answer("legal-consult", "张伟", SEAT_8001), ENDED],
    "09": [offered("057312348000", "卫十四"), IVR_1[0], ("IvrLeft", {"selection": "4"}),
           ("CallQueued", {"queue": "city-330400"}),
           RING_WANG, ("AgentNoAnswer", {"ring_time_ms": 5000}),
           RING_WANG, ("AgentNoAnswer", {"ring_time_ms": 2000}),
           ("CallAbandoned", {"queue": "city-330400", "hold_time_s": 8, "final": False}),
           *queue_answer("province", "省中心-陈静", "Local/8004@agent-phones/n"), ENDED],
    "13": [("CallOffered", {"caller_name": "严十五"}), *IVR_1, ("RecordingStarted", {}),
           *queue_answer("legal-consult", "张伟", SEAT_8001), ENDED],
}  # fmt: skip
"""What the platform must learn from each replay (the style of ``test_normalize_traces``)."""


@pytest.mark.parametrize("prefix", sorted(KEY_FACTS))
async def test_key_facts(prefix: str, traces: TraceLoader) -> None:
    lab = LAB_REPLAYS[prefix]
    frames, _ = await replay(lab, traces(lab.trace))
    normalizer = Normalizer("replay", inbound_contexts=INBOUND)
    events = [e for f in frames for e in normalizer.feed(f)]
    assert_sequence(call_events(events), KEY_FACTS[prefix])
    originated = [e for e in events if isinstance(e, OriginateResult)]
    assert [(o.success, o.reason) for o in originated] == (
        [(True, "answered")] * {"05": 1, "05b": 1, "08": 2}.get(prefix, 0)
    )
    assert normalizer.stats.untracked == normalizer.stats.inconsistent == 0


async def test_key_facts_10_positions(traces: TraceLoader) -> None:
    lab = LAB_REPLAYS["10"]
    frames, _ = await replay(lab, traces(lab.trace))
    normalizer = Normalizer("replay")
    events = [e for f in frames for e in normalizer.feed(f)]
    queued = [(e.position, e.count) for e in events if isinstance(e, CallQueued)]
    assert queued == [(1, 1), (2, 2), (3, 3), (4, 4), (5, 5)]
    outcome = {
        e.uniqueid: type(e).__name__ for e in events if isinstance(e, CallAnswered | CallAbandoned)
    }
    callers = [e.uniqueid for e in events if isinstance(e, CallOffered)]
    assert [outcome[c] for c in callers] == ["CallAnswered"] * 4 + ["CallAbandoned"]
    [abandon] = [e for e in events if isinstance(e, CallAbandoned)]
    assert (abandon.original_position, abandon.hold_time_s, abandon.final) == (5, 23, True)


async def test_key_facts_12_untrusted_names(traces: TraceLoader) -> None:
    """The forged ``Hangup`` reaches the wire and is rejected; names arrive as clean text."""
    lab = LAB_REPLAYS["12"]
    frames, _ = await replay(lab, traces(lab.trace))
    assert any(f.get("Channel") == "Local/forged-00000000;2" for f in frames)
    normalizer = Normalizer("replay", inbound_contexts=INBOUND)
    events = [e for f in frames for e in normalizer.feed(f)]
    names = [e.caller_name for e in events if isinstance(e, CallOffered)]
    # the lab sets the name in the dialplan, after the call was offered (``Set`` is its first
    # step) -- except when the ``Newexten`` carrying it was dropped as tampered (the first)
    assert names == ["坏人\\r\\nEvent: FakeEvent\\r\\nX: y", None, None, None, None]
    for event in events:
        for value in dataclasses.asdict(event).values():
            assert not isinstance(value, str) or ("\r" not in value and "\n" not in value)
    assert (normalizer.stats.untracked, normalizer.stats.tampered) == (1, 1)
    assert sum(isinstance(e, CallEnded) for e in events) == 5
