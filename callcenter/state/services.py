"""Reading live state for one user: region scope, number masking, list caps.

Reads go through the store, not the in-process model, so every web instance answers the same.
A ``region`` asked for outside the user's scope is a 404 (its existence does not leak); without
``region`` the user gets every region they may see.  ``region`` has the same meaning as a user's
own region: a city code covers the city and its counties, the province code the whole province.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from callcenter.auth.principal import Principal, is_region_code, region_prefix_of
from callcenter.db.models import Seat
from callcenter.errors import NotFound
from callcenter.privacy import can_see_full_number, mask_name, mask_phone
from callcenter.state.live import LiveState
from callcenter.state.model import LiveAgent, LiveCall, LiveQueue, WaitingCaller
from callcenter.state.records import to_datetime as _dt
from callcenter.state.schemas import (
    AgentOut,
    AgentsOut,
    CallOut,
    CallsOut,
    MembershipOut,
    QueueOut,
    QueuesOut,
    WaitingOut,
)
from callcenter.state.store import Accept

__all__ = ["MAX_ITEMS", "LiveReader", "region_filter"]

MAX_ITEMS = 500
"""More than a whole province's live calls at peak; a bigger answer is cut and says so."""

T = TypeVar("T")


def region_filter(principal: Principal, region: str | None) -> Accept:
    if region is None:
        return principal.can_see_region
    if not is_region_code(region) or not principal.can_see_region(region):
        raise NotFound("no such region", region=region)
    prefix = region_prefix_of(region)
    return lambda code: code.startswith(prefix) and principal.can_see_region(code)


def _cap(items: list[T]) -> tuple[list[T], int, bool]:
    return items[:MAX_ITEMS], len(items), len(items) > MAX_ITEMS


class LiveReader:
    def __init__(
        self, live: LiveState, session: AsyncSession, clock: Callable[[], float] = time.time
    ) -> None:
        self._live = live
        self._session = session
        self._clock = clock

    async def calls(self, principal: Principal, region: str | None) -> CallsOut:
        found = await self._live.store.calls(region_filter(principal, region))
        items, total, truncated = _cap(sorted(found, key=lambda c: (c.offered_at, c.key)))
        owners = await self._seat_users(c.agent_extension for c in items)
        out = [
            _call_out(c, not can_see_full_number(principal, owners.get(c.agent_extension or "")))
            for c in items
        ]
        return CallsOut(items=out, total=total, truncated=truncated)

    async def queues(self, principal: Principal, region: str | None) -> QueuesOut:
        found = await self._live.store.queues(region_filter(principal, region))
        items, total, truncated = _cap(sorted(found, key=lambda q: (q.region_code, q.key)))
        mask = not can_see_full_number(principal, None)  # nobody handles a waiting caller yet
        now = self._clock()
        out = [_queue_out(q, mask, now) for q in items]
        return QueuesOut(items=out, total=total, truncated=truncated)

    async def agents(self, principal: Principal, region: str | None) -> AgentsOut:
        found = await self._live.store.agents(region_filter(principal, region))
        items, total, truncated = _cap(sorted(found, key=lambda a: (a.region_code, a.key)))
        return AgentsOut(items=[_agent_out(a) for a in items], total=total, truncated=truncated)

    async def _seat_users(self, extensions: Iterable[str | None]) -> dict[str, int]:
        """Extension → user id of the seats handling these calls (for the masking policy)."""
        wanted = sorted({e for e in extensions if e})
        if not wanted:
            return {}
        query = select(Seat.extension, Seat.user_id).where(
            Seat.extension.in_(wanted), Seat.user_id.is_not(None)
        )
        rows = await self._session.execute(query)
        return {ext: user for ext, user in rows if user is not None}


def _call_out(call: LiveCall, mask: bool) -> CallOut:
    return CallOut(
        node=call.node,
        linkedid=call.linkedid,
        state=call.state,
        state_since=_dt(call.state_since),
        region_code=call.region_code,
        caller_region_code=call.caller_region_code,
        caller_number=mask_phone(call.caller_number) if mask else call.caller_number,
        caller_name=mask_name(call.caller_name) if mask else call.caller_name,
        number_masked=mask,
        queue=call.queue,
        position=call.position,
        agent_extension=call.agent_extension,
        agent_name=call.agent_name,
        offered_at=_dt(call.offered_at),
        queued_at=_dt(call.queued_at) if call.queued_at is not None else None,
        answered_at=_dt(call.answered_at) if call.answered_at is not None else None,
        ivr_path=list(call.ivr_path),
        recording=call.recording,
        transfer_target=call.transfer_target,
    )


def _waiting_out(w: WaitingCaller, mask: bool, now: float) -> WaitingOut:
    return WaitingOut(
        linkedid=w.linkedid,
        caller_number=mask_phone(w.caller_number) if mask else w.caller_number,
        caller_name=mask_name(w.caller_name) if mask else w.caller_name,
        number_masked=mask,
        position=w.position,
        since=_dt(w.since),
        wait_s=max(0, int(now - w.since)),
    )


def _queue_out(q: LiveQueue, mask: bool, now: float) -> QueueOut:
    oldest = q.longest_wait_since
    return QueueOut(
        node=q.node,
        name=q.name,
        region_code=q.region_code,
        waiting=[_waiting_out(w, mask, now) for w in q.waiting[:MAX_ITEMS]],
        waiting_count=len(q.waiting),
        longest_wait_s=max(0, int(now - oldest)) if oldest is not None else None,
        answered_today=q.answered_today,
        abandoned_today=q.abandoned_today,
        overflowed_today=q.overflowed_today,
    )


def _agent_out(a: LiveAgent) -> AgentOut:
    return AgentOut(
        node=a.node,
        interface=a.interface,
        extension=a.extension,
        member_name=a.member_name,
        region_code=a.region_code,
        state=a.state,
        state_since=_dt(a.state_since),
        reason=a.reason,
        queues=[MembershipOut(queue=m.queue, state=m.state) for m in a.queues],
        current_call=a.current_call,
        answered_today=a.answered_today,
        missed_today=a.missed_today,
        talk_seconds_today=int(a.talk_seconds_today),
    )
