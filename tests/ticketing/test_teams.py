"""Teams through ``/api/assignment/teams``: made and staffed by supervisors of their region,
used by the assignment rules, refused with a named field (and nothing written) when wrong."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from callcenter.db.models import Role, User
from tests.ticketing.conftest import CITY, OTHER_CITY, TicketEnv
from ticketing.assignment import Assigner, parse_rules
from ticketing.models import Team, TeamMember, Ticket

TEAMS = "/api/assignment/teams"


async def _counts(env: TicketEnv) -> tuple[int, int]:
    async with env.services.sessionmaker() as session:
        teams = await session.scalar(select(func.count(Team.id)))
        members = await session.scalar(select(func.count()).select_from(TeamMember))
        return int(teams or 0), int(members or 0)


async def _team(env: TicketEnv, boss: Any, **fields: Any) -> dict[str, Any]:
    body = {"code": f"jx-aid-{env.marker}", "name": "嘉兴法援值班组", "region_code": CITY} | fields
    response = await env.post(boss, TEAMS, body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def test_given_a_supervisor_when_making_and_staffing_a_team_then_rules_use_it(
    tenv: TicketEnv,
) -> None:
    boss = await tenv.actor(Role.SUPERVISOR)
    member, outsider = await tenv.actor(), await tenv.actor()
    team = await _team(tenv, boss)
    staffed = await tenv.client.put(
        f"{TEAMS}/{team['id']}/members", json={"user_ids": [member.user_id]}, headers=boss.headers
    )
    assert staffed.status_code == 200, staffed.text
    assert [m["user_id"] for m in staffed.json()["members"]] == [member.user_id]
    listed = (await tenv.get(boss, TEAMS)).json()
    assert team["code"] in [t["code"] for t in listed]

    rules = parse_rules(
        f"version: 1\nrules:\n  - {{name: 值班组, team: {team['code']}, "
        "unit_kind: legal_aid_center}\n",
        name="team.yaml",
    )
    tid = (await tenv.create(boss))["id"]
    async with tenv.services.sessionmaker() as session:
        ticket = await session.get(Ticket, tid)
        assert ticket is not None
        decision = await Assigner(session, rules).decide(ticket)
    assert [c.user_id for c in decision.candidates] == [member.user_id]
    assert outsider.user_id not in [c.user_id for c in decision.candidates]

    gone = await tenv.client.delete(f"{TEAMS}/{team['id']}", headers=boss.headers)
    assert gone.status_code == 204
    assert (await tenv.get(boss, f"{TEAMS}/{team['id']}")).status_code == 404


async def test_given_another_region_or_role_then_404_or_403_and_nothing_written(
    tenv: TicketEnv,
) -> None:
    boss = await tenv.actor(Role.SUPERVISOR)
    team = await _team(tenv, boss)
    before = await _counts(tenv)
    stranger = await tenv.actor(Role.SUPERVISOR, OTHER_CITY)
    assert (await tenv.get(stranger, f"{TEAMS}/{team['id']}")).status_code == 404
    assert team["code"] not in [t["code"] for t in (await tenv.get(stranger, TEAMS)).json()]
    put = await tenv.client.put(
        f"{TEAMS}/{team['id']}/members", json={"user_ids": []}, headers=stranger.headers
    )
    assert put.status_code == 404
    agent = await tenv.actor()
    assert (await tenv.post(agent, TEAMS, {"code": "x1", "name": "x"})).status_code == 403
    assert (await tenv.get(agent, TEAMS)).status_code == 403
    assert await _counts(tenv) == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"code": "Bad Code!"}, "code"),
        ({"code": "a"}, "code"),
        ({"region_code": OTHER_CITY}, "region_code"),
        ({"region_code": "339900"}, "region_code"),
        ({"unit_code": "no-such-unit"}, "unit_code"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"colour": "red"}, "colour"),
    ],
)
async def test_given_bad_team_payloads_then_400_naming_the_field(
    tenv: TicketEnv, body: dict[str, Any], field: str
) -> None:
    boss = await tenv.actor(Role.SUPERVISOR)
    before = await _counts(tenv)
    payload = {"code": f"t-{tenv.marker}", "name": "组", "region_code": CITY} | body
    response = await tenv.post(boss, TEAMS, payload)
    assert response.status_code == 400, response.text
    assert field in [f["field"] for f in response.json()["details"]["fields"]]
    assert await _counts(tenv) == before


async def test_given_bad_members_then_400_and_the_old_list_kept(tenv: TicketEnv) -> None:
    boss = await tenv.actor(Role.SUPERVISOR)
    team = await _team(tenv, boss)
    member = await tenv.actor()
    url = f"{TEAMS}/{team['id']}/members"
    ok = await tenv.client.put(url, json={"user_ids": [member.user_id]}, headers=boss.headers)
    assert ok.status_code == 200
    elsewhere = await tenv.actor(Role.AGENT, OTHER_CITY)
    supervisor = await tenv.actor(Role.SUPERVISOR)
    async with tenv.services.sessionmaker() as session:
        retired = User(
            username=f"retired_{tenv.marker}",
            display_name="离职",
            password_hash="!unusable",
            role=Role.AGENT.value,
            region_code=CITY,
            is_active=False,
        )
        session.add(retired)
        await session.commit()
        retired_id = retired.id
    for ids in ([elsewhere.user_id], [supervisor.user_id], [retired_id], [2**31 - 1], ["x"]):
        bad = await tenv.client.put(url, json={"user_ids": ids}, headers=boss.headers)
        assert bad.status_code == 400, (ids, bad.text)
    again = await tenv.get(boss, f"{TEAMS}/{team['id']}")
    assert [m["user_id"] for m in again.json()["members"]] == [member.user_id]
    dup = await tenv.post(boss, TEAMS, {"code": team["code"], "name": "重名", "region_code": CITY})
    assert dup.status_code == 409 and dup.json()["error_id"] == "team-exists"
