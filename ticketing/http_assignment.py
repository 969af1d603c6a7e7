"""``/api/assignment``: the unit directory and a preview of where the rules would send a ticket.

The preview runs the same :class:`~ticketing.assignment.Assigner` as a dispatch without a
target, read only, and returns every reason (which rules did not match and why, which unit,
which agents were eligible and who wins the tie).
"""

from __future__ import annotations

from typing import Annotated, Self

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict
from sqlalchemy import or_, select

from callcenter.auth.deps import CurrentUser, require_roles
from callcenter.auth.principal import Principal
from callcenter.db.models import Role
from ticketing.assignment import UNIT_KIND_LABELS, Assigner, Candidate, UnitRef, active_rules
from ticketing.http import ServiceDep as TicketServiceDep
from ticketing.models import HandlingUnit, UnitKind
from ticketing.schemas import DbId, RegionCode

__all__ = ["router"]

router = APIRouter(prefix="/api/assignment", tags=["assignment"])

Overseer = Annotated[Principal, Depends(require_roles(Role.SUPERVISOR, Role.ADMIN))]
MAX_CANDIDATES = 20


class UnitOut(BaseModel):
    code: str
    name: str
    kind: UnitKind
    kind_label: str
    region_code: str

    @classmethod
    def of(cls, unit: UnitRef | HandlingUnit) -> Self:
        kind = UnitKind(unit.kind)
        return cls(
            code=unit.code,
            name=unit.name,
            kind=kind,
            kind_label=UNIT_KIND_LABELS[kind],
            region_code=unit.region_code,
        )


class CandidateOut(BaseModel):
    user_id: int
    username: str
    display_name: str
    open_tickets: int

    @classmethod
    def of(cls, c: Candidate) -> Self:
        return cls(
            user_id=c.user_id,
            username=c.username,
            display_name=c.display_name,
            open_tickets=c.open_tickets,
        )


class PreviewOut(BaseModel):
    ticket_id: int
    number: str
    rule: str | None
    rule_source: str | None
    unit: UnitOut | None
    team: str | None
    skill: str | None
    assignee: CandidateOut | None
    candidates: list[CandidateOut]
    candidates_total: int
    reasons: list[str]


class PreviewQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ticket: DbId


class UnitQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: UnitKind | None = None
    region: RegionCode | None = None


@router.get("/preview")
async def preview(
    principal: Overseer,
    tickets: TicketServiceDep,
    query: Annotated[PreviewQuery, Query()],
) -> PreviewOut:
    """Where a dispatch without a target would send the ticket now, and why (nothing is
    written). Another region's ticket is a 404."""
    ticket = await tickets.get(principal, query.ticket)
    rules = tickets.rules or active_rules()
    decision = await Assigner(tickets.session, rules).decide(ticket)
    return PreviewOut(
        ticket_id=ticket.id,
        number=ticket.number,
        rule=decision.rule,
        rule_source=decision.rule_source,
        unit=UnitOut.of(decision.unit) if decision.unit else None,
        team=decision.team_code,
        skill=decision.skill,
        assignee=CandidateOut.of(decision.assignee) if decision.assignee else None,
        candidates=[CandidateOut.of(c) for c in decision.candidates[:MAX_CANDIDATES]],
        candidates_total=len(decision.candidates),
        reasons=decision.reasons,
    )


@router.get("/units")
async def list_units(
    principal: CurrentUser, tickets: TicketServiceDep, query: Annotated[UnitQuery, Query()]
) -> list[UnitOut]:
    """Active units you can dispatch to: those in your region and those above it (a city
    desk may send to the province's units), optionally one kind or one region's."""
    own = principal.region_code
    above = {own[:2] + "0000", own[:4] + "00"}
    filters = [
        HandlingUnit.is_active.is_(True),
        or_(
            HandlingUnit.region_code.startswith(principal.region_prefix, autoescape=True),
            HandlingUnit.region_code.in_(sorted(above)),
        ),
    ]
    if query.kind is not None:
        filters.append(HandlingUnit.kind == query.kind.value)
    if query.region is not None:
        filters.append(HandlingUnit.region_code == query.region)
    rows = await tickets.session.scalars(
        select(HandlingUnit).where(*filters).order_by(HandlingUnit.region_code, HandlingUnit.code)
    )
    return [UnitOut.of(u) for u in rows]
