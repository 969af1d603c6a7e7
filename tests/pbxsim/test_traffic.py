"""The call generator: deterministic under a seed, fast, and normalizing into sane calls."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
import wave
from pathlib import Path

import phonenumbers
import pytest
from phonenumbers import geocoder

from callcenter.ami.codec import Frame
from callcenter.ami.events import (
    CallAbandoned,
    CallAnswered,
    CallEnded,
    CallOffered,
    CallQueued,
)
from callcenter.pbxsim import messages as m
from callcenter.pbxsim.callers import make_caller
from callcenter.pbxsim.model import Channel, Fields, Member, Queue, QueueEntry
from callcenter.pbxsim.province import SeatPlan, province_model
from callcenter.pbxsim.queueing import SeatBoard
from callcenter.pbxsim.simulator import PbxSimulator
from callcenter.pbxsim.steps import EventOptions
from callcenter.pbxsim.workload import TrafficConfig
from callcenter.regions.provinces import load_province, province_file
from tests.ami.conftest import TraceLoader
from tests.pbxsim.wire import AmiClient, frames_of, login, normalize

PROVINCE = load_province(province_file("330000"))
START = 1795254000.0


def busy_config(**changes: object) -> TrafficConfig:
    """Five simulated minutes of a busy province: overflows, abandons and answers."""
    base: dict[str, object] = {
        "seed": 7,
        "speed": None,
        "start": START,
        "calls_per_hour": 90.0,
        "arrivals_for_s": 300.0,
        "talk_s": (40.0, 200.0),
        "patience_s": (30.0, 150.0),
        "city_timeout_s": 25.0,
    }
    base.update(changes)
    return TrafficConfig(**base)  # type: ignore[arg-type]


async def run(config: TrafficConfig, **kwargs: object) -> tuple[PbxSimulator, list[Fields]]:
    plan = SeatPlan(seats_per_city=1, province_seats=2, wrapup_s=5)
    sim = PbxSimulator(model=province_model(PROVINCE, plan), traffic=config, **kwargs)  # type: ignore[arg-type]
    events: list[Fields] = []
    sim.server.listeners.append(events.append)
    await sim.start()
    try:
        assert sim.traffic is not None
        await asyncio.wait_for(sim.traffic.wait_finished(), 20)
    finally:
        await sim.stop()
    return sim, events


# --------------------------------------------------------------------------- determinism, speed


async def test_same_seed_same_event_sequence() -> None:
    _, first = await run(busy_config())
    await asyncio.sleep(1.01 - time.time() % 1)  # a new wall-clock second: no wall time leaks in
    _, second = await run(busy_config())
    assert len(first) > 1000
    assert [m.render(e) for e in first] == [m.render(e) for e in second]
    _, other = await run(busy_config(seed=8))
    assert [m.render(e) for e in other] != [m.render(e) for e in first]


async def test_five_simulated_minutes_take_under_three_seconds() -> None:
    began = time.monotonic()
    sim, _ = await run(busy_config())
    assert time.monotonic() - began < 3.0
    total = sim.stats.total()
    assert total.offered > 50
    assert total.answered > 0 and total.abandoned > 0 and total.overflowed > 0
    assert not sim.model.channels, "every channel hung up at the end"
    assert all(not q.entries for q in sim.model.queues.values())


async def test_paced_clock_follows_the_speed_factor() -> None:
    """speed=100: the simulated span of the run passes 100 times faster in real time."""
    config = busy_config(
        speed=100.0, arrivals_for_s=30.0, talk_s=(2.0, 5.0), patience_s=(5.0, 10.0)
    )
    began = time.monotonic()
    sim, _ = await run(config)
    elapsed = time.monotonic() - began
    span = sim.clock.now() - START
    assert span >= 30.0
    assert span / 100.0 * 0.9 <= elapsed <= span / 100.0 + 1.0


# --------------------------------------------------------------------------- normalized calls


async def test_generated_calls_normalize_into_sane_calls() -> None:
    sim, events = await run(busy_config())
    normalizer, calls = normalize(frames_of(events))
    assert normalizer.stats.untracked == normalizer.stats.inconsistent == 0
    assert normalizer.active_calls == 0
    assert len(calls) == sim.stats.total().offered
    for history in calls.values():
        kinds = [type(e).__name__ for e in history]
        assert kinds[0] == "CallOffered" and kinds[-1] == "CallEnded", kinds
        if "CallAnswered" in kinds:
            assert kinds.index("CallQueued") < kinds.index("CallAnswered")
        finals = [e for e in history if isinstance(e, CallAbandoned) and e.final]
        assert len(finals) <= 1
        if finals:
            assert "CallAnswered" not in kinds
    answered = sum(any(isinstance(e, CallAnswered) for e in h) for h in calls.values())
    assert answered == sim.stats.total().answered


async def test_overflow_is_a_non_final_abandon_then_the_province_queue() -> None:
    sim, events = await run(busy_config())
    _, calls = normalize(frames_of(events))
    overflowed = 0
    for history in calls.values():
        queued = [e for e in history if isinstance(e, (CallQueued, CallAbandoned))]
        for before, after in itertools.pairwise(queued):
            if isinstance(before, CallAbandoned) and not before.final:
                overflowed += 1
                assert before.queue.startswith("city-")
                assert isinstance(after, CallQueued) and after.queue == "province"
    assert overflowed == sim.stats.total().overflowed > 0


async def test_overflow_sequence_matches_trace_09(traces: TraceLoader) -> None:
    """From the city QueueCallerJoin to the province one: the events of trace 09, in order."""
    names = {"QueueCallerJoin", "QueueCallerAbandon", "QueueCallerLeave", "Newexten"}

    def overflow_part(frames: list[Frame], channel: str) -> list[str]:
        mine = [f for f in frames if f.get("Channel") == channel and f["Event"] in names]
        joins = [i for i, f in enumerate(mine) if f["Event"] == "QueueCallerJoin"]
        return [
            f"{f['Event']}:{f.get('Application', f.get('Queue', ''))}"
            for f in mine[joins[0] : joins[1] + 1]
        ]

    real = overflow_part(
        traces("09-queue-overflow-city-to-province").frames(), "Local/12348@from-trunk-00000025;2"
    )
    _, events = await run(busy_config())
    frames = frames_of(events)
    abandon = next(
        f
        for f in frames
        if f.get("Event") == "QueueCallerAbandon" and f["Queue"].startswith("city-")
    )
    ours = overflow_part(frames, abandon["Channel"])
    strip = [name.split(":")[0] for name in ours]
    assert strip == [name.split(":")[0] for name in real]
    assert ours[-1] == "QueueCallerJoin:province" and real[-1] == "QueueCallerJoin:province"


async def test_caller_numbers_geocode_to_their_city() -> None:
    _, events = await run(busy_config())
    offered = [
        e for h in normalize(frames_of(events))[1].values() for e in h if isinstance(e, CallOffered)
    ]
    queue_of = {
        f["Uniqueid"]: f["Queue"]
        for f in frames_of(events)
        if f.get("Event") == "QueueCallerJoin" and f["Queue"].startswith("city-")
    }
    names = {c.code: c.name for c in PROVINCE.cities}
    checked = 0
    for call in offered:
        assert call.caller_name and call.caller_number and call.context == "from-trunk"
        where = geocoder.description_for_number(phonenumbers.parse(call.caller_number, "CN"), "zh")
        queue = queue_of.get(call.uniqueid or "")
        if queue and where.startswith("浙江省"):
            assert where == "浙江省" + names[queue.removeprefix("city-")]
            checked += 1
    assert checked > len(offered) // 2


@pytest.mark.parametrize("city", [c.code for c in PROVINCE.cities])
def test_made_up_numbers_belong_to_the_city(city: str) -> None:
    entry = next(c for c in PROVINCE.cities if c.code == city)
    rng = random.Random(city)
    for _ in range(60):
        who = make_caller(rng, city, entry.area_code, other_province_share=0.2, landline_share=0.3)
        number = phonenumbers.parse(who.number, "CN")
        assert phonenumbers.is_valid_number(number), who
        where = geocoder.description_for_number(number, "zh")
        if who.home_city is None:
            assert where and not where.startswith("浙江"), who
        else:
            assert where == "浙江省" + entry.name, who


# --------------------------------------------------------------------------- recordings


async def test_answered_calls_leave_readable_wav_files(tmp_path: Path, shared_dir: Path) -> None:
    config = busy_config(arrivals_for_s=120.0)
    _, events = await run(
        config,
        recordings_dir=tmp_path,
        audio_dir=shared_dir / "audio",
        options=EventOptions(varset=True),
    )
    frames = frames_of(events)
    connected = {f["Uniqueid"] for f in frames if f.get("Event") == "AgentConnect"}
    files = {p.stem: p for p in tmp_path.glob("*.wav")}
    assert connected and set(files) == connected
    for path in files.values():
        with wave.open(str(path), "rb") as wav:
            assert wav.getnchannels() == 1 and wav.getsampwidth() == 2
            assert wav.getframerate() in (8000, 16000) and wav.getnframes() > 0
    announced = {
        f["Uniqueid"]: f["Value"]
        for f in frames
        if f.get("Event") == "VarSet" and f["Variable"] == "MIXMONITOR_FILENAME"
    }
    for uniqueid in connected:
        assert announced[uniqueid] == str(tmp_path / f"{uniqueid}.wav")


# --------------------------------------------------------------------------- ring strategy


def seats(strategy: str) -> tuple[Queue, list[Member]]:
    members = [Member("q", f"seat{i}", f"Local/800{i}@agent-phones/n") for i in range(3)]
    return Queue("q", strategy=strategy, members=members), members


def caller_in(queue: Queue) -> Channel:
    channel = Channel("PJSIP/trunk-1", "1.1", "1.1", "from-trunk", "12348")
    queue.entries.append(QueueEntry(channel, 0.0))
    return channel


def test_rrmemory_rings_round_the_members() -> None:
    queue, members = seats("rrmemory")
    board, caller = SeatBoard(), caller_in(queue)
    picked = [board.pick(queue, caller, 0.0) for _ in range(4)]
    assert picked == [members[0], members[1], members[2], members[0]]
    members[1].paused = True
    assert [board.pick(queue, caller, 0.0) for _ in range(2)] == [members[2], members[0]]


def test_leastrecent_rings_the_longest_idle_member() -> None:
    queue, members = seats("leastrecent")
    members[0].last_call, members[1].last_call, members[2].last_call = 300, 100, 200
    board, caller = SeatBoard(), caller_in(queue)
    assert board.pick(queue, caller, 0.0) is members[1]
    members[1].status = 2  # ringing elsewhere
    assert board.pick(queue, caller, 0.0) is members[2]
    board.start_wrapup(members[2], 0.0)
    members[2].wrapuptime = 0
    assert board.pick(queue, caller, 0.0) is members[2]


def test_only_as_many_callers_ring_as_seats_are_free() -> None:
    queue, members = seats("rrmemory")
    first = caller_in(queue)
    second = caller_in(queue)
    members[0].status = members[1].status = 2
    assert board_pick(queue, second) is None
    assert board_pick(queue, first) is members[2]


def board_pick(queue: Queue, caller: Channel) -> Member | None:
    return SeatBoard().pick(queue, caller, 0.0)


# --------------------------------------------------------------------------- over TCP


async def test_generated_traffic_over_tcp_normalizes(traces: TraceLoader) -> None:
    config = busy_config(speed=400.0, arrivals_for_s=60.0, talk_s=(10.0, 30.0))
    plan = SeatPlan(seats_per_city=1, province_seats=2)
    sim = PbxSimulator(model=province_model(PROVINCE, plan), traffic=config)
    await sim.start()
    client = await AmiClient.connect(sim.server.port)
    try:
        await login(client, traces("01-ivr-queue-answer-mixmonitor"))
        assert sim.traffic is not None
        await asyncio.wait_for(sim.traffic.wait_finished(), 10)
        frames = []
        while True:
            try:
                frames.append(await client.next_frame(timeout=0.3))
            except TimeoutError:
                break
    finally:
        await client.close()
        await sim.stop()
    normalizer, calls = normalize(frames)
    assert client.decoder.error_count == 0
    assert normalizer.stats.untracked == normalizer.stats.inconsistent == 0
    ended = sum(any(isinstance(e, CallEnded) for e in h) for h in calls.values())
    assert ended == len(calls) == sim.stats.total().offered > 0


async def test_given_callers_not_started_then_nothing_happens_until_start_callers() -> None:
    """A bridge can log in first: no call lives and dies before anyone watches."""
    config = TrafficConfig(seed=5, speed=None, calls_per_hour=3600.0, max_calls=3, start=START)
    sim = PbxSimulator(model=province_model(PROVINCE), traffic=config)
    await sim.start(callers=False)
    try:
        await asyncio.sleep(0.2)
        assert sim.stats.total().offered == 0 and sim.clock.now() == START
        sim.start_callers()
        sim.start_callers()  # idempotent: one generator, not two
        assert sim.traffic is not None
        await asyncio.wait_for(sim.traffic.wait_finished(), 30)
        assert sim.stats.total().offered == 3
    finally:
        await sim.stop()


async def test_given_stopping_the_callers_hangs_then_the_ami_port_is_still_closed() -> None:
    """Shutdown bounds each step; an interrupted stop must not leave the listener open."""
    sim = PbxSimulator(model=province_model(PROVINCE))
    port = await sim.start()

    async def hang() -> None:
        await asyncio.Event().wait()

    sim.clock.stop = hang  # type: ignore[method-assign]
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await sim.stop()
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)
