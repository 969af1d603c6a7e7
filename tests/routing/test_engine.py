"""Routing decisions end to end: real numbers, real calendar, the default 浙江省 rules."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcenter.routing import (
    ReasonCode,
    RoutingDecision,
    RoutingEngine,
    RoutingRequest,
    RoutingSnapshot,
)
from callcenter.routing.rules import OverflowRule
from tests.routing import (
    JIAXING_MOBILE,
    MOBILE,
    WORKDAY_MORNING,
    agent,
    at,
    default_rules,
    engine,
    snapshot,
)

JX = "city-330400"
PROVINCE = "province"
DUTY = "province-duty"
NOW = WORKDAY_MORNING


@pytest.fixture(scope="module")
def eng() -> RoutingEngine:
    return engine()


@pytest.fixture(scope="module")
def staffed(eng: RoutingEngine) -> RoutingSnapshot:
    """Jiaxing and the province each have ready agents covering every skill."""
    everything = ("legal_consult", "legal_aid", "mediation", "notary", "complaint")
    return snapshot(
        eng,
        [
            (JX, agent("jx-1", *everything)),
            (JX, agent("jx-2", "legal_consult")),
            (JX, agent("jx-en", "legal_consult", languages=("zh", "en"))),
            (PROVINCE, agent("p-1", *everything, languages=("zh", "en"))),
            (DUTY, agent("d-1", *everything)),
        ],
        {JX: 2},
    )


def codes(decision: RoutingDecision) -> list[str]:
    return [reason.code.value for reason in decision.reasons]


def test_given_a_jiaxing_caller_and_ready_agents_then_the_jiaxing_queue_first(
    eng: RoutingEngine, staffed: RoutingSnapshot
) -> None:
    decision = eng.decide(RoutingRequest(JIAXING_MOBILE), staffed, NOW)
    assert decision.queue == JX
    assert (decision.overflow_queue, decision.overflow_after_s) == (PROVINCE, 60)
    assert decision.location.city_code == "330400"
    assert codes(decision)[0] == "city-from-caller"
    assert decision.reasons[0].text.startswith("来电号码归属 嘉兴市")
    assert "city-queue" in codes(decision)


def test_given_no_ready_agent_in_the_city_then_province_at_once(
    eng: RoutingEngine, staffed: RoutingSnapshot
) -> None:
    decision = eng.decide(RoutingRequest(MOBILE["330100"]), staffed, NOW)  # Hangzhou: nobody
    assert decision.queue == PROVINCE
    assert decision.overflow_after_s is None
    assert "no-ready-agent-in-city" in codes(decision)
    assert "→ province" in str(decision.reasons[codes(decision).index("no-ready-agent-in-city")])


def test_given_the_city_agents_lack_the_skill_then_province_at_once(eng: RoutingEngine) -> None:
    snap = snapshot(eng, [(JX, agent("jx-2", "legal_consult")), (PROVINCE, agent("p", "notary"))])
    decision = eng.decide(RoutingRequest(JIAXING_MOBILE, service_type="notary"), snap, NOW)
    assert decision.queue == PROVINCE
    assert decision.required_skills == ("notary",)
    assert "no-ready-agent-in-city" in codes(decision)


def test_given_a_city_override_then_its_own_wait(eng: RoutingEngine) -> None:
    snap = snapshot(eng, [("city-330900", agent("zs", "legal_consult"))])
    decision = eng.decide(RoutingRequest(MOBILE["330900"]), snap, NOW)  # 舟山: 45 s
    assert (decision.queue, decision.overflow_after_s) == ("city-330900", 45)


def test_given_time_already_waited_then_only_the_rest_of_the_wait(
    eng: RoutingEngine, staffed: RoutingSnapshot
) -> None:
    decision = eng.decide(RoutingRequest(JIAXING_MOBILE, waited_s=20.5), staffed, NOW)
    assert (decision.queue, decision.overflow_after_s) == (JX, 40)


def test_given_the_whole_wait_already_spent_then_province(
    eng: RoutingEngine, staffed: RoutingSnapshot
) -> None:
    decision = eng.decide(RoutingRequest(JIAXING_MOBILE, waited_s=61), staffed, NOW)
    assert decision.queue == PROVINCE
    assert "wait-expired" in codes(decision)


def test_given_the_wait_expires_then_overflow_to_the_province(
    eng: RoutingEngine, staffed: RoutingSnapshot
) -> None:
    request = RoutingRequest(JIAXING_MOBILE)
    first = eng.decide(request, staffed, NOW)
    later = eng.on_wait_expired(request, first, staffed, NOW + timedelta(seconds=60))
    assert later.queue == PROVINCE
    assert (later.overflow_queue, later.overflow_after_s) == (None, None)
    assert codes(later)[: len(first.reasons)] == codes(first)  # history is kept
    assert codes(later)[len(first.reasons)] == "wait-expired"


def test_given_the_wait_expires_after_closing_time_then_duty(
    eng: RoutingEngine, staffed: RoutingSnapshot
) -> None:
    request = RoutingRequest(JIAXING_MOBILE)
    first = eng.decide(request, staffed, at(2026, 11, 23, 17, 29))
    later = eng.on_wait_expired(request, first, staffed, at(2026, 11, 23, 17, 30))
    assert later.queue == DUTY
    assert codes(later)[-2:] == ["wait-expired", "after-hours"]


def test_given_the_wait_expires_in_the_province_then_no_further_step(
    eng: RoutingEngine, staffed: RoutingSnapshot
) -> None:
    request = RoutingRequest("13800138000")
    first = eng.decide(request, staffed, NOW)
    assert first.queue == PROVINCE
    later = eng.on_wait_expired(request, first, staffed, NOW + timedelta(minutes=5))
    assert later.queue == PROVINCE
    assert codes(later)[-1] == "no-further-overflow"


def test_given_a_long_city_queue_then_province_at_once(eng: RoutingEngine) -> None:
    snap = snapshot(eng, [(JX, agent("jx-1", "legal_consult"))], {JX: 5})  # limit is 4 per agent
    decision = eng.decide(RoutingRequest(JIAXING_MOBILE), snap, NOW)
    assert decision.queue == PROVINCE
    assert "city-queue-long" in codes(decision)


def test_given_no_queue_limit_then_a_long_city_queue_still_waits() -> None:
    rules = default_rules().model_copy(update={"overflow": OverflowRule(wait_s=30)})
    eng = engine(rules)
    snap = snapshot(eng, [(JX, agent("jx-1", "legal_consult"))], {JX: 50})
    decision = eng.decide(RoutingRequest(JIAXING_MOBILE), snap, NOW)
    assert (decision.queue, decision.overflow_after_s) == (JX, 30)


@pytest.mark.parametrize(
    ("when", "why"),
    [
        (at(2026, 11, 23, 19, 30), "weekday evening"),
        (at(2026, 11, 23, 7, 0), "weekday early morning"),
        (at(2026, 11, 21, 10, 0), "ordinary Saturday"),
        (at(2026, 10, 1, 10, 0), "National Day"),
        (at(2026, 10, 5, 10, 0), "National Day week (a Monday)"),
    ],
)
def test_given_after_hours_then_the_duty_queue(
    eng: RoutingEngine, staffed: RoutingSnapshot, when: datetime, why: str
) -> None:
    decision = eng.decide(RoutingRequest(JIAXING_MOBILE), staffed, when)
    assert decision.queue == DUTY, why
    assert decision.overflow_queue is None
    assert "after-hours" in codes(decision)
    assert codes(decision)[0] == "city-from-caller"  # the location is still recorded


def test_given_a_make_up_working_saturday_then_the_city_queue(
    eng: RoutingEngine, staffed: RoutingSnapshot
) -> None:
    decision = eng.decide(RoutingRequest(JIAXING_MOBILE), staffed, at(2026, 10, 10, 10, 0))
    assert decision.queue == JX


def test_given_an_out_of_province_caller_then_the_province(
    eng: RoutingEngine, staffed: RoutingSnapshot
) -> None:
    decision = eng.decide(RoutingRequest("13800138000", called="057312348"), staffed, NOW)
    assert decision.queue == PROVINCE
    assert codes(decision)[0] == "out-of-province"
    assert "no-city" in codes(decision)


def test_given_an_anonymous_caller_when_the_called_number_names_the_city_then_that_city(
    eng: RoutingEngine, staffed: RoutingSnapshot
) -> None:
    decision = eng.decide(RoutingRequest("anonymous", called="0573-12348"), staffed, NOW)
    assert decision.queue == JX
    assert codes(decision)[0] == "city-from-called"


def test_given_an_anonymous_caller_and_no_hint_then_the_province(
    eng: RoutingEngine, staffed: RoutingSnapshot
) -> None:
    decision = eng.decide(RoutingRequest(None, called="12348"), staffed, NOW)
    assert decision.queue == PROVINCE
    assert codes(decision)[0] == "location-unknown"


def test_given_the_green_channel_then_priority_10(
    eng: RoutingEngine, staffed: RoutingSnapshot
) -> None:
    decision = eng.decide(RoutingRequest(JIAXING_MOBILE, service_type="wage_arrears"), staffed, NOW)
    assert decision.priority == 10
    assert decision.required_skills == ("legal_aid",)
    assert "green-channel" in codes(decision)


def test_given_green_channel_and_a_repeat_caller_then_priorities_add_up(
    eng: RoutingEngine, staffed: RoutingSnapshot
) -> None:
    request = RoutingRequest(
        JIAXING_MOBILE, service_type="wage_arrears", last_call_at=NOW - timedelta(hours=23)
    )
    decision = eng.decide(request, staffed, NOW)
    assert decision.priority == 15
    assert {"green-channel", "repeat-caller"} <= set(codes(decision))


@pytest.mark.parametrize(
    ("request_", "priority"),
    [
        (RoutingRequest(JIAXING_MOBILE), 0),
        (RoutingRequest(JIAXING_MOBILE, repeat_caller=True), 5),
        (RoutingRequest(JIAXING_MOBILE, last_call_at=NOW - timedelta(hours=2)), 5),
        (RoutingRequest(JIAXING_MOBILE, last_call_at=NOW - timedelta(hours=25)), 0),
        (RoutingRequest(JIAXING_MOBILE, emergency=True), 20),
    ],
)
def test_given_repeat_or_emergency_then_priority(
    eng: RoutingEngine, staffed: RoutingSnapshot, request_: RoutingRequest, priority: int
) -> None:
    assert eng.decide(request_, staffed, NOW).priority == priority


def test_given_the_previous_agent_ready_and_recent_then_preferred(
    eng: RoutingEngine, staffed: RoutingSnapshot
) -> None:
    request = RoutingRequest(
        JIAXING_MOBILE, previous_agent="jx-2", previous_agent_at=NOW - timedelta(days=6)
    )
    decision = eng.decide(request, staffed, NOW)
    assert decision.preferred_agent == "jx-2"
    assert "previous-agent-preferred" in codes(decision)


@pytest.mark.parametrize(
    ("agent_id", "days_ago", "code"),
    [
        ("jx-2", 8, "previous-agent-too-old"),  # rule: 7 days
        ("jx-9", 1, "previous-agent-not-ready"),  # not in the snapshot: not ready
        ("p-1", 1, "previous-agent-not-ready"),  # ready, but in another queue
    ],
)
def test_given_the_previous_agent_old_or_not_ready_then_not_preferred(
    eng: RoutingEngine, staffed: RoutingSnapshot, agent_id: str, days_ago: int, code: str
) -> None:
    request = RoutingRequest(
        JIAXING_MOBILE, previous_agent=agent_id, previous_agent_at=NOW - timedelta(days=days_ago)
    )
    decision = eng.decide(request, staffed, NOW)
    assert decision.preferred_agent is None
    assert code in codes(decision)


def test_given_the_previous_agent_lacks_the_skill_then_not_preferred(
    eng: RoutingEngine, staffed: RoutingSnapshot
) -> None:
    request = RoutingRequest(
        JIAXING_MOBILE, service_type="mediation", previous_agent="jx-2", previous_agent_at=NOW
    )
    assert eng.decide(request, staffed, NOW).preferred_agent is None


def test_given_english_then_the_language_skill_is_required(
    eng: RoutingEngine, staffed: RoutingSnapshot
) -> None:
    decision = eng.decide(RoutingRequest(JIAXING_MOBILE, language="en"), staffed, NOW)
    assert decision.queue == JX
    assert decision.required_skills == ("lang-en", "legal_consult")
    assert "language" in codes(decision)


def test_given_english_and_no_english_agent_in_the_city_then_province(eng: RoutingEngine) -> None:
    snap = snapshot(
        eng,
        [
            (JX, agent("jx-2", "legal_consult")),
            (PROVINCE, agent("p", "legal_consult", languages=("en",))),
        ],
    )
    decision = eng.decide(RoutingRequest(JIAXING_MOBILE, language="en"), snap, NOW)
    assert decision.queue == PROVINCE
    assert "no-ready-agent-in-queue" not in codes(decision)  # the province can take it


def test_given_an_unknown_service_type_and_language_then_defaults_with_reasons(
    eng: RoutingEngine, staffed: RoutingSnapshot
) -> None:
    decision = eng.decide(
        RoutingRequest(JIAXING_MOBILE, service_type="tax", language="fr"), staffed, NOW
    )
    assert (decision.service_type, decision.language) == ("legal_consult", "zh")
    assert {"unknown-service-type", "unknown-language"} <= set(codes(decision))


def test_given_a_complaint_then_the_provincial_centre_handles_it(
    eng: RoutingEngine, staffed: RoutingSnapshot
) -> None:
    decision = eng.decide(RoutingRequest(JIAXING_MOBILE, service_type="complaint"), staffed, NOW)
    assert decision.queue == PROVINCE
    assert "service-queue" in codes(decision)


def test_given_nobody_ready_anywhere_then_province_with_a_note(eng: RoutingEngine) -> None:
    decision = eng.decide(RoutingRequest(JIAXING_MOBILE), snapshot(eng), NOW)
    assert decision.queue == PROVINCE
    assert codes(decision)[-1] == "no-ready-agent-in-queue"


def test_the_record_is_json_with_codes_and_texts(
    eng: RoutingEngine, staffed: RoutingSnapshot
) -> None:
    decision = eng.decide(RoutingRequest(JIAXING_MOBILE, service_type="wage_arrears"), staffed, NOW)
    record = json.loads(json.dumps(decision.to_record(), ensure_ascii=False))
    assert record["queue"] == JX
    assert record["city_code"] == "330400"
    assert {"code": "green-channel", "text": "农民工欠薪求助 绿色通道, 优先级 +10"} in record[
        "reasons"
    ]
    assert all(set(r) == {"code", "text"} and r["text"] for r in record["reasons"])


def test_given_a_naive_now_then_refused(eng: RoutingEngine, staffed: RoutingSnapshot) -> None:
    with pytest.raises(ValueError, match="naive"):
        eng.decide(RoutingRequest(JIAXING_MOBILE), staffed, NOW.replace(tzinfo=None))


def test_the_snapshot_counts_agents_holding_every_skill(eng: RoutingEngine) -> None:
    snap = snapshot(
        eng,
        [
            (JX, agent("a", "legal_aid", "mediation")),
            (JX, agent("b", "legal_aid")),
            (JX, agent("c", "legal_aid", languages=("en",))),
        ],
        {JX: 3},
    )
    assert snap.ready_count(JX, frozenset()) == 3
    assert snap.ready_count(JX, frozenset({"legal_aid"})) == 3
    assert snap.ready_count(JX, frozenset({"legal_aid", "mediation"})) == 1
    assert snap.ready_count(JX, frozenset({"legal_aid", "lang-en"})) == 1
    assert snap.ready_count("city-330100", frozenset()) == 0
    assert (snap.waiting(JX), snap.waiting(PROVINCE)) == (3, 0)
    assert snap.is_ready(JX, "c", frozenset({"lang-en"}))
    assert not snap.is_ready(JX, "b", frozenset({"mediation"}))


_QUEUES = {JX, PROVINCE, DUTY, *(f"city-{c}" for c in MOBILE)}


@given(
    caller=st.one_of(st.none(), st.text(max_size=20), st.sampled_from(sorted(MOBILE.values()))),
    called=st.one_of(st.none(), st.sampled_from(["12348", "057312348", "x"])),
    service=st.one_of(st.none(), st.sampled_from([*default_rules().service_types, "other"])),
    language=st.one_of(st.none(), st.sampled_from(["zh", "en", "xx"])),
    hour=st.integers(0, 23),
    waited=st.floats(),  # NaN and infinities included
    repeat=st.booleans(),
)
def test_every_decision_has_reasons_and_a_known_queue(
    caller: str | None,
    called: str | None,
    service: str | None,
    language: str | None,
    hour: int,
    waited: float,
    repeat: bool,
) -> None:
    eng = engine()
    snap = snapshot(eng, [(JX, agent("jx-1", "legal_consult", "legal_aid"))])
    request = RoutingRequest(caller, called, None, service, language, repeat_caller=repeat)
    decision = eng.decide(replace(request, waited_s=waited), snap, at(2026, 11, 23, hour))
    assert decision.queue in _QUEUES
    assert decision.reasons
    assert decision.reasons[0].code in {
        ReasonCode.CITY_FROM_CALLER,
        ReasonCode.CITY_FROM_CALLED,
        ReasonCode.OUT_OF_PROVINCE,
        ReasonCode.LOCATION_UNKNOWN,
    }
    assert (decision.overflow_after_s is None) == (decision.overflow_queue is None)
