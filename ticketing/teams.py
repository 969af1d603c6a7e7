"""Teams (小组) that assignment rules can name: made and staffed by supervisors, in their scope.

A team belongs to one region; its members are active agents of that region (or below it), so a
rule that sends tickets to a team can never hand a city's ticket to someone who may not see
it. Membership is replaced as a whole (the list the supervisor sees is the list stored), in one
transaction, and every refusal names the field and writes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from callcenter.auth.principal import Principal, region_prefix_of
from callcenter.db.models import Region, Role, User
from callcenter.errors import Conflict, InvalidInput, NotFound
from ticketing.models import HandlingUnit, Team, TeamMember

CODE = re.compile(r"^[a-z0-9][a-z0-9_-]{1,63}$")
MAX_MEMBERS = 500


class TeamExists(Conflict):
    error_id = "team-exists"


@dataclass(frozen=True, slots=True)
class TeamView:
    team: Team
    unit_code: str | None
    members: tuple[User, ...]


class TeamService:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def list(self, principal: Principal) -> list[TeamView]:
        teams = (await self.session.scalars(select(Team).order_by(Team.code))).all()
        return [await self._view(t) for t in teams if principal.can_see_region(t.region_code)]

    async def get(self, principal: Principal, team_id: int) -> TeamView:
        return await self._view(await self._visible(principal, team_id))

    async def create(
        self,
        principal: Principal,
        *,
        code: str,
        name: str,
        region_code: str,
        unit_code: str | None,
    ) -> TeamView:
        if not CODE.match(code):
            raise InvalidInput.at(
                "code", "lowercase letters, digits, - or _ (2 to 64), e.g. jx-aid-duty"
            )
        if not name.strip():
            raise InvalidInput.at("name", "a team needs a name")
        if not principal.can_see_region(region_code):
            raise InvalidInput.at("region_code", f"region {region_code} is outside your scope")
        if await self.session.get(Region, region_code) is None:
            raise InvalidInput.at("region_code", f"unknown region {region_code}")
        unit_id = await self._unit(unit_code, region_code)
        team = Team(code=code, name=name.strip(), region_code=region_code, unit_id=unit_id)
        self.session.add(team)
        try:
            await self.session.commit()
        except IntegrityError:
            await self.session.rollback()
            raise TeamExists(f"a team with code {code} exists", code=code) from None
        return await self._view(team)

    async def set_members(
        self, principal: Principal, team_id: int, user_ids: Sequence[int]
    ) -> TeamView:
        team = await self._visible(principal, team_id)
        wanted = sorted(set(user_ids))
        if len(wanted) > MAX_MEMBERS:
            raise InvalidInput.at("user_ids", f"at most {MAX_MEMBERS} members")
        users = (await self.session.scalars(select(User).where(User.id.in_(wanted)))).all()
        found = {u.id: u for u in users}
        team_scope = region_prefix_of(team.region_code)
        for user_id in wanted:
            user = found.get(user_id)
            if user is None or not principal.can_see_region(user.region_code):
                raise InvalidInput.at("user_ids", f"user {user_id} not found")
            if user.role != Role.AGENT.value or not user.is_active:
                raise InvalidInput.at("user_ids", f"user {user.username} is not an active agent")
            if not user.region_code.startswith(team_scope):
                raise InvalidInput.at(
                    "user_ids", f"user {user.username} works outside the team's region"
                )
        await self.session.execute(delete(TeamMember).where(TeamMember.team_id == team.id))
        self.session.add_all(TeamMember(team_id=team.id, user_id=uid) for uid in wanted)
        await self.session.commit()
        return await self._view(team)

    async def delete(self, principal: Principal, team_id: int) -> None:
        """Rules naming a deleted team fall back to their unit (the preview says why)."""
        team = await self._visible(principal, team_id)
        await self.session.execute(delete(TeamMember).where(TeamMember.team_id == team.id))
        await self.session.delete(team)
        await self.session.commit()

    async def _visible(self, principal: Principal, team_id: int) -> Team:
        team = await self.session.get(Team, team_id)
        if team is None or not principal.can_see_region(team.region_code):
            raise NotFound(f"team {team_id} not found", team_id=team_id)
        return team

    async def _unit(self, unit_code: str | None, region_code: str) -> int | None:
        if unit_code is None:
            return None
        unit = await self.session.scalar(select(HandlingUnit).where(HandlingUnit.code == unit_code))
        if unit is None or not region_code.startswith(region_prefix_of(unit.region_code)):
            raise InvalidInput.at("unit_code", f"no unit {unit_code} covers region {region_code}")
        return unit.id

    async def _view(self, team: Team) -> TeamView:
        members = (
            await self.session.scalars(
                select(User)
                .join(TeamMember, TeamMember.user_id == User.id)
                .where(TeamMember.team_id == team.id)
                .order_by(User.username)
            )
        ).all()
        unit_code = None
        if team.unit_id is not None:
            unit = await self.session.get(HandlingUnit, team.unit_id)
            unit_code = unit.code if unit is not None else None
        return TeamView(team, unit_code, tuple(members))
