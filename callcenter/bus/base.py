"""The publish/subscribe interface shared by the in-process and the Redis event bus.

The bus carries *live* fan-out (wallboards, agent and queue state).  Delivery is best effort: a
slow subscriber or a Redis outage loses messages, and anything that must not be lost goes
through the database instead.  What the bus does promise is per-channel order and that
subscribers keep working across a Redis restart.
"""

from __future__ import annotations

import asyncio
import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ClassVar, Final, Literal, Self

logger = logging.getLogger(__name__)

MAX_CHANNEL_LENGTH: Final = 200
DEFAULT_MAXSIZE: Final = 1000
_DROP_LOG_EVERY: Final = 1000


class BusError(Exception):
    """Base class of every error raised by the event bus."""


class BusUnavailable(BusError):
    """The backend cannot be used right now; ``str()`` is one line naming it and the cause."""


class BusClosed(BusError):
    """The bus or the subscription has been closed."""


@dataclass(frozen=True, slots=True)
class BusMessage:
    """One delivered message: the concrete channel (never the pattern) and the decoded JSON."""

    channel: str
    data: dict[str, Any]


def validate_channel(channel: str, *, pattern_ok: bool = False) -> str:
    """Reject names that would be ambiguous on the wire or in logs (``ValueError``)."""
    if not isinstance(channel, str):
        raise TypeError(f"event bus channel must be a str, not {type(channel).__name__}")
    if not channel:
        raise ValueError("event bus channel must not be empty")
    if len(channel) > MAX_CHANNEL_LENGTH:
        raise ValueError(
            f"event bus channel is {len(channel)} characters long, the limit is "
            f"{MAX_CHANNEL_LENGTH}: {channel[:40]!r}..."
        )
    if any(ch.isspace() or not ch.isprintable() for ch in channel):
        raise ValueError(
            f"event bus channel {channel!r} must not contain whitespace or control characters"
        )
    if not pattern_ok and "*" in channel:
        raise ValueError(
            f"cannot publish to {channel!r}: '*' is only allowed in subscription patterns"
        )
    return channel


def encode_payload(data: Mapping[str, Any]) -> bytes:
    """Encode once, before anything is sent, so a bad payload never half-reaches subscribers.

    Both backends go through this, so they accept and reject exactly the same payloads (strict
    JSON: no NaN/Infinity, no unpaired surrogates, a JSON object at the top level).
    """
    if not isinstance(data, Mapping):
        raise BusError(f"event bus payload must be a mapping, not {type(data).__name__}")
    try:
        text = json.dumps(dict(data), ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise BusError(f"event bus payload is not valid UTF-8 text: {exc.reason}") from exc
    except (TypeError, ValueError) as exc:
        raise BusError(f"event bus payload is not JSON-serialisable: {exc}") from exc


class Subscription(ABC):
    """Messages for some channels and ``*`` patterns, buffered in a bounded queue.

    ``async with bus.subscribe("calls.330400", "agents.*") as sub: async for msg in sub: ...``

    When the queue is full the *oldest* message is dropped (and counted in ``dropped``): a
    wallboard wants the latest state, and a slow consumer must never slow down the publisher.
    A message matching several of the channels/patterns is delivered once per match, as Redis
    does.  Leaving the ``async with`` block (or closing the bus) ends the iteration and discards
    anything still buffered.
    """

    def __init__(self, bus: EventBus, channels: tuple[str, ...], maxsize: int) -> None:
        self.channels = channels
        self.maxsize = maxsize
        self.dropped = 0
        self._bus = bus
        # Unbounded on purpose: the bound is enforced in _deliver, so the end marker always fits.
        self._queue: asyncio.Queue[BusMessage | None] = asyncio.Queue()
        self._state: Literal["new", "open", "closed"] = "new"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {' '.join(self.channels)} {self._state}>"

    async def open(self) -> Self:
        """Start receiving; returns once messages published from now on will be delivered."""
        if self._state != "new":
            raise RuntimeError("a subscription can only be opened once")
        self._bus._check_usable()
        self._state = "open"
        self._bus._subscriptions.add(self)
        try:
            await self._open()
        except BaseException:
            await self.aclose()
            raise
        return self

    async def aclose(self) -> None:
        """Unsubscribe, free the resources and end the iteration; idempotent."""
        if self._state == "closed":
            return
        was_open = self._state == "open"
        self._state = "closed"
        self._bus._subscriptions.discard(self)
        try:
            if was_open:
                await self._close()
        finally:
            while not self._queue.empty():
                self._queue.get_nowait()
            self._queue.put_nowait(None)

    async def get(self, timeout: float | None = None) -> BusMessage:
        """Next message; ``TimeoutError`` after ``timeout`` seconds, ``BusClosed`` once closed."""
        if self._state == "new":
            raise RuntimeError("enter the subscription first: `async with bus.subscribe(...)`")
        async with asyncio.timeout(timeout):
            item = await self._queue.get()
        if item is None:
            self._queue.put_nowait(None)  # keep the end marker for the next reader
            raise BusClosed("event bus subscription is closed")
        return item

    async def __aenter__(self) -> Self:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> BusMessage:
        try:
            return await self.get()
        except BusClosed:
            raise StopAsyncIteration from None

    def _deliver(self, message: BusMessage) -> None:
        """Queue without ever blocking the caller: drop the oldest message when full."""
        if self._state != "open":
            return
        if self._queue.qsize() >= self.maxsize:
            self._queue.get_nowait()
            self.dropped += 1
            if self.dropped % _DROP_LOG_EVERY == 1:
                logger.warning(
                    "event bus: slow subscriber %r, %d message(s) dropped so far",
                    self,
                    self.dropped,
                )
        self._queue.put_nowait(message)

    @abstractmethod
    async def _open(self) -> None:
        """Backend hook: start delivery; raise ``BusUnavailable`` if that is impossible."""

    @abstractmethod
    async def _close(self) -> None:
        """Backend hook: stop delivery and free resources; must not raise."""


class EventBus(ABC):
    """Publish/subscribe with one interface for every backend.

    ``start()`` before use and ``close()`` at shutdown (or ``async with bus:``).  Not thread-safe:
    use it from one event loop.
    """

    name: ClassVar[str]

    def __init__(self) -> None:
        self._started = False
        self._closed = False
        self._subscriptions: set[Subscription] = set()

    @property
    def subscriber_count(self) -> int:
        """Open subscriptions of this bus instance (for metrics and tests)."""
        return len(self._subscriptions)

    async def start(self) -> None:
        """Connect; ``BusUnavailable`` if the backend cannot be reached.  Idempotent."""
        if self._closed:
            raise BusClosed(f"event bus ({self.name}) is closed")
        if not self._started:
            await self._start()
            self._started = True

    async def close(self) -> None:
        """End every subscription and disconnect; idempotent and never raises BusError."""
        if self._closed:
            return
        self._closed = True
        for subscription in list(self._subscriptions):
            await subscription.aclose()
        if self._started:
            await self._close()

    async def ping(self) -> None:
        """Readiness probe: ``BusUnavailable`` if the backend is down."""
        self._check_usable()
        await self._ping()

    async def publish(self, channel: str, data: Mapping[str, Any]) -> None:
        """Send ``data`` (a JSON object) to everyone subscribed to ``channel`` right now."""
        validate_channel(channel)
        payload = encode_payload(data)
        self._check_usable()
        await self._publish(channel, payload)

    async def publish_many(self, messages: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
        """:meth:`publish` each (channel, data) in order, in one exchange with the backend
        where it allows (a Redis pipeline): a batch of 200 ticket changes is one round trip.
        Every message is checked before any is sent."""
        encoded = [(validate_channel(channel), encode_payload(data)) for channel, data in messages]
        self._check_usable()
        if encoded:
            await self._publish_many(encoded)

    def subscribe(self, *channels: str, maxsize: int = DEFAULT_MAXSIZE) -> Subscription:
        """Subscription to channels; a name containing ``*`` is a pattern (``*`` = any text).

        Only ``*`` is special: ``?`` and ``[`` match themselves in both backends.
        """
        if not channels:
            raise ValueError("subscribe() needs at least one channel")
        for channel in channels:
            validate_channel(channel, pattern_ok=True)
        if maxsize < 1:
            raise ValueError(f"maxsize must be at least 1, got {maxsize}")
        return self._subscription(tuple(dict.fromkeys(channels)), maxsize)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _check_usable(self) -> None:
        if self._closed:
            raise BusClosed(f"event bus ({self.name}) is closed")
        if not self._started:
            raise BusError(f"event bus ({self.name}) is not started: call `await bus.start()`")

    @abstractmethod
    async def _start(self) -> None: ...

    @abstractmethod
    async def _close(self) -> None: ...

    @abstractmethod
    async def _ping(self) -> None: ...

    @abstractmethod
    async def _publish(self, channel: str, payload: bytes) -> None: ...

    async def _publish_many(self, messages: list[tuple[str, bytes]]) -> None:
        for channel, payload in messages:
            await self._publish(channel, payload)

    @abstractmethod
    def _subscription(self, channels: tuple[str, ...], maxsize: int) -> Subscription: ...
