"""One behavioural contract, run against every backend (``bus`` is parametrized in conftest)."""

from __future__ import annotations

import asyncio
import math
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from callcenter.bus import (
    BusClosed,
    BusError,
    BusMessage,
    EventBus,
    MemoryBus,
    RedisBus,
    Subscription,
    make_bus,
)
from callcenter.bus.redis import redact_url
from callcenter.settings import load_settings

if TYPE_CHECKING:
    from tests.bus.conftest import BusTasks

REDIS_URL = "redis://127.0.0.1:6379/0"  # only parsed, never connected to


async def drain(sub: Subscription, count: int, timeout: float = 5.0) -> list[BusMessage]:
    """Exactly ``count`` messages, failing (TimeoutError) if they don't all arrive in time."""
    async with asyncio.timeout(timeout):
        return [await sub.get() for _ in range(count)]


async def assert_silent(sub: Subscription, wait: float = 0.2) -> None:
    with pytest.raises(TimeoutError):
        msg = await sub.get(timeout=wait)
        pytest.fail(f"unexpected message {msg}")


async def test_every_subscriber_receives_every_message(bus: EventBus) -> None:
    async with (
        bus.subscribe("calls.330400") as a,
        bus.subscribe("calls.330400") as b,
        bus.subscribe("calls.*") as c,
    ):
        for n in range(10):
            await bus.publish("calls.330400", {"n": n})
        for sub in (a, b, c):
            got = await drain(sub, 10)
            assert got == [BusMessage("calls.330400", {"n": n}) for n in range(10)]
            assert sub.dropped == 0


async def test_per_channel_order_is_preserved(bus: EventBus) -> None:
    channels = ["queue.1", "queue.2", "agents.7"]
    async with bus.subscribe("queue.*", "agents.7") as sub:
        for n in range(600):
            await bus.publish(channels[n % 3], {"n": n})
        got = await drain(sub, 600)
    for channel in channels:
        seq = [m.data["n"] for m in got if m.channel == channel]
        assert seq == [n for n in range(600) if channels[n % 3] == channel]


async def test_concurrent_publishers_keep_call_order(bus: EventBus) -> None:
    async with bus.subscribe("wallboard") as sub:
        await asyncio.gather(*(bus.publish("wallboard", {"n": n}) for n in range(200)))
        assert [m.data["n"] for m in await drain(sub, 200)] == list(range(200))


async def test_glob_patterns(bus: EventBus) -> None:
    async with bus.subscribe("agents.*", "*.330400", "lit.?", "br[ac].*") as sub:
        for channel in ["agents.1", "agents.x.y", "agents.", "calls.330400", "agentsX.1"]:
            await bus.publish(channel, {"c": channel})
        # only '*' is a wildcard: '?' and '[...]' are literal in both backends
        for channel in ["lit.x", "lit.?", "bra.1", "br[ac].1"]:
            await bus.publish(channel, {"c": channel})
        got = [m.channel for m in await drain(sub, 6)]
        assert got == ["agents.1", "agents.x.y", "agents.", "calls.330400", "lit.?", "br[ac].1"]
        await assert_silent(sub)


async def test_overlapping_channels_deliver_once_per_match(bus: EventBus) -> None:
    async with bus.subscribe("calls.1", "calls.*", "calls.1") as sub:  # the duplicate is ignored
        assert sub.channels == ("calls.1", "calls.*")
        await bus.publish("calls.1", {"n": 1})
        assert [m.data for m in await drain(sub, 2)] == [{"n": 1}, {"n": 1}]
        await assert_silent(sub, 0.1)


async def test_leaving_the_block_unsubscribes(
    bus: EventBus, bus_tasks: BusTasks, redis_url: str
) -> None:
    async with bus.subscribe("calls.9", "agents.*") as sub:
        assert bus.subscriber_count == 1
        await bus.publish("calls.9", {"n": 1})
        await drain(sub, 1)
    assert bus.subscriber_count == 0
    assert bus_tasks() == []
    await bus.publish("calls.9", {"n": 2})  # nobody listening any more: fine
    with pytest.raises(BusClosed):
        await sub.get(timeout=1)
    assert [m async for m in sub] == []
    if isinstance(bus, RedisBus):
        await assert_redis_forgot_subscribers(bus, redis_url, "calls.9", "agents.1")


async def assert_redis_forgot_subscribers(bus: RedisBus, redis_url: str, *channels: str) -> None:
    """Server side: PUBLISH reaches nobody (Redis notices the closed connection asynchronously)."""
    async with Redis.from_url(redis_url) as admin:
        for _ in range(100):
            reached = [await admin.publish(f"{bus.prefix}:{c}", "{}") for c in channels]
            if not any(reached):
                return
            await asyncio.sleep(0.02)
    pytest.fail(f"Redis still delivers {channels} to the closed subscription")


async def test_publish_many_delivers_in_order_like_single_publishes(bus: EventBus) -> None:
    async with bus.subscribe("tickets.*") as sub, bus.subscribe("tickets.330400") as one:
        await bus.publish("tickets.330400", {"n": -1})
        batch = [(f"tickets.{330400 + n % 2}", {"n": n, "text": "批量"}) for n in range(300)]
        await bus.publish_many(batch)
        await bus.publish_many([])  # nothing to send is not an error
        await bus.publish("tickets.330400", {"n": 300})
        got = await drain(sub, 302)
        assert [(m.channel, m.data["n"]) for m in got] == [
            ("tickets.330400", -1),
            *((c, d["n"]) for c, d in batch),
            ("tickets.330400", 300),
        ]
        mine = await drain(one, 152)
        assert [m.data["n"] for m in mine] == [-1, *range(0, 300, 2), 300]


async def test_publish_many_checks_every_message_before_sending_any(bus: EventBus) -> None:
    async with bus.subscribe("calls.*") as sub:
        with pytest.raises(BusError):
            await bus.publish_many([("calls.1", {"ok": 1}), ("calls.2", {"bad": object()})])
        with pytest.raises(ValueError, match="channel"):  # as publish() refuses such a name
            await bus.publish_many([("calls.1", {"ok": 1}), ("bad channel\r\n", {"ok": 2})])
        await assert_silent(sub, 0.1)


async def test_publish_without_subscribers(bus: EventBus) -> None:
    await bus.publish("nobody.listens", {"ok": True})


@pytest.mark.parametrize(
    "payload",
    [
        {"when": object()},
        {"ids": {1, 2}},
        {"x": math.nan},
        {(1, 2): "tuple key"},
        {"s": "\ud800"},  # unpaired surrogate: not encodable
        ["not", "a", "mapping"],
    ],
    ids=["object", "set", "nan", "tuple-key", "surrogate", "list"],
)
async def test_bad_payload_raises_and_sends_nothing(bus: EventBus, payload: Any) -> None:
    async with bus.subscribe("calls.1") as sub:
        with pytest.raises(BusError) as info:
            await bus.publish("calls.1", payload)
        assert "\n" not in str(info.value)
        await bus.publish("calls.1", {"after": "error"})
        assert await drain(sub, 1) == [BusMessage("calls.1", {"after": "error"})]
        await assert_silent(sub, 0.1)


async def test_bad_payload_message_names_the_cause(bus: EventBus) -> None:
    with pytest.raises(BusError, match=r"^event bus payload is not JSON-serialisable: .*\bset\b"):
        await bus.publish("calls.1", {"ids": {1}})


INVALID_CHANNELS = [
    "",
    " ",
    "a b",
    "calls.1\n",
    "calls.1\r",
    "a\tb",
    "a\x00b",
    "全\u3000角",
    "x" * 201,
]


@pytest.mark.parametrize("channel", INVALID_CHANNELS)
async def test_invalid_channel_names(bus: EventBus, channel: str) -> None:
    with pytest.raises(ValueError, match="event bus channel"):
        await bus.publish(channel, {"n": 1})
    with pytest.raises(ValueError, match="event bus channel"):
        bus.subscribe("ok", channel)


async def test_channel_argument_checks(bus: EventBus) -> None:
    with pytest.raises(ValueError, match="only allowed in subscription patterns"):
        await bus.publish("agents.*", {"n": 1})
    with pytest.raises(ValueError, match="at least one channel"):
        bus.subscribe()
    with pytest.raises(ValueError, match="maxsize"):
        bus.subscribe("a", maxsize=0)
    long_ok = "c" * 200
    async with bus.subscribe(long_ok) as sub:
        await bus.publish(long_ok, {"n": 1})
        assert (await drain(sub, 1))[0].channel == long_ok


async def test_chinese_text_round_trips(bus: EventBus) -> None:
    data = {
        "来电": "法律援助咨询",
        "坐席": {"姓名": "张三", "状态": "通话中"},
        "emoji": "⚖️",
        "n": 12348,
    }
    async with bus.subscribe("坐席.*") as sub:
        await bus.publish("坐席.杭州", data)
        assert await drain(sub, 1) == [BusMessage("坐席.杭州", data)]


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=10,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.dictionaries(st.text(), json_values, max_size=5))
async def test_any_json_object_round_trips(bus: EventBus, data: dict[str, Any]) -> None:
    async with bus.subscribe("prop") as sub:
        await bus.publish("prop", data)
        assert (await drain(sub, 1))[0].data == data


async def test_subscribers_get_their_own_copy(bus: EventBus) -> None:
    async with bus.subscribe("c") as a, bus.subscribe("c") as b:
        await bus.publish("c", {"list": [1]})
        (first,) = await drain(a, 1)
        first.data["list"].append(2)
        assert (await drain(b, 1))[0].data == {"list": [1]}


async def test_get_times_out(bus: EventBus) -> None:
    async with bus.subscribe("quiet") as sub:
        with pytest.raises(TimeoutError):
            await sub.get(timeout=0.05)


async def test_close_ends_iterators_and_is_idempotent(bus: EventBus) -> None:
    sub = await bus.subscribe("calls.*").open()
    received: list[BusMessage] = []
    got_one = asyncio.Event()

    async def consume() -> None:
        async for msg in sub:
            received.append(msg)
            got_one.set()

    consumer = asyncio.create_task(consume())
    await bus.publish("calls.1", {"n": 1})
    await asyncio.wait_for(got_one.wait(), 5)
    await bus.close()
    await asyncio.wait_for(consumer, 5)  # ended normally, no exception
    assert received == [BusMessage("calls.1", {"n": 1})]
    assert bus.subscriber_count == 0
    await bus.close()
    with pytest.raises(BusClosed):
        await bus.publish("calls.1", {"n": 2})
    with pytest.raises(BusClosed):
        await bus.subscribe("calls.1").open()
    with pytest.raises(BusClosed):
        await bus.start()


async def test_unstarted_bus_refuses_work() -> None:
    for bus in (MemoryBus(), RedisBus(REDIS_URL)):
        with pytest.raises(BusError, match="not started"):
            await bus.publish("x", {})
        with pytest.raises(BusError, match="not started"):
            await bus.ping()
        await bus.close()


async def test_ping(bus: EventBus) -> None:
    await bus.ping()


async def test_subscription_misuse(bus: EventBus) -> None:
    sub = bus.subscribe("x")
    with pytest.raises(RuntimeError, match="enter the subscription first"):
        await sub.get(timeout=0.1)
    async with sub:
        pass
    with pytest.raises(RuntimeError, match="only be opened once"):
        await sub.open()


async def test_memory_slow_subscriber_drops_oldest_fast_one_gets_all() -> None:
    async with MemoryBus() as bus, bus.subscribe("live", maxsize=10) as slow:
        async with bus.subscribe("live") as fast:
            fast_seen: list[int] = []
            all_seen = asyncio.Event()

            async def consume_fast() -> None:
                async for msg in fast:
                    fast_seen.append(msg.data["n"])
                    if len(fast_seen) == 100:
                        all_seen.set()

            consumer = asyncio.create_task(consume_fast())
            for n in range(100):
                await bus.publish("live", {"n": n})  # must not wait for `slow`
                await asyncio.sleep(0)
            await asyncio.wait_for(all_seen.wait(), 5)
        await consumer
        assert fast_seen == list(range(100))
        assert fast.dropped == 0
        assert slow.dropped == 90
        assert [m.data["n"] for m in await drain(slow, 10)] == list(range(90, 100))
        await assert_silent(slow, 0.05)


@pytest.mark.parametrize(
    ("env", "expected"),
    [({"redis_url": None}, MemoryBus), ({"redis_url": REDIS_URL, "redis_prefix": "pfx"}, RedisBus)],
)
def test_make_bus(env: dict[str, Any], expected: type[EventBus]) -> None:
    bus = make_bus(load_settings(**env))
    assert type(bus) is expected
    if isinstance(bus, RedisBus):
        assert (bus.url, bus.prefix, bus.name) == (REDIS_URL, "pfx", "redis")
    else:
        assert bus.name == "memory"


@pytest.mark.parametrize(
    ("url", "prefix"), [("http://127.0.0.1:6379", "cc"), (REDIS_URL, "a b"), (REDIS_URL, "cc*")]
)
def test_redis_bus_rejects_bad_configuration(url: str, prefix: str) -> None:
    with pytest.raises(ValueError, match="event bus: "):
        RedisBus(url, prefix)


def test_redis_url_is_shown_without_password() -> None:
    assert redact_url("redis://u:pw@h:1/0?password=pw2&db=1") == (
        "redis://u:***@h:1/0?password=***&db=1"
    )
    assert redact_url("redis://h:1/0") == "redis://h:1/0"
