"""The trace lab's dialplan and the call steps the trace replays need beyond :mod:`steps`.

:data:`LAB_DIALPLAN` is ``shared/asterisk-traces/conf/extensions.conf`` as data, so a replayed
channel reports the application *and* the data the lab's dialplan ran at each priority
(``Newexten``) without the scripts repeating the dialplan's text.  :class:`LabSteps` adds the
composite steps whose order the traces show but the traffic generator does not need: a seat leg
that goes away in one of the orders Asterisk's threads produce, a Local channel pair that a
``Dial()`` or a transfer creates, the seat's own ``Answer`` / ``Echo``.
"""

from __future__ import annotations

import re

from callcenter.pbxsim import messages as m
from callcenter.pbxsim.ami_server import AmiServer
from callcenter.pbxsim.model import Channel, Member
from callcenter.pbxsim.steps import CallSteps, EventOptions, SeatLeg, bridge_fields, seat_exten

__all__ = ["LAB_DIALPLAN", "LabSteps", "dialplan_step"]

Apps = tuple[tuple[str, str], ...]

MONITOR_DIR = "/var/spool/asterisk/monitor"

LAB_DIALPLAN: dict[tuple[str, str], Apps] = {
    ("from-trunk", "12348"): (
        ("NoOp", '12348 inbound from ${CALLERID(num)} "${CALLERID(name)}"'),
        ("Answer", ""),
        ("Set", "CHANNEL(language)=en"),
        ("Set", "TIMEOUT(digit)=3"),
        ("Set", "TIMEOUT(response)=10"),
        ("BackGround", "hello"),
        ("BackGround", "vm-press"),
        ("BackGround", "digits/1"),
        ("WaitExten", "10"),
    ),
    ("from-trunk", "1"): (
        ("NoOp", "IVR choice 1 legal-consult"),
        ("Set", "__HOTLINE_SERVICE=legal-consult"),
        ("MixMonitor", "${UNIQUEID}.wav,b"),
        ("Queue", "legal-consult,t,,,120"),
        ("Hangup", ""),
    ),
    ("from-trunk", "2"): (
        ("NoOp", "IVR choice 2 legal-aid"),
        ("Set", "__HOTLINE_SERVICE=legal-aid"),
        ("Queue", "legal-aid,,,,120"),
        ("Hangup", ""),
    ),
    ("from-trunk", "3"): (
        ("NoOp", "IVR choice 3 mediation"),
        ("Queue", "mediation,t,,,120"),
        ("Hangup", ""),
    ),
    ("from-trunk", "4"): (
        ("NoOp", "IVR choice 4 city 330400 with overflow"),
        ("Set", "__HOTLINE_CITY=330400"),
        ("Queue", "city-330400,,,,8"),
        ("NoOp", "city queue result QUEUESTATUS=${QUEUESTATUS}"),
        ("GotoIf", "1?overflow"),
        ("Hangup", ""),
        ("Queue", "province,,,,60"),
        ("Hangup", ""),
    ),
    ("from-trunk", "h"): (("NoOp", "from-trunk hangup cause=${HANGUPCAUSE}"),),
    ("agent-phones", "8009"): (
        ("NoOp", "seat 8009 rings and never answers"),
        ("Ringing", ""),
        ("Wait", "300"),
    ),
    ("agent-phones", "_80XX"): (
        ("NoOp", "seat ${EXTEN} alerting"),
        ("Ringing", ""),
        ("Wait", "2"),
        ("Answer", ""),
        ("Echo", ""),
    ),
    ("pstn-out", "_139XXXXXXXX"): (
        ("NoOp", "customer phone ${EXTEN} ringing"),
        ("Ringing", ""),
        ("Wait", "2"),
        ("Answer", ""),
        ("Wait", "4"),
        ("SendDTMF", "5"),
        ("Wait", "15"),
        ("Hangup", ""),
    ),
    ("callback-survey", "s"): (
        ("NoOp", "回访 callback ticket=${TICKET_ID}"),
        ("Playback", "hello"),
        ("Read", "SCORE,vm-press,1,,1,6"),
        ("NoOp", "satisfaction score=${SCORE} READSTATUS=OK"),
        ("UserEvent", "SurveyResult,TicketID: ${TICKET_ID},Score: ${SCORE}"),
        ("Playback", "auth-thankyou"),
        ("Hangup", ""),
    ),
    ("callback-dial", "_X."): (
        ("NoOp", "seat ${CALLERID(num)} calls back ${EXTEN}"),
        ("Set", "CALLERID(num)=12348"),
        ("Dial", "Local/${EXTEN}@pstn-out/n,30"),
        ("Hangup", ""),
    ),
    ("transfer-targets", "12345"): (
        ("NoOp", "transferred to 12345 hotline"),
        ("Answer", ""),
        ("Playback", "pls-hold-while-try"),
        ("Wait", "20"),
        ("Hangup", ""),
    ),
    ("transfer-targets", "_80XX"): (
        ("NoOp", "transferred to seat ${EXTEN}"),
        ("Dial", "Local/${EXTEN}@agent-phones/n,20"),
        ("Hangup", ""),
    ),
    ("supervisor", "spy"): (
        ("NoOp", "supervisor spies on ${SPY_TARGET} opts ${SPY_OPTS}"),
        ("Answer", ""),
        ("ChanSpy", "${SPY_TARGET},${SPY_OPTS}"),
        ("Hangup", ""),
    ),
    ("odd-callers", "_X."): (
        ("Set", "CALLERID(name)=${ODD_NAME}"),
        ("Answer", ""),
        ("Wait", "2"),
        ("Hangup", ""),
    ),
}
"""``(context, extension) -> ((application, data), …)`` for priorities 1, 2, …"""

_VARIABLE = re.compile(r"\$\{([^}]+)\}")


def _pattern(exten: str) -> re.Pattern[str]:
    """An Asterisk extension pattern (``_80XX``, ``_X.``) as a regular expression."""
    body = "".join({"X": "[0-9]", "N": "[2-9]", "Z": "[1-9]", ".": ".+"}.get(c, c) for c in exten)
    return re.compile(f"^{body}$")


def dialplan_step(context: str, exten: str, priority: int) -> tuple[str, str]:
    """The application and (unexpanded) data at a dialplan location of the lab."""
    apps = LAB_DIALPLAN.get((context, exten))
    if apps is None:
        apps = next(
            steps
            for (ctx, pattern), steps in LAB_DIALPLAN.items()
            if ctx == context and pattern.startswith("_") and _pattern(pattern[1:]).match(exten)
        )
    return apps[priority - 1]


def expand(text: str, channel: Channel) -> str:
    """``${VAR}`` substitution from the channel's caller ID, ids and variables."""
    known = {
        "CALLERID(num)": channel.caller_num,
        "CALLERID(name)": channel.caller_name,
        "UNIQUEID": channel.uniqueid,
        "EXTEN": channel.exten,
        **channel.variables,
    }
    return _VARIABLE.sub(lambda match: known.get(match.group(1), ""), text)


class LabSteps(CallSteps):
    """:class:`CallSteps` plus the lab dialplan and the orders the trace replays need."""

    def __init__(self, server: AmiServer, options: EventOptions | None = None) -> None:
        super().__init__(server, options)
        self._inheritable: dict[str, set[str]] = {}
        """Uniqueid -> variables set with ``__`` (inherited by the channels it creates)."""

    def inherit(self, child: Channel, parent: Channel) -> None:
        """``child`` (created by ``parent``'s Dial/Queue) gets ``parent``'s ``__`` variables."""
        names = self._inheritable.get(parent.uniqueid, set())
        child.variables.update({n: parent.variables[n] for n in names})
        self._inheritable.setdefault(child.uniqueid, set()).update(names)

    # ------------------------------------------------------------------ dialplan

    async def run(self, channel: Channel, exten: str | None = None, priority: int = 1) -> None:
        """The channel runs ``exten`` (default: its own) at ``priority`` in its context."""
        exten = channel.exten if exten is None else exten
        app, data = dialplan_step(channel.context, exten, priority)
        channel.exten = exten  # ${EXTEN} is the new extension already
        await self.exten(channel, exten, priority, app, expand(data, channel))

    async def next(self, channel: Channel, count: int = 1) -> None:
        """The channel runs its next ``count`` priorities."""
        for _ in range(count):
            await self.run(channel, channel.exten, channel.priority + 1)

    async def goto(self, channel: Channel, context: str, exten: str, priority: int = 1) -> None:
        """A jump to another context (Redirect, transfer): the first step there."""
        channel.context = context
        await self.run(channel, exten, priority)

    # ------------------------------------------------------------------ callers

    async def choose(self, caller: Channel, digit: str, steps: int) -> None:
        """After the menu the caller pressed ``digit``: its first ``steps`` priorities, with the
        side effects the platform sees (``MixMonitorStart``) or a later ``ChanVariable`` shows
        (``Set(__VAR=value)``)."""
        await self.run(caller, digit, 1)
        for _ in range(steps - 1):
            await self.next(caller)
            await self._side_effects(caller)

    async def _side_effects(self, caller: Channel) -> None:
        if caller.application == "Set" and caller.app_data.startswith("__"):
            name, _, value = caller.app_data[2:].partition("=")
            await self.varset(caller, name, value)
            self._inheritable.setdefault(caller.uniqueid, set()).add(name)
        elif caller.application == "MixMonitor":
            path = f"{MONITOR_DIR}/{caller.app_data.partition(',')[0]}"
            await self.varset(caller, "MIXMONITOR_FILENAME", path)
            await self.event("MixMonitorStart", caller)

    async def hang_up_in_dialplan(self, caller: Channel, cause: int = 16) -> None:
        """The caller's ``h`` extension runs and the channel is gone (``caller_gone``'s tail)."""
        caller.variables["HANGUPCAUSE"] = str(cause)
        await self.run(caller, "h", 1)
        caller.priority = 2
        await self.hangup(caller, cause)

    # ------------------------------------------------------------------ seat legs

    async def ring(
        self,
        caller: Channel,
        queue: str,
        member: Member,
        now: float,
        *,
        status_first: bool = False,
        outgoing_first: bool = False,
        status: bool = True,
        called_late: bool = False,
    ) -> SeatLeg:
        """Queue() rings a member: the Local pair, ``AgentCalled``, the seat's dialplan up to
        its ``Wait`` and the seat's device state.

        Two of Asterisk's threads race here, and the traces show both outcomes of each race:
        ``status_first`` -- the device state change overtakes the seat's ``Wait`` (trace 02);
        ``outgoing_first`` -- the ``;1`` half reports the caller's extension before the ``;2``
        half got the caller ID (trace 13).  ``status=False``: the caller reports the seat's
        device state itself, after what overtook it (trace 09).  ``called_late``: the seat's
        dialplan reached its ``Wait`` before Queue() reported ``AgentCalled`` (trace 10).
        """
        exten = seat_exten(member.interface)
        one, two = self.model.add_local_pair(exten, "agent-phones", linkedid=caller.linkedid)
        leg = SeatLeg(member, one, two, now)
        await self.new_channel(one)
        await self.new_channel(two)
        one.caller_num, one.caller_name = caller.caller_num, caller.caller_name
        await self.exten(one, exten, 1, "AppQueue", "(Outgoing Line)")
        await self.caller_id(one, caller.caller_num, caller.caller_name, connected=False)
        self.connect_line(one, caller)
        self.inherit(one, caller)
        self.inherit(two, caller)
        if outgoing_first:
            await self.exten(one, caller.exten, 1, "AppQueue", "(Outgoing Line)")
        await self.caller_id(two, caller.caller_num, caller.caller_name, connected=True)
        one.exten = caller.exten
        if not called_late:
            await self.agent_event("AgentCalled", caller, queue, leg)
        await self.run(two, exten, 1)
        await self.next(two)
        one.state = 5
        if not outgoing_first:
            await self.exten(one, caller.exten, 1, "AppQueue", "(Outgoing Line)")
        if status and status_first:
            await self.member_status(member.interface, 2)
        await self.next(two)
        if called_late:
            await self.agent_event("AgentCalled", caller, queue, leg)
        if status and not status_first:
            await self.member_status(member.interface, 2)
        return leg

    async def seat_answers_lab(self, leg: SeatLeg) -> None:
        """``Answer()`` of the seat's ``;2`` half (the ``_80XX`` extension's priority 4)."""
        await self.run(leg.two, leg.two.exten, 4)
        leg.one.state = leg.two.state = 6

    async def seat_echo(self, leg: SeatLeg) -> None:
        await self.run(leg.two, leg.two.exten, 5)

    async def leg_request(self, leg: SeatLeg, cause: int) -> None:
        """Queue() gives up the ring: the ``;2`` half is asked to hang up."""
        await self.event("HangupRequest", leg.two, ("Cause", str(cause)))

    async def leg_two_gone(self, leg: SeatLeg, cause: int) -> None:
        """The ``;2`` half stops its dialplan (``SoftHangupRequest`` 16) and hangs up."""
        await self.event("SoftHangupRequest", leg.two, ("Cause", "16"))
        await self.hangup(leg.two, cause)

    async def no_answer(self, caller: Channel, queue: str, leg: SeatLeg, ring_ms: int) -> None:
        """``AgentRingNoAnswer`` and the ring is given up (the rest of the teardown varies)."""
        rung = (("RingTime", str(ring_ms)),)
        await self.agent_event("AgentRingNoAnswer", caller, queue, leg, *rung)
        await self.leg_request(leg, 0)

    # ------------------------------------------------------------------ Local pairs

    async def local_pair(
        self, exten: str, context: str, linkedid: str, num: str, name: str, *, app: str
    ) -> tuple[Channel, Channel]:
        """A Local pair a ``Dial()`` creates: both halves, the ``;1`` outgoing line, caller IDs.

        ``app`` is what the dialling side runs (``AppDial``, ``AppDial2``, ``AppQueue``); the
        ``;1`` half has the caller's number already when it reports it (then ``NewCallerid``).
        """
        one, two = self.model.add_local_pair(exten, context, linkedid=linkedid)
        await self.new_channel(one)
        await self.new_channel(two)
        one.caller_num, one.caller_name = num, name
        await self.exten(one, exten, 1, app, "(Outgoing Line)")
        await self.caller_id(one, num, name, connected=False)
        await self.caller_id(two, num, name, connected=True)
        return one, two

    async def dial(self, dialer: Channel, exten: str, context: str) -> tuple[Channel, Channel]:
        """``Dial(Local/<exten>@<context>/n)`` from ``dialer``: the pair, its outgoing line,
        caller IDs as Asterisk sets them -- the ``;1`` half shows the dialled number with the
        dialer's name, the ``;2`` half the dialer's caller ID, each the other as connected."""
        one, two = self.model.add_local_pair(exten, context, linkedid=dialer.linkedid)
        await self.new_channel(one)
        await self.new_channel(two)
        one.caller_num, one.caller_name = exten, dialer.caller_name
        self.connect_line(one, dialer)
        await self.exten(one, exten, 1, "AppDial", "(Outgoing Line)")
        await self.caller_id(one, exten, dialer.caller_name, connected=False)
        self.connect_line(two, one)
        await self.caller_id(two, dialer.caller_num, dialer.caller_name, connected=False)
        return one, two

    async def bridge_swap(self, bridge: str, count: int, channel: Channel, swap: Channel) -> None:
        """``BridgeEnter`` of a channel that replaces ``swap`` (a Local pair optimizing away)."""
        body = bridge_fields("Bridge", bridge, count)
        snapshot = channel.snapshot("", self.model.channelvars)
        fields = (*body, *snapshot, ("SwapUniqueid", swap.uniqueid))
        await self.server.emit(m.event(self.model, "BridgeEnter", "call,all", *fields))

    @staticmethod
    def connect_line(channel: Channel, other: Channel) -> None:
        """``channel`` now shows ``other``'s caller as its connected line (no AMI event the
        platform subscribes to: ``NewConnectedLine`` is filtered out)."""
        channel.connected_num, channel.connected_name = other.caller_num, other.caller_name
