"""The demo's simulated callers against the real default flow, the real flow engine and real
Vosk (tone model): each script reaches the service its comment promises."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from callcenter.pbxsim.agi_caller import AgiCaller
from callcenter.pbxsim.scripts import ANSWERED, IVR_HANGUP, CallScript
from callcenter.pbxsim.workload import TrafficConfig
from callcenter.services import Services, build_services
from callcenter.settings import load_settings
from ivr_flows.demo_callers import DEFAULT_FLOW_CALLERS

pytestmark = [pytest.mark.slow]

MONDAY_9AM_SHANGHAI = 1795395600.0

EXPECTED = {
    ("1", "1", "say:sil:0.3,离婚:0.8,sil:0.6"): (ANSWERED, "legal_consult", "zh-CN"),
    ("1", "1", "say:sil:0.3,欠薪:0.8,sil:0.6"): (ANSWERED, "wage_arrears", "zh-CN"),
    ("1", "1", "say:sil:0.3,440hz:1.0,sil:0.6", "1"): (ANSWERED, "legal_consult", "zh-CN"),
    ("1", "2", "1"): (ANSWERED, "wage_arrears", "zh-CN"),
    ("1", "2", "2"): (ANSWERED, "legal_aid", "zh-CN"),
    ("1", "3"): (ANSWERED, "mediation", "zh-CN"),
    ("1", "4"): (ANSWERED, "notary", "zh-CN"),
    ("1", "5"): (ANSWERED, "complaint", "zh-CN"),
    ("1", "0"): (ANSWERED, "legal_consult", "zh-CN"),
    ("",): (ANSWERED, "legal_consult", "zh-CN"),
    ("1", "9", "8", "7"): (ANSWERED, "legal_consult", "zh-CN"),
    ("1", "hangup"): (IVR_HANGUP, None, "zh-CN"),
    ("2", "2", "2"): (ANSWERED, "legal_aid", "en"),
    ("1", "1", "say:sil:0.3,自杀:0.8,sil:0.6"): (ANSWERED, "crisis", "zh-CN"),
}


@pytest_asyncio.fixture(scope="module")
async def platform(
    sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory, shared_dir: Path
) -> AsyncIterator[Services]:
    """One platform for all the scripts (a call leaves nothing behind that the next sees)."""
    quiet = TrafficConfig(
        seed=3, speed=60.0, calls_per_hour=0.0, max_calls=0, start=MONDAY_9AM_SHANGHAI
    )
    tmp = tmp_path_factory.mktemp("demo-callers")
    database = tmp / "callcenter.db"
    database.write_bytes(sqlite_template.read_bytes())
    settings = load_settings(
        database_url=f"sqlite+aiosqlite:///{database}",
        data_dir=tmp / "data",
        recordings_dir=tmp / "data" / "recordings",
        vosk_model_path=shared_dir / "models" / "vosk-tiny-tones",
        call_tickets=False,
    )
    async with build_services(settings, telephony=True, traffic=quiet) as services:
        assert services.telephony is not None
        await services.telephony.wait_connected(5.0)
        yield services


def test_given_demo_scripts_then_every_one_has_an_expected_outcome() -> None:
    assert {inputs for _, inputs in DEFAULT_FLOW_CALLERS} == set(EXPECTED)
    TrafficConfig(ivr_scripts=DEFAULT_FLOW_CALLERS)  # valid inputs for the simulator


@pytest.mark.parametrize("inputs", sorted(EXPECTED), ids=lambda i: "+".join(i) or "silence")
async def test_given_demo_caller_when_placed_then_reaches_the_promised_service(
    platform: Services, inputs: tuple[str, ...]
) -> None:
    tel = platform.telephony
    assert tel is not None and tel.simulator is not None
    outcome, service, language = EXPECTED[inputs]
    script = CallScript(main=AgiCaller(inputs=list(inputs)), talk_s=2.0, seat_hangs_up=False)
    placed = tel.simulator.place_call("330400", "13905730007", "李四", script)
    assert await placed.finished(60.0) == outcome
    assert placed.variables.get("HOTLINE_SERVICE") == service
    assert placed.variables.get("HOTLINE_LANGUAGE", "zh-CN") == language
