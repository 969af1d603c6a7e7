"""Build live state from the settings (for the composition root).

Redis when ``CALLCENTER_REDIS_URL`` is set, so every web instance reads the same live state;
otherwise in process (embedded mode: one process runs the bridge and the API).
"""

from __future__ import annotations

from collections.abc import Mapping

from callcenter.bus import EventBus
from callcenter.regions.provinces import load_province, province_file
from callcenter.settings import Settings
from callcenter.state.live import LiveState
from callcenter.state.redis_store import RedisLiveStore
from callcenter.state.regions import AgentRegion, Locate, Regions
from callcenter.state.store import LiveStore, MemoryLiveStore

__all__ = ["make_live_state", "make_live_store", "make_regions"]


def make_live_store(settings: Settings) -> LiveStore:
    if settings.redis_url:
        return RedisLiveStore.from_url(settings.redis_url, settings.redis_prefix)
    return MemoryLiveStore()


def make_regions(
    settings: Settings,
    *,
    locate: Locate | None = None,
    agent_region: AgentRegion | None = None,
    queues: Mapping[str, str] | None = None,
) -> Regions:
    """The province file's queues, plus ``queues`` (e.g. from :func:`queue_regions_from_db`)."""
    data = load_province(province_file(settings.province_code))
    return Regions.from_province(
        data, locate=locate, agent_region=agent_region, extra_queues=queues
    )


def make_live_state(
    settings: Settings,
    bus: EventBus | None,
    *,
    locate: Locate | None = None,
    agent_region: AgentRegion | None = None,
    queues: Mapping[str, str] | None = None,
) -> LiveState:
    regions = make_regions(settings, locate=locate, agent_region=agent_region, queues=queues)
    return LiveState(regions, store=make_live_store(settings), bus=bus, tz=settings.tz)
