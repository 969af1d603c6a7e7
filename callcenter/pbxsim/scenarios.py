"""Scripted calls: the platform-relevant AMI events of a real call, for a new caller.

:class:`AnsweredCall` replays trace 01 (IVR → key 1 → MixMonitor → Queue → seat rings 2 s and
answers → talk → caller hangs up) with the same event names, in the same order and with the same
header layout as Asterisk sent them, limited to :data:`callcenter.ami.normalize.USED_EVENTS`.
Simulation artefacts of the lab are left out, as the trace README allows: the ``;1`` half of the
caller's Local channel (the simulated phone) and ``OriginateResponse``.  The events come from
:class:`callcenter.pbxsim.steps.CallSteps`, shared with the traffic generator.

``pace`` scales the real durations (0 = as fast as possible, 1 = real time).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from callcenter.pbxsim.ami_server import AmiServer
from callcenter.pbxsim.model import Channel
from callcenter.pbxsim.steps import CallSteps, EventOptions

MONITOR_DIR = "/var/spool/asterisk/monitor"


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
    options: EventOptions = field(default_factory=EventOptions)
    caller: Channel | None = field(default=None, init=False)

    async def play(self) -> Channel:
        """Run the whole call; returns the caller channel (its Uniqueid identifies the call)."""
        steps = CallSteps(self.server, self.options)
        model = self.server.model
        queue = model.queues[self.queue]
        phone, caller = model.add_local_pair("12348", "from-trunk")
        self.caller = caller
        await steps.arrive(caller, self.caller_num, self.caller_name)
        await steps.menu(caller, f"digits/{self.digit}")
        await self._wait(2)
        await steps.exten(caller, self.digit, 1, "NoOp", f"IVR choice {self.digit} {self.queue}")
        await steps.exten(caller, self.digit, 2, "Set", f"__HOTLINE_SERVICE={self.queue}")
        await steps.varset(caller, "HOTLINE_SERVICE", self.queue)
        await steps.record(caller, 3, f"{MONITOR_DIR}/{caller.uniqueid}.wav")
        await steps.exten(caller, self.digit, 4, "Queue", f"{queue.name},t,,,120")
        await steps.join(caller, queue, model.clock())
        leg = await steps.ring_seat(caller, queue.name, queue.members[0], model.clock())
        await self._wait(self.ring_s)
        await steps.seat_answers(leg)
        hold = str(self.ring_s)
        bridge = await steps.connect(caller, queue, leg, hold_s=self.ring_s, ring_s=self.ring_s)
        await self._wait(self.talk_s)
        timing = [("HoldTime", hold), ("TalkTime", str(self.talk_s))]
        await steps.end_bridged_by_caller(caller, queue.name, leg, bridge, timing, model.clock())
        queue.completed += 1
        queue.holdtime, queue.talktime = self.ring_s, self.talk_s
        model.processed_calls += 1
        model.remove_channel(phone.name)
        return caller

    async def _wait(self, seconds: float) -> None:
        await asyncio.sleep(seconds * self.pace)
