"""The caller's satisfaction (IVR survey) on the call and on every ticket made from the call.

The survey runs after the seat hangs up, so the call row exists; the ticket, if the seat saved
one, carries ``source_call_id``. A 回访 result already on a ticket is not overwritten.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from callcenter.db.base import utcnow
from callcenter.db.models import Call
from ivr_flows.errors import IvrUnavailable
from ticketing.catalogue import Satisfaction
from ticketing.models import Ticket

log = logging.getLogger(__name__)


class SurveyStore:
    """``await store(node, linkedid, level)``; ``settle`` waits for pending call records."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        settle: Callable[[], Awaitable[None]] | None = None,
        attempts: int = 3,
        retry_s: float = 0.3,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._settle = settle
        self._attempts = attempts
        self._retry_s = retry_s

    async def __call__(self, node: str, linkedid: str, level: str) -> None:
        Satisfaction(level)  # ValueError for anything but the five levels
        for attempt in range(1, self._attempts + 1):
            if self._settle is not None:
                await self._settle()
            tickets = await self._write(node, linkedid, level)
            if tickets is not None:
                log.info(
                    "IVR survey %s stored on call %s and %d ticket(s)", level, linkedid, tickets
                )
                return
            if attempt < self._attempts:
                await asyncio.sleep(self._retry_s * attempt)
        raise IvrUnavailable(f"call {linkedid} on {node} is not recorded: survey not stored")

    async def _write(self, node: str, linkedid: str, level: str) -> int | None:
        async with self._sessionmaker() as session, session.begin():
            call_id = (
                await session.execute(
                    select(Call.id).where(Call.node == node[:64], Call.linkedid == linkedid[:96])
                )
            ).scalar_one_or_none()
            if call_id is None:
                return None
            await session.execute(update(Call).where(Call.id == call_id).values(satisfaction=level))
            result = await session.execute(
                update(Ticket)
                .where(Ticket.source_call_id == call_id, Ticket.satisfaction.is_(None))
                .values(satisfaction=level, version=Ticket.version + 1, updated_at=utcnow())
            )
            return int(getattr(result, "rowcount", 0) or 0)
