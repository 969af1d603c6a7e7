"""The simulator's FastAGI side: plays Asterisk's part against our FastAGI server (traces 06/06b).

Asterisk is the FastAGI *client*: it connects, sends the ``agi_*`` environment block (one
``key: value`` line each, LF, then a blank line), then answers each command line with a result
line.  :class:`FastAgiSession` does the same for one simulated caller:

* ``GET DATA`` returns the digits the caller chose (``200 result=1``), or ``200 result=
  (timeout)`` when the caller presses nothing;
* when the caller hangs up during a command (:attr:`AgiCaller.hang_up_during`), that command
  gets ``200 result=-1`` and the line ``HANGUP`` follows (06b); afterwards commands that need
  the channel get ``511 Command Not Permitted on a dead channel or intercept routine`` while
  variable and database commands are still answered;
* unknown commands get ``510 Invalid or unknown command``; a known command without its
  arguments gets the ``520-`` usage block.

Command durations (prompts, ``WAIT FOR DIGIT``) are not waited for: the session answers at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field

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


@dataclass
class AgiCaller:
    """What the simulated caller does during the AGI session."""

    digits: str = "1"
    """Keys pressed when the script asks (GET DATA); empty: the caller presses nothing."""
    hang_up_during: str | None = None
    """Hang up while this command runs (e.g. ``GET DATA``); None: stay to the end."""


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
    hung_up: bool = False
    choice: str | None = None
    """Digits returned by the last successful GET DATA."""
    failed: bool = False

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
            self.hung_up = True
            return "200 result=-1\nHANGUP\n"
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
            "GET DATA": self._get_data,
            "WAIT FOR DIGIT": lambda a: _ok(0),
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

    def _answer_channel(self) -> str:
        self.channel.state = 6
        return _ok(0)

    def _hang_up(self) -> str:
        self.hung_up = True
        return _ok(1)

    def _value(self, name: str) -> str | None:
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
        self.channel.variables[args[0]] = args[1]
        return _ok(1)

    def _stream_file(self, args: list[str]) -> str:
        if not args:
            return _STREAM_FILE_USAGE
        return f"200 result=0 endpos={_ENDPOS}\n"

    def _get_data(self, args: list[str]) -> str:
        if not args:
            return _usage()
        limit = int(args[2]) if len(args) > 2 and args[2].isdigit() else 1024
        digits = self.caller.digits[:limit]
        if not digits:
            return "200 result= (timeout)\n"
        self.choice = digits
        return f"200 result={digits}\n"

    def _exec(self, args: list[str]) -> str:
        if not args:
            return _usage()
        return _ok(0) if args[0].lower() in _KNOWN_APPS else "200 result=-2\n"

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
