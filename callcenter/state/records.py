"""Call-record writes as idempotent operations on the ``calls`` table.

Each operation is safe to run any number of times, in any retry, because it only moves a row
forward: the insert is ``ON CONFLICT (node, linkedid) DO NOTHING``; each timestamp is set only
while it is still NULL (so it never moves, let alone backwards); nothing changes once
``ended_at`` is set.  That is what lets the recorder retry a whole batch after a failure, and a
replay after a reconnect write nothing twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Executable, case, func, literal, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.sql.elements import ColumnElement

from callcenter.db.base import UTCDateTime
from callcenter.db.models import Call, Region, Seat

__all__ = [
    "CloseMissing",
    "Disposition",
    "InsertCall",
    "Op",
    "SetAnswered",
    "SetDisposition",
    "SetEnded",
    "SetIvrPath",
    "SetQueued",
    "to_datetime",
]


class Disposition(StrEnum):
    ANSWERED = "answered"
    ABANDONED = "abandoned"
    OVERFLOWED = "overflowed"
    """Timed out of a queue and went on (city → province); replaced if answered later."""
    TRANSFERRED = "transferred"
    IVR_HANGUP = "ivr_hangup"
    ENDED_WHILE_DISCONNECTED = "ended_while_disconnected"


DISCONNECTED_CAUSE = "ended while the AMI connection was down"


def to_datetime(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _clip(value: str | None, size: int) -> str | None:
    """Caller ID is untrusted: a value longer than its column must not make the row fail."""
    return value[:size] if value is not None else None


def _at(value: datetime) -> ColumnElement[datetime]:
    return literal(value, UTCDateTime())


@dataclass(frozen=True, slots=True)
class Op:
    node: str
    linkedid: str

    def _row(self) -> ColumnElement[bool]:
        return (Call.node == self.node) & (Call.linkedid == self.linkedid)

    def _open_row(self) -> ColumnElement[bool]:
        return self._row() & Call.ended_at.is_(None)

    def statement(self, dialect: str) -> Executable:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class InsertCall(Op):
    offered_at: datetime
    caller_number: str | None
    caller_name: str | None
    caller_region_code: str | None
    called_number: str | None

    def statement(self, dialect: str) -> Executable:
        maker = pg_insert if dialect == "postgresql" else sqlite_insert
        # An unknown region code becomes NULL instead of a foreign-key error for the whole row.
        region = select(Region.code).where(Region.code == self.caller_region_code)
        values: dict[str, Any] = {
            "node": self.node[:64],
            "linkedid": self.linkedid[:96],
            "direction": "inbound",
            "caller_number": _clip(self.caller_number, 32),
            "caller_name": _clip(self.caller_name, 128),
            "caller_region_code": region.scalar_subquery(),
            "called_number": _clip(self.called_number, 32),
            "offered_at": self.offered_at,
            "ivr_path": [],
            "routing": [],
        }
        stmt = maker(Call).values(**values)
        return stmt.on_conflict_do_nothing(index_elements=["node", "linkedid"])


@dataclass(frozen=True, slots=True)
class SetQueued(Op):
    queue: str
    at: datetime

    def statement(self, dialect: str) -> Executable:
        return (
            update(Call)
            .where(self._open_row() & Call.answered_at.is_(None))
            .values(
                queued_at=func.coalesce(Call.queued_at, _at(self.at)), queue_name=self.queue[:64]
            )
        )


@dataclass(frozen=True, slots=True)
class SetAnswered(Op):
    queue: str | None
    extension: str | None
    at: datetime

    def statement(self, dialect: str) -> Executable:
        seat_user = select(Seat.user_id).where(Seat.extension == self.extension).limit(1)
        return (
            update(Call)
            .where(self._open_row() & Call.answered_at.is_(None))
            .values(
                answered_at=self.at,
                queued_at=func.coalesce(Call.queued_at, _at(self.at)),
                queue_name=func.coalesce(_clip(self.queue, 64), Call.queue_name),
                agent_extension=_clip(self.extension, 16),
                agent_user_id=seat_user.scalar_subquery(),
                disposition=Disposition.ANSWERED.value,
            )
        )


@dataclass(frozen=True, slots=True)
class SetDisposition(Op):
    disposition: Disposition
    unanswered_only: bool

    def statement(self, dialect: str) -> Executable:
        where = self._open_row()
        if self.unanswered_only:
            where = where & Call.answered_at.is_(None)
        return update(Call).where(where).values(disposition=self.disposition.value)


@dataclass(frozen=True, slots=True)
class SetRouting(Op):
    """The routing decisions (queue, overflow, priority, reasons) recorded on the call."""

    decisions: tuple[dict[str, Any], ...]
    service_type: str | None

    def statement(self, dialect: str) -> Executable:
        return (
            update(Call)
            .where(self._row())
            .values(routing=list(self.decisions), service_type=_clip(self.service_type, 32))
        )


@dataclass(frozen=True, slots=True)
class SetIvrPath(Op):
    path: tuple[str, ...]
    language: str | None = None
    """The caller's language as the IVR flow set it (``zh-CN``, ``en``, ``bo``)."""

    def statement(self, dialect: str) -> Executable:
        values: dict[str, Any] = {"ivr_path": [p[:32] for p in self.path[:200]]}
        if self.language:
            values["language"] = self.language[:8]
        return update(Call).where(self._open_row()).values(**values)


@dataclass(frozen=True, slots=True)
class SetEnded(Op):
    at: datetime
    cause: str | None

    def statement(self, dialect: str) -> Executable:
        # No outcome seen (e.g. the abandon fell in a reconnect): queued and never answered
        # means the caller was lost in the queue, else they left in the IVR.
        fallback = case(
            (Call.queued_at.is_(None), Disposition.IVR_HANGUP.value),
            else_=Disposition.ABANDONED.value,
        )
        return (
            update(Call)
            .where(self._open_row())
            .values(
                ended_at=self.at,
                hangup_cause=_clip(self.cause, 64),
                disposition=func.coalesce(Call.disposition, fallback),
            )
        )


@dataclass(frozen=True, slots=True)
class CloseMissing(Op):
    """Close every open row of the node except the live ones (resync after a reconnect).

    ``linkedid`` is unused (empty): this one operates on the whole node.
    """

    live: frozenset[str]
    at: datetime

    def statement(self, dialect: str) -> Executable:
        disposition = case(
            (Call.answered_at.is_(None), Disposition.ENDED_WHILE_DISCONNECTED.value),
            else_=Call.disposition,
        )
        return (
            update(Call)
            .where(
                (Call.node == self.node)
                & Call.ended_at.is_(None)
                & Call.linkedid.not_in(sorted(self.live))
            )
            .values(ended_at=self.at, hangup_cause=DISCONNECTED_CAUSE, disposition=disposition)
        )
