"""AMI ingestion throughput: decode, normalize and live state against panoramisk's raw parse.

All stages run in the same process on the same recorded stream: the ``ami1`` bytes of every
real trace in ``shared/asterisk-traces`` (the platform's connection), with their original TCP
chunking.  Each replay renames the Uniqueids/Linkedids so the normalizer sees new calls, as it
would in production (replaying identical ids would only exercise its duplicate filter).

The last stage is the production event path of :mod:`callcenter.telephony` minus the network
and the database: every frame goes through ``Normalizer.feed`` and every event is awaited
through ``LiveState.apply`` (lock, tracker, ``MemoryLiveStore`` write; no bus) inside one
asyncio event loop, one coroutine call per frame as ``Telephony._on_event`` does.

Prints frames/s for each stage, the ratio of its time to the panoramisk baseline, and the
resident memory after each block of events of one long-lived pipeline, with the growth per
100,000 events after the warm-up.  The warm-up is the time the bounded memories take to fill
on this stream: the normalizer's 4,096 ended Uniqueids (~115 a replay of ~4,040 frames: about
150,000 events) and 4,096 dedupe keys (~28 originate results a replay: about 590,000), the
tracker's 2,048 ended calls (19 a replay: about 440,000).  After that nothing may grow.  Not a
pass/fail test.

    .venv/bin/python bench/bench_ami_pipeline.py [--events 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import json
import logging
import os
import re
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from panoramisk.ami_protocol import AMIProtocol

from callcenter.ami.codec import Frame, FrameDecoder
from callcenter.ami.normalize import Normalizer
from callcenter.regions.provinces import load_province, province_file
from callcenter.state import LiveState, MemoryLiveStore, Regions

REPO = Path(__file__).resolve().parents[1]
TRACES = Path(os.environ.get("CALLCENTER_SHARED_DIR", REPO.parent / "shared")) / "asterisk-traces"
_UID = re.compile(rb"(?<![\d.])(1795\d{6}\.\d+)")


def recorded_chunks() -> list[bytes]:
    """The ami1 receive chunks of all traces (banner kept only once, at the start)."""
    chunks: list[bytes] = []
    for path in sorted(TRACES.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            rec = json.loads(line)
            if rec.get("conn") == "ami1" and rec.get("dir") == "recv":
                data = base64.b64decode(rec["b64"])
                if data.startswith(b"Asterisk Call Manager/") and chunks:
                    data = data.split(b"\r\n", 1)[1]
                if data:
                    chunks.append(data)
    return chunks


def renamed(chunks: list[bytes], replay: int) -> list[bytes]:
    prefix = b"r%d-" % replay
    return [_UID.sub(lambda m: prefix + m.group(1), c) for c in chunks]


def count_events(chunks: list[bytes]) -> int:
    return sum(len(FrameDecoder(expect_banner=False).feed(b"".join(chunks[1:]))) for _ in (0,))


class _Sink:
    """The minimal 'factory' panoramisk's protocol needs to dispatch events."""

    def __init__(self) -> None:
        self.events = 0
        self.crashes = 0

    def dispatch(self, _message: Any) -> None:
        self.events += 1

    def connection_lost(self, _exc: Any) -> None:
        """Trace 11 ends with ``Event: Shutdown``, which panoramisk treats as a disconnect."""


def run_panoramisk(streams: list[list[bytes]]) -> int:
    proto = AMIProtocol()
    proto.connection_made(_NullTransport())
    sink = _Sink()
    proto.factory = sink
    proto.encoding = "utf8"
    for chunks in streams:
        for chunk in chunks:
            proto.closed = False
            try:
                proto.data_received(chunk)
            except (AttributeError, KeyError):  # trace 12's forged frames crash panoramisk
                sink.crashes += 1
    return sink.events


class _NullTransport:
    def write(self, _data: bytes) -> None:
        pass

    def close(self) -> None:
        pass


def run_decode(streams: list[list[bytes]]) -> int:
    decoder = FrameDecoder()
    n = 0
    for chunks in streams:
        for chunk in chunks:
            n += len(decoder.feed(chunk))
    return n


def run_normalize(streams: list[list[bytes]]) -> int:
    decoder = FrameDecoder()
    normalizer = Normalizer("bench")
    n = 0
    for chunks in streams:
        for chunk in chunks:
            for frame in decoder.feed(chunk):
                normalizer.feed(frame)
                n += 1
    return n


class _Pipeline:
    """Decoder, normalizer and live state of one node, wired as ``Telephony._on_event``."""

    def __init__(self, node: str, regions: Regions) -> None:
        self.decoder = FrameDecoder()
        self.normalizer = Normalizer(node)
        self.live = LiveState(regions, store=MemoryLiveStore(), bus=None)

    async def on_frame(self, frame: Frame) -> None:
        for event in self.normalizer.feed(frame):
            await self.live.apply(event)

    async def feed(self, chunk: bytes) -> int:
        frames = self.decoder.feed(chunk)
        for frame in frames:
            await self.on_frame(frame)
        return len(frames)


def province_regions() -> Regions:
    return Regions.from_province(load_province(province_file("330000")))


def run_live(streams: list[list[bytes]]) -> int:
    async def drive() -> int:
        pipeline = _Pipeline("bench", province_regions())
        n = 0
        for chunks in streams:
            for chunk in chunks:
                n += await pipeline.feed(chunk)
        return n

    return asyncio.run(drive())


def timed(fn: Callable[[list[list[bytes]]], int], streams: list[list[bytes]]) -> tuple[int, float]:
    gc.collect()
    best = float("inf")
    n = 0
    for _ in range(3):
        start = time.perf_counter()
        n = fn(streams)
        best = min(best, time.perf_counter() - start)
    return n, best


def rss_mib() -> float:
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * resource.getpagesize() / 2**20


MemoryRow = tuple[int, float, int, int, int]
"""events, RSS MiB, allocated blocks, open calls (normalizer), live calls (live state)"""


def memory_run(base: list[bytes], total_events: int) -> list[MemoryRow]:
    """One long-lived pipeline (decoder, normalizer, live state) over ``total_events``.

    Run first, in a fresh heap: memory freed by earlier stages would hide growth from RSS.
    Besides RSS it records Python's allocated blocks, which allocator reuse cannot hide.
    """

    async def drive() -> list[MemoryRow]:
        pipeline = _Pipeline("bench-mem", province_regions())
        rows: list[MemoryRow] = []
        done, replay, next_report = 0, 0, 0
        while done < total_events:
            for chunk in renamed(base, replay):
                done += await pipeline.feed(chunk)
            replay += 1
            if done >= next_report or done >= total_events:
                gc.collect()
                open_calls = pipeline.normalizer.active_calls
                live_calls = len(pipeline.live.calls)
                rows.append((done, rss_mib(), sys.getallocatedblocks(), open_calls, live_calls))
                next_report += total_events // 10
        return rows

    return asyncio.run(drive())


def print_memory(rows: list[MemoryRow], warmup: int) -> None:
    """The table, and the growth per 100,000 events after ``warmup`` (least squares)."""
    print(
        f"\nmemory over {rows[-1][0]:,} events (one long-lived decoder + normalizer + live state):"
    )
    print(
        f"  {'events':>10}  {'RSS MiB':>8}  {'delta':>6}  {'blocks':>9}  {'delta':>7}"
        f"  {'open calls':>10}  {'live calls':>10}"
    )
    prev_rss, prev_blocks = rows[0][1], rows[0][2]
    for done, rss, blocks, open_calls, live_calls in rows:
        print(
            f"  {done:>10,}  {rss:>8.1f}  {rss - prev_rss:>+6.1f}  {blocks:>9,}"
            f"  {blocks - prev_blocks:>+7,}  {open_calls:>10}  {live_calls:>10}"
        )
        prev_rss, prev_blocks = rss, blocks
    late = [row for row in rows if row[0] >= warmup]
    if len(late) < 2:
        return
    rss_slope = _slope([(row[0], row[1]) for row in late]) * 100_000
    block_slope = _slope([(row[0], float(row[2])) for row in late]) * 100_000
    print(
        f"  growth after {warmup:,} events (warm-up): {rss_slope:+.3f} MiB RSS and"
        f" {block_slope:+,.0f} blocks per 100,000 events"
    )


def _slope(points: list[tuple[int, float]]) -> float:
    """Least-squares slope of ``y`` over ``x``."""
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    var = sum((x - mean_x) ** 2 for x, _ in points)
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / var if var else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replays", type=int, default=40, help="replays of the stream per run")
    parser.add_argument("--events", type=int, default=1_000_000, help="events for the memory run")
    parser.add_argument(
        "--warmup", type=int, default=600_000, help="events before growth is measured"
    )
    parser.add_argument("--no-memory", action="store_true", help="skip the memory run")
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # trace 12's hostile frames are logged on every replay
    if not TRACES.is_dir():
        print(f"traces not found at {TRACES} (set CALLCENTER_SHARED_DIR)", file=sys.stderr)
        return 2
    base = recorded_chunks()
    memory = memory_run(base, args.events) if not args.no_memory else []
    streams = [renamed(base, i) for i in range(args.replays)]
    size = sum(len(c) for s in streams for c in s)
    print(f"stream: {len(base)} chunks per replay x {args.replays} replays, {size / 2**20:.1f} MiB")
    rows = [
        ("panoramisk 1.4 raw parse (baseline)", run_panoramisk),
        ("our decode (FrameDecoder)", run_decode),
        ("our decode + normalize", run_normalize),
        ("our decode + normalize + live state", run_live),
    ]
    base_secs = None
    rate = ratio = 0.0
    print(f"\n{'stage':<40} {'frames':>9} {'seconds':>8} {'frames/s':>10} {'x baseline':>10}")
    for label, fn in rows:
        n, secs = timed(fn, streams)
        rate = n / secs
        base_secs = base_secs or secs
        ratio = secs / base_secs
        print(f"{label:<40} {n:>9,} {secs:>8.3f} {rate:>10,.0f} {ratio:>10.2f}")
    print("(panoramisk counts only events it dispatches; ours counts every frame;")
    print(" x baseline is the time for the same stream divided by panoramisk's)")
    print(f"goal for the whole pipeline: >= 20,000 frames/s ({rate:,.0f}), <= 3x ({ratio:.2f}x)")
    if memory:
        print_memory(memory, args.warmup)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
