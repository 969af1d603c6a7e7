"""The routing decision: which queue a call joins, with what priority and skills, and why.

Order of the decision (each step leaves a ``Reason`` that is recorded on the call):
1. locate the caller (caller number, called number, trunk — configurable order);
2. service type (IVR choice) and language → required skills;
3. priority: green channel (农民工欠薪), repeat caller within N hours, emergency — they add up;
4. outside business hours (official working-day calendar) → provincial duty queue;
   otherwise the city queue, overflowing to the provincial queue at once when the city has no
   ready agent with the skills (or its queue is too long), else after the configured wait;
5. the caller's previous agent is preferred when ready in the target queue and recent enough.

It runs on every call, so the live state is read through ``RoutingSnapshot``, which indexes ready
agents per queue and skill once; a decision is a handful of dictionary look-ups.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, tzinfo
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from callcenter.regions.provinces import ProvinceData
from callcenter.routing.calendar import SHANGHAI, is_business_time
from callcenter.routing.locate import Location, Locator, warm_up
from callcenter.routing.rules import (
    DEFAULT_RULES,
    RoutingRules,
    ServiceTypeRule,
    check_rules,
    load_rules,
)


class ReasonCode(StrEnum):
    """Stable machine codes of routing reasons (reports and tests match on these)."""

    CITY_FROM_CALLER = "city-from-caller"
    CITY_FROM_CALLED = "city-from-called"
    CITY_FROM_TRUNK = "city-from-trunk"
    OUT_OF_PROVINCE = "out-of-province"
    LOCATION_UNKNOWN = "location-unknown"
    NO_CITY = "no-city"
    SERVICE_TYPE = "service-type"
    UNKNOWN_SERVICE_TYPE = "unknown-service-type"
    LANGUAGE = "language"
    UNKNOWN_LANGUAGE = "unknown-language"
    GREEN_CHANNEL = "green-channel"
    REPEAT_CALLER = "repeat-caller"
    EMERGENCY = "emergency"
    AFTER_HOURS = "after-hours"
    SERVICE_QUEUE = "service-queue"
    CITY_QUEUE = "city-queue"
    NO_READY_AGENT_IN_CITY = "no-ready-agent-in-city"
    CITY_QUEUE_LONG = "city-queue-long"
    WAIT_EXPIRED = "wait-expired"
    NO_READY_AGENT_IN_QUEUE = "no-ready-agent-in-queue"
    NO_FURTHER_OVERFLOW = "no-further-overflow"
    PREVIOUS_AGENT_PREFERRED = "previous-agent-preferred"
    PREVIOUS_AGENT_NOT_READY = "previous-agent-not-ready"
    PREVIOUS_AGENT_TOO_OLD = "previous-agent-too-old"


_LOCATION_REASONS = {
    "caller": (ReasonCode.CITY_FROM_CALLER, "来电号码"),
    "called": (ReasonCode.CITY_FROM_CALLED, "被叫号码"),
    "trunk": (ReasonCode.CITY_FROM_TRUNK, "中继"),
}


@dataclass(frozen=True, slots=True)
class Reason:
    """One step of a decision: a stable ``code`` and a human ``text`` (Chinese, for the log)."""

    code: ReasonCode
    text: str

    def __str__(self) -> str:
        return f"{self.code.value}: {self.text}"

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code.value, "text": self.text}


@dataclass(frozen=True, slots=True)
class RoutingRequest:
    """What is known about a call when it leaves the IVR (all from untrusted signalling)."""

    caller: str | None
    called: str | None = None
    trunk: str | None = None
    service_type: str | None = None
    language: str | None = None
    previous_agent: str | None = None
    previous_agent_at: datetime | None = None
    repeat_caller: bool = False
    last_call_at: datetime | None = None
    emergency: bool = False
    waited_s: float = 0.0


@dataclass(frozen=True, slots=True)
class RoutingDecision:
    """Where the call goes now, when it moves on, and the reasons to record on the call."""

    queue: str
    priority: int
    required_skills: tuple[str, ...]
    service_type: str
    language: str
    location: Location
    preferred_agent: str | None = None
    overflow_queue: str | None = None
    overflow_after_s: int | None = None  # None: no further step from ``queue``
    reasons: tuple[Reason, ...] = ()

    def to_record(self) -> dict[str, Any]:
        """JSON-ready form stored with the call."""
        return {
            "queue": self.queue,
            "priority": self.priority,
            "required_skills": list(self.required_skills),
            "service_type": self.service_type,
            "language": self.language,
            "city_code": self.location.city_code,
            "location_source": self.location.source,
            "location": self.location.description,
            "out_of_province": self.location.out_of_province,
            "preferred_agent": self.preferred_agent,
            "overflow_queue": self.overflow_queue,
            "overflow_after_s": self.overflow_after_s,
            "reasons": [reason.to_dict() for reason in self.reasons],
        }


# --- live state ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AgentView:
    """A ready agent as routing sees it. ``languages`` are codes such as ``en``."""

    agent_id: str
    skills: frozenset[str] = frozenset()
    languages: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class QueueView:
    ready: tuple[AgentView, ...] = ()
    waiting: int = 0


class QueueSnapshot(Protocol):
    """Read-only view of live queues; the state module may provide its own implementation."""

    def ready_count(self, queue: str, skills: frozenset[str]) -> int: ...

    def is_ready(self, queue: str, agent_id: str, skills: frozenset[str]) -> bool: ...

    def waiting(self, queue: str) -> int: ...


_NOBODY: frozenset[str] = frozenset()


class _QueueIndex:
    """Ready agents of one queue indexed by skill; counts memoized per skill set."""

    __slots__ = ("agents", "by_skill", "counts", "waiting")

    def __init__(self, agents: dict[str, frozenset[str]], waiting: int) -> None:
        self.agents = agents
        self.waiting = waiting
        self.counts: dict[frozenset[str], int] = {}
        members: dict[str, set[str]] = {}
        for agent_id, skills in agents.items():
            for skill in skills:
                members.setdefault(skill, set()).add(agent_id)
        self.by_skill = {skill: frozenset(ids) for skill, ids in members.items()}

    def ready_count(self, skills: frozenset[str]) -> int:
        count = self.counts.get(skills)
        if count is None:
            count = self.counts[skills] = self._count(skills)
        return count

    def _count(self, skills: frozenset[str]) -> int:
        if not skills:
            return len(self.agents)
        groups = sorted((self.by_skill.get(s, _NOBODY) for s in skills), key=len)
        return len(groups[0].intersection(*groups[1:]))


class RoutingSnapshot:
    """Immutable snapshot of ready agents and waiting calls per queue, indexed once.

    An agent's languages are folded into its skills through ``language_skills`` (from the rule
    file's ``languages``), so a decision only ever matches skill sets.
    """

    def __init__(
        self, queues: Mapping[str, QueueView], language_skills: Mapping[str, str] | None = None
    ) -> None:
        lang = dict(language_skills or {})
        self._queues = {
            name: _QueueIndex(
                {a.agent_id: _effective_skills(a, lang) for a in view.ready}, view.waiting
            )
            for name, view in queues.items()
        }

    def ready_count(self, queue: str, skills: frozenset[str]) -> int:
        index = self._queues.get(queue)
        return 0 if index is None else index.ready_count(skills)

    def is_ready(self, queue: str, agent_id: str, skills: frozenset[str]) -> bool:
        index = self._queues.get(queue)
        held = None if index is None else index.agents.get(agent_id)
        return held is not None and skills <= held

    def waiting(self, queue: str) -> int:
        index = self._queues.get(queue)
        return 0 if index is None else index.waiting


def _effective_skills(agent: AgentView, language_skills: Mapping[str, str]) -> frozenset[str]:
    spoken = {language_skills[code] for code in agent.languages if code in language_skills}
    return agent.skills | spoken if spoken else agent.skills


# --- the engine ---------------------------------------------------------------------------------


@dataclass(slots=True)
class _Placement:
    queue: str
    overflow_queue: str | None = None
    overflow_after_s: int | None = None


@dataclass(slots=True)
class _Trace:
    """Reasons collected while deciding (a plain list, kept in one place)."""

    reasons: list[Reason] = field(default_factory=list)

    def add(self, code: ReasonCode, text: str) -> None:
        self.reasons.append(Reason(code, text))


class RoutingEngine:
    """Pure routing decisions for one province. Build once at start-up; thread-safe to share."""

    def __init__(self, rules: RoutingRules, province: ProvinceData, tz: tzinfo = SHANGHAI) -> None:
        check_rules(rules, province)
        self.rules = rules
        self._tz = tz
        self._hours = rules.business_hours.hours()
        self._locator = Locator(province, rules.trunks, rules.locate.order)
        warm_up()
        self._city_of_queue = {province.city_queue_name(c.code): c.code for c in province.cities}
        self._queue_of_city = {code: queue for queue, code in self._city_of_queue.items()}
        self._labels = _queue_labels(province)
        self._city_names = {c.code: c.name for c in province.cities}
        self._language_skills = {
            code: lang.skill for code, lang in rules.languages.items() if lang.skill is not None
        }
        self._skills = {
            (s, lang): _required_skills(service, self._language_skills.get(lang))
            for s, service in rules.service_types.items()
            for lang in rules.languages
        }

    @classmethod
    def from_file(
        cls, province: ProvinceData, path: Path = DEFAULT_RULES, tz: tzinfo = SHANGHAI
    ) -> RoutingEngine:
        return cls(load_rules(path, province), province, tz)

    def snapshot(self, queues: Mapping[str, QueueView]) -> RoutingSnapshot:
        """Index live queues with this rule file's language → skill mapping."""
        return RoutingSnapshot(queues, self._language_skills)

    def decide(
        self, request: RoutingRequest, snapshot: QueueSnapshot, now: datetime
    ) -> RoutingDecision:
        """Route one call leaving the IVR. ``now`` must be timezone-aware."""
        trace = _Trace()
        location = self._locate(request, trace)
        service_code, service = self._service(request.service_type, trace)
        language = self._language(request.language, trace)
        skills = self._skills[(service_code, language)]
        priority = self._priority(request, service, now, trace)
        if is_business_time(now, self._hours, self._tz):
            placement = self._place(location, service, skills, snapshot, request.waited_s, trace)
        else:
            placement = self._after_hours(trace)
        preferred = self._preferred(request, placement.queue, skills, snapshot, now, trace)
        return RoutingDecision(
            queue=placement.queue,
            priority=priority,
            required_skills=tuple(sorted(skills)),
            service_type=service_code,
            language=language,
            location=location,
            preferred_agent=preferred,
            overflow_queue=placement.overflow_queue,
            overflow_after_s=placement.overflow_after_s,
            reasons=tuple(trace.reasons),
        )

    def on_wait_expired(
        self,
        request: RoutingRequest,
        decision: RoutingDecision,
        snapshot: QueueSnapshot,
        now: datetime,
    ) -> RoutingDecision:
        """The call waited ``overflow_after_s`` unanswered: move it on (city → province)."""
        trace = _Trace(list(decision.reasons))
        if decision.overflow_queue is None:
            trace.add(ReasonCode.NO_FURTHER_OVERFLOW, f"{self._label(decision.queue)} 已是最终队列")
            return replace(decision, overflow_after_s=None, reasons=tuple(trace.reasons))
        trace.add(
            ReasonCode.WAIT_EXPIRED,
            f"在 {self._label(decision.queue)} 等待 {decision.overflow_after_s} s 未接通 "
            f"→ {decision.overflow_queue}",
        )
        skills = frozenset(decision.required_skills)
        if is_business_time(now, self._hours, self._tz):
            placement = self._terminal(decision.overflow_queue, skills, snapshot, trace)
        else:
            placement = self._after_hours(trace)
        preferred = self._preferred(request, placement.queue, skills, snapshot, now, trace)
        return replace(
            decision,
            queue=placement.queue,
            preferred_agent=preferred,
            overflow_queue=None,
            overflow_after_s=None,
            reasons=tuple(trace.reasons),
        )

    # --- steps ---------------------------------------------------------------------------------

    def _label(self, queue: str) -> str:
        return self._labels.get(queue, queue)

    def _locate(self, request: RoutingRequest, trace: _Trace) -> Location:
        location = self._locator.locate(request.caller, request.called, request.trunk)
        if location.city_code is not None and location.source != "unknown":
            code, label = _LOCATION_REASONS[location.source]
            name = self._city_names[location.city_code]
            trace.add(code, f"{label}归属 {name} ({location.description})")
        elif location.out_of_province:
            trace.add(ReasonCode.OUT_OF_PROVINCE, f"外省/境外号码 ({location.description})")
        else:
            trace.add(ReasonCode.LOCATION_UNKNOWN, f"无法判断来电归属 ({location.description})")
        return location

    def _service(self, choice: str | None, trace: _Trace) -> tuple[str, ServiceTypeRule]:
        services = self.rules.service_types
        code = (
            choice if choice is not None and choice in services else self.rules.default_service_type
        )
        service = services[code]
        if choice is not None and choice != code:
            trace.add(
                ReasonCode.UNKNOWN_SERVICE_TYPE, f"未知服务类型 {choice!r}, 按 {service.name}"
            )
        skills = ", ".join(service.skills) or "无"
        trace.add(ReasonCode.SERVICE_TYPE, f"{service.name} (技能: {skills})")
        return code, service

    def _language(self, choice: str | None, trace: _Trace) -> str:
        languages = self.rules.languages
        code = choice if choice is not None and choice in languages else self.rules.default_language
        if choice is not None and choice != code:
            trace.add(
                ReasonCode.UNKNOWN_LANGUAGE, f"未知语种 {choice!r}, 按 {languages[code].name}"
            )
        if code in self._language_skills:
            trace.add(
                ReasonCode.LANGUAGE, f"{languages[code].name} (技能: {self._language_skills[code]})"
            )
        return code

    def _priority(
        self, request: RoutingRequest, service: ServiceTypeRule, now: datetime, trace: _Trace
    ) -> int:
        rule = self.rules.priorities
        priority = rule.base
        if service.green_channel:
            priority += rule.green_channel
            trace.add(
                ReasonCode.GREEN_CHANNEL, f"{service.name} 绿色通道, 优先级 +{rule.green_channel}"
            )
        if self._is_repeat(request, now):
            priority += rule.repeat_caller
            trace.add(
                ReasonCode.REPEAT_CALLER,
                f"{rule.repeat_window_h} 小时内重复来电, 优先级 +{rule.repeat_caller}",
            )
        if request.emergency:
            priority += rule.emergency
            trace.add(ReasonCode.EMERGENCY, f"紧急求助, 优先级 +{rule.emergency}")
        return priority

    def _is_repeat(self, request: RoutingRequest, now: datetime) -> bool:
        if request.repeat_caller:
            return True
        if request.last_call_at is None:
            return False
        window = timedelta(hours=self.rules.priorities.repeat_window_h)
        return timedelta(0) <= now - request.last_call_at <= window

    def _after_hours(self, trace: _Trace) -> _Placement:
        queue = self.rules.queues.after_hours
        trace.add(ReasonCode.AFTER_HOURS, f"非工作时间 → {queue} ({self._label(queue)})")
        return _Placement(queue)

    def _place(
        self,
        location: Location,
        service: ServiceTypeRule,
        skills: frozenset[str],
        snapshot: QueueSnapshot,
        waited_s: float,
        trace: _Trace,
    ) -> _Placement:
        overflow = self.rules.queues.overflow
        if service.queue is not None:
            trace.add(
                ReasonCode.SERVICE_QUEUE, f"{service.name} 由 {self._label(service.queue)} 受理"
            )
            primary = service.queue
        elif location.city_code is not None:
            primary = self._queue_of_city[location.city_code]
        else:
            primary = overflow
            trace.add(
                ReasonCode.NO_CITY, f"未定位到本省城市 → {overflow} ({self._label(overflow)})"
            )
        city = self._city_of_queue.get(primary)
        if city is None:
            return self._terminal(primary, skills, snapshot, trace)
        return self._city(primary, city, skills, snapshot, waited_s, trace)

    def _city(
        self,
        queue: str,
        city: str,
        skills: frozenset[str],
        snapshot: QueueSnapshot,
        waited_s: float,
        trace: _Trace,
    ) -> _Placement:
        overflow = self.rules.queues.overflow
        ready = snapshot.ready_count(queue, skills)
        name = self._city_names[city]
        if ready == 0:
            trace.add(ReasonCode.NO_READY_AGENT_IN_CITY, f"{name}无就绪坐席(所需技能) → {overflow}")
            return self._terminal(overflow, skills, snapshot, trace)
        waited = waited_s if waited_s > 0 else 0.0  # also turns NaN into 0
        remaining = self.rules.wait_for(city) - waited
        if remaining <= 0:
            trace.add(ReasonCode.WAIT_EXPIRED, f"已等待 {waited:.0f} s, 超过溢出时限 → {overflow}")
            return self._terminal(overflow, skills, snapshot, trace)
        waiting = snapshot.waiting(queue)
        limit = self.rules.overflow.max_waiting_per_ready_agent
        if limit is not None and waiting > limit * ready:
            trace.add(
                ReasonCode.CITY_QUEUE_LONG,
                f"{name}排队 {waiting} 通 / 就绪 {ready} 人, 超过 {limit:g} → {overflow}",
            )
            return self._terminal(overflow, skills, snapshot, trace)
        after = math.ceil(remaining)
        trace.add(
            ReasonCode.CITY_QUEUE,
            f"{queue} ({name}): 就绪 {ready} 人, 排队 {waiting} 通; {after} s 后溢出至 {overflow}",
        )
        return _Placement(queue, overflow, after)

    def _terminal(
        self, queue: str, skills: frozenset[str], snapshot: QueueSnapshot, trace: _Trace
    ) -> _Placement:
        """A queue with no further overflow; note when nobody there can take the call yet."""
        if snapshot.ready_count(queue, skills) == 0:
            trace.add(
                ReasonCode.NO_READY_AGENT_IN_QUEUE,
                f"{self._label(queue)} 暂无就绪坐席(所需技能), 在 {queue} 排队等待",
            )
        return _Placement(queue)

    def _preferred(
        self,
        request: RoutingRequest,
        queue: str,
        skills: frozenset[str],
        snapshot: QueueSnapshot,
        now: datetime,
        trace: _Trace,
    ) -> str | None:
        agent = request.previous_agent
        if not agent:
            return None
        days = self.rules.previous_agent.days
        at = request.previous_agent_at
        if at is None or not timedelta(0) <= now - at <= timedelta(days=days):
            trace.add(ReasonCode.PREVIOUS_AGENT_TOO_OLD, f"上次坐席 {agent} 超过 {days} 天, 不优先")
            return None
        if not snapshot.is_ready(queue, agent, skills):
            trace.add(ReasonCode.PREVIOUS_AGENT_NOT_READY, f"上次坐席 {agent} 不在 {queue} 就绪")
            return None
        trace.add(ReasonCode.PREVIOUS_AGENT_PREFERRED, f"优先上次坐席 {agent} ({days} 天内)")
        return agent


def _queue_labels(province: ProvinceData) -> dict[str, str]:
    """Queue name → the name people know it by, for the reason texts."""
    labels = {province.city_queue_name(c.code): f"{c.name}12348" for c in province.cities}
    for entry in (province.queues.provincial, province.queues.duty):
        labels[entry.name] = entry.display_name
    return labels


def _required_skills(service: ServiceTypeRule, language_skill: str | None) -> frozenset[str]:
    skills = set(service.skills)
    if language_skill is not None:
        skills.add(language_skill)
    return frozenset(skills)


def queue_views(
    agents: Iterable[tuple[str, AgentView]], waiting: Mapping[str, int] | None = None
) -> dict[str, QueueView]:
    """Group ``(queue, agent)`` pairs into ``QueueView``s (handy for callers and tests)."""
    grouped: dict[str, list[AgentView]] = {}
    for queue, agent in agents:
        grouped.setdefault(queue, []).append(agent)
    counts = dict(waiting or {})
    names = set(grouped) | set(counts)
    return {q: QueueView(tuple(grouped.get(q, ())), counts.get(q, 0)) for q in names}
