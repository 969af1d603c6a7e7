"""Speech menu through the real vosk library, virtual hold, survey, risk alert, safety nets."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import select

from callcenter.db.models import Call
from callcenter.speech import VoskRecognizer
from tests.ivr.conftest import NODE, MakeBench, flow_copy
from ticketing.models import FollowupTask, Ticket

pytestmark = pytest.mark.asyncio


def _vars(session: object) -> dict[str, str]:
    return session.channel.variables  # type: ignore[attr-defined, no-any-return]


@pytest.fixture
def recognizer(tone_model: Path) -> VoskRecognizer:
    return VoskRecognizer(tone_model, max_concurrency=1, max_audio_seconds=60.0)


async def test_given_speech_menu_when_caller_says_qianxin_then_green_channel(
    make_bench: MakeBench, recognizer: VoskRecognizer
) -> None:
    bench = await make_bench(recognizer=recognizer)
    session = await bench.call(["1", "1", "say:sil:0.3,欠薪:0.8,sil:0.6"])
    variables = _vars(session)
    assert "hotline/speech-question" in session.prompts
    assert variables["HOTLINE_SERVICE"] == "wage_arrears" and variables["IVR_KEYWORD"] == "欠薪"
    assert int(variables["HOTLINE_PRIORITY"]) == 10
    assert "hotline/consult-menu" not in session.prompts  # no DTMF menu needed
    assert bench.paths[session.channel.linkedid][0][-2:] == ("consult_speech:欠薪", "wage_arrears")
    assert session.recordings and not any(p.exists() for p in session.recordings)  # deleted
    record = next(c for c in session.commands if c.startswith("RECORD FILE "))
    assert record.endswith(" wav # 8000 0 s=2")


async def test_given_speech_menu_when_caller_says_zisha_then_emergency_and_risk_alert(
    make_bench: MakeBench, recognizer: VoskRecognizer
) -> None:
    bench = await make_bench(recognizer=recognizer)
    async with bench.bus.subscribe("alerts.*.risk") as subscription:
        session = await bench.call(["1", "1", "say:sil:0.3,自杀:0.8,sil:0.6"])
        variables = _vars(session)
        assert variables["HOTLINE_ACTION"] == "queue"
        assert variables["HOTLINE_SERVICE"] == "crisis"
        assert int(variables["HOTLINE_PRIORITY"]) >= 20  # emergency outranks the green channel
        assert session.prompts[-1] == "hotline/crisis-connect"
        assert not {"hotline/consult-menu", "hotline/invalid-input"} & set(session.prompts)
        message = await asyncio.wait_for(subscription.get(), 2.0)
        assert message.channel == "alerts.330400.risk"
        assert message.data["alert"] == "自杀风险" and message.data["keyword"] == "自杀"
        assert message.data["linkedid"] == session.channel.linkedid


@pytest.mark.parametrize("spec", ["sil:0.3,697+1209hz:0.8,sil:0.6", "sil:1.5"])
async def test_given_speech_menu_when_no_keyword_then_dtmf_fallback(
    make_bench: MakeBench, recognizer: VoskRecognizer, spec: str
) -> None:
    bench = await make_bench(recognizer=recognizer)
    session = await bench.call(["1", "1", f"say:{spec}", "2"])
    assert session.prompts[-2:] == ["hotline/consult-menu", "hotline/green-channel"]
    assert _vars(session)["HOTLINE_SERVICE"] == "wage_arrears"
    assert "consult_speech:no-match" in bench.paths[session.channel.linkedid][0]


async def test_given_no_recognizer_then_speech_node_goes_straight_to_dtmf(
    make_bench: MakeBench,
) -> None:
    bench = await make_bench()
    session = await bench.call(["1", "1", "4"])
    assert not any(c.startswith("RECORD FILE") for c in session.commands)
    assert "hotline/speech-question" not in session.prompts
    assert _vars(session)["HOTLINE_SERVICE"] == "legal_consult"


async def test_given_queued_caller_presses_exit_key_then_callback_booked_and_call_ends(
    make_bench: MakeBench,
) -> None:
    bench = await make_bench()
    queued = {"HOTLINE_SERVICE": "wage_arrears", "IVR_PATH": "welcome,main_menu:2,aid_menu:1"}
    session = await bench.call([], entry="virtual_hold", variables=queued, uniqueid="1795400100.7")
    variables = _vars(session)
    assert variables["HOTLINE_ACTION"] == "hangup" and "IVR_CALLBACK_ID" in variables
    assert session.prompts == ["hotline/callback-booked"]
    async with bench.sessionmaker() as s:
        task = (await s.execute(select(FollowupTask))).scalar_one()
    assert (task.reason, task.source_linkedid, task.service_type, task.region_code) == (
        "virtual_hold",
        "1795400100.7",
        "wage_arrears",
        "330400",
    )
    path, _ = bench.paths["1795400100.7"]
    assert path == ("welcome", "main_menu:2", "aid_menu:1", "vh_book:booked")
    again = await bench.call([], entry="virtual_hold", variables=queued, uniqueid="1795400100.7")
    assert _vars(again)["IVR_CALLBACK_ID"] == variables["IVR_CALLBACK_ID"]  # booked once


async def test_given_booking_unavailable_then_caller_hears_apology_and_nothing_is_stored(
    make_bench: MakeBench,
) -> None:
    bench = await make_bench(callbacks=False)
    session = await bench.call([], entry="virtual_hold")
    assert session.prompts == ["hotline/callback-failed"]
    assert _vars(session)["HOTLINE_ACTION"] == "hangup"


async def _call_with_ticket(bench: object, linkedid: str) -> tuple[int, int]:
    sessionmaker = bench.sessionmaker  # type: ignore[attr-defined]
    async with sessionmaker() as s:
        call = Call(node=NODE, linkedid=linkedid, caller_number="13905730001")
        s.add(call)
        await s.flush()
        from datetime import UTC, datetime, timedelta

        now = datetime.now(UTC)
        ticket = Ticket(
            number=f"T{linkedid[-10:]}",
            region_code="330400",
            source_call_id=call.id,
            channel="phone",
            category="legal_consultation",
            request_type="consultation",
            content="咨询劳动合同",
            urgency="normal",
            green_channel=False,
            resolved_on_call=True,
            state="accepted",
            accept_by=now + timedelta(hours=1),
            resolve_by=now + timedelta(days=5),
            extended_days=0,
            urge_count=0,
            supervised=False,
        )
        s.add(ticket)
        await s.commit()
        return call.id, ticket.id


async def test_given_seat_hung_up_when_caller_rates_then_stored_on_call_and_ticket(
    make_bench: MakeBench,
) -> None:
    bench = await make_bench()
    call_id, ticket_id = await _call_with_ticket(bench, "1795400200.1")
    session = await bench.call(["2"], entry="survey", uniqueid="1795400200.1")
    assert session.prompts == ["hotline/survey-question", "hotline/survey-thanks"]
    assert _vars(session)["HOTLINE_ACTION"] == "hangup"
    async with bench.sessionmaker() as s:
        call = await s.get(Call, call_id)
        ticket = await s.get(Ticket, ticket_id)
    assert call is not None and ticket is not None
    assert call.satisfaction == "satisfied" == ticket.satisfaction
    assert ticket.version == 2


async def test_given_survey_without_answer_then_nothing_stored_after_one_repeat(
    make_bench: MakeBench,
) -> None:
    bench = await make_bench()
    call_id, _ = await _call_with_ticket(bench, "1795400200.2")
    session = await bench.call(["", "7"], entry="survey", uniqueid="1795400200.2")
    assert session.prompts.count("hotline/survey-question") == 2
    async with bench.sessionmaker() as s:
        call = await s.get(Call, call_id)
    assert call is not None and call.satisfaction is None


async def test_given_flow_that_loops_on_input_then_step_limit_sends_caller_to_a_person(
    make_bench: MakeBench, tmp_path: Path
) -> None:
    """A menu whose key 1 leads back to itself passes the validator (the caller can always
    leave with 0 or by waiting); a caller who keeps pressing 1 still cannot keep the run."""
    folder = flow_copy(tmp_path / "looping")
    path = folder / "12348.yaml"
    text = path.read_text(encoding="utf-8").replace("max_steps: 60", "max_steps: 8")
    text = text.replace('options: {"1": wage_arrears, "2": legal_aid}', 'options: {"1": aid_menu}')
    text = text.replace('"2": wage_arrears, "3": consult', '"2": legal_aid, "3": wage_arrears')
    path.write_text(text, encoding="utf-8")
    bench = await make_bench(flow_dir=folder)
    session = await bench.call(["1", "2", *["1"] * 20])
    variables = _vars(session)
    assert (
        variables["HOTLINE_ACTION"] == "queue" and variables["HOTLINE_SERVICE"] == "legal_consult"
    )
    path_taken = bench.paths[session.channel.linkedid][0]
    assert path_taken[-1] == "step-limit" and len(path_taken) == 9
    assert session.prompts.count("hotline/aid-menu") == 3  # nodes 6, 7, 8 of 8


@pytest.mark.postgres
async def test_given_postgresql_when_survey_stored_then_call_and_ticket_updated_once(
    pg_url: str,
) -> None:
    import uuid

    from callcenter.db.engine import make_engine, make_sessionmaker
    from ivr_flows.errors import IvrUnavailable
    from ivr_flows.survey import SurveyStore

    engine = make_engine(pg_url)
    try:
        bench_like = type("B", (), {"sessionmaker": make_sessionmaker(engine)})()
        linkedid = f"pg-{uuid.uuid4().hex[:12]}"
        call_id, ticket_id = await _call_with_ticket(bench_like, linkedid)
        store = SurveyStore(bench_like.sessionmaker, attempts=1)
        await store(NODE, linkedid, "dissatisfied")
        await store(NODE, linkedid, "satisfied")  # the caller rated twice: the call keeps the last
        async with bench_like.sessionmaker() as s:
            call = await s.get(Call, call_id)
            ticket = await s.get(Ticket, ticket_id)
        assert call is not None and ticket is not None
        assert call.satisfaction == "satisfied" and ticket.satisfaction == "dissatisfied"
        assert ticket.version == 2  # a 回访/first answer on the ticket is never overwritten
        with pytest.raises(IvrUnavailable):
            await store(NODE, f"{linkedid}-unknown", "satisfied")
        with pytest.raises(ValueError):
            await store(NODE, linkedid, "great")
    finally:
        await engine.dispose()
