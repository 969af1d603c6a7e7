"""Originated calls of the trace replays: the lab's dialplan after the platform's Originate.

The simulator's real ``Originate`` handler (:class:`~callcenter.pbxsim.originate.
OriginateActions`: parsing, the async response, ``ChannelId``) creates these instead of the
generator's :class:`~callcenter.pbxsim.originate.OutboundCall`; they run the lab's contexts in
the order traces 05 (回访 survey), 05b (seat-first click-to-call) and 08 (supervisor ChanSpy)
show.  Only answered originates are replayed (trace 05c's failures are the base class's).
"""

from __future__ import annotations

from callcenter.pbxsim.engine import Pbx
from callcenter.pbxsim.labsteps import LabSteps
from callcenter.pbxsim.model import Channel
from callcenter.pbxsim.originate import OriginateRequest, OutboundCall
from callcenter.pbxsim.steps import EventOptions

__all__ = ["LabOutboundCall"]

CUSTOMER_RING_S = 2.0  # pstn-out: Wait(2) before Answer()
SPY_WAIT_S = 3600.0


class LabOutboundCall(OutboundCall):
    """An ``Originate`` of the platform, run through the lab's dialplan."""

    def __init__(self, pbx: Pbx, request: OriginateRequest, reason: int) -> None:
        super().__init__(pbx, request, reason)
        self.lab = LabSteps(pbx.server, EventOptions())
        self.spy_over = False

    async def _answered(self) -> None:
        one, two = self._create_pair()
        if two.context == "supervisor":
            await self._spy(one, two)
        elif self.request.context == "callback-dial":
            await self._seat_first(one, two)
        else:
            await self._survey(one)

    async def _originated(self, one: Channel, two: Channel, app: str = "AppDial2") -> None:
        """Both halves appear; the originated ``;1`` half reports its outgoing line; the
        ``Account`` is applied after that (``NewAccountCode``, not a platform event)."""
        steps, req = self.lab, self.request
        one.account_code = two.account_code = ""
        await steps.new_channel(one)
        await steps.new_channel(two)
        await steps.exten(one, one.exten, 1, app, "(Outgoing Line)")
        one.account_code = two.account_code = req.account
        await steps.caller_id(one, req.caller_num, req.caller_name, connected=False)
        await steps.caller_id(two, req.caller_num, req.caller_name, connected=True)

    async def _target(self, one: Channel) -> None:
        """The originated half enters the Originate's ``Context`` / ``Exten``."""
        await self.lab.goto(one, self.request.context or "", self.request.exten or "s")

    # ------------------------------------------------------------------ 回访 (trace 05)

    async def _survey(self, one: Channel) -> None:
        """The customer's phone rings 2 s, the survey asks, the customer presses 5."""
        steps, two = self.lab, self._two()
        await self._originated(one, two)
        await steps.run(two, two.exten, 1)
        await steps.next(two, 2)  # Ringing, Wait(2)
        await self.pause(CUSTOMER_RING_S)
        await self._answer(one, two)
        await self._respond("Success", one.name, one.uniqueid)
        await self._target(one)
        await steps.next(one)  # Playback(hello)
        await steps.next(two)  # Wait(4)
        await steps.next(one)  # Read(SCORE…)
        await self.pause(4)
        await steps.next(two)  # SendDTMF(5)
        await steps.varset(one, "SCORE", "5")
        await steps.next(one, 2)  # NoOp(score), UserEvent(SurveyResult…)
        extra = (("UserEvent", "SurveyResult"), ("TicketID", one.variables.get("TICKET_ID", "")))
        await steps.event("UserEvent", one, *extra, ("Score", "5"), privilege="user,all")
        await steps.next(one)  # Playback(auth-thankyou)
        await steps.next(two)  # Wait(15)
        await self.pause(1)
        await steps.next(one)  # Hangup()
        await self._both_hang_up(one, two)

    async def _both_hang_up(
        self, first: Channel, second: Channel, *, dialplan: bool = True
    ) -> None:
        """``first`` ends its dialplan; the other Local half follows (``dialplan``: the other
        half runs a dialplan too and is asked to stop it -- not so for an application)."""
        steps = self.lab
        await steps.event("SoftHangupRequest", first, ("Cause", "16"))
        await steps.event("HangupRequest", second, ("Cause", "16"))
        await steps.hangup(first)
        await steps.hangup(second, request="SoftHangupRequest" if dialplan else None)

    async def _answer(self, one: Channel, two: Channel) -> None:
        """The dialled half answers; the originated half now shows it as connected line."""
        await self.lab.next(two)  # Answer()
        one.state = two.state = 6
        self.lab.connect_line(one, two)

    def _two(self) -> Channel:
        assert self.two is not None
        return self.two

    # ------------------------------------------------------------------ click-to-call (05b)

    async def _seat_first(self, one: Channel, two: Channel) -> None:
        """The seat rings and answers; its originated half runs ``callback-dial``, which dials
        the customer; the customer presses 5 and hangs up after 15 s."""
        steps = self.lab
        await self._originated(one, two)
        await steps.run(two, two.exten, 1)
        await steps.next(two, 2)  # Ringing, Wait(2)
        await self._seat_in_use(two.exten)
        await self.pause(CUSTOMER_RING_S)
        await self._answer(one, two)
        await self._target(one)  # NoOp(seat … calls back …)
        await steps.next(one)  # Set(CALLERID(num)=12348)
        await steps.caller_id(one, "12348", one.caller_name, connected=False)
        await steps.next(one)  # Dial(Local/…@pstn-out/n,30)
        await self._respond("Success", one.name, one.uniqueid)
        far, near, bridge = await self._dial_customer_lab(one, two)
        await self.pause(4 + 15)
        await self._customer_hangs_up(one, two, far, near, bridge)

    async def _dial_customer_lab(self, one: Channel, two: Channel) -> tuple[Channel, Channel, str]:
        steps, number = self.lab, one.exten
        far, near = await steps.dial(one, number, "pstn-out")
        self.own(far, near)
        await steps.run(near, number, 1)
        await steps.next(near, 2)  # Ringing, Wait(2)
        await self.pause(CUSTOMER_RING_S)
        await steps.run(two, two.exten, 5)  # the seat's Echo()
        await steps.next(near)  # Answer
        far.state = near.state = 6
        await steps.exten(far, "", 1, "AppDial", "(Outgoing Line)")
        bridge = self.pbx.model.new_bridge_id()
        await steps.bridge_event("BridgeEnter", bridge, 1, far)
        await steps.bridge_event("BridgeEnter", bridge, 2, one)
        await steps.next(near, 2)  # Wait(4), SendDTMF(5)
        await steps.next(near)  # Wait(15)
        self.far = (far, near, bridge)
        return far, near, bridge

    async def _customer_hangs_up(
        self, one: Channel, two: Channel, far: Channel, near: Channel, bridge: str
    ) -> None:
        steps = self.lab
        await steps.next(near)  # Hangup()
        await steps.event("SoftHangupRequest", near, ("Cause", "16"))
        await steps.event("HangupRequest", far, ("Cause", "16"))
        await steps.hangup(near)
        await steps.bridge_event("BridgeLeave", bridge, 1, far)
        await steps.hangup(far)
        await steps.bridge_event("BridgeLeave", bridge, 0, one)
        await self._both_hang_up(one, two)
        if self.seat is not None:
            await steps.member_status(self.seat, 1)
        self.far = None

    # ------------------------------------------------------------------ ChanSpy (trace 08)

    async def _spy(self, one: Channel, two: Channel) -> None:
        """The supervisor's ``;2`` half answers and runs ``ChanSpy`` on the seat leg until
        the spied call ends (:meth:`spy_ends`, called by the replay in the trace's order)."""
        steps = self.lab
        await self._originated(one, two)
        await steps.run(two, two.exten, 1)
        await self._answer(one, two)
        one.application, one.app_data = self.request.application or "", self.request.data
        await self._respond("Success", one.name, one.uniqueid)
        await steps.next(two)  # ChanSpy(target,opts)
        while not self.spy_over:
            await self.pbx.clock.sleep(SPY_WAIT_S)

    async def spy_ends(self) -> None:
        """ChanSpy's ``E`` option: the spied channel went away; the supervisor legs hang up."""
        one, two = self.one, self._two()
        assert one is not None
        await self.lab.next(two)  # Hangup()
        await self._both_hang_up(two, one, dialplan=False)
        self.spy_over = True
        if self.task is not None:
            self.pbx.clock.wake(self.task)
