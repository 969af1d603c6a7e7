"""Scripted inbound calls of the traces without platform actions: 02, 02b, 02c (abandons and
an IVR hang-up).  Durations are the trace's, so HoldTime / RingTime come out the same."""

from __future__ import annotations

from typing import ClassVar

from callcenter.pbxsim.model import Channel, Queue
from callcenter.pbxsim.scripted import LabScript, Talk
from callcenter.pbxsim.steps import SeatLeg

__all__ = [
    "AbandonEmptyQueue",
    "AbandonRingNoAnswer",
    "FiveCallers",
    "IvrHangup",
    "LabAnsweredCall",
    "LabAnsweredCallVariant",
    "OddCallerNames",
    "Overflow",
]

RING_TIMEOUT_S = 5.0  # queues.conf: timeout=5 (AgentRingNoAnswer RingTime: 5000)
RETRY_S = 1.0  # queues.conf: retry=1


class AbandonRingNoAnswer(LabScript):
    """Trace 02: 李四 presses 2, legal-aid's only seat (王芳, also in city-330400) rings three
    times without answer; the caller hangs up during the fourth ring after 18 s."""

    TEARDOWNS = ((True, False), (False, True), (False, False))
    """Per unanswered ring: (device state before the ``Wait``, device state before the ``;2``
    half's hang-up).  Asterisk's threads race there; these are the three orders of the trace."""

    async def script(self) -> None:
        steps, caller = self.steps, self.inbound()
        queue = self.queue("legal-aid")
        await self.ivr(caller, "13905730002", "李四")
        await self.wait(2)
        await steps.choose(caller, "2", 3)
        joined = self.now()
        await steps.join(caller, queue, joined)
        for status_first, status_before_two in self.TEARDOWNS:
            leg = await steps.ring(
                caller, queue.name, queue.members[0], self.now(), status_first=status_first
            )
            await self.wait(RING_TIMEOUT_S)
            await steps.no_answer(caller, queue.name, leg, int(RING_TIMEOUT_S * 1000))
            await steps.hangup(leg.one, 0)
            await self.seat_freed(leg, status_first=status_before_two)
            await self.wait(RETRY_S)
        leg = await steps.ring(caller, queue.name, queue.members[0], self.now())
        await self.wait(0.5)
        await steps.event("HangupRequest", caller, ("Cause", "16"))
        await steps.leg_request(leg, 0)
        await steps.hangup(leg.one, 0)
        await steps.abandon(caller, queue, original=1, hold_s=self.since(joined))
        await steps.caller_gone(caller)
        await self.seat_freed(leg, status_first=False)

    async def seat_freed(self, leg: SeatLeg, *, status_first: bool) -> None:
        """The ringing ``;2`` half hangs up and the seat's device is idle again (either order)."""
        if status_first:
            await self.steps.member_status(leg.member.interface, 1)
        await self.steps.leg_two_gone(leg, 0)
        if not status_first:
            await self.steps.member_status(leg.member.interface, 1)


async def abandon_queue(script: LabScript, caller: Channel, queue: Queue, joined: float) -> None:
    """A waiting caller hangs up (no seat ringing): request, abandon + leave, ``h``, Hangup."""
    steps = script.steps
    await steps.event("HangupRequest", caller, ("Cause", "16"))
    await steps.abandon(caller, queue, original=1, hold_s=script.since(joined))
    await steps.caller_gone(caller)


class AbandonEmptyQueue(LabScript):
    """Trace 02b: 王五 presses 3 into mediation, which has no members, and hangs up after 12 s."""

    async def script(self) -> None:
        steps, caller = self.steps, self.inbound()
        await self.ivr(caller, "02112348000", "王五")
        await self.wait(2)
        await steps.choose(caller, "3", 2)
        queue, joined = self.queue("mediation"), self.now()
        await steps.join(caller, queue, joined)
        await self.wait(12.2)
        await abandon_queue(self, caller, queue, joined)


class IvrHangup(LabScript):
    """Trace 02c: 赵六 hangs up while ``WaitExten`` waits for a key."""

    async def script(self) -> None:
        steps, caller = self.steps, self.inbound()
        await self.ivr(caller, "13705730003", "赵六")
        await steps.next(caller)  # WaitExten(10)
        await self.wait(0.1)
        await steps.event("HangupRequest", caller, ("Cause", "16"))
        await steps.caller_gone(caller)


class LabAnsweredCall(LabScript):
    """Trace 01: 张三 presses 1 (recorded), 张伟 (8001) rings 2 s and answers, the caller hangs
    up after 9 s of talk.  Subclasses replay the same call in other captures."""

    NUMBER, NAME, TALK_S = "13805730001", "张三", 9.0
    OUTGOING_FIRST = False
    ORDER: tuple[str, ...] = (
        "request",
        "caller_leaves",
        "caller_soft",
        "caller_h",
        "complete",
        "seat_leaves",
        "seat_request",
        "seat_one",
        "caller_gone",
        "seat_free",
        "seat_soft",
        "seat_two",
    )

    async def script(self) -> None:
        caller = self.inbound()
        await self.ivr(caller, self.NUMBER, self.NAME)
        await self.wait(2)
        await self.steps.choose(caller, "1", 4)
        queue = self.queue("legal-consult")
        seat = queue.members[0]
        talk = await self.answered(caller, queue, seat, outgoing_first=self.OUTGOING_FIRST)
        await self.wait(self.TALK_S)
        await self.caller_hangs_up(talk, self.ORDER)


class LabAnsweredCallVariant(LabAnsweredCall):
    """Trace 13: trace 01's call on ``systemname = js-node1``, ``timestampevents`` and
    ``channelvars``; the platform pings while the seat's legs go away."""

    NUMBER, NAME, TALK_S = "13905730300", "严十五", 3.0
    OUTGOING_FIRST = True
    ORDER = (
        "request",
        "complete",
        "caller_leaves",
        "seat_leaves",
        "seat_request",
        "seat_soft",
        "seat_one",
        "seat_free",
        "platform",
        "seat_two",
        "caller_soft",
        "caller_h",
        "caller_gone",
    )


class Overflow(LabScript):
    """Trace 09: 卫十四 presses 4: the city queue's seat (王芳) does not answer within the
    queue's 8 s, Queue() times out -- ``QueueCallerAbandon`` although the caller stays --, the
    dialplan goes on to the provincial queue, where 省中心-陈静 answers; the caller hangs up."""

    ORDER = (
        "request",
        "complete",
        "caller_leaves",
        "caller_soft",
        "seat_leaves",
        "seat_request",
        "seat_one",
        "seat_soft",
        "seat_two",
        "seat_free",
        "caller_h",
        "caller_gone",
    )

    async def script(self) -> None:
        steps, caller = self.steps, self.inbound()
        city, province = self.queue("city-330400"), self.queue("province")
        await self.ivr(caller, "057312348000", "卫十四")
        await self.wait(2)
        await steps.choose(caller, "4", 3)
        joined = self.now()
        await steps.join(caller, city, joined)
        seat = city.members[0]
        leg = await steps.ring(caller, city.name, seat, self.now())
        await self.wait(RING_TIMEOUT_S)
        await steps.no_answer(caller, city.name, leg, int(RING_TIMEOUT_S * 1000))
        await steps.leg_two_gone(leg, 0)
        await steps.hangup(leg.one, 0)
        await steps.member_status(seat.interface, 1)
        await self.wait(RETRY_S)
        leg = await steps.ring(caller, city.name, seat, self.now())
        await self.wait(2)  # Queue(city-330400,,,,8) times out while it rings
        await steps.no_answer(caller, city.name, leg, 2000)
        await steps.hangup(leg.one, 0)
        await steps.abandon(caller, city, original=1, hold_s=self.since(joined))
        caller.variables["QUEUESTATUS"] = "TIMEOUT"
        await steps.next(caller, 2)  # NoOp(result), GotoIf(overflow)
        await steps.run(caller, "4", 7)  # Queue(province,,,,60)
        talk = await self.overflow_answered(caller, province, leg)
        await self.wait(12)
        await self.caller_hangs_up(talk, self.ORDER)

    async def overflow_answered(self, caller: Channel, province: Queue, city_leg: SeatLeg) -> Talk:
        """The provincial seat rings while the city seat's last ring is still being torn down."""
        steps, joined = self.steps, self.now()
        await steps.join(caller, province, joined)
        leg = await steps.ring(caller, province.name, province.members[0], joined, status=False)
        await steps.member_status(city_leg.member.interface, 1)
        await steps.member_status(leg.member.interface, 2)
        await steps.leg_two_gone(city_leg, 0)
        return await self.answer_after(caller, province, leg, joined, 2.0)


ODD_NAMES: tuple[tuple[str, bytes], ...] = (
    ("13905730200", "坏人\r\nEvent: FakeEvent\r\nX: y".encode()),
    (
        "13905730201",
        "坏人\r\n\r\nEvent: Hangup\r\nChannel: Local/forged-00000000;2\r\nCause: 16\r\n".encode(),
    ),
    ("13905730202", "张三".encode("gbk")),
    ("13905730203", "Name: 王五 <13800000000>".encode()),
    ("13905730204", ("法律援助" * 15).encode()),
)
"""Trace 12's caller names, as the bytes the lab put into ``CALLERID(name)``."""


def snapshot_text(name: str) -> str:
    """How a channel snapshot field shows untrusted text: trailing blanks trimmed, CR and LF
    escaped as the two characters ``\\r`` / ``\\n`` (other bytes, even non-UTF-8, raw)."""
    return name.rstrip().replace("\r", "\\r").replace("\n", "\\n")


class OddCallerNames(LabScript):
    """Trace 12: five calls whose caller name is untrusted bytes: CR/LF with a fake header,
    a double CR/LF that forges a whole ``Event: Hangup`` message (``Newexten``'s ``AppData``
    carries the name raw), GBK bytes, a ``Key: value``-looking name, 60 Chinese characters.

    The lab's ``odd-callers`` dialplan: ``Set(CALLERID(name)=…)``, ``Answer``, ``Wait(2)``,
    ``Hangup``.  Names are kept as ``surrogateescape`` text, so the bytes on the wire are the
    lab's bytes.
    """

    async def script(self) -> None:
        for number, raw in ODD_NAMES:
            await self.odd_call(number, raw.decode("utf-8", "surrogateescape"))
            await self.wait(1.5)

    async def odd_call(self, number: str, name: str) -> None:
        steps, caller = self.steps, self.inbound(number, "odd-callers")
        await steps.new_channel(caller)
        await steps.caller_id(caller, number, "<unknown>", connected=True)
        caller.variables["ODD_NAME"] = name
        await steps.run(caller, number, 1)  # Set(CALLERID(name)=…): AppData raw
        await steps.caller_id(caller, number, snapshot_text(name), connected=False)
        await steps.next(caller)  # Answer
        caller.state = 6
        await steps.next(caller)  # Wait(2)
        await self.wait(2)
        await steps.next(caller)  # Hangup
        await steps.hangup(caller, 16, request="SoftHangupRequest")


class FiveCallers(LabScript):
    """Trace 10: five callers press 1 within 1.2 s into legal-consult, which has two seats:
    positions 1-5; 李娜 and 张伟 answer the first two; the platform asks QueueStatus and
    QueueSummary while three wait; the next two are answered when the seats are free again;
    the fifth hangs up while 李娜 rings for it.

    The callers run concurrently in the lab; the script plays them at the trace's times
    (:meth:`LabScript.at`), so the durations Asterisk reports come out the same.
    """

    CALLERS = (
        ("13905730100", "蒋一"),
        ("13905730101", "沈二"),
        ("13905730102", "韩三"),
        ("13905730103", "杨四"),
        ("13905730104", "朱五"),
    )
    IVR = (
        (1.110, "arrive", 0),
        (1.410, "arrive", 1),
        (1.611, "menu", 0),
        (1.711, "arrive", 2),
        (1.912, "menu", 1),
        (2.012, "arrive", 3),
        (2.212, "menu", 2),
        (2.314, "arrive", 4),
        (2.396, "prompt", 0),
        (2.515, "menu", 3),
        (2.697, "prompt", 1),
        (2.815, "menu", 4),
        (2.996, "prompt", 2),
        (3.117, "prompt", 0),
        (3.299, "prompt", 3),
        (3.419, "prompt", 1),
        (3.599, "prompt", 4),
        (3.718, "prompt", 2),
        (4.021, "prompt", 3),
        (4.320, "prompt", 4),
    )
    """When each caller got how far in the IVR: answered (``arrive``), the three ``Set`` and the
    first ``BackGround`` (``menu``), each further ``BackGround`` (``prompt``)."""
    JOINS = (6.3, 6.6, 6.9, 7.2, 7.5)
    HANGUPS: ClassVar[dict[str, tuple[str, ...]]] = {
        "first": (
            "request",
            "complete",
            "caller_leaves",
            "seat_leaves",
            "caller_soft",
            "seat_request",
            "caller_h",
            "seat_one",
            "caller_gone",
            "seat_free",
            "seat_soft",
            "seat_two",
        ),
        "usual": (
            "request",
            "complete",
            "caller_leaves",
            "caller_soft",
            "caller_h",
            "seat_leaves",
            "seat_request",
            "seat_one",
            "caller_gone",
            "seat_free",
            "seat_soft",
            "seat_two",
        ),
        "late_complete": (
            "request",
            "caller_leaves",
            "seat_leaves",
            "complete",
            "caller_soft",
            "seat_request",
            "caller_h",
            "caller_gone",
            "seat_soft",
            "seat_two",
            "seat_one",
            "seat_free",
        ),
    }
    """The orders of the four answered callers' hang-ups (see ``HANGUP_STEPS``)."""

    async def script(self) -> None:
        callers = [self.inbound() for _ in self.CALLERS]
        await self.through_ivr(callers)
        queue = self.queue("legal-consult")
        zhang, li = queue.members
        legs = {}
        for index, (caller, at) in enumerate(zip(callers, self.JOINS, strict=True)):
            await self.at(at)
            await self.steps.choose(caller, "1", 4)
            await self.steps.join(caller, queue, self.now())
            if index < 2:
                legs[index] = await self.steps.ring(
                    caller, queue.name, (li, zhang)[index], self.now()
                )
        first = await self.connect_at(8.32, callers[0], legs[0], joined=6.3)
        second = await self.connect_at(8.62, callers[1], legs[1], joined=6.6)
        await self.at(9.827)
        await self.platform()  # QueueStatus legal-consult
        await self.platform()  # QueueSummary legal-consult
        await self.at(13.566)
        await self.caller_hangs_up(first, self.HANGUPS["first"])
        await self.at(13.867)
        await self.caller_hangs_up(second, self.HANGUPS["usual"])
        await self.at(13.923)
        legs[2] = await self.steps.ring(callers[2], queue.name, li, self.now())
        await self.at(14.226)
        legs[3] = await self.steps.ring(callers[3], queue.name, zhang, self.now())
        third = await self.connect_at(15.928, callers[2], legs[2], joined=6.9)
        fourth = await self.connect_at(16.23, callers[3], legs[3], joined=7.2)
        await self.at(30.167)
        await self.caller_hangs_up(third, self.HANGUPS["usual"])
        await self.at(30.467)
        await self.caller_hangs_up(fourth, self.HANGUPS["late_complete"])
        await self.at(30.54)
        last = await self.steps.ring(callers[4], queue.name, li, self.now(), called_late=True)
        await self.at(30.768)
        await self.gives_up(callers[4], last, joined=7.5)

    async def through_ivr(self, callers: list[Channel]) -> None:
        for at, stage, index in self.IVR:
            await self.at(at)
            caller = callers[index]
            if stage == "arrive":
                await self.arrive(caller, *self.CALLERS[index])
            else:
                await self.steps.next(caller, 4 if stage == "menu" else 1)

    async def connect_at(self, at: float, caller: Channel, leg: SeatLeg, *, joined: float) -> Talk:
        queue = self.queue("legal-consult")
        return await self.answer_after(
            caller, queue, leg, self.began + joined, at - (self.now() - self.began)
        )

    async def gives_up(self, caller: Channel, leg: SeatLeg, *, joined: float) -> None:
        """The fifth caller hangs up while 李娜 rings for it."""
        steps = self.steps
        await steps.event("HangupRequest", caller, ("Cause", "16"))
        await steps.leg_request(leg, 0)
        await steps.hangup(leg.one, 0)
        hold = self.since(self.began + joined)
        await steps.abandon(caller, self.queue("legal-consult"), original=5, hold_s=hold)
        await steps.event("SoftHangupRequest", caller, ("Cause", "16"))
        caller.variables["HANGUPCAUSE"] = "16"
        await steps.run(caller, "h", 1)
        await steps.leg_two_gone(leg, 0)
        await steps.member_status(leg.member.interface, 1)
        caller.priority = 2
        await steps.hangup(caller)
