"""The routing rule file: pydantic model, YAML loader that keeps line numbers, validation.

Rules are edited by people at the provincial centre, so a bad file must be refused at load time
with something they can act on: ``rules.yaml:12: overflow.wait_s: must be >= 0``. All shape
problems (types, bounds, unknown keys) are reported together; once the shape is right, every
city code and queue name is checked against the province data file. Duplicate YAML keys, which
PyYAML would silently resolve to the last one, are refused too.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from callcenter.regions.provinces import ProvinceData
from callcenter.routing.calendar import MINUTES_PER_DAY, BusinessHours, Period
from callcenter.routing.locate import Source

DEFAULT_RULES = Path(__file__).resolve().parent / "rules.default.yaml"

Loc = tuple[str | int, ...]

_CITY_PATTERN = r"^\d{6}$"
_NAME_PATTERN = r"^[a-z][a-z0-9_-]{0,31}$"
_QUEUE_PATTERN = r"^[a-z0-9][a-z0-9-]{0,63}$"
_PATTERN_TEXT = {
    _CITY_PATTERN: "must be a 6-digit GB/T 2260 code",
    _NAME_PATTERN: "must be lowercase letters, digits, _ or - (max 32)",
    _QUEUE_PATTERN: "must be a queue name (lowercase letters, digits, -)",
}
_CLOCK = re.compile(r"^([01]\d|2[0-4]):([0-5]\d)$")


class RulesError(Exception):
    """The rule file is unusable; ``problems`` holds one ``file:line: path: reason`` per issue."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


def _clock_minutes(value: object) -> object:
    """ "HH:MM" → minutes since midnight. Unquoted 17:30 is a YAML 1.1 number: say so."""
    if isinstance(value, int) and not isinstance(value, bool):
        raise ValueError('write times in quotes, e.g. "17:30" (unquoted, YAML reads a number)')
    if isinstance(value, str):
        match = _CLOCK.match(value)
        if match is None:
            raise ValueError(f'{value!r} is not a time like "08:30"')
        minutes = int(match[1]) * 60 + int(match[2])
        if minutes > MINUTES_PER_DAY:
            raise ValueError(f"{value!r} is after 24:00")
        return minutes
    return value


def _code_text(value: object) -> object:
    """City codes may be written unquoted (330400); keep them as text."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


Clock = Annotated[int, BeforeValidator(_clock_minutes)]
CityCode = Annotated[str, BeforeValidator(_code_text), Field(pattern=_CITY_PATTERN)]
QueueName = Annotated[str, Field(pattern=_QUEUE_PATTERN)]
Name = Annotated[str, Field(pattern=_NAME_PATTERN)]
Label = Annotated[str, Field(min_length=1, max_length=64)]
Seconds = Annotated[int, Field(ge=0, le=3600)]
Priority = Annotated[int, Field(ge=0, le=1000)]


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PeriodRule(_Rule):
    start: Clock
    end: Clock

    @model_validator(mode="after")
    def _ordered(self) -> PeriodRule:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class BusinessHoursRule(_Rule):
    periods: list[PeriodRule] = Field(min_length=1, max_length=8)

    @field_validator("periods")
    @classmethod
    def _no_overlap(cls, periods: list[PeriodRule]) -> list[PeriodRule]:
        ordered = sorted(periods, key=lambda p: p.start)
        for before, after in pairwise(ordered):
            if after.start < before.end:
                raise ValueError("periods overlap")
        return periods

    def hours(self) -> BusinessHours:
        return BusinessHours(tuple(Period(p.start, p.end) for p in self.periods))


class LocateRule(_Rule):
    order: list[Source] = Field(min_length=1, max_length=3)

    @field_validator("order")
    @classmethod
    def _unique(cls, order: list[Source]) -> list[Source]:
        if len(set(order)) != len(order):
            raise ValueError("each source at most once")
        return order


class QueuesRule(_Rule):
    overflow: QueueName
    after_hours: QueueName


class OverflowRule(_Rule):
    wait_s: Seconds
    cities: dict[CityCode, Seconds] = Field(default_factory=dict)
    max_waiting_per_ready_agent: float | None = Field(default=None, gt=0, le=1000)


class ServiceTypeRule(_Rule):
    name: Label
    skills: list[Name] = Field(default_factory=list, max_length=8)
    green_channel: bool = False
    queue: QueueName | None = None

    @field_validator("skills")
    @classmethod
    def _unique(cls, skills: list[str]) -> list[str]:
        if len(set(skills)) != len(skills):
            raise ValueError("a skill is listed twice")
        return skills


class LanguageRule(_Rule):
    name: Label
    skill: Name | None = None


class PrioritiesRule(_Rule):
    base: Priority = 0
    green_channel: Priority
    repeat_caller: Priority
    emergency: Priority
    repeat_window_h: int = Field(ge=1, le=24 * 30)


class PreviousAgentRule(_Rule):
    days: int = Field(ge=0, le=365)


class RoutingRules(_Rule):
    """The whole rule file. Cross-checks against the province data live in ``check_rules``."""

    version: Literal[1]
    province: CityCode
    business_hours: BusinessHoursRule
    locate: LocateRule
    queues: QueuesRule
    overflow: OverflowRule
    service_types: dict[Name, ServiceTypeRule] = Field(min_length=1)
    default_service_type: Name
    languages: dict[Name, LanguageRule] = Field(min_length=1)
    default_language: Name
    priorities: PrioritiesRule
    previous_agent: PreviousAgentRule
    trunks: dict[Label, CityCode] = Field(default_factory=dict)

    @field_validator("default_service_type")
    @classmethod
    def _known_service(cls, value: str, info: ValidationInfo) -> str:
        if value not in info.data.get("service_types", {value: None}):
            raise ValueError(f"{value!r} is not one of service_types")
        return value

    @field_validator("default_language")
    @classmethod
    def _known_language(cls, value: str, info: ValidationInfo) -> str:
        if value not in info.data.get("languages", {value: None}):
            raise ValueError(f"{value!r} is not one of languages")
        return value

    def wait_for(self, city_code: str) -> int:
        """Seconds a call may wait in this city's queue before it overflows."""
        return self.overflow.cities.get(city_code, self.overflow.wait_s)


# --- checks against the province data ---------------------------------------------------------


def _queue_names(province: ProvinceData) -> set[str]:
    names = {province.city_queue_name(c.code) for c in province.cities}
    return names | {province.queues.provincial.name, province.queues.duty.name}


def _city_problems(rules: RoutingRules, cities: set[str]) -> Iterator[tuple[Loc, str]]:
    for code in rules.overflow.cities:
        if code not in cities:
            yield ("overflow", "cities", code), f"unknown city code {code}"
    for trunk, code in rules.trunks.items():
        if code not in cities:
            yield ("trunks", trunk), f"unknown city code {code}"


def _queue_problems(rules: RoutingRules, queues: set[str]) -> Iterator[tuple[Loc, str]]:
    for field in ("overflow", "after_hours"):
        name = getattr(rules.queues, field)
        if name not in queues:
            yield ("queues", field), f"unknown queue {name!r}"
    for code, service in rules.service_types.items():
        if service.queue is not None and service.queue not in queues:
            yield ("service_types", code, "queue"), f"unknown queue {service.queue!r}"


def province_problems(rules: RoutingRules, province: ProvinceData) -> list[tuple[Loc, str]]:
    """Everything in ``rules`` that names a city or queue the province does not have."""
    if rules.province != province.province.code:
        return [(("province",), f"rules are for {rules.province}, not {province.province.code}")]
    cities = {c.code for c in province.cities}
    return [*_city_problems(rules, cities), *_queue_problems(rules, _queue_names(province))]


def check_rules(rules: RoutingRules, province: ProvinceData) -> None:
    """Refuse rules built in code (no file, so no lines) that do not fit the province."""
    problems = province_problems(rules, province)
    if problems:
        raise RulesError([f"{_dotted(loc)}: {msg}" for loc, msg in problems])


# --- YAML with line marks ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Document:
    data: Any
    lines: dict[tuple[str, ...], int]  # path (every part as text) → 1-based line
    duplicates: list[tuple[int, str]]


def _walk(node: yaml.Node, path: tuple[str, ...], doc: _Document, seen: set[int]) -> None:
    """Record the line of every key and list item; note duplicate keys. ``seen`` stops at
    anchors already visited (an alias may even point back to its own parent)."""
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        keys: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in keys:
                doc.duplicates.append((key_node.start_mark.line + 1, _dotted((*path, key))))
            keys.add(key)
            doc.lines[(*path, key)] = key_node.start_mark.line + 1
            _walk(value_node, (*path, key), doc, seen)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            doc.lines[(*path, str(index))] = item.start_mark.line + 1
            _walk(item, (*path, str(index)), doc, seen)


def _compose(text: str, name: str) -> _Document:
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise RulesError([f"{name}:1: the file is empty"])
        doc = _Document(loader.construct_document(node), {(): node.start_mark.line + 1}, [])
        _walk(node, (), doc, set())
        return doc
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        raise RulesError([f"{name}:{line}: not valid YAML: {exc.problem or exc}"]) from None
    except yaml.YAMLError as exc:
        raise RulesError([f"{name}:1: not valid YAML: {exc}"]) from None
    finally:
        loader.dispose()


def _dotted(loc: Loc) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _line(doc: _Document, loc: Loc) -> int:
    """Line of the deepest part of ``loc`` present in the file (a missing key → its parent)."""
    parts = tuple(str(p) for p in loc)
    for end in range(len(parts), -1, -1):
        line = doc.lines.get(parts[:end])
        if line is not None:
            return line
    return 1


_MESSAGES = {
    "extra_forbidden": "unknown key",
    "greater_than_equal": "must be >= {ge}",
    "greater_than": "must be > {gt}",
    "less_than_equal": "must be <= {le}",
    "less_than": "must be < {lt}",
}


def _reason(err: ErrorDetails) -> str:
    if err["type"] == "missing":
        return f"missing required key {err['loc'][-1]!r}"
    if err["type"] == "string_pattern_mismatch":
        pattern = str(err.get("ctx", {}).get("pattern", ""))
        return _PATTERN_TEXT.get(pattern, f"must match {pattern}")
    template = _MESSAGES.get(err["type"])
    if template is not None:
        return template.format(**err.get("ctx", {}))
    msg = str(err["msg"]).removeprefix("Value error, ")
    return msg.replace("Input should be", "must be").replace("Input ", "")


def _error_loc(err: ErrorDetails) -> Loc:
    """Pydantic adds ``[key]`` for a bad dict key and function names for validators: drop them."""
    loc: list[str | int] = []
    for part in err["loc"]:
        if part == "[key]" or (isinstance(part, str) and part.startswith("function-")):
            continue
        loc.append(part)
    return tuple(loc)


def _validation_problems(exc: ValidationError, doc: _Document, name: str) -> list[str]:
    problems = []
    for err in exc.errors():
        loc = _error_loc(err)
        problems.append(f"{name}:{_line(doc, loc)}: {_dotted(loc)}: {_reason(err)}")
    return problems


def parse_rules(text: str, province: ProvinceData, name: str = "rules.yaml") -> RoutingRules:
    """Validate rule text for ``province``; raise ``RulesError`` naming every bad line."""
    doc = _compose(text, name)
    dupes = [f"{name}:{line}: {path}: duplicate key" for line, path in doc.duplicates]
    if not isinstance(doc.data, dict):
        raise RulesError([*dupes, f"{name}:1: (top level): must be a mapping of rule sections"])
    try:
        rules = RoutingRules.model_validate(doc.data)
    except ValidationError as exc:
        raise RulesError([*dupes, *_validation_problems(exc, doc, name)]) from None
    problems = [
        *dupes,
        *(
            f"{name}:{_line(doc, loc)}: {_dotted(loc)}: {msg}"
            for loc, msg in province_problems(rules, province)
        ),
    ]
    if problems:
        raise RulesError(problems)
    return rules


def load_rules(path: Path, province: ProvinceData) -> RoutingRules:
    """Read and validate a rule file; errors are prefixed with the file's name."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesError([f"{path}: cannot read: {exc}"]) from None
    return parse_rules(text, province, name=str(path))


def load_default_rules(province: ProvinceData) -> RoutingRules:
    return load_rules(DEFAULT_RULES, province)
