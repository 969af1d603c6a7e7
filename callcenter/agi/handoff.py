"""The ``ivr`` FastAGI script: main-menu choice → routing decision → channel variables.

The rendered dialplan runs ``AGI(agi://host:4573/ivr?city=<code>&node=<name>,<city>,<lang>)``
and then ``Queue(${HOTLINE_QUEUE},t,,,${HOTLINE_OVERFLOW_AFTER})`` followed, when set, by
``Queue(${HOTLINE_OVERFLOW_QUEUE})`` (the city → province overflow of trace 09).  So the
platform's :class:`~callcenter.routing.RoutingEngine` decides, from live queue state, and
Asterisk only carries the decision out.  The menu itself is a stand-in: the declarative IVR
flows (ivr_flows/) replace :meth:`HandoffRoute.menu` and keep the routing step.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from callcenter.agi.server import AgiRequest
from callcenter.routing.engine import QueueSnapshot, RoutingDecision, RoutingEngine, RoutingRequest

log = logging.getLogger(__name__)

MENU_SERVICES = {
    "1": "legal_consult",
    "2": "legal_aid",
    "3": "mediation",
    "4": "notary",
    "5": "complaint",
    "0": "legal_consult",
}
"""The 12348 main menu: 1 法律咨询, 2 法律援助, 3 人民调解, 4 公证·鉴定·仲裁, 5 投诉建议, 0 人工."""

DecisionSink = Callable[[str, str, RoutingDecision], None]


@dataclass(frozen=True, slots=True)
class CallerHistory:
    """The caller's earlier calls, for repeat-caller priority and previous-agent preference."""

    last_call_at: datetime | None = None
    previous_agent: str | None = None
    """Queue-member interface of the agent who last answered, when that agent is known live."""
    previous_agent_at: datetime | None = None


History = Callable[[str | None, str], Awaitable[CallerHistory]]
"""(caller number, this call's linkedid) → history, excluding this call."""


async def no_history(_number: str | None, _linkedid: str) -> CallerHistory:
    return CallerHistory()


@dataclass(slots=True)
class HandoffRoute:
    engine: RoutingEngine
    snapshot: Callable[[], QueueSnapshot]
    now: Callable[[], datetime]
    on_decision: DecisionSink
    default_node: str
    history: History = no_history
    menu_prompt: str = "hotline/main-menu"
    menu_timeout_ms: int = 5000

    async def __call__(self, req: AgiRequest) -> None:
        await req.command("ANSWER")
        digit = await self.menu(req)
        service = MENU_SERVICES.get(digit, self.engine.rules.default_service_type)
        await req.set_variable("IVR_CHOICE", digit or "0")
        linkedid = await req.result_value("GET", "VARIABLE", "CHANNEL(linkedid)")
        linkedid = linkedid or req.env.get("agi_uniqueid", "")
        request = self._request(req, service)
        past = await self.history(request.caller, linkedid)
        request = dataclasses.replace(
            request,
            repeat_caller=False,
            last_call_at=past.last_call_at,
            previous_agent=past.previous_agent,
            previous_agent_at=past.previous_agent_at,
        )
        decision = self.engine.decide(request, self.snapshot(), self.now())
        await self._apply(req, decision)
        node = req.query.get("node") or self.default_node
        self.on_decision(node, linkedid, decision)

    async def menu(self, req: AgiRequest) -> str:
        """One DTMF key; no key (timeout) counts as 0 (人工, a person)."""
        result = await req.command("GET", "DATA", self.menu_prompt, str(self.menu_timeout_ms), "1")
        value = str(result.get("result", ("", ""))[0])
        return value if value in MENU_SERVICES else ""

    def _request(self, req: AgiRequest, service: str) -> RoutingRequest:
        language = req.args[1] if len(req.args) > 1 else None
        return RoutingRequest(
            caller=req.text("agi_callerid") or None,
            called=req.text("agi_dnid") or None,
            trunk=req.query.get("trunk"),
            service_type=service,
            language=(language or "").split("-")[0] or None,
        )

    async def _apply(self, req: AgiRequest, decision: RoutingDecision) -> None:
        overflow_after = decision.overflow_after_s
        for name, value in (
            ("HOTLINE_SERVICE", decision.service_type),
            ("HOTLINE_QUEUE", decision.queue),
            ("HOTLINE_PRIORITY", str(decision.priority)),
            ("HOTLINE_OVERFLOW_QUEUE", decision.overflow_queue or ""),
            ("HOTLINE_OVERFLOW_AFTER", "" if overflow_after is None else str(overflow_after)),
            ("QUEUE_PRIO", str(decision.priority)),
        ):
            await req.set_variable(name, value)
