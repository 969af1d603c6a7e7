"""FastAGI server: where Asterisk hands a call to the platform (``AGI(agi://host:4573/ivr?…)``).

Built on panoramisk's ``fast_agi`` result parser and route table, but with our own connection
handler, because panoramisk 1.4's ``Application.handler``:

* matches routes on the whole ``agi_network_script`` including the query string, so
  ``ivr?city=330400`` (trace 06) finds no route;
* loops forever when the peer closes before the blank line (``read()`` keeps returning ``b""``);
* decodes strictly as UTF-8, so a GBK caller name (trace 12) kills the session;
* writes commands as given, so a CR/LF inside a value would inject a second AGI command.

Here the environment is read with a size and time limit, decoded losslessly, routes match on
the path alone (the query is parsed into :attr:`AgiRequest.query`), every command is checked
for control characters, and a hang-up (``200 result=-1`` or ``HANGUP``, trace 06b) becomes
:class:`AgiHangup` so a route can stop cleanly at any step.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from panoramisk.utils import parse_agi_result

from callcenter.ami.codec import display_text

log = logging.getLogger(__name__)

CLOSE_GRACE_S = 10.0
"""How long shutdown waits for open sessions to end before cancelling them."""
MAX_ENV_BYTES = 16 * 1024
"""A real environment block is < 1 KB (trace 06); anything far larger is not Asterisk."""
MAX_LINE_BYTES = 8 * 1024
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

Route = Callable[["AgiRequest"], Awaitable[None]]


class AgiError(Exception):
    """A FastAGI command failed; ``result`` is the parsed answer."""

    def __init__(self, message: str, result: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.result = result or {}


class AgiHangup(AgiError):
    """The caller hung up: stop the script, nothing more can be played."""


def _decode(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


@dataclass(slots=True)
class AgiRequest:
    """One FastAGI session: the environment, the script's query, and a command channel."""

    env: dict[str, str]
    path: str
    query: dict[str, str]
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    timeout: float = 30.0
    hung_up: bool = False
    log: list[str] = field(default_factory=list)

    @property
    def args(self) -> list[str]:
        """Dialplan arguments ``agi_arg_1``… in order."""
        out, n = [], 1
        while f"agi_arg_{n}" in self.env:
            out.append(self.env[f"agi_arg_{n}"])
            n += 1
        return out

    def text(self, name: str) -> str:
        """An environment value as clean display text (caller names may not be UTF-8)."""
        return display_text(self.env.get(name, ""))

    async def command(self, *words: str) -> dict[str, Any]:
        """Send one AGI command; :class:`AgiHangup` when the channel is gone."""
        for word in words:
            if _CONTROL.search(word):
                raise AgiError(f"refused AGI command {words[0]!r}: control character in argument")
        line = " ".join(_quote(w) for w in words)
        try:
            self.writer.write(line.encode("utf-8", "surrogateescape") + b"\n")
            await self.writer.drain()
        except ConnectionError as exc:  # the socket is gone: for the route, a hang-up
            self.hung_up = True
            raise AgiHangup(f"AGI connection lost during {words[0]}: {exc}") from exc
        result = await self._result()
        self.log.append(f"{words[0]} -> {result.get('status_code', result.get('error'))}")
        if result.get("error") in ("AGIResultHangup", "AGIAppError"):
            self.hung_up = True
            raise AgiHangup(f"caller hung up during {words[0]}", result)
        if "error" in result:
            raise AgiError(f"AGI {words[0]} failed: {result.get('msg') or result['error']}", result)
        return result

    async def _result(self) -> dict[str, Any]:
        line = await self._line()
        result: dict[str, Any] = parse_agi_result(line)
        while result.get("status_code") == 100:
            result = parse_agi_result(await self._line())
        if result.get("error") == "AGIUsageError":  # 520- … multi-line usage text
            while line and not line.startswith("520 "):
                line = await self._line()
        return result

    async def _line(self) -> str:
        try:
            raw = await asyncio.wait_for(self.reader.readline(), self.timeout)
        except TimeoutError:
            raise AgiError(f"no AGI answer within {self.timeout:g} s") from None
        if not raw:
            self.hung_up = True
            raise AgiHangup("AGI connection closed by Asterisk")
        return _decode(raw[:MAX_LINE_BYTES]).rstrip("\n")

    async def result_value(self, *words: str) -> str:
        """``200 result=1 (value)`` → ``value``; ``result=0`` (unset) → ``""``."""
        result = await self.command(*words)
        value, data = result.get("result", ("", ""))
        return str(data) if str(value) == "1" else ""

    async def set_variable(self, name: str, value: str) -> None:
        await self.command("SET", "VARIABLE", name, value)


def _quote(word: str) -> str:
    if word and not re.search(r'[\s"\\]', word):
        return word
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


async def read_environment(reader: asyncio.StreamReader, timeout: float = 5.0) -> dict[str, str]:
    """The ``agi_*: value`` block up to the blank line, bounded in size and time."""
    env: dict[str, str] = {}
    size = 0
    async with asyncio.timeout(timeout):
        while True:
            raw = await reader.readline()
            if not raw:
                raise AgiError("connection closed before the AGI environment was complete")
            size += len(raw)
            if size > MAX_ENV_BYTES:
                raise AgiError(f"AGI environment larger than {MAX_ENV_BYTES} bytes")
            line = _decode(raw).rstrip("\r\n")
            if not line:
                return env
            key, sep, value = line.partition(": ")
            if sep and key.startswith("agi_"):
                env[key] = value


def split_script(script: str) -> tuple[str, dict[str, str]]:
    """``ivr?city=330400&node=js1`` → (``ivr``, {city: 330400, node: js1})."""
    path, _, query = script.partition("?")
    parsed = parse_qs(query, keep_blank_values=True, max_num_fields=20)
    return path.strip("/"), {k: v[0] for k, v in parsed.items()}


class AgiServer:
    """Routes by script path; one task per session; nothing a peer sends can crash it."""

    def __init__(self, *, command_timeout: float = 30.0) -> None:
        self.routes: dict[str, Route] = {}
        self.command_timeout = command_timeout
        self.sessions = 0
        self.failures = 0
        self._server: asyncio.Server | None = None
        self._open: dict[asyncio.Task[Any], asyncio.StreamWriter] = {}

    def add_route(self, path: str, route: Route) -> None:
        if path in self.routes:
            raise ValueError(f"FastAGI route {path!r} exists already")
        self.routes[path] = route

    async def start(self, host: str, port: int) -> int:
        self._server = await asyncio.start_server(self._handle, host, port)
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self, grace: float = CLOSE_GRACE_S) -> None:
        """Stop listening, hang up every open session and wait for its route to end.

        Python 3.11's ``wait_closed`` does not wait for handlers; a route still running after
        shutdown would write through a disposed engine (and leak the connection it opens).
        Hanging up makes the route's next command fail; a database write in progress still
        finishes. A route not done after ``grace`` seconds is cancelled (logged).
        """
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        sessions = dict(self._open)
        for writer in sessions.values():
            writer.close()
        if not sessions:
            return
        _, late = await asyncio.wait(sessions, timeout=grace)
        for task in late:
            log.error("FastAGI: a session still running after %g s at shutdown: cancelled", grace)
            task.cancel()
        await asyncio.gather(*sessions, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.sessions += 1
        task = asyncio.current_task()
        if task is not None:
            self._open[task] = writer
        try:
            await self._session(reader, writer)
        except AgiHangup as exc:
            log.info("FastAGI: %s", exc)
        except (AgiError, OSError, TimeoutError) as exc:
            self.failures += 1
            log.warning("FastAGI session failed: %s", exc)
        except Exception:
            self.failures += 1
            log.exception("FastAGI route crashed")
        finally:
            if task is not None:
                self._open.pop(task, None)
            writer.close()
            try:
                await writer.wait_closed()
            except OSError:
                pass

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        env = await read_environment(reader)
        path, query = split_script(env.get("agi_network_script", ""))
        route = self.routes.get(path)
        if route is None:
            raise AgiError(f"no FastAGI route for {display_text(path)!r}")
        request = AgiRequest(env, path, query, reader, writer, timeout=self.command_timeout)
        await route(request)
