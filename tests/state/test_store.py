"""Live-state stores (in process and the real Redis) and the change messages on the bus."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable

import pytest
import pytest_asyncio
from sqlalchemy.engine import make_url

from callcenter.ami.events import CallQueued
from callcenter.bus import MemoryBus
from callcenter.settings import Settings
from callcenter.state import LiveState, LiveStore, MemoryLiveStore, Regions, make_live_state
from callcenter.state.model import Change, LiveCall
from callcenter.state.redis_store import RedisLiveStore
from tests.conftest import REDIS_URL
from tests.state.conftest import NODE, TcpProxy, Ticker, Traces, feed
from tests.state.test_live_traces import feed_until

OpenStore = Callable[[], LiveStore]


@pytest_asyncio.fixture
async def redis_stores() -> AsyncIterator[OpenStore]:
    """Stores on the real Redis sharing one unique prefix, as two web instances would."""
    prefix = f"test-{uuid.uuid4().hex[:10]}"
    opened: list[RedisLiveStore] = []

    def open_store() -> LiveStore:
        store = RedisLiveStore.from_url(REDIS_URL, prefix)
        opened.append(store)
        return store

    yield open_store
    if opened:
        await opened[0].clear()
    for store in opened:
        await store.close()


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def store(request: pytest.FixtureRequest) -> LiveStore:
    if request.param == "memory":
        return MemoryLiveStore()
    open_store: OpenStore = request.getfixturevalue("redis_stores")
    return open_store()


def call(linkedid: str, region: str, node: str = NODE, **fields: object) -> LiveCall:
    values: dict[str, object] = {
        "node": node,
        "linkedid": linkedid,
        "uniqueid": None,
        "caller_number": "13805730001",
        "caller_name": "张三",
        "caller_region_code": None,
        "region_code": region,
        "state": "ivr",
        "state_since": 1.0,
        "offered_at": 1.0,
    }
    values.update(fields)
    return LiveCall(**values)  # type: ignore[arg-type]


def upsert(item: LiveCall) -> Change:
    return Change("calls", item.key, item.region_code, item)


async def test_store_reads_what_was_written_per_region(store: LiveStore) -> None:
    a, b = call("a", "330400"), call("b", "330000", state="queued", queue="province")
    await store.write([upsert(a), upsert(b)])
    assert await store.calls(lambda code: code.startswith("3304")) == [a]
    assert sorted(c.linkedid for c in await store.calls(lambda code: True)) == ["a", "b"]
    moved = call("a", "330000", state="queued", queue="province")
    await store.write([Change("calls", a.key, "330400", None), upsert(moved)])
    assert await store.calls(lambda code: code == "330400") == []
    assert sorted(await store.calls(lambda code: True), key=lambda c: c.linkedid) == [moved, b]


async def test_replace_node_leaves_other_nodes_alone(store: LiveStore) -> None:
    mine, other = call("a", "330400"), call("x", "330400", node="node-2")
    await store.write([upsert(mine), upsert(other)])
    fresh = call("b", "330500")
    await store.replace_node(NODE, [fresh])
    assert sorted(c.key for c in await store.calls(lambda code: True)) == [fresh.key, other.key]


@pytest.mark.redis
async def test_a_second_instance_reads_live_state_from_redis(
    redis_stores: OpenStore, regions: Regions, traces: Traces
) -> None:
    live = LiveState(regions, store=redis_stores(), clock=Ticker())
    await feed_until(live, traces.events("10"), CallQueued, n=5)
    reader = redis_stores()
    [queue] = await reader.queues(lambda code: True)
    assert [(w.caller_name, w.position) for w in queue.waiting] == [
        ("蒋一", 1),
        ("沈二", 2),
        ("韩三", 3),
        ("杨四", 4),
        ("朱五", 5),
    ]
    assert sorted(await reader.calls(lambda code: True), key=lambda c: c.key) == sorted(
        live.calls, key=lambda c: c.key
    )
    assert sorted(await reader.agents(lambda code: True), key=lambda a: a.key) == sorted(
        live.agents, key=lambda a: a.key
    )


@pytest.mark.redis
async def test_redis_outage_is_repaired_on_the_next_change(
    redis_stores: OpenStore, regions: Regions, traces: Traces
) -> None:
    """Writes fail while Redis is unreachable (events still apply), then the store is rewritten."""
    url = make_url(REDIS_URL.replace("redis://", "postgresql://"))  # only to parse host/port
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 6379)
    await proxy.start()
    prefix = f"test-{uuid.uuid4().hex[:10]}"
    writer = RedisLiveStore.from_url(f"redis://127.0.0.1:{proxy.port}/{url.database}", prefix)
    reader = RedisLiveStore.from_url(REDIS_URL, prefix)
    live = LiveState(regions, store=writer, clock=Ticker())
    events = traces.events("10")
    try:
        rest = await feed_until(live, events, CallQueued, n=1)
        await proxy.stop()
        rest = await feed_until(live, rest, CallQueued, n=4)  # no exception: Redis is a cache
        assert len(live.calls) == 5
        await proxy.start()
        await feed(live, rest[:1])
        assert sorted(c.key for c in await reader.calls(lambda code: True)) == sorted(
            c.key for c in live.calls
        )
    finally:
        await reader.clear()
        await writer.close()
        await reader.close()
        await proxy.stop()


async def test_changes_are_published_per_region_with_masked_numbers(
    regions: Regions, traces: Traces
) -> None:
    async with MemoryBus() as bus, bus.subscribe("live.*") as sub:
        live = LiveState(regions, bus=bus, clock=Ticker())
        await feed(live, traces.events("09"))
        messages = []
        while True:
            try:
                messages.append(await sub.get(timeout=0.05))
            except TimeoutError:
                break
    calls = [(m.channel, m.data["op"]) for m in messages if m.data["kind"] == "calls"]
    assert ("live.330400.calls", "upsert") in calls
    assert calls[-1] == ("live.330000.calls", "remove")  # ended in the province queue
    moved = calls.index(("live.330000.calls", "upsert"))
    assert calls[moved - 1] == ("live.330400.calls", "remove")  # overflow: city → province
    upserts = [m.data["item"] for m in messages if m.data["op"] == "upsert"]
    numbers = {i["caller_number"] for i in upserts if "caller_number" in i}
    assert numbers == {"0573****8000"}
    assert all("12348000" not in str(m.data) for m in messages)


@pytest.mark.redis
async def test_live_state_from_settings(make_settings: Callable[..., Settings]) -> None:
    embedded = make_live_state(make_settings(), None)
    assert isinstance(embedded.store, MemoryLiveStore)
    assert embedded.regions.queue("city-330100") == "330100"
    shared = make_live_state(make_settings(redis_url=REDIS_URL, redis_prefix="t-x"), None)
    assert isinstance(shared.store, RedisLiveStore) and shared.store.prefix == "t-x"
    await shared.close()
