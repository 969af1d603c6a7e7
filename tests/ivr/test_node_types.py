"""The node types the default flow does not use (read_digits, set, transfer, hangup), run by
the real engine in a flow an operator might write, walked by simulated callers over FastAGI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.ivr.conftest import Bench, MakeBench, flow_copy


def _extended_flow(tmp_path: Path) -> Path:
    """The default flow with 5 asking for a reference number first, 6 to 12345, 7 goodbye."""
    folder = flow_copy(tmp_path)
    path = folder / "12348.yaml"
    doc: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    nodes = doc["nodes"]
    nodes["main_menu"]["options"].update({"5": "complaint_ref", "6": "to_12345", "7": "bye"})
    nodes["complaint_ref"] = {
        "type": "read_digits",
        "prompt": "main-menu",
        "variable": "ticket_ref",
        "min_digits": 4,
        "max_digits": 8,
        "timeout_s": 5,
        "retries": 1,
        "invalid_prompt": "invalid-input",
        "next": "complaint_set",
        "on_failure": "to_agent",
    }
    nodes["complaint_set"] = {
        "type": "set",
        "service": "complaint",
        "priority": 5,
        "next": "complaint",
    }
    nodes["to_12345"] = {"type": "transfer", "target": "12345", "prompt": "transferring"}
    nodes["bye"] = {"type": "hangup", "prompt": "survey-thanks"}
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return folder


async def _bench(make_bench: MakeBench, tmp_path: Path) -> Bench:
    return await make_bench(flow_dir=_extended_flow(tmp_path))


async def test_given_read_digits_and_set_then_reference_stored_and_priority_raised(
    make_bench: MakeBench, tmp_path: Path
) -> None:
    bench = await _bench(make_bench, tmp_path)
    plain = (await bench.call(["1", "4"])).channel.variables  # 公证: no extra priority
    session = await bench.call(["1", "5", "20261121"])
    variables = session.channel.variables
    assert variables["IVR_TICKET_REF"] == "20261121"
    assert (variables["HOTLINE_ACTION"], variables["HOTLINE_SERVICE"]) == ("queue", "complaint")
    assert int(variables["HOTLINE_PRIORITY"]) == int(plain["HOTLINE_PRIORITY"]) + 5
    assert "complaint_ref" in variables["IVR_PATH"] and "complaint_set" in variables["IVR_PATH"]


async def test_given_too_few_digits_twice_then_the_caller_goes_to_a_person(
    make_bench: MakeBench, tmp_path: Path
) -> None:
    bench = await _bench(make_bench, tmp_path)
    session = await bench.call(["1", "5", "12", "34"])
    variables = session.channel.variables
    assert "IVR_TICKET_REF" not in variables
    assert variables["HOTLINE_ACTION"] == "queue"
    assert variables["IVR_PATH"].split(",")[-1].startswith("to_agent")
    assert session.prompts.count("hotline/invalid-input") == 1  # one retry, then a person


async def test_given_transfer_node_then_the_dialplan_is_told_where(
    make_bench: MakeBench, tmp_path: Path
) -> None:
    bench = await _bench(make_bench, tmp_path)
    session = await bench.call(["1", "6"])
    variables = session.channel.variables
    assert (variables["HOTLINE_ACTION"], variables["HOTLINE_TRANSFER"]) == ("transfer", "12345")
    assert session.prompts[-1] == "hotline/transferring"
    assert bench.decisions == []  # a transfer is not a queue: no routing decision


async def test_given_hangup_node_then_goodbye_and_the_call_ends(
    make_bench: MakeBench, tmp_path: Path
) -> None:
    bench = await _bench(make_bench, tmp_path)
    session = await bench.call(["1", "7"])
    assert session.channel.variables["HOTLINE_ACTION"] == "hangup"
    assert session.prompts[-1] == "hotline/survey-thanks"
