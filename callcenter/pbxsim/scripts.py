"""Place one scripted call through the whole dialplan contract and watch what happens.

For tests and demos of the IVR (``docs/dialplan-contract.md``)::

    sim = PbxSimulator(model=province_model(province), traffic=TrafficConfig(
        speed=None, calls_per_hour=0, no_answer_share=0.0,
        fastagi_url=f"agi://127.0.0.1:{agi_port}/ivr"))   # speed=None: no real waiting
    await sim.start()
    placed = sim.place_call("330400", "13805730001", "张三", CallScript(
        main=AgiCaller(inputs=["2", "1"]),            # main menu 2, then 1 (green channel)
        exit_queue_after_s=30,                         # press 1 after 30 s in the queue ...
        virtual_hold=AgiCaller(inputs=["1"]),          # ... and confirm the callback
    ))
    outcome = await placed.finished()                  # "virtual-hold"
    placed.sessions["main"].prompts, placed.sessions["virtual_hold"].commands
    placed.variables["HOTLINE_QUEUE"]

What the simulated PBX does (the contract's dialplan): ``NoOp``, ``Set(__HOTLINE_CITY)``,
``AGI(...ivr?entry=main[&node=N],<city>,<language>)`` with :attr:`CallScript.main`, then by
``HOTLINE_ACTION``:

* ``queue``: ``MixMonitor``, ``Queue(${HOTLINE_QUEUE},tF(hotline-survey^s^1),,,<after>)``,
  overflow to ``HOTLINE_OVERFLOW_QUEUE`` on the timeout.  With :attr:`CallScript.exit_queue_after_s`
  the caller presses :attr:`CallScript.exit_key` after that long: ``QueueCallerLeave`` (no
  abandon: app_queue reports an exit by key only in queue_log), the ringing seat leg is
  dropped, the caller runs ``hotline-queue-exit,1,1``: ``AGI(...entry=virtual_hold...)`` with
  :attr:`CallScript.virtual_hold`, then ``Hangup()``.  Answered calls talk
  :attr:`CallScript.talk_s`; when the seat hangs up (:attr:`CallScript.seat_hangs_up`) option
  ``F`` sends the caller to ``hotline-survey,s,1``: ``AGI(...entry=survey...)`` with
  :attr:`CallScript.survey`, then ``Hangup()``;
* ``transfer``: ``hotline-transfer,${HOTLINE_TRANSFER},1``: ``Dial(PJSIP/<target>@<trunk>,60)``
  (DialBegin, the trunk channel answers after :data:`~callcenter.pbxsim.contract.RING_S`,
  DialEnd ANSWER, BridgeEnter ×2), talk :attr:`CallScript.transfer_talk_s`, the caller hangs up.
  A target without a ``hotline-transfer`` extension ends the call (``transfer-failed``);
  A ``HOTLINE_QUEUE`` the model has no queue for fails like Queue() does (``queue-unknown``);
* ``hangup`` or anything else: ``Hangup()``;
* not set at all (today's routing hand-off, which sets only ``HOTLINE_QUEUE``…): the
  simulator's classic dialplan as before (key extension, ``Queue(...,t,,,<timeout>)``).

:class:`PlacedCall` ``outcome`` is one of :data:`OUTCOMES`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from callcenter.pbxsim.agi_caller import AgiCaller
from callcenter.pbxsim.fastagi_client import FastAgiSession

if TYPE_CHECKING:
    from callcenter.pbxsim.inbound import InboundCall

__all__ = [
    "ABANDONED",
    "ANSWERED",
    "ENDED",
    "IVR_ENDED",
    "IVR_HANGUP",
    "OUTCOMES",
    "QUEUE_UNKNOWN",
    "TRANSFERRED",
    "TRANSFER_FAILED",
    "VIRTUAL_HOLD",
    "CallScript",
    "PlacedCall",
]

IVR_HANGUP = "ivr-hangup"
"""The caller hung up during the main IVR session."""
IVR_ENDED = "ivr-ended"
"""The IVR ended the call (``HOTLINE_ACTION=hangup``, e.g. a callback booked after hours)."""
ANSWERED = "answered"
"""A seat answered (``sessions`` has ``survey`` when the caller stayed for it)."""
ABANDONED = "abandoned"
"""The caller left the queue by hanging up, or every queue timed out."""
VIRTUAL_HOLD = "virtual-hold"
"""The caller pressed the exit key while queued and ran the ``virtual_hold`` entry."""
TRANSFERRED = "transferred"
"""``HOTLINE_ACTION=transfer``: the trunk answered the Dial."""
TRANSFER_FAILED = "transfer-failed"
"""``HOTLINE_ACTION=transfer`` to a target the dialplan has no extension for."""
QUEUE_UNKNOWN = "queue-unknown"
"""``HOTLINE_ACTION=queue`` with a ``HOTLINE_QUEUE`` the PBX has no queue for: Queue() fails."""
ENDED = "ended"
"""Ended some other way (an AMI Hangup action before any of the above)."""
OUTCOMES = (
    IVR_HANGUP,
    IVR_ENDED,
    ANSWERED,
    ABANDONED,
    VIRTUAL_HOLD,
    TRANSFERRED,
    TRANSFER_FAILED,
    QUEUE_UNKNOWN,
    ENDED,
)


@dataclass(frozen=True)
class CallScript:
    """Everything one simulated caller will do, decided up front (no randomness)."""

    main: AgiCaller = field(default_factory=lambda: AgiCaller(inputs=[]))
    """Inputs for the ``main`` entry (menus, speech, hang-up)."""
    exit_queue_after_s: float | None = None
    """Press :attr:`exit_key` after this long in the queue (virtual hold); None: never."""
    exit_key: str = "1"
    virtual_hold: AgiCaller = field(default_factory=lambda: AgiCaller(inputs=[]))
    survey: AgiCaller = field(default_factory=lambda: AgiCaller(inputs=[]))
    seat_hangs_up: bool = True
    """True: the seat ends the talk (the caller then takes the survey); False: the caller."""
    talk_s: float = 30.0
    transfer_talk_s: float = 20.0
    patience_s: float | None = None
    """Hang up after this long in the queues; None: wait until answered or timed out."""
    language: str = "zh-CN"
    """``agi_arg_2`` of the main entry (the trunk's language)."""

    def __post_init__(self) -> None:
        for name in ("exit_queue_after_s", "patience_s"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"CallScript.{name} must be >= 0, not {value}")
        if self.talk_s < 0 or self.transfer_talk_s < 0:
            raise ValueError("CallScript talk times must be >= 0")
        if len(self.exit_key) != 1 or self.exit_key not in "0123456789*#":
            raise ValueError(f"CallScript.exit_key must be one key, not {self.exit_key!r}")


@dataclass
class PlacedCall:
    """A call placed with :meth:`PbxSimulator.place_call`; fills in while it runs."""

    call: InboundCall

    @property
    def uniqueid(self) -> str:
        return self.call.caller.uniqueid

    @property
    def linkedid(self) -> str:
        return self.call.caller.linkedid

    @property
    def channel(self) -> str:
        return self.call.caller.name

    @property
    def sessions(self) -> Mapping[str, FastAgiSession]:
        """``main`` / ``virtual_hold`` / ``survey``: the FastAGI sessions that ran."""
        return self.call.sessions

    @property
    def variables(self) -> dict[str, str]:
        """The caller channel's variables (what the IVR set: ``HOTLINE_ACTION``…)."""
        return self.call.caller.variables

    @property
    def outcome(self) -> str | None:
        """One of :data:`OUTCOMES` once known (None while undecided)."""
        return self.call.outcome

    @property
    def queues(self) -> list[str]:
        """Queues the caller joined, in order."""
        return list(self.call.joined_queues)

    async def finished(self, timeout: float = 30.0) -> str:
        """Wait (real seconds) until the caller's channel is gone; returns :attr:`outcome`."""
        assert self.call.task is not None
        await asyncio.wait_for(asyncio.shield(self.call.task), timeout)
        return self.call.outcome or ENDED
