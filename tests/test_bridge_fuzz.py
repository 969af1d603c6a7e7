"""The bridge's whole chain under hostile input: mutated real frames never crash it.

Frames from the real traces are mutated (fields dropped, values replaced with junk, CR/LF,
Chinese, huge numbers, frames repeated or reordered) and pushed through Normalizer → LiveState
→ CallRecorder on a real SQLite database; nothing may raise, and afterwards the chain still
follows a clean call correctly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from callcenter.ami.codec import Frame, FrameDecoder
from callcenter.ami.normalize import Normalizer
from callcenter.db.engine import make_engine, make_sessionmaker
from callcenter.db.models import Call
from callcenter.settings import Settings
from callcenter.state import CallRecorder, make_live_state
from tests.ami.conftest import load_trace

JUNK = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        ["", "-1", "99999999999999999999", "1795.0.0", "坏人\r\nEvent: Hangup", "\x00"]
    ),
)


def _frames(traces: Path, name: str) -> list[Frame]:
    trace = load_trace(traces, name)
    decoder = FrameDecoder()
    return [f for chunk in trace.recv_chunks("ami1") for f in decoder.feed(chunk)]


def _mutate(frame: Frame, data: st.DataObject) -> Frame:
    pairs = list(frame.items())
    for _ in range(data.draw(st.integers(0, 3))):
        if not pairs:
            break
        i = data.draw(st.integers(0, len(pairs) - 1))
        action = data.draw(st.sampled_from(["drop", "junk", "dup"]))
        if action == "drop" and pairs[i][0] != "Event":
            pairs.pop(i)
        elif action == "junk":
            pairs[i] = (pairs[i][0], data.draw(JUNK))
        else:
            pairs.insert(i, pairs[i])
    raw = b"".join(f"{k}: {v}\r\n".encode("utf-8", "surrogateescape") for k, v in pairs) + b"\r\n"
    decoded = FrameDecoder(expect_banner=False).feed(raw)
    return decoded[0] if decoded else frame


@pytest.mark.slow
def test_mutated_trace_frames_never_crash_the_bridge_chain(
    shared_dir: Path, make_settings: Callable[..., Settings], sqlite_url: str
) -> None:
    traces = shared_dir / "asterisk-traces"
    pool = [f for name in ("01-ivr-queue-answer-mixmonitor", "09-queue-overflow-city-to-province",
                           "12-odd-caller-names", "04c-atxfer-attended-transfer")
            for f in _frames(traces, name)]  # fmt: skip
    clean = _frames(traces, "01-ivr-queue-answer-mixmonitor")
    settings_ = make_settings(database_url=sqlite_url)

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        picks = data.draw(st.lists(st.integers(0, len(pool) - 1), min_size=20, max_size=120))
        frames = [_mutate(pool[i], data) for i in picks]
        asyncio.run(_chain(settings_, frames, clean))

    run()


async def _chain(settings_: Settings, frames: list[Frame], clean: list[Frame]) -> None:
    engine = make_engine(settings_.database_url)
    recorder = CallRecorder(make_sessionmaker(engine))
    live = make_live_state(settings_, None)
    await recorder.start()
    try:
        fuzzed = Normalizer("fuzz")
        for frame in frames:
            for event in fuzzed.feed(frame):
                await live.apply(event)
                recorder.handle(event)
        before = len(live.calls)
        sane = Normalizer("clean")  # the same process keeps following real calls correctly
        for frame in clean:
            for event in sane.feed(frame):
                await live.apply(event)
                recorder.handle(event)
        await recorder.flush(10.0)
        assert len(live.calls) == before  # the clean call came and went
        async with make_sessionmaker(engine)() as s:
            ours = select(func.count()).select_from(Call).where(Call.node == "clean")
            n = (await s.execute(ours)).scalar_one()
            done = (await s.execute(ours.where(Call.ended_at.is_not(None)))).scalar_one()
            assert n >= 1 and done == n
            await s.execute(Call.__table__.delete())
            await s.commit()
    finally:
        await recorder.close()
        await live.close()
        await engine.dispose()
