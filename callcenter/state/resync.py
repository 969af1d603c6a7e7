"""Rebuild a node's live state after a (re)connect from AMI list actions.

While the bridge was disconnected, calls may have ended, been answered or arrived, and agents
may have paused.  The truth is asked from Asterisk (EventList framing, traces 03 and 10):

* ``CoreShowChannels`` → which channels exist: a known call whose caller channel is gone ended
  while we were away and is closed; an inbound caller we do not know is created;
* ``QueueStatus`` → ``QueueParams`` (queues), ``QueueMember`` (agents and their state) and
  ``QueueEntry`` (waiting callers with position and wait): queue waiting lists and agent states
  are rebuilt from them; "today" counters are ours and are kept;
* ``QueueSummary`` → queue names (a read-only account may only see this one).

The item dicts are the AMI headers as received (untrusted text, possibly not UTF-8), so every
displayed value goes through :func:`~callcenter.ami.codec.display_text`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

from callcenter.ami.codec import Frame
from callcenter.ami.normalize import Normalizer, is_inbound_caller
from callcenter.state.amilists import AmiItem, AmiSnapshot, ChannelItem, MemberItem, field
from callcenter.state.model import (
    LiveAgent,
    LiveCall,
    WaitingCaller,
    extension_of,
    item_key,
    overall_state,
)
from callcenter.state.tracker import Tracker

if TYPE_CHECKING:
    from callcenter.state.live import LiveState
    from callcenter.state.recorder import CallRecorder

__all__ = [
    "ResyncResult",
    "SendList",
    "items_sender",
    "rebuild_from_ami",
    "resync_tracker",
]

SendList = Callable[[str], Awaitable[Sequence[AmiItem]]]
"""``send("QueueStatus")`` → the items (events) of a list action's answer."""

# ---------------------------------------------------------------------- applying


@dataclass(frozen=True, slots=True)
class ResyncResult:
    node: str
    at: float
    closed: tuple[LiveCall, ...]
    """Calls that ended while we were disconnected (as they were last known)."""
    created: tuple[LiveCall, ...]
    """Calls that started while we were disconnected."""
    calls: tuple[LiveCall, ...]
    """Every call of the node that is live now, as rebuilt."""

    @property
    def live(self) -> frozenset[str]:
        return frozenset(c.linkedid for c in self.calls)


def resync_tracker(
    tracker: Tracker, node: str, snap: AmiSnapshot, inbound_contexts: Collection[str]
) -> ResyncResult:
    """Bring the tracker's view of ``node`` in line with ``snap`` (inside a transaction)."""
    by_uid = {c.uniqueid: c for c in snap.channels}
    closed = _close_vanished(tracker, node, by_uid)
    created = _create_arrived(tracker, node, snap, inbound_contexts)
    _rebuild_queues(tracker, node, snap, by_uid)
    _rebuild_agents(tracker, node, snap)
    _mark_bridged(tracker, node, snap.channels, by_uid)
    calls = tuple(c for c in tracker.calls.values() if c.node == node)
    return ResyncResult(node, tracker.now, closed, created, calls)


def _close_vanished(
    tracker: Tracker, node: str, by_uid: Mapping[str, ChannelItem]
) -> tuple[LiveCall, ...]:
    linked = {c.linkedid for c in by_uid.values()}
    closed = []
    for call in [c for c in tracker.calls.values() if c.node == node]:
        alive = call.uniqueid in by_uid if call.uniqueid else call.linkedid in linked
        if not alive:
            tracker.end_call(call)
            closed.append(call)
    return tuple(closed)


def _create_arrived(
    tracker: Tracker, node: str, snap: AmiSnapshot, inbound_contexts: Collection[str]
) -> tuple[LiveCall, ...]:
    """Inbound callers we do not know, and anyone waiting in a queue, become calls."""
    waiting = {e.uniqueid: e for e in snap.entries}
    created = []
    for chan in snap.channels:
        caller = is_inbound_caller(chan.name, chan.context, inbound_contexts)
        key = item_key(node, chan.linkedid)
        entry = waiting.get(chan.uniqueid)
        if not (caller or entry) or key in tracker.calls or tracker.is_ended(key):
            continue
        number = chan.caller_number or (entry.caller_number if entry else None)
        caller_region = tracker.regions.caller(number)
        call = LiveCall(
            node=node,
            linkedid=chan.linkedid,
            uniqueid=chan.uniqueid,
            caller_number=number,
            caller_name=chan.caller_name or (entry.caller_name if entry else None),
            caller_region_code=caller_region,
            region_code=tracker.regions.call(None, caller_region),
            state="ivr",
            state_since=tracker.now,
            offered_at=tracker.now - chan.age_s,
        )
        tracker.put_call(call)
        created.append(call)
    return tuple(created)


def _rebuild_queues(
    tracker: Tracker, node: str, snap: AmiSnapshot, by_uid: Mapping[str, ChannelItem]
) -> None:
    for queue in [q for q in tracker.queues.values() if q.node == node]:
        if queue.name not in snap.queues:
            tracker.drop_queue(queue.key)
    placed: set[str] = set()
    for name in sorted(snap.queues):
        queue = tracker.queue(node, name)
        before = {w.linkedid: w for w in queue.waiting}
        waiting = []
        for entry in (e for e in snap.entries if e.queue == name):
            chan = by_uid.get(entry.uniqueid)
            call = tracker.calls.get(item_key(node, chan.linkedid if chan else entry.uniqueid))
            if call is None:
                continue
            since = before[call.linkedid].since if call.linkedid in before else None
            waiting.append(_enqueue(tracker, call, name, since or tracker.now - entry.wait_s))
            placed.add(call.key)
        tracker.set_waiting(queue, waiting)
    for call in [c for c in tracker.calls.values() if c.node == node and c.key not in placed]:
        if call.state in ("queued", "ringing"):  # left its queue while we were away
            tracker.put_call(tracker.with_state(call, "ivr", position=None))


def _enqueue(tracker: Tracker, call: LiveCall, queue: str, since: float) -> WaitingCaller:
    state = call.state if call.state == "ringing" and call.queue == queue else "queued"
    tracker.put_call(
        tracker.with_state(
            call,
            state,
            queue=queue,
            region_code=tracker.regions.call(queue, call.caller_region_code),
            queued_at=call.queued_at or since,
        )
    )
    return WaitingCaller(
        linkedid=call.linkedid,
        uniqueid=call.uniqueid,
        caller_number=call.caller_number,
        caller_name=call.caller_name,
        position=0,
        since=since,
    )


def _rebuild_agents(tracker: Tracker, node: str, snap: AmiSnapshot) -> None:
    grouped: dict[str, list[MemberItem]] = {}
    for member in snap.members:
        grouped.setdefault(member.interface, []).append(member)
    for agent in [a for a in tracker.agents.values() if a.node == node]:
        if agent.interface not in grouped:
            tracker.set_agent_state(agent, {}, None)
    for interface, rows in grouped.items():
        names = [r.member_name for r in rows if r.member_name]
        agent = tracker.agent(node, interface, names[0] if names else None)
        states = {r.queue: r.state for r in rows}
        state = overall_state(states.values())
        reason = next((r.reason for r in rows if r.state == state and r.reason), None)
        tracker.set_agent_state(agent, states, reason)


def _mark_bridged(
    tracker: Tracker, node: str, channels: Sequence[ChannelItem], by_uid: Mapping[str, ChannelItem]
) -> None:
    """A caller in a bridge with a seat is talking to it (answered while we were away)."""
    agents_by_ext = {a.extension: a for a in tracker.agents.values() if a.node == node}
    for agent in agents_by_ext.values():
        key = item_key(node, agent.current_call) if agent.current_call else None
        if key is not None and key not in tracker.calls:
            tracker.put_agent(replace(agent, current_call=None))
    for call in [c for c in tracker.calls.values() if c.node == node]:
        chan = by_uid.get(call.uniqueid or "")
        if chan is None or not chan.bridge_id or call.state in ("talking", "held"):
            continue
        partner = next(
            (c for c in channels if c.bridge_id == chan.bridge_id and c.uniqueid != chan.uniqueid),
            None,
        )
        extension = extension_of(partner.name) if partner else None
        _answered_away(tracker, call, agents_by_ext.get(extension))


def _answered_away(tracker: Tracker, call: LiveCall, agent: LiveAgent | None) -> None:
    tracker.leave_queue(call)
    if agent is not None and call.queue:
        queue = call.queue
        tracker.count(
            call, "answered", queue, lambda: tracker.bump_queue(call.node, queue, "answered_today")
        )
    answered = tracker.with_state(
        call,
        "talking",
        position=None,
        agent_interface=agent.interface if agent else None,
        agent_name=agent.member_name if agent else None,
        agent_extension=agent.extension if agent else None,
        answered_at=call.answered_at or tracker.now,
    )
    tracker.put_call(answered)
    if agent is not None:
        tracker.start_talk(answered, tracker.agents.get(agent.key, agent))


# ---------------------------------------------------------------------- driving it over AMI


class _HasItems(Protocol):
    @property
    def items(self) -> list[dict[str, Any]]: ...


class _ListClient(Protocol):
    async def send(self, action: str) -> _HasItems: ...


def items_sender(client: _ListClient) -> SendList:
    """Adapt an AMI client (``send(action) -> response.items``) to :data:`SendList`."""

    async def send(action: str) -> Sequence[AmiItem]:
        return (await client.send(action)).items

    return send


def _events(items: Iterable[AmiItem], name: str) -> list[AmiItem]:
    return [i for i in items if field(i, "Event") == name]


def _frame(item: AmiItem) -> Frame:
    fields: list[tuple[str, str]] = []
    for key, value in item.items():
        values = value if isinstance(value, list | tuple) else [value]
        fields.extend((str(key), str(v)) for v in values if v is not None)
    return Frame(tuple(fields))


async def rebuild_from_ami(
    send: SendList,
    live: LiveState,
    node: str,
    *,
    recorder: CallRecorder | None = None,
    normalizer: Normalizer | None = None,
) -> ResyncResult:
    """Ask Asterisk for its channels and queues and resync ``live`` (and the call records).

    Run it when the node's AMI connection is (re)established, before its events are applied.
    List items are answers, not events, so the node's ``normalizer`` is shown the channels
    here: a normalizer that is new (bridge restarted) must know them to follow their events.
    """
    channels = _events(await send("CoreShowChannels"), "CoreShowChannel")
    if normalizer is not None:
        for item in channels:
            normalizer.feed(_frame(item))
    status = await send("QueueStatus")
    summary = await send("QueueSummary")
    result = await live.resync(
        node,
        channels,
        _events(status, "QueueParams"),
        _events(status, "QueueMember"),
        _events(status, "QueueEntry"),
        queue_summaries=_events(summary, "QueueSummary"),
    )
    if recorder is not None:
        recorder.record_resync(result)
    return result
