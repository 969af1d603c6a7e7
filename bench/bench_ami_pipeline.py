"""AMI ingestion throughput: our decode + normalize against panoramisk's raw parse alone.

Both run in the same process on the same recorded stream: the ``ami1`` bytes of every real
trace in ``shared/asterisk-traces`` (the platform's connection), with their original TCP
chunking.  Each replay renames the Uniqueids/Linkedids so the normalizer sees new calls, as it
would in production (replaying identical ids would only exercise its duplicate filter).

Prints events/s for each stage, the ratio to the panoramisk baseline, and the resident memory
after each block of events (flat memory = no growth with call count).  Not a pass/fail test.

    .venv/bin/python bench/bench_ami_pipeline.py [--events 1000000]
"""

from __future__ import annotations

import argparse
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

from callcenter.ami.codec import FrameDecoder
from callcenter.ami.normalize import Normalizer

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


def memory_run(base: list[bytes], total_events: int, per_replay: int) -> None:
    """One long-lived decoder + normalizer over ``total_events``; print RSS as it goes."""
    decoder = FrameDecoder()
    normalizer = Normalizer("bench-mem")
    done, replay, next_report = 0, 0, 0
    print(f"\nmemory over {total_events:,} events (one long-lived decoder + normalizer):")
    print(f"  {'events':>10}  {'RSS MiB':>8}  {'open calls':>10}")
    while done < total_events:
        for chunk in renamed(base, replay):
            for frame in decoder.feed(chunk):
                normalizer.feed(frame)
                done += 1
        replay += 1
        if done >= next_report:
            print(f"  {done:>10,}  {rss_mib():>8.1f}  {normalizer.active_calls:>10}")
            next_report += total_events // 10
    print(f"  {done:>10,}  {rss_mib():>8.1f}  {normalizer.active_calls:>10}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replays", type=int, default=40, help="replays of the stream per run")
    parser.add_argument("--events", type=int, default=1_000_000, help="events for the memory run")
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # trace 12's hostile frames are logged on every replay
    if not TRACES.is_dir():
        print(f"traces not found at {TRACES} (set CALLCENTER_SHARED_DIR)", file=sys.stderr)
        return 2
    base = recorded_chunks()
    streams = [renamed(base, i) for i in range(args.replays)]
    size = sum(len(c) for s in streams for c in s)
    print(f"stream: {len(base)} chunks per replay x {args.replays} replays, {size / 2**20:.1f} MiB")
    rows = [
        ("panoramisk 1.4 raw parse (baseline)", run_panoramisk),
        ("our decode (FrameDecoder)", run_decode),
        ("our decode + normalize", run_normalize),
    ]
    base_rate = None
    print(f"\n{'stage':<40} {'frames':>9} {'seconds':>8} {'frames/s':>10} {'x baseline':>10}")
    for label, fn in rows:
        n, secs = timed(fn, streams)
        rate = n / secs
        base_rate = base_rate or secs
        print(f"{label:<40} {n:>9,} {secs:>8.3f} {rate:>10,.0f} {secs / base_rate:>10.2f}")
    print("(panoramisk counts only events it dispatches; ours counts every frame)")
    memory_run(base, args.events, len(base))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
