"""The routing step of the IVR: what the caller chose → routing decision → channel variables.

The rendered dialplan runs the ``ivr`` FastAGI script and then
``Queue(${HOTLINE_QUEUE},t,,,${HOTLINE_OVERFLOW_AFTER})`` followed, when set, by
``Queue(${HOTLINE_OVERFLOW_QUEUE})`` (the city → province overflow of trace 09).  So the
platform's :class:`~callcenter.routing.RoutingEngine` decides, from live queue state, and
Asterisk only carries the decision out.  The IVR flow engine (``ivr_flows``) calls
:class:`RoutingStep` from its queue node; :func:`routing_only_route` is the whole script when no
flow engine is wired in (a bare core, e.g. tooling that only needs routing).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from callcenter.agi.server import AgiRequest, Route
from callcenter.routing.engine import QueueSnapshot, RoutingDecision, RoutingEngine, RoutingRequest

log = logging.getLogger(__name__)

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


@dataclass(frozen=True, slots=True)
class RouteFacts:
    """What the IVR learnt about the caller, as the routing step needs it."""

    service_type: str | None = None
    language: str | None = None
    """Channel language (``zh-CN``, ``en``, ``bo``); routing reads its first part."""
    emergency: bool = False
    extra_priority: int = 0
    """Added to the routing priority (a flow's ``set priority``)."""


async def linkedid_of(req: AgiRequest) -> str:
    """The call's ``linkedid`` (its key in the calls table), else this channel's uniqueid."""
    linkedid = await req.result_value("GET", "VARIABLE", "CHANNEL(linkedid)")
    return linkedid or req.env.get("agi_uniqueid", "")


@dataclass(slots=True)
class RoutingStep:
    engine: RoutingEngine
    snapshot: Callable[[], QueueSnapshot]
    now: Callable[[], datetime]
    on_decision: DecisionSink
    default_node: str
    history: History = no_history

    def node_of(self, req: AgiRequest) -> str:
        return req.query.get("node") or self.default_node

    async def __call__(
        self, req: AgiRequest, facts: RouteFacts, linkedid: str | None = None
    ) -> RoutingDecision:
        """Decide, set the queue variables on the channel, record the decision on the call."""
        if linkedid is None:
            linkedid = await linkedid_of(req)
        request = self._request(req, facts)
        past = await self.history(request.caller, linkedid)
        request = dataclasses.replace(
            request,
            last_call_at=past.last_call_at,
            previous_agent=past.previous_agent,
            previous_agent_at=past.previous_agent_at,
        )
        decision = self.engine.decide(request, self.snapshot(), self.now())
        if facts.extra_priority:
            decision = dataclasses.replace(
                decision, priority=decision.priority + facts.extra_priority
            )
        await self._apply(req, decision)
        self.on_decision(self.node_of(req), linkedid, decision)
        return decision

    def _request(self, req: AgiRequest, facts: RouteFacts) -> RoutingRequest:
        language = facts.language or (req.args[1] if len(req.args) > 1 else None)
        trunk = req.query.get("trunk") or (req.args[0] if req.args else None)
        return RoutingRequest(
            caller=req.text("agi_callerid") or None,
            called=req.text("agi_dnid") or None,
            trunk=trunk,
            service_type=facts.service_type,
            language=(language or "").split("-")[0] or None,
            emergency=facts.emergency,
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


def routing_only_route(step: RoutingStep) -> Route:
    """The ``ivr`` script without a flow: answer, route with the default service, queue."""

    async def route(req: AgiRequest) -> None:
        await req.command("ANSWER")
        await step(req, RouteFacts())
        await req.set_variable("HOTLINE_ACTION", "queue")

    return route
