"""The items of AMI list actions (``CoreShowChannels``, ``QueueStatus``, ``QueueSummary``), parsed.

Field names as Asterisk 22 sends them (traces 03 and 10).  Items are untrusted header dicts as
the AMI client hands them over (a repeated header may be a list); displayed text goes through
:func:`~callcenter.ami.codec.display_text`, identifiers stay as they are for matching.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from callcenter.ami.codec import display_text
from callcenter.ami.events import AgentState

__all__ = [
    "AmiItem",
    "AmiSnapshot",
    "ChannelItem",
    "EntryItem",
    "MemberItem",
    "field",
    "member_state",
]

AmiItem = Mapping[str, Any]

_UNKNOWN = frozenset({"", "<unknown>"})
_BUSY_DEVICE_STATES = frozenset({2, 3, 6, 7, 8})  # INUSE BUSY RINGING RINGINUSE ONHOLD
_GONE_DEVICE_STATES = {4: "invalid", 5: "unavailable"}


def field(item: AmiItem, key: str) -> str | None:
    """A header by case-insensitive name; a repeated header gives its first value."""
    wanted = key.lower()
    for name, value in item.items():
        if str(name).lower() == wanted:
            if isinstance(value, list | tuple):
                value = value[0] if value else None
            return None if value is None else str(value)
    return None


def _text(item: AmiItem, key: str) -> str | None:
    value = field(item, key)
    return None if value is None or value in _UNKNOWN else display_text(value)


def _int(item: AmiItem, key: str) -> int | None:
    value = field(item, key)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _seconds(duration: str | None) -> int:
    """``00:01:05`` → 65 (CoreShowChannel ``Duration``); anything else → 0."""
    try:
        parts = [int(p) for p in (duration or "").split(":")]
    except ValueError:
        return 0
    total = 0
    for part in parts:
        total = total * 60 + part
    return total if len(parts) == 3 else 0


@dataclass(frozen=True, slots=True)
class ChannelItem:
    uniqueid: str
    linkedid: str
    name: str
    context: str
    caller_number: str | None
    caller_name: str | None
    bridge_id: str | None
    age_s: int


@dataclass(frozen=True, slots=True)
class EntryItem:
    queue: str
    position: int
    uniqueid: str
    caller_number: str | None
    caller_name: str | None
    wait_s: int


@dataclass(frozen=True, slots=True)
class MemberItem:
    queue: str
    interface: str
    member_name: str | None
    state: AgentState
    reason: str | None


def member_state(item: AmiItem) -> tuple[AgentState, str | None]:
    """Seat state from a ``QueueMember`` item; the same rules as the normalizer's events."""
    if field(item, "Paused") == "1":
        return "paused", _text(item, "PausedReason")
    status = _int(item, "Status")
    if status == 1:
        return ("in_call", None) if field(item, "InCall") == "1" else ("ready", None)
    if status in _BUSY_DEVICE_STATES:
        return "in_call", None
    if status in _GONE_DEVICE_STATES:
        return "logged_out", _GONE_DEVICE_STATES[status]
    return "logged_in", None


def _channels(items: Iterable[AmiItem]) -> list[ChannelItem]:
    out = []
    for item in items:
        uid = field(item, "Uniqueid")
        if not uid:
            continue
        out.append(
            ChannelItem(
                uniqueid=uid,
                linkedid=field(item, "Linkedid") or uid,
                name=field(item, "Channel") or "",
                context=field(item, "Context") or "",
                caller_number=_text(item, "CallerIDNum"),
                caller_name=_text(item, "CallerIDName"),
                bridge_id=field(item, "BridgeId") or None,
                age_s=_seconds(field(item, "Duration")),
            )
        )
    return out


def _entries(items: Iterable[AmiItem]) -> list[EntryItem]:
    out = []
    for item in items:
        queue, uid = field(item, "Queue"), field(item, "Uniqueid")
        if queue and uid:
            out.append(
                EntryItem(
                    queue=display_text(queue),
                    position=_int(item, "Position") or 0,
                    uniqueid=uid,
                    caller_number=_text(item, "CallerIDNum"),
                    caller_name=_text(item, "CallerIDName"),
                    wait_s=_int(item, "Wait") or 0,
                )
            )
    return sorted(out, key=lambda e: (e.queue, e.position))


def _members(items: Iterable[AmiItem]) -> list[MemberItem]:
    out = []
    for item in items:
        queue = field(item, "Queue")
        interface = field(item, "Location") or field(item, "Interface")
        if queue and interface:
            state, reason = member_state(item)
            out.append(
                MemberItem(
                    queue=display_text(queue),
                    interface=display_text(interface),
                    member_name=_text(item, "Name") or _text(item, "MemberName"),
                    state=state,
                    reason=reason,
                )
            )
    return out


@dataclass(frozen=True, slots=True)
class AmiSnapshot:
    """What the list actions said, parsed."""

    channels: list[ChannelItem]
    queues: set[str]
    members: list[MemberItem]
    entries: list[EntryItem]

    @classmethod
    def parse(
        cls,
        channels: Iterable[AmiItem],
        queue_params: Iterable[AmiItem],
        queue_members: Iterable[AmiItem],
        queue_entries: Iterable[AmiItem],
        queue_summaries: Iterable[AmiItem] = (),
    ) -> AmiSnapshot:
        entries = _entries(queue_entries)
        members = _members(queue_members)
        names = {
            display_text(q) for i in [*queue_params, *queue_summaries] if (q := field(i, "Queue"))
        }
        names.update(e.queue for e in entries)
        names.update(m.queue for m in members)
        return cls(_channels(channels), names, members, entries)
