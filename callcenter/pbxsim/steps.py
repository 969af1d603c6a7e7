"""Reusable pieces of a call as Asterisk 22 reports them on AMI (field order of the traces).

Scripted scenarios, the traffic generator and the action handlers all build their events from
these steps, so a layout is written once.  Only events of
:data:`callcenter.ami.normalize.USED_EVENTS` are sent (what a production ``manager.conf`` event
filter lets through), plus ``VarSet`` when :attr:`EventOptions.varset` asks for it.  ``Newexten``
is the one high-volume event the platform uses (IVR and Redirect detection); it can be switched
off for benchmarks that only count queue events.
"""

from __future__ import annotations

from dataclasses import dataclass

from callcenter.pbxsim import messages as m
from callcenter.pbxsim.ami_server import AmiServer
from callcenter.pbxsim.model import Channel, Fields, Member, PbxModel, Queue, QueueEntry

__all__ = ["CAUSE_TEXT", "CID_PRES", "CallSteps", "EventOptions", "SeatLeg", "seat_exten"]

CID_PRES = ("CID-CallingPres", "0 (Presentation Allowed, Not Screened)")
CAUSE_TEXT = {0: "Unknown", 16: "Normal Clearing", 17: "User busy", 19: "No user response"}
AGENT = "agent,all"


@dataclass(frozen=True)
class EventOptions:
    """Which optional event families the simulator sends."""

    newexten: bool = True
    varset: bool = False


@dataclass
class SeatLeg:
    """The Local channel pair Queue() creates to ring a member: ``;1`` is bridged, ``;2`` rings."""

    member: Member
    one: Channel
    two: Channel
    rung_at: float


def seat_exten(interface: str) -> str:
    """``Local/8001@agent-phones/n`` -> ``8001``; ``PJSIP/8001`` -> ``8001``."""
    return interface.partition("/")[2].partition("@")[0].partition("/")[0]


class CallSteps:
    """Event emitters bound to one server; each keeps the model's channel state in step."""

    def __init__(self, server: AmiServer, options: EventOptions | None = None) -> None:
        self.server = server
        self.options = options or EventOptions()

    @property
    def model(self) -> PbxModel:
        return self.server.model

    # ------------------------------------------------------------------ basic events

    async def event(
        self,
        name: str,
        channel: Channel,
        *extra: tuple[str, str],
        privilege: str = "call,all",
        dest: Channel | None = None,
    ) -> None:
        await self.server.emit_channel_event(name, channel, *extra, privilege=privilege, dest=dest)

    async def exten(
        self, channel: Channel, exten: str, priority: int, app: str, data: str = ""
    ) -> None:
        """The channel runs one dialplan step (``Newexten``)."""
        channel.exten, channel.priority = exten, priority
        channel.application, channel.app_data = app, data
        if self.options.newexten:
            extra = (("Extension", exten), ("Application", app), ("AppData", data))
            await self.event("Newexten", channel, *extra, privilege="dialplan,all")

    async def varset(self, channel: Channel, name: str, value: str) -> None:
        channel.variables[name] = value
        if self.options.varset:
            extra = (("Variable", name), ("Value", value))
            await self.event("VarSet", channel, *extra, privilege="dialplan,all")

    async def new_channel(self, channel: Channel) -> None:
        await self.event("Newchannel", channel)

    async def caller_id(
        self, channel: Channel, num: str, name: str, *, connected: bool, announce: bool = True
    ) -> None:
        channel.caller_num, channel.caller_name = num, name
        if connected:
            channel.connected_num, channel.connected_name = num, name
        if announce:
            await self.event("NewCallerid", channel, CID_PRES)

    async def bridge_event(self, name: str, bridge: str, count: int, channel: Channel) -> None:
        body = bridge_fields("Bridge", bridge, count)
        snapshot = channel.snapshot("", self.model.channelvars)
        await self.server.emit(m.event(self.model, name, "call,all", *body, *snapshot))

    # ------------------------------------------------------------------ hang-ups

    async def hangup(
        self, channel: Channel, cause: int = 16, *, request: str | None = None
    ) -> None:
        """``request`` = ``HangupRequest``/``SoftHangupRequest`` to send first; then ``Hangup``."""
        if request is not None:
            await self.event(request, channel, ("Cause", str(cause)))
        text = CAUSE_TEXT.get(cause, "Unknown")
        await self.event("Hangup", channel, ("Cause", str(cause)), ("Cause-txt", text))
        self.model.remove_channel(channel.name)

    # ------------------------------------------------------------------ members

    async def member_status(self, interface: str, status: int) -> None:
        """Device state change of a seat: one ``QueueMemberStatus`` per queue it is in."""
        for member in self.model.members_of(interface):
            member.status = status
            await self.server.emit_member_event("QueueMemberStatus", member)

    def _set_in_call(self, interface: str, in_call: int) -> None:
        for member in self.model.members_of(interface):
            member.in_call = in_call

    # ------------------------------------------------------------------ queue

    async def join(self, caller: Channel, queue: Queue, now: float) -> int:
        queue.entries.append(QueueEntry(caller, now))
        position = str(len(queue.entries))
        await self.event(
            "QueueCallerJoin",
            caller,
            ("Queue", queue.name),
            ("Position", position),
            ("Count", position),
            privilege=AGENT,
        )
        return len(queue.entries)

    async def leave(self, caller: Channel, queue: Queue) -> None:
        position = _remove_entry(queue, caller)
        leave = (("Queue", queue.name), ("Position", str(position)))
        await self.event(
            "QueueCallerLeave", caller, *leave, ("Count", str(len(queue.entries))), privilege=AGENT
        )

    async def abandon(
        self, caller: Channel, queue: Queue, *, original: int, hold_s: int, leave: bool = True
    ) -> None:
        """``QueueCallerAbandon`` (also sent on a Queue() timeout, trace 09), then the leave."""
        position = _position(queue, caller)
        queue.abandoned += 1
        body = (
            ("Queue", queue.name),
            ("Position", str(position)),
            ("OriginalPosition", str(original)),
            ("HoldTime", str(hold_s)),
        )
        await self.event("QueueCallerAbandon", caller, *body, privilege=AGENT)
        if leave:
            await self.leave(caller, queue)

    async def agent_event(
        self,
        name: str,
        caller: Channel,
        queue: str,
        leg: SeatLeg,
        *extra: tuple[str, str],
    ) -> None:
        """AgentCalled / AgentRingNoAnswer / AgentConnect / AgentComplete (Dest = seat ``;1``)."""
        agent = (
            ("Queue", queue),
            ("Interface", leg.member.interface),
            ("MemberName", leg.member.name),
        )
        await self.event(name, caller, *agent, *extra, privilege=AGENT, dest=leg.one)

    # ------------------------------------------------------------------ the caller

    async def arrive(self, caller: Channel, num: str, name: str) -> None:
        """An inbound caller reaches the hotline dialplan and is answered (traces 01/02/09)."""
        await self.new_channel(caller)
        await self.caller_id(caller, num, name, connected=True)
        await self.exten(caller, caller.exten, 1, "NoOp", f'12348 inbound from {num} "{name}"')
        await self.exten(caller, caller.exten, 2, "Answer")
        caller.state = 6

    async def menu(self, caller: Channel, digit_prompt: str = "digits/1") -> None:
        """The IVR menu up to ``WaitExten`` (the caller is "in the menu" from ``BackGround``)."""
        exten = caller.exten
        await self.exten(caller, exten, 3, "Set", "CHANNEL(language)=en")
        await self.exten(caller, exten, 4, "Set", "TIMEOUT(digit)=3")
        await self.exten(caller, exten, 5, "Set", "TIMEOUT(response)=10")
        for priority, prompt in ((6, "hello"), (7, "vm-press"), (8, digit_prompt)):
            await self.exten(caller, exten, priority, "BackGround", prompt)

    async def record(self, caller: Channel, priority: int, path: str) -> None:
        """``MixMonitor(${UNIQUEID}.wav,b)``: the file name in a VarSet, then MixMonitorStart."""
        await self.exten(caller, caller.exten, priority, "MixMonitor", f"{caller.uniqueid}.wav,b")
        await self.varset(caller, "MIXMONITOR_FILENAME", path)
        await self.event("MixMonitorStart", caller)

    async def caller_gone(self, caller: Channel, cause: int = 16) -> None:
        """The caller's channel runs its ``h`` extension and hangs up (traces 02, 02b, 02c).

        The ``HangupRequest`` was sent when the hang-up began (before any queue abandon).
        """
        await self.event("SoftHangupRequest", caller, ("Cause", str(cause)))
        await self.exten(caller, "h", 1, "NoOp", f"from-trunk hangup cause={cause}")
        caller.priority = 2
        await self.hangup(caller, cause)

    async def end_bridged_by_caller(
        self, caller: Channel, queue: str, leg: SeatLeg, bridge: str, timing: Fields, now: float
    ) -> None:
        """The caller hangs up a bridged queue call (trace 01); ``timing`` = HoldTime, TalkTime."""
        await self.event("HangupRequest", caller, ("Cause", "16"))
        await self.bridge_event("BridgeLeave", bridge, 1, caller)
        await self.event("SoftHangupRequest", caller, ("Cause", "16"))
        await self.exten(caller, "h", 1, "NoOp", "from-trunk hangup cause=16")
        done = (*timing, ("Reason", "caller"))
        await self.agent_event("AgentComplete", caller, queue, leg, *done)
        await self.bridge_event("BridgeLeave", bridge, 0, leg.one)
        await self.event("HangupRequest", leg.two, ("Cause", "16"))
        await self.hangup(leg.one)
        caller.priority = 2
        await self.hangup(caller)
        await self.release_seat(leg, now)
        await self.event("SoftHangupRequest", leg.two, ("Cause", "16"))
        await self.hangup(leg.two)

    # ------------------------------------------------------------------ seat legs

    async def ring_seat(self, caller: Channel, queue: str, member: Member, now: float) -> SeatLeg:
        """Queue() rings a member: the Local pair, AgentCalled, the ``;2`` half alerting."""
        exten = seat_exten(member.interface)
        one, two = self.model.add_local_pair(exten, "agent-phones", linkedid=caller.linkedid)
        leg = SeatLeg(member, one, two, now)
        await self.new_channel(one)
        await self.new_channel(two)
        await self.exten(one, exten, 1, "AppQueue", "(Outgoing Line)")
        num, name = caller.caller_num, caller.caller_name
        await self.caller_id(one, num, name, connected=False)
        await self.caller_id(two, num, name, connected=True)
        await self.agent_event("AgentCalled", caller, queue, leg)
        await self.exten(two, exten, 1, "NoOp", f"seat {exten} alerting")
        await self.exten(two, exten, 2, "Ringing")
        one.state = 5
        await self.exten(one, "1", 1, "AppQueue", "(Outgoing Line)")
        await self.exten(two, exten, 3, "Wait", "300")
        await self.member_status(member.interface, 2)
        return leg

    async def seat_answers(self, leg: SeatLeg) -> None:
        await self.exten(leg.two, leg.two.exten, 4, "Answer")

    async def ring_no_answer(self, caller: Channel, queue: str, leg: SeatLeg, now: float) -> None:
        """The ring timed out (trace 02): AgentRingNoAnswer, both seat halves hang up (cause 0)."""
        ring_ms = str(round((now - leg.rung_at) * 1000))
        await self.agent_event("AgentRingNoAnswer", caller, queue, leg, ("RingTime", ring_ms))
        await self.drop_seat_leg(leg, cause=0)

    async def drop_seat_leg(self, leg: SeatLeg, *, cause: int) -> None:
        """A seat leg that never got bridged goes away; the seat is free again."""
        await self.event("HangupRequest", leg.two, ("Cause", str(cause)))
        await self.hangup(leg.one, cause)
        await self.member_status(leg.member.interface, 1)
        await self.event("SoftHangupRequest", leg.two, ("Cause", "16"))
        await self.hangup(leg.two, cause)

    async def connect(
        self, caller: Channel, queue: Queue, leg: SeatLeg, *, hold_s: int, ring_s: int
    ) -> str:
        """The member answered: caller leaves the queue, AgentConnect, both enter a new bridge."""
        await self.leave(caller, queue)
        timing = (("HoldTime", str(hold_s)), ("RingTime", str(ring_s)))
        await self.agent_event("AgentConnect", caller, queue.name, leg, *timing)
        leg.one.state = leg.two.state = 6
        for channel in (leg.one, leg.two):
            channel.connected_num = caller.caller_num
            channel.connected_name = caller.caller_name
        bridge = self.model.new_bridge_id()
        leg.one.bridge_id = caller.bridge_id = bridge
        await self.bridge_event("BridgeEnter", bridge, 1, leg.one)
        await self.bridge_event("BridgeEnter", bridge, 2, caller)
        await self.exten(leg.two, leg.two.exten, 5, "Echo")
        self._set_in_call(leg.member.interface, 1)
        return bridge

    async def release_seat(self, leg: SeatLeg, now: float) -> None:
        """After a bridged call: the seat's counters move on and it is free (Status 1)."""
        self._set_in_call(leg.member.interface, 0)
        leg.member.calls_taken += 1
        leg.member.last_call = int(now)
        await self.member_status(leg.member.interface, 1)


def bridge_fields(prefix: str, bridge: str, count: int) -> Fields:
    """The seven ``Bridge…`` fields; ``prefix`` is ``Bridge``, ``OrigBridge``, ``SecondBridge``."""
    return [
        (f"{prefix}Uniqueid", bridge),
        (f"{prefix}Type", "basic"),
        (f"{prefix}Technology", "simple_bridge"),
        (f"{prefix}Creator", "<unknown>"),
        (f"{prefix}Name", "<unknown>"),
        (f"{prefix}NumChannels", str(count)),
        (f"{prefix}VideoSourceMode", "none"),
    ]


def _position(queue: Queue, caller: Channel) -> int:
    for index, entry in enumerate(queue.entries, start=1):
        if entry.channel is caller:
            return index
    return 1


def _remove_entry(queue: Queue, caller: Channel) -> int:
    position = _position(queue, caller)
    queue.entries = [e for e in queue.entries if e.channel is not caller]
    return position
