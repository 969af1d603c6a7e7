"""Event bus for live fan-out (wallboards, live state): lossy by design, ordered per channel.

``make_bus(settings)`` returns a :class:`MemoryBus` (one process) or a :class:`RedisBus`
(shared, survives Redis restarts); both implement :class:`EventBus`.
"""

from callcenter.bus.base import (
    BusClosed,
    BusError,
    BusMessage,
    BusUnavailable,
    EventBus,
    Subscription,
)
from callcenter.bus.factory import BusSettings, make_bus
from callcenter.bus.memory import MemoryBus
from callcenter.bus.redis import RedisBus

__all__ = [
    "BusClosed",
    "BusError",
    "BusMessage",
    "BusSettings",
    "BusUnavailable",
    "EventBus",
    "MemoryBus",
    "RedisBus",
    "Subscription",
    "make_bus",
]
