"""One generated inbound call: IVR, city queue, overflow to the province, talk or abandon.

The dialplan it follows is the lab's (``conf/extensions.conf``, traces 01, 02, 02c, 09) with
the city routing of the province: key → ``Set(__HOTLINE_SERVICE)`` → ``Set(__HOTLINE_CITY)`` →
``MixMonitor`` → ``Queue(city-<code>,t,,,<timeout>)`` → on ``TIMEOUT``
``Queue(province,t,,,<timeout>)``.  On the queue timeout Asterisk reports
``QueueCallerAbandon`` + ``QueueCallerLeave`` although the caller stays (trace 09); the
simulator does the same.  Transfers and redirects asked by AMI actions are in
:mod:`callcenter.pbxsim.transfers`.

With ``fastagi_url`` the call follows the dialplan contract instead (``docs/dialplan-contract.md``,
:mod:`callcenter.pbxsim.contract`): the main FastAGI entry decides by ``HOTLINE_ACTION``; a call
whose IVR sets no ``HOTLINE_ACTION`` goes on with the classic steps above.  A
:class:`~callcenter.pbxsim.scripts.CallScript` replaces every random draw of the caller.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from callcenter.pbxsim import contract, scripts, transfers
from callcenter.pbxsim.agi_caller import AgiCaller
from callcenter.pbxsim.callers import CallerIdentity
from callcenter.pbxsim.calls import Interrupted, SimCall
from callcenter.pbxsim.engine import Command, HangupCommand, Pbx, TransferCommand
from callcenter.pbxsim.fastagi_client import FastAgiSession
from callcenter.pbxsim.model import Channel, Member, Queue
from callcenter.pbxsim.queueing import SeatBoard
from callcenter.pbxsim.steps import SeatLeg
from callcenter.pbxsim.workload import CityStats, TrafficConfig, service_of

__all__ = ["InboundCall", "Line", "TrafficContext"]

ANSWERED, TIMEOUT, ABANDON, EXIT = "answered", "timeout", "abandon", "exit"
_QUEUE_PRIORITY = 5  # Queue(city-…) in the key's extension; the overflow Queue() is at +4

Step = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class Line:
    """The 12348 line a call comes in on: the city, its queue, where it overflows to."""

    city_code: str
    queue: str
    overflow: str | None


@dataclass
class TrafficContext:
    """What all generated calls of a run share."""

    config: TrafficConfig
    board: SeatBoard
    rng: random.Random
    stats: dict[str, CityStats]
    trunk_counter: Callable[[], int]


class InboundCall(SimCall):
    """A caller's process from the first ring of the trunk to the hang-up."""

    def __init__(
        self,
        pbx: Pbx,
        ctx: TrafficContext,
        line: Line,
        who: CallerIdentity,
        digit: str,
        script: scripts.CallScript | None = None,
    ) -> None:
        super().__init__(pbx)
        self.ctx, self.line, self.who, self.digit = ctx, line, who, digit
        self.script = script
        self.sessions: dict[str, FastAgiSession] = {}
        """FastAGI sessions by entry (``main``, ``virtual_hold``, ``survey``)."""
        self.outcome: str | None = None
        """One of :data:`callcenter.pbxsim.scripts.OUTCOMES` once known."""
        self.contract_queue = False
        self.joined_overflow = False
        """The caller went on to the overflow ``Queue()`` (the dialplan's later priorities)."""
        """True when the contract's ``Queue(...,tF(hotline-survey^s^1))`` holds the caller."""
        self.exit_at: float | None = None
        self.joined_queues: list[str] = []
        self.dialled: Channel | None = None
        self.caller = self._new_caller()
        self.phase = "ivr"
        self.queue: Queue | None = None
        self.joined_at = 0.0
        self.original_position = 1
        self.patience_at: float | None = None
        self.leg: SeatLeg | None = None
        self.bridge = ""
        self.connected_at = 0.0
        self.hold_s = 0
        self.talk_s = 0.0
        self.party: transfers.Party | None = None

    @property
    def stats(self) -> CityStats:
        return self.ctx.stats[self.line.city_code]

    def _new_caller(self) -> Channel:
        model = self.pbx.model
        if self.ctx.config.trunk_channels:
            name = f"PJSIP/trunk-{self.ctx.trunk_counter():08x}"
            caller = model.add_channel(name, "from-trunk", "12348")
            caller.state = 4
            return caller
        return model.add_local_pair("12348", "from-trunk")[1]

    def _uniform(self, bounds: tuple[float, float]) -> float:
        return self.ctx.rng.uniform(*bounds)

    # ------------------------------------------------------------------ process

    async def run(self) -> None:
        step: Step | None = self._flow
        try:
            while step is not None:
                try:
                    await step()
                    step = None
                except Interrupted as stop:
                    step = self._on_command(stop.channel, stop.command)
        finally:
            self._finish()

    def _finish(self) -> None:
        self.phase = "done"
        self.outcome = self.outcome or scripts.ENDED
        self.disown_all()
        self.pbx.model.remove_channel(self.caller.name.replace(";2", ";1"))

    def refuse(self, channel: Channel, command: Command) -> str | None:
        """Transfers need a bridged call; during a consultation only its end is accepted."""
        if self.phase == "consult":
            seat = self.leg.one if self.leg is not None else None
            if not (isinstance(command, HangupCommand) and channel is seat):
                return "Transfer in progress"
        if isinstance(command, TransferCommand) and self.phase != "talk":
            return "Transfer invalid" if not command.attended else None
        return None

    def _on_command(self, channel: Channel, command: Command) -> Step | None:
        return transfers.plan(self, channel, command)

    async def _flow(self) -> None:
        self.own(self.caller)
        self.stats.offered += 1
        if self.ctx.config.fastagi_url:
            return await self._contract_flow()
        steps = self.pbx.steps
        await steps.arrive(self.caller, self.who.number, self.who.name)
        hangs_up = self.ctx.rng.random() < self.ctx.config.ivr_hangup_share
        await steps.menu(self.caller)
        await self.pause(self._uniform(self.ctx.config.ivr_s))
        if hangs_up:
            self.stats.ivr_hangups += 1
            self.outcome = scripts.IVR_HANGUP
            return await self.hang_up_caller(16, requested=True)
        await self._choose()
        await self._queues()

    async def _contract_flow(self) -> None:
        """The IVR runs on our FastAGI server (trace 06), then ``HOTLINE_ACTION`` decides.

        The session runs over the network while this call holds the clock: the simulated
        time stands still during it, as the real prompts are not waited for anyway.
        """
        caller, code = self.caller, self.line.city_code
        await contract.arrive(self)
        agi, language = self._main_caller()
        session = await contract.run_agi(
            self, "main", agi, exten=caller.exten, priority=contract.AGI_PRIORITY,
            args=(code, language),
        )  # fmt: skip
        if session.hung_up:
            self.stats.ivr_hangups += 1
            self.outcome = scripts.IVR_HANGUP
            return await self.hang_up_caller(16, requested=True)
        chosen = caller.variables.get("IVR_CHOICE") or session.choice or ""
        if chosen[:1].isdigit():
            self.digit = chosen[:1]
        await self.pause(0.5)
        action = caller.variables.get("HOTLINE_ACTION", "")
        if not action:  # today's routing hand-off: the classic dialplan goes on
            await self._choose()
            return await self._queues()
        await contract.after_main(self, action)
        if action == "transfer":
            talk = (
                self.script.transfer_talk_s
                if self.script
                else self._uniform(self.ctx.config.talk_s)
            )
            return await contract.transfer(self, talk)
        if action != "queue":
            self.outcome = scripts.IVR_ENDED
            return await contract.end_in_dialplan(
                self, caller.exten, contract.DONE_PRIORITY, hung_up=False
            )
        self.contract_queue = True
        await self._record(contract.MIXMONITOR_PRIORITY)
        if caller.variables.get("HOTLINE_QUEUE", "") not in self.pbx.model.queues:
            return await self._no_such_queue()
        await self._queues()

    async def _no_such_queue(self) -> None:
        """``Queue()`` of a queue Asterisk does not have: QUEUESTATUS=UNKNOWN, on to Hangup."""
        steps, caller = self.pbx.steps, self.caller
        data = f"{caller.variables.get('HOTLINE_QUEUE', '')},{contract.QUEUE_OPTIONS},,,"
        await steps.exten(caller, caller.exten, contract.QUEUE_PRIORITY, "Queue", data)
        caller.variables["QUEUESTATUS"] = "UNKNOWN"
        await contract.survey_check(self, overflow=False, connected=False)
        await steps.exten(
            caller, caller.exten, contract.OVERFLOW_CHECK_PRIORITY, "GotoIf", "0?overflow"
        )
        self.outcome = scripts.QUEUE_UNKNOWN
        await contract.end_in_dialplan(self, caller.exten, contract.DONE_PRIORITY, hung_up=False)

    def _main_caller(self) -> tuple[AgiCaller, str]:
        """The script's main-entry caller, or a generated one (its key, maybe a hang-up)."""
        if self.script is not None:
            return self.script.main, self.script.language
        config, rng = self.ctx.config, self.ctx.rng
        inputs = config.main_inputs(rng)
        if inputs is not None:
            return AgiCaller(inputs=inputs), "zh-CN"
        hangs_up = rng.random() < config.ivr_hangup_share
        return AgiCaller(digits=self.digit, hang_up_during="GET DATA" if hangs_up else None), (
            "zh-CN"
        )

    async def _choose(self) -> None:
        """The caller pressed a key: service, city, recording, then the queue."""
        steps, caller, digit = self.pbx.steps, self.caller, self.digit
        service = service_of(digit)
        await steps.exten(caller, digit, 1, "NoOp", f"IVR choice {digit} {service}")
        await steps.exten(caller, digit, 2, "Set", f"__HOTLINE_SERVICE={service}")
        await steps.varset(caller, "HOTLINE_SERVICE", service)
        await steps.exten(caller, digit, 3, "Set", f"__HOTLINE_CITY={self.line.city_code}")
        await steps.varset(caller, "HOTLINE_CITY", self.line.city_code)
        await self._record(4)

    async def _record(self, priority: int) -> None:
        caller, recorder = self.caller, self.pbx.recorder
        path = recorder.path_for(caller.uniqueid) if recorder else None
        await self.pbx.steps.record(
            caller, priority, str(path or f"/var/spool/asterisk/monitor/{caller.uniqueid}.wav")
        )

    def _route(self) -> tuple[str, str | None, float]:
        """Queue, overflow queue and wait: the dialplan's defaults, or what the platform's
        FastAGI hand-off set (``HOTLINE_QUEUE``/``HOTLINE_OVERFLOW_QUEUE``/``…_AFTER``)."""
        config, variables = self.ctx.config, self.caller.variables
        queue = variables.get("HOTLINE_QUEUE") or ""
        if queue not in self.pbx.model.queues:
            timeout = config.city_timeout_s if self.line.overflow else config.province_timeout_s
            return self.line.queue, self.line.overflow, timeout
        overflow = variables.get("HOTLINE_OVERFLOW_QUEUE") or None
        after = variables.get("HOTLINE_OVERFLOW_AFTER") or ""
        if overflow not in self.pbx.model.queues or not after.isdigit():
            return queue, None, config.province_timeout_s
        return queue, overflow, float(after)

    async def _queues(self) -> None:
        config = self.ctx.config
        queue, overflow, timeout = self._route()
        if self.contract_queue:
            after = self.caller.variables.get("HOTLINE_OVERFLOW_AFTER", "")
            first, later = f"{queue},{contract.QUEUE_OPTIONS},,,{after}", contract.QUEUE_OPTIONS
            priority, overflow_priority = contract.QUEUE_PRIORITY, contract.OVERFLOW_PRIORITY
            self._plan_exit()
        else:
            first, later = f"{queue},t,,,{int(timeout)}", "t,,,{timeout}"
            priority, overflow_priority = _QUEUE_PRIORITY, _QUEUE_PRIORITY + 4
        result = await self._wait(queue, priority, timeout, first)
        if result == TIMEOUT and overflow:
            await self._overflow(overflow)
            self.joined_overflow = True
            wait = config.province_timeout_s
            data = f"{overflow},{later.format(timeout=int(wait))}"
            result = await self._wait(overflow, overflow_priority, wait, data)
        if result == ANSWERED:
            await self._talk()
        elif result == EXIT:
            await self._exit_queue()
        else:  # out of patience, or even the provincial queue timed out
            await self.abandon(requested=True)

    def _plan_exit(self) -> None:
        """When the caller will press the queue's exit key (virtual hold), if ever."""
        script, now = self.script, self.pbx.clock.now()
        if script is not None:
            if script.exit_queue_after_s is not None and script.exit_key in contract.EXIT_KEYS:
                self.exit_at = now + script.exit_queue_after_s
        elif self.ctx.rng.random() < self.ctx.config.queue_exit_share:
            self.exit_at = now + self._uniform(self.ctx.config.queue_exit_after_s)

    async def _exit_queue(self) -> None:
        """The exit key: app_queue drops the ringing seat, ``QueueCallerLeave`` (no abandon:
        an exit by key goes to queue_log only), then ``hotline-queue-exit,<key>,1``."""
        assert self.queue is not None
        if self.leg is not None:
            await self.pbx.steps.drop_seat_leg(self.leg, cause=0)
            self._drop_leg()
        await self.pbx.steps.leave(self.caller, self.queue)
        self.caller.variables["QUEUESTATUS"] = "CONTINUE"
        await contract.virtual_hold(self, self.script)

    # ------------------------------------------------------------------ queue

    async def _wait(self, queue_name: str, priority: int, timeout: float, data: str) -> str:
        """Join ``queue_name`` and wait for a seat, the queue timeout, the caller's patience or
        the caller's exit key."""
        steps, clock = self.pbx.steps, self.pbx.clock
        queue = self.pbx.model.queues[queue_name]
        await steps.exten(self.caller, self.caller.exten, priority, "Queue", data)
        self.phase, self.queue, self.joined_at = "queue", queue, clock.now()
        self.joined_queues.append(queue.name)
        self.original_position = await steps.join(self.caller, queue, self.joined_at)
        if self.patience_at is None:
            self.patience_at = self.joined_at + self._patience()
        timeout_at = self.joined_at + timeout
        exit_at = self.exit_at if self.exit_at is not None else float("inf")
        while True:
            now = clock.now()
            if now >= self.patience_at:
                return ABANDON
            if now >= exit_at:
                return EXIT
            if now >= timeout_at:
                return TIMEOUT
            until = min(self.patience_at, timeout_at, exit_at)
            member = self.ctx.board.pick(queue, self.caller, now)
            if member is None:
                await self.pause(min(self.ctx.config.retry_s, until - now))
            elif await self._ring(queue, member, until):
                return ANSWERED

    async def _ring(self, queue: Queue, member: Member, until: float) -> bool:
        """Ring one member until it answers, the ring times out, or ``until``."""
        steps, clock, config = self.pbx.steps, self.pbx.clock, self.ctx.config
        now = clock.now()
        self.leg = leg = await steps.ring_seat(self.caller, queue.name, member, now)
        self.own(leg.one, leg.two)
        answers = self.ctx.rng.random() >= config.no_answer_share
        answer_at = now + self._uniform(config.answer_delay_s) if answers else float("inf")
        ring_end = now + config.ring_timeout_s
        await self.pause(min(answer_at, ring_end, until) - now)
        now = clock.now()
        if answer_at <= min(ring_end, until):
            await self._connect(queue, leg, now)
            return True
        if until < ring_end and until in (self.patience_at, self.exit_at):
            return False  # the caller gives up or exits while it rings: the leg is dropped
        await steps.ring_no_answer(self.caller, queue.name, leg, now)
        self._drop_leg()
        if ring_end <= until and now < until:
            await self.pause(min(config.retry_s, until - now))  # Queue()'s retry
        return False

    def _patience(self) -> float:
        if self.script is None:
            return self._uniform(self.ctx.config.patience_s)
        patience = self.script.patience_s
        return float("inf") if patience is None else patience

    def _drop_leg(self) -> None:
        if self.leg is not None:
            self.disown((self.leg.one, self.leg.two))
            self.leg = None

    async def _connect(self, queue: Queue, leg: SeatLeg, now: float) -> None:
        steps, caller = self.pbx.steps, self.caller
        await steps.seat_answers(leg)
        self.hold_s = int(now - self.joined_at)
        for name, value in (
            ("MEMBERINTERFACE", leg.member.interface),
            ("MEMBERNAME", leg.member.name),
            ("QUEUENAME", queue.name),
        ):
            await steps.varset(caller, name, value)
        ring_s = int(now - leg.rung_at)
        self.bridge = await steps.connect(caller, queue, leg, hold_s=self.hold_s, ring_s=ring_s)
        self.phase, self.connected_at = "talk", now
        self.talk_s = self.script.talk_s if self.script else self._uniform(self.ctx.config.talk_s)
        self.stats.answered += 1
        self.outcome = scripts.ANSWERED
        if queue.name == self.line.overflow:
            self.stats.answered_by_province += 1
        if self.pbx.recorder is not None:
            await self.pbx.recorder.record(caller.uniqueid, self.talk_s)

    async def _overflow(self, target: str) -> None:
        """The city queue timed out: abandon + leave, then the dialplan goes to ``target``."""
        assert self.queue is not None
        steps, now = self.pbx.steps, self.pbx.clock.now()
        hold = int(now - self.joined_at)
        await steps.abandon(self.caller, self.queue, original=self.original_position, hold_s=hold)
        self.stats.overflowed += 1
        self.caller.variables["QUEUESTATUS"] = "TIMEOUT"
        if self.contract_queue:
            await contract.survey_check(self, overflow=False, connected=False)
            priority = contract.OVERFLOW_CHECK_PRIORITY
            return await steps.exten(
                self.caller, self.caller.exten, priority, "GotoIf", "1?overflow"
            )
        result = f"city queue result QUEUESTATUS=TIMEOUT, next {target}"
        await steps.exten(self.caller, self.digit, _QUEUE_PRIORITY + 1, "NoOp", result)
        await steps.exten(self.caller, self.digit, _QUEUE_PRIORITY + 2, "GotoIf", "1?overflow")

    # ------------------------------------------------------------------ endings

    async def _talk(self) -> None:
        if self.script is not None:
            agent_ends = self.script.seat_hangs_up
        else:
            agent_ends = self.ctx.rng.random() < self.ctx.config.agent_hangup_share
        await self.pause(self.talk_s)
        if agent_ends:
            await self.agent_hangs_up()
        else:
            await self.caller_hangs_up_bridged()

    def timing(self, now: float) -> list[tuple[str, str]]:
        return [("HoldTime", str(self.hold_s)), ("TalkTime", str(int(now - self.connected_at)))]

    def _after_call(self, leg: SeatLeg, now: float) -> None:
        assert self.queue is not None
        self.queue.completed += 1
        self.queue.holdtime, self.queue.talktime = self.hold_s, int(now - self.connected_at)
        self.ctx.board.start_wrapup(leg.member, now)
        self.pbx.model.processed_calls += 1
        self._drop_leg()

    async def caller_hangs_up_bridged(self) -> None:
        assert self.leg is not None and self.queue is not None
        now = self.pbx.clock.now()
        leg = self.leg
        steps = self.pbx.steps
        await steps.end_bridged_by_caller(
            self.caller, self.queue.name, leg, self.bridge, self.timing(now), now
        )
        self._after_call(leg, now)

    async def agent_hangs_up(self) -> None:
        """The seat hangs up: AgentComplete(agent), the caller's Queue() returns, Hangup()."""
        assert self.leg is not None and self.queue is not None
        steps, caller, leg, now = self.pbx.steps, self.caller, self.leg, self.pbx.clock.now()
        await steps.event("HangupRequest", leg.two, ("Cause", "16"))
        done = (*self.timing(now), ("Reason", "agent"))
        await steps.agent_event("AgentComplete", caller, self.queue.name, leg, *done)
        await steps.bridge_event("BridgeLeave", self.bridge, 1, leg.one)
        await steps.hangup(leg.one)
        await steps.bridge_event("BridgeLeave", self.bridge, 0, caller)
        await steps.release_seat(leg, now)
        await steps.hangup(leg.two, request="SoftHangupRequest")
        if self.contract_queue:  # Queue option c: the caller goes on to the survey
            overflowed = self.joined_overflow
            self._after_call(leg, now)
            agi = self._survey_caller()
            if agi is None:  # the caller hung up too: no survey
                return await contract.end_in_dialplan(self, caller.exten, 0, hung_up=True)
            await contract.survey_check(self, overflow=overflowed, connected=True)
            return await contract.survey(self, agi)
        await steps.exten(caller, self.digit, caller.priority + 1, "Hangup")
        await steps.event("HangupRequest", caller, ("Cause", "16"))
        await steps.caller_gone(caller)
        self._after_call(leg, now)

    def _survey_caller(self) -> AgiCaller | None:
        if self.script is not None:
            return self.script.survey
        return self.ctx.config.survey_caller(self.ctx.rng)

    async def abandon(self, *, requested: bool, cause: int = 16) -> None:
        """The caller leaves the queue by hanging up (patience, or a Hangup action)."""
        assert self.queue is not None
        self.outcome = scripts.ABANDONED
        steps, caller, now = self.pbx.steps, self.caller, self.pbx.clock.now()
        if requested:
            await steps.event("HangupRequest", caller, ("Cause", str(cause)))
        leg = self.leg
        if leg is not None:
            await steps.event("HangupRequest", leg.two, ("Cause", "0"))
            await steps.hangup(leg.one, 0)
        hold = int(now - self.joined_at)
        await steps.abandon(caller, self.queue, original=self.original_position, hold_s=hold)
        await steps.caller_gone(caller, cause)
        if leg is not None:
            await steps.event("SoftHangupRequest", leg.two, ("Cause", "16"))
            await steps.hangup(leg.two, 0)
            await steps.member_status(leg.member.interface, 1)
            self._drop_leg()
        self.stats.abandoned += 1

    async def hang_up_caller(self, cause: int, *, requested: bool) -> None:
        """Hang-up outside a queue (IVR, after a redirect)."""
        if requested:
            await self.pbx.steps.event("HangupRequest", self.caller, ("Cause", str(cause)))
        await self.pbx.steps.caller_gone(self.caller, cause)

    async def hung_up_by_action(self, channel: Channel, command: HangupCommand) -> None:
        """A ``Hangup`` action on one of the call's channels."""
        if self.phase == "queue":
            await self.abandon(requested=False, cause=command.cause)
        elif self.phase == "talk" and channel is not self.caller:
            await self.agent_hangs_up()
        elif self.phase == "talk":
            await self.caller_hangs_up_bridged()
        elif self.phase == "dialled":
            await contract.end_transfer(self, cause=command.cause, requested=False)
        else:
            await self.hang_up_caller(command.cause, requested=False)
