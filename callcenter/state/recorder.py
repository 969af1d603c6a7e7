"""``CallRecorder``: call events in, rows of the ``calls`` table out, even across a DB outage.

``handle(event)`` never blocks and never raises: it turns the event into idempotent operations
(:mod:`callcenter.state.records`) and appends them to an in-memory queue.  One writer task runs
them in order, in batches, each batch in one transaction.  When the database fails, the batch
stays at the head of the queue and is retried with capped exponential backoff -- safe because
every operation may run twice -- so a transient outage delays records but loses none.  Only a
row the database rejects for its content (``IntegrityError``/``DataError``) is dropped, after
being logged, so that one bad row cannot block every record behind it.

The queue lives in memory: records pending when the process stops are lost (``close`` tries to
flush them first and logs how many are left).  The rebuild after restart closes their calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from callcenter.ami.events import (
    CallAbandoned,
    CallAnswered,
    CallEnded,
    CallEvent,
    CallOffered,
    CallQueued,
    CallTransferred,
    IvrEntered,
    IvrLeft,
)
from callcenter.state.model import LiveCall, extension_of, item_key
from callcenter.state.records import (
    CloseMissing,
    Disposition,
    InsertCall,
    Op,
    SetAnswered,
    SetDisposition,
    SetEnded,
    SetIvrPath,
    SetQueued,
    SetRouting,
    to_datetime,
)
from callcenter.state.regions import Locate
from callcenter.state.resync import ResyncResult

__all__ = ["CallRecorder", "RecorderStats"]

log = logging.getLogger(__name__)

_PERMANENT = (IntegrityError, DataError)
_TRANSIENT = (SQLAlchemyError, OSError, TimeoutError)


def snapshot_ops(call: LiveCall) -> list[Op]:
    """Idempotent writes that bring a row up to a live call as rebuilt by a resync."""
    ops: list[Op] = [
        InsertCall(
            call.node,
            call.linkedid,
            offered_at=to_datetime(call.offered_at),
            caller_number=call.caller_number,
            caller_name=call.caller_name,
            caller_region_code=call.caller_region_code,
            called_number=None,
        )
    ]
    if call.queue and call.queued_at is not None:
        ops.append(
            SetQueued(call.node, call.linkedid, queue=call.queue, at=to_datetime(call.queued_at))
        )
    if call.answered_at is not None:
        at = to_datetime(call.answered_at)
        ops.append(SetAnswered(call.node, call.linkedid, call.queue, call.agent_extension, at))
    return ops


@dataclass(slots=True)
class RecorderStats:
    written: int = 0
    """Operations committed (an idempotent no-op counts too)."""
    failures: int = 0
    """Failed write attempts (each is retried)."""
    dropped: int = 0
    """Operations the database refused for their content."""


@dataclass(slots=True)
class _CallMemory:
    last_event: CallEvent | None = None
    ivr_open: bool = False
    ivr_path: list[str] = field(default_factory=list)


class CallRecorder:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        locate: Locate | None = None,
        clock: Callable[[], float] = time.time,
        batch_size: int = 200,
        retry_initial: float = 0.2,
        retry_max: float = 30.0,
        write_timeout: float = 15.0,
        memory: int = 10_000,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._locate = locate
        self._clock = clock
        self._batch_size = batch_size
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        self._write_timeout = write_timeout
        self._memory_size = memory
        self._calls: OrderedDict[str, _CallMemory] = OrderedDict()
        self._pending: deque[Op] = deque()
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._warn_at = 1000
        self.stats = RecorderStats()

    # ------------------------------------------------------------------ feeding

    @property
    def pending(self) -> int:
        return len(self._pending)

    def handle(self, event: CallEvent) -> None:
        """Queue the writes for one call event (in the node's order)."""
        try:
            ops = self._ops_for(event)
        except Exception:  # a bug here must not stop the AMI consumer
            log.exception("call records: cannot handle %s", type(event).__name__)
            return
        self._enqueue(ops)

    def record_routing(
        self, node: str, linkedid: str, decisions: list[dict[str, Any]], service_type: str | None
    ) -> None:
        """Store why the call went where it went (after the call's row is queued)."""
        self._enqueue([SetRouting(node, linkedid, tuple(decisions), service_type)])

    def record_ivr_path(
        self, node: str, linkedid: str, path: tuple[str, ...], language: str | None
    ) -> None:
        """Store the IVR flow's path and the caller's language (after the call's row is queued)."""
        self._enqueue([SetIvrPath(node, linkedid, path, language)])

    def record_resync(self, result: ResyncResult) -> None:
        """After a reconnect: rows for what happened meanwhile, and close calls that ended."""
        ops = [op for call in result.calls for op in snapshot_ops(call)]
        ops.append(CloseMissing(result.node, "", live=result.live, at=to_datetime(result.at)))
        self._enqueue(ops)

    def _enqueue(self, ops: Sequence[Op]) -> None:
        if not ops:
            return
        self._pending.extend(ops)
        self._idle.clear()
        self._wakeup.set()
        if len(self._pending) >= self._warn_at:
            log.warning("call records: %d writes pending (database slow or down)", self.pending)
            self._warn_at *= 10

    def _memory(self, key: str) -> _CallMemory:
        memory = self._calls.pop(key, None) or _CallMemory()
        self._calls[key] = memory
        if len(self._calls) > self._memory_size:
            self._calls.popitem(last=False)
        return memory

    def _ops_for(self, event: CallEvent) -> list[Op]:
        if event.linkedid is None:
            return []
        key = item_key(event.node, event.linkedid)
        memory = self._memory(key)
        if memory.last_event == event:
            return []
        memory.last_event = event
        at = to_datetime(event.timestamp if event.timestamp is not None else self._clock())
        node, linkedid = event.node, event.linkedid
        match event:
            case CallOffered():
                region = self._caller_region(event.caller_number)
                return [
                    InsertCall(
                        node,
                        linkedid,
                        offered_at=at,
                        caller_number=event.caller_number,
                        caller_name=event.caller_name,
                        caller_region_code=region,
                        called_number=event.called_number,
                    )
                ]
            case IvrEntered():
                memory.ivr_open = True
            case IvrLeft():
                return self._ivr_left(memory, event)
            case CallQueued():
                return [SetQueued(node, linkedid, queue=event.queue, at=at)]
            case CallAnswered():
                ext = extension_of(event.interface)
                return [SetAnswered(node, linkedid, queue=event.queue, extension=ext, at=at)]
            case CallTransferred():
                return [SetDisposition(node, linkedid, Disposition.TRANSFERRED, False)]
            case CallAbandoned():
                final = Disposition.ABANDONED if event.final else Disposition.OVERFLOWED
                return [SetDisposition(node, linkedid, final, True)]
            case CallEnded():
                self._calls.pop(key, None)
                cause = event.cause_text or (str(event.cause) if event.cause is not None else None)
                return [SetEnded(node, linkedid, at=at, cause=cause)]
        return []

    def _caller_region(self, number: str | None) -> str | None:
        """A failing geocoder costs the row its region, never the row itself."""
        if self._locate is None or not number:
            return None
        try:
            return self._locate(number)
        except Exception:
            log.exception("call records: locate() failed; recording the call without region")
            return None

    @staticmethod
    def _ivr_left(memory: _CallMemory, event: IvrLeft) -> list[Op]:
        was_open, memory.ivr_open = memory.ivr_open, False
        if not was_open or event.reason != "selected" or not event.selection:
            return []
        memory.ivr_path.append(event.selection)
        return [SetIvrPath(event.node, event.linkedid or "", tuple(memory.ivr_path))]

    # ------------------------------------------------------------------ writing

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="call-recorder")

    async def flush(self, timeout: float | None = None) -> None:
        """Wait until every queued write is committed (``TimeoutError`` after ``timeout``)."""
        async with asyncio.timeout(timeout):
            await self._idle.wait()

    async def close(self, timeout: float = 5.0) -> None:
        """Give pending writes ``timeout`` seconds, then stop (logging what is left)."""
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            await self.flush(timeout)
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self._task = None
        if self._pending:
            log.error("call records: stopped with %d writes not committed", self.pending)

    async def __aenter__(self) -> CallRecorder:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _run(self) -> None:
        failures = 0
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                batch = [self._pending[i] for i in range(min(self._batch_size, self.pending))]
                error = await self._write(batch)
                if error is None:
                    for _ in batch:
                        self._pending.popleft()
                    if failures:
                        log.info("call records: database writes resumed after %d retries", failures)
                    failures = 0
                    continue
                failures += 1
                self.stats.failures += 1
                self._log_failure(error, failures)
                await asyncio.sleep(self._backoff(failures))
            self._idle.set()

    def _backoff(self, failures: int) -> float:
        return float(min(self._retry_max, self._retry_initial * 2 ** min(failures - 1, 16)))

    async def _write(self, batch: Sequence[Op]) -> BaseException | None:
        """None when the batch is done (committed, or its bad rows dropped); else the error."""
        try:
            await self._commit(batch)
        except _TRANSIENT as exc:
            if not isinstance(exc, _PERMANENT):
                return exc
            return await self._write_one_by_one(batch)
        except Exception:  # a bug in one statement must not block every record behind it
            log.exception("call records: unexpected error, retrying row by row")
            return await self._write_one_by_one(batch)
        self.stats.written += len(batch)
        return None

    async def _write_one_by_one(self, batch: Sequence[Op]) -> BaseException | None:
        for op in batch:
            try:
                await self._commit([op])
            except _TRANSIENT as exc:
                if not isinstance(exc, _PERMANENT):
                    return exc
                self._drop(op, exc)
            except Exception as exc:
                self._drop(op, exc)
            else:
                self.stats.written += 1
        return None

    def _drop(self, op: Op, exc: BaseException) -> None:
        self.stats.dropped += 1
        log.error("call records: cannot write %r, dropped: %s", op, exc)

    async def _commit(self, batch: Sequence[Op]) -> None:
        async with asyncio.timeout(self._write_timeout):
            async with self._sessionmaker() as session, session.begin():
                dialect = session.get_bind().dialect.name
                for op in batch:
                    await session.execute(op.statement(dialect))

    def _log_failure(self, exc: BaseException, failures: int) -> None:
        """Warn when an outage starts and every 50 retries, not on every retry."""
        level = logging.WARNING if failures == 1 or failures % 50 == 0 else logging.DEBUG
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        log.log(
            level,
            "call records: database write failed (%d pending, retry %d): %s: %s",
            self.pending,
            failures,
            type(exc).__name__,
            first_line,
        )
