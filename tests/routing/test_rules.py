"""The rule file: the default loads; every kind of mistake is refused with its line and reason."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from callcenter.routing import RoutingEngine, RulesError, load_rules, parse_rules
from callcenter.routing.rules import DEFAULT_RULES, QueuesRule
from tests.routing import default_rules, zhejiang

DEFAULT_TEXT = DEFAULT_RULES.read_text(encoding="utf-8")


def _edit(old: str, new: str) -> str:
    assert DEFAULT_TEXT.count(old) == 1, old
    return DEFAULT_TEXT.replace(old, new)


def _line_of(text: str, fragment: str) -> int:
    """1-based line of the first line containing ``fragment``."""
    for number, line in enumerate(text.splitlines(), start=1):
        if fragment in line:
            return number
    raise AssertionError(fragment)


def _problems(text: str) -> list[str]:
    with pytest.raises(RulesError) as info:
        parse_rules(text, zhejiang(), name="rules.yaml")
    assert str(info.value) == "\n".join(info.value.problems)
    return info.value.problems


def test_the_default_rules_load_for_zhejiang() -> None:
    rules = default_rules()
    assert rules.province == "330000"
    assert rules.service_types["wage_arrears"].green_channel
    assert rules.wait_for("330900") == 45
    assert rules.wait_for("330400") == rules.overflow.wait_s == 60
    assert rules.business_hours.hours().periods[0].start == 8 * 60 + 30


def test_given_a_negative_wait_then_line_and_reason() -> None:
    text = _edit("  wait_s: 60 #", "  wait_s: -1 #")
    line = _line_of(text, "wait_s: -1")
    assert _problems(text) == [f"rules.yaml:{line}: overflow.wait_s: must be >= 0"]


def test_given_an_unknown_key_then_refused_with_its_line() -> None:
    text = _edit("previous_agent:\n  days: 7", "previous_agent:\n  days: 7\n  weeks: 1")
    assert _problems(text) == [
        f"rules.yaml:{_line_of(text, 'weeks: 1')}: previous_agent.weeks: unknown key"
    ]


def test_given_an_unknown_city_code_then_refused() -> None:
    text = _edit('"330900": 45', '"330999": 45')
    assert _problems(text) == [
        f"rules.yaml:{_line_of(text, '330999')}: overflow.cities.330999: unknown city code 330999"
    ]


def test_given_a_trunk_to_an_unknown_city_then_refused() -> None:
    text = _edit("trunks: {}", 'trunks:\n  trunk-x: "110100"')
    assert _problems(text) == [
        f"rules.yaml:{_line_of(text, 'trunk-x')}: trunks.trunk-x: unknown city code 110100"
    ]


def test_given_an_unknown_queue_name_then_refused() -> None:
    text = _edit("after_hours: province-duty", "after_hours: night-shift")
    line = _line_of(text, "night-shift")
    assert _problems(text) == [
        f"rules.yaml:{line}: queues.after_hours: unknown queue 'night-shift'"
    ]


def test_given_a_service_sent_to_a_city_queue_that_does_not_exist_then_refused() -> None:
    text = _edit("skills: [complaint], queue: province", "skills: [complaint], queue: city-339900")
    [problem] = _problems(text)
    assert problem.startswith(f"rules.yaml:{_line_of(text, 'city-339900')}: ")
    assert "service_types.complaint.queue: unknown queue 'city-339900'" in problem


def test_given_an_unquoted_time_then_the_yaml_gotcha_is_explained() -> None:
    text = _edit('end: "17:30"', "end: 17:30")
    [problem] = _problems(text)
    assert problem.startswith(f"rules.yaml:{_line_of(text, 'end: 17:30')}: ")
    assert "business_hours.periods[0].end: write times in quotes" in problem


def test_given_a_period_ending_before_it_starts_then_refused() -> None:
    text = _edit('{start: "08:30", end: "17:30"}', '{start: "17:30", end: "08:30"}')
    line = _line_of(text, "start: ")
    assert _problems(text) == [
        f"rules.yaml:{line}: business_hours.periods[0]: end must be after start"
    ]


def test_given_overlapping_periods_then_refused() -> None:
    text = _edit(
        '    - {start: "08:30", end: "17:30"}',
        '    - {start: "08:30", end: "12:30"}\n    - {start: "12:00", end: "17:30"}',
    )
    [problem] = _problems(text)
    assert problem.endswith("business_hours.periods: periods overlap")


def test_given_a_duplicate_key_then_refused() -> None:
    text = _edit("  mediation: {", "  legal_aid: {name: 重复, skills: []}\n  mediation: {")
    problems = _problems(text)
    assert problems == [
        f"rules.yaml:{_line_of(text, '重复')}: service_types.legal_aid: duplicate key"
    ]


def test_given_an_unknown_locate_source_then_refused() -> None:
    text = _edit("order: [caller, called, trunk]", "order: [caller, cell]")
    [problem] = _problems(text)
    assert problem.startswith(f"rules.yaml:{_line_of(text, 'cell]')}: locate.order[1]: must be")


def test_given_a_default_service_type_not_defined_then_refused() -> None:
    text = _edit("default_service_type: legal_consult", "default_service_type: tax")
    line = _line_of(text, "tax")
    assert _problems(text) == [
        f"rules.yaml:{line}: default_service_type: 'tax' is not one of service_types"
    ]


def test_given_a_missing_section_then_the_parent_line_and_the_key_are_named() -> None:
    text = _edit("  repeat_window_h: 24\n", "")
    assert _problems(text) == [
        f"rules.yaml:{_line_of(text, 'priorities:')}: priorities.repeat_window_h: "
        "missing required key 'repeat_window_h'"
    ]


def test_given_rules_of_another_province_then_refused() -> None:
    text = _edit('province: "330000"', 'province: "320000"')
    assert _problems(text) == [
        f"rules.yaml:{_line_of(text, '320000')}: province: rules are for 320000, not 330000"
    ]


def test_given_several_mistakes_then_all_are_reported_with_their_lines() -> None:
    text = _edit("  wait_s: 60 #", "  wait_s: 7200 #").replace("days: 7", "days: lots")
    assert _problems(text) == [
        f"rules.yaml:{_line_of(text, 'wait_s: 7200')}: overflow.wait_s: must be <= 3600",
        f"rules.yaml:{_line_of(text, 'days: lots')}: previous_agent.days: "
        "must be a valid integer, unable to parse string as an integer",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "rules.yaml:1: the file is empty"),
        ("- just\n- a list\n", "rules.yaml:1: (top level): must be a mapping of rule sections"),
        ("version: 1\nqueues: [unclosed\n", "rules.yaml:3: not valid YAML:"),
        ("!!python/object:os.system {}\n", "rules.yaml:1: not valid YAML: could not determine"),
    ],
)
def test_given_a_file_that_is_not_a_rule_mapping_then_refused(text: str, expected: str) -> None:
    [problem] = _problems(text)
    assert problem.startswith(expected)


def test_given_a_self_referencing_alias_then_refused_without_recursion() -> None:
    problems = _problems(_edit("trunks: {}", "trunks: &loop {k: *loop}"))
    assert any(
        p.startswith(f"rules.yaml:{_line_of(DEFAULT_TEXT, 'trunks: {}')}: trunks") for p in problems
    )


def test_given_a_file_then_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(_edit("  wait_s: 60 #", "  wait_s: -1 #"), encoding="utf-8")
    pattern = rf"^{re.escape(str(path))}:\d+: overflow\.wait_s: must be >= 0$"
    with pytest.raises(RulesError, match=pattern):
        load_rules(path, zhejiang())


def test_given_a_missing_file_then_refused_with_its_name(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="cannot read"):
        load_rules(tmp_path / "nope.yaml", zhejiang())


def test_given_city_codes_written_unquoted_then_accepted() -> None:
    rules = parse_rules(_edit('"330900": 45', "330900: 45"), zhejiang())
    assert rules.wait_for("330900") == 45


def test_given_rules_built_in_code_with_an_unknown_queue_then_the_engine_refuses_them() -> None:
    bad = default_rules().model_copy(
        update={"queues": QueuesRule(overflow="nowhere", after_hours="province-duty")}
    )
    with pytest.raises(RulesError, match=r"queues\.overflow: unknown queue 'nowhere'"):
        RoutingEngine(bad, zhejiang())
