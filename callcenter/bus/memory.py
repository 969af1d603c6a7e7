"""In-process event bus: for the embedded/dev mode and tests, one process only."""

from __future__ import annotations

import json
import re
from typing import ClassVar

from callcenter.bus.base import BusMessage, EventBus, Subscription


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """``*`` matches any text and everything else is literal, exactly like the Redis backend."""
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.DOTALL)


class _MemorySubscription(Subscription):
    def __init__(self, bus: MemoryBus, channels: tuple[str, ...], maxsize: int) -> None:
        super().__init__(bus, channels, maxsize)
        self._memory_bus = bus
        self._exact = frozenset(c for c in channels if "*" not in c)
        self._patterns = tuple(compile_pattern(c) for c in channels if "*" in c)

    def matches(self, channel: str) -> int:
        """How many of this subscription's channels/patterns match (Redis delivers per match)."""
        hits = sum(1 for pattern in self._patterns if pattern.fullmatch(channel))
        return hits + (channel in self._exact)

    async def _open(self) -> None:
        self._memory_bus._listeners.add(self)

    async def _close(self) -> None:
        self._memory_bus._listeners.discard(self)


class MemoryBus(EventBus):
    """Fan-out to per-subscriber queues; ``publish`` never waits for a slow subscriber."""

    name: ClassVar[str] = "memory"

    def __init__(self) -> None:
        super().__init__()
        self._listeners: set[_MemorySubscription] = set()

    def __repr__(self) -> str:
        return "<MemoryBus>"

    async def _start(self) -> None:
        pass

    async def _close(self) -> None:
        self._listeners.clear()

    async def _ping(self) -> None:
        pass

    async def _publish(self, channel: str, payload: bytes) -> None:
        for subscription in list(self._listeners):
            for _ in range(subscription.matches(channel)):
                # Decode per delivery: subscribers get their own dict, as over Redis.
                subscription._deliver(BusMessage(channel, json.loads(payload)))

    def _subscription(self, channels: tuple[str, ...], maxsize: int) -> Subscription:
        return _MemorySubscription(self, channels, maxsize)
