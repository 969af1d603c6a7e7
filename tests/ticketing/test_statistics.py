"""Statistics on a small hand-built dataset with known answers, on SQLite and PostgreSQL.

Each test builds its calls and tickets on its own far-future local day, so the shared
PostgreSQL database of the run holds nothing else in the reported range. The dataset
(``_dataset``) is written out with the expected figures next to it.
"""

from __future__ import annotations

import csv
import io
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import openpyxl  # type: ignore[import-untyped]
import pytest
from sqlalchemy import update

from callcenter.db.models import Call, Role, User
from callcenter.routing.calendar import SHANGHAI
from tests.ticketing.conftest import CITY, OTHER_CITY, PROVINCE, Actor, TicketEnv
from ticketing.models import Ticket

HOSTILE_NAME = '=HYPERLINK("http://evil.example","x")'


def _local(day: date, hh: int, mm: int = 0, ss: int = 0, us: int = 0) -> datetime:
    return datetime.combine(day, time(hh, mm, ss, us), SHANGHAI).astimezone(UTC)


@dataclass
class Dataset:
    day: date
    agent_a: Actor
    agent_b: Actor


async def _call(
    env: TicketEnv,
    region: str | None,
    offered: datetime,
    *,
    queued_after: float | None = 5,
    wait: float | None = None,
    talk: float | None = None,
    ended: bool = True,
    agent: Actor | None = None,
) -> None:
    """One call: queued ``queued_after`` s after it was offered, answered ``wait`` s later."""
    queued = offered + timedelta(seconds=queued_after) if queued_after is not None else None
    answered = queued + timedelta(seconds=wait) if queued and wait is not None else None
    end: datetime | None = None
    if ended:
        end = (answered + timedelta(seconds=talk or 0)) if answered else offered + timedelta(60)
    disposition = "answered" if answered else ("abandoned" if queued else "ivr_hangup")
    async with env.services.sessionmaker() as session:
        session.add(
            Call(
                node="stats",
                linkedid=uuid.uuid4().hex,
                caller_number="13805730001",
                caller_region_code=region,
                offered_at=offered,
                queued_at=queued,
                answered_at=answered,
                ended_at=end,
                disposition=disposition if ended or answered else None,
                agent_user_id=agent.user_id if agent and answered else None,
                ivr_path=[],
                routing=[],
            )
        )
        await session.commit()


async def _ticket(
    env: TicketEnv,
    region: str,
    created: datetime,
    creator: Actor,
    *,
    category: str = "legal_aid",
    assignee: Actor | None = None,
    on_call: bool = False,
    resolved_after: timedelta | None = None,
    due_after: timedelta = timedelta(days=5),
    satisfaction: str | None = None,
) -> None:
    resolved = created + resolved_after if resolved_after is not None else None
    async with env.services.sessionmaker() as session:
        session.add(
            Ticket(
                number=f"S{uuid.uuid4().hex[:20]}",
                region_code=region,
                channel="phone",
                category=category,
                request_type="consultation",
                content=f"统计测试 {env.marker}",
                answer="已答复" if on_call else None,
                urgency="normal",
                green_channel=False,
                resolved_on_call=on_call,
                assignee_id=assignee.user_id if assignee else None,
                state="resolved" if resolved else "accepted",
                version=1,
                accept_by=created + timedelta(days=1),
                resolve_by=created + due_after,
                extended_days=0,
                urge_count=0,
                supervised=False,
                satisfaction=satisfaction,
                created_by_id=creator.user_id,
                created_at=created,
                updated_at=created,
                resolved_at=resolved,
            )
        )
        await session.commit()


async def _dataset(env: TicketEnv) -> Dataset:
    """Day D in CITY, with the expected figures (see the asserts in the first test):

    calls offered on D in CITY: 6 = answered 5 + abandoned 1; within 15 s: 4
    (one at exactly 15 s counts, one at 15.000001 s does not); waits 15, 15.000001, 10, 3, 2
    → avg 9.0 s; talks 300, 60, 120, 30, 10 → avg 104.0 s. Not offered: an IVR hang-up, a
    call still waiting. Across midnight: offered D 23:59:50, answered D+1 → counts on D.
    tickets created on D in CITY: 5; on the call 1; resolved 4, on time 3 (one exactly at
    its deadline), visited = rated 3, satisfied 2 (very satisfied, basically satisfied).
    """
    day = date(2100, 1, 1) + timedelta(days=random.randrange(30_000))
    a, b = await env.actor(), await env.actor()
    async with env.services.sessionmaker() as session:
        await session.execute(
            update(User).where(User.id == a.user_id).values(display_name=HOSTILE_NAME)
        )
        await session.execute(update(User).where(User.id == b.user_id).values(display_name="李四"))
        await session.commit()
    ten = _local(day, 10)
    await _call(env, CITY, ten, wait=15, talk=300, agent=a)
    await _call(env, CITY, ten, wait=15.000001, talk=60, agent=a)
    await _call(env, CITY, ten)  # abandoned in the queue
    await _call(env, CITY, ten, queued_after=None)  # hung up in the IVR: not offered
    await _call(env, CITY, ten, ended=False)  # still waiting: no outcome yet, not offered
    await _call(env, CITY, _local(day, 23, 59, 50), queued_after=5, wait=10, talk=120, agent=b)
    await _call(env, CITY, _local(day, 0), queued_after=0, wait=3, talk=30, agent=b)
    await _call(env, CITY, ten, wait=2, talk=10, agent=b)
    before = _local(day, 0) - timedelta(microseconds=1)  # D-1 23:59:59.999999
    await _call(env, CITY, before, queued_after=0, wait=1, talk=1, agent=b)
    await _call(env, OTHER_CITY, ten, wait=5, talk=100)
    await _call(env, None, ten, wait=20, talk=50)  # unknown origin: province only

    nine = _local(day, 9)
    days = timedelta(days=1)
    await _ticket(
        env,
        CITY,
        nine,
        a,
        category="legal_consultation",
        on_call=True,
        resolved_after=timedelta(0),
        satisfaction="very_satisfied",
    )
    late = timedelta(days=6)
    await _ticket(env, CITY, nine, a, assignee=b, resolved_after=late, satisfaction="dissatisfied")
    await _ticket(env, CITY, nine, a, assignee=b, resolved_after=5 * days)  # at the deadline
    await _ticket(env, CITY, _local(day, 23, 30), a, category="mediation")  # still open
    await _ticket(
        env, CITY, nine, a, assignee=b, resolved_after=days, satisfaction="basically_satisfied"
    )
    await _ticket(env, OTHER_CITY, nine, a)
    await _ticket(env, CITY, _local(day + days, 0), a)  # D+1 00:00 local: the next day
    return Dataset(day, a, b)


async def _stats(env: TicketEnv, actor: Actor, path: str = "/api/stats", **params: Any) -> Any:
    response = await env.get(actor, path, **params)
    assert response.status_code == 200, response.text
    return response.json() if path == "/api/stats" else response


def _row(report: dict[str, Any], key: str | None) -> dict[str, Any]:
    rows = [r for r in report["rows"] if r["key"] == key]
    assert len(rows) == 1, (key, [r["key"] for r in report["rows"]])
    return rows[0]


CITY_CALLS = {
    "offered": 6,
    "answered": 5,
    "abandoned": 1,
    "answered_within": 4,
    "answer_rate": 0.8333,
    "loss_rate": 0.1667,
    "service_level": 0.6667,
    "avg_wait_s": 9.0,
    "avg_talk_s": 104.0,
}
CITY_TICKETS = {
    "tickets": 5,
    "resolved_on_call": 1,
    "resolved": 4,
    "resolved_on_time": 3,
    "visited": 3,
    "rated": 3,
    "satisfied": 2,
    "first_call_resolution_rate": 0.2,
    "on_time_rate": 0.75,
    "visit_rate": 0.75,
    "satisfaction_rate": 0.6667,
}


async def test_given_a_known_day_when_a_city_supervisor_asks_by_region_then_every_formula_matches(
    tenv: TicketEnv,
) -> None:
    data = await _dataset(tenv)
    boss = await tenv.actor(Role.SUPERVISOR)
    day = data.day.isoformat()
    report = await _stats(tenv, boss, **{"from": day, "to": day, "by": "region"})
    assert (report["from"], report["to"], report["scope"]) == (day, day, CITY)
    assert report["time_zone"] == "Asia/Shanghai" and report["threshold_s"] == 15
    assert [r["key"] for r in report["rows"]] == [CITY]  # a city sees only itself
    row = _row(report, CITY)
    assert row["label"] == "嘉兴市"
    assert {k: row[k] for k in CITY_CALLS} == CITY_CALLS
    assert {k: row[k] for k in CITY_TICKETS} == CITY_TICKETS
    assert {k: report["total"][k] for k in CITY_CALLS} == CITY_CALLS


async def test_given_the_threshold_parameter_then_service_level_follows_it(
    tenv: TicketEnv,
) -> None:
    data = await _dataset(tenv)
    boss = await tenv.actor(Role.SUPERVISOR)
    day = data.day.isoformat()
    report = await _stats(tenv, boss, **{"from": day, "to": day, "threshold": 16})
    assert report["total"]["answered_within"] == 5  # the call at 15.000001 s is now in
    assert report["total"]["service_level"] == 0.8333
    tight = await _stats(tenv, boss, **{"from": day, "to": day, "threshold": 14})
    assert tight["total"]["answered_within"] == 3  # exactly 15 s is now out


async def test_given_province_scope_then_every_city_and_unknown_origin_are_reported(
    tenv: TicketEnv,
) -> None:
    data = await _dataset(tenv)
    admin = await tenv.actor(Role.ADMIN, PROVINCE)
    day = data.day.isoformat()
    report = await _stats(tenv, admin, **{"from": day, "to": day, "by": "region"})
    keys = [r["key"] for r in report["rows"]]
    assert len(keys) == 12 and keys[-1] is None and CITY in keys and OTHER_CITY in keys
    assert _row(report, None)["label"] == "未知地区"
    assert {k: _row(report, CITY)[k] for k in CITY_CALLS} == CITY_CALLS
    other = _row(report, OTHER_CITY)
    assert (other["offered"], other["answered"], other["tickets"]) == (1, 1, 1)
    assert _row(report, "330200")["offered"] == 0 and _row(report, "330200")["answer_rate"] is None
    total = report["total"]
    assert (total["offered"], total["answered"], total["answered_within"]) == (8, 7, 5)
    assert total["tickets"] == 6
    narrowed = await _stats(tenv, admin, **{"from": day, "to": day, "region": CITY})
    assert [r["key"] for r in narrowed["rows"]] == [CITY]
    assert narrowed["total"]["offered"] == 6 and narrowed["scope"] == CITY


async def test_given_each_dimension_then_rows_group_as_documented(tenv: TicketEnv) -> None:
    data = await _dataset(tenv)
    boss = await tenv.actor(Role.SUPERVISOR)
    day = data.day.isoformat()
    span = {"from": day, "to": day}

    by_category = await _stats(tenv, boss, **span, by="category")
    assert len(by_category["rows"]) == 9  # the whole catalogue, zeros included
    aid = _row(by_category, "legal_aid")
    assert (aid["label"], aid["tickets"], aid["resolved"], aid["resolved_on_time"]) == (
        "法律援助",
        3,
        3,
        2,
    )
    assert aid["offered"] is None  # a call has no category: call figures are not applicable
    assert _row(by_category, "legal_consultation")["first_call_resolution_rate"] == 1.0
    assert _row(by_category, "arbitration")["on_time_rate"] is None

    by_agent = await _stats(tenv, boss, **span, by="agent")
    a, b = _row(by_agent, str(data.agent_a.user_id)), _row(by_agent, str(data.agent_b.user_id))
    assert (a["answered"], a["answered_within"], a["avg_wait_s"], a["tickets"]) == (2, 1, 15.0, 2)
    assert (b["answered"], b["avg_talk_s"], b["tickets"], b["resolved"]) == (3, 53.3, 3, 3)
    unanswered = _row(by_agent, None)
    assert (unanswered["label"], unanswered["offered"], unanswered["answered"]) == (
        "未接通/无坐席",
        1,
        0,
    )

    by_hour = await _stats(tenv, boss, **span, by="hour")
    assert [r["key"] for r in by_hour["rows"]] == [str(h) for h in range(24)]
    assert _row(by_hour, "10")["offered"] == 4 and _row(by_hour, "10")["label"] == "10:00-11:00"
    assert _row(by_hour, "23")["offered"] == 1 and _row(by_hour, "23")["tickets"] == 1
    assert _row(by_hour, "0")["offered"] == 1 and _row(by_hour, "9")["tickets"] == 4


async def test_given_calls_across_midnight_then_local_days_decide(tenv: TicketEnv) -> None:
    data = await _dataset(tenv)
    boss = await tenv.actor(Role.SUPERVISOR)
    d = data.day
    span = {"from": (d - timedelta(days=1)).isoformat(), "to": (d + timedelta(days=1)).isoformat()}
    report = await _stats(tenv, boss, **span, by="day")
    before, on, after = report["rows"]
    assert [r["key"] for r in report["rows"]] == [r["label"] for r in report["rows"]]
    assert (before["offered"], on["offered"], after["offered"]) == (1, 6, 0)
    assert (before["tickets"], on["tickets"], after["tickets"]) == (0, 5, 1)
    next_day = (d + timedelta(days=1)).isoformat()
    alone = await _stats(tenv, boss, **{"from": next_day, "to": next_day})
    assert alone["total"]["offered"] == 0  # answered after midnight, offered before: day D


async def test_given_an_empty_range_then_zeros_and_null_rates(tenv: TicketEnv) -> None:
    boss = await tenv.actor(Role.SUPERVISOR)
    empty = {"from": "2099-02-01", "to": "2099-02-03"}
    for by in ("region", "category", "agent", "hour", "day"):
        report = await _stats(tenv, boss, **empty, by=by)
        total = report["total"]
        assert total["tickets"] == 0 and total["satisfaction_rate"] is None
        assert total["on_time_rate"] is None and total["first_call_resolution_rate"] is None
        if by != "category":
            assert (total["offered"], total["answer_rate"], total["avg_wait_s"]) == (0, None, None)
    assert len((await _stats(tenv, boss, **empty, by="day"))["rows"]) == 3
    assert (await _stats(tenv, boss, **empty, by="agent"))["rows"] == []


async def test_given_roles_and_regions_then_access_is_checked(tenv: TicketEnv) -> None:
    data = await _dataset(tenv)
    day = data.day.isoformat()
    span = {"from": day, "to": day}
    for role in (Role.AGENT, Role.FOLLOWUP):
        actor = await tenv.actor(role)
        for path in ("/api/stats", "/api/stats/export.csv", "/api/stats/export.xlsx"):
            response = await tenv.get(actor, path, **span)
            assert response.status_code == 403, (role, path)
            assert "requires role" in response.json()["message"]
    assert (await tenv.client.get("/api/stats", params=span)).status_code == 401
    other_boss = await tenv.actor(Role.SUPERVISOR, OTHER_CITY)
    mine = await _stats(tenv, other_boss, **span)
    assert [r["key"] for r in mine["rows"]] == [OTHER_CITY]
    assert (mine["total"]["offered"], mine["total"]["tickets"]) == (1, 1)
    hidden = await tenv.get(other_boss, "/api/stats", **span, region=CITY)
    assert hidden.status_code == 404


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "2026-02-02", "to": "2026-02-01"}, "to"),
        ({"from": "2026-01-01", "to": "2027-01-02"}, "to"),
        ({"from": "2026-02-30", "to": "2026-03-01"}, "from"),
        ({"to": "2026-03-01"}, "from"),
        ({"from": "2026-03-01", "to": "2026-03-01", "by": "weather"}, "by"),
        ({"from": "2026-03-01", "to": "2026-03-01", "threshold": 0}, "threshold"),
        ({"from": "2026-03-01", "to": "2026-03-01", "region": "33'; --"}, "region"),
    ],
)
async def test_given_bad_parameters_then_400_names_the_field(
    tenv: TicketEnv, params: dict[str, Any], field: str
) -> None:
    boss = await tenv.actor(Role.SUPERVISOR)
    for path in ("/api/stats", "/api/stats/export.csv"):
        response = await tenv.get(boss, path, **params)
        assert response.status_code == 400, response.text
        fields = [f["field"] for f in response.json()["details"]["fields"]]
        assert any(f.endswith(field) for f in fields), fields


async def test_given_csv_export_then_excel_ready_and_formula_safe(tenv: TicketEnv) -> None:
    data = await _dataset(tenv)
    boss = await tenv.actor(Role.SUPERVISOR)
    day = data.day.isoformat()
    response = await _stats(
        tenv, boss, "/api/stats/export.csv", **{"from": day, "to": day}, by="agent"
    )
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert "attachment" in response.headers["content-disposition"]
    assert response.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    head = rows[0]
    assert head[:3] == ["坐席", "编码", "呼入量"]
    assert {"接通率", "呼损率", "服务水平(15秒)", "一次办结率", "满意度"} <= set(head)
    by_key = {r[1]: dict(zip(head, r, strict=True)) for r in rows[1:]}
    hostile = by_key[str(data.agent_a.user_id)]
    assert hostile["坐席"] == "'" + HOSTILE_NAME  # never evaluated as a formula
    assert by_key[str(data.agent_b.user_id)]["坐席"] == "李四"
    total = rows[-1]
    assert total[0] == "合计"
    named = dict(zip(head, total, strict=True))
    assert (named["呼入量"], named["接通率"], named["平均通话时长(秒)"]) == ("6", "83.33%", "104.0")


async def test_given_xlsx_export_then_figures_and_formulas_read_back(tenv: TicketEnv) -> None:
    data = await _dataset(tenv)
    admin = await tenv.actor(Role.ADMIN, PROVINCE)
    day = data.day.isoformat()
    for by in ("agent", "region"):
        response = await _stats(
            tenv, admin, "/api/stats/export.xlsx", **{"from": day, "to": day}, by=by
        )
        assert response.headers["content-type"].startswith(
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        )
        book = openpyxl.load_workbook(io.BytesIO(response.content))
        assert book.sheetnames == ["统计", "口径说明"]
        sheet = book["统计"]
        head = [c.value for c in sheet[2]]
        rows = {r[1].value: r for r in sheet.iter_rows(min_row=3)}
        col = {name: head.index(name) for name in head}
        if by == "agent":
            hostile = rows[str(data.agent_a.user_id)][0]
            assert hostile.value == "'" + HOSTILE_NAME and hostile.data_type == "s"
        else:
            city = rows[CITY]
            assert city[0].value == "嘉兴市"
            assert city[col["接通率"]].value == 0.8333
            assert city[col["接通率"]].number_format == "0.00%"
            assert city[col["呼入量"]].value == 6
            assert city[col["按时办结率"]].value == 0.75
            total = next(sheet.iter_rows(min_row=sheet.max_row))
            assert total[0].value == "合计" and total[col["呼入量"]].value == 8
            assert rows["330200"][col["接通率"]].value is None  # empty, not a division error
        formulas = book["口径说明"]
        text = "\n".join(str(c.value) for row in formulas.iter_rows() for c in row if c.value)
        for name in ("接通率", "呼损率", "服务水平", "平均等待时长", "满意度", "基本满意"):
            assert name in text
        assert "Asia/Shanghai" in text and "15秒" in text


async def test_given_a_ticket_made_through_the_api_then_it_is_counted(tenv: TicketEnv) -> None:
    day = date(2100, 1, 1) + timedelta(days=random.randrange(30_000))
    tenv.now = _local(day, 14)
    agent = await tenv.actor()
    await tenv.create(agent, answer="已当场解答", resolved_on_call=True)
    boss = await tenv.actor(Role.SUPERVISOR)
    report = await _stats(tenv, boss, **{"from": day.isoformat(), "to": day.isoformat()})
    total = report["total"]
    assert (total["tickets"], total["resolved_on_call"], total["resolved"]) == (1, 1, 1)
    assert (total["first_call_resolution_rate"], total["on_time_rate"]) == (1.0, 1.0)
