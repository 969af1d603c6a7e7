"""Load a province data file into the database: idempotent, safe to run on every start."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from callcenter.db.models import Queue, QueueKind, Region, RegionLevel
from callcenter.regions.provinces import ProvinceData, RegionEntry


@dataclass(frozen=True, slots=True)
class SeedResult:
    regions_added: int
    queues_added: int


async def _upsert_region(
    session: AsyncSession, entry: RegionEntry, level: RegionLevel, parent: str | None
) -> bool:
    region = await session.get(Region, entry.code)
    added = region is None
    if region is None:
        region = Region(code=entry.code)
        session.add(region)
    region.name, region.name_en, region.area_code = entry.name, entry.name_en, entry.area_code
    region.level, region.parent_code = level.value, parent
    await session.flush()
    return added


async def _upsert_queue(
    session: AsyncSession, name: str, display: str, kind: QueueKind, region_code: str
) -> bool:
    queue = (await session.execute(select(Queue).where(Queue.name == name))).scalar_one_or_none()
    added = queue is None
    if queue is None:
        queue = Queue(name=name)
        session.add(queue)
    queue.display_name, queue.kind, queue.region_code = display, kind.value, region_code
    return added


async def seed_province(session: AsyncSession, data: ProvinceData) -> SeedResult:
    """Create or update the province, its cities, one queue per city and the provincial ones."""
    regions = queues = 0
    province = data.province
    regions += await _upsert_region(session, province, RegionLevel.PROVINCE, None)
    for city in data.cities:
        regions += await _upsert_region(session, city, RegionLevel.CITY, province.code)
        queues += await _upsert_queue(
            session, data.city_queue_name(city.code), f"{city.name}12348", QueueKind.CITY, city.code
        )
    for entry, kind in (
        (data.queues.provincial, QueueKind.PROVINCE),
        (data.queues.duty, QueueKind.DUTY),
    ):
        queues += await _upsert_queue(session, entry.name, entry.display_name, kind, province.code)
    await session.commit()
    return SeedResult(regions_added=regions, queues_added=queues)
