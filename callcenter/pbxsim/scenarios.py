"""Scripted calls: the platform-relevant AMI events of a real call, for a new caller.

:class:`AnsweredCall` replays trace 01 (IVR → key 1 → MixMonitor → Queue → seat rings 2 s and
answers → talk → caller hangs up) with the same event names, in the same order and with the same
header layout as Asterisk sent them, limited to :data:`callcenter.ami.normalize.USED_EVENTS`.
Simulation artefacts of the lab are left out, as the trace README allows: the ``;1`` half of the
caller's Local channel (the simulated phone) and ``OriginateResponse``.

``pace`` scales the real durations (0 = as fast as possible, 1 = real time).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from callcenter.pbxsim import messages as m
from callcenter.pbxsim.ami_server import AmiServer
from callcenter.pbxsim.model import Channel, Member, Queue, QueueEntry

CID_PRES = ("CID-CallingPres", "0 (Presentation Allowed, Not Screened)")
HANGUP = (("Cause", "16"), ("Cause-txt", "Normal Clearing"))


@dataclass
class AnsweredCall:
    """One inbound call answered by the first seat of ``queue`` (trace 01)."""

    server: AmiServer
    caller_num: str
    caller_name: str
    queue: str = "legal-consult"
    digit: str = "1"
    ring_s: int = 2
    talk_s: int = 9
    pace: float = 0.0
    caller: Channel | None = field(default=None, init=False)

    async def play(self) -> Channel:
        """Run the whole call; returns the caller channel (its Uniqueid identifies the call)."""
        queue = self.server.model.queues[self.queue]
        member = queue.members[0]
        caller = await self._arrive()
        await self._ivr(caller)
        await self._join(caller, queue)
        seat_one, seat_two = await self._ring(caller, member)
        bridge = await self._answer(caller, queue, member, seat_one, seat_two)
        await self._hang_up(caller, member, seat_one, seat_two, bridge)
        return caller

    # -- helpers

    async def _wait(self, seconds: float) -> None:
        await asyncio.sleep(seconds * self.pace)

    async def _event(
        self,
        name: str,
        channel: Channel,
        *extra: tuple[str, str],
        privilege: str = "call,all",
        dest: Channel | None = None,
    ) -> None:
        await self.server.emit_channel_event(name, channel, *extra, privilege=privilege, dest=dest)

    async def _exten(
        self, channel: Channel, exten: str, priority: int, app: str, data: str = ""
    ) -> None:
        channel.exten, channel.priority = exten, priority
        channel.application, channel.app_data = app, data
        extra = (("Extension", exten), ("Application", app), ("AppData", data))
        await self._event("Newexten", channel, *extra, privilege="dialplan,all")

    async def _bridge(self, name: str, bridge: str, count: int, channel: Channel) -> None:
        body = [
            ("BridgeUniqueid", bridge),
            ("BridgeType", "basic"),
            ("BridgeTechnology", "simple_bridge"),
            ("BridgeCreator", "<unknown>"),
            ("BridgeName", "<unknown>"),
            ("BridgeNumChannels", str(count)),
            ("BridgeVideoSourceMode", "none"),
        ]
        snapshot = channel.snapshot("", self.server.model.channelvars)
        await self.server.emit(m.event(self.server.model, name, "call,all", *body, *snapshot))

    async def _member_status(self, member: Member) -> None:
        await self.server.emit_member_event("QueueMemberStatus", member)

    @staticmethod
    def _set_callerid(channel: Channel, num: str, name: str, *, connected: bool) -> None:
        channel.caller_num, channel.caller_name = num, name
        if connected:
            channel.connected_num, channel.connected_name = num, name

    # -- phases

    async def _arrive(self) -> Channel:
        model = self.server.model
        _phone, caller = model.add_local_pair("12348", "from-trunk")
        self.caller = caller
        await self._event("Newchannel", caller)
        self._set_callerid(_phone, self.caller_num, self.caller_name, connected=False)
        self._set_callerid(caller, self.caller_num, self.caller_name, connected=True)
        await self._event("NewCallerid", caller, CID_PRES)
        note = f'12348 inbound from {self.caller_num} "{self.caller_name}"'
        await self._exten(caller, "12348", 1, "NoOp", note)
        await self._exten(caller, "12348", 2, "Answer")
        caller.state = 6
        return caller

    async def _ivr(self, caller: Channel) -> None:
        await self._exten(caller, "12348", 3, "Set", "CHANNEL(language)=en")
        await self._exten(caller, "12348", 4, "Set", "TIMEOUT(digit)=3")
        await self._exten(caller, "12348", 5, "Set", "TIMEOUT(response)=10")
        for priority, prompt in ((6, "hello"), (7, "vm-press"), (8, f"digits/{self.digit}")):
            await self._exten(caller, "12348", priority, "BackGround", prompt)
        await self._wait(2)
        await self._exten(caller, self.digit, 1, "NoOp", f"IVR choice {self.digit} {self.queue}")
        await self._exten(caller, self.digit, 2, "Set", f"__HOTLINE_SERVICE={self.queue}")
        caller.variables["HOTLINE_SERVICE"] = self.queue
        await self._exten(caller, self.digit, 3, "MixMonitor", f"{caller.uniqueid}.wav,b")
        await self._event("MixMonitorStart", caller)

    async def _join(self, caller: Channel, queue: Queue) -> None:
        await self._exten(caller, self.digit, 4, "Queue", f"{queue.name},t,,,120")
        queue.entries.append(QueueEntry(caller, self.server.model.clock()))
        position = str(len(queue.entries))
        await self._event(
            "QueueCallerJoin",
            caller,
            ("Queue", queue.name),
            ("Position", position),
            ("Count", position),
            privilege="agent,all",
        )

    async def _ring(self, caller: Channel, member: Member) -> tuple[Channel, Channel]:
        exten = member.interface.partition("/")[2].partition("@")[0]
        one, two = self.server.model.add_local_pair(exten, "agent-phones", linkedid=caller.linkedid)
        await self._event("Newchannel", one)
        await self._event("Newchannel", two)
        await self._exten(one, exten, 1, "AppQueue", "(Outgoing Line)")
        self._set_callerid(one, self.caller_num, self.caller_name, connected=False)
        self._set_callerid(two, self.caller_num, self.caller_name, connected=True)
        await self._event("NewCallerid", one, CID_PRES)
        await self._event("NewCallerid", two, CID_PRES)
        agent = (
            ("Queue", self.queue),
            ("Interface", member.interface),
            ("MemberName", member.name),
        )
        await self._event("AgentCalled", caller, *agent, privilege="agent,all", dest=one)
        await self._exten(two, exten, 1, "NoOp", f"seat {exten} alerting")
        await self._exten(two, exten, 2, "Ringing")
        one.state = 5
        await self._exten(one, "1", 1, "AppQueue", "(Outgoing Line)")
        await self._exten(two, exten, 3, "Wait", str(self.ring_s))
        member.status = 2
        await self._member_status(member)
        await self._wait(self.ring_s)
        await self._exten(two, exten, 4, "Answer")
        return one, two

    async def _answer(
        self, caller: Channel, queue: Queue, member: Member, one: Channel, two: Channel
    ) -> str:
        queue.entries = [e for e in queue.entries if e.channel is not caller]
        leave = (("Queue", queue.name), ("Position", "1"), ("Count", str(len(queue.entries))))
        await self._event("QueueCallerLeave", caller, *leave, privilege="agent,all")
        agent = (
            ("Queue", queue.name),
            ("Interface", member.interface),
            ("MemberName", member.name),
        )
        timing = (("HoldTime", str(self.ring_s)), ("RingTime", str(self.ring_s)))
        await self._event("AgentConnect", caller, *agent, *timing, privilege="agent,all", dest=one)
        one.state = two.state = 6
        for channel in (one, two):
            channel.connected_num, channel.connected_name = self.caller_num, self.caller_name
        bridge = self.server.model.new_bridge_id()
        one.bridge_id = caller.bridge_id = bridge
        await self._bridge("BridgeEnter", bridge, 1, one)
        await self._bridge("BridgeEnter", bridge, 2, caller)
        await self._exten(two, two.exten, 5, "Echo")
        await self._wait(self.talk_s)
        return bridge

    async def _hang_up(
        self, caller: Channel, member: Member, one: Channel, two: Channel, bridge: str
    ) -> None:
        model = self.server.model
        await self._event("HangupRequest", caller, ("Cause", "16"))
        await self._bridge("BridgeLeave", bridge, 1, caller)
        await self._event("SoftHangupRequest", caller, ("Cause", "16"))
        await self._exten(caller, "h", 1, "NoOp", "from-trunk hangup cause=16")
        agent = (
            ("Queue", self.queue),
            ("Interface", member.interface),
            ("MemberName", member.name),
        )
        done = (
            ("HoldTime", str(self.ring_s)),
            ("TalkTime", str(self.talk_s)),
            ("Reason", "caller"),
        )
        await self._event("AgentComplete", caller, *agent, *done, privilege="agent,all", dest=one)
        await self._bridge("BridgeLeave", bridge, 0, one)
        await self._event("HangupRequest", two, ("Cause", "16"))
        await self._event("Hangup", one, *HANGUP)
        caller.priority = 2
        await self._event("Hangup", caller, *HANGUP)
        member.status, member.calls_taken, member.last_call = (
            1,
            member.calls_taken + 1,
            int(model.clock()),
        )
        await self._member_status(member)
        await self._event("SoftHangupRequest", two, ("Cause", "16"))
        await self._event("Hangup", two, *HANGUP)
        self._finish(caller, one, two)

    def _finish(self, caller: Channel, *seat: Channel) -> None:
        model = self.server.model
        queue = model.queues[self.queue]
        queue.completed += 1
        queue.holdtime, queue.talktime = self.ring_s, self.talk_s
        model.processed_calls += 1
        for channel in (caller, *seat):
            model.remove_channel(channel.name)
        model.remove_channel(caller.name.replace(";2", ";1"))
