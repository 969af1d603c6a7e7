"""Ticket assignment (派单): handling units, teams, and the rule file that picks them.

A rule matches on region, category, request type, urgency and the green channel; it names a
handling unit (by kind, found in the ticket's city or else the province, or by code), a team,
and the skill an agent needs. The first matching rule wins. The agent is the eligible one
with the fewest open tickets (dispatched, signed or in progress), ties to the lowest user id so
two previews agree; with no eligible agent the ticket goes to the unit alone. Every step adds
a reason (zh-CN) so a supervisor can see why (``GET /api/assignment/preview``).

The rule file is edited by people, so it is refused at load time with ``file:line: field:
reason`` for every problem (the same YAML machinery as the routing rules).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from callcenter.auth.principal import region_prefix_of
from callcenter.db.models import Region, Role, Seat, User
from callcenter.errors import InvalidInput
from callcenter.regions.provinces import ProvinceData
from callcenter.routing.rules import RulesError, _compose, _validation_problems
from callcenter.settings import ConfigError
from ticketing.catalogue import Category, RequestType, Urgency, label
from ticketing.models import HandlingUnit, Team, TeamMember, Ticket, UnitKind
from ticketing.states import State

DATA_DIR = Path(__file__).resolve().parent / "data"
DEFAULT_RULES = DATA_DIR / "assignment.default.yaml"

UNIT_KIND_LABELS: dict[UnitKind, str] = {
    UnitKind.JUSTICE_BUREAU: "司法局",
    UnitKind.LEGAL_AID_CENTER: "法律援助中心",
    UnitKind.MEDIATION_COMMITTEE: "人民调解委员会",
    UnitKind.NOTARY_OFFICE: "公证处",
    UnitKind.ARBITRATION_COMMISSION: "仲裁委员会",
}
OPEN_WORK = (State.DISPATCHED.value, State.SIGNED.value, State.IN_PROGRESS.value)

_Code = Annotated[str, Field(pattern=r"^\d{6}$")]
_Key = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
_Skill = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")]


class RuleFileError(ConfigError):
    """A rule or unit file is unusable; ``problems`` holds one ``file:line: field: reason`` each.

    A ``ConfigError`` so every command stops with the message instead of a traceback."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


# --- the rule file ----------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Match(_Strict):
    region: list[_Code] = Field(default_factory=list, max_length=200)
    category: list[Category] = Field(default_factory=list)
    request_type: list[RequestType] = Field(default_factory=list)
    urgency: list[Urgency] = Field(default_factory=list)
    green_channel: bool | None = None


class Rule(_Strict):
    name: str = Field(min_length=1, max_length=64)
    match: Match = Field(default_factory=Match)
    unit_kind: UnitKind | None = None
    unit: _Key | None = None
    team: _Key | None = None
    skill: _Skill | None = None

    @model_validator(mode="after")
    def _has_target(self) -> Rule:
        if self.unit_kind is None and self.unit is None and self.team is None:
            raise ValueError("a rule needs a target: unit_kind, unit or team")
        if self.unit_kind is not None and self.unit is not None:
            raise ValueError("name either unit_kind or unit, not both")
        return self


class RuleFile(_Strict):
    version: Literal[1]
    rules: list[Rule] = Field(min_length=1, max_length=500)


@dataclass(frozen=True, slots=True)
class RuleSet:
    """Validated rules and where each came from (``source`` and 1-based lines)."""

    rules: tuple[Rule, ...]
    source: str
    lines: tuple[int, ...]

    def where(self, index: int) -> str:
        return f"{Path(self.source).name}:{self.lines[index]}"


def parse_rules(text: str, name: str = "assignment.yaml") -> RuleSet:
    """Validate rule text; ``RuleFileError`` naming the file, line and field of each problem."""
    try:
        doc = _compose(text, name)
    except RulesError as exc:
        raise RuleFileError(exc.problems) from None
    problems = [f"{name}:{line}: {path}: duplicate key" for line, path in doc.duplicates]
    if not isinstance(doc.data, dict):
        raise RuleFileError([*problems, f"{name}:1: (top level): must be a mapping"])
    try:
        parsed = RuleFile.model_validate(doc.data)
    except ValidationError as exc:
        raise RuleFileError([*problems, *_validation_problems(exc, doc, name)]) from None
    names: dict[str, int] = {}
    for index, rule in enumerate(parsed.rules):
        line = doc.lines.get(("rules", str(index), "name"), 1)
        if rule.name in names:
            problems.append(
                f"{name}:{line}: rules[{index}].name: duplicate rule name {rule.name!r}"
            )
        names[rule.name] = index
    if problems:
        raise RuleFileError(problems)
    lines = tuple(doc.lines.get(("rules", str(i)), 1) for i in range(len(parsed.rules)))
    return RuleSet(rules=tuple(parsed.rules), source=name, lines=lines)


def load_rules(path: Path) -> RuleSet:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RuleFileError([f"{path}: cannot read: {exc}"]) from None
    return parse_rules(text, name=str(path))


@lru_cache(maxsize=8)
def _cached_rules(path: Path, mtime_ns: int) -> RuleSet:
    return load_rules(path)


def rules_from(path: Path | None) -> RuleSet:
    """The rules in ``path`` (default: the packaged file), re-read when the file changes."""
    target = (path or DEFAULT_RULES).resolve()
    try:
        mtime = target.stat().st_mtime_ns
    except OSError as exc:
        raise RuleFileError([f"{target}: cannot read: {exc.strerror}"]) from None
    return _cached_rules(target, mtime)


_configured: list[Path | None] = [None]


def configure_rules(path: Path | None) -> RuleSet:
    """Validate and select the process's rule file (``CALLCENTER_ASSIGNMENT_RULES``); the
    composition root calls this at startup so a bad file stops the server before it serves."""
    rules = rules_from(path)
    _configured[0] = path
    return rules


def active_rules() -> RuleSet:
    """The configured rule file (the packaged default until :func:`configure_rules`)."""
    return rules_from(_configured[0])


# --- matching ---------------------------------------------------------------------------------


def _names(codes: Iterable[Category | RequestType | Urgency]) -> str:
    return "、".join(label(code) for code in codes)


def mismatch(rule: Rule, ticket: Ticket) -> str | None:
    """Why ``rule`` does not match ``ticket`` (zh-CN), or ``None`` when it does."""
    m = rule.match
    if m.region and not any(ticket.region_code.startswith(region_prefix_of(r)) for r in m.region):
        return f"地区 {ticket.region_code} 不在 {', '.join(m.region)} 内"
    if m.category and ticket.category not in m.category:
        return f"类别 {label(Category(ticket.category))} 不属于 {_names(m.category)}"
    if m.request_type and ticket.request_type not in m.request_type:
        kind = label(RequestType(ticket.request_type))
        return f"诉求类型 {kind} 不属于 {_names(m.request_type)}"
    if m.urgency and ticket.urgency not in m.urgency:
        return f"紧急程度 {label(Urgency(ticket.urgency))} 不属于 {_names(m.urgency)}"
    if m.green_channel is not None and ticket.green_channel != m.green_channel:
        return "不是绿色通道工单" if m.green_channel else "是绿色通道工单"
    return None


def _matched_because(rule: Rule, ticket: Ticket) -> str:
    m = rule.match
    parts = []
    if m.region:
        parts.append(f"地区 {ticket.region_code}")
    if m.category:
        parts.append(f"类别 = {label(Category(ticket.category))}")
    if m.request_type:
        parts.append(f"诉求类型 = {label(RequestType(ticket.request_type))}")
    if m.urgency:
        parts.append(f"紧急程度 = {label(Urgency(ticket.urgency))}")
    if m.green_channel is not None:
        parts.append("绿色通道" if ticket.green_channel else "非绿色通道")
    return "、".join(parts) or "无条件 (兜底规则)"


# --- the decision -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UnitRef:
    id: int
    code: str
    name: str
    kind: str
    region_code: str


@dataclass(frozen=True, slots=True)
class Candidate:
    user_id: int
    username: str
    display_name: str
    open_tickets: int


@dataclass(slots=True)
class Decision:
    """Where a ticket would go and why; ``assignee``/``unit`` may each be ``None``."""

    rule: str | None = None
    rule_source: str | None = None
    unit: UnitRef | None = None
    team_code: str | None = None
    skill: str | None = None
    candidates: list[Candidate] = field(default_factory=list)
    assignee: Candidate | None = None
    reasons: list[str] = field(default_factory=list)

    @property
    def found(self) -> bool:
        return self.unit is not None or self.assignee is not None

    def as_details(self) -> dict[str, Any]:
        """What the dispatch history row records (ids and names, no personal data)."""
        return {
            "auto": True,
            "rule": self.rule,
            "rule_source": self.rule_source,
            "unit_code": self.unit.code if self.unit else None,
            "team": self.team_code,
            "skill": self.skill,
            "reasons": list(self.reasons),
        }


class Assigner:
    """Applies a :class:`RuleSet` to one ticket with one session (read only)."""

    def __init__(
        self, session: AsyncSession, rules: RuleSet, pending: Mapping[int, int] | None = None
    ) -> None:
        self.session = session
        self.rules = rules
        self.pending = pending if pending is not None else {}
        """Open tickets per agent not yet written (a batch's earlier items): counted as load."""

    async def decide(self, ticket: Ticket, *, exclude: Iterable[int] = ()) -> Decision:
        decision = Decision()
        for index, rule in enumerate(self.rules.rules):
            why_not = mismatch(rule, ticket)
            if why_not is not None:
                decision.reasons.append(f"规则「{rule.name}」不匹配: {why_not}")
                continue
            decision.rule, decision.rule_source = rule.name, self.rules.where(index)
            decision.skill = rule.skill
            because = _matched_because(rule, ticket)
            decision.reasons.append(f"规则「{rule.name}」({decision.rule_source}) 匹配: {because}")
            await self._apply(rule, ticket, decision, frozenset(exclude))
            return decision
        decision.reasons.append("没有匹配的派单规则")
        return decision

    async def _apply(
        self, rule: Rule, ticket: Ticket, decision: Decision, exclude: frozenset[int]
    ) -> None:
        unit = await self._unit(rule, ticket, decision)
        decision.unit = unit
        team_id = await self._team(rule, decision)
        if rule.team is not None and team_id is None:
            return
        area = unit.region_code if unit else _city_of(ticket.region_code)
        agents = await self._eligible(ticket, area, team_id, rule.skill, exclude)
        decision.candidates = agents
        scope = f"小组 {rule.team}" if team_id is not None else f"地区 {area}"
        needs = f"技能 {rule.skill}" if rule.skill else "无技能要求"
        if not agents:
            decision.reasons.append(f"没有符合条件的坐席 ({needs}, {scope}): 只派给承办单位")
            return
        best = agents[0]
        decision.assignee = best
        ties = [a for a in agents[1:] if a.open_tickets == best.open_tickets]
        tie_note = f", 与 {len(ties)} 人并列, 按用户编号先后" if ties else ""
        who = best.display_name or best.username
        decision.reasons.append(
            f"{len(agents)} 名坐席符合 ({needs}, {scope}); 派给 {who}"
            f" (在办工单 {best.open_tickets} 件, 最少{tie_note})"
        )

    async def _unit(self, rule: Rule, ticket: Ticket, decision: Decision) -> UnitRef | None:
        if rule.unit is not None:
            row = await self.session.scalar(
                select(HandlingUnit).where(
                    HandlingUnit.code == rule.unit, HandlingUnit.is_active.is_(True)
                )
            )
            if row is None:
                decision.reasons.append(f"承办单位 {rule.unit} 不存在或已停用")
                return None
            if not unit_serves(row, ticket.region_code):
                decision.reasons.append(f"承办单位 {row.name} 不承办地区 {ticket.region_code}")
                return None
            decision.reasons.append(f"承办单位: {row.name} (规则指定)")
            return _ref(row)
        if rule.unit_kind is None:
            return None
        kind_label = UNIT_KIND_LABELS[rule.unit_kind]
        for code in regions_up(ticket.region_code):
            row = await self.session.scalar(
                select(HandlingUnit)
                .where(
                    HandlingUnit.region_code == code,
                    HandlingUnit.kind == rule.unit_kind.value,
                    HandlingUnit.is_active.is_(True),
                )
                .order_by(HandlingUnit.id)
                .limit(1)
            )
            if row is not None:
                where = "本地" if code == ticket.region_code else f"上级 {code}"
                decision.reasons.append(f"承办单位: {row.name} ({where}的{kind_label})")
                return _ref(row)
        decision.reasons.append(f"地区 {ticket.region_code} 及其上级都没有{kind_label}")
        return None

    async def _team(self, rule: Rule, decision: Decision) -> int | None:
        if rule.team is None:
            return None
        team = await self.session.scalar(select(Team).where(Team.code == rule.team))
        if team is None:
            decision.reasons.append(f"小组 {rule.team} 不存在")
            return None
        decision.team_code = team.code
        decision.reasons.append(f"小组: {team.name}")
        return team.id

    async def _eligible(
        self,
        ticket: Ticket,
        area: str,
        team_id: int | None,
        skill: str | None,
        exclude: frozenset[int],
    ) -> list[Candidate]:
        """Active agents who can see the ticket, in the area (or the team), with the skill,
        fewest open tickets first, then lowest id."""
        query = select(User).where(User.role == Role.AGENT.value, User.is_active.is_(True))
        if team_id is not None:
            members = select(TeamMember.user_id).where(TeamMember.team_id == team_id)
            query = query.where(User.id.in_(members))
        else:
            query = query.where(User.region_code.startswith(region_prefix_of(area)))
        users = [
            u
            for u in (await self.session.scalars(query)).all()
            if u.id not in exclude
            and ticket.region_code.startswith(region_prefix_of(u.region_code))
        ]
        if skill is not None:
            seat_skills = await self._seat_skills([u.id for u in users])
            users = [u for u in users if skill in {*u.skills, *seat_skills.get(u.id, ())}]
        loads = await self._loads([u.id for u in users])
        found = [Candidate(u.id, u.username, u.display_name, loads.get(u.id, 0)) for u in users]
        return sorted(found, key=lambda c: (c.open_tickets, c.user_id))

    async def _seat_skills(self, user_ids: list[int]) -> dict[int, set[str]]:
        if not user_ids:
            return {}
        rows = await self.session.execute(
            select(Seat.user_id, Seat.skills).where(Seat.user_id.in_(user_ids))
        )
        skills: dict[int, set[str]] = {}
        for user_id, seat in rows:
            if user_id is not None:
                skills.setdefault(user_id, set()).update(seat or ())
        return skills

    async def _loads(self, user_ids: list[int]) -> dict[int, int]:
        if not user_ids:
            return {}
        rows = await self.session.execute(
            select(Ticket.assignee_id, func.count(Ticket.id))
            .where(Ticket.assignee_id.in_(user_ids), Ticket.state.in_(OPEN_WORK))
            .group_by(Ticket.assignee_id)
        )
        loads = {int(uid): int(n) for uid, n in rows if uid is not None}
        for uid in user_ids:
            if self.pending.get(uid):
                loads[uid] = loads.get(uid, 0) + self.pending[uid]
        return loads


def _ref(row: HandlingUnit) -> UnitRef:
    return UnitRef(row.id, row.code, row.name, row.kind, row.region_code)


def _city_of(code: str) -> str:
    return code if code.endswith("0000") else code[:4] + "00"


def regions_up(code: str) -> list[str]:
    """The region itself, its city, its province: where to look for a unit, nearest first."""
    return list(dict.fromkeys([code, _city_of(code), code[:2] + "0000"]))


async def find_unit(session: AsyncSession, name_or_code: str) -> HandlingUnit | None:
    """A directory unit by name or code (explicit dispatch may use either)."""
    return await session.scalar(
        select(HandlingUnit).where(
            (HandlingUnit.name == name_or_code) | (HandlingUnit.code == name_or_code)
        )
    )


def unit_serves(unit: HandlingUnit, region_code: str) -> bool:
    """A unit handles its own region and everything below it (a city unit its counties)."""
    return region_code.startswith(region_prefix_of(unit.region_code))


# --- the unit directory (seeded data) -----------------------------------------------------------


class _UnitEntry(_Strict):
    code: _Key | None = None
    kind: UnitKind
    name: str = Field(min_length=1, max_length=128)
    region: _Code | None = None


class UnitFile(_Strict):
    province: _Code
    province_units: list[_UnitEntry] = Field(default_factory=list)
    city_units: list[_UnitEntry] = Field(default_factory=list)
    units: list[_UnitEntry] = Field(default_factory=list)
    """Extra units with an explicit ``region`` and ``code`` (a county bureau, a second
    mediation committee)."""


def units_file(province_code: str) -> Path:
    return DATA_DIR / f"units.{province_code}.yaml"


@dataclass(frozen=True, slots=True)
class UnitRow:
    code: str
    name: str
    kind: str
    region_code: str


def expand_units(text: str, province: ProvinceData, name: str) -> list[UnitRow]:
    """The units a file describes for ``province``: ``RuleFileError`` on any problem."""
    try:
        doc = _compose(text, name)
    except RulesError as exc:
        raise RuleFileError(exc.problems) from None
    try:
        parsed = UnitFile.model_validate(doc.data)
    except ValidationError as exc:
        raise RuleFileError(_validation_problems(exc, doc, name)) from None
    if parsed.province != province.province.code:
        raise RuleFileError([f"{name}:1: province: file is for {parsed.province}"])
    rows = [
        UnitRow(
            e.code or f"{parsed.province}-{e.kind.value}", e.name, e.kind.value, parsed.province
        )
        for e in parsed.province_units
    ]
    for city in province.cities:
        for e in parsed.city_units:
            rows.append(
                UnitRow(
                    f"{city.code}-{e.kind.value}",
                    e.name.replace("{city}", city.name),
                    e.kind.value,
                    city.code,
                )
            )
    problems = []
    for index, e in enumerate(parsed.units):
        if e.code is None or e.region is None:
            line = doc.lines.get(("units", str(index)), 1)
            problems.append(f"{name}:{line}: units[{index}]: needs code and region")
            continue
        rows.append(UnitRow(e.code, e.name, e.kind.value, e.region))
    for key in ("code", "name"):
        seen: set[str] = set()
        for row in rows:
            value = getattr(row, key)
            if value in seen:
                problems.append(f"{name}: {key} {value!r} appears twice")
            seen.add(value)
    if problems:
        raise RuleFileError(problems)
    return rows


def read_units(path: Path, province: ProvinceData) -> list[UnitRow]:
    """The units of a unit file for ``province``; ``RuleFileError`` naming file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RuleFileError([f"{path}: cannot read: {exc}"]) from None
    return expand_units(text, province, str(path))


async def seed_units(session: AsyncSession, rows: Sequence[UnitRow], source: str) -> int:
    """Create or update ``rows`` (matched by code); returns how many were added. Units of
    regions not in the database are refused, not skipped silently."""
    known = set((await session.scalars(select(Region.code))).all())
    missing = sorted({r.region_code for r in rows} - known)
    if missing:
        raise RuleFileError([f"{source}: unknown region(s) {', '.join(missing)}: seed them first"])
    existing = {u.code: u for u in (await session.scalars(select(HandlingUnit))).all()}
    added = 0
    for row in rows:
        unit = existing.get(row.code)
        if unit is None:
            unit = HandlingUnit(code=row.code, is_active=True)
            session.add(unit)
            added += 1
        unit.name, unit.kind, unit.region_code = row.name, row.kind, row.region_code
    await session.commit()
    return added


# --- hooks for TicketService's 派单/改派 ------------------------------------------------


@dataclass(frozen=True, slots=True)
class AutoTarget:
    values: dict[str, Any]
    """``assignee_id`` and ``handling_unit`` to write."""
    details: dict[str, Any]
    """For the history row: the rule, the unit code and the reasons."""


async def auto_target(
    session: AsyncSession,
    ticket: Ticket,
    rules: RuleSet,
    *,
    exclude: Iterable[int] = (),
    pending: Mapping[int, int] | None = None,
) -> AutoTarget:
    """The rules' choice for a dispatch that names no target; a 400 saying why when the rules
    find neither a unit nor an agent (nothing is written then). ``pending``: see
    :attr:`Assigner.pending`."""
    decision = await Assigner(session, rules, pending).decide(ticket, exclude=exclude)
    if not decision.found:
        message = "自动派单失败: " + "; ".join(decision.reasons[-2:])
        message += " — name an assignee_id or a handling_unit"
        raise InvalidInput.at("handling_unit", message)
    values = {
        "assignee_id": decision.assignee.user_id if decision.assignee else None,
        "handling_unit": decision.unit.name if decision.unit else None,
    }
    return AutoTarget(values=values, details=decision.as_details())


async def checked_unit_name(session: AsyncSession, ticket: Ticket, name_or_code: str) -> str:
    """An explicit unit: a directory unit (by name or code) must serve the ticket's region and
    be active; a name not in the directory is kept as written (an outside body)."""
    unit = await find_unit(session, name_or_code)
    if unit is None:
        return name_or_code
    problem = None
    if not unit.is_active:
        problem = f"handling unit {unit.name} is no longer active"
    elif not unit_serves(unit, ticket.region_code):
        problem = f"handling unit {unit.name} does not serve region {ticket.region_code}"
    if problem is not None:
        raise InvalidInput.at("handling_unit", problem)
    return unit.name
