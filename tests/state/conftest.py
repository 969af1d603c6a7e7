"""Fixtures for live state: real traces through the real decoder and normalizer, a clock.

Traces are decoded chunk by chunk exactly as the socket returned them (``.jsonl``), so the
whole chain FrameDecoder → Normalizer → LiveState/CallRecorder runs on real Asterisk bytes.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from callcenter.ami.codec import Frame, FrameDecoder
from callcenter.ami.events import CallEvent
from callcenter.ami.normalize import Normalizer
from callcenter.regions.provinces import load_province, province_file
from callcenter.state import LiveState, Regions
from tests.ami.conftest import ALL_TRACES, Trace, load_trace

NODE = "js-node1"
START = 1_795_254_000.0  # the lab clock: 2026-11-21 (UTC), 17:40 in Asia/Shanghai


def trace_name(prefix: str) -> str:
    return next(n for n in ALL_TRACES if n.split("-")[0] == prefix)


def locate(number: str | None) -> str | None:
    """A stand-in for the routing package's geocoder: Jiaxing numbers of the traces."""
    if number and number.startswith(("0573", "1380573")):
        return "330400"
    return None


class Ticker:
    """A clock that moves one second per reading (events in the traces carry no Timestamp)."""

    def __init__(self, start: float = START, step: float = 1.0) -> None:
        self.now = start
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


@dataclass
class Traces:
    directory: Path

    def trace(self, prefix: str) -> Trace:
        return load_trace(self.directory, trace_name(prefix))

    def frames(self, prefix: str, conn: str = "ami1") -> list[Frame]:
        """Decoded with the original TCP chunking."""
        decoder = FrameDecoder()
        return [f for chunk in self.trace(prefix).recv_chunks(conn) for f in decoder.feed(chunk)]

    def events(self, prefix: str, node: str = NODE) -> list[CallEvent]:
        return normalize(self.frames(prefix), Normalizer(node))

    def action_ids(self, prefix: str, action: str) -> list[str]:
        """ActionIDs the platform used for ``action``, in order."""
        ids = []
        for message in self.trace(prefix).outgoing("ami1"):
            for frame in FrameDecoder().feed(message.data):
                if frame.get("Action") == action and frame.get("ActionID"):
                    ids.append(frame["ActionID"])
        return ids

    def list_items(self, prefix: str, action: str, occurrence: int = -1) -> list[dict[str, Any]]:
        """The event items answering one list action, as the AMI client hands them over."""
        action_id = self.action_ids(prefix, action)[occurrence]
        return [
            dict(f.fields)
            for f in self.frames(prefix)
            if f.get("ActionID") == action_id and f.get("Event")
        ]

    def frames_before(self, prefix: str, action: str, occurrence: int = -1) -> list[Frame]:
        """Every frame received before the response to that action."""
        action_id = self.action_ids(prefix, action)[occurrence]
        frames = self.frames(prefix)
        cut = next(i for i, f in enumerate(frames) if f.get("ActionID") == action_id)
        return frames[:cut]


def normalize(frames: list[Frame], normalizer: Normalizer) -> list[CallEvent]:
    return [e for f in frames for e in normalizer.feed(f)]


@pytest.fixture(scope="session")
def traces(shared_dir: Path) -> Traces:
    path = shared_dir / "asterisk-traces"
    if not path.is_dir():
        pytest.fail(f"trace directory {path} is missing (set CALLCENTER_SHARED_DIR)")
    return Traces(path)


@pytest.fixture(scope="session")
def regions() -> Regions:
    return Regions.from_province(load_province(province_file("330000")), locate=locate)


@pytest.fixture
def clock() -> Ticker:
    return Ticker()


@pytest.fixture
def live(regions: Regions, clock: Ticker) -> LiveState:
    return LiveState(regions, clock=clock)


async def feed(live: LiveState, events: list[CallEvent]) -> None:
    for event in events:
        await live.apply(event)


class TcpProxy:
    """A TCP relay that can be stopped and restarted on the same port: a real network outage."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(src, dst))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            dst.transport.abort()
            self._writers.discard(dst)


async def wait_for(condition: Any, timeout: float = 5.0) -> None:
    deadline = datetime.now() + timedelta(seconds=timeout)
    while not condition():
        assert datetime.now() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)
