"""``Originate``: callbacks (回访) and click-to-call, answered as in traces 05, 05b and 05c.

The outcome is decided from the dialled number the way the lab's ``pstn-out`` context did it:
``138…`` busy (Reason 5), ``137…`` no answer until ``Timeout`` (Reason 3), ``136…`` congestion
(Reason 8), an unknown technology or a number nobody could have (``99999``) fails at once
(Reason 0, ``Uniqueid: <unknown>``); every other phone number and every seat answers after a
short ring (Reason 4).  ``Async: true`` answers ``Originate successfully queued`` at once and
reports the outcome later in ``OriginateResponse`` (with the ActionID); without it the response
waits for the outcome and a failure is ``Originate failed``.  ``ChannelId`` / ``OtherChannelId``
become the Uniqueids of the two halves.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from callcenter.ami.codec import Frame
from callcenter.pbxsim import messages as m
from callcenter.pbxsim.ami_server import AmiSession
from callcenter.pbxsim.calls import Interrupted, SimCall
from callcenter.pbxsim.engine import Command, HangupCommand, Pbx
from callcenter.pbxsim.model import Channel, Fields
from callcenter.pbxsim.queue_actions import is_true
from callcenter.pbxsim.steps import seat_exten

__all__ = [
    "OriginateActions",
    "OriginateRequest",
    "OutboundCall",
    "OutboundFactory",
    "dial_outcome",
    "parse_caller_id",
]

BUSY, NO_ANSWER, CONGESTION, FAILED, ANSWERED, HUNG_UP = 5, 3, 8, 0, 4, 1
_TECHNOLOGIES = frozenset({"local", "pjsip", "sip", "iax2", "dahdi"})
_NUMBER_CONTEXTS = frozenset({"pstn-out", "agent-phones", "trunk"})
_PHONE = re.compile(r"^(1[3-9]\d{9}|0\d{9,11}|110|119|120|12345|12348)$")
_CALLER_ID = re.compile(r'^\s*(?:"(?P<quoted>[^"]*)"|(?P<bare>[^<]*?))\s*<(?P<num>[^>]*)>\s*$')
_QUICK_FAIL_S = 0.1
_ANSWER_AFTER_S = 2.0
_DEFAULT_TIMEOUT_MS = 30000


def parse_caller_id(text: str | None) -> tuple[str, str]:
    """``"12348热线" <12348>`` -> (``12348``, ``12348热线``); missing parts are ``<unknown>``."""
    if not text:
        return "<unknown>", "<unknown>"
    match = _CALLER_ID.match(text)
    if match is None:
        return text.strip(), "<unknown>"
    name = match.group("quoted") if match.group("quoted") is not None else match.group("bare")
    return match.group("num") or "<unknown>", name or "<unknown>"


def dialled_number(dial: str) -> tuple[str, str]:
    """``Local/13905730011@pstn-out`` -> (``local``, ``13905730011``)."""
    tech, _, resource = dial.partition("/")
    return tech.lower(), resource.partition("@")[0].partition("/")[0]


def dial_outcome(dial: str, seats: set[str]) -> int:
    """The Reason code a dial string ends with (see the module docstring).

    Seats and other dialplan locations (``Local/spy@supervisor/n``, ``PJSIP/9001``) answer; in
    the customer and seat contexts only real numbers and existing seats exist.
    """
    tech, number = dialled_number(dial)
    if tech not in _TECHNOLOGIES:
        return FAILED
    if number in seats:
        return ANSWERED
    if _PHONE.match(number):
        prefixes = {"138": BUSY, "137": NO_ANSWER, "136": CONGESTION}
        return prefixes.get(number[:3], ANSWERED) if len(number) == 11 else ANSWERED
    context = dial.partition("@")[2].partition("/")[0]
    return FAILED if context in _NUMBER_CONTEXTS or not number else ANSWERED


@dataclass(frozen=True)
class OriginateRequest:
    """The parts of an ``Originate`` the simulator uses."""

    action_id: str | None
    channel: str
    context: str | None
    exten: str | None
    priority: str | None
    application: str | None
    data: str
    timeout_ms: int
    caller_num: str
    caller_name: str
    account: str
    channel_id: str | None
    other_channel_id: str | None
    is_async: bool
    variables: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, frame: Frame) -> OriginateRequest | str:
        """The request, or the synchronous error text Asterisk answers with."""
        channel = frame.get("Channel")
        if not channel:
            return "Channel not specified"
        timeout = frame.get("Timeout")
        if timeout and not timeout.strip().lstrip("-").isdigit():
            return "Invalid timeout"
        application, exten = frame.get("Application"), frame.get("Exten")
        context, priority = frame.get("Context"), frame.get("Priority")
        if not application and not (exten and context and priority):
            return "Originate with 'Exten' requires 'Context' and 'Priority'"
        num, name = parse_caller_id(frame.get("CallerID"))
        return cls(
            action_id=frame.get("ActionID"),
            channel=channel,
            context=context,
            exten=exten,
            priority=priority,
            application=application,
            data=frame.get("Data") or "",
            timeout_ms=int(timeout) if timeout else _DEFAULT_TIMEOUT_MS,
            caller_num=num,
            caller_name=name,
            account=frame.get("Account") or "",
            channel_id=frame.get("ChannelId"),
            other_channel_id=frame.get("OtherChannelId"),
            is_async=is_true(frame.get("Async")),
            variables=_variables(frame.getall("Variable")),
        )

    def target(self) -> Fields:
        """``Context``/``Exten`` or ``Application``/``Data`` of the OriginateResponse."""
        if self.application:
            return [("Application", self.application), ("Data", self.data)]
        return [("Context", self.context or ""), ("Exten", self.exten or "")]


def _variables(lines: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for line in lines:
        for part in line.split(","):
            name, sep, value = part.partition("=")
            if sep:
                out[name.strip()] = value
    return out


class OriginateActions:
    """The ``Originate`` handler; :meth:`install` registers it."""

    def __init__(self, pbx: Pbx, call_type: OutboundFactory | None = None) -> None:
        self.pbx = pbx
        self.call_type: OutboundFactory = call_type or OutboundCall
        """What an accepted Originate becomes; the trace replays plug in the lab's dialplan."""

    def install(self) -> None:
        self.pbx.server.register_action("Originate", self.originate)

    async def originate(self, session: AmiSession, frame: Frame, action_id: str | None) -> None:
        request = OriginateRequest.parse(frame)
        server = self.pbx.server
        if isinstance(request, str):
            return await server.error(session, action_id, request)
        seats = {seat_exten(m.interface) for q in self.pbx.model.queues.values() for m in q.members}
        call = self.call_type(self.pbx, request, dial_outcome(request.channel, seats))
        call.start(f"originate {request.channel}")
        if request.is_async:
            return await server.ack(session, action_id, "Originate successfully queued")
        await call.decided.wait()
        if call.reason != ANSWERED:
            return await server.error(session, action_id, "Originate failed")
        await server.ack(session, action_id, "Originate successfully queued")


class OutboundCall(SimCall):
    """One originated call: the dialled party (``;2``) and the originated channel (``;1``)."""

    def __init__(self, pbx: Pbx, request: OriginateRequest, reason: int) -> None:
        super().__init__(pbx)
        self.request = request
        self.reason = reason
        self.decided = asyncio.Event()
        self.one: Channel | None = None
        self.two: Channel | None = None
        self.seat: str | None = None
        """The interface when a seat was dialled (click-to-call rings the seat first)."""
        self.far: tuple[Channel, Channel, str] | None = None
        """The customer's Local pair and the bridge, once a seat-first call reached them."""

    async def run(self) -> None:
        try:
            if self.reason == ANSWERED:
                await self._answered()
            else:
                await self._failed()
        except Interrupted as stop:
            await self._hang_up(stop.command)
        finally:
            self.decided.set()
            self.disown_all()

    def refuse(self, channel: Channel, command: Command) -> str | None:
        return None if isinstance(command, HangupCommand) else "Transfer invalid"

    # ------------------------------------------------------------------ failure

    async def _failed(self) -> None:
        wait = self.request.timeout_ms / 1000 if self.reason == NO_ANSWER else _QUICK_FAIL_S
        await self.pause(wait)
        await self._respond("Failure", self.request.channel, "<unknown>")

    async def _respond(self, result: str, channel: str, uniqueid: str) -> None:
        request = self.request
        self.decided.set()
        if not request.is_async:
            return  # the synchronous response reports it
        head = [("ActionID", request.action_id)] if request.action_id is not None else []
        fields = m.event(
            self.pbx.model,
            "OriginateResponse",
            "call,all",
            *head,
            ("Response", result),
            ("Channel", channel),
            *request.target(),
            ("Reason", str(self.reason)),
            ("Uniqueid", uniqueid),
            ("CallerIDNum", request.caller_num),
            ("CallerIDName", request.caller_name),
        )
        await self.pbx.server.emit(fields)

    # ------------------------------------------------------------------ success

    async def _answered(self) -> None:
        one, two = self._create_pair()
        steps = self.pbx.steps
        await steps.new_channel(one)
        await steps.new_channel(two)
        req = self.request
        await steps.caller_id(one, req.caller_num, req.caller_name, connected=False)
        await steps.caller_id(two, req.caller_num, req.caller_name, connected=True)
        await steps.exten(one, one.exten, 1, "AppDial2", "(Outgoing Line)")
        await steps.exten(two, two.exten, 1, "Ringing")
        one.state = 5
        await self._seat_in_use(two.exten)
        await self.pause(_ANSWER_AFTER_S)
        await steps.exten(two, two.exten, 2, "Answer")
        one.state = two.state = 6
        await self._respond("Success", one.name, one.uniqueid)
        await self._run_target(one)
        await self._hang_up(HangupCommand(16))

    def _create_pair(self) -> tuple[Channel, Channel]:
        number = dialled_number(self.request.channel)[1]
        context = self.request.channel.partition("@")[2].partition("/")[0] or "pstn-out"
        model = self.pbx.model
        one, two = model.add_local_pair(number, context)
        self._rename(one, self.request.channel_id)
        self._rename(two, self.request.other_channel_id, linkedid=one.uniqueid)
        for channel in (one, two):
            channel.account_code = self.request.account
            channel.variables.update(self.request.variables)
        self.one, self.two = one, two
        self.own(one, two)
        return one, two

    @staticmethod
    def _rename(channel: Channel, uniqueid: str | None, *, linkedid: str | None = None) -> None:
        if uniqueid:
            channel.uniqueid = uniqueid
            channel.linkedid = linkedid or uniqueid
        elif linkedid:
            channel.linkedid = linkedid

    async def _run_target(self, one: Channel) -> None:
        """The originated channel runs its dialplan (or application) while the customer talks."""
        req, steps = self.request, self.pbx.steps
        if req.application:
            one.application, one.app_data = req.application, req.data
            await self.pause(self.pbx.rng.uniform(3, 8))
            return
        one.context = req.context or ""
        await steps.exten(one, req.exten or "s", _priority(req.priority), "Answer")
        if req.context == "callback-survey":
            await self._survey(one)
        elif req.exten and _PHONE.match(req.exten):
            await self._dial_customer(one, req.exten)
        else:
            await self.pause(self.pbx.rng.uniform(20, 90))

    async def _seat_in_use(self, exten: str) -> None:
        """A dialled seat's device is busy: its queues see ``QueueMemberStatus`` 2 (trace 05b)."""
        for queue in self.pbx.model.queues.values():
            for member in queue.members:
                if seat_exten(member.interface) == exten:
                    self.seat = member.interface
        if self.seat is not None:
            await self.pbx.steps.member_status(self.seat, 2)

    async def _dial_customer(self, one: Channel, number: str) -> None:
        """Click-to-call (trace 05b): the answered seat's channel dials the customer."""
        steps = self.pbx.steps
        await steps.exten(one, one.exten, 2, "Dial", f"Local/{number}@pstn-out,30")
        if dial_outcome(f"Local/{number}@pstn-out", set()) != ANSWERED:
            await self.pause(_QUICK_FAIL_S)
            return
        far, near = self.pbx.model.add_local_pair(number, "pstn-out", linkedid=one.linkedid)
        self.own(far, near)
        await steps.new_channel(far)
        await steps.new_channel(near)
        await steps.exten(near, number, 1, "Ringing")
        await self.pause(_ANSWER_AFTER_S)
        far.state = near.state = 6
        bridge = self.pbx.model.new_bridge_id()
        self.far = (far, near, bridge)
        await steps.bridge_event("BridgeEnter", bridge, 1, far)
        await steps.bridge_event("BridgeEnter", bridge, 2, one)
        await self.pause(self.pbx.rng.uniform(20, 90))

    async def _survey(self, one: Channel) -> None:
        """回访: prompt, the customer presses a score, ``UserEvent SurveyResult``."""
        steps = self.pbx.steps
        await steps.exten(one, one.exten, 2, "Playback", "hello")
        await steps.exten(one, one.exten, 3, "Read", "SCORE,vm-press,1,,1,6")
        await self.pause(self.pbx.rng.uniform(3, 6))
        score = str(self.pbx.rng.choice((5, 5, 5, 4, 4, 3, 2, 1)))
        await steps.varset(one, "SCORE", score)
        ticket = one.variables.get("TICKET_ID", "")
        await steps.exten(one, one.exten, 4, "UserEvent", f"SurveyResult,TicketID:{ticket}")
        extra = (("UserEvent", "SurveyResult"), ("TicketID", ticket), ("Score", score))
        await steps.event("UserEvent", one, *extra, privilege="user,all")
        await steps.exten(one, one.exten, 5, "Playback", "auth-thankyou")
        await self.pause(1.0)

    async def _hang_up(self, command: Command) -> None:
        cause = command.cause if isinstance(command, HangupCommand) else 16
        if not self.decided.is_set():
            self.reason = HUNG_UP  # hung up while ringing: the originate failed
            await self._respond("Failure", self.request.channel, "<unknown>")
        steps = self.pbx.steps
        if self.far is not None and self.one is not None:
            far, near, bridge = self.far
            await steps.bridge_event("BridgeLeave", bridge, 1, self.one)
            await steps.bridge_event("BridgeLeave", bridge, 0, far)
            await steps.hangup(far, cause, request="HangupRequest")
            await steps.hangup(near, cause, request="SoftHangupRequest")
        if self.one is not None and self.two is not None:
            await steps.event("SoftHangupRequest", self.one, ("Cause", str(cause)))
            await steps.event("HangupRequest", self.two, ("Cause", str(cause)))
            await steps.hangup(self.one, cause)
            await steps.hangup(self.two, cause, request="SoftHangupRequest")
        if self.seat is not None:
            await steps.member_status(self.seat, 1)


OutboundFactory = Callable[[Pbx, OriginateRequest, int], OutboundCall]


def _priority(text: str | None) -> int:
    try:
        return int(text) if text else 1
    except ValueError:
        return 1
