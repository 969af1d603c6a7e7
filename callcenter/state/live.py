"""``LiveState``: the tracker plus where its changes go (store for readers, bus for wallboards).

One instance lives in the process that runs the AMI bridge; it applies each node's events in
order and writes every change to the store and the bus.  Web instances read through the same
store (Redis in production), so they need no AMI connection.

Failure policy: live state is a cache of what Asterisk knows, and the database has the records.
So a bus failure loses that message (wallboards catch up on the next change or by reading the
API), and a store failure is logged and repaired by rewriting the affected nodes in full on the
next change.  Neither ever stops events from being applied.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from datetime import tzinfo
from zoneinfo import ZoneInfo

from callcenter.ami.events import CallEvent
from callcenter.ami.normalize import DEFAULT_INBOUND_CONTEXTS
from callcenter.bus import BusError, EventBus
from callcenter.state.amilists import AmiItem, AmiSnapshot
from callcenter.state.model import Change, Item, LiveAgent, LiveCall, LiveQueue, item_key
from callcenter.state.publish import channel_of, compact
from callcenter.state.regions import Regions
from callcenter.state.resync import ResyncResult, resync_tracker
from callcenter.state.store import LiveStore, LiveStoreError, MemoryLiveStore, node_of
from callcenter.state.tracker import ENDED_MEMORY, Tracker

__all__ = ["LiveState"]

log = logging.getLogger(__name__)

Clock = Callable[[], float]


class LiveState:
    def __init__(
        self,
        regions: Regions,
        *,
        store: LiveStore | None = None,
        bus: EventBus | None = None,
        tz: tzinfo | None = None,
        clock: Clock = time.time,
        inbound_contexts: Collection[str] = DEFAULT_INBOUND_CONTEXTS,
        memory: int = ENDED_MEMORY,
    ) -> None:
        """``regions`` decides who sees what; ``clock`` stands in when events carry no
        ``Timestamp`` (``timestampevents = no``, the Asterisk default); ``memory`` is how many
        ended calls are remembered (:data:`~callcenter.state.tracker.ENDED_MEMORY`)."""
        self.regions = regions
        self.store = store if store is not None else MemoryLiveStore()
        self.bus = bus
        self.clock = clock
        self.inbound_contexts = frozenset(inbound_contexts)
        self.tracker = Tracker(regions, tz=tz or ZoneInfo("Asia/Shanghai"), memory=memory)
        self._lock = asyncio.Lock()
        self._nodes: set[str] = set()
        self._store_stale = False
        self._store_failing = False
        self._bus_failures = 0

    # ------------------------------------------------------------------ writing

    async def apply(self, event: CallEvent) -> list[Change]:
        """Apply one event (in the node's order); returns the changes it caused."""
        now = event.timestamp if event.timestamp is not None else self.clock()
        async with self._lock:
            self._nodes.add(event.node)
            try:
                changes = self.tracker.apply(event, now)
            except Exception:  # a bug must not stop the node's event consumer
                log.exception("live state: cannot apply %s", type(event).__name__)
                changes = self.tracker.commit()  # keep store and model in step
            await self._emit(changes)
        return changes

    async def resync(
        self,
        node: str,
        channels: Iterable[AmiItem],
        queue_params: Iterable[AmiItem],
        queue_members: Iterable[AmiItem],
        queue_entries: Iterable[AmiItem],
        now: float | None = None,
        *,
        queue_summaries: Iterable[AmiItem] = (),
    ) -> ResyncResult:
        """Rebuild ``node`` from list-action items (see :mod:`callcenter.state.resync`)."""
        snap = AmiSnapshot.parse(
            channels, queue_params, queue_members, queue_entries, queue_summaries
        )
        async with self._lock:
            self._nodes.add(node)
            self.tracker.begin(self.clock() if now is None else now)
            result = resync_tracker(self.tracker, node, snap, self.inbound_contexts)
            changes = self.tracker.commit()
            self._store_stale = True  # a resync rewrites the node's entries in full
            await self._emit(changes)
        log.info(
            "live state: node %s resynced: %d call(s) live, %d closed, %d new",
            node,
            len(result.live),
            len(result.closed),
            len(result.created),
        )
        return result

    async def _emit(self, changes: Sequence[Change]) -> None:
        await self._write(changes)
        await self._publish(changes)

    async def _write(self, changes: Sequence[Change]) -> None:
        try:
            if self._store_stale:
                for node in sorted(self._nodes):
                    await self.store.replace_node(node, self.items(node))
            elif changes:
                await self.store.write(changes)
        except LiveStoreError as exc:
            if not self._store_failing:
                log.warning("live state: store write failed, it will be rewritten: %s", exc)
            self._store_failing = self._store_stale = True
            return
        if self._store_failing:
            log.info("live state: store rewritten after a failure")
        self._store_failing = self._store_stale = False

    async def _publish(self, changes: Sequence[Change]) -> None:
        if self.bus is None:
            return
        for change in changes:
            try:
                await self.bus.publish(channel_of(change), compact(change))
            except (BusError, ValueError) as exc:
                self._bus_failures += 1
                if self._bus_failures % 1000 == 1:
                    log.warning(
                        "live state: publish failed (%d so far): %s", self._bus_failures, exc
                    )

    async def close(self) -> None:
        """Close the store's connections (the shared data stays for other instances)."""
        await self.store.close()

    # ------------------------------------------------------------------ reading (this process)

    def items(self, node: str | None = None) -> list[Item]:
        """Every item of ``node`` (or of all nodes) in this process's model."""
        t = self.tracker
        every: list[Item] = [*t.calls.values(), *t.queues.values(), *t.agents.values()]
        return [i for i in every if node is None or node_of(i.key) == node]

    def call(self, node: str, linkedid: str) -> LiveCall | None:
        return self.tracker.calls.get(item_key(node, linkedid))

    def queue(self, node: str, name: str) -> LiveQueue | None:
        return self.tracker.queues.get(item_key(node, name))

    def agent(self, node: str, interface: str) -> LiveAgent | None:
        return self.tracker.agents.get(item_key(node, interface))

    @property
    def calls(self) -> list[LiveCall]:
        return list(self.tracker.calls.values())

    @property
    def queues(self) -> list[LiveQueue]:
        return list(self.tracker.queues.values())

    @property
    def agents(self) -> list[LiveAgent]:
        return list(self.tracker.agents.values())
