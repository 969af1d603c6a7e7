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

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, tzinfo
from typing import Any, TypeVar, cast

from sqlalchemy import ColumnElement, CursorResult, Table, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from callcenter.auth.principal import Principal, region_prefix_of
from callcenter.bus import EventBus
from callcenter.bus.base import BusError
from callcenter.db.base import utcnow
from callcenter.db.models import Call, Region, Role, User
from callcenter.errors import InvalidInput, NotFound, PermissionDenied
from callcenter.routing.calendar import SHANGHAI
from ticketing import sla
from ticketing.catalogue import Category, Urgency
from ticketing.errors import ExtensionRefused, NotAssignee, TicketChanged
from ticketing.models import Ticket, TicketHistory
from ticketing.numbers import next_number
from ticketing.schemas import (
    ActionBody,
    DispatchBody,
    ExtensionBody,
    ResolveBody,
    TicketCreate,
    TicketQuery,
    VisitBody,
)
from ticketing.states import (
    ACTION_ROLES,
    FOLLOWUP_VISIBLE,
    Action,
    State,
    describe_action,
    describe_state,
    needs_assignee,
    target_state,
)

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
# Core tables for the hot writes: plain statements skip the ORM's unit-of-work bookkeeping.
_TICKETS = cast(Table, Ticket.__table__)
_HISTORY = cast(Table, TicketHistory.__table__)
B = TypeVar("B", bound=ActionBody)


def invalid(field_name: str, message: str) -> InvalidInput:
    """A 400 shaped like the request-validation ones: ``details.fields[].field/message``."""
    return InvalidInput(message, fields=[{"field": field_name, "message": message}])


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
    ) -> None:
        self.session = session
        self.bus = bus
        self.clock = clock
        self.tz = tz
        self.policy = policy

    # --- reading ------------------------------------------------------------------------

    async def get(self, principal: Principal, ticket_id: int) -> Ticket:
        """The ticket, or 404 when it does not exist *or* the caller may not see it."""
        ticket = await self.session.get(Ticket, ticket_id)
        if ticket is None or not _visible(principal, ticket):
            raise NotFound(f"ticket {ticket_id} not found", ticket_id=ticket_id)
        return ticket

    async def search(self, principal: Principal, query: TicketQuery) -> tuple[list[Ticket], int]:
        """One page of visible tickets, newest first, and the total matching count."""
        filters = _filters(principal, query)
        page = (
            select(Ticket)
            .where(*filters)
            .order_by(Ticket.id.desc())
            .limit(query.limit)
            .offset(query.offset)
        )
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
        _check_role(principal, Action.CREATE)
        region_code = body.region_code or principal.region_code
        await self._check_new_ticket(principal, body, region_code)
        now = self._now()
        deadlines = sla.deadlines(
            now,
            category=Category(body.category),
            urgency=Urgency(body.urgency),
            green_channel=body.green_channel,
            policy=self.policy,
            tz=self.tz,
        )
        ticket = Ticket(
            number=await next_number(self.session, region_code, self._local_day(now)),
            region_code=region_code,
            **body.model_dump(mode="json", exclude={"region_code"}),
            state=State.ACCEPTED.value,
            version=1,
            accept_by=deadlines.accept_by.astimezone(UTC),
            resolve_by=deadlines.resolve_by.astimezone(UTC),
            extended_days=0,
            urge_count=0,
            supervised=False,
            created_by_id=principal.user_id,
            created_at=now,
            updated_at=now,
        )
        self.session.add(ticket)
        await self.session.flush()
        await self._record(ticket, principal, Action.CREATE, None, now)
        if body.resolved_on_call:
            await self._resolve_on_call(ticket, principal, now)
        await self.session.commit()
        await self._publish(ticket, Action.CREATE, None, now)
        return ticket

    async def _check_new_ticket(
        self, principal: Principal, body: TicketCreate, region_code: str
    ) -> None:
        if not principal.can_see_region(region_code):
            raise invalid("region_code", f"region {region_code} is outside your scope")
        regions = {"region_code": region_code, "caller_region_code": body.caller_region_code}
        for name, code in regions.items():
            if code is not None and await self.session.get(Region, code) is None:
                raise invalid(name, f"unknown region {code}")
        if body.source_call_id is not None:
            call = await self.session.get(Call, body.source_call_id)
            mine = call is not None and call.agent_user_id == principal.user_id
            if call is None or not (mine or principal.can_see_region(call.caller_region_code)):
                raise invalid("source_call_id", f"unknown call {body.source_call_id}")

    async def _resolve_on_call(self, ticket: Ticket, principal: Principal, now: datetime) -> None:
        ticket.state = State.RESOLVED.value
        ticket.version = 2
        ticket.result = ticket.answer
        ticket.resolved_at = now
        reason = "一次办结: answered on the call"
        await self._record(ticket, principal, Action.RESOLVE, State.ACCEPTED, now, reason=reason)

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
        step = _STEPS.get(action)
        if step is None:
            raise NotFound(f"unknown action {action.value}")
        _check_role(principal, action)
        ticket = await self.get(principal, ticket_id)
        current = State(ticket.state)
        if body.version is not None and body.version != ticket.version:
            raise _stale(ticket)
        target = target_state(action, current, number=ticket.number)
        if needs_assignee(action, current):
            _check_assignee(principal, ticket, action)
        now = self._now()
        change = await step(self, principal, ticket, body, now)
        await self._apply(ticket, action, target, change, now)
        await self._record(
            ticket, principal, action, current, now, reason=body.reason, details=change.details
        )
        await self.session.commit()
        await self._publish(ticket, action, current, now)
        return ticket

    async def _apply(
        self, ticket: Ticket, action: Action, target: State, change: Change, now: datetime
    ) -> None:
        """The conditional update; on a lost race, a 409 saying what the ticket is now."""
        values = {
            **change.values,
            "state": target.value,
            "version": ticket.version + 1,
            "updated_at": now,
        }
        table = _TICKETS
        stmt = (
            update(table)
            .where(table.c.id == ticket.id, table.c.version == ticket.version)
            .values(**values)
        )
        result = cast(CursorResult[Any], await self.session.execute(stmt))
        if result.rowcount != 1:
            await self._raise_changed(ticket.id, action)
        for key, value in values.items():
            set_committed_value(ticket, key, value)

    async def _raise_changed(self, ticket_id: int, action: Action) -> None:
        fresh = await self.session.get(Ticket, ticket_id, populate_existing=True)
        if fresh is None:
            raise NotFound(f"ticket {ticket_id} not found", ticket_id=ticket_id)
        target_state(action, State(fresh.state), number=fresh.number)
        raise _stale(fresh)

    async def _record(
        self,
        ticket: Ticket,
        principal: Principal,
        action: Action,
        from_state: State | None,
        now: datetime,
        *,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Append the history row (a plain INSERT: history is never read back in this request)."""
        row = {
            "ticket_id": ticket.id,
            "at": now,
            "actor_id": principal.user_id,
            "action": action.value,
            "from_state": from_state.value if from_state else None,
            "to_state": ticket.state,
            "reason": reason,
            "details": details or {},
        }
        await self.session.execute(insert(_HISTORY).values(row))

    async def _publish(
        self, ticket: Ticket, action: Action, from_state: State | None, now: datetime
    ) -> None:
        """Best effort: a bus outage must not fail a change that is already committed."""
        event = {
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
        }
        try:
            await self.bus.publish(f"tickets.{ticket.region_code}", event)
        except BusError as exc:
            log.warning("ticket %s: event not published: %s", ticket.number, exc)

    async def assignee(self, principal: Principal, ticket: Ticket, user_id: int) -> User:
        """A user the ticket may be dispatched to: an active agent who can see its region."""
        user = await self.session.get(User, user_id)
        if user is None or not principal.can_see_region(user.region_code):
            raise invalid("assignee_id", f"unknown user {user_id}")
        if not user.is_active or user.role != Role.AGENT.value:
            raise invalid("assignee_id", f"user {user.username} is not an active agent")
        if not ticket.region_code.startswith(region_prefix_of(user.region_code)):
            raise invalid(
                "assignee_id", f"user {user.username} cannot see region {ticket.region_code}"
            )
        return user


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
    if query.q is not None:
        filters.append(
            or_(
                Ticket.content.icontains(query.q, autoescape=True),
                Ticket.answer.icontains(query.q, autoescape=True),
            )
        )
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
    """派单 and 改派: to an agent and/or a unit; signing starts over."""
    order = _as(body, DispatchBody)
    if order.assignee_id is not None:
        await svc.assignee(principal, ticket, order.assignee_id)
    values = {"assignee_id": order.assignee_id, "handling_unit": order.handling_unit}
    details = {**values, "previous_assignee_id": ticket.assignee_id}
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


async def _supervise(
    svc: TicketService, principal: Principal, ticket: Ticket, body: ActionBody, now: datetime
) -> Change:
    return Change(values={"supervised": True})


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
}
