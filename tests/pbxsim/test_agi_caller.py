"""Scripted FastAGI callers: each input kind answered as res_agi.c answers it, over sockets."""

from __future__ import annotations

import asyncio
import wave
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from callcenter.agi.server import AgiHangup, AgiRequest, AgiServer
from callcenter.pbxsim.agi_caller import AgiCaller, ScriptError, parse_input
from callcenter.pbxsim.fastagi_client import DEAD, FastAgiSession
from callcenter.pbxsim.model import Channel

SENTINEL = "NOOP sentinel"


def _channel() -> Channel:
    return Channel(
        name="PJSIP/trunk-00000001",
        uniqueid="1795200000.1",
        linkedid="1795200000.1",
        caller_num="13805730001",
        caller_name="张三",
        context="from-trunk",
        exten="12348",
    )


@asynccontextmanager
async def _script_server(commands: list[str], answers: list[list[str]]) -> AsyncIterator[int]:
    """A raw FastAGI server: sends each command, then a NOOP, and keeps the answer lines that
    came before the NOOP's (``200 result=-1`` plus ``HANGUP``, or a 520 block, are several)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\n\n")
        for command in commands:
            writer.write(f"{command}\n{SENTINEL}\n".encode())
            await writer.drain()
            lines = [(await reader.readline()).decode().rstrip("\n")]
            while lines[-1].startswith("520-"):
                lines.append((await reader.readline()).decode().rstrip("\n"))
            while (line := (await reader.readline()).decode().rstrip("\n")) != "200 result=0":
                lines.append(line)
            answers.append(lines)
        writer.close()
        await writer.wait_closed()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield int(srv.sockets[0].getsockname()[1])
    finally:
        srv.close()
        await srv.wait_closed()


async def converse(
    caller: AgiCaller, commands: list[str], *, sounds_dir: Path | None = None
) -> tuple[FastAgiSession, list[list[str]]]:
    session = FastAgiSession(_channel(), "agi://127.0.0.1/ivr", (), caller, sounds_dir=sounds_dir)
    answers: list[list[str]] = []
    async with _script_server(commands, answers) as port:
        await asyncio.wait_for(session.run("127.0.0.1", port), 10)
    assert len(answers) == len(commands)
    return session, answers


def _wav_info(path: Path) -> tuple[int, int, int, int]:
    with wave.open(str(path), "rb") as wav:
        return wav.getnchannels(), wav.getsampwidth(), wav.getframerate(), wav.getnframes()


# --------------------------------------------------------------------------- keys


async def test_given_typed_ahead_keys_when_two_menus_ask_then_each_gets_its_key() -> None:
    caller = AgiCaller(inputs=["21"])
    session, answers = await converse(
        caller, ["GET DATA main 5000 1", "GET DATA sub 5000 1", "GET DATA again 5000 1"]
    )
    assert answers == [["200 result=2"], ["200 result=1"], ["200 result= (timeout)"]]
    assert session.choice == "1" and session.inputs_left == []


async def test_given_fewer_digits_than_max_when_get_data_then_timeout_like_asterisk() -> None:
    caller = AgiCaller(inputs=["21", "13800000000#", "#", "123456"])
    _, answers = await converse(
        caller,
        [
            "GET DATA read-id 5000 4",
            "GET DATA read-phone 5000 11",
            "GET DATA read-any 5000 4",
            "GET DATA read-two 5000 2",
            "GET DATA read-rest 5000 2",
        ],
    )
    assert answers == [
        ["200 result=21 (timeout)"],
        ["200 result=13800000000"],  # max reached: the # stays typed ahead ...
        ["200 result=#"],  # ... and is what the next GET DATA gets (its own # input follows)
        ["200 result=#"],
        ["200 result=12"],
    ]


async def test_given_no_input_or_speech_when_digit_commands_then_timeout_results() -> None:
    caller = AgiCaller(inputs=["", "say:sil:0.5", "", "5"])
    _, answers = await converse(
        caller,
        ["WAIT FOR DIGIT 3000", "GET DATA menu 3000 1", "GET OPTION menu 12 3000",
         "WAIT FOR DIGIT 3000", "WAIT FOR DIGIT 3000"],
    )  # fmt: skip
    assert answers == [
        ["200 result=0"],
        ["200 result= (timeout)"],
        ["200 result=0 endpos=3404"],
        ["200 result=53"],
        ["200 result=0"],  # inputs ran out: the caller presses nothing
    ]


async def test_given_escape_digits_when_stream_file_then_only_accepted_keys_interrupt() -> None:
    caller = AgiCaller(inputs=["9", "1"])
    session, answers = await converse(
        caller,
        [
            'STREAM FILE welcome ""',  # no escape digits: plays to the end, takes nothing
            "STREAM FILE notice 0",  # 9 is not an escape digit: not taken
            "GET OPTION menu 12 3000",  # takes 9: ignored by GET OPTION
            "CONTROL STREAM FILE menu 123",  # takes 1
            "STREAM FILE bye 0",
        ],
    )
    assert answers == [
        ["200 result=0 endpos=3404"],
        ["200 result=0 endpos=3404"],
        ["200 result=0 endpos=3404"],
        ["200 result=49 endpos=1600"],
        ["200 result=0 endpos=3404"],
    ]
    assert session.prompts == ["welcome", "notice", "menu", "menu", "bye"]


# --------------------------------------------------------------------------- hang-up


@pytest.mark.parametrize(
    ("command", "result"),
    [
        ("GET DATA menu 5000 1", "200 result=-1"),
        ("WAIT FOR DIGIT 5000", "200 result=-1"),
        ("GET OPTION menu 12 5000", "200 result=-1 endpos=0"),
        ("RECORD FILE /nonexistent/x wav # 5000 0 s=2", "200 result=-1 (hangup) endpos=0"),
    ],
)
async def test_given_hangup_input_when_command_waits_then_minus_one_and_hangup_line(
    command: str, result: str
) -> None:
    caller = AgiCaller(inputs=["hangup", "1"])
    session, answers = await converse(
        caller,
        ['STREAM FILE welcome "0"', command, "STREAM FILE beep 1", "GET VARIABLE CALLERID(num)"],
    )
    assert answers == [
        ["200 result=0 endpos=3404"],  # a prompt does not take the hang-up
        [result, "HANGUP"],
        [DEAD],
        ["200 result=1 (13805730001)"],  # variables still answered on a dead channel (06b)
    ]
    assert session.hung_up and session.prompts[-1] != "beep"


async def test_given_old_hang_up_during_field_then_it_still_works() -> None:
    caller = AgiCaller(digits="1", hang_up_during="WAIT FOR DIGIT")
    session, answers = await converse(caller, ["GET DATA m 5000 1", "WAIT FOR DIGIT 100"])
    assert answers == [["200 result=1"], ["200 result=-1", "HANGUP"]]
    assert session.hung_up and session.choice == "1"


# --------------------------------------------------------------------------- RECORD FILE


async def test_given_speech_when_record_file_then_wav_written_and_timeout_result(
    tmp_path: Path,
) -> None:
    caller = AgiCaller(inputs=["say:sil:0.3,欠薪:0.8,sil:0.6"])
    base = tmp_path / "1795200000.1-speech"
    session, answers = await converse(caller, [f"RECORD FILE {base} wav # 10000 0 s=2"])
    path = Path(f"{base}.wav")
    channels, width, rate, frames = _wav_info(path)
    assert (channels, width, rate) == (1, 2, 8000)
    assert abs(frames - 1.7 * 8000) <= 800
    assert answers == [[f"200 result=0 (timeout) endpos={frames}"]]
    assert session.recordings == [path]


async def test_given_time_limit_shorter_than_speech_then_recording_cut_at_the_limit(
    tmp_path: Path,
) -> None:
    caller = AgiCaller(inputs=["say:sil:3"])
    _, answers = await converse(caller, [f"RECORD FILE {tmp_path}/cut wav # 1000"])
    assert _wav_info(tmp_path / "cut.wav")[3] == 8000
    assert answers == [["200 result=0 (timeout) endpos=8000"]]


async def test_given_escape_key_or_silence_when_record_file_then_dtmf_or_timeout(
    tmp_path: Path,
) -> None:
    caller = AgiCaller(inputs=["#", "", "1"])
    _, answers = await converse(
        caller,
        [
            f"RECORD FILE {tmp_path}/a wav # 10000 0 s=3",
            f"RECORD FILE {tmp_path}/b wav # 10000 0 s=3",
            f"RECORD FILE {tmp_path}/c sln # 2000",  # 1 is no escape key: ignored
        ],
    )
    assert answers == [
        ["200 result=35 (dtmf) endpos=4000"],
        ["200 result=0 (timeout) endpos=8000"],  # silence detector: 1 s of silence kept
        ["200 result=0 (timeout) endpos=16000"],  # no detector: the whole time limit
    ]
    assert (tmp_path / "c.sln").stat().st_size == 32000


async def test_given_unwritable_target_when_record_file_then_writefile_and_no_file(
    tmp_path: Path,
) -> None:
    caller = AgiCaller(inputs=["say:sil:0.5", "say:sil:0.5", "say:sil:0.5"])
    session, answers = await converse(
        caller,
        [
            f"RECORD FILE {tmp_path}/missing/x wav # 5000",
            f"RECORD FILE {tmp_path}/y mp3 # 5000",
            "RECORD FILE relative wav # 5000",
            "RECORD FILE x wav #",
        ],
    )
    assert answers[:3] == [["200 result=-1 (writefile)"]] * 3
    assert answers[3][0].startswith("520-") and answers[3][-1] == "520 End of proper usage."
    assert session.recordings == [] and list(tmp_path.iterdir()) == []


async def test_given_sounds_dir_when_relative_record_file_then_written_there(
    tmp_path: Path,
) -> None:
    (tmp_path / "ivr").mkdir()
    caller = AgiCaller(inputs=["say:sil:0.25"])
    session, answers = await converse(caller, ["RECORD FILE ivr/q wav # 5000"], sounds_dir=tmp_path)
    assert answers == [["200 result=0 (timeout) endpos=2000"]]
    assert session.recordings == [tmp_path / "ivr" / "q.wav"]


# --------------------------------------------------------------------------- prompts, errors


async def test_given_playback_commands_then_prompts_lists_sounds_in_order() -> None:
    caller = AgiCaller(inputs=["1", "", "hangup"])
    session, _ = await converse(
        caller,
        [
            "ANSWER",
            'STREAM FILE hotline/welcome ""',
            "GET DATA hotline/menu 5000 1",
            "GET OPTION hotline/confirm 12 3000",
            'CONTROL STREAM FILE hotline/notice ""',
            'EXEC Playback "hotline/a&hotline/b,noanswer"',
            "EXEC Background hotline/c",
            'SAY DIGITS 12348 ""',
            "WAIT FOR DIGIT 1000",
            'STREAM FILE hotline/never ""',
        ],
    )
    assert session.prompts == [
        "hotline/welcome",
        "hotline/menu",
        "hotline/confirm",
        "hotline/notice",
        "hotline/a",
        "hotline/b",
        "hotline/c",
    ]


@pytest.mark.parametrize("bad", ["abc", "1x", "say:", "hang up", "say:sil:abc", "say:sil:-1"])
def test_given_bad_input_when_caller_built_then_clear_error(bad: str) -> None:
    with pytest.raises(ScriptError, match=r"caller input|audio spec"):
        AgiCaller(inputs=["1", bad])


def test_inputs_parse_to_kinds() -> None:
    assert [parse_input(t).kind for t in ("1", "", "hangup", "say:sil:1")] == [
        "keys",
        "silence",
        "hangup",
        "say",
    ]


# --------------------------------------------------------------------------- with our server


async def test_given_speech_menu_on_agi_server_then_route_reads_the_recording(
    tmp_path: Path,
) -> None:
    """The contract's speech node: RECORD FILE into the shared volume, the platform reads it."""
    seen: dict[str, object] = {}

    async def speech(req: AgiRequest) -> None:
        base = f"{tmp_path}/{req.env['agi_uniqueid']}-q1"
        result = await req.command("RECORD", "FILE", base, "wav", "#", "8000", "0", "s=2")
        seen["result"] = result["result"]
        seen["frames"] = _wav_info(Path(f"{base}.wav"))[3]
        try:
            await req.command("GET", "DATA", "hotline/menu", "5000", "1")
        except AgiHangup:
            seen["hangup"] = True
            raise

    server = AgiServer(command_timeout=2.0)
    server.add_route("ivr", speech)
    port = await server.start("127.0.0.1", 0)
    try:
        session = FastAgiSession(
            _channel(),
            "agi://127.0.0.1/ivr?entry=main",
            (),
            AgiCaller(inputs=["say:sil:1", "hangup"]),
        )
        await asyncio.wait_for(session.run("127.0.0.1", port), 10)
    finally:
        await server.close()
    assert seen == {"result": ("0", "timeout"), "frames": 8000, "hangup": True}
    assert server.failures == 0
