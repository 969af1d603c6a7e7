"""Hotline statistics: call and ticket metrics by region, category, agent, hour or day.

Every figure is counted in SQL (one ``GROUP BY`` over ``calls``, one over ``tickets``) as
integers only: counts and sums of whole microseconds. Rates and averages are divided here, in
Python, from those integers, so PostgreSQL and SQLite give identical results, and an empty
group gives ``None`` instead of a division error. The formulas, what counts as offered,
answered and abandoned, and the day boundaries are documented in ``docs/statistics.md``; the
:data:`FORMULAS` table below is the same text, shipped in the Excel export.

Periods are local (``Settings.time_zone``, Asia/Shanghai): a call belongs to the local day and
hour it was *offered*; a ticket to the local day and hour it was *created* (受理), and its later
outcomes (办结, 回访) count toward that period.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from enum import StrEnum
from typing import Any, Final, Self

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    and_,
    case,
    cast,
    extract,
    func,
    literal_column,
    or_,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession

from callcenter.auth.principal import Principal, region_prefix_of
from callcenter.db.models import Call, Region, RegionLevel, User
from callcenter.errors import InvalidInput, NotFound
from ticketing.catalogue import Category, Satisfaction, label
from ticketing.models import Ticket

MAX_DAYS: Final = 366
DEFAULT_THRESHOLD_S: Final = 15
SATISFIED: Final = (
    Satisfaction.VERY_SATISFIED,
    Satisfaction.SATISFIED,
    Satisfaction.BASICALLY_SATISFIED,
)
_MICRO: Final = 1_000_000
_TZ_NAME = re.compile(r"^[A-Za-z0-9_+\-/]{1,64}$")


class Dimension(StrEnum):
    REGION = "region"
    CATEGORY = "category"
    AGENT = "agent"
    HOUR = "hour"
    DAY = "day"


DIMENSION_LABELS: Final = {
    Dimension.REGION: "地区",
    Dimension.CATEGORY: "业务类别",
    Dimension.AGENT: "坐席",
    Dimension.HOUR: "时段",
    Dimension.DAY: "日期",
}


@dataclass(frozen=True, slots=True)
class Formula:
    name: str
    key: str
    numerator: str
    denominator: str
    note: str


FORMULAS: Final[tuple[Formula, ...]] = (
    Formula(
        "接通率",
        "answer_rate",
        "接通量：进入队列且被坐席应答的来电",
        "呼入量：进入队列且已有结果（已应答或已挂断）的来电",
        "在IVR自助环节挂断、从未进入人工队列的来电不计入呼入量；仍在排队的来电暂不计入。",
    ),
    Formula(
        "呼损率",
        "loss_rate",
        "呼损量：进入队列后未被应答即结束的来电（排队中放弃、溢出后未接、断链期间结束）",
        "呼入量",
        "呼损率 = 1 − 接通率；呼损量 = 呼入量 − 接通量。",
    ),
    Formula(
        "服务水平",
        "service_level",
        "N秒内接通量：应答时刻 − 首次进入队列时刻 ≤ N秒（含N秒整）的来电",
        "呼入量",
        "N 默认 15 秒（参数 threshold）；国家标准要求不低于 80%。分母含呼损来电。",
    ),
    Formula(
        "平均等待时长",
        "avg_wait_s",
        "接通来电的等待时长之和（应答时刻 − 首次进入队列时刻）",
        "接通量",
        "单位秒，保留一位小数；只计已接通来电（即平均应答速度）。",
    ),
    Formula(
        "平均通话时长",
        "avg_talk_s",
        "已结束的接通来电的通话时长之和（挂断时刻 − 应答时刻）",
        "已结束的接通来电数",
        "单位秒，保留一位小数；仍在通话中的来电不计入。",
    ),
    Formula(
        "一次办结率",
        "first_call_resolution_rate",
        "一次办结量：受理时即在通话中答复并办结的工单",
        "工单量：统计期内受理的工单",
        "工单按受理时间归入统计期。",
    ),
    Formula(
        "按时办结率",
        "on_time_rate",
        "按时办结量：办结时刻 ≤ 办结时限（含批准的延期）的工单",
        "办结量：统计期内受理且已办结的工单",
        "未办结的工单不计入分母。",
    ),
    Formula(
        "回访率",
        "visit_rate",
        "回访量：已完成回访（记录了满意度）的工单",
        "办结量",
        "",
    ),
    Formula(
        "满意度",
        "satisfaction_rate",
        "满意量：评价为 非常满意、满意 或 基本满意 的工单",
        "评价量：记录了满意度的工单",
        "基本满意计为满意（12348 热线通行口径）；不满意、非常不满意计为不满意。",
    ),
)


@dataclass(frozen=True, slots=True)
class StatsQuery:
    """A validated request: local dates ``start``..``end`` inclusive."""

    start: date
    end: date
    by: Dimension
    threshold_s: int = DEFAULT_THRESHOLD_S
    region: str | None = None

    def __post_init__(self) -> None:
        fields: list[dict[str, str]] = []
        if self.end < self.start:
            fields.append({"field": "query.to", "message": "must not be before from"})
        elif (self.end - self.start).days + 1 > MAX_DAYS:
            fields.append({"field": "query.to", "message": f"at most {MAX_DAYS} days per report"})
        if not 1 <= self.threshold_s <= 600:
            fields.append({"field": "query.threshold", "message": "must be between 1 and 600 s"})
        if fields:
            raise InvalidInput(fields[0]["message"], fields=fields)


class _Counts:
    """Counters that add up field by field (the 合计 row is the sum of the others)."""

    __slots__: tuple[str, ...] = ()

    def add(self, other: Self) -> None:
        for name in self.__slots__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass(slots=True)
class CallCounts(_Counts):
    offered: int = 0
    answered: int = 0
    answered_within: int = 0
    wait_us: int = 0
    talked: int = 0
    talk_us: int = 0


@dataclass(slots=True)
class TicketCounts(_Counts):
    tickets: int = 0
    resolved_on_call: int = 0
    resolved: int = 0
    resolved_on_time: int = 0
    visited: int = 0
    rated: int = 0
    satisfied: int = 0


def ratio(numerator: int, denominator: int) -> float | None:
    """A rate rounded to 4 places (0.8125), or ``None`` when nothing was counted."""
    return round(numerator / denominator, 4) if denominator else None


def _seconds(micros: int, count: int) -> float | None:
    return round(micros / count / _MICRO, 1) if count else None


@dataclass(slots=True)
class StatsRow:
    """One group (``key`` ``None`` is the unknown region / unanswered agent), or the total."""

    key: str | None
    label: str
    calls: CallCounts | None = field(default_factory=CallCounts)
    tickets: TicketCounts = field(default_factory=TicketCounts)

    def metrics(self) -> dict[str, Any]:
        """Counts and derived figures, flat, in the order of the export columns."""
        out: dict[str, Any] = {}
        c = self.calls
        if c is None:
            out.update(dict.fromkeys(CALL_FIELDS))
        else:
            abandoned = c.offered - c.answered
            answer_rate = ratio(c.answered, c.offered)
            out.update(
                offered=c.offered,
                answered=c.answered,
                abandoned=abandoned,
                answered_within=c.answered_within,
                answer_rate=answer_rate,
                loss_rate=ratio(abandoned, c.offered),
                service_level=ratio(c.answered_within, c.offered),
                avg_wait_s=_seconds(c.wait_us, c.answered),
                avg_talk_s=_seconds(c.talk_us, c.talked),
            )
        t = self.tickets
        out.update(
            tickets=t.tickets,
            resolved_on_call=t.resolved_on_call,
            resolved=t.resolved,
            resolved_on_time=t.resolved_on_time,
            visited=t.visited,
            rated=t.rated,
            satisfied=t.satisfied,
            first_call_resolution_rate=ratio(t.resolved_on_call, t.tickets),
            on_time_rate=ratio(t.resolved_on_time, t.resolved),
            visit_rate=ratio(t.visited, t.resolved),
            satisfaction_rate=ratio(t.satisfied, t.rated),
        )
        return out


CALL_FIELDS: Final = (
    "offered",
    "answered",
    "abandoned",
    "answered_within",
    "answer_rate",
    "loss_rate",
    "service_level",
    "avg_wait_s",
    "avg_talk_s",
)
TICKET_FIELDS: Final = (
    "tickets",
    "resolved_on_call",
    "resolved",
    "resolved_on_time",
    "visited",
    "rated",
    "satisfied",
    "first_call_resolution_rate",
    "on_time_rate",
    "visit_rate",
    "satisfaction_rate",
)
RATE_FIELDS: Final = frozenset(name for name in CALL_FIELDS + TICKET_FIELDS if "rate" in name) | {
    "service_level"
}
COLUMN_LABELS: Final = {
    "offered": "呼入量",
    "answered": "接通量",
    "abandoned": "呼损量",
    "answered_within": "{n}秒内接通量",
    "answer_rate": "接通率",
    "loss_rate": "呼损率",
    "service_level": "服务水平({n}秒)",
    "avg_wait_s": "平均等待时长(秒)",
    "avg_talk_s": "平均通话时长(秒)",
    "tickets": "工单量",
    "resolved_on_call": "一次办结量",
    "resolved": "办结量",
    "resolved_on_time": "按时办结量",
    "visited": "回访量",
    "rated": "评价量",
    "satisfied": "满意量",
    "first_call_resolution_rate": "一次办结率",
    "on_time_rate": "按时办结率",
    "visit_rate": "回访率",
    "satisfaction_rate": "满意度",
}


@dataclass(slots=True)
class StatsReport:
    query: StatsQuery
    time_zone: str
    scope: str
    """The region code whose prefix bounds the report (the caller's, or ``query.region``)."""
    rows: list[StatsRow]
    total: StatsRow


# --- SQL per dialect ----------------------------------------------------------------------


class _Sql:
    """The few expressions that differ between PostgreSQL and SQLite, all integer-exact."""

    def __init__(self, dialect: str, tz: tzinfo, tz_name: str, start: datetime) -> None:
        if not _TZ_NAME.match(tz_name):
            raise ValueError(f"unexpected time zone name {tz_name!r}")
        self.pg = dialect == "postgresql"
        # Inlined (validated) rather than bound: PostgreSQL matches GROUP BY to the select list
        # by text, and two bind parameters of the same value are two different expressions.
        self._zone: ColumnElement[str] = literal_column(f"'{tz_name}'")
        offset = start.astimezone(tz).utcoffset() or timedelta(0)
        self._offset: ColumnElement[str] = literal_column(
            f"'{int(offset.total_seconds()) // 60:+d} minutes'"
        )

    def local_day(self, column: Any) -> ColumnElement[str]:
        if self.pg:
            return func.to_char(func.timezone(self._zone, column), literal_column("'YYYY-MM-DD'"))
        return func.strftime(literal_column("'%Y-%m-%d'"), _whole_seconds(column), self._offset)

    def local_hour(self, column: Any) -> ColumnElement[int]:
        if self.pg:
            return cast(extract("hour", func.timezone(self._zone, column)), Integer)
        hour = func.strftime(literal_column("'%H'"), _whole_seconds(column), self._offset)
        return cast(hour, Integer)

    def micros(self, later: Any, earlier: Any) -> ColumnElement[int]:
        """Whole microseconds from ``earlier`` to ``later`` (exact: no float on either side).

        SQLite keeps timestamps as ``YYYY-MM-DD HH:MM:SS.ffffff`` text (SQLAlchemy's format):
        whole seconds from ``strftime('%s')``, the microseconds from characters 21-26.
        """
        if self.pg:
            return cast(extract("epoch", later - earlier) * _MICRO, BigInteger)
        seconds = cast(func.strftime(literal_column("'%s'"), later), BigInteger) - cast(
            func.strftime(literal_column("'%s'"), earlier), BigInteger
        )
        fraction = cast(func.substr(later, 21, 6), BigInteger) - cast(
            func.substr(earlier, 21, 6), BigInteger
        )
        return seconds * _MICRO + fraction

    def within(self, later: Any, earlier: Any, seconds: int) -> ColumnElement[bool]:
        """``later - earlier <= seconds``, exactly (PostgreSQL compares intervals directly)."""
        if self.pg:
            limit: ColumnElement[Any] = literal_column(f"interval '{int(seconds)} seconds'")
            compared: ColumnElement[bool] = (later - earlier) <= limit
            return compared
        return self.micros(later, earlier) <= seconds * _MICRO

    def sum_micros(self, condition: ColumnElement[bool], later: Any, earlier: Any) -> Any:
        """Σ (later − earlier) in microseconds over the rows where ``condition`` holds.

        PostgreSQL sums the intervals (exact to the microsecond) and converts once per group,
        much cheaper than a numeric conversion per row.
        """
        if self.pg:
            total = func.sum(case((condition, later - earlier)))
            return cast(func.coalesce(extract("epoch", total), 0) * _MICRO, BigInteger)
        return func.sum(case((condition, self.micros(later, earlier)), else_=0))


def _whole_seconds(column: Any) -> ColumnElement[str]:
    """SQLite's date functions round to milliseconds: 23:59:59.9999995 would become the next
    day. Cutting the text at whole seconds keeps every instant in its own local day/hour."""
    return func.substr(column, 1, 19)


def _city_of(column: Any) -> ColumnElement[str]:
    """``330402`` → ``330400``: counties roll up into their city; the province stays itself."""
    return func.substr(column, 1, 4).concat(literal_column("'00'"))


def _flag(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.sum(case((condition, 1), else_=0))


# --- the service --------------------------------------------------------------------------


class StatisticsService:
    """One per request: computes a :class:`StatsReport` within the principal's region scope."""

    def __init__(self, session: AsyncSession, *, tz: tzinfo, tz_name: str) -> None:
        self.session = session
        self.tz = tz
        self.tz_name = tz_name

    async def report(self, principal: Principal, query: StatsQuery) -> StatsReport:
        scope = principal.region_code
        if query.region is not None:
            if not principal.can_see_region(query.region):
                raise NotFound(f"region {query.region} not found", region=query.region)
            scope = query.region
        start, end = self.bounds(query)
        dialect = self.session.get_bind().dialect.name
        sql = _Sql(dialect, self.tz, self.tz_name, start)
        prefix = region_prefix_of(scope)
        calls = (
            None
            if query.by is Dimension.CATEGORY
            else await self._calls(sql, query, prefix, start, end)
        )
        tickets = await self._tickets(sql, query, prefix, start, end)
        rows = await self._rows(query, prefix, calls, tickets)
        total = StatsRow(key=None, label="合计", calls=None if calls is None else CallCounts())
        for row in rows:
            if total.calls is not None and row.calls is not None:
                total.calls.add(row.calls)
            total.tickets.add(row.tickets)
        return StatsReport(query, self.tz_name, scope, rows, total)

    def bounds(self, query: StatsQuery) -> tuple[datetime, datetime]:
        """UTC instants of local midnight starting ``start`` and ending ``end``."""
        first = datetime.combine(query.start, time(0), self.tz)
        after = datetime.combine(query.end + timedelta(days=1), time(0), self.tz)
        return first.astimezone(UTC), after.astimezone(UTC)

    async def _calls(
        self, sql: _Sql, query: StatsQuery, prefix: str, start: datetime, end: datetime
    ) -> dict[Any, CallCounts]:
        key = self._call_key(sql, query.by)
        answered = Call.answered_at.is_not(None)
        ended = and_(answered, Call.ended_at.is_not(None))
        in_time = sql.within(Call.answered_at, Call.queued_at, query.threshold_s)
        stmt = (
            select(
                key.label("k"),
                func.count(),
                _flag(answered),
                _flag(and_(answered, in_time)),
                sql.sum_micros(answered, Call.answered_at, Call.queued_at),
                _flag(ended),
                sql.sum_micros(ended, Call.ended_at, Call.answered_at),
            )
            .where(
                Call.offered_at >= start,
                Call.offered_at < end,
                Call.queued_at.is_not(None),
                or_(answered, Call.ended_at.is_not(None)),
                _call_scope(prefix),
            )
            .group_by(key)
        )
        out: dict[Any, CallCounts] = {}
        for k, *counts in await self.session.execute(stmt):
            offered, ans, within, wait_us, talked, talk_us = (int(v or 0) for v in counts)
            out[k] = CallCounts(offered, ans, within, wait_us, talked, talk_us)
        return out

    async def _tickets(
        self, sql: _Sql, query: StatsQuery, prefix: str, start: datetime, end: datetime
    ) -> dict[Any, TicketCounts]:
        key = self._ticket_key(sql, query.by)
        resolved = Ticket.resolved_at.is_not(None)
        rated = Ticket.satisfaction.is_not(None)
        stmt = (
            select(
                key.label("k"),
                func.count(),
                _flag(Ticket.resolved_on_call.is_(True)),
                _flag(resolved),
                _flag(and_(resolved, Ticket.resolved_at <= Ticket.resolve_by)),
                _flag(and_(resolved, rated)),
                _flag(rated),
                _flag(Ticket.satisfaction.in_([s.value for s in SATISFIED])),
            )
            .where(
                Ticket.created_at >= start,
                Ticket.created_at < end,
                Ticket.region_code.startswith(prefix, autoescape=True),
            )
            .group_by(key)
        )
        out: dict[Any, TicketCounts] = {}
        for k, *counts in await self.session.execute(stmt):
            out[k] = TicketCounts(*(int(v or 0) for v in counts))
        return out

    @staticmethod
    def _call_key(sql: _Sql, by: Dimension) -> ColumnElement[Any]:
        match by:
            case Dimension.REGION:
                return _city_of(Call.caller_region_code)
            case Dimension.AGENT:
                return Call.agent_user_id.expression
            case Dimension.HOUR:
                return sql.local_hour(Call.offered_at)
            case _:
                return sql.local_day(Call.offered_at)

    @staticmethod
    def _ticket_key(sql: _Sql, by: Dimension) -> ColumnElement[Any]:
        match by:
            case Dimension.REGION:
                return _city_of(Ticket.region_code)
            case Dimension.CATEGORY:
                return Ticket.category.expression
            case Dimension.AGENT:
                return func.coalesce(Ticket.assignee_id, Ticket.created_by_id)
            case Dimension.HOUR:
                return sql.local_hour(Ticket.created_at)
            case _:
                return sql.local_day(Ticket.created_at)

    async def _rows(
        self,
        query: StatsQuery,
        prefix: str,
        calls: dict[Any, CallCounts] | None,
        tickets: dict[Any, TicketCounts],
    ) -> list[StatsRow]:
        """Every expected group (all days, hours, categories, visible cities), zeros included."""
        present = set(tickets) | set(calls or {})
        labels = await self._labels(query, prefix, present)
        rows = []
        for key, text in labels:
            counts = None if calls is None else calls.get(key, CallCounts())
            row = StatsRow(
                key=None if key is None else str(key),
                label=text,
                calls=counts,
                tickets=tickets.get(key, TicketCounts()),
            )
            rows.append(row)
        return rows

    async def _labels(
        self, query: StatsQuery, prefix: str, present: set[Any]
    ) -> list[tuple[Any, str]]:
        match query.by:
            case Dimension.DAY:
                days = (query.end - query.start).days + 1
                return [
                    (d.isoformat(), d.isoformat())
                    for d in (query.start + timedelta(days=i) for i in range(days))
                ]
            case Dimension.HOUR:
                return [(h, f"{h:02d}:00-{h + 1:02d}:00") for h in range(24)]
            case Dimension.CATEGORY:
                return [(c.value, label(c)) for c in Category]
            case Dimension.REGION:
                return await self._region_labels(prefix, present)
            case _:
                return await self._agent_labels(present)

    async def _region_labels(self, prefix: str, present: set[Any]) -> list[tuple[Any, str]]:
        stmt = select(Region.code, Region.name).where(
            Region.code.startswith(prefix, autoescape=True),
            or_(Region.level == RegionLevel.CITY.value, Region.code.in_(_codes(present))),
        )
        names = {code: name for code, name in await self.session.execute(stmt)}
        if len(prefix) > 4:  # a county user: only its own code, named as such
            names = {code: name for code, name in names.items() if code in present}
        keys = sorted(set(names) | {k for k in present if k is not None})
        out: list[tuple[Any, str]] = [(k, names.get(k, k)) for k in keys]
        if None in present:
            out.append((None, "未知地区"))
        return out

    async def _agent_labels(self, present: set[Any]) -> list[tuple[Any, str]]:
        ids = sorted(k for k in present if k is not None)
        stmt = select(User.id, User.display_name, User.username).where(User.id.in_(ids))
        rows = await self.session.execute(stmt)
        names = {uid: display or username for uid, display, username in rows}
        out: list[tuple[Any, str]] = [(uid, names.get(uid, f"#{uid}")) for uid in ids]
        if None in present:
            out.append((None, "未接通/无坐席"))
        return out


def _call_scope(prefix: str) -> ColumnElement[bool]:
    """A call's region is its caller's; calls of unknown origin belong to the province only."""
    within = Call.caller_region_code.startswith(prefix, autoescape=True)
    if len(prefix) == 2:
        return or_(within, Call.caller_region_code.is_(None))
    return within


def _codes(keys: Iterable[Any]) -> Sequence[str]:
    return sorted(k for k in keys if isinstance(k, str))
