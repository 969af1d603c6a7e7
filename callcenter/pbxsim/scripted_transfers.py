"""Scripted calls that the platform steers with AMI actions: Redirect (04), BlindTransfer (04b),
Atxfer (04c), the supervisors' ChanSpy originates (08).

The call is trace 01's answered call; at the trace's platform turn the script takes the command
the simulator's real ``CallActions`` handler gave it (or lets the real ``Originate`` handler's
call run) and plays the lab's reaction in the order the trace shows (see
:mod:`callcenter.pbxsim.scripted`)."""

from __future__ import annotations

from typing import TypeVar

from callcenter.pbxsim import messages as m
from callcenter.pbxsim.engine import Command, HangupCommand, RedirectCommand, TransferCommand
from callcenter.pbxsim.model import Channel, Fields
from callcenter.pbxsim.scripted import LabScript, Talk
from callcenter.pbxsim.scripted_originate import LabOutboundCall
from callcenter.pbxsim.steps import bridge_fields

__all__ = [
    "AttendedTransferToSeat",
    "BlindTransferToSeat",
    "RedirectTo12345",
    "SupervisedCall",
]

C = TypeVar("C", HangupCommand, RedirectCommand, TransferCommand)


def expect(command: Command | None, kind: type[C]) -> C:
    """The platform's action must have reached the script as ``kind``."""
    if not isinstance(command, kind):
        raise RuntimeError(f"expected a {kind.__name__} from the platform, got {command!r}")
    return command


class TransferredCall(LabScript):
    """Trace 01's answered call up to the platform's action (``TALK_S`` after the answer)."""

    NUMBER, NAME, TALK_S, SEAT = "", "", 0.0, 0
    STATUS_FIRST = False
    """The seat's device state overtook its ``Wait`` while it rang (a race, see ``ring``)."""

    async def talk(self) -> Talk:
        caller = self.inbound()
        await self.ivr(caller, self.NUMBER, self.NAME)
        await self.wait(2)
        await self.steps.choose(caller, "1", 4)
        queue = self.queue("legal-consult")
        seat = queue.members[self.SEAT]
        talk = await self.answered(caller, queue, seat, status_first=self.STATUS_FIRST)
        await self.wait(self.TALK_S)
        return talk

    async def jump(self, caller: Channel, context: str, exten: str) -> None:
        """An async goto: Asterisk reports the new location with the *old* application
        (``Newexten`` ``Application: Queue`` at ``transfer-targets,12345,1``), and the
        first priority's own application is never reported."""
        caller.context = context
        await self.steps.exten(caller, exten, 1, caller.application, caller.app_data)

    async def caller_ends_in(self, caller: Channel) -> None:
        """The caller hangs up in ``transfer-targets`` (no ``h`` extension there)."""
        steps = self.steps
        await steps.event("SoftHangupRequest", caller, ("Cause", "16"))
        await steps.hangup(caller)


class RedirectTo12345(TransferredCall):
    """Trace 04: 孙八's answered call; the platform redirects the caller to
    ``transfer-targets,12345,1``.  The seat's legs go away at once, but ``AgentComplete``
    (Reason ``caller``, without the seat's ``Dest…`` snapshot: that channel is gone) only
    comes when the caller finally hangs up in 12345."""

    NUMBER, NAME, TALK_S = "13905730008", "孙八", 9.0

    async def script(self) -> None:
        talk = await self.talk()
        redirect = expect(await self.platform(), RedirectCommand)
        steps, caller, leg = self.steps, talk.caller, talk.leg
        await self.jump(caller, redirect.context, redirect.exten)
        await steps.bridge_event("BridgeLeave", talk.bridge, 1, caller)
        await steps.next(caller, 2)  # Answer, Playback
        await steps.bridge_event("BridgeLeave", talk.bridge, 0, leg.one)
        await steps.leg_request(leg, 16)
        await steps.hangup(leg.one)
        await steps.leg_two_gone(leg, 16)
        await steps.release_seat(leg, self.now())
        await steps.next(caller)  # Wait(20)
        await self.wait(7)
        await steps.event("HangupRequest", caller, ("Cause", "16"))
        member = (("Interface", leg.member.interface), ("MemberName", leg.member.name))
        done = (*talk.timing(self.now()), ("Reason", "caller"))
        queue = (("Queue", talk.queue.name),)
        await steps.event("AgentComplete", caller, *queue, *member, *done, privilege="agent,all")
        await self.caller_ends_in(caller)


def blind_transfer_event(call: TransferredCall, talk: Talk, command: TransferCommand) -> Fields:
    """``BlindTransfer``: Transferer = the seat's ``;1`` half, Transferee = the caller."""
    model = call.model
    return m.event(
        model,
        "BlindTransfer",
        "call,all",
        ("Result", "Success"),
        *talk.leg.one.snapshot("Transferer", model.channelvars),
        *talk.caller.snapshot("Transferee", model.channelvars),
        *bridge_fields("Bridge", talk.bridge, 2),
        ("IsExternal", "Yes"),
        ("Context", command.context),
        ("Extension", command.exten),
    )


class BlindTransferToSeat(TransferredCall):
    """Trace 04b: 周九's call answered by 李娜 (8002); the platform blind-transfers the seat
    leg to ``transfer-targets,8003``: ``AgentComplete`` (Reason ``transfer``) at once, the
    caller dials 8003 (赵敏, not a queue member then), who answers after 2 s."""

    NUMBER, NAME, TALK_S, SEAT = "13905730009", "周九", 3.0, 1

    async def script(self) -> None:
        talk = await self.talk()
        transfer = expect(await self.platform(), TransferCommand)
        steps, caller, leg = self.steps, talk.caller, talk.leg
        await steps.event("Unhold", leg.one)
        await self.pbx.server.emit(blind_transfer_event(self, talk, transfer))
        await self.jump(caller, transfer.context, transfer.exten)
        done = (*talk.timing(self.now()), ("Reason", "transfer"))
        await steps.agent_event("AgentComplete", caller, talk.queue.name, leg, *done)
        await steps.bridge_event("BridgeLeave", talk.bridge, 1, caller)
        await steps.bridge_event("BridgeLeave", talk.bridge, 0, leg.one)
        await steps.leg_request(leg, 16)
        await steps.hangup(leg.one)
        await steps.next(caller)  # Dial(Local/8003@agent-phones/n,20)
        target = await self.dial_seat(caller, talk)
        await self.wait(5)
        await self.caller_leaves_target(caller, target)

    async def dial_seat(self, caller: Channel, talk: Talk) -> tuple[Channel, Channel, str]:
        """Dial() of the target seat, while the old seat's ``;2`` half is still going away."""
        steps, leg, exten = self.steps, talk.leg, caller.exten
        one, two = self.model.add_local_pair(exten, "agent-phones", linkedid=caller.linkedid)
        self.own(one, two)
        await steps.new_channel(one)
        await steps.event("SoftHangupRequest", leg.two, ("Cause", "16"))
        await steps.new_channel(two)
        one.caller_num, one.caller_name = exten, caller.caller_name
        steps.connect_line(one, caller)
        await steps.exten(one, exten, 1, "AppDial", "(Outgoing Line)")
        await steps.caller_id(one, exten, caller.caller_name, connected=False)
        steps.connect_line(two, one)  # the dialled side shows the ``;1`` half's number
        await steps.caller_id(two, caller.caller_num, caller.caller_name, connected=False)
        await steps.release_seat(leg, self.now())
        await steps.hangup(leg.two)
        await steps.run(two, exten, 1)
        await steps.next(two, 2)  # Ringing, Wait(2)
        await self.wait(2)
        await steps.next(two)  # Answer
        one.state = two.state = 6
        await steps.exten(one, "", 1, "AppDial", "(Outgoing Line)")
        bridge = self.model.new_bridge_id()
        await steps.bridge_event("BridgeEnter", bridge, 1, one)
        await steps.bridge_event("BridgeEnter", bridge, 2, caller)
        await steps.next(two)  # Echo
        return one, two, bridge

    async def caller_leaves_target(
        self, caller: Channel, target: tuple[Channel, Channel, str]
    ) -> None:
        steps, (one, two, bridge) = self.steps, target
        await steps.event("HangupRequest", caller, ("Cause", "16"))
        await steps.bridge_event("BridgeLeave", bridge, 1, caller)
        await steps.bridge_event("BridgeLeave", bridge, 0, one)
        await steps.event("HangupRequest", two, ("Cause", "16"))
        await steps.hangup(one)
        await steps.hangup(two, request="SoftHangupRequest")
        await self.caller_ends_in(caller)


def attended_transfer_event(call: TransferredCall, talk: Talk, consult: str) -> Fields:
    """``AttendedTransfer``: the seat's ``;1`` half transferred from both bridges; the caller's
    bridge stays (``DestType: Bridge``)."""
    model, seat = call.model, talk.leg.one
    return m.event(
        model,
        "AttendedTransfer",
        "call,all",
        ("Result", "Success"),
        *seat.snapshot("OrigTransferer", model.channelvars),
        *bridge_fields("OrigBridge", talk.bridge, 2),
        *seat.snapshot("SecondTransferer", model.channelvars),
        *bridge_fields("SecondBridge", consult, 0),
        *talk.caller.snapshot("Transferee", model.channelvars),
        ("IsExternal", "No"),
        ("DestType", "Bridge"),
        ("DestBridgeUniqueid", talk.bridge),
    )


UNKNOWN = ("<unknown>", "<unknown>")


class AttendedTransferToSeat(TransferredCall):
    """Trace 04c: 吴十's call answered by 张伟; the platform's ``Atxfer`` puts the caller on
    hold and calls ``transfer-targets,8003`` (a Local pair ``T`` that dials 8003: pair ``A``)
    into a consultation bridge; the platform's ``Hangup`` of the seat leg completes the
    transfer: ``T`` takes the seat's place, ``AttendedTransfer``, ``AgentComplete`` (Reason
    ``transfer``), then the Local pair ``T`` optimizes itself away (8003 joins the caller's
    bridge).  The caller hangs up later and runs ``h``."""

    NUMBER, NAME, TALK_S = "13905730010", "吴十", 3.0
    STATUS_FIRST = True

    async def script(self) -> None:
        talk = await self.talk()
        transfer = expect(await self.platform(), TransferCommand)
        await self.steps.event("Hold", talk.leg.one)
        target, target_dial = await self.consult(talk, transfer)
        await self.wait(4)
        expect(await self.platform(), HangupCommand)
        await self.complete(talk, target, target_dial)
        await self.wait(8)
        await self.caller_hangs_up_on(talk, target_dial)

    async def consult(
        self, talk: Talk, transfer: TransferCommand
    ) -> tuple[tuple[Channel, Channel, str], tuple[Channel, Channel, str]]:
        """``T`` = Local/8003@transfer-targets (consultation), ``A`` = the seat it dials."""
        steps, caller, seat = self.steps, talk.caller, talk.leg.one
        t1, t2 = self.model.add_local_pair(
            transfer.exten, transfer.context, linkedid=caller.linkedid
        )
        self.own(t1, t2)
        await steps.new_channel(t1)
        await steps.new_channel(t2)
        t2.connected_num, t2.connected_name = UNKNOWN
        await steps.caller_id(t2, caller.caller_num, caller.caller_name, connected=False)
        await steps.run(t2, transfer.exten, 1)
        await steps.next(t2)  # Dial(Local/8003@agent-phones/n,20)
        steps.connect_line(t1, caller)
        consult = self.model.new_bridge_id()
        await steps.bridge_event("BridgeEnter", consult, 1, t1)
        a1, a2 = self.model.add_local_pair(transfer.exten, "agent-phones", linkedid=caller.linkedid)
        self.own(a1, a2)
        await steps.new_channel(a1)
        await steps.new_channel(a2)
        a1.caller_num = transfer.exten
        steps.connect_line(a1, caller)
        await steps.exten(a1, transfer.exten, 1, "AppDial", "(Outgoing Line)")
        await steps.caller_id(a1, transfer.exten, "<unknown>", connected=False)
        steps.connect_line(a2, a1)
        await steps.caller_id(a2, caller.caller_num, caller.caller_name, connected=False)
        await steps.bridge_event("BridgeLeave", talk.bridge, 1, seat)
        await steps.bridge_event("BridgeEnter", consult, 2, seat)
        await steps.run(a2, transfer.exten, 1)
        await steps.next(a2, 2)  # Ringing, Wait(2)
        await self.wait(2)
        await steps.next(a2)  # Answer
        a1.state = a2.state = t1.state = t2.state = 6
        await steps.exten(a1, "", 1, "AppDial", "(Outgoing Line)")
        dial = self.model.new_bridge_id()
        await steps.bridge_event("BridgeEnter", dial, 1, a1)
        await steps.bridge_event("BridgeEnter", dial, 2, t2)
        await steps.next(a2)  # Echo
        return (t1, t2, consult), (a1, a2, dial)

    async def complete(
        self,
        talk: Talk,
        target: tuple[Channel, Channel, str],
        target_dial: tuple[Channel, Channel, str],
    ) -> None:
        """The seat leg hangs up: ``T`` moves into the caller's bridge, then optimizes away."""
        steps, caller, leg = self.steps, talk.caller, talk.leg
        (t1, t2, consult), (a1, _a2, dial) = target, target_dial
        leg.one.connected_num, leg.one.connected_name = UNKNOWN
        await steps.bridge_event("BridgeLeave", consult, 1, leg.one)
        await steps.bridge_event("BridgeLeave", consult, 0, t1)
        await steps.bridge_event("BridgeEnter", talk.bridge, 2, t1)
        await steps.leg_request(leg, 16)
        await steps.event("SoftHangupRequest", leg.two, ("Cause", "16"))
        leg.two.caller_num, leg.two.caller_name = UNKNOWN
        await steps.hangup(leg.two)
        await steps.event("NewCallerid", leg.two, ("CID-CallingPres", "67 (Number Unavailable)"))
        await self.pbx.server.emit(attended_transfer_event(self, talk, consult))
        done = (*talk.timing(self.now()), ("Reason", "transfer"))
        await steps.agent_event("AgentComplete", caller, talk.queue.name, leg, *done)
        await steps.hangup(leg.one)
        await steps.release_seat(leg, self.now())
        await steps.bridge_event("BridgeLeave", dial, 1, a1)
        await steps.bridge_event("BridgeLeave", talk.bridge, 1, t1)
        await steps.bridge_swap(talk.bridge, 2, a1, t1)  # Local/…@transfer-targets optimized away
        await steps.event("HangupRequest", t2, ("Cause", "16"))
        await steps.hangup(t1)
        await steps.bridge_event("BridgeLeave", dial, 0, t2)
        await steps.hangup(t2, request="SoftHangupRequest")
        caller.connected_num, caller.connected_name = UNKNOWN

    async def caller_hangs_up_on(
        self, talk: Talk, target_dial: tuple[Channel, Channel, str]
    ) -> None:
        steps, caller, (a1, a2, _dial) = self.steps, talk.caller, target_dial
        await steps.event("HangupRequest", caller, ("Cause", "16"))
        await steps.bridge_event("BridgeLeave", talk.bridge, 1, caller)
        await steps.bridge_event("BridgeLeave", talk.bridge, 0, a1)
        await steps.event("HangupRequest", a2, ("Cause", "16"))
        await steps.hangup(a1)
        await steps.hangup(a2, request="SoftHangupRequest")
        await steps.caller_gone(caller)


class SupervisedCall(TransferredCall):
    """Trace 08: 褚十三's call answered by 张伟; the platform originates two supervisors
    (``Local/spy@supervisor/n``, ``Application: Wait``): 班长-卫 listens (``ChanSpy`` ``qE``),
    班长-蒋 whispers (``qEw``).  When the caller hangs up, ChanSpy's ``E`` ends both spy calls,
    interleaved with the seat's legs going away."""

    NUMBER, NAME, TALK_S = "13905730030", "褚十三", 1.0
    ORDER = (
        "request",
        "complete",
        "caller_leaves",
        "seat_leaves",
        "seat_request",
        "seat_soft",
        "caller_soft",
        "seat_two",
        "caller_h",
        "caller_gone",
        "seat_free",
        "second_spy_ends",
        "seat_one",
        "first_spy_ends",
    )

    async def script(self) -> None:
        talk = await self.talk()
        await self.platform()  # Originate: 班长-卫 listens
        await self.wait(4.6)
        await self.platform()  # Originate: 班长-蒋 whispers
        await self.wait(11.6)
        first, second = self.spies()
        others = {"first_spy_ends": first.spy_ends, "second_spy_ends": second.spy_ends}
        await self.caller_hangs_up(talk, self.ORDER, others)

    def spies(self) -> list[LabOutboundCall]:
        """The supervisors' originated calls, oldest first."""
        owners = [
            self.pbx.calls.owner(name)
            for name in self.model.channels
            if name.startswith("Local/spy@supervisor-") and name.endswith(";1")
        ]
        return [owner for owner in owners if isinstance(owner, LabOutboundCall)]
