"""``/api/supervision``: SLA cards and 督办 records, for supervisors and admins.

Region-scoped like tickets: a record of another region is a 404. Routes validate, call
:class:`~ticketing.supervision.SupervisionService` and serialize.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Self

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from callcenter.auth.deps import require_roles
from callcenter.auth.principal import Principal
from callcenter.db.models import Role
from callcenter.web.deps import ServicesDep, SessionDep
from ticketing.http import ClockDep
from ticketing.models import CardKind, DeadlineKind, SlaCard, SupervisionState
from ticketing.schemas import DbId, RegionCode
from ticketing.states import STATE_LABELS, State
from ticketing.supervision import (
    CardFilter,
    SupervisionFilter,
    SupervisionRow,
    SupervisionService,
)

__all__ = ["router"]

router = APIRouter(prefix="/api/supervision", tags=["supervision"])

Overseer = Annotated[Principal, Depends(require_roles(Role.SUPERVISOR, Role.ADMIN))]
SupervisionId = Annotated[int, Path(ge=1, le=2**31 - 1)]

CARD_LABELS = {CardKind.YELLOW: "黄牌", CardKind.RED: "红牌"}
DEADLINE_LABELS = {DeadlineKind.ACCEPT: "签收时限", DeadlineKind.RESOLVE: "办结时限"}
SUPERVISION_LABELS = {SupervisionState.OPEN: "督办中", SupervisionState.CLOSED: "已结束"}


async def get_supervision_service(
    session: SessionDep, services: ServicesDep, clock: ClockDep
) -> SupervisionService:
    return SupervisionService(session, services.bus, clock=clock)


ServiceDep = Annotated[SupervisionService, Depends(get_supervision_service)]


class _Query(BaseModel):
    model_config = ConfigDict(extra="forbid")
    region: RegionCode | None = None
    ticket: DbId | None = None
    deadline_kind: DeadlineKind | None = None
    limit: int = Field(default=50, ge=1, le=200)
    offset: int = Field(default=0, ge=0, le=1_000_000)


class SupervisionQuery(_Query):
    state: SupervisionState | None = None
    supervisor_id: DbId | None = None


class CardQuery(_Query):
    kind: CardKind | None = None


class CloseBody(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    note: str = Field(min_length=1, max_length=2000, description="督办结论")


class SupervisionOut(BaseModel):
    id: int
    ticket_id: int
    ticket_number: str
    ticket_state: State
    ticket_state_label: str
    card_id: int | None
    """The red card that opened it; ``None`` for a 督办 a supervisor ordered by hand."""
    origin_label: str
    opened_by_id: int | None
    reason: str | None
    region_code: str
    deadline_kind: DeadlineKind
    deadline_label: str
    deadline: datetime
    state: SupervisionState
    state_label: str
    supervisor_id: int | None
    supervisor_username: str | None
    opened_at: datetime
    closed_at: datetime | None
    closed_by_id: int | None
    note: str | None
    version: int

    @classmethod
    def of(cls, row: SupervisionRow) -> Self:
        r = row.record
        kind, state = DeadlineKind(r.deadline_kind), SupervisionState(r.state)
        ticket_state = State(row.ticket_state)
        return cls(
            id=r.id,
            ticket_id=r.ticket_id,
            ticket_number=row.ticket_number,
            ticket_state=ticket_state,
            ticket_state_label=STATE_LABELS[ticket_state],
            card_id=r.card_id,
            origin_label="超时自动督办" if r.card_id is not None else "人工督办",
            opened_by_id=r.opened_by_id,
            reason=r.reason,
            region_code=r.region_code,
            deadline_kind=kind,
            deadline_label=DEADLINE_LABELS[kind],
            deadline=r.deadline,
            state=state,
            state_label=SUPERVISION_LABELS[state],
            supervisor_id=r.supervisor_id,
            supervisor_username=row.supervisor_username,
            opened_at=r.opened_at,
            closed_at=r.closed_at,
            closed_by_id=r.closed_by_id,
            note=r.note,
            version=r.version,
        )


class SupervisionPage(BaseModel):
    items: list[SupervisionOut]
    total: int
    limit: int
    offset: int


class CardOut(BaseModel):
    id: int
    ticket_id: int
    region_code: str
    kind: CardKind
    kind_label: str
    deadline_kind: DeadlineKind
    deadline_label: str
    deadline: datetime
    issued_at: datetime

    @classmethod
    def of(cls, card: SlaCard) -> Self:
        kind, deadline_kind = CardKind(card.kind), DeadlineKind(card.deadline_kind)
        return cls(
            id=card.id,
            ticket_id=card.ticket_id,
            region_code=card.region_code,
            kind=kind,
            kind_label=CARD_LABELS[kind],
            deadline_kind=deadline_kind,
            deadline_label=DEADLINE_LABELS[deadline_kind],
            deadline=card.deadline,
            issued_at=card.issued_at,
        )


class CardPage(BaseModel):
    items: list[CardOut]
    total: int
    limit: int
    offset: int


@router.get("")
async def list_supervisions(
    principal: Overseer, svc: ServiceDep, query: Annotated[SupervisionQuery, Query()]
) -> SupervisionPage:
    """督办 records in your region, newest first."""
    rows, total = await svc.search(
        principal,
        SupervisionFilter(
            state=query.state,
            deadline_kind=query.deadline_kind,
            region=query.region,
            ticket_id=query.ticket,
            supervisor_id=query.supervisor_id,
            limit=query.limit,
            offset=query.offset,
        ),
    )
    return SupervisionPage(
        items=[SupervisionOut.of(r) for r in rows],
        total=total,
        limit=query.limit,
        offset=query.offset,
    )


@router.get("/cards")
async def list_cards(
    principal: Overseer, svc: ServiceDep, query: Annotated[CardQuery, Query()]
) -> CardPage:
    """Yellow (黄牌) and red (红牌) cards in your region, newest first."""
    cards, total = await svc.cards(
        principal,
        CardFilter(
            kind=query.kind,
            deadline_kind=query.deadline_kind,
            region=query.region,
            ticket_id=query.ticket,
            limit=query.limit,
            offset=query.offset,
        ),
    )
    return CardPage(
        items=[CardOut.of(c) for c in cards], total=total, limit=query.limit, offset=query.offset
    )


@router.get("/{supervision_id}")
async def get_supervision(
    supervision_id: SupervisionId, principal: Overseer, svc: ServiceDep
) -> SupervisionOut:
    return SupervisionOut.of(await svc.get(principal, supervision_id))


@router.post("/{supervision_id}/close")
async def close_supervision(
    supervision_id: SupervisionId, body: CloseBody, principal: Overseer, svc: ServiceDep
) -> SupervisionOut:
    """End a 督办 with its conclusion; 409 if it is already closed."""
    return SupervisionOut.of(await svc.close(principal, supervision_id, body.note))
