"""From raw AMI frames to normalized call events, per Asterisk node.

Rules this module keeps in one place:

* **Who is the caller** -- :func:`is_inbound_caller`.
* **Trust** -- AMI text carries caller-controlled bytes; trace 12 shows a caller name forging a
  whole ``Event: Hangup`` message.  So no single frame is believed on its own: a channel event
  must name a ``Uniqueid`` first announced by ``Newchannel`` (or a ``CoreShowChannel`` list item)
  *and* the same ``Channel`` name; frames with two ``Event`` headers (a header smuggled into
  ``AppData``) are dropped.  Rejected frames are counted in :attr:`Normalizer.stats` and kept in
  :attr:`Normalizer.rejected` for diagnosis.
* **Idempotency** -- feeding a frame twice gives no second event.  Call events are transitions
  of per-call state (a caller is queued once per join, answered once per seat leg...), and ended
  Uniqueids are remembered, so a replayed ``Newchannel`` does not reopen a call.  Seat states and
  originate results, which have no Uniqueid, are deduplicated by a content key that includes the
  member's counters (``CallsTaken``, ``LastCall``, ``LastPause``, ``LoginTime``).  Both memories
  are bounded windows of the newest :data:`DEFAULT_MEMORY` keys, so memory does not grow with
  the number of calls.
* **Abandon is not always final** -- ``QueueCallerAbandon`` is also sent when Queue() times out
  and the dialplan goes on (trace 09).  It is final only if a hang-up was requested before it or
  the caller's next event is the hang-up; otherwise it is reported with ``final=False`` as soon
  as the call visibly continues.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass, field, replace
from typing import Any

from callcenter.ami.codec import Frame, display_text, has_undecodable
from callcenter.ami.events import (
    AgentNoAnswer,
    AgentRinging,
    AgentState,
    AgentStateChanged,
    CallAbandoned,
    CallAnswered,
    CallEnded,
    CallEvent,
    CallHeld,
    CallOffered,
    CallQueued,
    CallTransferred,
    CallUnheld,
    IvrEntered,
    IvrExit,
    IvrLeft,
    OriginateResult,
    RecordingStarted,
    RecordingStopped,
    originate_reason,
)
from callcenter.recent import RecentSet

__all__ = [
    "DEFAULT_INBOUND_CONTEXTS",
    "DEFAULT_MEMORY",
    "HANDLED_EVENTS",
    "IVR_APPLICATIONS",
    "USED_EVENTS",
    "Normalizer",
    "NormalizerStats",
    "is_inbound_caller",
]

log = logging.getLogger(__name__)

DEFAULT_INBOUND_CONTEXTS: tuple[str, ...] = ("from-trunk",)

DEFAULT_MEMORY = 4096
"""Ended Uniqueids (and seat-state / originate dedupe keys) a normalizer remembers, newest first.

They only have to outlast late and replayed frames: a channel's last frames follow its
``Hangup`` within seconds on the same connection, and a resync after a reconnect lists live
channels only.  At the province's absolute peak (500 live calls, about 170 new calls a minute,
~6 channels each) 4,096 channels are 4 minutes; at a busy hour of 1,000 calls, 40 minutes.
The bound is what keeps memory flat however many calls a node sees (~100 bytes a key).
"""

IVR_APPLICATIONS = frozenset({"background", "waitexten", "read", "readexten", "agi", "eagi"})
"""Dialplan applications that mean "the caller is in the menu" (compared case-insensitively:
Asterisk reports ``BackGround``)."""

_IVR_LOCAL_EXTENS = frozenset({"i", "t"})  # invalid / timeout handlers loop back to the menu
_UNKNOWN = frozenset({"", "<unknown>"})
_BUSY_DEVICE_STATES = frozenset({2, 3, 6, 7, 8})  # INUSE BUSY RINGING RINGINUSE ONHOLD
_GONE_DEVICE_STATES = {4: "invalid", 5: "unavailable"}

_CHANNEL_EVENTS = frozenset(
    {
        "Newchannel",
        "NewCallerid",
        "Newexten",
        "Hangup",
        "HangupRequest",
        "SoftHangupRequest",
        "QueueCallerJoin",
        "QueueCallerLeave",
        "QueueCallerAbandon",
        "AgentCalled",
        "AgentRingNoAnswer",
        "AgentConnect",
        "AgentComplete",
        "BlindTransfer",
        "AttendedTransfer",
        "Hold",
        "Unhold",
        "MixMonitorStart",
        "MixMonitorStop",
        "BridgeEnter",
        "BridgeLeave",
    }
)
_MEMBER_EVENTS = frozenset(
    {
        "QueueMemberStatus",
        "QueueMemberAdded",
        "QueueMemberRemoved",
        "QueueMemberPause",
        "QueueMemberPenalty",
    }
)
_SYSTEM_EVENTS = frozenset({"OriginateResponse", "FullyBooted", "Shutdown", "UserEvent"})
_LIST_EVENTS = frozenset(
    {
        "CoreShowChannel",
        "CoreShowChannelsComplete",
        "QueueParams",
        "QueueMember",
        "QueueEntry",
        "QueueStatusComplete",
        "QueueSummary",
        "QueueSummaryComplete",
        "Status",
        "StatusComplete",
    }
)
USED_EVENTS: frozenset[str] = _CHANNEL_EVENTS | _MEMBER_EVENTS | _SYSTEM_EVENTS | _LIST_EVENTS
"""AMI events the platform consumes; ``manager.conf`` filters out the rest.

``Newexten`` (dialplan class) is the one high-volume event kept: it is how the IVR and a
``Redirect`` become visible.  ``VarSet``, ``DeviceStateChange``, ``Cdr`` and the rest are not
needed -- and not subscribing to them also shrinks the surface for injected text.
"""


def is_inbound_caller(channel: str, context: str, inbound_contexts: Collection[str]) -> bool:
    """Decide, from its ``Newchannel``, whether a channel is an inbound caller.

    A caller is a channel *created* in an inbound context (production: ``PJSIP/trunk-…`` in
    ``from-trunk``).  In the Local-channel lab the caller is the ``;2`` half of
    ``Local/12348@from-trunk-…``; the ``;1`` half is created in the same context but is the
    simulated phone (it later runs ``sim-caller``), so Local ``;1`` halves never count.  Seat
    legs (``Local/80xx@agent-phones``), callback legs (``pstn-out``) and supervisors are created
    in other contexts.
    """
    if context not in inbound_contexts:
        return False
    return not (channel.startswith("Local/") and channel.endswith(";1"))


# --------------------------------------------------------------------------- state


@dataclass(slots=True)
class _Channel:
    uniqueid: str
    linkedid: str
    name: str
    context: str
    exten: str
    caller_number: str | None
    caller_name: str | None


@dataclass(slots=True)
class _Call:
    """Per inbound caller: what has been reported, so each transition is reported once."""

    channel: _Channel
    offered: bool = False
    ivr_exten: str | None = None
    queue: str | None = None
    rung: set[str] = field(default_factory=set)
    missed: set[str] = field(default_factory=set)
    agent_leg: str | None = None
    answer_context: str | None = None
    transferred: bool = False
    held: bool = False
    recording: set[str] = field(default_factory=set)
    hangup_requested: bool = False
    pending_abandon: CallAbandoned | None = None


@dataclass(slots=True)
class _Member:
    state: AgentState | None = None
    reason: str | None = None
    wrapuptime: int = 0


@dataclass(slots=True)
class NormalizerStats:
    frames: int = 0
    events: int = 0
    untracked: int = 0
    """Channel events for a Uniqueid never announced (e.g. the forged Hangup of trace 12)."""
    ended: int = 0
    """Channel events for a channel that already hung up (late or replayed)."""
    inconsistent: int = 0
    """Uniqueid known but the Channel name does not match it."""
    tampered: int = 0
    """Frames with a repeated ``Event`` header (header injection)."""
    duplicates: int = 0


# --------------------------------------------------------------------------- helpers


def _text(value: str | None) -> str | None:
    """Clean text from a frame value; AMI's ``<unknown>`` and empty become None."""
    if value is None or value in _UNKNOWN:
        return None
    return display_text(value)


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _timestamp(frame: Frame) -> float | None:
    try:
        value = frame.get("Timestamp")
        return float(value) if value is not None else None
    except ValueError:
        return None


def _party(channel: str | None) -> str | None:
    """``Local/8003@transfer-targets-00000013;1`` -> ``8003@transfer-targets``;
    ``PJSIP/8003-0000001a`` -> ``8003``."""
    if not channel:
        return None
    resource = channel.partition("/")[2].partition(";")[0]
    base, dash, suffix = resource.rpartition("-")
    return display_text(
        base if dash and suffix and all(c in "0123456789abcdef" for c in suffix) else resource
    )


# --------------------------------------------------------------------------- normalizer

Handler = Callable[["Normalizer", Frame], None]


class Normalizer:
    """Stateful translator for one Asterisk node: ``feed(frame) -> [CallEvent, ...]``.

    Feed it every frame of the node's AMI stream in order (responses and unknown events are
    ignored).  It never raises on hostile or malformed frames.
    """

    def __init__(
        self,
        node: str,
        *,
        inbound_contexts: Collection[str] = DEFAULT_INBOUND_CONTEXTS,
        memory: int = DEFAULT_MEMORY,
    ) -> None:
        """``memory``: how many ended Uniqueids, and how many dedupe keys, are remembered (see
        :data:`DEFAULT_MEMORY`)."""
        self.node = node
        self.inbound_contexts = frozenset(inbound_contexts)
        self.stats = NormalizerStats()
        self.rejected: deque[tuple[str, Frame]] = deque(maxlen=32)
        self._channels: dict[str, _Channel] = {}
        self._calls: dict[str, _Call] = {}
        self._call_by_linkedid: dict[str, str] = {}
        self._bridges: dict[str, dict[str, str]] = {}
        self._members: dict[tuple[str, str], _Member] = {}
        self._ended = RecentSet[Any](memory)
        self._seen = RecentSet[Any](memory)
        self._out: list[CallEvent] = []
        self._ts: float | None = None

    # -- public

    def feed(self, frame: Frame) -> list[CallEvent]:
        self.stats.frames += 1
        fields = frame.fields
        if fields and fields[0][0] == "Event":  # where Asterisk puts it: no lookup needed
            name: str | None = fields[0][1]
        else:
            name = frame.get("Event")
        handler = _HANDLERS.get(name or "")
        if handler is None:
            return []
        if frame.count("Event") > 1:
            self._reject("tampered", frame)
            return []
        self._out = []
        self._ts = _timestamp(frame)
        handler(self, frame)
        self.stats.events += len(self._out)
        return self._out

    @property
    def active_calls(self) -> int:
        return len(self._calls)

    # -- bookkeeping

    def _reject(self, reason: str, frame: Frame) -> None:
        setattr(self.stats, reason, getattr(self.stats, reason) + 1)
        self.rejected.append((reason, frame))
        level = logging.DEBUG if reason == "ended" else logging.WARNING
        log.log(level, "ami %s: ignored %s frame %s", self.node, reason, frame.get("Event"))

    def _base(self, call: _Call) -> dict[str, Any]:
        ch = call.channel
        return {
            "node": self.node,
            "uniqueid": ch.uniqueid,
            "linkedid": ch.linkedid,
            "timestamp": self._ts,
        }

    def _emit(self, event: CallEvent) -> None:
        self._out.append(event)

    def _emit_once(self, key: tuple[Any, ...], event: CallEvent) -> None:
        if key in self._seen:
            self.stats.duplicates += 1
            return
        self._seen.add(key)
        self._out.append(event)

    def _channel(self, frame: Frame, prefix: str = "") -> _Channel | None:
        """The tracked channel a frame talks about, or None (counted) if it does not check out."""
        uid = frame.get(prefix + "Uniqueid")
        ch = self._channels.get(uid) if uid else None
        if ch is None:
            self._reject("ended" if uid in self._ended else "untracked", frame)
            return None
        if frame.get(prefix + "Channel") != ch.name:
            self._reject("inconsistent", frame)
            return None
        return ch

    def _call_of(self, ch: _Channel) -> _Call | None:
        call = self._calls.get(ch.uniqueid)
        if call is None:
            caller = self._call_by_linkedid.get(ch.linkedid)
            call = self._calls.get(caller) if caller else None
        return call

    def _caller_call(self, frame: Frame, prefix: str = "") -> _Call | None:
        """The call whose *caller* channel the frame names (queue events)."""
        ch = self._channel(frame, prefix)
        return self._calls.get(ch.uniqueid) if ch else None

    # -- channels

    def _on_newchannel(self, frame: Frame) -> None:
        uid = frame.get("Uniqueid")
        if not uid or uid in self._channels or uid in self._ended:
            self.stats.duplicates += 1
            return
        ch = _Channel(
            uniqueid=uid,
            linkedid=frame.get("Linkedid") or uid,
            name=frame.get("Channel") or "",
            context=frame.get("Context") or "",
            exten=frame.get("Exten") or "",
            caller_number=frame.get("CallerIDNum"),
            caller_name=frame.get("CallerIDName"),
        )
        self._channels[uid] = ch
        if is_inbound_caller(ch.name, ch.context, self.inbound_contexts):
            self._calls[uid] = _Call(ch)
            self._call_by_linkedid.setdefault(ch.linkedid, uid)

    def _on_newcallerid(self, frame: Frame) -> None:
        ch = self._channel(frame)
        if ch is not None:
            ch.caller_number = frame.get("CallerIDNum")
            ch.caller_name = frame.get("CallerIDName")

    def _ensure_offered(self, call: _Call) -> None:
        if call.offered:
            return
        call.offered = True
        ch = call.channel
        self._emit(
            CallOffered(
                **self._base(call),
                channel=display_text(ch.name),
                caller_number=_text(ch.caller_number),
                caller_name=_text(ch.caller_name),
                caller_name_lossy=has_undecodable(ch.caller_name or ""),
                called_number=_text(ch.exten),
                context=display_text(ch.context),
            )
        )

    def _on_newexten(self, frame: Frame) -> None:
        ch = self._channel(frame)
        call = self._calls.get(ch.uniqueid) if ch else None
        if call is None:
            return
        self._ensure_offered(call)
        exten = frame.get("Exten") or ""
        context = frame.get("Context") or ""
        self._resolve_abandon(call, final=exten == "h")
        self._detect_redirect(call, context, exten)
        self._track_ivr(call, exten, context, frame.get("Application") or "")

    def _track_ivr(self, call: _Call, exten: str, context: str, app: str) -> None:
        if call.ivr_exten is None:
            if app.lower() in IVR_APPLICATIONS:
                call.ivr_exten = exten
                self._emit(
                    IvrEntered(
                        **self._base(call),
                        channel=display_text(call.channel.name),
                        context=display_text(context),
                        exten=display_text(exten),
                        application=display_text(app),
                    )
                )
            return
        if exten == call.ivr_exten or exten in _IVR_LOCAL_EXTENS:
            return
        if exten == "h":
            self._leave_ivr(call, "hangup")
        else:
            self._leave_ivr(call, "selected", exten)

    def _leave_ivr(self, call: _Call, reason: IvrExit, selection: str | None = None) -> None:
        if call.ivr_exten is None:
            return
        call.ivr_exten = None
        self._emit(
            IvrLeft(
                **self._base(call),
                channel=display_text(call.channel.name),
                reason=reason,
                selection=_text(selection),
            )
        )

    def _detect_redirect(self, call: _Call, context: str, exten: str) -> None:
        """An answered caller running dialplan in another context was moved by ``Redirect``."""
        if call.agent_leg is None or call.transferred or exten == "h":
            return
        if context == call.answer_context:
            return
        call.transferred = True
        self._emit(
            CallTransferred(
                **self._base(call),
                channel=display_text(call.channel.name),
                kind="blind",
                target=display_text(f"{exten}@{context}"),
                via="Redirect",
            )
        )

    def _on_hangup_request(self, frame: Frame) -> None:
        ch = self._channel(frame)
        call = self._calls.get(ch.uniqueid) if ch else None
        if call is not None:
            call.hangup_requested = True

    def _on_hangup(self, frame: Frame) -> None:
        ch = self._channel(frame)
        if ch is None:
            return
        del self._channels[ch.uniqueid]
        self._ended.add(ch.uniqueid)
        self._leave_bridges(ch.uniqueid)
        call = self._calls.pop(ch.uniqueid, None)
        if call is None:
            return
        if self._call_by_linkedid.get(ch.linkedid) == ch.uniqueid:
            del self._call_by_linkedid[ch.linkedid]
        self._ensure_offered(call)
        self._resolve_abandon(call, final=True)
        self._leave_ivr(call, "hangup")
        self._emit(
            CallEnded(
                **self._base(call),
                channel=display_text(ch.name),
                cause=_int(frame.get("Cause")),
                cause_text=_text(frame.get("Cause-txt")),
            )
        )

    def _leave_bridges(self, uniqueid: str) -> None:
        for bridge, members in list(self._bridges.items()):
            members.pop(uniqueid, None)
            if not members:
                del self._bridges[bridge]

    def _on_core_show_channel(self, frame: Frame) -> None:
        """A channel listed by ``CoreShowChannels`` (e.g. after a reconnect) becomes known."""
        uid = frame.get("Uniqueid")
        if uid and uid not in self._channels and uid not in self._ended:
            self._on_newchannel(frame)

    # -- queue

    def _on_queue_join(self, frame: Frame) -> None:
        call = self._caller_call(frame)
        queue = frame.get("Queue") or ""
        if call is None or call.queue == queue:
            return
        self._ensure_offered(call)
        self._resolve_abandon(call, final=False)
        self._leave_ivr(call, "queued")
        call.queue = queue
        self._emit(
            CallQueued(
                **self._base(call),
                channel=display_text(call.channel.name),
                queue=display_text(queue),
                position=_int(frame.get("Position")),
                count=_int(frame.get("Count")),
            )
        )

    def _on_queue_leave(self, frame: Frame) -> None:
        call = self._caller_call(frame)
        if call is not None and call.queue == frame.get("Queue"):
            call.queue = None

    def _on_queue_abandon(self, frame: Frame) -> None:
        call = self._caller_call(frame)
        queue = frame.get("Queue") or ""
        if call is None or call.queue != queue:
            return
        call.queue = None
        event = CallAbandoned(
            **self._base(call),
            channel=display_text(call.channel.name),
            queue=display_text(queue),
            position=_int(frame.get("Position")),
            original_position=_int(frame.get("OriginalPosition")),
            hold_time_s=_int(frame.get("HoldTime")),
            final=True,
        )
        if call.hangup_requested:
            self._emit(event)
        else:
            call.pending_abandon = event

    def _resolve_abandon(self, call: _Call, *, final: bool) -> None:
        if call.pending_abandon is not None:
            event, call.pending_abandon = call.pending_abandon, None
            self._emit(replace(event, final=final))

    def _agent_fields(self, frame: Frame) -> dict[str, Any]:
        return {
            "queue": display_text(frame.get("Queue") or ""),
            "interface": display_text(frame.get("Interface") or ""),
            "member_name": _text(frame.get("MemberName")),
        }

    def _on_agent_called(self, frame: Frame) -> None:
        call = self._caller_call(frame)
        leg = frame.get("DestUniqueid") or frame.get("DestChannel") or ""
        if call is None or leg in call.rung:
            return
        call.rung.add(leg)
        self._emit(
            AgentRinging(
                **self._base(call),
                channel=display_text(call.channel.name),
                **self._agent_fields(frame),
                agent_channel=_text(frame.get("DestChannel")),
            )
        )

    def _on_agent_no_answer(self, frame: Frame) -> None:
        call = self._caller_call(frame)
        leg = frame.get("DestUniqueid") or frame.get("DestChannel") or ""
        if call is None or leg in call.missed:
            return
        call.missed.add(leg)
        self._emit(
            AgentNoAnswer(
                **self._base(call),
                channel=display_text(call.channel.name),
                **self._agent_fields(frame),
                ring_time_ms=_int(frame.get("RingTime")),
            )
        )

    def _on_agent_connect(self, frame: Frame) -> None:
        call = self._caller_call(frame)
        leg = frame.get("DestUniqueid") or frame.get("DestChannel") or ""
        if call is None or call.agent_leg == leg:
            return
        call.agent_leg = leg
        call.answer_context = frame.get("Context")
        call.transferred = False
        self._emit(
            CallAnswered(
                **self._base(call),
                channel=display_text(call.channel.name),
                **self._agent_fields(frame),
                agent_channel=_text(frame.get("DestChannel")),
                hold_time_s=_int(frame.get("HoldTime")),
                ring_time_s=_int(frame.get("RingTime")),
            )
        )

    def _on_agent_complete(self, frame: Frame) -> None:
        call = self._caller_call(frame)
        if call is None:
            return
        call.agent_leg = None
        key = (frame.get("Queue") or "", frame.get("Interface") or "")
        member = self._members.get(key)
        if member is not None and member.wrapuptime > 0:
            self._set_member_state(frame, key, "wrap_up", None, ("wrap", frame.get("DestUniqueid")))

    # -- transfers, hold, recording

    def _transfer(self, call: _Call, kind: str, target: str | None, via: str) -> None:
        if call.transferred:
            return
        call.transferred = True
        self._emit(
            CallTransferred(
                **self._base(call),
                channel=display_text(call.channel.name),
                kind="blind" if kind == "blind" else "attended",
                target=target,
                via=via,
            )
        )

    def _on_blind_transfer(self, frame: Frame) -> None:
        ch = self._channel(frame, "Transferee")
        call = self._call_of(ch) if ch else None
        if call is None or frame.get("Result") != "Success":
            return
        target = f"{frame.get('Extension') or ''}@{frame.get('Context') or ''}"
        self._transfer(call, "blind", display_text(target), "BlindTransfer")

    def _on_attended_transfer(self, frame: Frame) -> None:
        ch = self._channel(frame, "Transferee")
        call = self._call_of(ch) if ch else None
        if call is None or frame.get("Result") != "Success":
            return
        self._transfer(call, "attended", self._attended_target(frame), "AttendedTransfer")

    def _attended_target(self, frame: Frame) -> str | None:
        """The party now bridged with the caller: whoever else is in the destination bridge."""
        skip = {
            frame.get("TransfereeUniqueid"),
            frame.get("OrigTransfererUniqueid"),
            frame.get("SecondTransfererUniqueid"),
        }
        members = self._bridges.get(frame.get("DestBridgeUniqueid") or "", {})
        others = [name for uid, name in members.items() if uid not in skip]
        return _party(others[0]) if others else None

    def _on_bridge_enter(self, frame: Frame) -> None:
        ch = self._channel(frame)
        bridge = frame.get("BridgeUniqueid")
        if ch is not None and bridge:
            self._bridges.setdefault(bridge, {})[ch.uniqueid] = ch.name

    def _on_bridge_leave(self, frame: Frame) -> None:
        ch = self._channel(frame)
        members = self._bridges.get(frame.get("BridgeUniqueid") or "")
        if ch is not None and members is not None:
            members.pop(ch.uniqueid, None)
            if not members:
                del self._bridges[frame.get("BridgeUniqueid") or ""]

    def _on_hold(self, frame: Frame, held: bool) -> None:
        ch = self._channel(frame)
        call = self._call_of(ch) if ch else None
        if ch is None or call is None or call.held == held:
            return
        call.held = held
        event_type = CallHeld if held else CallUnheld
        self._emit(event_type(**self._base(call), channel=display_text(ch.name)))

    def _on_recording(self, frame: Frame, started: bool) -> None:
        ch = self._channel(frame)
        call = self._call_of(ch) if ch else None
        if ch is None or call is None or (ch.uniqueid in call.recording) == started:
            return
        if started:
            call.recording.add(ch.uniqueid)
        else:
            call.recording.discard(ch.uniqueid)
        event_type = RecordingStarted if started else RecordingStopped
        self._emit(event_type(**self._base(call), channel=display_text(ch.name)))

    # -- seats

    def _on_member(self, frame: Frame) -> None:
        event = frame.get("Event")
        interface = frame.get("Interface") or frame.get("Location") or ""
        key = (frame.get("Queue") or "", interface)
        member = self._members.setdefault(key, _Member())
        member.wrapuptime = _int(frame.get("Wrapuptime")) or 0
        revision = tuple(frame.get(k) for k in ("CallsTaken", "LastCall", "LastPause", "LoginTime"))
        if event == "QueueMemberRemoved":
            self._set_member_state(frame, key, "logged_out", None, revision)
            del self._members[key]
            return
        if event == "QueueMemberAdded":
            self._set_member_state(frame, key, "logged_in", None, revision)
        derived = _member_state(frame)
        if derived is not None:
            self._set_member_state(frame, key, derived[0], derived[1], revision)

    def _set_member_state(
        self,
        frame: Frame,
        key: tuple[str, str],
        state: AgentState,
        reason: str | None,
        revision: tuple[Any, ...],
    ) -> None:
        member = self._members.setdefault(key, _Member())
        if (member.state, member.reason) == (state, reason):
            return
        member.state, member.reason = state, reason
        self._emit_once(
            ("member", *key, state, reason, *revision),
            AgentStateChanged(
                node=self.node,
                uniqueid=None,
                linkedid=None,
                timestamp=self._ts,
                interface=display_text(key[1]),
                member_name=_text(frame.get("MemberName") or frame.get("Name")),
                queue=display_text(key[0]),
                state=state,
                reason=_text(reason),
            ),
        )

    # -- originate

    def _on_originate_response(self, frame: Frame) -> None:
        code = _int(frame.get("Reason"))
        uid = _text(frame.get("Uniqueid"))
        response = frame.get("Response")
        self._emit_once(
            ("originate", frame.get("ActionID"), uid, response, code),
            OriginateResult(
                node=self.node,
                uniqueid=uid,
                linkedid=None,
                timestamp=self._ts,
                action_id=_text(frame.get("ActionID")),
                success=response == "Success",
                reason_code=code,
                reason=originate_reason(code),
                channel=_text(frame.get("Channel")),
            ),
        )


def _member_state(frame: Frame) -> tuple[AgentState, str | None] | None:
    """Seat state from a QueueMember* frame: paused wins, then the device state."""
    if frame.get("Paused") == "1":
        return "paused", frame.get("PausedReason") or None
    status = _int(frame.get("Status"))
    if status == 1:
        return ("in_call", None) if frame.get("InCall") == "1" else ("ready", None)
    if status in _BUSY_DEVICE_STATES:
        return "in_call", None
    if status in _GONE_DEVICE_STATES:
        return "logged_out", _GONE_DEVICE_STATES[status]
    return None


_HANDLERS: dict[str, Handler] = {
    "Newchannel": Normalizer._on_newchannel,
    "CoreShowChannel": Normalizer._on_core_show_channel,
    "NewCallerid": Normalizer._on_newcallerid,
    "Newexten": Normalizer._on_newexten,
    "HangupRequest": Normalizer._on_hangup_request,
    "SoftHangupRequest": Normalizer._on_hangup_request,
    "Hangup": Normalizer._on_hangup,
    "QueueCallerJoin": Normalizer._on_queue_join,
    "QueueCallerLeave": Normalizer._on_queue_leave,
    "QueueCallerAbandon": Normalizer._on_queue_abandon,
    "AgentCalled": Normalizer._on_agent_called,
    "AgentRingNoAnswer": Normalizer._on_agent_no_answer,
    "AgentConnect": Normalizer._on_agent_connect,
    "AgentComplete": Normalizer._on_agent_complete,
    "BlindTransfer": Normalizer._on_blind_transfer,
    "AttendedTransfer": Normalizer._on_attended_transfer,
    "BridgeEnter": Normalizer._on_bridge_enter,
    "BridgeLeave": Normalizer._on_bridge_leave,
    "Hold": lambda n, f: n._on_hold(f, True),
    "Unhold": lambda n, f: n._on_hold(f, False),
    "MixMonitorStart": lambda n, f: n._on_recording(f, True),
    "MixMonitorStop": lambda n, f: n._on_recording(f, False),
    "QueueMemberStatus": Normalizer._on_member,
    "QueueMemberAdded": Normalizer._on_member,
    "QueueMemberRemoved": Normalizer._on_member,
    "QueueMemberPause": Normalizer._on_member,
    "QueueMemberPenalty": Normalizer._on_member,
    "QueueMember": Normalizer._on_member,
    "OriginateResponse": Normalizer._on_originate_response,
}

HANDLED_EVENTS: frozenset[str] = frozenset(_HANDLERS)
"""Events that can change normalized state (a subset of :data:`USED_EVENTS`)."""
