"""Event handlers of the live model: one state transition per normalized event type.

Each handler takes the :class:`~callcenter.state.tracker.Tracker` and one event, and only
replaces items through the tracker (which records what changed).  The rules they follow --
transitions, not increments; a repeat delivery is a no-op -- are in the tracker's docstring.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from callcenter.ami.events import (
    AgentNoAnswer,
    AgentRinging,
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
    IvrLeft,
    RecordingStarted,
    RecordingStopped,
)
from callcenter.state.model import LiveCall, item_key, overall_state

if TYPE_CHECKING:
    from callcenter.state.tracker import Tracker

__all__ = ["HANDLERS"]


def _on_offered(t: Tracker, e: CallOffered) -> None:
    if e.linkedid is None:
        return
    key = item_key(e.node, e.linkedid)
    if key in t.calls or t.is_ended(key):
        return
    caller_region = t.regions.caller(e.caller_number)
    t.put_call(
        LiveCall(
            node=e.node,
            linkedid=e.linkedid,
            uniqueid=e.uniqueid,
            caller_number=e.caller_number,
            caller_name=e.caller_name,
            caller_region_code=caller_region,
            region_code=t.regions.call(None, caller_region),
            state="ivr",
            state_since=t.now,
            offered_at=t.now,
        )
    )
    t.book(t.calls[key]).last_event = e


def _on_ivr_entered(t: Tracker, e: IvrEntered) -> None:
    call = t.open_call(e)
    if call is None:
        return
    t.book(call).ivr_open = True
    if call.state != "ivr":
        t.end_talk(call)
        t.leave_queue(call)
        t.put_call(t.with_state(call, "ivr", queue=None, position=None, **_NO_AGENT))


def _on_ivr_left(t: Tracker, e: IvrLeft) -> None:
    call = t.open_call(e)
    if call is None:
        return
    book = t.book(call)
    if book.ivr_open and e.reason == "selected" and e.selection:
        t.put_call(replace(call, ivr_path=(*call.ivr_path, e.selection)))
    book.ivr_open = False


def _on_queued(t: Tracker, e: CallQueued) -> None:
    call = t.open_call(e)
    if call is None or (call.queue == e.queue and call.state in ("queued", "ringing")):
        return
    t.end_talk(call)
    t.join_queue(replace(call, **_NO_AGENT), e.queue, e.position)


def _on_ringing(t: Tracker, e: AgentRinging) -> None:
    call = t.open_call(e)
    if call is None or call.state not in ("queued", "ringing"):
        return
    agent = t.agent(e.node, e.interface, e.member_name)
    t.put_agent(agent)
    t.put_call(
        t.with_state(
            call,
            "ringing",
            agent_interface=e.interface,
            agent_name=agent.member_name,
            agent_extension=agent.extension,
        )
    )


def _on_no_answer(t: Tracker, e: AgentNoAnswer) -> None:
    call = t.open_call(e)
    if call is None:
        return
    agent = t.agent(e.node, e.interface, e.member_name)
    t.put_agent(agent)
    t.count(call, "missed", agent.key, lambda: _bump_missed(t, agent.key))
    if call.state == "ringing" and call.agent_interface == e.interface:
        t.put_call(t.with_state(call, "queued", **_NO_AGENT))


def _bump_missed(t: Tracker, key: str) -> None:
    agent = t.agents[key]
    t.put_agent(replace(agent, missed_today=agent.missed_today + 1))


def _on_answered(t: Tracker, e: CallAnswered) -> None:
    call = t.open_call(e)
    if call is None or (call.state in ("talking", "held") and call.agent_interface == e.interface):
        return
    t.end_talk(call)
    t.leave_queue(call)
    agent = t.agent(e.node, e.interface, e.member_name)
    t.put_agent(agent)
    t.count(call, "answered", e.queue, lambda: t.bump_queue(e.node, e.queue, "answered_today"))
    t.count(call, "answered", agent.key, lambda: _bump_answered(t, agent.key))
    answered = t.with_state(
        call,
        "talking",
        queue=e.queue,
        position=None,
        region_code=t.regions.call(e.queue, call.caller_region_code),
        agent_interface=e.interface,
        agent_name=agent.member_name,
        agent_extension=agent.extension,
        answered_at=call.answered_at or t.now,
        transfer_target=None,
    )
    t.put_call(answered)
    t.start_talk(answered, t.agents[agent.key])


def _bump_answered(t: Tracker, key: str) -> None:
    agent = t.agents[key]
    t.put_agent(replace(agent, answered_today=agent.answered_today + 1))


def _on_transferred(t: Tracker, e: CallTransferred) -> None:
    call = t.open_call(e)
    if call is None or (call.transfer_target == e.target and call.agent_interface is None):
        return
    t.end_talk(call)
    t.put_call(t.with_state(call, "talking", transfer_target=e.target, **_NO_AGENT))


def _on_held(t: Tracker, e: CallHeld) -> None:
    call = t.open_call(e)
    if call is not None and call.state == "talking":
        t.put_call(t.with_state(call, "held"))


def _on_unheld(t: Tracker, e: CallUnheld) -> None:
    call = t.open_call(e)
    if call is not None and call.state == "held":
        t.put_call(t.with_state(call, "talking"))


def _on_abandoned(t: Tracker, e: CallAbandoned) -> None:
    call = t.open_call(e)
    if call is None:
        return
    t.leave_queue(call)
    outcome = "abandoned_today" if e.final else "overflowed_today"
    t.count(call, outcome, e.queue, lambda: t.bump_queue(e.node, e.queue, outcome))
    if call.queue == e.queue and call.state in ("queued", "ringing"):
        t.put_call(t.with_state(call, "ivr", position=None, **_NO_AGENT))


def _on_ended(t: Tracker, e: CallEnded) -> None:
    call = t.open_call(e)
    if call is not None:
        t.end_call(call)


def _on_recording(t: Tracker, e: RecordingStarted | RecordingStopped) -> None:
    call = t.open_call(e)
    if call is not None:
        t.put_call(replace(call, recording=isinstance(e, RecordingStarted)))


def _on_agent_state(t: Tracker, e: AgentStateChanged) -> None:
    agent = t.agent(e.node, e.interface, e.member_name)
    members = {m.queue: m.state for m in agent.queues}
    if e.state == "logged_out" and e.reason is None:  # QueueMemberRemoved
        members.pop(e.queue, None)
    else:
        members[e.queue] = e.state
    state = overall_state(members.values())
    if state == e.state:
        reason = e.reason
    else:
        reason = agent.reason if state == agent.state else None
    t.set_agent_state(agent, members, reason)


_NO_AGENT: dict[str, Any] = {"agent_interface": None, "agent_name": None, "agent_extension": None}

Handler = Callable[["Tracker", Any], None]

HANDLERS: dict[type[CallEvent], Handler] = {
    CallOffered: _on_offered,
    IvrEntered: _on_ivr_entered,
    IvrLeft: _on_ivr_left,
    CallQueued: _on_queued,
    AgentRinging: _on_ringing,
    AgentNoAnswer: _on_no_answer,
    CallAnswered: _on_answered,
    CallTransferred: _on_transferred,
    CallHeld: _on_held,
    CallUnheld: _on_unheld,
    CallAbandoned: _on_abandoned,
    CallEnded: _on_ended,
    RecordingStarted: _on_recording,
    RecordingStopped: _on_recording,
    AgentStateChanged: _on_agent_state,
}
