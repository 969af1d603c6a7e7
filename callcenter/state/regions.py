"""Which region a queue, a call and an agent belong to (for scoping and per-region channels).

Queues are the anchor: ``city-<code>`` queues belong to their city, the provincial queues to the
province (``regions/data/330000.yaml``; the ``queues`` table says the same once seeded).  A call
belongs to the region of the queue it is in (or was last in); before it reaches a queue, to the
caller's own region as far as ``locate`` can tell; otherwise to the province, which sees
everything.  ``locate`` is injected because geocoding belongs to the routing package.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from callcenter.db.models import Queue
from callcenter.regions.provinces import ProvinceData

__all__ = ["AgentRegion", "Locate", "Regions", "queue_regions_from_db"]

log = logging.getLogger(__name__)

Locate = Callable[[str | None], str | None]
"""Caller number → region code (GB/T 2260) or None when unknown."""
AgentRegion = Callable[[str], str | None]
"""Queue member interface → region code of the seat, or None when unknown."""


class Regions:
    def __init__(
        self,
        default_region: str,
        queues: Mapping[str, str] | None = None,
        *,
        locate: Locate | None = None,
        agent_region: AgentRegion | None = None,
    ) -> None:
        self.default_region = default_region
        self._queues = dict(queues or {})
        self._locate = locate
        self._agent_region = agent_region

    @classmethod
    def from_province(
        cls,
        data: ProvinceData,
        *,
        locate: Locate | None = None,
        agent_region: AgentRegion | None = None,
        extra_queues: Mapping[str, str] | None = None,
    ) -> Regions:
        """City queues to their city, the provincial and duty queues to the province."""
        province = data.province.code
        queues = {data.city_queue_name(city.code): city.code for city in data.cities}
        queues[data.queues.provincial.name] = province
        queues[data.queues.duty.name] = province
        queues.update(extra_queues or {})
        return cls(province, queues, locate=locate, agent_region=agent_region)

    def queue(self, name: str | None) -> str | None:
        return self._queues.get(name) if name else None

    def queue_or_default(self, name: str) -> str:
        return self.queue(name) or self.default_region

    def caller(self, number: str | None) -> str | None:
        """The caller's region; a failing ``locate`` must not stop live state, so it is logged."""
        if self._locate is None or not number:
            return None
        try:
            return self._locate(number)
        except Exception:
            log.exception("live state: locate() failed for a caller number")
            return None

    def call(self, queue: str | None, caller_region: str | None) -> str:
        return self.queue(queue) or caller_region or self.default_region

    def agent(self, interface: str, queues: Iterable[str]) -> str:
        """The seat's own region if known, else its most specific queue's region."""
        if self._agent_region is not None:
            try:
                found = self._agent_region(interface)
            except Exception:
                log.exception("live state: agent_region() failed for %s", interface)
                found = None
            if found:
                return found
        regions = sorted({r for q in queues if (r := self.queue(q))}, key=_specificity)
        return regions[0] if regions else self.default_region


def _specificity(code: str) -> tuple[int, str]:
    """County before city before province (``330402`` < ``330400`` < ``330000``)."""
    return (code.endswith("0000") + code.endswith("00"), code)


async def queue_regions_from_db(session: AsyncSession) -> dict[str, str]:
    """Queue name → region code from the ``queues`` table (for :class:`Regions`)."""
    rows = await session.execute(select(Queue.name, Queue.region_code))
    return {name: code for name, code in rows}
