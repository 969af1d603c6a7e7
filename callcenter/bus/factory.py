"""Pick the event-bus backend from the settings."""

from __future__ import annotations

import logging
from typing import Protocol

from callcenter.bus.base import EventBus
from callcenter.bus.memory import MemoryBus
from callcenter.bus.redis import RedisBus

logger = logging.getLogger(__name__)


class BusSettings(Protocol):
    """The part of ``callcenter.settings.Settings`` the bus needs (keeps tests light)."""

    @property
    def redis_url(self) -> str | None: ...

    @property
    def redis_prefix(self) -> str: ...


def make_bus(settings: BusSettings) -> EventBus:
    """Redis when ``CALLCENTER_REDIS_URL`` is set, else in-process (single process only).

    The bus is returned unstarted: the caller awaits ``start()`` so that an unreachable Redis
    surfaces as ``BusUnavailable`` at startup, where it can be reported.
    """
    if not settings.redis_url:
        logger.info("event bus: in-process; set CALLCENTER_REDIS_URL to share it between processes")
        return MemoryBus()
    bus = RedisBus(settings.redis_url, prefix=settings.redis_prefix)
    logger.info("event bus: Redis at %s, prefix %r", bus.safe_url, bus.prefix)
    return bus
