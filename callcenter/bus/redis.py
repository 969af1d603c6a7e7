"""Redis event bus: ``PUBLISH``/``(P)SUBSCRIBE`` with JSON payloads, shared between processes.

Every channel is namespaced as ``{prefix}:{channel}`` on the wire, so several deployments (or
test runs) can share one Redis.  Each subscription owns one connection and one listener task;
when the connection drops (Redis restarted, network blip) the listener logs a warning,
reconnects with capped exponential backoff and re-subscribes, and the subscriber's ``async for``
simply carries on.  Messages published during the outage are lost, which is the accepted
trade-off for live fan-out.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import re
from collections.abc import Awaitable
from typing import Any, ClassVar, Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError, RedisError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from callcenter.bus.base import (
    BusClosed,
    BusError,
    BusMessage,
    BusUnavailable,
    EventBus,
    Subscription,
    validate_channel,
)

logger = logging.getLogger(__name__)

BACKOFF_BASE: Final = 0.05
BACKOFF_CAP: Final = 2.0
_DATA_TYPES: Final = frozenset({"message", "pmessage"})
_CONFIRM_TYPES: Final = frozenset({"subscribe", "psubscribe"})
_SCHEMES: Final = ("redis", "rediss", "unix")


def redact_url(url: str) -> str:
    """The URL with any password (userinfo or ``?password=``) replaced by ``***``, for logs."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        netloc = f"{parts.username or ''}:***@{netloc.rpartition('@')[2]}"
    query = parts.query
    if "password" in query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, "***" if k == "password" else v) for k, v in pairs], safe="*")
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def describe(exc: BaseException) -> str:
    """The most useful one-line cause: the OS reason if there is one (``Connection refused``)."""
    cause: BaseException | None = exc
    for _ in range(10):
        if cause is None:
            break
        if isinstance(cause, OSError) and cause.errno:
            return os.strerror(cause.errno)  # asyncio rewrites strerror, the errno is reliable
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror
        cause = cause.__cause__ or cause.__context__
    text = " ".join(str(exc).split()).rstrip(".")
    return text or type(exc).__name__


def backoff_delay(attempt: int) -> float:
    """Capped exponential backoff with jitter, so that many subscribers don't reconnect at once."""
    ceiling = min(BACKOFF_CAP, BACKOFF_BASE * 2.0 ** min(attempt, 16))
    return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - jitter, not crypto


def glob_escape(text: str) -> str:
    """Make Redis glob characters literal (``*`` is only ever a wildcard in our patterns)."""
    return re.sub(r"([\\?\[\]*])", r"\\\1", text)


class _RedisSubscription(Subscription):
    """One connection and one listener task that survives reconnections."""

    def __init__(self, bus: RedisBus, channels: tuple[str, ...], maxsize: int) -> None:
        super().__init__(bus, channels, maxsize)
        self._redis_bus = bus
        self._plain = [bus._wire_prefix + c for c in channels if "*" not in c]
        wire_prefix = glob_escape(bus._wire_prefix)
        self._patterns = [
            wire_prefix + "*".join(glob_escape(part) for part in c.split("*"))
            for c in channels
            if "*" in c
        ]
        self._task: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[None] | None = None
        self._failures = 0

    async def _open(self) -> None:
        self._ready = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(
            self._listen(self._ready), name=f"event-bus:redis:{' '.join(self.channels)[:80]}"
        )
        await self._ready

    async def _close(self) -> None:
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(BusClosed("event bus subscription closed while opening"))
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task})

    async def _listen(self, ready: asyncio.Future[None]) -> None:
        """Run sessions until cancelled; the first failure before ``ready`` is the caller's."""
        while True:
            try:
                await self._session(ready)
            except Exception as exc:
                if not ready.done():
                    ready.set_exception(self._redis_bus._error(exc))
                    return
                self._failures += 1
                self._log_failure(exc)
            await asyncio.sleep(backoff_delay(self._failures))

    async def _session(self, ready: asyncio.Future[None]) -> None:
        """One connection's life: subscribe, then deliver until it fails."""
        pubsub = self._redis_bus._listener().pubsub()
        try:
            await self._subscribe(pubsub)
            if not ready.done():
                ready.set_result(None)
            elif self._failures:
                logger.info("event bus: %r resubscribed to Redis", self)
            self._failures = 0
            await self._pump(pubsub)
        finally:
            await _aclose_quietly(pubsub)

    async def _subscribe(self, pubsub: PubSub) -> None:
        """Send (P)SUBSCRIBE and wait for every confirmation, so no later message is missed."""
        async with asyncio.timeout(self._redis_bus.connect_timeout + self._redis_bus.timeout):
            if self._plain:
                await pubsub.subscribe(*self._plain)
            if self._patterns:
                await pubsub.psubscribe(*self._patterns)
            pending = len(self._plain) + len(self._patterns)
            while pending:
                message = await pubsub.get_message(timeout=None)
                if message is None:
                    continue
                if message["type"] in _CONFIRM_TYPES:
                    pending -= 1
                else:
                    self._on_message(message)

    async def _pump(self, pubsub: PubSub) -> None:
        """Deliver messages; PING when idle so a silently dead connection is noticed too."""
        interval = self._redis_bus.health_interval
        loop = asyncio.get_running_loop()
        last_seen = loop.time()
        pinged = False
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=interval)
            now = loop.time()
            if message is not None:
                last_seen, pinged = now, False
                self._on_message(message)
            elif now - last_seen >= interval:
                if pinged:
                    raise RedisTimeoutError(f"no reply to PING for {now - last_seen:.1f}s")
                await pubsub.ping()
                pinged = True

    def _on_message(self, message: dict[str, Any]) -> None:
        if message["type"] not in _DATA_TYPES:
            return
        prefix = self._redis_bus._wire_prefix
        channel = bytes(message["channel"]).decode("utf-8", "replace")
        try:
            data = json.loads(message["data"])
        except ValueError:
            data = None
        if not isinstance(data, dict) or not channel.startswith(prefix):
            logger.warning("event bus: ignoring a non-JSON-object message on %r", channel)
            return
        self._deliver(BusMessage(channel.removeprefix(prefix), data))

    def _log_failure(self, exc: Exception) -> None:
        if self._failures == 1:
            logger.warning(
                "event bus: %r lost its Redis connection (%s: %s); reconnecting",
                self,
                type(exc).__name__,
                describe(exc),
            )
        else:
            logger.debug(
                "event bus: %r reconnection attempt %d failed: %s", self, self._failures, exc
            )


class RedisBus(EventBus):
    """Event bus over Redis pub/sub; see the module docstring for the reconnection behaviour."""

    name: ClassVar[str] = "redis"

    def __init__(
        self,
        url: str,
        prefix: str = "cc",
        *,
        connect_timeout: float = 2.0,
        timeout: float = 5.0,
        health_interval: float = 15.0,
    ) -> None:
        """Nothing connects before ``start()``.

        ``timeout`` bounds every publish and ping.  An idle subscription PINGs Redis every
        ``health_interval`` seconds and reconnects when the answer doesn't come in as long
        again, so a silently dead connection (NAT, failover) can't leave it deaf forever.
        """
        super().__init__()
        if urlsplit(url).scheme not in _SCHEMES:
            raise ValueError("event bus: Redis URL must start with redis://, rediss:// or unix://")
        try:
            validate_channel(prefix)
        except ValueError:
            raise ValueError(
                f"event bus: invalid Redis prefix {prefix!r} (printable, no whitespace, no '*')"
            ) from None
        self.url = url
        self.prefix = prefix
        self.safe_url = redact_url(url)
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self.health_interval = health_interval
        self._wire_prefix = f"{prefix}:"
        self._publisher: Redis | None = None
        self._listener_client: Redis | None = None
        # One publish at a time, so messages reach Redis in the order publish() was called.
        self._publish_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"<RedisBus {self.safe_url} prefix={self.prefix!r}>"

    async def _start(self) -> None:
        publisher = self._client("publisher", retries=1)
        try:
            await self._guarded(publisher.ping())
        except BusError:
            await _aclose_quietly(publisher)
            raise
        self._publisher = publisher
        self._listener_client = self._client("subscriber", retries=0)

    async def _close(self) -> None:
        for client in (self._publisher, self._listener_client):
            if client is not None:
                await _aclose_quietly(client)
        self._publisher = self._listener_client = None

    async def _ping(self) -> None:
        await self._guarded(self._publisher_client().ping())

    async def _publish(self, channel: str, payload: bytes) -> None:
        await self._guarded(self._publish_in_order(self._wire_prefix + channel, payload))

    async def _publish_in_order(self, wire_channel: str, payload: bytes) -> None:
        async with self._publish_lock:
            await self._publisher_client().publish(wire_channel, payload)

    async def _publish_many(self, messages: list[tuple[str, bytes]]) -> None:
        await self._guarded(self._pipeline_in_order(messages))

    async def _pipeline_in_order(self, messages: list[tuple[str, bytes]]) -> None:
        async with self._publish_lock:
            pipe = self._publisher_client().pipeline(transaction=False)
            for channel, payload in messages:
                pipe.publish(self._wire_prefix + channel, payload)
            await pipe.execute()

    async def _guarded(self, command: Awaitable[Any]) -> None:
        """One overall deadline (lock wait and retry included) and one error type.

        Without the deadline, publishers queued behind the lock would each wait a full socket
        timeout in turn while Redis hangs.
        """
        try:
            async with asyncio.timeout(self.timeout):
                await command
        except (RedisError, OSError) as exc:
            raise self._error(exc) from exc

    def _subscription(self, channels: tuple[str, ...], maxsize: int) -> Subscription:
        return _RedisSubscription(self, channels, maxsize)

    def _client(self, role: str, retries: int) -> Redis:
        # No backoff, no long retry loops: callers get a prompt BusUnavailable, and the
        # subscription listeners (retries=0) run their own reconnection loop.  The publisher's
        # single retry replaces a pooled connection that died with a Redis restart, at the
        # (accepted) risk of a duplicate if the connection broke after Redis got the PUBLISH.
        client: Redis = Redis.from_url(
            self.url,
            socket_connect_timeout=self.connect_timeout,
            socket_timeout=self.timeout,
            retry=Retry(NoBackoff(), retries),
            client_name=f"callcenter-bus-{role}",
        )
        return client

    def _publisher_client(self) -> Redis:
        if self._publisher is None:
            raise BusClosed("event bus (redis) is closed")
        return self._publisher

    def _listener(self) -> Redis:
        if self._listener_client is None:
            raise BusClosed("event bus (redis) is closed")
        return self._listener_client

    def _error(self, exc: BaseException) -> BusError:
        """Map a Redis/OS failure to one log-friendly line that never shows the password."""
        if isinstance(exc, BusError):
            return exc
        cause = describe(exc)
        if isinstance(exc, TimeoutError) and cause == "TimeoutError":  # asyncio.timeout()
            cause = f"no reply within {self.timeout:g}s"
        if isinstance(exc, AuthenticationError):
            problem = "rejected the credentials"
        elif isinstance(exc, RedisConnectionError | RedisTimeoutError | OSError):
            problem = "is unreachable"
        else:
            problem = "returned an error"
        return BusUnavailable(f"event bus: Redis at {self.safe_url} {problem}: {cause}")


async def _aclose_quietly(resource: Redis | PubSub) -> None:
    """Closing is best effort: the connection may already be gone, which is fine."""
    try:
        await resource.aclose()
    except (RedisError, OSError) as exc:
        logger.debug("event bus: error while closing a Redis connection: %s", exc)
