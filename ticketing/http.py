"""``/api/tickets``: create, read, search, act on tickets and read their history.

Routes only validate, call :class:`~ticketing.services.TicketService` and serialize. Who may do
what, region scope (another region's ticket is a 404) and the life-cycle rules live in the
service and in :mod:`ticketing.states`. Include with ``app.include_router(router)``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from callcenter.auth.deps import CurrentUser
from callcenter.db.base import utcnow
from callcenter.errors import DomainError, InvalidInput, NotFound
from callcenter.web.deps import ServicesDep, SessionDep
from ticketing.followup import FollowupPolicy
from ticketing.schemas import (
    ACTION_BODIES,
    ActionBody,
    BatchItemOut,
    BatchOut,
    HistoryOut,
    HistoryPage,
    TicketBatch,
    TicketCreate,
    TicketList,
    TicketOut,
    TicketPage,
    TicketQuery,
    batch_item_model,
)
from ticketing.services import Clock, TicketService, can_see_caller_number
from ticketing.states import SINGLE_ONLY, Action

__all__ = ["ClockDep", "get_clock", "get_ticket_service", "router"]

router = APIRouter(prefix="/api/tickets", tags=["tickets"])


async def get_clock() -> Clock:
    """The clock deadlines are computed from; tests override this dependency.

    Dependencies here are ``async def`` on purpose: FastAPI runs a plain ``def`` dependency in
    the thread pool, a thread hop per request for a function that does no I/O.
    """
    return utcnow


ClockDep = Annotated[Clock, Depends(get_clock)]


async def get_ticket_service(
    session: SessionDep, services: ServicesDep, clock: ClockDep
) -> TicketService:
    settings = services.settings
    return TicketService(
        session,
        services.bus,
        clock=clock,
        tz=settings.tz,
        followup=FollowupPolicy.from_settings(settings),
        repeat_window_days=settings.repeat_window_days,
    )


ServiceDep = Annotated[TicketService, Depends(get_ticket_service)]
TicketId = Annotated[int, Path(ge=1, le=2**31 - 1)]

_BODY_HELP = "Fields by action (all accept `reason` and `version`): " + "; ".join(
    f"{action.value}: {', '.join(sorted(set(model.model_fields) - {'reason', 'version'})) or '-'}"
    for action, model in ACTION_BODIES.items()
)


def parse_action_body(action: Action, raw: dict[str, Any] | None) -> ActionBody:
    """Validate the body against the action's own model; errors are the usual 400."""
    model = ACTION_BODIES.get(action)
    if model is None:
        raise NotFound(f"unknown action {action.value}")
    try:
        return model.model_validate(raw or {})
    except ValidationError as exc:
        errors = [{**err, "loc": ("body", *err["loc"])} for err in exc.errors(include_url=False)]
        raise RequestValidationError(errors) from None


def parse_batch_items(action: Action, raw: dict[str, Any] | None) -> list[tuple[int, ActionBody]]:
    """``{"items": [{"id": …, …the action's body…}]}`` → (ticket id, body) pairs; any error
    in any item is the usual 400 (``body.items.<i>.<field>``) before anything is read."""
    if action not in ACTION_BODIES or action in SINGLE_ONLY:
        raise NotFound(f"{action.value} is not a batch action")
    try:
        parsed = batch_item_model(action).model_validate(raw or {})
    except ValidationError as exc:
        errors = [{**err, "loc": ("body", *err["loc"])} for err in exc.errors(include_url=False)]
        raise RequestValidationError(errors) from None
    items: list[ActionBody] = parsed.items  # type: ignore[attr-defined]
    seen: set[int] = set()
    for i, item in enumerate(items):
        ticket_id = item.id  # type: ignore[attr-defined]
        if ticket_id in seen:
            raise InvalidInput.at(f"items.{i}.id", f"ticket {ticket_id} appears twice in the batch")
        seen.add(ticket_id)
    return [(item.id, item) for item in items]  # type: ignore[attr-defined]


def _out(principal: CurrentUser, ticket: Any) -> TicketOut:
    return TicketOut.of(ticket, mask_number=not can_see_caller_number(principal, ticket))


@router.post("", status_code=201)
async def create_ticket(body: TicketCreate, principal: CurrentUser, svc: ServiceDep) -> TicketOut:
    """受理: a new ticket (``resolved_on_call`` closes it at once: 一次办结)."""
    return _out(principal, await svc.create(principal, body))


@router.post("/batch", status_code=201)
async def create_tickets(body: TicketBatch, principal: CurrentUser, svc: ServiceDep) -> TicketList:
    """批量受理: up to 200 tickets (``BATCH_LIMIT``) in one transaction, all or none,
    numbered in order. A bad item is a 400 naming it (``tickets.<i>.<field>``); nothing is
    written then."""
    tickets = await svc.create_many(principal, body.tickets, located="tickets.")
    return TicketList(tickets=[_out(principal, t) for t in tickets])


@router.post("/batch/{action}", description=_BODY_HELP)
async def act_on_tickets(
    action: Action,
    principal: CurrentUser,
    svc: ServiceDep,
    body: Annotated[dict[str, Any] | None, Body()] = None,
) -> BatchOut:
    """批量派单/签收/办结/回访…: ``{"items": [{"id": 7, …the action's body…}]}``, up to 200.
    Each item succeeds or fails on its own, with the status and error the single action would
    give for that ticket; the successes commit together. Role: 403 for the whole batch."""
    items = parse_batch_items(action, body)
    outcomes = await svc.act_many(principal, action, items)
    results = [
        BatchItemOut(id=tid, ok=False, status=o.status_code, error=o.to_dict())
        if isinstance(o, DomainError)
        else BatchItemOut(id=tid, ok=True, ticket=_out(principal, o))
        for (tid, _), o in zip(items, outcomes, strict=True)
    ]
    succeeded = sum(r.ok for r in results)
    return BatchOut(results=results, succeeded=succeeded, failed=len(results) - succeeded)


@router.get("")
async def list_tickets(
    principal: CurrentUser, svc: ServiceDep, query: Annotated[TicketQuery, Query()]
) -> TicketPage:
    """Visible tickets, newest first; ``q`` is a substring search (LIKE) in content/answer."""
    items, total = await svc.search(principal, query)
    return TicketPage(
        items=[_out(principal, t) for t in items],
        total=total,
        limit=query.limit,
        offset=query.offset,
    )


@router.get("/{ticket_id}")
async def get_ticket(ticket_id: TicketId, principal: CurrentUser, svc: ServiceDep) -> TicketOut:
    return _out(principal, await svc.get(principal, ticket_id))


@router.get("/{ticket_id}/history")
async def ticket_history(
    ticket_id: TicketId, principal: CurrentUser, svc: ServiceDep
) -> HistoryPage:
    ticket, entries = await svc.history(principal, ticket_id)
    items = [HistoryOut.of(e.row, e.actor_username) for e in entries]
    return HistoryPage(ticket_id=ticket.id, number=ticket.number, items=items)


@router.post("/{ticket_id}/actions/{action}", description=_BODY_HELP)
async def act_on_ticket(
    ticket_id: TicketId,
    action: Action,
    principal: CurrentUser,
    svc: ServiceDep,
    body: Annotated[dict[str, Any] | None, Body()] = None,
) -> TicketOut:
    """One life-cycle step; 409 naming the current state when the step is not allowed now."""
    parsed = parse_action_body(action, body)
    return _out(principal, await svc.act(principal, ticket_id, action, parsed))
