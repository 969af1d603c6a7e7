"""Every branch of the default 12348 flow, walked by simulated callers over FastAGI."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from callcenter.routing.calendar import SHANGHAI
from tests.ivr.conftest import MakeBench, flow_copy
from ticketing.models import FollowupTask

pytestmark = pytest.mark.asyncio

MAIN_START = ["hotline/welcome", "hotline/emergency-notice", "hotline/language-zh"]


def _vars(session: object) -> dict[str, str]:
    return session.channel.variables  # type: ignore[attr-defined, no-any-return]


@pytest.mark.parametrize(
    ("keys", "service", "node"),
    [
        (["1", "1", "1"], "legal_consult", "consult"),  # 1 → no recognizer → DTMF menu → 1
        (["1", "2", "2"], "legal_aid", "legal_aid"),
        (["1", "3"], "mediation", "mediation"),
        (["1", "4"], "notary", "notary"),
        (["1", "5"], "complaint", "complaint"),
    ],
)
async def test_given_working_hours_when_caller_picks_a_service_then_queue_variables_are_set(
    make_bench: MakeBench, keys: list[str], service: str, node: str
) -> None:
    bench = await make_bench()
    session = await bench.call(keys)
    variables = _vars(session)
    assert variables["HOTLINE_ACTION"] == "queue"
    assert variables["HOTLINE_SERVICE"] == service
    assert variables["IVR_CHOICE"] == keys[1]
    assert variables["HOTLINE_LANGUAGE"] == "zh-CN" == variables["CHANNEL(language)"]
    assert session.prompts[:3] == MAIN_START
    assert 'STREAM FILE hotline/welcome ""' in session.commands  # words as Asterisk reads
    assert "hotline/main-menu" in session.prompts
    path, language = bench.paths[session.channel.linkedid]
    assert path[-1] == node and language == "zh-CN"
    assert variables["IVR_PATH"] == ",".join(path)
    ((_, linkedid, decision),) = bench.decisions
    assert linkedid == session.channel.linkedid and decision.service_type == service
    expected_queue = "province" if service == "complaint" else "city-330400"
    assert variables["HOTLINE_QUEUE"] == expected_queue


async def test_given_legal_aid_menu_when_2_then_1_then_green_channel_with_priority(
    make_bench: MakeBench,
) -> None:
    bench = await make_bench()
    session = await bench.call(["1", "21"])  # typed ahead: 2, then 1 in the sub-menu
    variables = _vars(session)
    assert variables["HOTLINE_SERVICE"] == "wage_arrears"
    assert int(variables["HOTLINE_PRIORITY"]) == 10 == int(variables["QUEUE_PRIO"])
    assert "hotline/aid-menu" in session.prompts and "hotline/green-channel" in session.prompts
    path, _ = bench.paths[session.channel.linkedid]
    assert path == (
        "welcome",
        "emergency_notice",
        "choose_language:zh-CN",
        "hours",
        "main_menu:2",
        "aid_menu:1",
        "wage_arrears",
    )


@pytest.mark.parametrize(
    ("keys", "menu_prompt"),
    [
        (["0"], "hotline/language-en"),  # the language menu
        (["1", "0"], "hotline/main-menu"),
        (["1", "2", "0"], "hotline/aid-menu"),
        (["1", "1", "0"], "hotline/consult-menu"),
    ],
)
async def test_given_any_menu_when_0_then_a_person(
    make_bench: MakeBench, keys: list[str], menu_prompt: str
) -> None:
    bench = await make_bench()
    session = await bench.call(keys)
    variables = _vars(session)
    assert session.prompts[-2] == menu_prompt
    assert session.prompts[-1] == "hotline/transferring"
    assert variables["HOTLINE_ACTION"] == "queue"
    assert bench.paths[session.channel.linkedid][0][-1] == "to_agent"


async def test_given_after_hours_when_0_then_the_duty_queue(make_bench: MakeBench) -> None:
    bench = await make_bench()
    bench.clock[0] = datetime(2026, 10, 1, 10, 0, tzinfo=SHANGHAI)  # 国庆节, a Thursday
    session = await bench.call(["1", "0"])
    assert "hotline/after-hours-menu" in session.prompts
    assert _vars(session)["HOTLINE_QUEUE"] == "province-duty"


@pytest.mark.parametrize("bad", [["9", "", "7"], ["", "", ""], ["8", "", ""]])
async def test_given_invalid_or_no_input_three_times_then_repeated_twice_and_an_agent(
    make_bench: MakeBench, bad: list[str]
) -> None:
    bench = await make_bench()
    session = await bench.call(["1", *bad])
    assert session.prompts.count("hotline/main-menu") == 3
    assert session.prompts.count("hotline/invalid-input") == 2
    variables = _vars(session)
    assert (
        variables["HOTLINE_ACTION"] == "queue" and variables["HOTLINE_SERVICE"] == "legal_consult"
    )
    path = bench.paths[session.channel.linkedid][0]
    assert path[-2:] == ("main_menu:failed", "to_agent")


async def test_given_one_bad_key_then_the_menu_repeats_and_a_good_key_still_counts(
    make_bench: MakeBench,
) -> None:
    bench = await make_bench()
    session = await bench.call(["1", "9", "3"])
    assert session.prompts.count("hotline/main-menu") == 2
    assert _vars(session)["HOTLINE_SERVICE"] == "mediation"


async def test_given_caller_hangs_up_mid_menu_then_run_stops_and_path_is_recorded(
    make_bench: MakeBench,
) -> None:
    bench = await make_bench()
    session = await bench.call(["1", "2", "hangup"])
    assert session.hung_up
    assert "HOTLINE_ACTION" not in _vars(session)
    assert bench.decisions == []
    path, _ = bench.paths[session.channel.linkedid]
    assert path[-2:] == ("aid_menu", "hangup")
    assert not any(c.startswith("SET VARIABLE") for c in session.commands[-1:])


@pytest.mark.parametrize(
    ("when", "open_"),
    [
        (datetime(2026, 10, 1, 10, 0, tzinfo=SHANGHAI), False),  # 国庆节 (Thursday)
        (datetime(2026, 10, 10, 10, 0, tzinfo=SHANGHAI), True),  # 调休: a working Saturday
        (datetime(2026, 11, 22, 10, 0, tzinfo=SHANGHAI), False),  # an ordinary Sunday
        (datetime(2026, 11, 23, 18, 0, tzinfo=SHANGHAI), False),  # Monday after 17:30
    ],
)
async def test_given_official_calendar_then_business_hours_branch_follows_it(
    make_bench: MakeBench, when: datetime, open_: bool
) -> None:
    bench = await make_bench()
    bench.clock[0] = when
    session = await bench.call(["1", "2"])
    if open_:
        assert "hotline/main-menu" in session.prompts
        assert _vars(session)["HOTLINE_QUEUE"] == "city-330400"
    else:
        assert "hotline/after-hours-menu" in session.prompts
        assert "hotline/main-menu" not in session.prompts
        assert _vars(session)["HOTLINE_QUEUE"] == "province-duty"  # after-hours 2: duty queue


async def test_given_holiday_when_caller_books_a_callback_then_task_is_stored_and_call_ends(
    make_bench: MakeBench,
) -> None:
    bench = await make_bench()
    bench.clock[0] = datetime(2026, 10, 1, 20, 0, tzinfo=SHANGHAI)
    session = await bench.call(["1", "1"], caller="13905730002")
    variables = _vars(session)
    assert variables["HOTLINE_ACTION"] == "hangup"
    assert session.prompts[-1] == "hotline/callback-booked"
    async with bench.sessionmaker() as s:
        tasks = list((await s.execute(select(FollowupTask))).scalars())
    assert [(t.reason, t.source_linkedid, t.source_node) for t in tasks] == [
        ("after_hours", session.channel.linkedid, "sim-node1")
    ]
    assert variables["IVR_CALLBACK_ID"] == str(tasks[0].id)
    assert bench.decisions == []


async def test_given_withheld_number_when_callback_refused_then_duty_queue_instead(
    make_bench: MakeBench,
) -> None:
    bench = await make_bench()
    bench.clock[0] = datetime(2026, 10, 1, 20, 0, tzinfo=SHANGHAI)
    session = await bench.call(["1", "1"], caller="anonymous")
    variables = _vars(session)
    assert variables["HOTLINE_ACTION"] == "queue" and variables["HOTLINE_QUEUE"] == "province-duty"
    assert bench.paths[session.channel.linkedid][0][-2:] == (
        "after_hours_callback:failed",
        "duty_queue",
    )
    async with bench.sessionmaker() as s:
        assert list((await s.execute(select(FollowupTask))).scalars()) == []


async def test_given_english_chosen_then_channel_language_and_routing_use_it(
    make_bench: MakeBench,
) -> None:
    bench = await make_bench()
    session = await bench.call(["2", "3"])
    variables = _vars(session)
    assert variables["CHANNEL(language)"] == "en" == variables["HOTLINE_LANGUAGE"]
    decision = bench.decisions[0][2]
    assert decision.language == "en" and "lang-en" in decision.required_skills
    assert "hotline/language-bo" not in session.prompts  # 藏语 is not enabled in 浙江
    assert bench.paths[session.channel.linkedid][1] == "en"


async def test_given_no_language_key_then_mandarin(make_bench: MakeBench) -> None:
    bench = await make_bench()
    session = await bench.call(["", "3"])
    assert _vars(session)["HOTLINE_LANGUAGE"] == "zh-CN"
    assert _vars(session)["HOTLINE_SERVICE"] == "mediation"


async def test_given_tibetan_enabled_when_3_then_bo_prompts_and_routing_skill(
    make_bench: MakeBench, tmp_path: Path
) -> None:
    folder = flow_copy(tmp_path / "bo")
    flow = folder / "12348.yaml"
    flow.write_text(
        flow.read_text(encoding="utf-8").replace(
            "enabled: [zh-CN, en]", "enabled: [zh-CN, en, bo]"
        ),
        encoding="utf-8",
    )
    catalogue = yaml.safe_load((folder / "prompts.yaml").read_text(encoding="utf-8"))
    for prompt in catalogue["prompts"].values():  # a province that recorded every prompt in 藏语
        prompt["text"].setdefault("bo", "བོད་སྐད།")
    (folder / "prompts.yaml").write_text(yaml.safe_dump(catalogue, allow_unicode=True), "utf-8")
    bench = await make_bench(flow_dir=folder)
    session = await bench.call(["3", "3"])
    assert session.prompts[2:5] == [
        "hotline/language-zh",
        "hotline/language-en",
        "hotline/language-bo",
    ]
    variables = _vars(session)
    assert variables["CHANNEL(language)"] == "bo" == variables["HOTLINE_LANGUAGE"]
    decision = bench.decisions[0][2]
    assert decision.language == "bo" and "lang-bo" in decision.required_skills
