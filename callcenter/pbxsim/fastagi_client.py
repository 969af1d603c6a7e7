"""The simulator's FastAGI side: plays Asterisk's part against our FastAGI server (traces 06/06b).

Asterisk is the FastAGI *client*: it connects, sends the ``agi_*`` environment block (one
``key: value`` line each, LF, then a blank line), then answers each command line with a result
line.  :class:`FastAgiSession` does the same for one simulated caller, whose inputs come from
an :class:`~callcenter.pbxsim.agi_caller.AgiCaller` script (keys, no input, hang-up, speech):

* ``GET DATA <file> [timeout] [max]``: up to max digits or ``#`` -> ``200 result=21``; fewer
  digits and no ``#`` -> ``200 result=2 (timeout)``; nothing -> ``200 result= (timeout)``;
  ``#`` alone -> ``200 result=#`` (``ast_app_getdata``);
* ``WAIT FOR DIGIT``: ``200 result=<ASCII code>`` or ``200 result=0``;
* ``GET OPTION`` / ``STREAM FILE`` / ``CONTROL STREAM FILE``: ``200 result=<ASCII code>
  endpos=N`` for a key among the escape digits, else ``200 result=0 endpos=N``;
* ``RECORD FILE``: writes ``<file>.<format>`` (``wav``: 8 kHz 16-bit mono; ``sln``: raw) and
  answers ``200 result=0 (timeout) endpos=<samples>``, ``200 result=<code> (dtmf) endpos=N``,
  ``200 result=-1 (hangup) endpos=N`` or ``200 result=-1 (writefile)`` (res_agi.c);
* when the caller hangs up during a command, it gets its ``-1`` result and the line ``HANGUP``
  follows (06b); afterwards commands that need the channel get ``511 Command Not Permitted on
  a dead channel or intercept routine`` while variable and database commands are answered;
* unknown commands get ``510 Invalid or unknown command``; a known command without its
  arguments gets the ``520-`` usage block.

:attr:`FastAgiSession.prompts` lists the sounds played, :attr:`FastAgiSession.recordings` the
files written.  Command durations (prompts, timeouts) are not waited for: the session answers
at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from callcenter.pbxsim.agi_caller import RATE, SILENCE, AgiCaller, CallerInput, wav_frames
from callcenter.pbxsim.channel_actions import channel_variable
from callcenter.pbxsim.model import Channel

__all__ = ["AgiCaller", "FastAgiSession", "agi_environment", "split_agi_args"]

VERSION = "22.10.1"
DEAD = "511 Command Not Permitted on a dead channel or intercept routine"
UNKNOWN = "510 Invalid or unknown command"
_NEEDS_CHANNEL = frozenset(
    {"ANSWER", "STREAM FILE", "CONTROL STREAM FILE", "GET DATA", "GET OPTION", "WAIT FOR DIGIT",
     "SAY DIGITS", "SAY NUMBER", "SAY ALPHA", "EXEC", "RECORD FILE", "SEND TEXT"}
)  # fmt: skip
_STREAM_FILE_USAGE = (
    "520-Invalid command syntax.  Proper usage follows:\n"
    "Send the given file, allowing playback to be interrupted by the given digits, if any. "
    "Returns <literal>0</literal> if playback completes without a digit being pressed, or the "
    "ASCII numerical value of the digit if one was pressed, or <literal>-1</literal> on error or "
    "if the channel was disconnected. If musiconhold is playing before calling stream file it "
    "will be automatically stopped and will not be restarted after completion.\n"
    "It sets the following channel variables upon completion:\n"
    "<variable>PLAYBACKSTATUS</variable>: The status of the playback attempt as a text string.\n"
    "    <value>SUCCESS</value>\n"
    "    <value>FAILED</value>\n"
    "520 End of proper usage.\n"
)
_KNOWN_APPS = frozenset(
    {"playback", "background", "wait", "noop", "set", "answer", "hangup", "queue", "dial",
     "mixmonitor", "startmusiconhold", "stopmusiconhold", "read", "verbose", "goto"}
)  # fmt: skip
_VARIABLE = re.compile(r"\$\{([^}]*)\}")
_ENDPOS = 3404  # what ``beep`` reported in the lab
_INTERRUPTED_ENDPOS = 1600  # a prompt cut short by a key, 0.2 s in
_INT = re.compile(r"-?\d+")
_MAX_RECORD_S = 60.0  # RECORD FILE without a time limit: the caller stops after a minute
_KEY_AFTER_S = 0.5  # a caller who ends a recording with a key presses it this soon


def agi_environment(
    channel: Channel, request: str, args: tuple[str, ...], *, thread_id: int = 140195402962624
) -> bytes:
    """The environment block Asterisk sends first, key order as in trace 06."""
    script = request.split("/", 3)[3] if request.count("/") >= 3 else request
    lines = [
        ("agi_network", "yes"),
        ("agi_network_script", script),
        ("agi_request", request),
        ("agi_channel", channel.name),
        ("agi_language", channel.language),
        ("agi_type", channel.name.partition("/")[0]),
        ("agi_uniqueid", channel.uniqueid),
        ("agi_version", VERSION),
        ("agi_callerid", channel.caller_num),
        ("agi_calleridname", channel.caller_name),
        ("agi_callingpres", "0"),
        ("agi_callingani2", "0"),
        ("agi_callington", "0"),
        ("agi_callingtns", "0"),
        ("agi_dnid", "unknown"),
        ("agi_rdnis", "unknown"),
        ("agi_context", channel.context),
        ("agi_extension", channel.exten),
        ("agi_priority", str(channel.priority)),
        ("agi_enhanced", "0.0"),
        ("agi_accountcode", channel.account_code),
        ("agi_threadid", str(thread_id)),
        *((f"agi_arg_{n}", value) for n, value in enumerate(args, start=1)),
    ]
    text = "".join(f"{key}: {value}\n" for key, value in lines) + "\n"
    return text.encode("utf-8", "surrogateescape")


def split_agi_args(line: str) -> list[str]:
    """Split a command line like Asterisk: spaces separate, double quotes group, ``\\`` escapes."""
    out: list[str] = []
    current: list[str] | None = None
    quoted = escaped = False
    for ch in line:
        if escaped:
            current = (current or []) + [ch]
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
            current = current or []
        elif ch == " " and not quoted:
            if current is not None:
                out.append("".join(current))
            current = None
        else:
            current = (current or []) + [ch]
    if current is not None:
        out.append("".join(current))
    return out


@dataclass
class FastAgiSession:
    """One AGI session of ``channel`` against the FastAGI server at ``host:port``."""

    channel: Channel
    request: str
    args: tuple[str, ...] = ()
    caller: AgiCaller = field(default_factory=AgiCaller)
    database: dict[tuple[str, str], str] = field(default_factory=dict)
    commands: list[str] = field(default_factory=list)
    """Every command line received, in order (for tests and the IVR's decision)."""
    prompts: list[str] = field(default_factory=list)
    """Sound names played to the caller, in order (STREAM FILE, GET DATA, GET OPTION,
    CONTROL STREAM FILE, EXEC Playback/Background; ``a&b`` counts as two)."""
    recordings: list[Path] = field(default_factory=list)
    """Files written by RECORD FILE, in order."""
    sounds_dir: Path | None = None
    """Where a relative RECORD FILE name goes (Asterisk: its sounds dir); None: refused."""
    hung_up: bool = False
    choice: str | None = None
    """Digits returned by the last successful GET DATA."""
    failed: bool = False
    _pending: list[CallerInput] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        self._pending = self.caller.script()

    @property
    def inputs_left(self) -> list[CallerInput]:
        """Scripted inputs no command has taken yet."""
        return list(self._pending)

    async def run(self, host: str, port: int, *, timeout: float = 30.0) -> None:
        """Connect, send the environment, answer commands until the server closes.

        A server that cannot be reached ends the session at once with :attr:`failed` set
        (Asterisk's ``AGISTATUS=FAILURE``; the dialplan goes on).
        """
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError:
            self.failed = True
            return
        try:
            writer.write(agi_environment(self.channel, self.request, self.args))
            await writer.drain()
            while line := await asyncio.wait_for(reader.readline(), timeout):
                text = line.decode("utf-8", "surrogateescape").rstrip("\r\n")
                self.commands.append(text)
                writer.write(self.answer(text).encode("utf-8", "surrogateescape"))
                await writer.drain()
        except (ConnectionError, TimeoutError):
            pass  # a server that goes away ends the session, as it does for Asterisk
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    # ------------------------------------------------------------------ commands

    def answer(self, line: str) -> str:
        """The bytes Asterisk writes back for one command line (may be several lines)."""
        words = split_agi_args(line)
        name, handler, rest = self._lookup(words)
        if handler is None:
            return UNKNOWN + "\n"
        if self.hung_up and name in _NEEDS_CHANNEL:
            return DEAD + "\n"
        if self.caller.hang_up_during == name and not self.hung_up:
            return self._hang_up_in(name, rest)
        return handler(rest)

    def _lookup(self, words: list[str]) -> tuple[str, Callable[[list[str]], str] | None, list[str]]:
        table = self._table()
        for size in (3, 2, 1):
            name = " ".join(words[:size]).upper()
            if len(words) >= size and name in table:
                return name, table[name], words[size:]
        return "", None, words

    def _table(self) -> dict[str, Callable[[list[str]], str]]:
        return {
            "ANSWER": lambda a: self._answer_channel(),
            "HANGUP": lambda a: self._hang_up(),
            "NOOP": lambda a: _ok(0),
            "VERBOSE": lambda a: _ok(1),
            "CHANNEL STATUS": lambda a: _ok(self.channel.state),
            "GET VARIABLE": self._get_variable,
            "GET FULL VARIABLE": self._get_full_variable,
            "SET VARIABLE": self._set_variable,
            "STREAM FILE": self._stream_file,
            "CONTROL STREAM FILE": self._control_stream_file,
            "GET DATA": self._get_data,
            "GET OPTION": self._get_option,
            "WAIT FOR DIGIT": self._wait_for_digit,
            "RECORD FILE": self._record_file,
            "SAY DIGITS": lambda a: _ok(0),
            "SAY NUMBER": lambda a: _ok(0),
            "EXEC": self._exec,
            "DATABASE PUT": self._database_put,
            "DATABASE GET": self._database_get,
            "DATABASE DEL": self._database_del,
            "SET CONTEXT": lambda a: _ok(0),
            "SET EXTENSION": lambda a: _ok(0),
            "SET PRIORITY": lambda a: _ok(0),
            "ASYNCAGI BREAK": lambda a: _ok(0),
        }

    # ------------------------------------------------------------------ the caller's inputs

    def _scripted(self) -> bool:
        return self.caller.inputs is not None

    def _peek(self) -> CallerInput:
        return self._pending[0] if self._pending else SILENCE

    def _take(self) -> CallerInput:
        """The next input, for a command that waits for the caller (none left: silence)."""
        return self._pending.pop(0) if self._pending else SILENCE

    def _use_keys(self, keys: str, count: int) -> str:
        """The first ``count`` keys; the rest stays typed ahead for the next command."""
        if keys[count:]:
            self._pending.insert(0, CallerInput("keys", keys[count:]))
        return keys[:count]

    def _hangs_up_now(self) -> bool:
        return self._scripted() and self._peek().kind == "hangup"

    def _hang_up_in(self, name: str, args: list[str]) -> str:
        """The caller hangs up while ``name`` runs: its -1 result, then the ``HANGUP`` line."""
        if self._scripted() and self._peek().kind == "hangup":
            self._take()
        self.hung_up = True
        if name in ("STREAM FILE", "GET DATA", "GET OPTION", "CONTROL STREAM FILE") and args:
            self._played(args[0])
        if name in ("STREAM FILE", "GET OPTION", "CONTROL STREAM FILE"):
            return "200 result=-1 endpos=0\nHANGUP\n"
        if name == "RECORD FILE":
            return "200 result=-1 (hangup) endpos=0\nHANGUP\n"
        return "200 result=-1\nHANGUP\n"

    def _played(self, sounds: str) -> None:
        self.prompts.extend(s for s in sounds.split("&") if s)

    def _escape_key(self, escape: str) -> str | None:
        """The key the caller presses to interrupt a prompt with ``escape`` digits, taken."""
        item = self._peek()
        if not self._scripted() or item.kind != "keys" or item.value[0] not in escape:
            return None
        self._take()
        return self._use_keys(item.value, 1)

    # ------------------------------------------------------------------ handlers

    def _answer_channel(self) -> str:
        self.channel.state = 6
        return _ok(0)

    def _hang_up(self) -> str:
        self.hung_up = True
        return _ok(1)

    def _value(self, name: str) -> str | None:
        if name == "CHANNEL(language)":
            return self.channel.language
        value = channel_variable(self.channel, name)
        return value if value or name in self.channel.variables else None

    def _get_variable(self, args: list[str]) -> str:
        value = self._value(args[0]) if args else None
        return _ok(0) if value is None else f"200 result=1 ({value})\n"

    def _get_full_variable(self, args: list[str]) -> str:
        if not args:
            return _ok(0)
        expanded = _VARIABLE.sub(lambda m: self._value(m.group(1)) or "", args[0])
        return f"200 result=1 ({expanded})\n"

    def _set_variable(self, args: list[str]) -> str:
        if len(args) < 2:
            return _usage()
        if args[0] == "CHANNEL(language)":
            self.channel.language = args[1]
        self.channel.variables[args[0]] = args[1]
        return _ok(1)

    def _stream_file(self, args: list[str]) -> str:
        """``STREAM FILE <file> <escape digits> [offset]``: a key among the escape digits
        interrupts it (``result`` = the key's ASCII code)."""
        if len(args) < 2:
            return _STREAM_FILE_USAGE
        return self._playback("STREAM FILE", args)

    def _control_stream_file(self, args: list[str]) -> str:
        if len(args) < 2:
            return _usage()
        return self._playback("CONTROL STREAM FILE", args)

    def _playback(self, name: str, args: list[str]) -> str:
        self._played(args[0])
        key = self._escape_key(args[1])
        if key is not None:
            return f"200 result={ord(key)} endpos={_INTERRUPTED_ENDPOS}\n"
        return f"200 result=0 endpos={_ENDPOS}\n"

    def _get_data(self, args: list[str]) -> str:
        """``GET DATA <file> [timeout ms] [max digits]`` as ``ast_app_getdata``: up to max
        digits or ``#``; fewer digits and no ``#`` end on the timeout: ``(timeout)``."""
        if not args:
            return _usage()
        if self._hangs_up_now():
            return self._hang_up_in("GET DATA", args)
        self._played(args[0])
        limit = int(args[2]) if len(args) > 2 and args[2].isdigit() else 1024
        limit = limit or 1024
        if self._scripted():
            item = self._take()
            keys = item.value if item.kind == "keys" else ""
        else:
            keys = self.caller.digits
        if keys.startswith("#"):
            self._use_keys(keys, 1)
            return "200 result=#\n"
        end = keys.find("#")
        used = min(limit, end if end >= 0 else len(keys))
        digits = keys[:used]
        terminated = end == used < limit  # ``#`` ends the entry and is used up
        complete = used == limit or terminated
        if self._scripted():
            self._use_keys(keys, used + 1 if terminated else used)
        if digits:
            self.choice = digits
        return f"200 result={digits}\n" if complete else f"200 result={digits} (timeout)\n"

    def _get_option(self, args: list[str]) -> str:
        """``GET OPTION <file> <escape digits> [timeout]``: a key among the escape digits
        during or after the prompt; anything else is ignored (``result=0``)."""
        if len(args) < 2:
            return _usage()
        if self._hangs_up_now():
            return self._hang_up_in("GET OPTION", args)
        self._played(args[0])
        item = self._take() if self._scripted() else SILENCE
        if item.kind != "keys":
            return f"200 result=0 endpos={_ENDPOS}\n"
        key = self._use_keys(item.value, 1)
        if key not in args[1]:
            return f"200 result=0 endpos={_ENDPOS}\n"
        return f"200 result={ord(key)} endpos={_INTERRUPTED_ENDPOS}\n"

    def _wait_for_digit(self, args: list[str]) -> str:
        """``WAIT FOR DIGIT <timeout ms>``: the key's ASCII code, 0 on the timeout."""
        if not args:
            return _usage()
        if self._hangs_up_now():
            return self._hang_up_in("WAIT FOR DIGIT", args)
        item = self._take() if self._scripted() else SILENCE
        if item.kind != "keys":
            return _ok(0)
        return _ok(ord(self._use_keys(item.value, 1)))

    def _record_file(self, args: list[str]) -> str:
        """``RECORD FILE <file> <format> <escape digits> <timeout ms> [offset] [BEEP] [s=N]``.

        Writes ``<file>.<format>`` and answers as res_agi does: ``(timeout)`` when the
        recording ends (silence or time limit), ``(dtmf)`` for an escape key, ``(hangup)``,
        ``(writefile)`` when the file cannot be created (missing directory, unknown format).
        ``endpos`` is the file's length in samples.
        """
        if len(args) < 4 or not _INT.fullmatch(args[3]):
            return _usage()
        if self._hangs_up_now():
            self._write_recording(args[0], args[1], b"")
            return self._hang_up_in("RECORD FILE", args)
        item = self._take() if self._scripted() else SILENCE
        limit_s = int(args[3]) / 1000 if int(args[3]) > 0 else _MAX_RECORD_S
        silence_s = next((int(a[2:]) for a in args[4:] if re.fullmatch(r"s=\d+", a)), 0)
        key = None
        if item.kind == "keys" and item.value[0] in args[2]:
            key = self._use_keys(item.value, 1)
            pcm = _silence_pcm(min(_KEY_AFTER_S, limit_s))
        elif item.kind == "say":
            frames, rate = wav_frames(self.caller.audio(item.value))
            pcm = frames[: round(limit_s * rate) * 2]
        else:  # nothing said: the silence detector (or the time limit) ends it
            pcm = _silence_pcm(min(1.0 if silence_s else limit_s, limit_s))
        if not self._write_recording(args[0], args[1], pcm):
            return "200 result=-1 (writefile)\n"
        endpos = len(pcm) // 2
        if key is not None:
            return f"200 result={ord(key)} (dtmf) endpos={endpos}\n"
        return f"200 result=0 (timeout) endpos={endpos}\n"

    def _write_recording(self, name: str, fmt: str, pcm: bytes) -> bool:
        path = Path(f"{name}.{fmt}")
        if not path.is_absolute():
            if self.sounds_dir is None:
                return False
            path = self.sounds_dir / path
        if fmt == "wav":
            data = _wav(pcm)
        elif fmt == "sln":
            data = pcm
        else:
            return False  # no format module for it in the simulator: ast_writefile fails
        try:
            path.write_bytes(data)
        except OSError:
            return False
        self.recordings.append(path)
        return True

    def _exec(self, args: list[str]) -> str:
        if not args:
            return _usage()
        app = args[0].lower()
        if app in ("playback", "background") and len(args) > 1:
            self._played(args[1].partition(",")[0])
        return _ok(0) if app in _KNOWN_APPS else "200 result=-2\n"

    def _database_put(self, args: list[str]) -> str:
        if len(args) < 3:
            return _usage()
        self.database[(args[0], args[1])] = args[2]
        return _ok(1)

    def _database_get(self, args: list[str]) -> str:
        value = self.database.get((args[0], args[1])) if len(args) >= 2 else None
        return _ok(0) if value is None else f"200 result=1 ({value})\n"

    def _database_del(self, args: list[str]) -> str:
        found = len(args) >= 2 and self.database.pop((args[0], args[1]), None) is not None
        return _ok(1 if found else 0)


def _ok(result: int) -> str:
    return f"200 result={result}\n"


def _usage() -> str:
    return "520-Invalid command syntax.  Proper usage follows:\n520 End of proper usage.\n"


def _silence_pcm(seconds: float) -> bytes:
    return b"\0\0" * round(seconds * RATE)


def _wav(pcm: bytes) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        wav.writeframes(pcm)
    return out.getvalue()
