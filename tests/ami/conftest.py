"""Readers for the real Asterisk traces in ``shared/asterisk-traces`` (see its README).

``NN-name.jsonl`` holds the exact TCP chunks, ``NN-name.txt`` the same bytes cut into messages.
The location comes from the ``shared_dir`` fixture (``CALLCENTER_SHARED_DIR`` or the repo's
sibling ``shared/``).
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

from callcenter.ami.codec import Frame, FrameDecoder

ALL_TRACES = (
    "01-ivr-queue-answer-mixmonitor",
    "02-queue-abandon-ringnoanswer",
    "02b-queue-abandon-no-members",
    "02c-ivr-hangup-before-choice",
    "03-agent-actions-queue-and-status",
    "04-redirect-blind-transfer-to-12345",
    "04b-blindtransfer-action-to-seat",
    "04c-atxfer-attended-transfer",
    "05-originate-callback-survey",
    "05b-originate-seat-first-click-to-call",
    "05c-originate-failures",
    "06-fastagi-ivr-to-queue",
    "06b-fastagi-caller-hangup",
    "07-ami-banner-login",
    "08-supervisor-chanspy",
    "09-queue-overflow-city-to-province",
    "10-queue-positions-five-callers",
    "11-reload-and-shutdown",
    "12-odd-caller-names",
    "13-variant-systemname-timestamp-chanvars",
)

_MARKER = re.compile(rb"^#@ t=\+([0-9.]+) conn=(\S+) (<<|>>) (\d+) bytes(.*)$")


@dataclass(frozen=True)
class TraceMessage:
    """One message of a ``.txt`` transcript: ``incoming`` means sent by Asterisk."""

    t: float
    conn: str
    incoming: bool
    data: bytes
    note: str


@dataclass(frozen=True)
class Trace:
    name: str
    chunks: tuple[tuple[str, str, bytes], ...]
    messages: tuple[TraceMessage, ...]

    def recv_chunks(self, conn: str) -> list[bytes]:
        """What the client socket ``conn`` read, chunk by chunk."""
        return [data for c, direction, data in self.chunks if c == conn and direction == "recv"]

    def sent_chunks(self, conn: str) -> list[bytes]:
        return [data for c, direction, data in self.chunks if c == conn and direction == "send"]

    def ami_connections(self) -> list[str]:
        """AMI client connections in order of first appearance (FastAGI ones left out)."""
        seen: dict[str, None] = {}
        for conn, _, _ in self.chunks:
            if not conn.startswith("agi"):
                seen.setdefault(conn)
        return list(seen)

    def incoming(self, conn: str) -> list[TraceMessage]:
        return [m for m in self.messages if m.conn == conn and m.incoming]

    def outgoing(self, conn: str) -> list[TraceMessage]:
        return [m for m in self.messages if m.conn == conn and not m.incoming]

    def frames(self, conn: str = "ami1") -> list[Frame]:
        """Frames of the whole stream, decoded in one go."""
        return FrameDecoder().feed(b"".join(self.recv_chunks(conn)))


def _read_chunks(path: Path) -> tuple[tuple[str, str, bytes], ...]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        obj = json.loads(line)
        if obj["dir"] in ("recv", "send"):
            rows.append((obj["conn"], obj["dir"], base64.b64decode(obj["b64"])))
    return tuple(rows)


def _read_messages(path: Path) -> tuple[TraceMessage, ...]:
    """Cut a transcript into messages: a ``#@`` marker line is followed by exactly N bytes."""
    data = path.read_bytes()
    out = []
    pos = 0
    while (start := data.find(b"#@ ", pos)) >= 0:
        end = data.index(b"\n", start)
        pos = end + 1
        marker = _MARKER.match(data[start:end])
        if marker is None:
            continue  # a "#@ ... note:" line
        size = int(marker.group(4))
        body = data[pos : pos + size]
        out.append(
            TraceMessage(
                t=float(marker.group(1)),
                conn=marker.group(2).decode(),
                incoming=marker.group(3) == b"<<",
                data=body,
                note=marker.group(5).decode().strip(),
            )
        )
        pos += size
    return tuple(out)


@cache
def load_trace(directory: Path, name: str) -> Trace:
    return Trace(
        name=name,
        chunks=_read_chunks(directory / f"{name}.jsonl"),
        messages=_read_messages(directory / f"{name}.txt"),
    )


@pytest.fixture(scope="session")
def traces_dir(shared_dir: Path) -> Path:
    path = shared_dir / "asterisk-traces"
    if not path.is_dir():
        pytest.fail(f"trace directory {path} is missing (set CALLCENTER_SHARED_DIR)")
    return path


@pytest.fixture(scope="session")
def trace_loader(traces_dir: Path) -> TraceLoader:
    return TraceLoader(traces_dir)


class TraceLoader:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def __call__(self, name: str) -> Trace:
        return load_trace(self.directory, name)
