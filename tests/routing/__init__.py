"""Tests of call routing. Shared builders live here (this folder has no conftest of its own)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from functools import cache
from zoneinfo import ZoneInfo

from callcenter.regions.provinces import ProvinceData, load_province, province_file
from callcenter.routing import AgentView, RoutingEngine, RoutingRules, RoutingSnapshot, queue_views
from callcenter.routing.rules import load_default_rules

TZ = ZoneInfo("Asia/Shanghai")

# Real mobile prefixes the Chinese geocoder places in each city (phonenumbers' own data).
MOBILE = {
    "330100": "13004281234",  # 杭州市
    "330200": "13010371234",  # 宁波市
    "330300": "13000671234",  # 温州市
    "330400": "13002601234",  # 嘉兴市
    "330500": "13002611234",  # 湖州市
    "330900": "13002621234",  # 舟山市
    "331100": "13002671234",  # 丽水市
}
JIAXING_MOBILE = MOBILE["330400"]


def at(year: int, month: int, day: int, hour: int = 10, minute: int = 0) -> datetime:
    """Aware local time in Asia/Shanghai."""
    return datetime(year, month, day, hour, minute, tzinfo=TZ)


WORKDAY_MORNING = at(2026, 11, 23, 10, 0)  # a Monday, ordinary working day


@cache
def zhejiang() -> ProvinceData:
    return load_province(province_file("330000"))


@cache
def default_rules() -> RoutingRules:
    return load_default_rules(zhejiang())


def engine(rules: RoutingRules | None = None) -> RoutingEngine:
    return RoutingEngine(rules or default_rules(), zhejiang())


def agent(agent_id: str, *skills: str, languages: Iterable[str] = ("zh",)) -> AgentView:
    return AgentView(agent_id, frozenset(skills), frozenset(languages))


def snapshot(
    eng: RoutingEngine,
    agents: Iterable[tuple[str, AgentView]] = (),
    waiting: dict[str, int] | None = None,
) -> RoutingSnapshot:
    return eng.snapshot(queue_views(agents, waiting))
