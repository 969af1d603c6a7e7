"""Statistics for a month of a province's traffic on PostgreSQL (prints figures).

Run: ``.venv/bin/python bench/bench_stats.py [--calls 60000]``

Fills a throw-away database with one month of calls in the 11 cities of 浙江省 (about 80 %
answered, waits and talks drawn at random, a share offered around midnight) and one ticket per
answered call (some resolved on the call, some late, some visited), then times the province's
report (``StatisticsService.report``, what ``GET /api/stats`` runs) for each grouping, against a
plain-Python baseline in the same run: fetch the same rows and aggregate them in a loop.
Both must agree on the totals. Goal (issue 5): under one second.

Uses ``CALLCENTER_TEST_PG`` (default ``postgres@127.0.0.1:5432``).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from throwaway import province_database  # bench/, beside this script

from callcenter.auth.principal import Principal
from callcenter.db.engine import make_engine, make_sessionmaker
from callcenter.db.models import Call, Role, User
from callcenter.routing.calendar import SHANGHAI
from ticketing.models import Ticket
from ticketing.statistics import Dimension, StatisticsService, StatsQuery

CITIES = [f"33{c:02d}00" for c in range(1, 12)]
CATEGORIES = ["legal_consultation"] * 6 + ["legal_aid", "mediation", "complaint_suggestion"]
MONTH = date(2026, 10, 1)
DAYS = 31
AGENTS_PER_CITY = 12


def _traffic(count: int, agents: dict[str, list[int]], rng: random.Random) -> tuple[list, list]:
    start = datetime(MONTH.year, MONTH.month, MONTH.day, tzinfo=SHANGHAI).astimezone(UTC)
    calls: list[dict[str, Any]] = []
    tickets: list[dict[str, Any]] = []
    for i in range(count):
        city = rng.choice(CITIES)
        offered = start + timedelta(seconds=rng.uniform(0, DAYS * 86400))
        queued = offered + timedelta(seconds=rng.uniform(5, 40))
        answered = rng.random() < 0.8
        row: dict[str, Any] = {
            "node": "bench",
            "direction": "inbound",
            "linkedid": f"b{i}",
            "caller_number": f"138{i:08d}",
            "caller_region_code": city,
            "offered_at": offered,
            "queued_at": queued,
            "ivr_path": [],
            "routing": [],
        }
        if answered:
            at = queued + timedelta(seconds=rng.expovariate(1 / 12))
            agent = rng.choice(agents[city])
            row |= {
                "answered_at": at,
                "ended_at": at + timedelta(seconds=rng.expovariate(1 / 240)),
                "agent_user_id": agent,
                "disposition": "answered",
            }
            tickets.append(_ticket(i, city, at, agent, rng))
        else:
            row |= {
                "answered_at": None,
                "ended_at": queued + timedelta(seconds=rng.uniform(1, 90)),
                "agent_user_id": None,
                "disposition": "abandoned",
            }
        calls.append(row)
    return calls, tickets


def _ticket(i: int, city: str, at: datetime, agent: int, rng: random.Random) -> dict[str, Any]:
    on_call = rng.random() < 0.6
    resolved = on_call or rng.random() < 0.85
    resolved_at = at if on_call else at + timedelta(days=rng.uniform(0.5, 8))
    satisfaction = None
    if resolved and rng.random() < 0.5:
        satisfaction = rng.choice(
            ["very_satisfied", "satisfied", "basically_satisfied", "dissatisfied"]
        )
    return {
        "number": f"{city}-B{i:08d}",
        "region_code": city,
        "channel": "phone",
        "category": rng.choice(CATEGORIES),
        "request_type": "consultation",
        "content": "咨询",
        "answer": "已答复" if on_call else None,
        "urgency": "normal",
        "green_channel": False,
        "resolved_on_call": on_call,
        "state": "resolved" if resolved else "in_progress",
        "version": 2,
        "accept_by": at + timedelta(days=1),
        "resolve_by": at + timedelta(days=7),
        "extended_days": 0,
        "urge_count": 0,
        "supervised": False,
        "satisfaction": satisfaction,
        "assignee_id": None if on_call else agent,
        "created_by_id": agent,
        "created_at": at,
        "updated_at": at,
        "resolved_at": resolved_at if resolved else None,
    }


def _copyable(value: Any) -> Any:
    """COPY takes JSON columns as text."""
    return "[]" if value == [] else value


def _python_baseline(calls: list[Any], tickets: list[Any], threshold: float) -> dict[str, int]:
    """What a report would cost without SQL aggregation: every row to Python, one loop."""
    out = dict.fromkeys(("offered", "answered", "within", "tickets", "on_time"), 0)
    for queued, answered, ended in calls:
        if queued is None or (answered is None and ended is None):
            continue
        out["offered"] += 1
        if answered is not None:
            out["answered"] += 1
            out["within"] += (answered - queued).total_seconds() <= threshold
    for resolved_at, resolve_by in tickets:
        out["tickets"] += 1
        out["on_time"] += resolved_at is not None and resolved_at <= resolve_by
    return out


async def main(count: int) -> None:
    async with province_database() as url:
        engine = make_engine(url)
        try:
            await _measure(make_sessionmaker(engine), count)
        finally:
            await engine.dispose()


async def _measure(sessions: Any, count: int) -> None:
    rng = random.Random(12348)
    agents: dict[str, list[int]] = {}
    async with sessions() as session:
        for city in CITIES:
            users = [
                User(
                    username=f"a{city}_{n}",
                    password_hash="!",  # noqa: S106 - never logs in
                    role="agent",
                    region_code=city,
                )
                for n in range(AGENTS_PER_CITY)
            ]
            session.add_all(users)
            await session.flush()
            agents[city] = [u.id for u in users]
        await session.commit()
    calls, tickets = _traffic(count, agents, rng)
    load = time.perf_counter()
    async with sessions() as session:
        raw = (await (await session.connection()).get_raw_connection()).driver_connection
        for table, rows in (("calls", calls), ("tickets", tickets)):
            columns = list(rows[0])
            records = [[_copyable(row[c]) for c in columns] for row in rows]
            await raw.copy_records_to_table(table, records=records, columns=columns)
        await session.commit()
    load_s = time.perf_counter() - load
    print(f"loaded {len(calls)} calls and {len(tickets)} tickets in {load_s:.1f} s (not timed)")

    province = Principal(
        user_id=0,
        username="bench",
        display_name="",
        role=Role.ADMIN,
        region_code="330000",
        skills=(),
        languages=(),
        auth_kind="bearer",
        session_hash="",
    )
    last = MONTH + timedelta(days=DAYS - 1)
    print(f"{'report (province, one month)':<34}{'ms':>8}{'rows':>6}")
    totals = None
    for by in Dimension:
        async with sessions() as session:
            svc = StatisticsService(session, tz=SHANGHAI, tz_name="Asia/Shanghai")
            query = StatsQuery(start=MONTH, end=last, by=by)
            await svc.report(province, query)  # warm: plans, connection
            started = time.perf_counter()
            report = await svc.report(province, query)
            ms = (time.perf_counter() - started) * 1000
        print(f"{'SQL GROUP BY ' + by.value:<34}{ms:>8.0f}{len(report.rows):>6}")
        totals = report.total.metrics()

    async with sessions() as session:
        svc = StatisticsService(session, tz=SHANGHAI, tz_name="Asia/Shanghai")
        start, end = svc.bounds(StatsQuery(start=MONTH, end=last, by=Dimension.DAY))
        started = time.perf_counter()
        call_rows = (
            await session.execute(
                select(Call.queued_at, Call.answered_at, Call.ended_at).where(
                    Call.offered_at >= start, Call.offered_at < end
                )
            )
        ).all()
        ticket_rows = (
            await session.execute(
                select(Ticket.resolved_at, Ticket.resolve_by).where(
                    Ticket.created_at >= start, Ticket.created_at < end
                )
            )
        ).all()
        baseline = _python_baseline(list(call_rows), list(ticket_rows), 15)
        base_ms = (time.perf_counter() - started) * 1000
    print(f"{'Python baseline (fetch + loop)':<34}{base_ms:>8.0f}{'-':>6}")
    assert totals is not None
    same = (
        baseline["offered"] == totals["offered"]
        and baseline["answered"] == totals["answered"]
        and baseline["within"] == totals["answered_within"]
        and baseline["tickets"] == totals["tickets"]
        and baseline["on_time"] == totals["resolved_on_time"]
    )
    print(f"totals agree with the baseline: {same}")
    print(
        f"month: offered {totals['offered']}, 接通率 {totals['answer_rate']}, "
        f"服务水平 {totals['service_level']}, 满意度 {totals['satisfaction_rate']}"
    )
    print("goal: < 1000 ms per report")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=60_000)
    args = parser.parse_args()
    asyncio.run(main(args.calls))
