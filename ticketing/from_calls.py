"""Every call a seat answers becomes an electronic call ticket (话务工单), exactly once.

Where the signal comes from: live state publishes every change of a call on the event bus
(``live.<region>.calls``, see :mod:`callcenter.state.publish`); a call that a seat answered
carries ``answered_at`` and ``agent_extension``. Those messages carry *masked* numbers and the
bus is best effort, so the message is only a trigger: the ticket is made from the ``calls``
row the call recorder writes (full number, geocoded region, IVR service type, agent), and a
periodic sweep (:meth:`CallTicketer.catch_up`) makes the tickets of answered calls whose
message was lost (a bus outage, a restart of this process).

Exactly once: the ``call_tickets`` row (primary key = the call) is inserted in the same
transaction as the ticket; a second delivery, a concurrent worker or the sweep hits the key and
rolls its ticket back. A seat may still file further tickets for the same call by hand (a caller
with two matters), with ``source_call_id`` set; only the automatic one is unique.

What the ticket holds (the seat's console completes it): channel phone, the caller's number
and geocoded region, ``source_call_id``, category and request type from the IVR service type
(``wage_arrears`` is 法律援助 with the green channel; no choice: 法律咨询/咨询), state 受理, created
by the answering agent's user when the seat is bound to one, region of the queue that served
the call (else the caller's region, else the province), and a Chinese placeholder content
(:data:`PLACEHOLDER`) that names the call; the seat replaces it with what was asked and answered
through the ``amend`` action (补录修改). Repeat calls are linked like any new ticket.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from callcenter.aio import sleep_unless
from callcenter.bus import EventBus
from callcenter.bus.base import BusError, Subscription
from callcenter.db.base import utcnow
from callcenter.db.models import Call, Queue, Region, RegionLevel, Seat
from callcenter.routing.calendar import SHANGHAI
from ticketing import sla
from ticketing.catalogue import Category, Channel, RequestType, Urgency, label
from ticketing.models import CallTicket, Ticket, TicketHistory
from ticketing.numbers import next_number
from ticketing.repeats import DEFAULT_WINDOW_DAYS, link_repeat
from ticketing.states import Action, State

__all__ = ["PLACEHOLDER", "SERVICE_TYPES", "CallTicketer", "ticket_for_call"]

log = logging.getLogger(__name__)

CLOSE_GRACE_S: Final = 5.0
"""How long :meth:`CallTicketer.close` lets ticket writes in progress finish."""

PLACEHOLDER: Final = "【待坐席补录】{at} 来电，坐席 {extension} 接听，IVR 选择：{service}。"
"""Content of a new call ticket until the seat writes the caller's matter."""


@dataclass(frozen=True, slots=True)
class ServiceMapping:
    category: Category
    request_type: RequestType
    green_channel: bool = False


SERVICE_TYPES: Final[Mapping[str, ServiceMapping]] = {
    "legal_consult": ServiceMapping(Category.LEGAL_CONSULTATION, RequestType.CONSULTATION),
    "legal_aid": ServiceMapping(Category.LEGAL_AID, RequestType.HELP),
    "mediation": ServiceMapping(Category.MEDIATION, RequestType.HELP),
    "notary": ServiceMapping(Category.NOTARIZATION, RequestType.CONSULTATION),
    "lawyer_service": ServiceMapping(Category.LAWYER_SERVICE, RequestType.CONSULTATION),
    "publicity": ServiceMapping(Category.LEGAL_PUBLICITY, RequestType.CONSULTATION),
    "complaint": ServiceMapping(Category.COMPLAINT_SUGGESTION, RequestType.COMPLAINT),
    "wage_arrears": ServiceMapping(Category.LEGAL_AID, RequestType.HELP, green_channel=True),
}
"""IVR service types (``callcenter/routing/rules.default.yaml``) → ticket vocabulary."""
_DEFAULT: Final = ServiceMapping(Category.LEGAL_CONSULTATION, RequestType.CONSULTATION)


async def _existing(session: AsyncSession, call_id: int) -> int | None:
    found = await session.scalar(select(CallTicket.ticket_id).where(CallTicket.call_id == call_id))
    return int(found) if found is not None else None


async def _region(session: AsyncSession, call: Call) -> str:
    if call.queue_name:
        code = await session.scalar(select(Queue.region_code).where(Queue.name == call.queue_name))
        if code is not None:
            return str(code)
    if call.caller_region_code:
        return call.caller_region_code
    province = await session.scalar(
        select(Region.code).where(Region.level == RegionLevel.PROVINCE.value).order_by(Region.code)
    )
    if province is None:
        raise LookupError("no province region seeded")
    return str(province)


async def _agent_user(session: AsyncSession, call: Call) -> int | None:
    if call.agent_user_id is not None:
        return call.agent_user_id
    if not call.agent_extension:
        return None
    user = await session.scalar(select(Seat.user_id).where(Seat.extension == call.agent_extension))
    return int(user) if user is not None else None


async def ticket_for_call(
    sessions: async_sessionmaker[AsyncSession],
    call_id: int,
    *,
    tz: tzinfo = SHANGHAI,
    policy: sla.SlaPolicy = sla.DEFAULT_POLICY,
    repeat_window_days: int = DEFAULT_WINDOW_DAYS,
) -> int | None:
    """The ticket of an answered call, made now if it has none; None if not answered (yet)."""
    async with sessions() as session:
        found = await _existing(session, call_id)
        if found is not None:
            return found
        call = await session.get(Call, call_id)
        if call is None or call.answered_at is None:
            return None
        ticket = await _make_ticket(session, call, tz, policy, repeat_window_days)
        session.add(CallTicket(call_id=call.id, ticket_id=ticket.id, created_at=ticket.created_at))
        try:
            await session.commit()
        except IntegrityError:
            await session.rollback()  # made by another worker meanwhile: theirs stands
            found = await _existing(session, call_id)
            if found is None:
                raise
            return found
        log.info("call %s/%s: ticket %s created", call.node, call.linkedid, ticket.number)
        return ticket.id


async def _make_ticket(
    session: AsyncSession, call: Call, tz: tzinfo, policy: sla.SlaPolicy, window: int
) -> Ticket:
    now = utcnow()
    service = SERVICE_TYPES.get(call.service_type or "", _DEFAULT)
    region = await _region(session, call)
    answered = call.answered_at or now
    content = PLACEHOLDER.format(
        at=f"{answered.astimezone(tz):%Y-%m-%d %H:%M}",
        extension=call.agent_extension or "未知",
        service=label(service.category) if call.service_type in SERVICE_TYPES else "未选择",
    )
    actor = await _agent_user(session, call)
    ticket = Ticket(
        number=await next_number(session, region, now.astimezone(tz).date()),
        region_code=region,
        source_call_id=call.id,
        channel=Channel.PHONE.value,
        caller_number=call.caller_number,
        caller_region_code=call.caller_region_code,
        category=service.category.value,
        request_type=service.request_type.value,
        content=content,
        urgency=Urgency.NORMAL.value,
        green_channel=service.green_channel,
        resolved_on_call=False,
        satisfaction=call.satisfaction,  # the caller may have answered the IVR survey already
        created_by_id=actor,
        **sla.opening_values(
            now,
            category=service.category,
            urgency=Urgency.NORMAL,
            green_channel=service.green_channel,
            policy=policy,
            tz=tz,
        ),
    )
    session.add(ticket)
    await session.flush()
    session.add(
        TicketHistory(
            ticket_id=ticket.id,
            at=now,
            actor_id=actor,
            action=Action.CREATE.value,
            from_state=None,
            to_state=State.ACCEPTED.value,
            reason="来电接通自动生成话务工单",
            details={"call_id": call.id, "node": call.node, "linkedid": call.linkedid},
        )
    )
    await link_repeat(session, ticket, now, window)
    return ticket


# --- the subscriber ---------------------------------------------------------------------------

CHANNEL_PATTERN: Final = "live.*.calls"


def answered_call_key(data: Mapping[str, Any]) -> tuple[str, str] | None:
    """``(node, linkedid)`` of a bus message saying a seat answered a call, else None."""
    if data.get("op") != "upsert" or data.get("kind") != "calls":
        return None
    item = data.get("item")
    if not isinstance(item, Mapping):
        return None
    node, linkedid = item.get("node"), item.get("linkedid")
    if not item.get("answered_at") or not item.get("agent_extension"):
        return None
    if not isinstance(node, str) or not isinstance(linkedid, str):
        return None
    return node, linkedid


class CallTicketer:
    """Bus subscriber + periodic sweep that give every answered call its ticket."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        bus: EventBus,
        *,
        tz: tzinfo = SHANGHAI,
        repeat_window_days: int = DEFAULT_WINDOW_DAYS,
        sweep_every: float = 60.0,
        sweep_window: timedelta = timedelta(hours=24),
        row_wait: tuple[float, ...] = (0.05, 0.2, 0.5, 1.0, 2.0, 5.0),
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.sessions = sessions
        self.bus = bus
        self.tz = tz
        self.repeat_window_days = repeat_window_days
        self.sweep_every = sweep_every
        self.sweep_window = sweep_window
        self.row_wait = row_wait
        self.clock = clock
        self._seen: dict[tuple[str, str], None] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._inflight: set[asyncio.Task[int | None]] = set()
        self._stopping = asyncio.Event()

    async def start(self) -> None:
        """Subscribe (returns once subscribed), sweep once, then keep sweeping."""
        subscription = await self.bus.subscribe(CHANNEL_PATTERN).open()
        self._tasks.append(asyncio.create_task(self._listen(subscription), name="call-tickets"))
        self._tasks.append(asyncio.create_task(self._sweeper(), name="call-tickets-sweep"))

    async def close(self) -> None:
        """Stop taking work, let writes in progress finish (for ``CLOSE_GRACE_S`` at most),
        then stop. Cancelling a write mid-statement can leave a database connection unclosed;
        whatever is left undone is the next start's sweep's."""
        self._stopping.set()
        listener, *working = self._tasks
        listener.cancel()  # it only waits for messages
        pending = [*working, *self._inflight]
        if pending:
            _, late = await asyncio.wait(pending, timeout=CLOSE_GRACE_S)
            for task in late:
                task.cancel()
        await asyncio.gather(listener, *pending, return_exceptions=True)
        self._tasks.clear()
        self._inflight.clear()

    async def __aenter__(self) -> CallTicketer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _listen(self, subscription: Subscription) -> None:
        """Opened already by :meth:`start` (so no message published after it is missed)."""
        try:
            async for message in subscription:
                key = answered_call_key(message.data)
                if key is None or key in self._seen:
                    continue
                self._remember(key)
                task = asyncio.create_task(self.handle(*key))
                self._inflight.add(task)
                task.add_done_callback(self._inflight.discard)
        finally:
            await subscription.aclose()

    def _remember(self, key: tuple[str, str]) -> None:
        self._seen[key] = None
        if len(self._seen) > 10_000:
            self._seen.pop(next(iter(self._seen)))

    async def handle(self, node: str, linkedid: str) -> int | None:
        """Wait for the recorder's row (it writes asynchronously), then make the ticket."""
        try:
            for delay in (0.0, *self.row_wait):
                if await sleep_unless(self._stopping, delay):
                    return None  # closing: the next start's sweep makes it
                call_id = await self._answered_call(node, linkedid)
                if call_id is not None:
                    return await self._ticket(call_id)
            log.warning(
                "call %s/%s answered but not recorded yet; the sweep will retry", node, linkedid
            )
        except Exception:  # the listener must survive a database outage; the sweep retries
            log.exception(
                "call %s/%s: ticket not created now; the sweep will retry", node, linkedid
            )
        return None

    async def _answered_call(self, node: str, linkedid: str) -> int | None:
        async with self.sessions() as session:
            found = await session.scalar(
                select(Call.id).where(
                    Call.node == node, Call.linkedid == linkedid, Call.answered_at.is_not(None)
                )
            )
            return int(found) if found is not None else None

    async def _ticket(self, call_id: int) -> int | None:
        return await ticket_for_call(
            self.sessions, call_id, tz=self.tz, repeat_window_days=self.repeat_window_days
        )

    async def catch_up(self) -> int:
        """Tickets for answered calls of the last ``sweep_window`` that have none; how many."""
        since = self.clock() - self.sweep_window
        async with self.sessions() as session:
            rows = await session.scalars(
                select(Call.id)
                .outerjoin(CallTicket, CallTicket.call_id == Call.id)
                .where(Call.answered_at >= since, CallTicket.call_id.is_(None))
                .order_by(Call.id)
                .limit(1000)
            )
            missing = [int(i) for i in rows]
        made = 0
        for call_id in missing:
            async with self.sessions() as session:
                had = await _existing(session, call_id)
            if had is None and await self._ticket(call_id) is not None:
                made += 1
        return made

    async def _sweeper(self) -> None:
        while not self._stopping.is_set():
            try:
                made = await self.catch_up()
                if made:
                    log.info("call tickets: %d made by the sweep", made)
            except (OSError, BusError, TimeoutError) as exc:
                log.warning("call tickets: sweep failed: %s", exc)
            except Exception:
                log.exception("call tickets: sweep failed")
            await sleep_unless(self._stopping, self.sweep_every)
