"""Test helpers for the simulator's wire: a raw AMI client and trace look-ups."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Iterable

from callcenter.ami.codec import Frame, FrameDecoder
from callcenter.ami.events import CallEvent
from callcenter.ami.normalize import Normalizer
from callcenter.pbxsim import messages as m
from callcenter.pbxsim.model import Fields
from tests.ami.conftest import Trace


class AmiClient:
    """A minimal test client: raw bytes out, decoded frames in."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.decoder = FrameDecoder()
        self.frames: list[Frame] = []
        self.chunks: list[bytes] = []

    @classmethod
    async def connect(cls, port: int) -> AmiClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        client = cls(reader, writer)
        while client.decoder.banner is None:
            await client._read(2.0)
        return client

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def _read(self, timeout: float) -> bytes:
        data = await asyncio.wait_for(self.reader.read(65536), timeout)
        self.chunks.append(data)
        self.frames += self.decoder.feed(data)
        return data

    async def next_frame(self, timeout: float = 2.0) -> Frame:
        while not self.frames:
            if not await self._read(timeout):
                raise EOFError
        return self.frames.pop(0)

    async def frames_until(self, last: Callable[[Frame], bool]) -> list[Frame]:
        out = [await self.next_frame()]
        while not last(out[-1]):
            out.append(await self.next_frame())
        return out

    async def at_eof(self, timeout: float = 2.0) -> bool:
        try:
            while await self._read(timeout):
                pass
        except (ConnectionError, TimeoutError):
            return False
        return True

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except ConnectionError:
            pass


def sent(trace: Trace, conn: str, needle: str) -> bytes:
    return next(msg.data for msg in trace.outgoing(conn) if needle.encode() in msg.data)


def answer(trace: Trace, conn: str, request: bytes) -> list[Frame]:
    """The frames Asterisk sent carrying the request's ActionID (its response and list items)."""
    action_id = FrameDecoder(expect_banner=False).feed(request)[0].get("ActionID")
    return [f for f in trace.frames(conn) if action_id and f.get("ActionID") == action_id]


def shape(frames: list[Frame]) -> list[tuple[str | None, tuple[str, ...]]]:
    return [(f.name, f.keys()) for f in frames]


async def login(client: AmiClient, trace: Trace, conn: str = "ami1") -> list[Frame]:
    await client.send(trace.outgoing(conn)[0].data)
    return await client.frames_until(lambda f: f.get("Event") == "SuccessfulAuth")


def frames_of(events: Iterable[Fields]) -> list[Frame]:
    decoder = FrameDecoder(expect_banner=False)
    return [f for e in events for f in decoder.feed(m.render(e))]


def normalize(frames: Iterable[Frame]) -> tuple[Normalizer, dict[str, list[CallEvent]]]:
    normalizer = Normalizer("sim")
    calls: dict[str, list[CallEvent]] = defaultdict(list)
    for frame in frames:
        for event in normalizer.feed(frame):
            if event.uniqueid is not None:
                calls[event.uniqueid].append(event)
    return normalizer, calls
