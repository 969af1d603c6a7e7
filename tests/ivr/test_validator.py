"""The validator refuses each kind of broken flow with a message naming file, line and node."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from ivr_flows.errors import FlowError
from ivr_flows.validator import DEFAULT_FLOW, load_flow, validate_file
from tests.ivr.conftest import flow_copy

SERVICES = {
    "legal_consult",
    "legal_aid",
    "mediation",
    "notary",
    "complaint",
    "wage_arrears",
    "crisis",
}


def _edit(tmp_path: Path, old: str, new: str, *, file: str = "12348.yaml") -> Path:
    folder = flow_copy(tmp_path)
    path = folder / file
    text = path.read_text(encoding="utf-8")
    assert old in text, f"test edit does not apply: {old!r}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return folder / "12348.yaml"


def _messages(path: Path) -> list[str]:
    return [str(p) for p in validate_file(path, service_types=SERVICES)]


def _line_of(path: Path, text: str) -> int:
    lines = path.read_text(encoding="utf-8").splitlines()
    return next(i for i, line in enumerate(lines, 1) if text in line)


def test_given_the_packaged_flow_then_it_is_valid() -> None:
    assert validate_file(DEFAULT_FLOW, service_types=SERVICES) == []


@pytest.mark.parametrize(
    ("old", "new", "anchor", "expected"),
    [
        (
            "    next: emergency_notice",
            "    next: emergancy_notice",
            "next: emergancy_notice",
            "node welcome: next: unknown node 'emergancy_notice'",
        ),
        (
            "    prompt: welcome\n",
            "    prompt: welcom\n",
            "prompt: welcom",
            "node welcome: prompt: unknown prompt 'welcom'",
        ),
        (
            "    type: play\n    prompt: welcome",
            "    type: ploy\n    prompt: welcome",
            "welcome:",
            "node welcome: unknown node type 'ploy'",
        ),
        (
            "    timeout_s: 6\n    retries: 2\n    invalid_prompt: invalid-input\n"
            "    on_failure: to_agent\n\n  # 1",
            "    retries: 2\n    invalid_prompt: invalid-input\n    on_failure: to_agent\n\n  # 1",
            "  main_menu:",
            "node main_menu: menu has no timeout handling",
        ),
        (
            '    options: {"1": wage_arrears, "2": legal_aid}\n    timeout_s: 6\n    retries: 2\n'
            "    invalid_prompt: invalid-input\n    on_failure: to_agent",
            '    options: {"1": wage_arrears, "2": legal_aid}\n    timeout_s: 6\n    retries: 2\n'
            "    invalid_prompt: invalid-input",
            "  aid_menu:",
            "node aid_menu: menu has no invalid-input handling",
        ),
        (
            '    options: {"1": wage_arrears, "2": legal_aid}',
            '    options: {"1": wage_arrears, "2": legal_aid, "0": mediation}',
            '"0": mediation',
            "node aid_menu: options.0: key '0' is the operator key",
        ),
        (
            "    service: notary",
            "    service: notarry",
            "service: notarry",
            "node notary: service: unknown service type 'notarry'",
        ),
        (
            "  enabled: [zh-CN, en]",
            "  enabled: [zh-CN, en, bo]",
            "    prompt: emergency-notice",
            "node emergency_notice: prompt: prompt 'emergency-notice' has no recording for "
            "language 'bo'",
        ),
    ],
)
def test_given_a_broken_flow_then_the_expected_problem_with_its_line(
    tmp_path: Path, old: str, new: str, anchor: str, expected: str
) -> None:
    path = _edit(tmp_path, old, new)
    messages = _messages(path)
    line = _line_of(path, anchor)
    hits = [m for m in messages if expected in m]
    assert hits, messages
    assert hits[0].startswith(f"{path}:{line}: "), (hits[0], line)


def _add_nodes(tmp_path: Path, yaml_nodes: str, *, old: str = "", new: str = "") -> Path:
    folder = flow_copy(tmp_path)
    path = folder / "12348.yaml"
    text = path.read_text(encoding="utf-8")
    if old:
        assert old in text
        text = text.replace(old, new, 1)
    path.write_text(text + yaml_nodes, encoding="utf-8")
    return path


def test_given_a_node_nothing_leads_to_then_unreachable(tmp_path: Path) -> None:
    path = _add_nodes(tmp_path, "  orphan:\n    type: hangup\n")
    line = _line_of(path, "  orphan:")
    assert _messages(path) == [
        f"{path}:{line}: node orphan: unreachable: no entry or other node leads here"
    ]


def test_given_a_loop_that_never_ends_then_refused(tmp_path: Path) -> None:
    loop = (
        "  loop_a:\n    type: play\n    prompt: welcome\n    next: loop_b\n"
        "  loop_b:\n    type: set\n    service: legal_aid\n    next: loop_a\n"
    )
    path = _add_nodes(tmp_path, loop, old="    closed: after_hours_menu", new="    closed: loop_a")
    messages = [m for m in _messages(path) if "loop without" in m]
    line = _line_of(path, "  loop_a:")
    assert messages == [
        f"{path}:{line}: node loop_a: loop without an exit: loop_a → loop_b → loop_a never "
        "reaches a queue, transfer, callback, survey or hang-up"
    ]


def test_given_a_loop_without_caller_input_then_refused_even_with_an_exit(tmp_path: Path) -> None:
    loop = (
        "  again:\n    type: business_hours\n    open: again_play\n    closed: to_agent\n"
        "  again_play:\n    type: play\n    prompt: welcome\n    next: again\n"
    )
    path = _add_nodes(tmp_path, loop, old="    next: choose_language", new="    next: again")
    messages = [m for m in _messages(path) if "loop without" in m]
    assert (
        len(messages) == 1
        and "loop without caller input: again → again_play → again" in (messages[0])
    )


def test_given_unknown_transfer_target_then_refused(tmp_path: Path) -> None:
    node = '  to_12346:\n    type: transfer\n    target: "12346"\n'
    path = _add_nodes(tmp_path, node, old='"5": complaint', new='"5": to_12346')
    messages = _messages(path)
    assert any(
        "node to_12346: target: unknown transfer '12346' (transfers: 12345, 110, 119, 120)" in m
        for m in messages
    ), messages


def test_given_every_problem_then_all_are_reported_together(tmp_path: Path) -> None:
    path = _edit(tmp_path, "    next: emergency_notice", "    next: nowhere")
    text = path.read_text(encoding="utf-8").replace("prompt: survey-thanks", "prompt: thanks")
    path.write_text(text, encoding="utf-8")
    messages = _messages(path)
    assert any("unknown node 'nowhere'" in m for m in messages)
    assert any("unknown prompt 'thanks'" in m for m in messages)


def test_given_shape_errors_then_each_names_its_key(tmp_path: Path) -> None:
    path = _edit(tmp_path, "    timeout_s: 4\n", "    timeout_s: -4\n    colour: red\n")
    messages = _messages(path)
    line = _line_of(path, "timeout_s: -4")
    assert f"{path}:{line}: node choose_language: timeout_s: must be greater than 0" in messages
    line = _line_of(path, "colour: red")
    assert f"{path}:{line}: node choose_language: colour: unknown key" in messages


def test_given_a_bad_catalogue_then_its_own_file_and_line(tmp_path: Path) -> None:
    path = _edit(
        tmp_path, "    audio: hotline/welcome", "    audio: ../../etc/passwd", file="prompts.yaml"
    )
    catalogue = path.parent / "prompts.yaml"
    line = _line_of(catalogue, "../../etc/passwd")
    assert _messages(path) == [
        f"{catalogue}:{line}: prompts.welcome.audio: must be an audio file name without "
        "extension (letters, digits, _, -, /)"
    ]


def test_given_catalogue_path_outside_the_flow_folder_then_refused(tmp_path: Path) -> None:
    path = _edit(tmp_path, "prompts: prompts.yaml", "prompts: ../../secrets.yaml")
    assert "prompts: must be a .yaml file name in the flow's folder (no path)" in _messages(path)[0]


# --- hostile files --------------------------------------------------------------------------------


def _refused(path: Path, expected: str) -> str:
    start = time.monotonic()
    with pytest.raises(FlowError) as info:
        load_flow(path)
    assert time.monotonic() - start < 2.0, "a hostile file must be refused quickly"
    message = str(info.value)
    assert expected in message, message
    assert message.startswith(str(path))
    return message


def test_given_a_huge_file_then_refused_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    path.write_text("nodes:\n" + "  x: " + "a" * (600 * 1024) + "\n", encoding="utf-8")
    _refused(path, "file larger than 512 KB: refused")


def test_given_a_billion_laughs_bomb_then_refused_without_expanding(tmp_path: Path) -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for n in range(ord("b"), ord("j")):
        prev = chr(n - 1)
        lines.append(f"{chr(n)}: &{chr(n)} [" + ",".join([f"*{prev}"] * 9) + "]")
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    _refused(path, "1: anchors and aliases (&name, *name) are not allowed in flow files")


def test_given_deep_nesting_then_refused_without_recursion(tmp_path: Path) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text("x: " + "[" * 100_000 + "]" * 100_000 + "\n", encoding="utf-8")
    _refused(path, "nested deeper than 12 levels: refused")


def test_given_control_characters_in_ids_then_refused_with_a_clear_message(tmp_path: Path) -> None:
    path = _edit(
        tmp_path,
        "  welcome:\n    type: play\n    prompt: welcome",
        '  "wel\\x1bcome":\n    type: play\n    prompt: "wel\\u0007come"',
    )
    message = _refused(
        path, "must be a node id: lowercase letters, digits, _ or - (max 48), no control characters"
    )
    assert "must be a prompt id" in message
    assert "\x1b" not in message and "\x07" not in message  # nothing raw reaches a terminal


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"\xff\xfe\x00garbage", "1: not UTF-8 text"),
        (b"a: [1, 2\n", "not valid YAML"),
        (b"a: 1\na: 2\n", "2: a: duplicate key"),
        (b"--- {a: 1}\n--- {b: 2}\n", "more than one YAML document"),
        (b"", "the file is empty"),
        (b"- just\n- a list\n", "the file must be a mapping"),
        (b"a: !!python/object:os.system echo\n", "not valid YAML"),
    ],
)
def test_given_garbage_then_refused_with_a_clear_error(
    tmp_path: Path, content: bytes, expected: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_bytes(content)
    _refused(path, expected)


def test_given_a_missing_file_then_one_line(tmp_path: Path) -> None:
    _refused(tmp_path / "nope.yaml", "cannot read the file")


# --- command line ---------------------------------------------------------------------------------


def test_given_valid_and_invalid_files_when_cli_validates_then_problems_and_exit_code(
    tmp_path: Path,
) -> None:
    from callcenter.cli import cli

    bad = _edit(tmp_path / "bad", "    next: emergency_notice", "    next: nowhere")
    runner = CliRunner()
    ok = runner.invoke(cli, ["ivr", "validate", str(DEFAULT_FLOW)])
    assert ok.exit_code == 0 and "OK (version" in ok.output
    result = runner.invoke(cli, ["ivr", "validate", str(DEFAULT_FLOW), str(bad)])
    assert result.exit_code == 1
    line = _line_of(bad, "next: nowhere")
    assert f"{bad}:{line}: node welcome: next: unknown node 'nowhere'" in result.output
    assert f"{bad}: INVALID (2 problem(s))" in result.output  # + emergency_notice unreachable


def test_given_cli_show_then_nodes_and_prompts_are_listed() -> None:
    from callcenter.cli import cli

    result = CliRunner().invoke(cli, ["ivr", "show"])
    assert result.exit_code == 0, result.output
    assert "main_menu [menu] 「法律咨询请按1" in result.output
    assert "operator key 0 → to_agent" in result.output


def test_given_a_menu_three_levels_deep_then_refused(tmp_path: Path) -> None:
    deep = (
        '  deep_menu:\n    type: menu\n    prompt: aid-menu\n    options: {"1": legal_aid}\n'
        "    timeout_s: 5\n    on_failure: to_agent\n"
    )
    path = _add_nodes(tmp_path, deep, old='"4": consult}', new='"4": consult, "5": deep_menu}')
    line = _line_of(path, "  deep_menu:")
    assert _messages(path) == [
        f"{path}:{line}: node deep_menu: menu level 3 is deeper than limits.max_menu_depth (2): "
        "main_menu → consult_menu → deep_menu"
    ]


def test_given_a_typo_in_next_then_only_the_typo_and_where_the_flow_broke(tmp_path: Path) -> None:
    path = _edit(tmp_path, "    next: emergency_notice", "    next: nowhere")
    messages = _messages(path)
    assert len(messages) == 2, messages
    assert "node emergency_notice: unreachable" in messages[1]


def test_given_the_packaged_flow_then_renderer_settings_carry_transfers_and_virtual_hold() -> None:
    settings = load_flow(DEFAULT_FLOW).dialplan_settings()
    assert [t[0] for t in settings.transfers] == ["12345", "110", "119", "120"]
    assert ("110", "110", "trunk-emergency") in settings.transfers
    assert settings.periodic_announce == "hotline/virtual-hold-offer" and settings.exit_key == "1"
    assert settings.announce_position and settings.announce_holdtime
