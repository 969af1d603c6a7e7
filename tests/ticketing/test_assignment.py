"""Assignment (派单): the rule file, the unit directory, dispatch without a target, the preview.

These tests run on their own databases (a fresh SQLite copy per test, one PostgreSQL database
for this module) with the province's handling units seeded, so the shared database of the
other ticketing tests never has a unit directory (their "dispatch needs a target" case relies
on that).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select

from callcenter.db.engine import make_engine, make_sessionmaker
from callcenter.db.models import Role
from callcenter.services import build_services
from callcenter.settings import ConfigError, Settings
from tests.ticketing.conftest import (
    CITY,
    OTHER_CITY,
    PROVINCE,
    PROVINCE_DATA,
    TicketEnv,
    agent,
    give_load,
    retire_other_agents,
    seed_units,
)
from ticketing.assignment import (
    DEFAULT_RULES,
    Assigner,
    RuleFileError,
    expand_units,
    load_rules,
    parse_rules,
    units_file,
)
from ticketing.models import HandlingUnit, Team, TeamMember, Ticket

# --- the rule file ------------------------------------------------------------------------------


def test_given_the_packaged_rules_when_loaded_then_every_rule_has_a_target_and_a_line() -> None:
    rules = load_rules(DEFAULT_RULES)
    assert [r.name for r in rules.rules][:2] == ["农民工欠薪绿色通道", "法律援助"]
    assert rules.where(0) == "assignment.default.yaml:12"
    assert rules.rules[-1].match.category == []  # the catch-all comes last


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "version: 1\nrules:\n  - name: a\n    match: {category: [legal_advice]}\n"
            "    unit_kind: legal_aid_center\n",
            "x.yaml:4: rules[0].match.category[0]: must be 'legal_consultation'",
        ),
        ("version: 1\nrules:\n  - name: a\n    skill: legal_aid\n", "x.yaml:3: rules[0]: "),
        (
            "version: 1\nrules:\n  - name: a\n    unit_kind: legal_aid_center\n    colour: red\n",
            "x.yaml:5: rules[0].colour: unknown key",
        ),
        (
            "version: 1\nrules:\n  - {name: a, unit_kind: notary_office}\n"
            "  - {name: a, unit_kind: notary_office}\n",
            "x.yaml:4: rules[1].name: duplicate rule name 'a'",
        ),
        ("version: 2\nrules: []\n", "x.yaml:1: version: "),
        ("version: 1\nrules:\n  - name: [unclosed\n", "x.yaml:4: not valid YAML"),
        (
            "version: 1\nrules:\n  - {name: a, unit_kind: notary_office, unit: x-1}\n",
            "name either unit_kind or unit, not both",
        ),
    ],
)
def test_given_a_bad_rule_file_when_parsed_then_the_error_names_file_line_and_field(
    text: str, expected: str
) -> None:
    with pytest.raises(RuleFileError) as caught:
        parse_rules(text, name="x.yaml")
    assert any(expected in problem for problem in caught.value.problems), caught.value.problems


def test_given_a_missing_rule_file_then_a_one_line_config_error(tmp_path: Path) -> None:
    with pytest.raises(RuleFileError, match="cannot read"):
        load_rules(tmp_path / "nope.yaml")


def test_given_the_province_unit_file_then_every_city_gets_its_five_units() -> None:
    path = units_file(PROVINCE)
    rows = expand_units(path.read_text(encoding="utf-8"), PROVINCE_DATA, str(path))
    assert len(rows) == 3 + 11 * 5
    jiaxing = {r.kind: r.name for r in rows if r.region_code == CITY}
    assert jiaxing["legal_aid_center"] == "嘉兴市法律援助中心"
    assert jiaxing["notary_office"] == "嘉兴市公证处"
    assert len({r.code for r in rows}) == len({r.name for r in rows}) == len(rows)


def test_given_a_unit_file_for_another_province_then_refused() -> None:
    text = "province: '320000'\ncity_units: [{kind: notary_office, name: '{city}公证处'}]\n"
    with pytest.raises(RuleFileError, match="file is for 320000"):
        expand_units(text, PROVINCE_DATA, "units.yaml")


async def test_given_units_seeded_when_seeded_again_then_nothing_is_added_or_duplicated(
    sqlite_url: str,
) -> None:
    first, second = await seed_units(sqlite_url), await seed_units(sqlite_url)
    assert first == ", 58 handling units added" and second == ", 0 handling units added"
    engine = make_engine(sqlite_url)
    try:
        async with make_sessionmaker(engine)() as session:
            assert await session.scalar(select(func.count(HandlingUnit.id))) == 58
    finally:
        await engine.dispose()


# --- dispatch without a target -------------------------------------------------------------------


async def test_given_skilled_agents_when_dispatched_without_target_then_least_loaded_gets_it(
    aenv: TicketEnv,
) -> None:
    desk = await aenv.actor(Role.SUPERVISOR)
    busy = await agent(aenv, skills=["legal_aid"])
    free = await agent(aenv, skills=["legal_aid"])
    unskilled = await agent(aenv, skills=["mediation"])
    far = await agent(aenv, OTHER_CITY, skills=["legal_aid"])
    await retire_other_agents(aenv, [busy, free, unskilled, far])
    await give_load(aenv, desk, busy, 2)
    tid = (await aenv.create(desk))["id"]  # 法律援助 in 嘉兴

    response = await aenv.act(desk, tid, "dispatch", {})

    assert response.status_code == 200, response.text
    ticket = response.json()
    assert (ticket["assignee_id"], ticket["handling_unit"]) == (free.user_id, "嘉兴市法律援助中心")
    assert ticket["state"] == "dispatched"
    entry = (await aenv.history(desk, tid))[-1]
    assert entry["action"] == "dispatch"
    details = entry["details"]
    assert details["auto"] is True and details["rule"] == "法律援助"
    assert details["unit_code"] == "330400-legal_aid_center"
    assert any("规则「农民工欠薪绿色通道」不匹配" in r for r in details["reasons"])
    assert any("2 名坐席符合" in r for r in details["reasons"])


async def test_given_equal_load_then_the_lowest_user_id_wins_and_the_reason_says_tie(
    aenv: TicketEnv,
) -> None:
    desk = await aenv.actor(Role.SUPERVISOR)
    first = await agent(aenv, skills=["mediation"])
    second = await agent(aenv, seat=["mediation"])  # the skill comes from the bound seat
    await retire_other_agents(aenv, [first, second])
    tid = (await aenv.create(desk, category="mediation"))["id"]
    response = await aenv.act(desk, tid, "dispatch", {})
    assert response.status_code == 200, response.text
    assert response.json()["assignee_id"] == min(first.user_id, second.user_id)
    assert response.json()["handling_unit"] == "嘉兴市人民调解委员会"
    reasons = (await aenv.history(desk, tid))[-1]["details"]["reasons"]
    assert any("并列" in r for r in reasons)


async def test_given_no_eligible_agent_then_the_ticket_goes_to_the_unit_only_with_a_reason(
    aenv: TicketEnv,
) -> None:
    desk = await aenv.actor(Role.SUPERVISOR)
    await retire_other_agents(aenv, [])
    tid = (await aenv.create(desk, category="notarization", request_type="consultation"))["id"]
    response = await aenv.act(desk, tid, "dispatch", {})
    assert response.status_code == 200, response.text
    assert response.json()["assignee_id"] is None
    assert response.json()["handling_unit"] == "嘉兴市公证处"
    reasons = (await aenv.history(desk, tid))[-1]["details"]["reasons"]
    assert any(r.startswith("没有符合条件的坐席 (技能 notary") for r in reasons)


async def test_given_a_reassign_without_target_then_the_current_assignee_is_not_chosen_again(
    aenv: TicketEnv,
) -> None:
    desk = await aenv.actor(Role.SUPERVISOR)
    first = await agent(aenv, skills=["legal_aid"])
    second = await agent(aenv, skills=["legal_aid"])
    await retire_other_agents(aenv, [first, second])
    await give_load(aenv, desk, second, 3)
    tid = (await aenv.create(desk))["id"]
    assert (await aenv.act(desk, tid, "dispatch", {})).json()["assignee_id"] == first.user_id
    moved = await aenv.act(desk, tid, "reassign", {"reason": "承办人出差"})
    assert moved.status_code == 200, moved.text
    assert moved.json()["assignee_id"] == second.user_id


async def test_given_an_explicit_unit_of_another_city_then_400_and_nothing_written(
    aenv: TicketEnv,
) -> None:
    desk = await aenv.actor(Role.SUPERVISOR)
    tid = (await aenv.create(desk))["id"]
    before = await aenv.row_counts()
    response = await aenv.act(desk, tid, "dispatch", {"handling_unit": "杭州市法律援助中心"})
    assert response.status_code == 400, response.text
    assert response.json()["details"]["fields"][0]["field"] == "handling_unit"
    assert "does not serve region 330400" in response.json()["message"]
    assert await aenv.row_counts() == before
    assert (await aenv.get(desk, f"/api/tickets/{tid}")).json()["version"] == 1


async def test_given_an_explicit_unit_code_or_the_province_unit_then_accepted_by_name(
    aenv: TicketEnv,
) -> None:
    desk = await aenv.actor(Role.SUPERVISOR)
    tid = (await aenv.create(desk))["id"]
    by_code = await aenv.act(desk, tid, "dispatch", {"handling_unit": "330400-notary_office"})
    assert by_code.status_code == 200, by_code.text
    assert by_code.json()["handling_unit"] == "嘉兴市公证处"
    province = await aenv.act(
        desk, tid, "reassign", {"handling_unit": "浙江省法律援助中心", "reason": "疑难案件"}
    )
    assert province.status_code == 200 and province.json()["handling_unit"] == "浙江省法律援助中心"


async def test_given_a_rule_with_a_team_then_only_its_members_are_eligible(
    aenv: TicketEnv,
) -> None:
    desk = await aenv.actor(Role.SUPERVISOR)
    member = await agent(aenv, skills=["legal_aid"])
    outsider = await agent(aenv, skills=["legal_aid"])
    code = f"team-{aenv.marker}"
    async with aenv.services.sessionmaker() as session:
        team = Team(code=code, name="嘉兴法援值班组", region_code=CITY)
        session.add(team)
        await session.flush()
        session.add(TeamMember(team_id=team.id, user_id=member.user_id))
        await session.commit()
    await give_load(aenv, desk, member, 1)  # more load than the outsider, still chosen
    rules = parse_rules(
        "version: 1\nrules:\n"
        f"  - {{name: 值班组, team: {code}, unit_kind: legal_aid_center, skill: legal_aid}}\n",
        name="team.yaml",
    )
    tid = (await aenv.create(desk))["id"]
    async with aenv.services.sessionmaker() as session:
        ticket = await session.get(Ticket, tid)
        assert ticket is not None
        decision = await Assigner(session, rules).decide(ticket)
    assert decision.assignee is not None and decision.assignee.user_id == member.user_id
    assert [c.user_id for c in decision.candidates] == [member.user_id]
    assert outsider.user_id not in [c.user_id for c in decision.candidates]
    assert decision.team_code == code and decision.rule_source == "team.yaml:3"


async def test_given_no_unit_and_no_agent_when_dispatched_without_target_then_400_unwritten(
    aenv: TicketEnv,
) -> None:
    desk = await aenv.actor(Role.SUPERVISOR)
    async with aenv.services.sessionmaker() as session:
        for unit in (await session.scalars(select(HandlingUnit))).all():
            unit.is_active = unit.kind != "arbitration_commission"
        await session.commit()
    try:
        await retire_other_agents(aenv, [])
        tid = (await aenv.create(desk, category="arbitration"))["id"]
        before = await aenv.row_counts()
        response = await aenv.act(desk, tid, "dispatch", {})
        assert response.status_code == 400, response.text
        assert "自动派单失败" in response.json()["message"]
        assert response.json()["details"]["fields"][0]["field"] == "handling_unit"
        assert await aenv.row_counts() == before
    finally:
        async with aenv.services.sessionmaker() as session:
            for unit in (await session.scalars(select(HandlingUnit))).all():
                unit.is_active = True
            await session.commit()


# --- the preview and the unit list ----------------------------------------------------------------


async def test_given_a_supervisor_when_previewing_then_the_reasons_explain_the_choice(
    aenv: TicketEnv,
) -> None:
    desk = await aenv.actor(Role.SUPERVISOR)
    lawyer = await agent(aenv, skills=["legal_aid"])
    await retire_other_agents(aenv, [lawyer])
    supervisor = await aenv.actor(Role.SUPERVISOR, CITY)
    tid = (await aenv.create(desk, green_channel=True))["id"]
    before = await aenv.row_counts()

    response = await aenv.get(supervisor, "/api/assignment/preview", ticket=tid)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["rule"] == "农民工欠薪绿色通道" and body["skill"] == "legal_aid"
    assert (
        body["unit"]["name"] == "嘉兴市法律援助中心"
        and body["unit"]["kind_label"] == "法律援助中心"
    )
    assert body["assignee"]["user_id"] == lawyer.user_id and body["candidates_total"] == 1
    assert body["reasons"][0].startswith(
        "规则「农民工欠薪绿色通道」(assignment.default.yaml:12) 匹配"
    )
    assert await aenv.row_counts() == before  # a preview writes nothing


async def test_given_the_preview_then_roles_region_and_bad_queries_are_checked(
    aenv: TicketEnv,
) -> None:
    desk = await aenv.actor(Role.SUPERVISOR)
    tid = (await aenv.create(desk))["id"]
    other_supervisor = await aenv.actor(Role.SUPERVISOR, OTHER_CITY)
    province_admin = await aenv.actor(Role.ADMIN, PROVINCE)
    agent_ = await aenv.actor(Role.AGENT, CITY)
    assert (await aenv.get(agent_, "/api/assignment/preview", ticket=tid)).status_code == 403
    hidden = await aenv.get(other_supervisor, "/api/assignment/preview", ticket=tid)
    assert hidden.status_code == 404
    assert (
        await aenv.get(province_admin, "/api/assignment/preview", ticket=tid)
    ).status_code == 200
    for params in ({}, {"ticket": "x"}, {"ticket": 0}, {"ticket": tid, "extra": 1}):
        bad = await aenv.get(province_admin, "/api/assignment/preview", **params)
        assert bad.status_code == 400, (params, bad.text)
    assert (await aenv.client.get(f"/api/assignment/preview?ticket={tid}")).status_code == 401


async def test_given_a_city_agent_when_listing_units_then_own_city_and_province_only(
    aenv: TicketEnv,
) -> None:
    desk = await aenv.actor(Role.AGENT)
    response = await aenv.get(desk, "/api/assignment/units")
    assert response.status_code == 200, response.text
    regions = {u["region_code"] for u in response.json()}
    assert regions == {CITY, PROVINCE}
    notaries = await aenv.get(desk, "/api/assignment/units", kind="notary_office")
    assert [u["name"] for u in notaries.json()] == ["嘉兴市公证处"]
    assert (await aenv.get(desk, "/api/assignment/units", kind="court")).status_code == 400


async def test_given_a_bad_rule_file_setting_then_the_services_refuse_to_start(
    make_settings: Callable[..., Settings], sqlite_url: str, tmp_path: Path
) -> None:
    bad = tmp_path / "rules.yaml"
    bad.write_text("version: 1\nrules:\n  - {name: a, unit_kind: court}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"rules.yaml:3: rules\[0\].unit_kind: must be"):
        async with build_services(make_settings(database_url=sqlite_url, assignment_rules=bad)):
            pass


async def test_given_rules_by_region_and_unit_code_then_mismatch_reasons_are_given(
    aenv: TicketEnv,
) -> None:
    rules = parse_rules(
        "version: 1\nrules:\n"
        "  - {name: 杭州公证, match: {region: ['330100']}, unit: 330100-notary_office}\n"
        "  - {name: 越区单位, unit: 330100-notary_office, skill: no_such_skill}\n",
        name="units.yaml",
    )
    desk = await aenv.actor(Role.SUPERVISOR)
    tid = (await aenv.create(desk, category="notarization"))["id"]
    async with aenv.services.sessionmaker() as session:
        ticket = await session.get(Ticket, tid)
        assert ticket is not None
        decision = await Assigner(session, rules).decide(ticket)
    assert decision.rule == "越区单位" and decision.unit is None and not decision.found
    assert decision.reasons[0] == "规则「杭州公证」不匹配: 地区 330400 不在 330100 内"
    assert "承办单位 杭州市公证处 不承办地区 330400" in decision.reasons
