"""Where live state is kept for readers: in process, or in Redis for every web instance.

The AMI bridge owns the live model (:mod:`callcenter.state.tracker`) and writes each change here;
the API reads from here, so a web instance without an AMI connection sees the same state.  Items
are grouped per region, because every read is "what may this user see", i.e. a set of regions.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

from callcenter.state.model import (
    KEY_SEPARATOR,
    KINDS,
    Change,
    Item,
    Kind,
    LiveAgent,
    LiveCall,
    LiveQueue,
)

__all__ = ["Accept", "LiveStore", "LiveStoreError", "MemoryLiveStore", "kind_of"]

Accept = Callable[[str], bool]
"""Region code → should items of this region be read?"""


class LiveStoreError(Exception):
    """The store backend failed; ``str()`` is one line naming it and the cause."""


def kind_of(item: Item) -> Kind:
    if isinstance(item, LiveCall):
        return "calls"
    if isinstance(item, LiveQueue):
        return "queues"
    return "agents"


def node_of(key: str) -> str:
    return key.partition(KEY_SEPARATOR)[0]


class LiveStore(ABC):
    @abstractmethod
    async def write(self, changes: Sequence[Change]) -> None:
        """Apply changes in order (a ``None`` item removes the key from that region)."""

    @abstractmethod
    async def replace_node(self, node: str, items: Sequence[Item]) -> None:
        """Make ``items`` the whole state of ``node`` (after a resync or a store outage)."""

    @abstractmethod
    async def read(self, kind: Kind, accept: Accept) -> list[Item]:
        """Every item of ``kind`` in the regions ``accept`` lets through."""

    @abstractmethod
    async def close(self) -> None:
        """Free connections; the data stays (other instances keep reading it)."""

    async def calls(self, accept: Accept) -> list[LiveCall]:
        return [i for i in await self.read("calls", accept) if isinstance(i, LiveCall)]

    async def queues(self, accept: Accept) -> list[LiveQueue]:
        return [i for i in await self.read("queues", accept) if isinstance(i, LiveQueue)]

    async def agents(self, accept: Accept) -> list[LiveAgent]:
        return [i for i in await self.read("agents", accept) if isinstance(i, LiveAgent)]


class MemoryLiveStore(LiveStore):
    """One process only (embedded mode, tests)."""

    def __init__(self) -> None:
        self._data: dict[Kind, dict[str, dict[str, Item]]] = {kind: {} for kind in KINDS}

    async def write(self, changes: Sequence[Change]) -> None:
        for change in changes:
            region = self._data[change.kind].setdefault(change.region_code, {})
            if change.item is None:
                region.pop(change.key, None)
            else:
                region[change.key] = change.item

    async def replace_node(self, node: str, items: Sequence[Item]) -> None:
        for regions in self._data.values():
            for region in regions.values():
                for key in [k for k in region if node_of(k) == node]:
                    del region[key]
        for item in items:
            self._data[kind_of(item)].setdefault(item.region_code, {})[item.key] = item

    async def close(self) -> None:
        pass

    async def read(self, kind: Kind, accept: Accept) -> list[Item]:
        regions = self._data[kind]
        return [item for code in sorted(regions) if accept(code) for item in regions[code].values()]
