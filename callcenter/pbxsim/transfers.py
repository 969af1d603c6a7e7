"""What a generated call does when an AMI action steers it: Hangup, Redirect, BlindTransfer,
Atxfer (traces 03, 04, 04b, 04c; only the platform-relevant events).

* Redirect of an answered caller (trace 04): the caller runs the new dialplan location at once
  (a ``Newexten`` in another context is how the platform sees the redirect), the seat legs hang
  up and the seat is free; ``AgentComplete`` (Reason ``caller``) only comes when the caller
  finally hangs up.
* BlindTransfer (trace 04b): ``Unhold``, ``BlindTransfer``, ``AgentComplete`` (Reason
  ``transfer``), the old seat leg hangs up, the caller dials the target and is bridged with it.
* Atxfer (trace 04c): ``Hold`` on the seat leg, the target is called into a consultation bridge;
  when the seat leg hangs up (a ``Hangup`` action, or after the consultation) the target joins
  the caller's bridge, then ``AttendedTransfer`` and ``AgentComplete`` (Reason ``transfer``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from callcenter.pbxsim import messages as m
from callcenter.pbxsim.calls import Interrupted
from callcenter.pbxsim.engine import Command, HangupCommand, RedirectCommand, TransferCommand
from callcenter.pbxsim.model import Channel, Member
from callcenter.pbxsim.steps import bridge_fields, seat_exten

if TYPE_CHECKING:
    from callcenter.pbxsim.inbound import InboundCall

__all__ = ["Party", "plan"]

Step = Callable[[], Awaitable[None]]
_TARGET_RING_S = 2.0
_CONSULT_S = 8.0
_REDIRECT_STAY_S = (10.0, 40.0)


@dataclass
class Party:
    """Whoever the caller was transferred to: a Local pair, and the seat behind it if any."""

    one: Channel
    two: Channel
    member: Member | None


def plan(call: InboundCall, channel: Channel, command: Command) -> Step | None:
    """The step that carries ``command`` out from the call's current phase."""
    if isinstance(command, HangupCommand):
        if call.phase in ("redirected", "transferred"):
            return lambda: _end_after_move(call, cause=command.cause, requested=False)
        return lambda: call.hung_up_by_action(channel, command)
    if isinstance(command, RedirectCommand):
        return lambda: _redirect(call, channel, command)
    if command.attended:
        return lambda: _attended(call, command)
    return lambda: _blind(call, command)


# --------------------------------------------------------------------------- Redirect


async def _redirect(call: InboundCall, channel: Channel, command: RedirectCommand) -> None:
    if call.phase == "talk" and channel is not call.caller:
        return await call.agent_hangs_up()  # the seat leg was sent elsewhere
    steps, caller = call.pbx.steps, call.caller
    was = call.phase
    caller.context = command.context
    await steps.exten(
        caller, command.exten, command.priority, "NoOp", f"redirected to {command.exten}"
    )
    if was == "talk":
        await _seat_leaves(call)
    elif was == "queue" and call.queue is not None:
        await _leave_queue(call)
    call.phase = "redirected"
    await steps.exten(caller, command.exten, command.priority + 1, "Answer")
    await steps.exten(caller, command.exten, command.priority + 2, "Wait", "20")
    await call.pause(call.ctx.rng.uniform(*_REDIRECT_STAY_S))
    await _end_after_move(call, cause=16, requested=True)


async def _seat_leaves(call: InboundCall) -> None:
    """The caller left the bridge: both seat halves hang up, the seat is free."""
    assert call.leg is not None
    steps, leg, now = call.pbx.steps, call.leg, call.pbx.clock.now()
    await steps.bridge_event("BridgeLeave", call.bridge, 1, call.caller)
    await steps.bridge_event("BridgeLeave", call.bridge, 0, leg.one)
    call.caller.bridge_id = ""
    await steps.event("HangupRequest", leg.two, ("Cause", "16"))
    await steps.hangup(leg.one)
    await steps.hangup(leg.two, request="SoftHangupRequest")
    await steps.release_seat(leg, now)
    call.ctx.board.start_wrapup(leg.member, now)
    call.disown((leg.one, leg.two))


async def _leave_queue(call: InboundCall) -> None:
    assert call.queue is not None
    if call.leg is not None:
        await call.pbx.steps.drop_seat_leg(call.leg, cause=0)
        call.disown((call.leg.one, call.leg.two))
        call.leg = None
    await call.pbx.steps.leave(call.caller, call.queue)


async def _end_after_move(call: InboundCall, *, cause: int, requested: bool) -> None:
    """Hang-up of a caller who was redirected or transferred away from the queue's seat."""
    steps, caller, now = call.pbx.steps, call.caller, call.pbx.clock.now()
    if requested:
        await steps.event("HangupRequest", caller, ("Cause", str(cause)))
    party = call.party
    if party is not None:
        await _drop_party(call, party, now)
    if call.leg is not None and call.queue is not None and call.phase == "redirected":
        done = (*call.timing(now), ("Reason", "caller"))
        await steps.agent_event("AgentComplete", caller, call.queue.name, call.leg, *done)
        call.leg = None
    await steps.event("SoftHangupRequest", caller, ("Cause", str(cause)))
    await steps.hangup(caller, cause)


# --------------------------------------------------------------------------- BlindTransfer


async def _blind(call: InboundCall, command: TransferCommand) -> None:
    assert call.leg is not None and call.queue is not None
    steps, caller, leg = call.pbx.steps, call.caller, call.leg
    await steps.event("Unhold", leg.one)
    await call.pbx.server.emit(_blind_transfer_event(call, command))
    caller.context = command.context
    await steps.exten(caller, command.exten, 1, "NoOp", f"transferred to {command.exten}")
    now = call.pbx.clock.now()
    done = (*call.timing(now), ("Reason", "transfer"))
    await steps.agent_event("AgentComplete", caller, call.queue.name, leg, *done)
    await _seat_leaves(call)
    call.disown((leg.one, leg.two))
    call.leg = None
    call.stats.transferred += 1
    target = f"Local/{command.exten}@agent-phones/n,20"
    await steps.exten(caller, command.exten, 2, "Dial", target)
    await _bridge_with(call, await _call_party(call, command), new_bridge=True)


def _blind_transfer_event(call: InboundCall, command: TransferCommand) -> list[tuple[str, str]]:
    assert call.leg is not None
    model = call.pbx.model
    return m.event(
        model,
        "BlindTransfer",
        "call,all",
        ("Result", "Success"),
        *call.leg.one.snapshot("Transferer", model.channelvars),
        *call.caller.snapshot("Transferee", model.channelvars),
        *bridge_fields("Bridge", call.bridge, 2),
        ("IsExternal", "Yes"),
        ("Context", command.context),
        ("Extension", command.exten),
    )


# --------------------------------------------------------------------------- the new party


def _member_for(call: InboundCall, exten: str) -> Member | None:
    for queue in call.pbx.model.queues.values():
        for member in queue.members:
            if seat_exten(member.interface) == exten:
                return member
    return None


async def _call_party(call: InboundCall, command: TransferCommand) -> Party:
    """Ring the transfer target (a seat of the model, or any number) until it answers."""
    steps, caller = call.pbx.steps, call.caller
    member = _member_for(call, command.exten)
    context = "agent-phones" if member is not None else command.context
    one, two = call.pbx.model.add_local_pair(command.exten, context, linkedid=caller.linkedid)
    call.own(one, two)
    await steps.new_channel(one)
    await steps.new_channel(two)
    await steps.caller_id(two, caller.caller_num, caller.caller_name, connected=True)
    await steps.exten(two, command.exten, 1, "Ringing")
    if member is not None:
        await steps.member_status(member.interface, 2)
    await call.pause(_TARGET_RING_S)
    await steps.exten(two, command.exten, 2, "Answer")
    one.state = two.state = 6
    return Party(one, two, member)


async def _bridge_with(call: InboundCall, party: Party, *, new_bridge: bool) -> None:
    """The caller talks with ``party`` for the rest of the call, then hangs up."""
    steps = call.pbx.steps
    if new_bridge:
        call.bridge = call.pbx.model.new_bridge_id()
        await steps.bridge_event("BridgeEnter", call.bridge, 1, party.one)
        await steps.bridge_event("BridgeEnter", call.bridge, 2, call.caller)
    party.one.bridge_id = call.caller.bridge_id = call.bridge
    call.party, call.phase = party, "transferred"
    await call.pause(max(1.0, call.talk_s / 2))
    await _end_after_move(call, cause=16, requested=True)


async def _drop_party(call: InboundCall, party: Party, now: float) -> None:
    steps = call.pbx.steps
    await steps.bridge_event("BridgeLeave", call.bridge, 1, call.caller)
    await steps.bridge_event("BridgeLeave", call.bridge, 0, party.one)
    await steps.event("HangupRequest", party.two, ("Cause", "16"))
    await steps.hangup(party.one)
    await steps.hangup(party.two, request="SoftHangupRequest")
    if party.member is not None:
        await steps.member_status(party.member.interface, 1)
    call.disown((party.one, party.two))
    call.party = None


# --------------------------------------------------------------------------- Atxfer


async def _attended(call: InboundCall, command: TransferCommand) -> None:
    assert call.leg is not None
    steps, leg = call.pbx.steps, call.leg
    await steps.event("Hold", leg.one)
    consult = call.pbx.model.new_bridge_id()
    party = await _call_party(call, command)
    await steps.bridge_event("BridgeEnter", consult, 1, party.one)
    await steps.bridge_event("BridgeLeave", call.bridge, 1, leg.one)
    await steps.bridge_event("BridgeEnter", consult, 2, leg.one)
    call.phase = "consult"
    try:
        await call.pause(_CONSULT_S)
    except Interrupted:
        pass  # refuse() lets only the Hangup of the transferring seat leg through
    await _complete_attended(call, party, consult)


async def _complete_attended(call: InboundCall, party: Party, consult: str) -> None:
    """The transferring seat hangs up: the target takes its place in the caller's bridge."""
    assert call.leg is not None and call.queue is not None
    steps, caller, leg, now = call.pbx.steps, call.caller, call.leg, call.pbx.clock.now()
    await steps.bridge_event("BridgeLeave", consult, 1, leg.one)
    await steps.bridge_event("BridgeLeave", consult, 0, party.one)
    await steps.bridge_event("BridgeEnter", call.bridge, 2, party.one)
    await steps.hangup(leg.two, request="HangupRequest")
    await call.pbx.server.emit(_attended_transfer_event(call, consult))
    done = (*call.timing(now), ("Reason", "transfer"))
    await steps.agent_event("AgentComplete", caller, call.queue.name, leg, *done)
    await steps.hangup(leg.one)
    await steps.release_seat(leg, now)
    call.ctx.board.start_wrapup(leg.member, now)
    call.disown((leg.one, leg.two))
    call.leg = None
    call.stats.transferred += 1
    await _bridge_with(call, party, new_bridge=False)


def _attended_transfer_event(call: InboundCall, consult: str) -> list[tuple[str, str]]:
    assert call.leg is not None
    model, seat = call.pbx.model, call.leg.one
    return m.event(
        model,
        "AttendedTransfer",
        "call,all",
        ("Result", "Success"),
        *seat.snapshot("OrigTransferer", model.channelvars),
        *bridge_fields("OrigBridge", call.bridge, 2),
        *seat.snapshot("SecondTransferer", model.channelvars),
        *bridge_fields("SecondBridge", consult, 0),
        *call.caller.snapshot("Transferee", model.channelvars),
        ("IsExternal", "No"),
        ("DestType", "Bridge"),
        ("DestBridgeUniqueid", call.bridge),
    )
