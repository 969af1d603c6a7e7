"""AMI client: panoramisk 1.4 wrapped so that its known defects cannot hurt us.

What panoramisk gives us and we keep: its ``Action`` objects, which correlate responses by
ActionID and collect ``EventList`` responses into one result, and its ``AMIProtocol`` response
table.  What we replace (see ``shared/STYLE.md``):

* decoding: our :class:`~callcenter.ami.codec.FrameDecoder` (no bytes of a UTF-8 character split
  across TCP reads are lost, bad frames are reported, not raised);
* writing: :func:`~callcenter.ami.codec.encode_action`, so CR/LF/NUL never reach the wire;
* callbacks: an event only goes onto a bounded queue (nothing runs inside ``data_received``),
  one consumer task per node applies events in order, and no exception escapes;
* liveness: a ping watchdog that forces a reconnect when replies stop;
* reconnect: exponential backoff with jitter; actions pending at a disconnect fail with
  :class:`AmiDisconnected` (panoramisk would silently re-send or forget them);
* timeouts: every action under ``wait_for(shield(...))`` and removed from the pending table on
  timeout (panoramisk leaks it); ``.success`` is checked and turned into :class:`AmiActionFailed`;
* QueueAdd, Atxfer: forced to a single reply (panoramisk's list heuristic fails on both).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from panoramisk import actions as pk_actions
from panoramisk.ami_protocol import AMIProtocol
from panoramisk.message import Message

from callcenter.ami.codec import Banner, Frame, FrameDecoder, MalformedFrame, encode_action
from callcenter.errors import ServiceUnavailable

log = logging.getLogger(__name__)

FieldValue = str | Sequence[str]

_SINGLE_REPLY = frozenset({"queueadd", "atxfer"})
"""Actions panoramisk's ``Action.multi`` heuristic gets wrong: "a message starting with 'added'
and ending with 'to queue'" matches QueueAdd's only reply ("Added interface to queue"), so the
future waits forever for list items; "…successfully queued" (Atxfer's reply) makes it read
the action's ``Async`` key, which Atxfer has not, and raise ``KeyError`` inside the protocol."""
EventHandler = Callable[[str, Frame], Awaitable[None]]
NodeHook = Callable[[str], Awaitable[None]]


class AmiError(ServiceUnavailable):
    """Base of AMI failures; ``error_id`` lets the API tell them apart."""

    error_id = "ami-error"


class AmiNotConnected(AmiError):
    error_id = "ami-not-connected"


class AmiDisconnected(AmiError):
    error_id = "ami-disconnected"


class AmiTimeout(AmiError):
    error_id = "ami-timeout"


class AmiAuthFailed(AmiError):
    error_id = "ami-auth-failed"


class AmiActionFailed(AmiError):
    """Asterisk answered ``Response: Error``; ``message`` is Asterisk's own text."""

    error_id = "ami-action-failed"
    status_code = 409


@dataclass(frozen=True, slots=True)
class AmiNodeConfig:
    name: str
    host: str
    port: int
    username: str
    secret: str
    events: bool = True
    connect_timeout: float = 5.0
    action_timeout: float = 10.0
    ping_interval: float = 10.0
    ping_timeout: float = 5.0
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    queue_size: int = 20_000


@dataclass(frozen=True, slots=True)
class AmiResponse:
    """An action's answer: the response headers and, for list actions, the item events."""

    action: str
    success: bool
    message: str
    headers: dict[str, Any]
    items: list[dict[str, Any]] = field(default_factory=list)

    def get(self, key: str, default: str | None = None) -> str | None:
        for k, v in self.headers.items():
            if k.lower() == key.lower():
                return str(v)
        return default


def _to_message(frame: Frame) -> Message:
    """A panoramisk Message for response correlation; repeated keys become lists (as it does)."""
    headers: dict[str, Any] = {}
    for key, value in frame.items():
        if key in headers:
            prev = headers[key]
            headers[key] = [*prev, value] if isinstance(prev, list) else [prev, value]
        else:
            headers[key] = value
    msg = Message(headers)
    msg.frame = frame
    return msg


def _headers(msg: Message) -> dict[str, Any]:
    return {str(k): v for k, v in msg.items()}


class _Protocol(AMIProtocol):  # type: ignore[misc]
    """panoramisk's protocol with our decoder, encoder and a no-throw ``data_received``."""

    def __init__(self, client: AmiClient) -> None:
        self.client = client
        self.decoder = FrameDecoder(on_error=self._malformed)
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self.factory = self.client
        self.log = log

    def _malformed(self, bad: MalformedFrame) -> None:
        self.client.malformed_frames += 1
        log.warning(
            "AMI node %s sent a malformed frame (%s): %r",
            self.client.name,
            bad.reason,
            bad.data[:120],
        )

    def send(self, data: Any, as_list: bool | None = None) -> asyncio.Future[Any]:
        action: pk_actions.Action = data
        fields = {k: v for k, v in action.items() if k.lower() not in ("action", "actionid")}
        wire = encode_action(action["Action"], fields, action.id)  # validates before writing
        action.as_list = as_list
        self.responses[action.id] = action
        self.transport.write(wire)
        future: asyncio.Future[Any] = action.future
        return future

    def data_received(self, data: bytes) -> None:
        try:
            frames = self.decoder.feed(data)
        except Exception:  # the decoder should never raise; never let it kill the connection
            log.exception("AMI decoder failed on node %s", self.client.name)
            return
        for frame in frames:
            try:
                self._handle(frame)
            except Exception:
                log.exception("AMI frame handling failed on node %s", self.client.name)

    def _handle(self, frame: Frame | Banner) -> None:
        if isinstance(frame, Banner):
            self.version = frame.version
            return
        msg = _to_message(frame)
        pending = self.responses.get(msg.id) if msg.id else None
        if pending is not None:
            if pending.add_message(msg):
                self.responses.pop(pending.id, None)
            return
        if frame.is_event:
            self.client._enqueue(frame)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail_pending(exc)
        if not self.lost.done():
            self.lost.set_result(None)

    def _fail_pending(self, exc: Exception | None) -> None:
        why = f": {exc}" if exc else ""
        for action in list(self.responses.values()):
            if not action.future.done():
                action.future.set_exception(
                    AmiDisconnected(
                        f"AMI node {self.client.name} disconnected before answering "
                        f"{action['Action']}{why}"
                    )
                )
        self.responses.clear()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.transport.close()


class AmiClient:
    """One connection to one Asterisk node, kept alive for the life of the process."""

    def __init__(
        self,
        config: AmiNodeConfig,
        on_event: EventHandler,
        *,
        on_connected: NodeHook | None = None,
        on_disconnected: NodeHook | None = None,
    ) -> None:
        self.config = config
        self.name = config.name
        self._on_event = on_event
        self._on_connected = on_connected
        self._on_disconnected = on_disconnected
        self._queue: asyncio.Queue[Frame] = asyncio.Queue(maxsize=config.queue_size)
        self._apply_lock = asyncio.Lock()  # events wait while on_connected resyncs the node
        self._protocol: _Protocol | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self.connected = asyncio.Event()
        self.last_pong: float | None = None
        self.connects = 0
        self.dropped_events = 0
        self.malformed_frames = 0
        self.last_error: str | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._run(), name=f"ami-{self.name}-connection"),
            asyncio.create_task(self._consume(), name=f"ami-{self.name}-consumer"),
        ]

    async def wait_connected(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self.connected.wait(), timeout)
        except TimeoutError:
            why = f" ({self.last_error})" if self.last_error else ""
            raise AmiNotConnected(
                f"AMI node {self.name} at {self.config.host}:{self.config.port} "
                f"not connected after {timeout:g} s{why}"
            ) from None

    async def close(self) -> None:
        self._closing = True
        if self._protocol is not None:
            with contextlib.suppress(AmiError, OSError):
                await self.send("Logoff", timeout=1.0)
            self._protocol.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    def force_reconnect(self, reason: str) -> None:
        """Drop the connection (the run loop reconnects); used by the watchdog and tests."""
        log.warning("AMI node %s: forcing reconnect: %s", self.name, reason)
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.abort()

    @property
    def status(self) -> dict[str, Any]:
        age = None if self.last_pong is None else round(time.monotonic() - self.last_pong, 1)
        return {
            "node": self.name,
            "connected": self.connected.is_set(),
            "last_pong_age_s": age,
            "connects": self.connects,
            "dropped_events": self.dropped_events,
            "malformed_frames": self.malformed_frames,
            "last_error": self.last_error,
        }

    # ------------------------------------------------------------------ connection loop

    async def _run(self) -> None:
        delay = self.config.backoff_initial
        while not self._closing:
            try:
                protocol = await self._connect()
                delay = self.config.backoff_initial
                await self._serve(protocol)
            except (OSError, TimeoutError, AmiError) as exc:
                self.last_error = str(exc) or type(exc).__name__
                log.warning(
                    "AMI node %s: %s",
                    self.name,
                    self.last_error.removeprefix(f"AMI node {self.name}: "),
                )
            finally:
                await self._disconnected()
            if self._closing:
                break
            sleep = delay * random.uniform(0.5, 1.5)  # noqa: S311 - jitter, not crypto
            log.info("AMI node %s: reconnecting in %.1f s", self.name, sleep)
            await asyncio.sleep(sleep)
            delay = min(delay * 2, self.config.backoff_max)

    async def _connect(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        _transport, protocol = await asyncio.wait_for(
            loop.create_connection(lambda: _Protocol(self), self.config.host, self.config.port),
            self.config.connect_timeout,
        )
        self._protocol = protocol
        fields = {"Username": self.config.username, "Secret": self.config.secret}
        fields["Events"] = "on" if self.config.events else "off"
        try:
            await self._request(protocol, "Login", fields, self.config.action_timeout)
        except AmiActionFailed as exc:
            why = exc.details.get("asterisk_message") or "no reason given"
            raise AmiAuthFailed(f"AMI node {self.name}: login refused: {why}") from None
        self.connects += 1
        self.last_pong = time.monotonic()
        self.last_error = None
        self.connected.set()
        log.info("AMI node %s connected (AMI %s)", self.name, protocol.version or "?")
        if self._on_connected is not None:
            async with self._apply_lock:
                try:
                    await self._on_connected(self.name)
                except Exception as exc:
                    # No resync means live state we cannot trust: start over with a new
                    # connection (and a new resync) rather than apply events on top of it.
                    log.exception("AMI node %s: resync after connect failed", self.name)
                    raise AmiNotConnected(
                        f"AMI node {self.name}: resync after connect failed: {exc}"
                    ) from None
        return protocol

    async def _serve(self, protocol: _Protocol) -> None:
        """Ping until the connection is lost; a missing Pong forces a reconnect."""
        while not protocol.lost.done():
            done, _ = await asyncio.wait({protocol.lost}, timeout=self.config.ping_interval)
            if done:
                break
            try:
                await self._request(protocol, "Ping", {}, self.config.ping_timeout)
                self.last_pong = time.monotonic()
            except AmiTimeout:
                self.force_reconnect(f"no Pong within {self.config.ping_timeout:g} s")
                await asyncio.wait({protocol.lost}, timeout=self.config.ping_timeout)
                break
            except AmiDisconnected:
                break
        self.last_error = self.last_error or "connection lost"

    async def _disconnected(self) -> None:
        was_connected = self.connected.is_set()
        self.connected.clear()
        if self._protocol is not None:
            self._protocol.close()
            self._protocol._fail_pending(None)
            self._protocol = None
        if was_connected and self._on_disconnected is not None:
            await self._hook(self._on_disconnected)

    async def _hook(self, hook: NodeHook) -> None:
        try:
            await hook(self.name)
        except Exception:
            log.exception("AMI node %s: connection hook failed", self.name)

    # ------------------------------------------------------------------ events

    def _enqueue(self, frame: Frame) -> None:
        """Called from data_received: only enqueue, never block or raise."""
        try:
            self._queue.put_nowait(frame)
        except asyncio.QueueFull:
            self.dropped_events += 1
            if self.dropped_events == 1 or self.dropped_events % 1000 == 0:
                log.error(
                    "AMI node %s: event queue full, %d dropped", self.name, self.dropped_events
                )

    async def _consume(self) -> None:
        while True:
            frame = await self._queue.get()
            try:
                async with self._apply_lock:
                    await self._on_event(self.name, frame)
            except Exception:
                log.exception("AMI node %s: event handler failed on %s", self.name, frame.name)
            finally:
                self._queue.task_done()

    async def drain(self) -> None:
        """Wait until every event received so far has been handled (tests, resync), and any
        resync in progress has finished: it runs under the apply lock from the moment a
        connection counts in ``connects``, possibly with no event queued behind it."""
        async with self._apply_lock:
            pass
        await self._queue.join()

    # ------------------------------------------------------------------ actions

    async def send(
        self,
        action: str,
        fields: Mapping[str, FieldValue] | None = None,
        *,
        timeout: float | None = None,
        as_list: bool | None = None,
    ) -> AmiResponse:
        """Send one action and wait for its complete answer; errors are :class:`AmiError`."""
        encode_action(action, fields or {}, "check")  # refuse CR/LF before anything else
        protocol = self._protocol
        if protocol is None or not self.connected.is_set():
            raise AmiNotConnected(f"AMI node {self.name} is not connected")
        return await self._request(
            protocol, action, fields or {}, timeout or self.config.action_timeout, as_list
        )

    async def _request(
        self,
        protocol: _Protocol,
        action: str,
        fields: Mapping[str, FieldValue],
        timeout: float,
        as_list: bool | None = None,
    ) -> AmiResponse:
        act = pk_actions.Action({"Action": action, **fields})
        if as_list is None and action.lower() in _SINGLE_REPLY:
            as_list = False
        future = protocol.send(act, as_list=as_list)
        try:
            result = await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            protocol.responses.pop(act.id, None)
            future.cancel()
            raise AmiTimeout(
                f"AMI node {self.name}: no answer to {action} within {timeout:g} s"
            ) from None
        return self._response(action, result)

    def _response(self, action: str, result: Message | list[Message]) -> AmiResponse:
        messages = result if isinstance(result, list) else [result]
        first = messages[0]
        success = bool(first.success)
        message = str(first.get("Message", ""))
        items = [_headers(m) for m in messages[1:]]
        response = AmiResponse(action, success, message, _headers(first), items)
        if not success:
            raise AmiActionFailed(
                f"AMI {action} failed on node {self.name}: {message or 'error'}",
                action=action,
                asterisk_message=message,
            )
        return response
