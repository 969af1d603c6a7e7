"""Ticket use cases: create, read, search, and every life-cycle action, with their history.

Every change is one transaction: a conditional ``UPDATE tickets … WHERE id = :id AND version =
:read_version`` plus one ``ticket_history`` row. If someone else changed the ticket in between
(two agents claiming it at once), the update matches no row and the loser gets a 409 naming
the state the ticket is in now; no read-then-write race, no lost history. Checks run in a fixed
order so that nothing leaks: role (403) → ticket visible in the caller's region (404, also for
another region's ticket) → state allows the action (409) → the action's own rules.
Changes are published on the event bus (``tickets.<region code>``) after the commit, best
effort: the database is the record, the bus only tells live screens to refresh.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, tzinfo
from typing import Any, Final, TypeVar, cast

from sqlalchemy import (
    ColumnElement,
    CursorResult,
    Table,
    bindparam,
    column,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql.dml import ReturningUpdate

from callcenter.auth.principal import Principal, region_prefix_of
from callcenter.bus import EventBus
from callcenter.bus.base import BusError
from callcenter.db.base import utcnow
from callcenter.db.models import Call, Region, Role, User
from callcenter.errors import DomainError, InvalidInput, NotFound, PermissionDenied
from callcenter.routing.calendar import SHANGHAI
from ticketing import assignment, sla
from ticketing import search as text_search
from ticketing.catalogue import Category, Urgency
from ticketing.errors import ExtensionRefused, NotAssignee, TicketChanged
from ticketing.followup import DEFAULT_POLICY as DEFAULT_FOLLOWUP
from ticketing.followup import FollowupPolicy, schedule_return_visits
from ticketing.models import Ticket, TicketHistory
from ticketing.numbers import assign_numbers, provisional_number
from ticketing.repeats import DEFAULT_WINDOW_DAYS, link_repeats
from ticketing.schemas import (
    AMENDABLE,
    ActionBody,
    AmendBody,
    DispatchBody,
    ExtensionBody,
    ReopenBody,
    ResolveBody,
    TicketCreate,
    TicketQuery,
    VisitBody,
)
from ticketing.states import (
    ACTION_ROLES,
    FOLLOWUP_VISIBLE,
    SINGLE_ONLY,
    Action,
    State,
    describe_action,
    describe_state,
    needs_assignee,
    target_state,
)
from ticketing.supervision import announce_ordered, open_ordered

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
# Core tables for the hot writes: plain statements skip the ORM's unit-of-work bookkeeping.
_TICKETS = cast(Table, Ticket.__table__)
_HISTORY = cast(Table, TicketHistory.__table__)
B = TypeVar("B", bound=ActionBody)


def can_see_caller_number(principal: Principal, ticket: Ticket) -> bool:
    """Full caller numbers for whoever works the ticket, follow-up staff (they call back) and
    admins; others see ``138****0001`` (see ``callcenter.privacy``)."""
    if principal.role in (Role.ADMIN, Role.FOLLOWUP):
        return True
    return principal.user_id in (ticket.assignee_id, ticket.created_by_id)


@dataclass(frozen=True, slots=True)
class Change:
    """What an action writes besides state and version, and what its history row records."""

    values: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Planned:
    """An item of :meth:`TicketService.act_many` that passed its checks: what to write."""

    index: int
    ticket: Ticket
    current: State
    target: State
    change: Change
    history: dict[str, Any]


def _at_item(exc: InvalidInput, prefix: str) -> InvalidInput:
    """The same field error, its fields named within a batch (``tickets.3.region_code``)."""
    fields = [{**f, "field": prefix + f["field"]} for f in exc.details.get("fields", [])]
    return InvalidInput(exc.message, **{**exc.details, "fields": fields})


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    row: TicketHistory
    actor_username: str | None


class TicketService:
    """One per request: a session, the bus, a clock (tests pass a fixed one), the SLA policy."""

    def __init__(
        self,
        session: AsyncSession,
        bus: EventBus,
        *,
        clock: Clock = utcnow,
        tz: tzinfo = SHANGHAI,
        policy: sla.SlaPolicy = sla.DEFAULT_POLICY,
        followup: FollowupPolicy = DEFAULT_FOLLOWUP,
        repeat_window_days: int = DEFAULT_WINDOW_DAYS,
        rules: assignment.RuleSet | None = None,
    ) -> None:
        self.session = session
        self.bus = bus
        self.clock = clock
        self.tz = tz
        self.policy = policy
        self.followup = followup
        self.repeat_window_days = repeat_window_days
        self.rules = rules
        """Assignment rules for a dispatch without a target; ``None``: the configured file."""
        self._pending_loads: dict[int, int] = {}
        """Open tickets each agent gains (or loses) by the current batch's earlier dispatches:
        not yet written, so least-loaded choices would not see them otherwise."""
        self._users: dict[int, User] = {}
        """Users looked up by this service (the session keeps only weak references)."""

    # --- reading ------------------------------------------------------------------------

    async def get(self, principal: Principal, ticket_id: int) -> Ticket:
        """The ticket, or 404 when it does not exist *or* the caller may not see it."""
        ticket = await self.session.get(Ticket, ticket_id)
        if ticket is None or not _visible(principal, ticket):
            raise NotFound(f"ticket {ticket_id} not found", ticket_id=ticket_id)
        return ticket

    async def search(self, principal: Principal, query: TicketQuery) -> tuple[list[Ticket], int]:
        """One page of visible tickets and the total matching count: newest first, or with
        ``q`` most relevant first (see :mod:`ticketing.search`)."""
        filters = _filters(principal, query)
        page = select(Ticket)
        if query.q is not None:
            terms = text_search.terms(query.q)
            filters.append(text_search.match(terms, self.session.get_bind().dialect.name))
            page = text_search.ordered(page, terms)
        else:
            page = page.order_by(Ticket.id.desc())
        page = page.where(*filters).limit(query.limit).offset(query.offset)
        total = await self.session.scalar(select(func.count(Ticket.id)).where(*filters))
        return list((await self.session.scalars(page)).all()), int(total or 0)

    async def history(
        self, principal: Principal, ticket_id: int
    ) -> tuple[Ticket, list[HistoryEntry]]:
        ticket = await self.get(principal, ticket_id)
        rows = await self.session.execute(
            select(TicketHistory, User.username)
            .outerjoin(User, User.id == TicketHistory.actor_id)
            .where(TicketHistory.ticket_id == ticket_id)
            .order_by(TicketHistory.id)
        )
        return ticket, [HistoryEntry(row, name) for row, name in rows]

    # --- creating -----------------------------------------------------------------------

    async def create(self, principal: Principal, body: TicketCreate) -> Ticket:
        """受理 a new ticket; with ``resolved_on_call`` it is closed at once (一次办结)."""
        return (await self.create_many(principal, [body]))[0]

    async def create_many(
        self, principal: Principal, bodies: Sequence[TicketCreate], *, located: str = ""
    ) -> list[Ticket]:
        """受理 tickets in one transaction, all or none (批量受理); in order, so their numbers
        are consecutive per region. A field error names the item: ``{located}{i}.{field}``
        (``located`` empty: a single ticket, the bare field name).

        Set-based: one INSERT for the tickets, one for their history, one counter upsert per
        region, one look-up for repeat calls; per ticket only what differs (deadlines).
        """
        _check_role(principal, Action.CREATE)
        for i, body in enumerate(bodies):
            region_code = body.region_code or principal.region_code
            try:
                await self._check_new_ticket(principal, body, region_code)
            except InvalidInput as exc:
                raise _at_item(exc, f"{located}{i}.") if located else exc from None
        now = self._now()
        rows = [self._new_row(principal, body, now) for body in bodies]
        stmt = insert(Ticket).returning(Ticket, sort_by_parameter_order=True)
        tickets = list((await self.session.scalars(stmt, rows)).all())
        history: list[dict[str, Any]] = []
        for ticket in tickets:
            history.append(
                _history_row(ticket, principal, Action.CREATE, None, State.ACCEPTED, now)
            )
            if ticket.resolved_on_call:
                reason = "一次办结: answered on the call"
                history.append(
                    _history_row(
                        ticket,
                        principal,
                        Action.RESOLVE,
                        State.ACCEPTED,
                        State.RESOLVED,
                        now,
                        reason,
                    )
                )
        await self.session.execute(insert(_HISTORY), history)
        await text_search.index_tickets(
            self.session, [(t.id, t.content, t.answer) for t in tickets]
        )
        await link_repeats(self.session, tickets, now, self.repeat_window_days)
        await assign_numbers(self.session, tickets, self._local_day(now))
        closed = [t for t in tickets if t.resolved_on_call]  # (after the numbers: sampling)
        await schedule_return_visits(self.session, closed, now, self.followup, new_tickets=True)
        await self.session.commit()
        await self._publish([(t, Action.CREATE, None) for t in tickets], now)
        return tickets

    def _new_row(self, principal: Principal, body: TicketCreate, now: datetime) -> dict[str, Any]:
        """The INSERT values of a new ticket; 一次办结 closed in the row itself (no UPDATE)."""
        row = {
            "number": provisional_number(),  # the real one last: see assign_numbers
            "region_code": body.region_code or principal.region_code,
            **body.model_dump(mode="json", exclude={"region_code"}),
            **sla.opening_values(
                now,
                category=Category(body.category),
                urgency=Urgency(body.urgency),
                green_channel=body.green_channel,
                policy=self.policy,
                tz=self.tz,
            ),
            "created_by_id": principal.user_id,
        }
        if body.resolved_on_call:
            row.update(state=State.RESOLVED.value, version=2, result=body.answer, resolved_at=now)
        return row

    async def _check_new_ticket(
        self, principal: Principal, body: TicketCreate, region_code: str
    ) -> None:
        if not principal.can_see_region(region_code):
            raise InvalidInput.at("region_code", f"region {region_code} is outside your scope")
        regions = {"region_code": region_code, "caller_region_code": body.caller_region_code}
        for name, code in regions.items():
            if code is not None and not await _region_exists(self.session, code):
                raise InvalidInput.at(name, f"unknown region {code}")
        if body.source_call_id is not None:
            call = await self.session.get(Call, body.source_call_id)
            mine = call is not None and call.agent_user_id == principal.user_id
            if call is None or not (mine or principal.can_see_region(call.caller_region_code)):
                raise InvalidInput.at("source_call_id", f"unknown call {body.source_call_id}")

    def _now(self) -> datetime:
        """Always UTC, like everything read back from the database."""
        return self.clock().astimezone(UTC)

    def _local_day(self, when: datetime) -> date:
        return when.astimezone(self.tz).date()

    # --- acting -------------------------------------------------------------------------

    async def act(
        self, principal: Principal, ticket_id: int, action: Action, body: ActionBody
    ) -> Ticket:
        """Apply ``action`` (not ``create``) if the rules allow it; one history row per change."""
        [outcome] = await self.act_many(principal, action, [(ticket_id, body)])
        if isinstance(outcome, DomainError):
            raise outcome
        return outcome

    async def act_many(
        self, principal: Principal, action: Action, items: Sequence[tuple[int, ActionBody]]
    ) -> list[Ticket | DomainError]:
        """Apply ``action`` to each (ticket id, body): per item the ticket, changed, or the
        error the single action would raise for it (404, 409, 403, 400). The changes commit
        together; a failed item changes nothing. Role, and an action that cannot be batched
        (:data:`~ticketing.states.SINGLE_ONLY`), fail the whole call.

        Checks run per ticket in the order described above; the writes are set-based (one
        conditional UPDATE per shape of change, one INSERT of history rows), and a ticket
        someone else changed in between is a 409 for that item alone.
        """
        step = _STEPS.get(action)
        if step is None:
            raise NotFound(f"unknown action {action.value}")
        _check_role(principal, action)
        if len(items) > 1 and action in SINGLE_ONLY:
            raise NotFound(f"{describe_action(action)} ({action.value}) is not a batch action")
        found = await self._load([ticket_id for ticket_id, _ in items])
        self._pending_loads.clear()
        now = self._now()
        outcomes: list[Ticket | DomainError] = []
        planned: list[_Planned] = []
        for ticket_id, body in items:
            ticket = found.get(ticket_id)
            try:
                if ticket is None or not _visible(principal, ticket):
                    raise NotFound(f"ticket {ticket_id} not found", ticket_id=ticket_id)
                current = State(ticket.state)
                if body.version is not None and body.version != ticket.version:
                    raise _stale(ticket)
                target = target_state(action, current, number=ticket.number)
                if needs_assignee(action, current):
                    _check_assignee(principal, ticket, action)
                change = await step(self, principal, ticket, body, now)
            except DomainError as exc:
                outcomes.append(exc)
                continue
            history = _history_row(
                ticket, principal, action, current, target, now, body.reason, change.details
            )
            planned.append(_Planned(len(outcomes), ticket, current, target, change, history))
            outcomes.append(ticket)
        lost = await self._apply(planned, now)
        for plan in planned:
            if plan.ticket.id in lost:
                outcomes[plan.index] = await self._changed(plan.ticket.id, action)
        done = [p for p in planned if p.ticket.id not in lost]
        if not done:
            await self.session.rollback()
            return outcomes
        if action is Action.RESOLVE:  # 办结: the sampling policy may owe callers a visit
            await schedule_return_visits(self.session, [p.ticket for p in done], now, self.followup)
        await self.session.commit()
        await self._publish([(p.ticket, action, p.current) for p in done], now)
        if action is Action.SUPERVISE:
            for plan in done:
                opened = plan.change.details
                await announce_ordered(
                    self.bus, plan.ticket, opened["supervision_id"], opened["supervisor_id"], now
                )
        return outcomes

    async def _load(self, ids: Sequence[int]) -> dict[int, Ticket]:
        rows = await self.session.scalars(select(Ticket).where(Ticket.id.in_(set(ids))))
        return {ticket.id: ticket for ticket in rows}

    async def _apply(self, planned: Sequence[_Planned], now: datetime) -> set[int]:
        """The conditional updates and their history rows; the ids that lost a race (changed
        by someone else since they were read: no row updated, no history written)."""
        shapes: dict[tuple[str, ...], list[tuple[_Planned, dict[str, Any]]]] = {}
        for plan in planned:
            values = {
                **plan.change.values,
                "state": plan.target.value,
                "version": plan.ticket.version + 1,
                "updated_at": now,
            }
            shapes.setdefault(tuple(sorted(values)), []).append((plan, values))
        moved: set[int] = set()
        for columns, group in shapes.items():
            moved |= await self._update(columns, group)
        done = [(p, v) for group in shapes.values() for p, v in group if p.ticket.id in moved]
        if done:
            await self.session.execute(insert(_HISTORY), [p.history for p, _ in done])
        reindex = []
        for plan, values in done:
            for key, value in values.items():
                set_committed_value(plan.ticket, key, value)
            if "content" in values or "answer" in values:
                reindex.append((plan.ticket.id, plan.ticket.content, plan.ticket.answer))
        await text_search.index_tickets(self.session, reindex)
        return {p.ticket.id for p in planned} - moved

    async def _update(
        self, columns: tuple[str, ...], group: list[tuple[_Planned, dict[str, Any]]]
    ) -> set[int]:
        """One shape of change: on PostgreSQL a single statement (:func:`_bulk_update`);
        elsewhere one conditional UPDATE per ticket. The ids updated."""
        table = _TICKETS
        if self.session.get_bind().dialect.name != "postgresql":
            moved = set()
            for plan, values in group:
                stmt = (
                    update(table)
                    .where(table.c.id == plan.ticket.id, table.c.version == plan.ticket.version)
                    .values(**values)
                )
                result = cast(CursorResult[Any], await self.session.execute(stmt))
                if result.rowcount == 1:
                    moved.add(plan.ticket.id)
            return moved
        params: dict[str, list[Any]] = {
            "b_id": [plan.ticket.id for plan, _ in group],
            "b_read_version": [plan.ticket.version for plan, _ in group],
        }
        for name in columns:
            params[name] = [values[name] for _, values in group]
        rows = await self.session.execute(_bulk_update(columns), params)
        return {int(row[0]) for row in rows}

    async def _changed(self, ticket_id: int, action: Action) -> DomainError:
        """Why a ticket read a moment ago could not be changed: what it is now."""
        fresh = await self.session.get(Ticket, ticket_id, populate_existing=True)
        if fresh is None:
            return NotFound(f"ticket {ticket_id} not found", ticket_id=ticket_id)
        try:
            target_state(action, State(fresh.state), number=fresh.number)
        except DomainError as exc:
            return exc
        return _stale(fresh)

    async def _publish(
        self, changes: Sequence[tuple[Ticket, Action, State | None]], now: datetime
    ) -> None:
        """Best effort: a bus outage must not fail changes that are already committed."""
        events = [
            (
                f"tickets.{ticket.region_code}",
                {
                    "event": "ticket",
                    "action": action.value,
                    "ticket_id": ticket.id,
                    "number": ticket.number,
                    "region_code": ticket.region_code,
                    "from_state": from_state.value if from_state else None,
                    "state": ticket.state,
                    "version": ticket.version,
                    "assignee_id": ticket.assignee_id,
                    "at": now.isoformat(),
                },
            )
            for ticket, action, from_state in changes
        ]
        try:
            await self.bus.publish_many(events)
        except BusError as exc:
            numbers = ", ".join(ticket.number for ticket, _, _ in changes[:5])
            more = f" and {len(changes) - 5} more" if len(changes) > 5 else ""
            log.warning("tickets %s%s: events not published: %s", numbers, more, exc)

    async def assignee(self, principal: Principal, ticket: Ticket, user_id: int) -> User:
        """A user the ticket may be dispatched to: an active agent who can see its region."""
        user = self._users.get(user_id)
        if user is None:
            user = await self.session.get(User, user_id)
            if user is not None:  # a batch dispatches many tickets to a few people
                self._users[user_id] = user
        if user is None or not principal.can_see_region(user.region_code):
            raise InvalidInput.at("assignee_id", f"unknown user {user_id}")
        if not user.is_active or user.role != Role.AGENT.value:
            raise InvalidInput.at("assignee_id", f"user {user.username} is not an active agent")
        if not ticket.region_code.startswith(region_prefix_of(user.region_code)):
            raise InvalidInput.at(
                "assignee_id", f"user {user.username} cannot see region {ticket.region_code}"
            )
        return user


@functools.cache
def _bulk_update(columns: tuple[str, ...]) -> ReturningUpdate[int]:
    """PostgreSQL: ``UPDATE tickets SET … FROM unnest(:ids, :read_versions, :col…) AS changes
    WHERE id = changes.id AND version = changes.read_version RETURNING id``, the values as one
    typed array per column: a statement compiled once per shape of change, whatever the number
    of tickets, and NULLs keep their column's type."""
    table = _TICKETS
    typed = [("b_id", table.c.id.type), ("b_read_version", table.c.version.type)]
    typed += [(name, table.c[name].type) for name in columns]
    arrays = [bindparam(name, type_=ARRAY(type_)) for name, type_ in typed]
    source = (
        func.unnest(*arrays)
        .table_valued(*(column(name, type_) for name, type_ in typed))
        .render_derived(name="changes")
    )
    return (
        update(table)
        .where(table.c.id == source.c.b_id, table.c.version == source.c.b_read_version)
        .values({name: source.c[name] for name in columns})
        .returning(table.c.id)
    )


def _history_row(
    ticket: Ticket,
    principal: Principal,
    action: Action,
    from_state: State | None,
    to_state: State,
    now: datetime,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "ticket_id": ticket.id,
        "at": now,
        "actor_id": principal.user_id,
        "action": action.value,
        "from_state": from_state.value if from_state else None,
        "to_state": to_state.value,
        "reason": reason,
        "details": details or {},
    }


_REGION_TTL_S: Final = 300.0
_known_regions: dict[tuple[str, str], float] = {}
"""(database, region code) → until when it is known to exist. Regions are reference data that
only seeding adds (tickets and users hold foreign keys to them), so a positive answer is kept
for a while: two SELECTs less per ticket. Unknown codes are always looked up again."""


async def _region_exists(session: AsyncSession, code: str) -> bool:
    key = (session.get_bind().engine.url.render_as_string(hide_password=True), code)
    now = time.monotonic()
    if _known_regions.get(key, 0.0) > now:
        return True
    if await session.get(Region, code) is None:
        return False
    _known_regions[key] = now + _REGION_TTL_S
    return True


# --- checks ---------------------------------------------------------------------------------


def _visible(principal: Principal, ticket: Ticket) -> bool:
    if not principal.can_see_region(ticket.region_code):
        return False
    return principal.role is not Role.FOLLOWUP or State(ticket.state) in FOLLOWUP_VISIBLE


def _check_role(principal: Principal, action: Action) -> None:
    allowed = ACTION_ROLES[action]
    if principal.role not in allowed:
        names = ", ".join(sorted(role.value for role in allowed))
        raise PermissionDenied(
            f"{describe_action(action)} requires role: {names}", required=sorted(allowed)
        )


def _check_assignee(principal: Principal, ticket: Ticket, action: Action) -> None:
    if principal.role is Role.ADMIN or ticket.assignee_id == principal.user_id:
        return
    raise NotAssignee(f"only the assignee of ticket {ticket.number} may {describe_action(action)}")


def _stale(ticket: Ticket) -> TicketChanged:
    return TicketChanged(
        f"ticket {ticket.number} has changed (now {describe_state(State(ticket.state))}, "
        f"version {ticket.version}): reload it and try again",
        state=ticket.state,
        version=ticket.version,
    )


def _filters(principal: Principal, query: TicketQuery) -> list[ColumnElement[bool]]:
    filters = [Ticket.region_code.startswith(principal.region_prefix, autoescape=True)]
    if query.region is not None:
        if not principal.can_see_region(query.region):
            raise NotFound(f"region {query.region} not found", region=query.region)
        prefix = region_prefix_of(query.region)
        filters.append(Ticket.region_code.startswith(prefix, autoescape=True))
    states = {State(s) for s in query.state} if query.state else set(State)
    if principal.role is Role.FOLLOWUP:
        states &= FOLLOWUP_VISIBLE
    if states != set(State):
        filters.append(Ticket.state.in_(sorted(s.value for s in states)))
    if query.category is not None:
        filters.append(Ticket.category == query.category.value)
    if query.assignee_id is not None:
        filters.append(Ticket.assignee_id == query.assignee_id)
    return filters


# --- the actions' own rules -------------------------------------------------------------------

Step = Callable[[TicketService, Principal, Ticket, ActionBody, datetime], Awaitable[Change]]


def _as(body: ActionBody, cls: type[B]) -> B:
    if not isinstance(body, cls):
        raise TypeError(f"expected a {cls.__name__} body, got {type(body).__name__}")
    return body


async def _dispatch(
    svc: TicketService, principal: Principal, ticket: Ticket, body: ActionBody, now: datetime
) -> Change:
    """派单 and 改派: to an agent and/or a unit; signing starts over. Without either, the
    assignment rules choose (a 改派 never back to the current assignee)."""
    order = _as(body, DispatchBody)
    loads = svc._pending_loads
    if order.assignee_id is None and order.handling_unit is None:
        rules = svc.rules or assignment.active_rules()
        exclude = [ticket.assignee_id] if ticket.assignee_id is not None else []
        auto = await assignment.auto_target(
            svc.session, ticket, rules, exclude=exclude, pending=loads
        )
        values = auto.values
        details = {**auto.values, **auto.details, "previous_assignee_id": ticket.assignee_id}
    else:
        if order.assignee_id is not None:
            await svc.assignee(principal, ticket, order.assignee_id)
        unit = order.handling_unit
        if unit is not None:
            unit = await assignment.checked_unit_name(svc.session, ticket, unit)
        values = {"assignee_id": order.assignee_id, "handling_unit": unit}
        details = {**values, "previous_assignee_id": ticket.assignee_id}
    for user_id, delta in ((values["assignee_id"], 1), (ticket.assignee_id, -1)):
        if user_id is not None:  # the next item of a batch sees this one's move
            loads[user_id] = loads.get(user_id, 0) + delta
    return Change(values={**values, "signed_at": None}, details=details)


async def _sign(
    svc: TicketService, principal: Principal, ticket: Ticket, body: ActionBody, now: datetime
) -> Change:
    """签收: whoever signs becomes the assignee; a ticket sent to one agent is theirs alone."""
    taken = ticket.assignee_id not in (None, principal.user_id)
    if taken and principal.role is not Role.ADMIN:
        raise NotAssignee(f"ticket {ticket.number} is dispatched to another agent")
    return Change(values={"assignee_id": principal.user_id, "signed_at": now})


async def _nothing(
    svc: TicketService, principal: Principal, ticket: Ticket, body: ActionBody, now: datetime
) -> Change:
    return Change()


async def _resolve(
    svc: TicketService, principal: Principal, ticket: Ticket, body: ActionBody, now: datetime
) -> Change:
    done = _as(body, ResolveBody)
    values: dict[str, Any] = {"result": done.result, "resolved_at": now}
    if done.answer is not None:
        values["answer"] = done.answer
    return Change(values=values)


async def _visit(
    svc: TicketService, principal: Principal, ticket: Ticket, body: ActionBody, now: datetime
) -> Change:
    satisfaction = _as(body, VisitBody).satisfaction.value
    return Change(values={"satisfaction": satisfaction}, details={"satisfaction": satisfaction})


async def _return(
    svc: TicketService, principal: Principal, ticket: Ticket, body: ActionBody, now: datetime
) -> Change:
    """退回 to the hotline: no assignee, no unit, no pending extension; it is dispatched anew."""
    details = {"assignee_id": ticket.assignee_id, "handling_unit": ticket.handling_unit}
    values = {
        "assignee_id": None,
        "handling_unit": None,
        "signed_at": None,
        "extension_requested_days": None,
    }
    return Change(values=values, details=details)


async def _request_extension(
    svc: TicketService, principal: Principal, ticket: Ticket, body: ActionBody, now: datetime
) -> Change:
    days = _as(body, ExtensionBody).days
    if ticket.extension_requested_days is not None:
        raise ExtensionRefused(
            f"ticket {ticket.number} already has an extension request pending "
            f"({ticket.extension_requested_days} working days)"
        )
    limit = svc.policy.max_extension_working_days
    if ticket.extended_days + days > limit:
        raise ExtensionRefused(
            f"ticket {ticket.number} is already extended by {ticket.extended_days} working "
            f"days; {days} more would exceed the limit of {limit}",
            extended_days=ticket.extended_days,
            limit=limit,
        )
    return Change(values={"extension_requested_days": days}, details={"days": days})


def _pending_days(ticket: Ticket) -> int:
    if ticket.extension_requested_days is None:
        raise ExtensionRefused(f"ticket {ticket.number} has no extension request pending")
    return ticket.extension_requested_days


async def _approve_extension(
    svc: TicketService, principal: Principal, ticket: Ticket, body: ActionBody, now: datetime
) -> Change:
    days = _pending_days(ticket)
    resolve_by = sla.extended(ticket.resolve_by, days, svc.tz).astimezone(UTC)
    values = {
        "extension_requested_days": None,
        "extended_days": ticket.extended_days + days,
        "resolve_by": resolve_by,
    }
    details = {
        "days": days,
        "previous_resolve_by": ticket.resolve_by.isoformat(),
        "resolve_by": resolve_by.isoformat(),
    }
    return Change(values=values, details=details)


async def _reject_extension(
    svc: TicketService, principal: Principal, ticket: Ticket, body: ActionBody, now: datetime
) -> Change:
    days = _pending_days(ticket)
    return Change(values={"extension_requested_days": None}, details={"days": days})


async def _urge(
    svc: TicketService, principal: Principal, ticket: Ticket, body: ActionBody, now: datetime
) -> Change:
    count = ticket.urge_count + 1
    return Change(values={"urge_count": count}, details={"urge_count": count})


async def _amend(
    svc: TicketService, principal: Principal, ticket: Ticket, body: ActionBody, now: datetime
) -> Change:
    """补录修改: an agent amends the tickets they made or hold; supervisors and admins any in
    their scope. A new category, urgency or green channel restarts the SLA clock from 受理
    while the ticket is still at the hotline (受理); once dispatched, deadlines stay as agreed.
    The history keeps every previous value."""
    order = _as(body, AmendBody)
    if principal.role is Role.AGENT and principal.user_id not in (
        ticket.created_by_id,
        ticket.assignee_id,
    ):
        raise NotAssignee(f"only whoever took or holds ticket {ticket.number} may amend it")
    wanted = order.model_dump(mode="json", include=set(AMENDABLE & order.model_fields_set))
    values = {key: value for key, value in wanted.items() if getattr(ticket, key) != value}
    if not values:
        raise InvalidInput.at(
            "content", "nothing to change: every given field already has that value"
        )
    clock_fields = {"category", "urgency", "green_channel"}
    if values.keys() & clock_fields and State(ticket.state) is State.ACCEPTED:
        deadlines = sla.deadlines(
            ticket.created_at,
            category=Category(values.get("category", ticket.category)),
            urgency=Urgency(values.get("urgency", ticket.urgency)),
            green_channel=bool(values.get("green_channel", ticket.green_channel)),
            policy=svc.policy,
            tz=svc.tz,
        )
        values["accept_by"] = deadlines.accept_by.astimezone(UTC)
        values["resolve_by"] = deadlines.resolve_by.astimezone(UTC)
    previous = {key: _jsonable(getattr(ticket, key)) for key in values}
    changed = sorted(AMENDABLE & values.keys())
    return Change(values=values, details={"fields": changed, "previous": previous})


def _jsonable(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


async def _supervise(
    svc: TicketService, principal: Principal, ticket: Ticket, body: ActionBody, now: datetime
) -> Change:
    """督办 by hand: also opens a 督办 record (``ticketing.supervision``) to follow up."""
    record, supervisor = await open_ordered(svc.session, principal, ticket, body.reason or "", now)
    details = {"supervision_id": record, "supervisor_id": supervisor}
    return Change(values={"supervised": True}, details=details)


async def _reopen(
    svc: TicketService, principal: Principal, ticket: Ticket, body: ActionBody, now: datetime
) -> Change:
    """重办: back to the hotline with a fresh SLA clock; who had it and what they did is kept
    in the history row, so the redo can go to someone else."""
    order = _as(body, ReopenBody)
    if order.reason is None:
        raise InvalidInput.at("reason", "重办 (reopen) needs a reason")
    deadlines = sla.deadlines(
        now,
        category=Category(ticket.category),
        urgency=Urgency(ticket.urgency),
        green_channel=ticket.green_channel,
        policy=svc.policy,
        tz=svc.tz,
    )
    values: dict[str, Any] = {
        "assignee_id": None,
        "handling_unit": None,
        "signed_at": None,
        "resolved_at": None,
        "extension_requested_days": None,
        "accept_by": deadlines.accept_by.astimezone(UTC),
        "resolve_by": deadlines.resolve_by.astimezone(UTC),
    }
    details: dict[str, Any] = {
        "previous_assignee_id": ticket.assignee_id,
        "previous_handling_unit": ticket.handling_unit,
        "previous_result": ticket.result,
    }
    if order.satisfaction is not None:
        values["satisfaction"] = details["satisfaction"] = order.satisfaction.value
    return Change(values=values, details=details)


_STEPS: dict[Action, Step] = {
    Action.DISPATCH: _dispatch,
    Action.REASSIGN: _dispatch,
    Action.SIGN: _sign,
    Action.START: _nothing,
    Action.RESOLVE: _resolve,
    Action.VISIT: _visit,
    Action.ARCHIVE: _nothing,
    Action.RETURN: _return,
    Action.REQUEST_EXTENSION: _request_extension,
    Action.APPROVE_EXTENSION: _approve_extension,
    Action.REJECT_EXTENSION: _reject_extension,
    Action.URGE: _urge,
    Action.SUPERVISE: _supervise,
    Action.REOPEN: _reopen,
    Action.AMEND: _amend,
}
