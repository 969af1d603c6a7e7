"""``/api/assignment/teams``: the teams assignment rules can name, and who is on them.

Supervisors and admins manage the teams of their own region (another region's team is a 404);
members must be active agents of the team's region.
"""

from __future__ import annotations

from typing import Annotated, Self

from fastapi import APIRouter, Depends, Path, status
from pydantic import BaseModel, ConfigDict, Field

from callcenter.auth.deps import require_roles
from callcenter.auth.principal import Principal
from callcenter.db.models import Role
from callcenter.web.deps import SessionDep
from ticketing.schemas import DbId, RegionCode
from ticketing.teams import MAX_MEMBERS, TeamService, TeamView

__all__ = ["router"]

router = APIRouter(prefix="/api/assignment/teams", tags=["assignment"])

Overseer = Annotated[Principal, Depends(require_roles(Role.SUPERVISOR, Role.ADMIN))]
TeamId = Annotated[int, Path(ge=1, le=2**31 - 1)]


async def get_team_service(session: SessionDep) -> TeamService:
    return TeamService(session)


TeamsDep = Annotated[TeamService, Depends(get_team_service)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TeamCreate(_Body):
    code: str = Field(min_length=2, max_length=64, description="stable key rules refer to")
    name: str = Field(min_length=1, max_length=128)
    region_code: RegionCode
    unit_code: str | None = Field(default=None, max_length=64)


class MembersBody(_Body):
    user_ids: list[DbId] = Field(max_length=MAX_MEMBERS)


class MemberOut(BaseModel):
    user_id: int
    username: str
    display_name: str
    region_code: str


class TeamOut(BaseModel):
    id: int
    code: str
    name: str
    region_code: str
    unit_code: str | None
    members: list[MemberOut]

    @classmethod
    def of(cls, view: TeamView) -> Self:
        team = view.team
        return cls(
            id=team.id,
            code=team.code,
            name=team.name,
            region_code=team.region_code,
            unit_code=view.unit_code,
            members=[
                MemberOut(
                    user_id=u.id,
                    username=u.username,
                    display_name=u.display_name,
                    region_code=u.region_code,
                )
                for u in view.members
            ],
        )


@router.get("")
async def list_teams(principal: Overseer, svc: TeamsDep) -> list[TeamOut]:
    """Teams of your region and the regions below it."""
    return [TeamOut.of(v) for v in await svc.list(principal)]


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_team(body: TeamCreate, principal: Overseer, svc: TeamsDep) -> TeamOut:
    view = await svc.create(
        principal,
        code=body.code,
        name=body.name,
        region_code=body.region_code,
        unit_code=body.unit_code,
    )
    return TeamOut.of(view)


@router.get("/{team_id}")
async def get_team(team_id: TeamId, principal: Overseer, svc: TeamsDep) -> TeamOut:
    return TeamOut.of(await svc.get(principal, team_id))


@router.put("/{team_id}/members")
async def set_members(
    team_id: TeamId, body: MembersBody, principal: Overseer, svc: TeamsDep
) -> TeamOut:
    """Replace the member list (active agents of the team's region)."""
    return TeamOut.of(await svc.set_members(principal, team_id, body.user_ids))


@router.delete("/{team_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_team(team_id: TeamId, principal: Overseer, svc: TeamsDep) -> None:
    await svc.delete(principal, team_id)
