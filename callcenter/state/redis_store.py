"""Live state in Redis: one hash per kind and region, so a read fetches only visible regions.

Layout (``{p}`` is ``settings.redis_prefix``)::

    {p}:live:{kind}:regions          SET  of region codes that ever had items of that kind
    {p}:live:{kind}:{region_code}    HASH "<node>|<id>" -> JSON of the item

Each batch of changes is written in one ``MULTI``, so a reader never sees a call removed from its
old region but not yet in its new one.  Redis is a cache of the bridge's model: if it loses
data, the bridge rewrites its node (:meth:`RedisLiveStore.replace_node`) on the next change.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Sequence
from typing import Any, TypeVar, cast

from redis.asyncio import Redis
from redis.exceptions import RedisError

from callcenter.state.model import (
    KEY_SEPARATOR,
    KINDS,
    Change,
    Item,
    Kind,
    item_from_dict,
    item_to_dict,
)
from callcenter.state.store import Accept, LiveStore, LiveStoreError, kind_of

__all__ = ["RedisLiveStore"]

log = logging.getLogger(__name__)
T = TypeVar("T")


def _encode(item: Item) -> str:
    return json.dumps(item_to_dict(item), ensure_ascii=False, allow_nan=False)


class RedisLiveStore(LiveStore):
    def __init__(self, client: Redis, prefix: str = "cc", *, owns_client: bool = True) -> None:
        self.prefix = prefix
        self._redis = client
        self._owns_client = owns_client

    @classmethod
    def from_url(cls, url: str, prefix: str = "cc", *, timeout: float = 5.0) -> RedisLiveStore:
        client = Redis.from_url(
            url,
            socket_connect_timeout=min(timeout, 2.0),
            socket_timeout=timeout,
            client_name="callcenter-live-state",
        )
        return cls(client, prefix)

    def _hash(self, kind: Kind, region: str) -> str:
        return f"{self.prefix}:live:{kind}:{region}"

    def _regions(self, kind: Kind) -> str:
        return f"{self.prefix}:live:{kind}:regions"

    async def _guard(self, operation: Awaitable[T]) -> T:
        try:
            return await operation
        except (RedisError, OSError) as exc:
            raise LiveStoreError(f"live state: Redis failed: {type(exc).__name__}: {exc}") from exc

    async def write(self, changes: Sequence[Change]) -> None:
        if not changes:
            return
        pipe = self._redis.pipeline(transaction=True)
        for change in changes:
            name = self._hash(change.kind, change.region_code)
            if change.item is None:
                pipe.hdel(name, change.key)
            else:
                pipe.hset(name, change.key, _encode(change.item))
                pipe.sadd(self._regions(change.kind), change.region_code)
        await self._guard(pipe.execute())

    async def replace_node(self, node: str, items: Sequence[Item]) -> None:
        wanted = {(kind_of(i), i.region_code, i.key): i for i in items}
        stale = await self._guard(self._node_fields(node))
        pipe = self._redis.pipeline(transaction=True)
        for kind, region, key in stale - wanted.keys():
            pipe.hdel(self._hash(kind, region), key)
        for (kind, region, key), item in wanted.items():
            pipe.hset(self._hash(kind, region), key, _encode(item))
            pipe.sadd(self._regions(kind), region)
        await self._guard(pipe.execute())

    async def _node_fields(self, node: str) -> set[tuple[Kind, str, str]]:
        prefix = node + KEY_SEPARATOR
        found: set[tuple[Kind, str, str]] = set()
        for kind in KINDS:
            for region in await self._region_codes(kind):
                pending = self._redis.hkeys(self._hash(kind, region))
                keys = await cast("Awaitable[list[Any]]", pending)
                found.update((kind, region, k) for k in map(_str, keys) if k.startswith(prefix))
        return found

    async def _region_codes(self, kind: Kind) -> list[str]:
        pending = self._redis.smembers(self._regions(kind))
        members = await cast("Awaitable[set[Any]]", pending)
        return sorted(map(_str, members))

    async def read(self, kind: Kind, accept: Accept) -> list[Item]:
        regions = [r for r in await self._guard(self._region_codes(kind)) if accept(r)]
        if not regions:
            return []
        pipe = self._redis.pipeline(transaction=False)
        for region in regions:
            pipe.hgetall(self._hash(kind, region))
        hashes: list[dict[bytes, bytes]] = await self._guard(pipe.execute())
        return [item for h in hashes for raw in h.values() if (item := _decode(kind, raw))]

    async def clear(self) -> None:
        """Delete every key of this prefix's live state (tests, a fresh deployment)."""
        for kind in KINDS:
            regions = await self._guard(self._region_codes(kind))
            names = [self._hash(kind, r) for r in regions] + [self._regions(kind)]
            await self._guard(self._redis.delete(*names))

    async def close(self) -> None:
        if self._owns_client:
            await self._redis.aclose()


def _str(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _decode(kind: Kind, raw: bytes) -> Item | None:
    """A value this version cannot read is skipped (logged), never fatal for the whole read."""
    try:
        data: Any = json.loads(raw)
        return item_from_dict(kind, data)
    except (ValueError, TypeError) as exc:
        log.warning("live state: skipping an unreadable %s entry in Redis: %s", kind, exc)
        return None
