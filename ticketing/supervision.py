"""SLA supervision: yellow and red cards, 督办 records and escalation to a supervisor.

A scanner looks at every open ticket's deadlines: ``accept_by`` while it is not yet signed for
(受理/派单), ``resolve_by`` until it is resolved. A **yellow card** (黄牌) is issued when the time
left falls to the warning window — the smaller of one working day and a quarter of the time
the ticket was given (so a one-day 签收 deadline warns 6 working hours ahead, an emergency's
one hour 15 minutes ahead); a **red card** (红牌) once the deadline has passed. A red card opens
a **督办** record escalated to the region's supervisor (the county's, else the city's, else the
province's; the one with the fewest open 督办 first), marks the ticket supervised, and all of it
is written to the ticket history in the same transaction.

Time left is counted on the working-day calendar (holidays do not count, 调休 make-up days do),
except an emergency's 签收 hour, which runs on the wall clock like its deadline.

Exactly once: the card's unique key (ticket, deadline kind, deadline, colour) is inserted with
``ON CONFLICT DO NOTHING``; whoever inserts it writes the history and the 督办, anyone else
(a second scanner process, the next scan) finds it there and does nothing. A deadline moved by
an extension is a new deadline and may earn new cards. Events (ids and region only) go on the
bus after the commit: ``ticket.sla.yellow.<region>``, ``ticket.sla.red.<region>``,
``ticket.supervision.opened.<region>`` (and ``…closed…``); subscribe to ``ticket.*``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta, tzinfo
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    CursorResult,
    Table,
    and_,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from callcenter.auth.principal import Principal, region_prefix_of
from callcenter.bus import EventBus
from callcenter.bus.base import BusError
from callcenter.db.base import utcnow
from callcenter.db.models import Role, User
from callcenter.errors import Conflict, NotFound
from callcenter.jobs.registry import Job, JobContext
from callcenter.routing.calendar import SHANGHAI, is_working_day, local_time
from ticketing.assignment import regions_up
from ticketing.catalogue import Urgency
from ticketing.models import (
    CardKind,
    DeadlineKind,
    SlaCard,
    Supervision,
    SupervisionState,
    Ticket,
    TicketHistory,
)
from ticketing.sla import add_working_days
from ticketing.states import Action, State

log = logging.getLogger(__name__)

_HISTORY = cast(Table, TicketHistory.__table__)
_UNSIGNED = (State.ACCEPTED.value, State.DISPATCHED.value)
_OPEN = (*_UNSIGNED, State.SIGNED.value, State.IN_PROGRESS.value)
_DEADLINE_LABELS = {DeadlineKind.ACCEPT: "签收时限", DeadlineKind.RESOLVE: "办结时限"}


class SupervisionClosed(Conflict):
    """The 督办 record is already closed (or was closed by someone else just now)."""

    error_id = "supervision-closed"


@dataclass(frozen=True, slots=True)
class SupervisionPolicy:
    """When the yellow card comes: ``min(yellow_before, yellow_share × time given)`` ahead."""

    yellow_before: timedelta = timedelta(days=1)
    yellow_share: float = 0.25

    def __post_init__(self) -> None:
        if not 0 < self.yellow_share <= 1:
            raise ValueError(f"yellow_share must be in (0, 1], got {self.yellow_share}")
        if self.yellow_before <= timedelta(0):
            raise ValueError("yellow_before must be positive")


DEFAULT_POLICY = SupervisionPolicy()


# --- time left on the working-day calendar ------------------------------------------------------


def working_time_between(start: datetime, end: datetime, tz: tzinfo = SHANGHAI) -> timedelta:
    """Time from ``start`` to ``end`` that falls on official working days (local days in
    ``tz``); zero when ``end`` is not after ``start``."""
    if end <= start:
        return timedelta(0)
    first, last = local_time(start, tz), local_time(end, tz)
    total = timedelta(0)
    day = first.date()
    while day <= last.date():
        if is_working_day(day):
            day_start = datetime.combine(day, time(0), tzinfo=tz)
            lo = max(first, day_start)
            hi = min(last, day_start + timedelta(days=1))
            if hi > lo:
                total += hi - lo
        day += timedelta(days=1)
    return total


@dataclass(frozen=True, slots=True)
class DueCard:
    kind: CardKind
    deadline_kind: DeadlineKind
    deadline: datetime
    left: timedelta
    """Time left (working or wall clock, see the module docstring); zero when overdue."""


@dataclass(frozen=True, slots=True)
class TicketClock:
    """The columns of a ticket the scanner needs (a row, not an ORM object)."""

    id: int
    region_code: str
    state: str
    urgency: str
    created_at: datetime
    accept_by: datetime
    resolve_by: datetime


def _deadlines(ticket: TicketClock) -> list[tuple[DeadlineKind, datetime]]:
    if ticket.state not in _OPEN:
        return []
    found = [(DeadlineKind.RESOLVE, ticket.resolve_by)]
    if ticket.state in _UNSIGNED:
        found.insert(0, (DeadlineKind.ACCEPT, ticket.accept_by))
    return found


def due_cards(
    ticket: TicketClock,
    now: datetime,
    policy: SupervisionPolicy = DEFAULT_POLICY,
    tz: tzinfo = SHANGHAI,
) -> list[DueCard]:
    """The card each of the ticket's running deadlines deserves at ``now`` (pure)."""
    cards = []
    for kind, deadline in _deadlines(ticket):
        if now >= deadline:
            cards.append(DueCard(CardKind.RED, kind, deadline, timedelta(0)))
            continue
        wall = kind is DeadlineKind.ACCEPT and ticket.urgency == Urgency.EMERGENCY.value
        measure: Callable[[datetime, datetime], timedelta] = (
            (lambda a, b: b - a) if wall else (lambda a, b: working_time_between(a, b, tz))
        )
        given = measure(ticket.created_at, deadline)
        window = min(policy.yellow_before, given * policy.yellow_share)
        left = measure(now, deadline)
        if left <= window:
            cards.append(DueCard(CardKind.YELLOW, kind, deadline, left))
    return cards


def _horizon(now: datetime, policy: SupervisionPolicy, tz: tzinfo) -> datetime:
    """No deadline after this instant can be due for a card at ``now``."""
    days = math.ceil(policy.yellow_before / timedelta(days=1))
    return max(add_working_days(now, days, tz).astimezone(UTC), now + policy.yellow_before)


# --- the scanner ----------------------------------------------------------------------------------


@dataclass(slots=True)
class ScanReport:
    at: datetime
    candidates: int = 0
    yellow: list[int] = field(default_factory=list)
    """Ids of the yellow cards this scan issued (likewise ``red``)."""
    red: list[int] = field(default_factory=list)
    supervisions: list[int] = field(default_factory=list)
    lost: int = 0
    """Cards another scanner issued first (or tickets that moved on meanwhile)."""

    def summary(self) -> str:
        return (
            f"SLA scan at {self.at.isoformat()}: {self.candidates} tickets near or past a "
            f"deadline, {len(self.yellow)} yellow, {len(self.red)} red, "
            f"{len(self.supervisions)} 督办 opened"
        )


@dataclass(slots=True)
class _Issued:
    card_id: int
    kind: CardKind
    deadline_kind: DeadlineKind
    deadline: datetime
    ticket_id: int
    number: str
    region_code: str
    state: str
    version: int
    assignee_id: int | None
    supervision_id: int | None = None
    supervisor_id: int | None = None


class SlaScanner:
    """Issues due cards for every open ticket; safe to run in several processes at once."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        bus: EventBus,
        *,
        policy: SupervisionPolicy = DEFAULT_POLICY,
        tz: tzinfo = SHANGHAI,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.bus = bus
        self.policy = policy
        self.tz = tz

    async def scan(self, now: datetime | None = None) -> ScanReport:
        """One pass; ``now`` (aware) lets tests and replays set the clock."""
        now = (now or utcnow()).astimezone(UTC)
        report = ScanReport(at=now)
        async with self.sessionmaker() as session:
            tickets = await _candidates(session, _horizon(now, self.policy, self.tz))
            issued = await _existing_cards(session, [t.id for t in tickets])
        report.candidates = len(tickets)
        for ticket in tickets:
            due = [
                c
                for c in due_cards(ticket, now, self.policy, self.tz)
                if not _has(issued, ticket, c)
            ]
            if not due:
                continue
            done, lost = await self._issue(ticket, due, now)
            report.lost += lost
            for card in done:
                (report.red if card.kind is CardKind.RED else report.yellow).append(card.card_id)
                if card.supervision_id is not None:
                    report.supervisions.append(card.supervision_id)
                await self._publish(card, now)
        if report.yellow or report.red:
            log.info("%s", report.summary())
        return report

    async def _issue(
        self, clock: TicketClock, cards: list[DueCard], now: datetime
    ) -> tuple[list[_Issued], int]:
        """A ticket's due cards in one transaction: each card, its history row and, for red,
        the 督办. Returns what was issued and how many cards someone else had issued first
        (or no longer applied: the ticket was signed, resolved or extended meanwhile)."""
        issued: list[_Issued] = []
        async with self.sessionmaker() as session:
            ticket = await _lock_ticket(session, clock.id)
            if ticket is None:
                return [], len(cards)
            for card in cards:
                if not _still_due(ticket, card, now, self.policy, self.tz):
                    continue
                card_id = await _insert_card(session, ticket, card, now)
                if card_id is None:
                    continue
                done = _Issued(
                    card_id,
                    card.kind,
                    card.deadline_kind,
                    card.deadline,
                    ticket.id,
                    ticket.number,
                    ticket.region_code,
                    ticket.state,
                    ticket.version,
                    ticket.assignee_id,
                )
                details = {
                    "card_id": card_id,
                    "deadline_kind": card.deadline_kind.value,
                    "deadline": card.deadline.isoformat(),
                }
                reason = _card_reason(card, self.tz)
                await _history(session, ticket, _card_action(card), now, reason, details)
                if card.kind is CardKind.RED:
                    await _open_supervision(session, ticket, card, card_id, now, done)
                issued.append(done)
            await session.commit()
        return issued, len(cards) - len(issued)

    async def _publish(self, done: _Issued, now: datetime) -> None:
        """Best effort, after the commit: the database is the record."""
        base = {"ticket_id": done.ticket_id, "region_code": done.region_code, "at": now.isoformat()}
        events: list[tuple[str, dict[str, Any]]] = [
            (
                f"ticket.sla.{done.kind.value}",
                {
                    **base,
                    "card_id": done.card_id,
                    "deadline_kind": done.deadline_kind.value,
                    "deadline": done.deadline.isoformat(),
                },
            )
        ]
        if done.supervision_id is not None:
            events.append(
                (
                    "ticket.supervision.opened",
                    {
                        **base,
                        "supervision_id": done.supervision_id,
                        "card_id": done.card_id,
                        "supervisor_id": done.supervisor_id,
                    },
                )
            )
            ticket_event = {
                "event": "ticket",
                "action": Action.SUPERVISE.value,
                **base,
                "number": done.number,
                "from_state": done.state,
                "state": done.state,
                "version": done.version,
                "assignee_id": done.assignee_id,
            }
            events.append(("tickets", ticket_event))
        for name, payload in events:
            channel = f"{name}.{done.region_code}"
            event = payload if name == "tickets" else {"event": name, **payload}
            try:
                await self.bus.publish(channel, event)
            except BusError as exc:
                log.warning("ticket %s: %s not published: %s", done.number, name, exc)


def _has(issued: set[CardKey], ticket: TicketClock, card: DueCard) -> bool:
    """Already issued, or superseded: no yellow once the same deadline has its red card."""
    key = (ticket.id, card.deadline_kind.value, card.deadline)
    return (*key, card.kind.value) in issued or (*key, CardKind.RED.value) in issued


def _still_due(
    ticket: Ticket, card: DueCard, now: datetime, policy: SupervisionPolicy, tz: tzinfo
) -> bool:
    key = (card.kind, card.deadline_kind, card.deadline)
    return any(
        (c.kind, c.deadline_kind, c.deadline) == key
        for c in due_cards(_clock_of(ticket), now, policy, tz)
    )


def _clock_of(ticket: Ticket) -> TicketClock:
    return TicketClock(
        ticket.id,
        ticket.region_code,
        ticket.state,
        ticket.urgency,
        ticket.created_at,
        ticket.accept_by,
        ticket.resolve_by,
    )


def _red_for(kind: DeadlineKind, column: Any) -> ColumnElement[bool]:
    return exists().where(
        SlaCard.ticket_id == Ticket.id,
        SlaCard.kind == CardKind.RED.value,
        SlaCard.deadline_kind == kind.value,
        SlaCard.deadline == column,
    )


async def _candidates(session: AsyncSession, horizon: datetime) -> list[TicketClock]:
    """Open tickets with a deadline before ``horizon`` that still lacks its red card."""
    accept_due = and_(
        Ticket.state.in_(_UNSIGNED),
        Ticket.accept_by <= horizon,
        ~_red_for(DeadlineKind.ACCEPT, Ticket.accept_by),
    )
    resolve_due = and_(
        Ticket.resolve_by <= horizon, ~_red_for(DeadlineKind.RESOLVE, Ticket.resolve_by)
    )
    rows = await session.execute(
        select(
            Ticket.id,
            Ticket.region_code,
            Ticket.state,
            Ticket.urgency,
            Ticket.created_at,
            Ticket.accept_by,
            Ticket.resolve_by,
        )
        .where(Ticket.state.in_(_OPEN), or_(accept_due, resolve_due))
        .order_by(Ticket.id)
    )
    return [TicketClock(*row) for row in rows]


CardKey = tuple[int, str, datetime, str]


async def _existing_cards(session: AsyncSession, ticket_ids: Sequence[int]) -> set[CardKey]:
    found: set[CardKey] = set()
    for start in range(0, len(ticket_ids), 500):
        chunk = ticket_ids[start : start + 500]
        rows = await session.execute(
            select(SlaCard.ticket_id, SlaCard.deadline_kind, SlaCard.deadline, SlaCard.kind).where(
                SlaCard.ticket_id.in_(chunk)
            )
        )
        found.update((int(t), str(dk), d, str(k)) for t, dk, d, k in rows)
    return found


async def _lock_ticket(session: AsyncSession, ticket_id: int) -> Ticket | None:
    """The ticket, locked until commit on PostgreSQL (SQLite serialises writers anyway)."""
    return await session.scalar(select(Ticket).where(Ticket.id == ticket_id).with_for_update())


async def _insert_card(
    session: AsyncSession, ticket: Ticket, card: DueCard, now: datetime
) -> int | None:
    """``INSERT … ON CONFLICT DO NOTHING RETURNING id``: the id only for the first writer."""
    dialect = session.get_bind().dialect.name
    values = {
        "ticket_id": ticket.id,
        "region_code": ticket.region_code,
        "kind": card.kind.value,
        "deadline_kind": card.deadline_kind.value,
        "deadline": card.deadline,
        "issued_at": now,
    }
    table = cast(Table, SlaCard.__table__)
    keys = ["ticket_id", "deadline_kind", "deadline", "kind"]
    if dialect == "postgresql":
        stmt: Any = (
            postgresql.insert(table).values(values).on_conflict_do_nothing(index_elements=keys)
        )
    elif dialect == "sqlite":
        stmt = sqlite.insert(table).values(values).on_conflict_do_nothing(index_elements=keys)
    else:  # pragma: no cover - the platform runs on these two
        raise RuntimeError(f"unsupported database {dialect}")
    card_id = await session.scalar(stmt.returning(table.c.id))
    return int(card_id) if card_id is not None else None


def _card_action(card: DueCard) -> Action:
    return Action.SLA_RED if card.kind is CardKind.RED else Action.SLA_YELLOW


def _card_reason(card: DueCard, tz: tzinfo) -> str:
    when = local_time(card.deadline, tz).strftime("%Y-%m-%d %H:%M")
    what = _DEADLINE_LABELS[card.deadline_kind]
    if card.kind is CardKind.RED:
        return f"红牌: 已超过{what} ({when})"
    hours = card.left.total_seconds() / 3600
    return f"黄牌: 距{what} ({when}) 仅剩 {hours:.1f} 小时"


async def _history(
    session: AsyncSession,
    ticket: Ticket,
    action: Action,
    now: datetime,
    reason: str,
    details: dict[str, Any],
) -> None:
    """A system row (no actor): the state does not change."""
    await session.execute(
        insert(_HISTORY).values(
            ticket_id=ticket.id,
            at=now,
            actor_id=None,
            action=action.value,
            from_state=ticket.state,
            to_state=ticket.state,
            reason=reason,
            details=details,
        )
    )


async def _open_supervision(
    session: AsyncSession,
    ticket: Ticket,
    card: DueCard,
    card_id: int,
    now: datetime,
    done: _Issued,
) -> None:
    supervisor = await pick_supervisor(session, ticket.region_code)
    supervision_id = await session.scalar(
        insert(Supervision)
        .values(
            ticket_id=ticket.id,
            card_id=card_id,
            region_code=ticket.region_code,
            deadline_kind=card.deadline_kind.value,
            deadline=card.deadline,
            state=SupervisionState.OPEN.value,
            supervisor_id=supervisor.id if supervisor else None,
            opened_at=now,
            version=1,
        )
        .returning(Supervision.id)
    )
    tickets = cast(Table, Ticket.__table__)
    version = await session.scalar(
        update(tickets)
        .where(tickets.c.id == ticket.id)
        .values(supervised=True, version=tickets.c.version + 1, updated_at=now)
        .returning(tickets.c.version)
    )
    escalated = (
        f"提级至 {supervisor.display_name or supervisor.username} ({supervisor.region_code})"
        if supervisor
        else "本地区及上级均无督办人员, 待指派"
    )
    what = _DEADLINE_LABELS[card.deadline_kind]
    await _history(
        session,
        ticket,
        Action.SUPERVISE,
        now,
        f"超过{what}, 自动督办, {escalated}",
        {
            "supervision_id": supervision_id,
            "card_id": card_id,
            "supervisor_id": supervisor.id if supervisor else None,
        },
    )
    done.supervision_id = int(supervision_id) if supervision_id is not None else None
    done.supervisor_id = supervisor.id if supervisor else None
    done.version = int(version or 0)


async def open_ordered(
    session: AsyncSession, principal: Principal, ticket: Ticket, reason: str, now: datetime
) -> tuple[int, int]:
    """A 督办 a supervisor orders by hand (the ``supervise`` action), in the caller's
    transaction: it watches the deadline running now and is the orderer's to follow up (an
    admin's goes to the region's supervisor). Returns its id and its supervisor's."""
    running = _deadlines(_clock_of(ticket))
    kind, deadline = running[0] if running else (DeadlineKind.RESOLVE, ticket.resolve_by)
    owner_id = principal.user_id
    if principal.role is not Role.SUPERVISOR:
        supervisor = await pick_supervisor(session, ticket.region_code)
        owner_id = supervisor.id if supervisor else principal.user_id
    supervision_id = await session.scalar(
        insert(Supervision)
        .values(
            ticket_id=ticket.id,
            card_id=None,
            region_code=ticket.region_code,
            deadline_kind=kind.value,
            deadline=deadline,
            state=SupervisionState.OPEN.value,
            supervisor_id=owner_id,
            opened_by_id=principal.user_id,
            reason=reason,
            opened_at=now,
            version=1,
        )
        .returning(Supervision.id)
    )
    return int(supervision_id or 0), owner_id


async def announce_ordered(
    bus: EventBus, ticket: Ticket, supervision_id: int, supervisor_id: int, now: datetime
) -> None:
    """``ticket.supervision.opened`` for a 督办 ordered by hand, as for one the scanner opened
    (after the commit; best effort: the record is in the database)."""
    event = {
        "event": "ticket.supervision.opened",
        "ticket_id": ticket.id,
        "region_code": ticket.region_code,
        "at": now.isoformat(),
        "supervision_id": supervision_id,
        "card_id": None,
        "supervisor_id": supervisor_id,
    }
    try:
        await bus.publish(f"ticket.supervision.opened.{ticket.region_code}", event)
    except BusError as exc:
        log.warning("ticket %s: 督办 %s not published: %s", ticket.number, supervision_id, exc)


async def pick_supervisor(session: AsyncSession, region_code: str) -> User | None:
    """The active supervisor nearest the ticket's region (county, city, province) with the
    fewest open 督办 records, then the lowest id."""
    open_count = (
        select(func.count(Supervision.id))
        .where(
            Supervision.supervisor_id == User.id,
            Supervision.state == SupervisionState.OPEN.value,
        )
        .scalar_subquery()
    )
    for code in regions_up(region_code):
        user = await session.scalar(
            select(User)
            .where(
                User.role == Role.SUPERVISOR.value,
                User.is_active.is_(True),
                User.region_code == code,
            )
            .order_by(open_count, User.id)
            .limit(1)
        )
        if user is not None:
            return user
    return None


# --- reading and closing 督办 (the API's service) --------------------------------------------


@dataclass(frozen=True, slots=True)
class SupervisionRow:
    record: Supervision
    ticket_number: str
    ticket_state: str
    supervisor_username: str | None


@dataclass(frozen=True, slots=True)
class SupervisionFilter:
    state: SupervisionState | None = None
    deadline_kind: DeadlineKind | None = None
    region: str | None = None
    ticket_id: int | None = None
    supervisor_id: int | None = None
    limit: int = 50
    offset: int = 0


@dataclass(frozen=True, slots=True)
class CardFilter:
    kind: CardKind | None = None
    deadline_kind: DeadlineKind | None = None
    region: str | None = None
    ticket_id: int | None = None
    limit: int = 50
    offset: int = 0


class SupervisionService:
    """Region-scoped reads of cards and 督办 records, and closing a 督办 with a note.
    Roles are checked by the routes (supervisor and admin)."""

    def __init__(self, session: AsyncSession, bus: EventBus, *, clock: Callable[[], datetime]):
        self.session = session
        self.bus = bus
        self.clock = clock

    def _scope(self, principal: Principal, column: Any, region: str | None) -> list[Any]:
        filters = [column.startswith(principal.region_prefix, autoescape=True)]
        if region is not None:
            if not principal.can_see_region(region):
                raise NotFound(f"region {region} not found", region=region)
            filters.append(column.startswith(region_prefix_of(region), autoescape=True))
        return filters

    async def search(
        self, principal: Principal, query: SupervisionFilter
    ) -> tuple[list[SupervisionRow], int]:
        filters = self._scope(principal, Supervision.region_code, query.region)
        if query.state is not None:
            filters.append(Supervision.state == query.state.value)
        if query.deadline_kind is not None:
            filters.append(Supervision.deadline_kind == query.deadline_kind.value)
        if query.ticket_id is not None:
            filters.append(Supervision.ticket_id == query.ticket_id)
        if query.supervisor_id is not None:
            filters.append(Supervision.supervisor_id == query.supervisor_id)
        total = await self.session.scalar(select(func.count(Supervision.id)).where(*filters))
        rows = await self.session.execute(
            self._rows()
            .where(*filters)
            .order_by(Supervision.id.desc())
            .limit(query.limit)
            .offset(query.offset)
        )
        return [SupervisionRow(*row) for row in rows], int(total or 0)

    @staticmethod
    def _rows() -> Any:
        return (
            select(Supervision, Ticket.number, Ticket.state, User.username)
            .join(Ticket, Ticket.id == Supervision.ticket_id)
            .outerjoin(User, User.id == Supervision.supervisor_id)
        )

    async def get(self, principal: Principal, supervision_id: int) -> SupervisionRow:
        row = (
            await self.session.execute(self._rows().where(Supervision.id == supervision_id))
        ).first()
        if row is None or not principal.can_see_region(row[0].region_code):
            raise NotFound(f"supervision {supervision_id} not found", supervision_id=supervision_id)
        return SupervisionRow(*row)

    async def close(self, principal: Principal, supervision_id: int, note: str) -> SupervisionRow:
        """Close an open 督办 (conditional on its version: closing twice is a 409)."""
        row = await self.get(principal, supervision_id)
        record = row.record
        if record.state != SupervisionState.OPEN.value:
            raise _already_closed(record)
        now = self.clock().astimezone(UTC)
        result = cast(
            CursorResult[Any],
            await self.session.execute(
                update(Supervision)
                .where(
                    Supervision.id == record.id,
                    Supervision.version == record.version,
                    Supervision.state == SupervisionState.OPEN.value,
                )
                .values(
                    state=SupervisionState.CLOSED.value,
                    closed_at=now,
                    closed_by_id=principal.user_id,
                    note=note,
                    version=record.version + 1,
                )
            ),
        )
        if result.rowcount != 1:
            await self.session.rollback()
            raise _already_closed(record)
        self.session.add(  # the ticket's history tells the whole story, 督办 closure included
            TicketHistory(
                ticket_id=record.ticket_id,
                at=now,
                actor_id=principal.user_id,
                action=Action.SUPERVISE.value,
                from_state=row.ticket_state,
                to_state=row.ticket_state,
                reason=f"督办办结：{note}",
                details={"supervision_id": record.id, "closed": True},
            )
        )
        await self.session.commit()
        await self._publish_closed(record, principal, now)
        return await self.get(principal, supervision_id)

    async def _publish_closed(
        self, record: Supervision, principal: Principal, now: datetime
    ) -> None:
        event = {
            "event": "ticket.supervision.closed",
            "supervision_id": record.id,
            "ticket_id": record.ticket_id,
            "region_code": record.region_code,
            "closed_by_id": principal.user_id,
            "at": now.isoformat(),
        }
        try:
            await self.bus.publish(f"ticket.supervision.closed.{record.region_code}", event)
        except BusError as exc:
            log.warning("supervision %s: close not published: %s", record.id, exc)

    async def cards(self, principal: Principal, query: CardFilter) -> tuple[list[SlaCard], int]:
        filters = self._scope(principal, SlaCard.region_code, query.region)
        if query.kind is not None:
            filters.append(SlaCard.kind == query.kind.value)
        if query.deadline_kind is not None:
            filters.append(SlaCard.deadline_kind == query.deadline_kind.value)
        if query.ticket_id is not None:
            filters.append(SlaCard.ticket_id == query.ticket_id)
        total = await self.session.scalar(select(func.count(SlaCard.id)).where(*filters))
        rows = await self.session.scalars(
            select(SlaCard)
            .where(*filters)
            .order_by(SlaCard.id.desc())
            .limit(query.limit)
            .offset(query.offset)
        )
        return list(rows.all()), int(total or 0)


def _already_closed(record: Supervision) -> SupervisionClosed:
    return SupervisionClosed(
        f"supervision {record.id} is already closed", supervision_id=record.id, state="closed"
    )


# --- the background job ---------------------------------------------------------------------

SCAN_JOB = "sla_scan"


def scan_job(every: timedelta, policy: SupervisionPolicy = DEFAULT_POLICY) -> Job:
    """The scanner as a background job. ``now`` (ISO 8601, aware) may be passed to replay a
    moment; production runs never pass it."""

    async def run(context: JobContext, kwargs: Mapping[str, Any]) -> str:
        raw = kwargs.get("now")
        now = None
        if raw is not None:
            now = datetime.fromisoformat(str(raw))
            if now.tzinfo is None:
                raise ValueError(f"now must carry a time zone, got {raw!r}")
        scanner = SlaScanner(
            context.sessionmaker, context.bus, policy=policy, tz=context.settings.tz
        )
        return (await scanner.scan(now)).summary()

    return Job(SCAN_JOB, run, every=every, description="SLA 黄牌/红牌/督办 scan")
