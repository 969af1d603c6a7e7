"""The built-in PBX simulator's AMI side: an asyncio TCP server that talks like Asterisk 22.

What it reproduces (see ``shared/asterisk-traces/README.md``): the banner on connect; plain
``Login`` (``Authentication accepted`` then ``FullyBooted`` and ``SuccessfulAuth`` when events are
on; a failed login waits, answers ``Authentication failed`` and closes); ``Permission denied``
before login; ``Logoff``; ``Events``; ``Ping``; the ActionID echoed verbatim as the second line;
the unknown-action and missing-action errors; the 1024-byte line limit; list actions with
``EventList`` framing (QueueStatus, QueueSummary, CoreShowChannels).  Input parsing is lenient
like Asterisk's: case-insensitive keys, LF-only lines, several actions per write.

Fault controls for tests of the bridge: :meth:`AmiServer.drop_connections`,
:meth:`AmiServer.go_silent`, :meth:`AmiServer.restart`, :meth:`AmiServer.send_raw`, and
``chunk_size`` to split every write (also inside UTF-8 characters).  Extra actions can be
plugged in with :meth:`AmiServer.register_action`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from callcenter.ami.codec import MAX_LINE_BYTES, Frame, FrameDecoder
from callcenter.pbxsim import messages as m
from callcenter.pbxsim.model import Channel, Fields, Member, PbxModel, hotline_lab

__all__ = ["DEFAULT_USERS", "ActionHandler", "AmiServer", "AmiSession", "AmiUser"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AmiUser:
    username: str
    secret: str


DEFAULT_USERS = (
    AmiUser("hotline", "hotline-secret-12348"),
    AmiUser("wallboard", "wallboard-secret"),
)


@dataclass(eq=False)
class AmiSession:
    """One client connection."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    started: float
    decoder: FrameDecoder = field(
        default_factory=lambda: FrameDecoder(
            line_ending="lf", expect_banner=False, empty_frames=True
        )
    )
    user: str | None = None
    events: bool = True
    closing: bool = False
    task: asyncio.Task[None] | None = None
    write_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def session_id(self) -> str:
        return f"0x{id(self):x}"

    def address(self, which: str) -> str:
        info = self.writer.get_extra_info(which) or ("unknown", 0)
        return f"IPV4/TCP/{info[0]}/{info[1]}"

    @property
    def listens(self) -> bool:
        return self.user is not None and self.events and not self.closing


ActionHandler = Callable[[AmiSession, Frame, str | None], Awaitable[None]]


class AmiServer:
    """Asterisk-like AMI server over :class:`PbxModel`.  ``await start()`` returns the port."""

    def __init__(
        self,
        model: PbxModel | None = None,
        *,
        users: tuple[AmiUser, ...] = DEFAULT_USERS,
        host: str = "127.0.0.1",
        port: int = 0,
        auth_fail_delay: float = 1.0,
        chunk_size: int | None = None,
    ) -> None:
        self.model = model or hotline_lab()
        self.users = {u.username: u for u in users}
        self.host = host
        self.port = port
        self.auth_fail_delay = auth_fail_delay
        self.chunk_size = chunk_size
        self.silent = False
        self.sessions: set[AmiSession] = set()
        self.listeners: list[Callable[[Fields], None]] = []
        self._server: asyncio.Server | None = None
        self._actions: dict[str, ActionHandler] = {
            "ping": self._ping,
            "events": self._events,
            "queuestatus": self._queue_status,
            "queuesummary": self._queue_summary,
            "coreshowchannels": self._core_show_channels,
            "corestatus": self._core_status,
        }

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> int:
        self._server = await asyncio.start_server(
            self._serve, self.host, self.port, reuse_address=True
        )
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def close(self) -> None:
        """Stop listening and close every session."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        await self.drop_connections()

    async def restart(self) -> int:
        """Like an Asterisk restart: all sessions gone, listening again on the same port."""
        await self.close()
        return await self.start()

    async def drop_connections(self) -> None:
        """Abort every client connection (the listener stays up)."""
        sessions = list(self.sessions)
        for session in sessions:
            session.closing = True
            session.writer.transport.abort()
        tasks = [s.task for s in sessions if s.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=5)

    def go_silent(self, silent: bool = True) -> None:
        """A hung PBX: sockets stay open but nothing is answered or sent while silent."""
        self.silent = silent

    async def send_raw(self, data: bytes) -> None:
        """Write bytes as they are to every session (malformed frames, split messages...)."""
        if self.silent:
            return
        for session in list(self.sessions):
            await self._write(session, data)

    def register_action(self, name: str, handler: ActionHandler) -> None:
        self._actions[name.lower()] = handler

    # ------------------------------------------------------------------ events

    async def emit(self, fields: Fields) -> None:
        """Send an event to every logged-in session with events on (and to :attr:`listeners`).

        Listeners see every event even while the server is silent or nobody is connected:
        tests and benchmarks use them to watch the simulator without a socket.
        """
        for listener in self.listeners:
            try:
                listener(fields)
            except Exception:
                log.exception("pbxsim ami: event listener failed")
        if self.silent:
            return
        data = m.render(fields)
        for session in list(self.sessions):
            if session.listens:
                await self._write(session, data)

    async def emit_channel_event(
        self,
        name: str,
        channel: Channel,
        *extra: tuple[str, str],
        privilege: str = "call,all",
        dest: Channel | None = None,
    ) -> None:
        """Emit ``name`` for ``channel`` with the full snapshot in trace order."""
        await self.emit(
            m.channel_event(
                self.model,
                name,
                channel,
                *extra,
                privilege=privilege,
                dest=dest,
            )
        )

    async def emit_member_event(self, name: str, member: Member) -> None:
        await self.emit(m.event(self.model, name, "agent,all", *member.event_fields()))

    # ------------------------------------------------------------------ connection

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = AmiSession(reader, writer, started=self.model.clock())
        session.task = asyncio.current_task()
        self.sessions.add(session)
        try:
            await self._write(session, m.BANNER)
            await self._read_loop(session)
        except (ConnectionError, OSError) as exc:
            log.debug("pbxsim ami: session ended: %s", exc)
        finally:
            self.sessions.discard(session)
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    async def _read_loop(self, session: AmiSession) -> None:
        while not session.closing:
            data = await session.reader.read(65536)
            if not data:
                return
            for frame in session.decoder.feed(data):
                if self.silent or session.closing:
                    continue
                await self._handle(session, frame)

    async def _write(self, session: AmiSession, data: bytes) -> None:
        """Write to one session; a dead peer only ends that session, never the caller.

        The lock keeps a message whole when chunked writes of two tasks (a simulated call and
        an action handler) would otherwise interleave.
        """
        if session.writer.is_closing():
            return
        size = self.chunk_size or len(data) or 1
        try:
            async with session.write_lock:
                for start in range(0, len(data), size):
                    session.writer.write(data[start : start + size])
                    await session.writer.drain()
                    if self.chunk_size:
                        await asyncio.sleep(0.001)
        except (ConnectionError, OSError) as exc:
            log.debug("pbxsim ami: write failed: %s", exc)
            session.closing = True
            session.writer.transport.abort()

    async def reply(self, session: AmiSession, fields: Fields) -> None:
        """Send a response (or list item) to the session that asked; for action handlers."""
        await self._write(session, m.render(fields))

    async def error(self, session: AmiSession, action_id: str | None, message: str) -> None:
        """``Response: Error`` with ``Message``, the way Asterisk reports a refused action."""
        await self.reply(session, m.message_response("Error", action_id, message))

    async def ack(self, session: AmiSession, action_id: str | None, message: str | None) -> None:
        """``Response: Success`` with ``Message`` (none for actions like MixMonitor)."""
        if message is None:
            await self.reply(session, m.response("Success", action_id))
        else:
            await self.reply(session, m.message_response("Success", action_id, message))

    async def _reply(self, session: AmiSession, fields: Fields) -> None:
        await self.reply(session, fields)

    # ------------------------------------------------------------------ actions

    async def _handle(self, session: AmiSession, frame: Frame) -> None:
        action_id = frame.get("ActionID")
        name = frame.get("Action") or ""
        if any(len(line.rstrip(b"\r")) > MAX_LINE_BYTES for line in frame.raw.split(b"\n")):
            await self._error(session, action_id, "Failed to parse message: line too long")
        elif not name:
            await self._error(session, action_id, "Missing action in request")
        elif name.lower() == "login":
            await self._login(session, frame, action_id)
        elif name.lower() == "logoff":
            await self._logoff(session, action_id)
        elif session.user is None:
            await self._error(session, action_id, "Permission denied")
        elif (handler := self._actions.get(name.lower())) is not None:
            await self._run_handler(handler, session, frame, action_id)
        else:
            await self._error(session, action_id, m.UNKNOWN_ACTION.format(name))

    async def _run_handler(
        self, handler: ActionHandler, session: AmiSession, frame: Frame, action_id: str | None
    ) -> None:
        """A bug in one handler answers that action with an error; the session lives on."""
        try:
            await handler(session, frame, action_id)
        except (ConnectionError, OSError):
            raise
        except Exception:
            log.exception("pbxsim ami: action %s failed", frame.get("Action"))
            await self._error(session, action_id, "Internal error in the PBX simulator")

    async def _error(self, session: AmiSession, action_id: str | None, message: str) -> None:
        await self.error(session, action_id, message)

    async def _login(self, session: AmiSession, frame: Frame, action_id: str | None) -> None:
        if session.user is not None:
            await self._reply(
                session, m.message_response("Success", action_id, "Already authenticated")
            )
            return
        user = self.users.get(frame.get("Username") or "")
        if user is None or frame.get("Secret") != user.secret:
            await asyncio.sleep(self.auth_fail_delay)
            await self._error(session, action_id, "Authentication failed")
            session.closing = True
            return
        session.user = user.username
        session.events = (frame.get("Events") or "on").lower() != "off"
        await self._reply(
            session, m.message_response("Success", action_id, "Authentication accepted")
        )
        if session.events:
            await self._reply(session, m.fully_booted(self.model))
        await self.emit(
            m.successful_auth(
                self.model,
                user=user.username,
                session_id=session.session_id,
                local=session.address("sockname"),
                remote=session.address("peername"),
                session_start=session.started,
            )
        )

    async def _logoff(self, session: AmiSession, action_id: str | None) -> None:
        await self._reply(
            session, m.message_response("Goodbye", action_id, "Thanks for all the fish.")
        )
        session.closing = True

    async def _ping(self, session: AmiSession, frame: Frame, action_id: str | None) -> None:
        stamp = f"{self.model.clock():.6f}"
        await self._reply(
            session, m.response("Success", action_id, ("Ping", "Pong"), ("Timestamp", stamp))
        )

    async def _events(self, session: AmiSession, frame: Frame, action_id: str | None) -> None:
        session.events = (frame.get("EventMask") or "on").lower() != "off"
        state = "On" if session.events else "Off"
        await self._reply(session, m.response("Success", action_id, ("Events", state)))

    async def send_list(
        self,
        session: AmiSession,
        action_id: str | None,
        start: str,
        items: list[Fields],
        done: Fields,
    ) -> None:
        await self._reply(session, m.list_start(action_id, start))
        for item in items:
            await self._reply(session, item)
        await self._reply(session, done)

    async def _queue_status(self, session: AmiSession, frame: Frame, action_id: str | None) -> None:
        wanted, member = frame.get("Queue"), frame.get("Member")
        now = self.model.clock()
        items: list[Fields] = []
        for queue in self.model.queues.values():
            if wanted and queue.name != wanted:
                continue
            items.append(m.list_item("QueueParams", queue.params_fields(), action_id))
            for seat in queue.members:
                if not member or seat.interface == member:
                    items.append(m.list_item("QueueMember", seat.list_fields(), action_id))
            for entry in queue.entry_fields(now):
                items.append(m.list_item("QueueEntry", entry, action_id))
        done = m.list_complete("QueueStatusComplete", action_id, len(items))
        await self.send_list(session, action_id, "Queue status will follow", items, done)

    async def _queue_summary(
        self, session: AmiSession, frame: Frame, action_id: str | None
    ) -> None:
        wanted = frame.get("Queue")
        now = self.model.clock()
        items = [
            m.list_item("QueueSummary", queue.summary_fields(now), action_id)
            for queue in self.model.queues.values()
            if not wanted or queue.name == wanted
        ]
        done = m.list_complete("QueueSummaryComplete", action_id, len(items))
        await self.send_list(session, action_id, "Queue summary will follow", items, done)

    async def _core_show_channels(
        self, session: AmiSession, frame: Frame, action_id: str | None
    ) -> None:
        now = self.model.clock()
        items = [
            m.list_item_id_first("CoreShowChannel", m.core_show_channel_body(ch, now), action_id)
            for ch in self.model.channels.values()
        ]
        done = m.list_complete("CoreShowChannelsComplete", action_id, len(items))
        await self.send_list(session, action_id, "Channels will follow", items, done)

    async def _core_status(self, session: AmiSession, frame: Frame, action_id: str | None) -> None:
        started = time.gmtime(self.model.started)
        date, clock = time.strftime("%Y-%m-%d", started), time.strftime("%H:%M:%S", started)
        await self._reply(
            session,
            m.response(
                "Success",
                action_id,
                ("CoreStartupDate", date),
                ("CoreStartupTime", clock),
                ("CoreReloadDate", date),
                ("CoreReloadTime", clock),
                ("CoreCurrentCalls", str(len(self.model.channels))),
                ("CoreProcessedCalls", str(self.model.processed_calls)),
            ),
        )
