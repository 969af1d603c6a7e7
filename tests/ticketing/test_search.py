"""Full-text search (``q`` on ``GET /api/tickets``) on SQLite and PostgreSQL: Chinese
substrings, relevance, hostile queries, region scope, and the PostgreSQL bigram index."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select, text

from callcenter.db.models import Role
from tests.ticketing.conftest import CITY, OTHER_CITY, PROVINCE, Actor, TicketEnv
from ticketing.models import Ticket, TicketSearch
from ticketing.search import lexemes, terms, tsquery_literal


async def _ids(env: TicketEnv, actor: Actor, **params: Any) -> list[int]:
    response = await env.get(actor, "/api/tickets", **params)
    assert response.status_code == 200, response.text
    return [t["id"] for t in response.json()["items"]]


def test_given_chinese_and_latin_text_then_lexemes_are_bigrams_and_characters() -> None:
    assert lexemes("欠薪求助", None) == {"欠", "薪", "求", "助", "欠薪", "薪求", "求助"}
    assert lexemes("ＡＢ1 x") == {"a", "b", "1", "ab", "b1", "x"}  # full width folded, lower
    assert tsquery_literal(["欠薪", "x"]) == "'x' & '欠薪'"
    assert tsquery_literal(["%_'\\"]) is None  # no word character: substring test only
    assert terms("  欠薪  工地 欠薪 ") == ["欠薪", "工地"]


async def test_given_chinese_text_when_searching_substrings_then_they_are_found(
    tenv: TicketEnv,
) -> None:
    agent = await tenv.actor()
    m = tenv.marker
    wages = await tenv.create(agent, content=f"农民工欠薪求助，工地拖欠三个月工资 {m}")
    divorce = await tenv.create(
        agent,
        category="legal_consultation",
        content=f"离婚财产分割咨询 {m}",
        answer="依据民法典第一千零八十七条答复",
    )
    for q in ("欠薪", "工欠薪求", "薪", "拖欠三个月", "工资"):
        assert await _ids(tenv, agent, q=f"{q} {m}") == [wages["id"]], q
    assert await _ids(tenv, agent, q=f"民法典 {m}") == [divorce["id"]]  # in the answer
    assert await _ids(tenv, agent, q=f"一千零八十七 {m}") == [divorce["id"]]
    assert await _ids(tenv, agent, q=f"欠款 {m}") == []
    assert await _ids(tenv, agent, q=f"欠薪 离婚 {m}") == []  # every term must match
    assert await _ids(tenv, agent, q=f"三个 月工 {m}") == [wages["id"]]
    assert await _ids(tenv, agent, q=f"个月 {m}", category="mediation") == []
    assert await _ids(tenv, agent, q=f"咨询 {m}", category="legal_consultation") == [divorce["id"]]


async def test_given_matches_in_content_and_answer_then_content_ranks_first(
    tenv: TicketEnv,
) -> None:
    agent = await tenv.actor()
    m = tenv.marker
    in_answer = await tenv.create(agent, content=f"来电 {m}", answer="劳动仲裁 欠薪")
    in_content = await tenv.create(agent, content=f"劳动仲裁 欠薪 {m}")
    half = await tenv.create(agent, content=f"欠薪 {m}", answer="劳动仲裁")
    older_twin = await tenv.create(agent, content=f"劳动仲裁，欠薪 {m}")
    found = await _ids(tenv, agent, q=f"劳动仲裁 欠薪 {m}")
    # 3 terms in content (newest first among equals), then 2, then 1 (marker only).
    assert found == [older_twin["id"], in_content["id"], half["id"], in_answer["id"]]
    page = (await tenv.get(agent, "/api/tickets", q=f"劳动仲裁 欠薪 {m}", limit=2, offset=1)).json()
    assert [t["id"] for t in page["items"]] == [in_content["id"], half["id"]]
    assert page["total"] == 4


@pytest.mark.parametrize(
    "hostile",
    [
        "a & b | !c",
        "':* <-> (",
        "%",
        "_",
        "\\",
        "'; DROP TABLE tickets; --",
        "欠薪:*",
        "''",
    ],
)
async def test_given_hostile_queries_then_they_are_plain_text(
    tenv: TicketEnv, hostile: str
) -> None:
    agent = await tenv.actor()
    m = tenv.marker
    target = await tenv.create(agent, content=f"原文 {hostile} 结束 {m}")
    await tenv.create(agent, content=f"无关内容 abc 欠薪 {m}")
    before = await tenv.row_counts()
    assert await _ids(tenv, agent, q=f"{hostile} {m}") == [target["id"]]
    assert await tenv.row_counts() == before


async def test_given_oversized_or_blank_queries_then_400_and_nothing_changes(
    tenv: TicketEnv,
) -> None:
    agent = await tenv.actor()
    await tenv.create(agent)
    before = await tenv.row_counts()
    for q in ("x" * 10_240, "欠" * 3_000, "   ", " ".join(f"t{i}" for i in range(11))):
        response = await tenv.get(agent, "/api/tickets", q=q)
        assert response.status_code == 400, response.text
        assert [f["field"] for f in response.json()["details"]["fields"]] == ["query.q"]
    assert await tenv.row_counts() == before


async def test_given_other_regions_then_search_stays_in_scope(tenv: TicketEnv) -> None:
    mine, theirs = await tenv.actor(), await tenv.actor(Role.AGENT, OTHER_CITY)
    m = tenv.marker
    here = await tenv.create(mine, content=f"邻里纠纷调解 {m}", category="mediation")
    there = await tenv.create(theirs, content=f"邻里纠纷调解 {m}", category="mediation")
    assert await _ids(tenv, mine, q=f"纠纷 {m}") == [here["id"]]
    assert await _ids(tenv, theirs, q=f"纠纷 {m}") == [there["id"]]
    admin = await tenv.actor(Role.ADMIN, PROVINCE)
    assert await _ids(tenv, admin, q=f"纠纷 {m}") == [there["id"], here["id"]]
    assert await _ids(tenv, admin, q=f"纠纷 {m}", region=CITY) == [here["id"]]


async def test_given_an_answer_added_later_then_it_becomes_searchable(tenv: TicketEnv) -> None:
    agent = await tenv.actor()
    m = tenv.marker
    ticket = await tenv.create(agent, content=f"欠薪 {m}")
    assert await _ids(tenv, agent, q=f"支付令 {m}") == []
    done = await tenv.act(
        agent, ticket["id"], "resolve", {"result": "已办结", "answer": "申请支付令"}
    )
    assert done.status_code == 200, done.text
    assert await _ids(tenv, agent, q=f"支付令 {m}") == [ticket["id"]]


@pytest.mark.postgres
async def test_given_postgres_then_the_bigram_index_serves_the_query(pg_tenv: TicketEnv) -> None:
    agent = await pg_tenv.actor()
    ticket = await pg_tenv.create(agent, content=f"工伤认定申请 {pg_tenv.marker}")
    async with pg_tenv.services.sessionmaker() as session:
        stored = await session.scalar(
            select(func.cast(TicketSearch.vector, Ticket.content.type)).where(
                TicketSearch.ticket_id == ticket["id"]
            )
        )
        assert stored is not None and "'工伤'" in stored and "'认定'" in stored
        await session.execute(text("SET LOCAL enable_seqscan = off"))
        plan = await session.execute(
            text(
                "EXPLAIN SELECT ticket_id FROM ticket_search "
                "WHERE vector @@ CAST('''工伤'' & ''伤认''' AS tsquery)"
            )
        )
        assert "ix_ticket_search_vector" in "\n".join(row[0] for row in plan)


async def test_given_tickets_written_by_other_modules_then_they_are_searchable(
    tenv: TicketEnv,
) -> None:
    """An ORM insert (as the call-to-ticket subscriber does) and an ORM update of the answer
    keep the search material current without going through the ticket service."""
    agent = await tenv.actor()
    m = tenv.marker
    created = await tenv.create(agent, content=f"模板 {m}")
    async with tenv.services.sessionmaker() as session:
        ticket = await session.get(Ticket, created["id"])
        assert ticket is not None
        twin = Ticket(
            **{
                c: getattr(ticket, c)
                for c in Ticket.__table__.columns.keys()
                if c not in ("id", "number")
            },
            number=f"X{m}",
        )
        twin.content = f"来电自动生成工单 {m}"
        session.add(twin)
        await session.commit()
        twin_id = twin.id
    assert await _ids(tenv, agent, q=f"自动生成 {m}") == [twin_id]
    async with tenv.services.sessionmaker() as session:
        stored = await session.get(Ticket, twin_id)
        assert stored is not None
        stored.answer = "已转人民调解委员会"
        await session.commit()
    assert await _ids(tenv, agent, q=f"调解委员会 {m}") == [twin_id]
