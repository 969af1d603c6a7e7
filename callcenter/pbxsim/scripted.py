"""Replays of the lab's recorded calls (``shared/asterisk-traces``) on the simulator.

Each scripted scenario is a :class:`LabScript`: one simulated process on the simulator's virtual
clock that plays a trace's callers, seats and dialplan with :class:`~callcenter.pbxsim.labsteps.
LabSteps`, so the platform's AMI connection gets the events of the trace -- same names, same
header layout, same order -- for channels named like the trace's (:class:`LabReplay` continues
the lab's channel and Uniqueid counters).

Where the lab's platform acted (Redirect, BlindTransfer, Atxfer, Hangup, Originate, QueueStatus),
the script stops at a *platform turn* (:meth:`LabScript.platform`): virtual time stands still
until whoever plays the platform has sent its action over TCP to the simulator's real action
handlers and called :meth:`ReplayRun.resume`.  An action aimed at a channel of the script
(``CallActions``) reaches it as the :class:`~callcenter.pbxsim.engine.Command` that
:meth:`LabScript.platform` returns; an ``Originate`` becomes a
:class:`~callcenter.pbxsim.scripted_originate.LabOutboundCall` running the lab's dialplan.

Events of the lab's own simulation machinery are not sent (the README lists them): the caller's
phone (the ``;1`` half of ``Local/12348@from-trunk``) and the generator's ``OriginateResponse``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from callcenter.pbxsim.calls import SimCall
from callcenter.pbxsim.clock import SimClock
from callcenter.pbxsim.engine import Command, Pbx
from callcenter.pbxsim.labsteps import LabSteps
from callcenter.pbxsim.model import Channel, Member, PbxModel, Queue, hotline_lab
from callcenter.pbxsim.originate import OriginateActions, OriginateRequest, OutboundCall
from callcenter.pbxsim.scripted_originate import LabOutboundCall
from callcenter.pbxsim.simulator import PbxSimulator
from callcenter.pbxsim.steps import EventOptions, SeatLeg

__all__ = [
    "HANGUP_STEPS",
    "LabReplay",
    "LabScript",
    "PlatformOnly",
    "PlatformTurns",
    "ReplayRun",
    "Talk",
    "Variant",
    "whole_seconds",
]


def whole_seconds(start: float, end: float) -> int:
    """Seconds between two instants the way Asterisk counts them: ``time_t`` differences
    (``HoldTime``, ``TalkTime``, a ``QueueEntry``'s ``Wait``), not a rounded duration."""
    return int(end) - int(start)


@dataclass
class Talk:
    """A bridged queue call: who talks with whom, since when."""

    caller: Channel
    queue: Queue
    leg: SeatLeg
    bridge: str
    hold_s: int
    connected_at: float

    def timing(self, now: float) -> tuple[tuple[str, str], tuple[str, str]]:
        talk = whole_seconds(self.connected_at, now)
        return ("HoldTime", str(self.hold_s)), ("TalkTime", str(talk))


HANGUP_STEPS = (
    "request",
    "complete",
    "caller_leaves",
    "seat_leaves",
    "seat_request",
    "seat_soft",
    "seat_one",
    "seat_two",
    "seat_free",
    "caller_soft",
    "caller_h",
    "caller_gone",
)
"""What happens when a caller hangs up a bridged queue call (:meth:`LabScript.caller_hangs_up`):
the hang-up request, ``AgentComplete``, both ``BridgeLeave``, the seat's two Local halves going
away, the seat's device idle again (``QueueMemberStatus``), the caller's ``h`` extension."""


class PlatformTurns:
    """Hand-over points between a replay and whoever plays the lab's platform."""

    def __init__(self) -> None:
        self._waiting = asyncio.Event()
        self._go = asyncio.Event()

    async def wait_here(self) -> None:
        """In the script: the platform acts now; come back when it has."""
        self._go.clear()
        self._waiting.set()
        await self._go.wait()

    @property
    def waiting(self) -> bool:
        return self._waiting.is_set()

    async def reached(self) -> None:
        await self._waiting.wait()

    def resume(self) -> None:
        self._waiting.clear()
        self._go.set()


class LabScript(SimCall):
    """One trace replayed as a simulated process; subclasses write :meth:`script`."""

    def __init__(self, pbx: Pbx, turns: PlatformTurns) -> None:
        super().__init__(pbx)
        self.turns = turns
        self.steps = LabSteps(pbx.server, EventOptions())
        self._phones: list[Channel] = []
        self.began = 0.0

    @property
    def model(self) -> PbxModel:
        return self.pbx.model

    def now(self) -> float:
        return self.pbx.clock.now()

    def since(self, start: float) -> int:
        """Whole seconds from ``start`` to now, as Asterisk reports them."""
        return whole_seconds(start, self.now())

    async def at(self, offset: float) -> None:
        """Wait until ``offset`` seconds after the replay began (the trace's ``t=+…``)."""
        await self.wait(self.began + offset - self.now())

    def queue(self, name: str) -> Queue:
        return self.model.queues[name]

    async def run(self) -> None:
        self.began = self.now()
        try:
            await self.script()
        finally:
            for phone in self._phones:
                self.model.remove_channel(phone.name)
            self.disown_all()

    async def script(self) -> None:
        raise NotImplementedError

    async def wait(self, seconds: float) -> None:
        """Virtual time passes (other processes, e.g. originated calls, run meanwhile)."""
        await self.pause(seconds)

    async def platform(self) -> Command | None:
        """A platform turn: the script stops (virtual time stands still) until the action was
        answered; returns the command the action gave one of the script's channels, if any."""
        await self.turns.wait_here()
        return self._inbox.pop(0)[1] if self._inbox else None

    def inbound(self, exten: str = "12348", context: str = "from-trunk") -> Channel:
        """A lab caller: a Local pair whose ``;2`` half runs the hotline dialplan.

        The ``;1`` half (the simulated phone) exists -- it takes the lab's channel counter --
        but sends nothing, like the caller's far end in production.
        """
        phone, caller = self.model.add_local_pair(exten, context)
        self._phones.append(phone)
        self.own(caller)
        return caller

    async def arrive(self, caller: Channel, num: str, name: str) -> None:
        """The caller's ``;2`` half appears and its dialplan answers it (trace 01's start)."""
        steps = self.steps
        await steps.new_channel(caller)
        await steps.caller_id(caller, num, name, connected=True)
        await steps.run(caller, caller.exten, 1)
        await steps.next(caller)
        caller.state = 6

    async def ivr(self, caller: Channel, num: str, name: str) -> None:
        """Arrival and the menu's prompts up to the last ``BackGround``."""
        await self.arrive(caller, num, name)
        await self.steps.next(caller, 6)

    async def answered(
        self,
        caller: Channel,
        queue: Queue,
        member: Member,
        *,
        ring_s: float = 2.0,
        outgoing_first: bool = False,
        status_first: bool = False,
    ) -> Talk:
        """The caller joins ``queue``; ``member`` rings ``ring_s`` and answers (trace 01).

        ``outgoing_first`` / ``status_first``: see :meth:`LabSteps.ring`."""
        joined = self.now()
        await self.steps.join(caller, queue, joined)
        leg = await self.steps.ring(
            caller,
            queue.name,
            member,
            joined,
            outgoing_first=outgoing_first,
            status_first=status_first,
        )
        return await self.answer_after(caller, queue, leg, joined, ring_s)

    async def answer_after(
        self, caller: Channel, queue: Queue, leg: SeatLeg, joined: float, ring_s: float
    ) -> Talk:
        """The ringing seat answers after ``ring_s``: leave, ``AgentConnect``, the bridge."""
        steps = self.steps
        self.own(leg.one, leg.two)
        await self.wait(ring_s)
        await steps.seat_answers_lab(leg)
        hold, ring = self.since(joined), self.since(leg.rung_at)
        bridge = await steps.connect(caller, queue, leg, hold_s=hold, ring_s=ring)
        return Talk(caller, queue, leg, bridge, hold, self.now())

    async def caller_hangs_up(
        self,
        talk: Talk,
        order: Sequence[str],
        others: Mapping[str, Callable[[], Awaitable[object]]] | None = None,
    ) -> None:
        """The caller hangs up a bridged queue call, in ``order`` (see :data:`HANGUP_STEPS`).

        The dozen events are always the same; their order depends on which of Asterisk's
        threads (the caller's, the seat's two Local halves, the device state) runs first, and
        every trace shows another one.  ``platform`` in ``order`` is a platform turn; ``others``
        adds what else goes away meanwhile (trace 08: the supervisors' legs).
        """
        steps, caller, leg = self.steps, talk.caller, talk.leg
        now = self.now()
        done = (*talk.timing(now), ("Reason", "caller"))
        actions: dict[str, Callable[[], Awaitable[object]]] = {
            "request": lambda: steps.event("HangupRequest", caller, ("Cause", "16")),
            "complete": lambda: steps.agent_event(
                "AgentComplete", caller, talk.queue.name, leg, *done
            ),
            "caller_leaves": lambda: steps.bridge_event("BridgeLeave", talk.bridge, 1, caller),
            "seat_leaves": lambda: steps.bridge_event("BridgeLeave", talk.bridge, 0, leg.one),
            "seat_request": lambda: steps.leg_request(leg, 16),
            "seat_soft": lambda: steps.event("SoftHangupRequest", leg.two, ("Cause", "16")),
            "seat_one": lambda: steps.hangup(leg.one),
            "seat_two": lambda: steps.hangup(leg.two),
            "seat_free": lambda: steps.release_seat(leg, now),
            "caller_soft": lambda: steps.event("SoftHangupRequest", caller, ("Cause", "16")),
            "caller_h": lambda: steps.run(caller, "h", 1),
            "caller_gone": lambda: self._caller_gone(caller),
            "platform": self.platform,
            **(others or {}),
        }
        for name in order:
            await actions[name]()
        talk.queue.completed += 1

    async def _caller_gone(self, caller: Channel) -> None:
        caller.priority = 2
        await self.steps.hangup(caller)


class PlatformOnly(LabScript):
    """A trace that is only the platform's own action (05, 05b: an ``Originate``): one
    platform turn; what follows is the originated call's (``LabOutboundCall``)."""

    async def script(self) -> None:
        await self.platform()


@dataclass(frozen=True)
class Variant:
    """The ``asterisk.conf`` / ``manager.conf`` settings of a trace (13 differs)."""

    systemname: str | None = None
    timestamp_events: bool = False
    channelvars: tuple[str, ...] = ()


ScriptFactory = Callable[[Pbx, PlatformTurns], LabScript]


@dataclass(frozen=True)
class LabReplay:
    """How to replay one trace: where its clock and counters stood, and its script."""

    trace: str
    epoch: float
    """Virtual epoch the replay starts at, near the trace's first channel.  Its fraction of a
    second matters: Asterisk's durations are whole-second differences (trace 10)."""
    local: int
    """Counter of the trace's first Local channel (``-0000000c`` -> 12)."""
    sequence: int
    """Sequence number of the trace's first Uniqueid."""
    script: ScriptFactory
    variant: Variant = field(default_factory=Variant)

    def simulator(self) -> PbxSimulator:
        """A quiet simulator in the lab's state (queues, seats, counters), virtual time."""
        clock = SimClock(start=self.epoch, speed=None)
        model = hotline_lab(
            systemname=self.variant.systemname,
            timestamp_events=self.variant.timestamp_events,
            channelvars=self.variant.channelvars,
            clock=clock.now,
        )
        model.continue_ids(local=self.local, sequence=self.sequence)
        return PbxSimulator(model=model, clock=clock, seed=12348)

    def start(self, sim: PbxSimulator) -> ReplayRun:
        """Start the script on a started simulator."""
        run = ReplayRun(sim, PlatformTurns())
        run.begin(self.script(sim.pbx, run.turns))
        return run


class ReplayRun:
    """A replay in progress: its script, the calls the platform originated, the turns."""

    def __init__(self, sim: PbxSimulator, turns: PlatformTurns) -> None:
        self.sim = sim
        self.turns = turns
        self.tasks: list[asyncio.Task[None]] = []
        self.originated: list[OutboundCall] = []
        OriginateActions(sim.pbx, self._originated).install()

    def _originated(self, pbx: Pbx, request: OriginateRequest, reason: int) -> OutboundCall:
        call = LabOutboundCall(pbx, request, reason)
        self.originated.append(call)
        return call

    def begin(self, script: LabScript) -> None:
        self.tasks.append(script.start(type(script).__name__))

    def _all_tasks(self) -> list[asyncio.Task[None]]:
        return self.tasks + [c.task for c in self.originated if c.task is not None]

    @property
    def done(self) -> bool:
        return all(task.done() for task in self._all_tasks())

    async def next_turn(self) -> bool:
        """Until the script waits for the platform (True) or everything ended (False)."""
        while not self.turns.waiting:
            pending = [t for t in self._all_tasks() if not t.done()]
            if not pending:
                return False
            reached = asyncio.ensure_future(self.turns.reached())
            await asyncio.wait([reached, *pending], return_when=asyncio.FIRST_COMPLETED)
            reached.cancel()
        return True

    def resume(self) -> None:
        self.turns.resume()

    async def finished(self) -> None:
        """Every process of the replay has ended (no more platform turns expected)."""
        if await self.next_turn():
            raise RuntimeError("the replay waits for a platform action nobody sent")
