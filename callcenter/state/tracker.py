"""The live model of calls, queues and agents (pure, synchronous; handlers in ``handlers.py``).

Rules kept in one place:

* **Order** -- events are applied in the order one node's normalizer produced them.
* **Idempotency** -- every handler is a *state transition*, not an increment: a caller already
  waiting in a queue is not queued again, an agent already ``in_call`` stays in the same state
  since the same time, and "today" counters count each call once (per queue and outcome, per
  agent), remembered on the call's book.  A call that ended is remembered (the newest
  :data:`ENDED_MEMORY`), so a replayed ``CallOffered`` does not reopen it.  On top of that, an
  event equal to the call's previous event is dropped: that is what a duplicate delivery looks
  like, and no real call produces the same event twice in a row (a second ``AgentNoAnswer``
  always has an ``AgentRinging`` before it).
* **Changes** -- handlers replace frozen items; :meth:`Tracker.commit` compares each touched item
  with its value before the event, so only real differences become :class:`Change` messages.  An
  item moving between regions is removed from the old one and upserted in the new one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any

from callcenter.ami.events import AgentState, CallEvent
from callcenter.recent import RecentSet
from callcenter.state.handlers import HANDLERS
from callcenter.state.model import (
    CallState,
    Change,
    Item,
    Kind,
    LiveAgent,
    LiveCall,
    LiveQueue,
    Membership,
    WaitingCaller,
    extension_of,
    item_key,
    overall_state,
)
from callcenter.state.regions import Regions

__all__ = ["Tracker"]


@dataclass(slots=True)
class _Book:
    """Per-call memory that is not part of the snapshot."""

    last_event: CallEvent | None = None
    ivr_open: bool = False
    counted: set[tuple[str, str]] = field(default_factory=set)
    talk_started: float | None = None


ENDED_MEMORY = 2048
"""Ended calls the tracker remembers (newest first), against a replayed ``CallOffered`` or a
resync re-creating a call from a channel that outlived it.  Both come within seconds to minutes;
2,048 calls are 12 minutes at the province's absolute peak (500 live calls, ~170 new a minute)
and two hours at a busy 1,000 calls an hour.  The bound keeps memory flat whatever the call count.
"""


class Tracker:
    """In-memory live model of every node; :meth:`apply` returns what changed."""

    def __init__(self, regions: Regions, *, tz: tzinfo, memory: int = ENDED_MEMORY) -> None:
        self.regions = regions
        self.tz = tz
        self.calls: dict[str, LiveCall] = {}
        self.queues: dict[str, LiveQueue] = {}
        self.agents: dict[str, LiveAgent] = {}
        self.now = 0.0
        self._books: dict[str, _Book] = {}
        self._ended = RecentSet[str](memory)
        self._day: date | None = None
        self._next_day = -math.inf
        """Epoch seconds at which the day after ``_day`` starts (events before it: same day)."""
        self._before: dict[tuple[Kind, str], Item | None] = {}

    # ------------------------------------------------------------------ public

    def apply(self, event: CallEvent, now: float) -> list[Change]:
        self.begin(now)
        handler = HANDLERS.get(type(event))
        if handler is not None:
            handler(self, event)
        return self.commit()

    def begin(self, now: float) -> None:
        """Start a transaction at ``now`` (also rolls "today" counters over at midnight)."""
        self.now = now
        self._roll_day(now)

    def commit(self) -> list[Change]:
        changes: list[Change] = []
        for (kind, key), before in self._before.items():
            after = self._table(kind).get(key)
            if after == before:
                continue
            if before is not None and (after is None or after.region_code != before.region_code):
                changes.append(Change(kind, key, before.region_code, None))
            if after is not None:
                changes.append(Change(kind, key, after.region_code, after))
        self._before = {}
        return changes

    def is_ended(self, key: str) -> bool:
        return key in self._ended

    # ------------------------------------------------------------------ item writes

    def _table(self, kind: Kind) -> Mapping[str, Item]:
        tables: dict[Kind, Mapping[str, Item]] = {
            "calls": self.calls,
            "queues": self.queues,
            "agents": self.agents,
        }
        return tables[kind]

    def _remember(self, kind: Kind, key: str) -> None:
        self._before.setdefault((kind, key), self._table(kind).get(key))

    def put_call(self, call: LiveCall) -> None:
        self._remember("calls", call.key)
        self.calls[call.key] = call
        self._books.setdefault(call.key, _Book())

    def put_queue(self, queue: LiveQueue) -> None:
        self._remember("queues", queue.key)
        self.queues[queue.key] = queue

    def put_agent(self, agent: LiveAgent) -> None:
        self._remember("agents", agent.key)
        self.agents[agent.key] = agent

    def drop_queue(self, key: str) -> None:
        self._remember("queues", key)
        self.queues.pop(key, None)

    def end_call(self, call: LiveCall) -> None:
        """The call is over: agent talk time, queue, and the call itself are settled."""
        self.end_talk(call)
        self.leave_queue(call)
        self._remember("calls", call.key)
        del self.calls[call.key]
        self._books.pop(call.key, None)
        self._ended.add(call.key)

    def book(self, call: LiveCall) -> _Book:
        return self._books.setdefault(call.key, _Book())

    # ------------------------------------------------------------------ helpers

    def with_state(self, call: LiveCall, state: CallState, **fields: Any) -> LiveCall:
        since = self.now if state != call.state else call.state_since
        return replace(call, state=state, state_since=since, **fields)

    def queue(self, node: str, name: str) -> LiveQueue:
        found = self.queues.get(item_key(node, name))
        if found is not None:
            return found
        return LiveQueue(node=node, name=name, region_code=self.regions.queue_or_default(name))

    def agent(self, node: str, interface: str, member_name: str | None = None) -> LiveAgent:
        found = self.agents.get(item_key(node, interface))
        if found is not None:
            if member_name and found.member_name != member_name:
                return replace(found, member_name=member_name)
            return found
        return LiveAgent(
            node=node,
            interface=interface,
            member_name=member_name,
            extension=extension_of(interface),
            region_code=self.regions.agent(interface, ()),
            state="ready",  # someone rings it or reports it: it is logged in
            state_since=self.now,
        )

    def set_waiting(self, queue: LiveQueue, waiting: Iterable[WaitingCaller]) -> None:
        """Store the queue with positions renumbered 1..n and mirror them on the calls."""
        numbered = tuple(replace(w, position=i) for i, w in enumerate(waiting, start=1))
        self.put_queue(replace(queue, waiting=numbered))
        for w in numbered:
            call = self.calls.get(item_key(queue.node, w.linkedid))
            if call is not None and call.queue == queue.name and call.position != w.position:
                self.put_call(replace(call, position=w.position))

    def join_queue(self, call: LiveCall, name: str, position: int | None) -> LiveCall:
        if call.queue != name:
            self.leave_queue(call)
        queue = self.queue(call.node, name)
        existing = next((w for w in queue.waiting if w.linkedid == call.linkedid), None)
        waiting = [w for w in queue.waiting if w is not existing]
        entry = WaitingCaller(
            linkedid=call.linkedid,
            uniqueid=call.uniqueid,
            caller_number=call.caller_number,
            caller_name=call.caller_name,
            position=0,
            since=existing.since if existing else self.now,
        )
        index = len(waiting) if position is None else max(0, min(position - 1, len(waiting)))
        waiting.insert(index, entry)
        joined = self.with_state(
            call,
            "queued",
            queue=name,
            position=index + 1,
            region_code=self.regions.call(name, call.caller_region_code),
            queued_at=call.queued_at or self.now,
        )
        self.put_call(joined)
        self.set_waiting(queue, waiting)
        return self.calls[call.key]

    def leave_queue(self, call: LiveCall) -> None:
        if call.queue is None:
            return
        queue = self.queues.get(item_key(call.node, call.queue))
        if queue is not None and any(w.linkedid == call.linkedid for w in queue.waiting):
            self.set_waiting(queue, [w for w in queue.waiting if w.linkedid != call.linkedid])

    def count(self, call: LiveCall, outcome: str, target: str, bump: Callable[[], None]) -> None:
        """Run ``bump`` once per call, outcome and target, however often the event comes."""
        book = self.book(call)
        if (outcome, target) not in book.counted:
            book.counted.add((outcome, target))
            bump()

    def bump_queue(self, node: str, name: str, counter: str) -> None:
        queue = self.queue(node, name)
        self.put_queue(replace(queue, **{counter: getattr(queue, counter) + 1}))

    def start_talk(self, call: LiveCall, agent: LiveAgent) -> None:
        self.book(call).talk_started = self.now
        self.put_agent(replace(agent, current_call=call.linkedid))

    def end_talk(self, call: LiveCall) -> None:
        book = self.book(call)
        started, book.talk_started = book.talk_started, None
        if call.agent_interface is None or started is None:
            return
        agent = self.agents.get(item_key(call.node, call.agent_interface))
        if agent is None:
            return
        current = None if agent.current_call == call.linkedid else agent.current_call
        talk = agent.talk_seconds_today + max(0.0, self.now - started)
        self.put_agent(replace(agent, current_call=current, talk_seconds_today=talk))

    def set_agent_state(
        self, agent: LiveAgent, members: Mapping[str, AgentState], reason: str | None
    ) -> None:
        """Per-queue states in, one agent state (and since when) out."""
        state = overall_state(members.values())
        self.put_agent(
            replace(
                agent,
                state=state,
                state_since=self.now if state != agent.state else agent.state_since,
                reason=reason,
                queues=tuple(Membership(queue=q, state=s) for q, s in sorted(members.items())),
                region_code=self.regions.agent(agent.interface, members),
            )
        )

    def _roll_day(self, now: float) -> None:
        if now < self._next_day:  # same day as the last event: one float compare, no tz work
            return
        day = datetime.fromtimestamp(now, self.tz).date()
        if self._day is not None and day <= self._day:
            return
        first, self._day = self._day is None, day
        self._next_day = _day_start(day + timedelta(days=1), self.tz)
        if first:
            return
        for queue in list(self.queues.values()):
            self.put_queue(replace(queue, answered_today=0, abandoned_today=0, overflowed_today=0))
        for agent in list(self.agents.values()):
            self.put_agent(replace(agent, answered_today=0, missed_today=0, talk_seconds_today=0.0))

    def open_call(self, event: CallEvent) -> LiveCall | None:
        """The live call an event is about, or None if unknown, ended or a repeat delivery."""
        if event.linkedid is None:
            return None
        call = self.calls.get(item_key(event.node, event.linkedid))
        if call is None:
            return None
        book = self.book(call)
        if book.last_event == event:
            return None
        book.last_event = event
        return call


def _day_start(day: date, tz: tzinfo) -> float:
    """The first instant of ``day`` in ``tz``, in epoch seconds.

    ``fold=0`` gives the right instant on DST days too: a midnight that falls in a gap maps to
    the transition, a midnight that occurs twice to its first occurrence.
    """
    return datetime.combine(day, time.min, tzinfo=tz).timestamp()
