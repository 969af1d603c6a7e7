"""Redis outages, against private redis-server processes (never the shared one)."""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
from contextlib import suppress
from typing import TYPE_CHECKING

import pytest
from redis.asyncio import Redis

from callcenter.bus import BusMessage, BusUnavailable, RedisBus, Subscription

if TYPE_CHECKING:
    from tests.bus.conftest import BusTasks, RedisServer

pytestmark = pytest.mark.redis

ONE_LINE_UNREACHABLE = re.compile(
    r"event bus: Redis at redis://127\.0\.0\.1:\d+/0 is unreachable: [^\n]+", re.ASCII
)


async def next_data(received: asyncio.Queue[BusMessage], count: int) -> list[BusMessage]:
    """``count`` real messages, skipping the reconnection probes."""
    out: list[BusMessage] = []
    async with asyncio.timeout(5):
        while len(out) < count:
            msg = await received.get()
            if "probe" not in msg.data:
                out.append(msg)
    return out


async def publish_until_received(
    bus: RedisBus, received: asyncio.Queue[BusMessage], within: float = 10.0
) -> None:
    """After a restart: probe (bounded) until the resubscribed listener gets one."""
    async with asyncio.timeout(within):
        for attempt in itertools.count():
            with suppress(BusUnavailable):
                await bus.publish("calls.330400", {"probe": attempt})
            with suppress(TimeoutError):
                msg = await asyncio.wait_for(received.get(), 0.2)
                assert "probe" in msg.data, f"a real message arrived before any probe: {msg}"
                return


def consume_into(sub: Subscription, received: asyncio.Queue[BusMessage]) -> asyncio.Task[None]:
    async def consume() -> None:
        async for msg in sub:
            received.put_nowait(msg)

    return asyncio.create_task(consume())


async def test_unreachable_at_start_is_one_line_without_password(
    closed_port: int, bus_tasks: BusTasks
) -> None:
    port = closed_port
    bus = RedisBus(f"redis://:s3cret@127.0.0.1:{port}/0")
    with pytest.raises(BusUnavailable) as info:
        await bus.start()
    assert str(info.value) == (
        f"event bus: Redis at redis://:***@127.0.0.1:{port}/0 is unreachable: Connection refused"
    )
    await bus.close()
    assert bus_tasks() == []


async def test_subscriber_survives_a_restart(
    redis_server: RedisServer, prefix: str, bus_tasks: BusTasks, caplog: pytest.LogCaptureFixture
) -> None:
    async with (
        RedisBus(redis_server.url, prefix=prefix) as bus,
        bus.subscribe("calls.330400", "agents.*") as sub,
    ):
        received: asyncio.Queue[BusMessage] = asyncio.Queue()
        consumer = consume_into(sub, received)
        for n in range(5):
            await bus.publish("calls.330400", {"n": n})
        assert [m.data["n"] for m in await next_data(received, 5)] == list(range(5))

        with caplog.at_level(logging.WARNING, logger="callcenter.bus.redis"):
            await asyncio.to_thread(redis_server.kill)
            await asyncio.to_thread(redis_server.start)
            # Redis is back: the pooled publisher connection died with the old server and
            # must be replaced transparently (the probe itself may reach nobody yet).
            await bus.publish("calls.330400", {"probe": "first"})
            await publish_until_received(bus, received)
        assert "lost its Redis connection" in caplog.text

        for n in range(5, 305):
            await bus.publish("calls.330400" if n % 2 else "agents.7", {"n": n})
        got = await next_data(received, 300)
        assert [m.data["n"] for m in got if m.channel == "calls.330400"] == list(range(5, 305, 2))
        assert [m.data["n"] for m in got if m.channel == "agents.7"] == list(range(6, 305, 2))
        assert not consumer.done(), "the subscriber's loop must not end on an outage"
        assert sub.dropped == 0
    await asyncio.wait_for(consumer, 5)  # leaving the block ends the loop normally
    assert bus_tasks() == []


async def test_publish_while_down_raises_then_recovers(
    redis_server: RedisServer, prefix: str, bus_tasks: BusTasks
) -> None:
    async with (
        RedisBus(redis_server.url, prefix=prefix) as bus,
        bus.subscribe("calls.330400") as sub,
    ):
        received: asyncio.Queue[BusMessage] = asyncio.Queue()
        consumer = consume_into(sub, received)
        await asyncio.to_thread(redis_server.kill)

        with pytest.raises(BusUnavailable) as info:
            await bus.publish("calls.330400", {"n": 1})
        assert ONE_LINE_UNREACHABLE.fullmatch(str(info.value)), str(info.value)
        with pytest.raises(BusUnavailable) as info:
            await bus.publish_many([("calls.330400", {"n": 1}), ("calls.330400", {"n": 1})])
        assert ONE_LINE_UNREACHABLE.fullmatch(str(info.value)), str(info.value)
        with pytest.raises(BusUnavailable) as info:
            await bus.ping()
        assert ONE_LINE_UNREACHABLE.fullmatch(str(info.value)), str(info.value)
        with pytest.raises(BusUnavailable):
            async with bus.subscribe("agents.*"):
                pytest.fail("subscribing while Redis is down must fail")
        assert bus.subscriber_count == 1

        await asyncio.to_thread(redis_server.start)
        await publish_until_received(bus, received)
        await bus.ping()
        await bus.publish("calls.330400", {"n": 2})
        assert [m.data for m in await next_data(received, 1)] == [{"n": 2}]
    await asyncio.wait_for(consumer, 5)
    assert bus_tasks() == []


async def test_close_during_an_outage_is_prompt(
    redis_server: RedisServer, prefix: str, bus_tasks: BusTasks
) -> None:
    bus = RedisBus(redis_server.url, prefix=prefix)
    await bus.start()
    sub = await bus.subscribe("calls.*").open()
    received: asyncio.Queue[BusMessage] = asyncio.Queue()
    consumer = consume_into(sub, received)
    await asyncio.to_thread(redis_server.kill)
    await asyncio.sleep(0.3)  # the listener is now in its reconnect/backoff loop
    async with asyncio.timeout(3):
        await bus.close()
        await consumer
    assert bus_tasks() == []


async def test_hung_redis_is_detected_and_survived(
    redis_server: RedisServer, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    bus = RedisBus(redis_server.url, prefix, connect_timeout=0.3, timeout=0.3, health_interval=0.2)
    async with bus, bus.subscribe("calls.330400") as sub:
        received: asyncio.Queue[BusMessage] = asyncio.Queue()
        consumer = consume_into(sub, received)
        with caplog.at_level(logging.INFO, logger="callcenter.bus.redis"):
            await asyncio.sleep(0.7)  # idle: the PINGs are answered, nothing reconnects
            assert [r.getMessage() for r in caplog.records if r.name.startswith("callcenter")] == []

            await asyncio.to_thread(redis_server.pause)
            loop = asyncio.get_running_loop()
            started = loop.time()
            with pytest.raises(BusUnavailable, match=r"is unreachable: no reply within 0\.3s$"):
                await bus.publish("calls.330400", {"n": 1})
            assert loop.time() - started < 1.5  # bounded by `timeout`, not by queued publishes
            for _ in range(60):  # the silent subscription notices within ~2 health intervals
                if "lost its Redis connection" in caplog.text:
                    break
                await asyncio.sleep(0.05)
            assert "no reply to PING" in caplog.text

            await asyncio.to_thread(redis_server.resume)
            await publish_until_received(bus, received)
        await bus.publish("calls.330400", {"n": 2})
        assert [m.data for m in await next_data(received, 1)] == [{"n": 2}]
        assert not consumer.done()
    await asyncio.wait_for(consumer, 5)


async def test_foreign_messages_on_the_prefix_are_skipped(
    redis_server: RedisServer, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with (
        RedisBus(redis_server.url, prefix) as bus,
        bus.subscribe("calls.*") as sub,
        Redis.from_url(redis_server.url) as raw,
    ):
        for junk in (b"not json", b"[1, 2]", b"\xff\xfe", '"字符串"'.encode()):
            await raw.publish(f"{prefix}:calls.1", junk)
        await bus.publish("calls.1", {"ok": True})
        assert await sub.get(timeout=5) == BusMessage("calls.1", {"ok": True})
    assert caplog.text.count("ignoring a non-JSON-object message") == 4
