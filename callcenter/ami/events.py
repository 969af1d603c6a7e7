"""Normalized call events: what the rest of the platform learns from AMI.

Plain frozen dataclasses, no AMI field names: the state, routing and console layers depend on
these and never on raw frames, so a change of Asterisk version or a second PBX brand only
touches :mod:`callcenter.ami.normalize`.  All text is clean Unicode (see
:func:`callcenter.ami.codec.display_text`), safe for JSON.

Every event carries ``node`` (the Asterisk node it came from), ``uniqueid`` and ``linkedid`` of
the *call* -- for call events the inbound caller's channel, even when the AMI event was about a
seat leg -- and ``timestamp`` (the AMI ``Timestamp`` header, epoch seconds, when
``timestampevents`` is on; else None).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

AgentState = Literal["logged_in", "logged_out", "ready", "paused", "in_call", "wrap_up"]
TransferKind = Literal["blind", "attended"]
IvrExit = Literal["selected", "queued", "hangup"]

ORIGINATE_REASONS: dict[int, str] = {
    0: "failed",
    1: "hangup",
    3: "no_answer",
    4: "answered",
    5: "busy",
    8: "congestion",
}
"""``OriginateResponse`` ``Reason`` codes (Asterisk control frames) seen in trace 05c."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CallEvent:
    node: str
    uniqueid: str | None
    linkedid: str | None
    timestamp: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CallOffered(CallEvent):
    """An inbound caller reached the hotline dialplan."""

    channel: str
    caller_number: str | None
    caller_name: str | None
    caller_name_lossy: bool = False
    """True when the name was not valid UTF-8 on the wire (shown as GB18030 or with U+FFFD)."""
    called_number: str | None
    context: str


@dataclass(frozen=True, slots=True, kw_only=True)
class IvrEntered(CallEvent):
    channel: str
    context: str
    exten: str
    application: str


@dataclass(frozen=True, slots=True, kw_only=True)
class IvrLeft(CallEvent):
    channel: str
    reason: IvrExit
    selection: str | None = None
    """The extension the caller's choice led to (e.g. ``"1"``) when ``reason == "selected"``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CallQueued(CallEvent):
    channel: str
    queue: str
    position: int | None
    count: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentRinging(CallEvent):
    channel: str
    queue: str
    interface: str
    member_name: str | None
    agent_channel: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentNoAnswer(CallEvent):
    """A seat rang for the caller and did not answer (``ring_time_ms`` is in milliseconds)."""

    channel: str
    queue: str
    interface: str
    member_name: str | None
    ring_time_ms: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class CallAnswered(CallEvent):
    channel: str
    queue: str
    interface: str
    member_name: str | None
    agent_channel: str | None
    hold_time_s: int | None
    ring_time_s: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class CallTransferred(CallEvent):
    """The caller was moved on; ``via`` is ``BlindTransfer``, ``AttendedTransfer`` or ``Redirect``.

    ``target`` is ``exten@context`` (blind) or the party now bridged with the caller (attended).
    """

    channel: str
    kind: TransferKind
    target: str | None
    via: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CallHeld(CallEvent):
    channel: str
    """The channel that put the call on hold (often the seat leg)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CallUnheld(CallEvent):
    channel: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CallAbandoned(CallEvent):
    """The caller left a queue without being answered.

    ``final`` is False when Queue() only timed out and the call goes on (overflow to another
    queue, trace 09); True when the caller hung up.
    """

    channel: str
    queue: str
    position: int | None
    original_position: int | None
    hold_time_s: int | None
    final: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class CallEnded(CallEvent):
    channel: str
    cause: int | None
    cause_text: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordingStarted(CallEvent):
    channel: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordingStopped(CallEvent):
    channel: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentStateChanged(CallEvent):
    """A seat's state in one queue (a member of two queues has two states)."""

    interface: str
    member_name: str | None
    queue: str
    state: AgentState
    reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class OriginateResult(CallEvent):
    """Outcome of an ``Originate`` (callback / 回访); ``reason`` names ``reason_code``."""

    action_id: str | None
    success: bool
    reason_code: int | None
    reason: str
    channel: str | None


ALL_EVENT_TYPES: tuple[type[CallEvent], ...] = (
    CallOffered,
    IvrEntered,
    IvrLeft,
    CallQueued,
    AgentRinging,
    AgentNoAnswer,
    CallAnswered,
    CallTransferred,
    CallHeld,
    CallUnheld,
    CallAbandoned,
    CallEnded,
    RecordingStarted,
    RecordingStopped,
    AgentStateChanged,
    OriginateResult,
)


def originate_reason(code: int | None) -> str:
    if code is None:
        return "unknown"
    return ORIGINATE_REASONS.get(code, "unknown")
