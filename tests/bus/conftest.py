"""Fixtures for the event-bus tests: a started ``bus`` per backend and private redis-servers.

The contract suite uses the shared Redis (``CALLCENTER_TEST_REDIS_URL``, default
``redis://127.0.0.1:6379/0``) with a fresh channel prefix per test, so concurrent runs never
see each other's traffic.  Fault tests start their own ``redis-server`` so that killing it
cannot disturb anybody else.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from callcenter.bus import EventBus, MemoryBus, RedisBus

REDIS_URL = os.environ.get("CALLCENTER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
RUN_ID = uuid.uuid4().hex[:10]
_prefixes = itertools.count()


BusTasks = Callable[[], list[asyncio.Task[Any]]]


def _bus_tasks() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("event-bus") and not t.done()]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def redis_url() -> str:
    """The shared Redis used by the contract suite."""
    return REDIS_URL


@pytest.fixture
def prefix() -> str:
    """A channel prefix no other test (or concurrent run) uses."""
    return f"test-bus-{RUN_ID}-{next(_prefixes)}"


@pytest.fixture
def bus_tasks() -> BusTasks:
    """Lists the bus's background tasks still alive (listeners are named ``event-bus:...``)."""
    return _bus_tasks


@pytest.fixture
def closed_port() -> int:
    """A local TCP port nobody listens on (free a moment ago)."""
    return _free_port()


@pytest_asyncio.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def bus(request: pytest.FixtureRequest, prefix: str) -> AsyncIterator[EventBus]:
    """A started bus of each backend; closing it must leave no listener task behind."""
    instance: EventBus = MemoryBus() if request.param == "memory" else RedisBus(REDIS_URL, prefix)
    await instance.start()
    try:
        yield instance
    finally:
        await instance.close()
    assert _bus_tasks() == []


class RedisServer:
    """A throw-away ``redis-server`` on a fixed port that can be killed and started again."""

    def __init__(self, port: int, workdir: Path) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.logfile = workdir / f"redis-{port}.log"
        self._workdir = workdir
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 5.0) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed (needed by the Redis fault tests)")
        self._proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--logfile", str(self.logfile), "--dir", str(self._workdir)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while not self._answers_ping():
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                log = self.logfile.read_text(errors="replace") if self.logfile.exists() else ""
                pytest.fail(f"redis-server on port {self.port} did not start:\n{log[-2000:]}")
            time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL, like a crash: clients see their connections reset."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait(timeout=10)
            self._proc = None

    def pause(self) -> None:
        """SIGSTOP: connections stay open but nothing answers, like a hung server."""
        assert self._proc is not None
        self._proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self._proc is not None
        self._proc.send_signal(signal.SIGCONT)

    def _answers_ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A private, started redis-server; killed at teardown even if the test failed."""
    server = RedisServer(_free_port(), tmp_path)
    try:
        server.start()
        yield server
    finally:
        server.kill()
