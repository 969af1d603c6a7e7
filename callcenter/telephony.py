"""The telephony side of the composition root: AMI bridge per node, live state, call records.

In embedded mode (no ``CALLCENTER_AMI_HOST``) the built-in PBX simulator is started on a free
loopback port and the bridge logs in to it over TCP exactly as it would to Asterisk, so the
same code runs in the demo, the tests and production.

Per node: AMI frames → :class:`~callcenter.ami.normalize.Normalizer` → normalized events →
:class:`~callcenter.state.LiveState` (live view, bus) and :class:`~callcenter.state.CallRecorder`
(the ``calls`` table).  After every (re)connect the node is rebuilt from CoreShowChannels,
QueueStatus and QueueSummary before its queued events are applied.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from callcenter.agi.handoff import CallerHistory, RoutingStep, routing_only_route
from callcenter.agi.server import AgiServer, Route
from callcenter.ami.actions import AmiActions
from callcenter.ami.client import AmiClient, AmiNodeConfig
from callcenter.ami.codec import Frame
from callcenter.ami.events import CallOffered
from callcenter.ami.normalize import Normalizer
from callcenter.bus import EventBus
from callcenter.pbxsim.ami_server import DEFAULT_USERS
from callcenter.pbxsim.province import province_model
from callcenter.pbxsim.simulator import PbxSimulator
from callcenter.pbxsim.workload import TrafficConfig
from callcenter.regions.provinces import ProvinceData, load_province, province_file
from callcenter.routing.engine import (
    AgentView,
    QueueView,
    RoutingDecision,
    RoutingEngine,
    RoutingSnapshot,
)
from callcenter.routing.locate import Locator
from callcenter.routing.rules import load_default_rules
from callcenter.settings import Settings
from callcenter.state import (
    CallRecorder,
    LiveState,
    items_sender,
    make_live_state,
    queue_regions_from_db,
    rebuild_from_ami,
)

log = logging.getLogger(__name__)

SIMULATOR_NODE = "sim-node1"
CLOSE_TIMEOUT_S = 10.0


@dataclass(slots=True)
class Node:
    client: AmiClient
    normalizer: Normalizer
    actions: AmiActions


IvrFactory = Callable[["Telephony", RoutingStep], Route]
"""Builds the ``ivr`` FastAGI route (the flow engine) around the routing step; given by the
composition root, since the core does not import ``ivr_flows``."""


@dataclass(slots=True)
class Telephony:
    """Owns the simulator (embedded mode), the AMI nodes, live state and the call recorder."""

    settings: Settings
    live: LiveState
    recorder: CallRecorder
    province: ProvinceData
    locator: Locator
    engine: RoutingEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    simulator: PbxSimulator | None = None
    agi: AgiServer | None = None
    agi_port: int | None = None
    nodes: dict[str, Node] = field(default_factory=dict)
    decisions: int = 0
    seat_skills: dict[str, frozenset[str]] = field(default_factory=dict)
    """Extension → skills (service skills + ``lang-…`` language skills) from the seats table."""
    _pending_routing: OrderedDict[tuple[str, str], RoutingDecision] = field(
        default_factory=OrderedDict
    )
    ivr_factory: IvrFactory | None = None
    _pending_ivr: OrderedDict[tuple[str, str], tuple[tuple[str, ...], str]] = field(
        default_factory=OrderedDict
    )

    # ----------------------------------------------------------------- lifecycle

    @classmethod
    async def start(
        cls,
        settings: Settings,
        bus: EventBus,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        traffic: TrafficConfig | None = None,
        ivr: IvrFactory | None = None,
    ) -> Telephony:
        province = load_province(province_file(settings.province_code))
        rules = load_default_rules(province)
        locator = Locator(province, rules.trunks, rules.locate.order)

        def locate(number: str | None) -> str | None:
            return locator.locate(number).city_code

        async with sessionmaker() as session:
            queues = await queue_regions_from_db(session)
        live = make_live_state(settings, bus, locate=locate, queues=queues)
        recorder = CallRecorder(sessionmaker, locate=locate)
        await recorder.start()
        engine = RoutingEngine(rules, province, settings.tz)
        tel = cls(settings, live, recorder, province, locator, engine, sessionmaker)
        tel.ivr_factory = ivr
        try:
            await tel.load_seat_skills()
            await tel._start_agi()
            if traffic is not None and tel.agi_port is not None:
                url = f"agi://{settings.fastagi_host_port[0]}:{tel.agi_port}/ivr"
                traffic = dataclasses.replace(traffic, fastagi_url=url)
            for config in await tel._node_configs(traffic):
                tel._add_node(config)
            for node in tel.nodes.values():
                await node.client.start()
        except BaseException:
            await tel.close()
            raise
        return tel

    async def _node_configs(self, traffic: TrafficConfig | None) -> list[AmiNodeConfig]:
        s = self.settings
        if s.uses_simulator:
            self.simulator = PbxSimulator(
                model=province_model(self.province),
                traffic=traffic,
                recordings_dir=s.recordings_dir if traffic is not None else None,
            )
            port = await self.simulator.start(callers=False)
            user = DEFAULT_USERS[0]
            return [AmiNodeConfig(SIMULATOR_NODE, "127.0.0.1", port, user.username, user.secret)]
        assert s.ami_username is not None and s.ami_secret is not None  # settings enforce it
        secret = s.ami_secret.get_secret_value()
        return [
            AmiNodeConfig(name, host, port, s.ami_username, secret)
            for name, host, port in s.asterisk_nodes
        ]

    async def _start_agi(self) -> None:
        """The FastAGI server Asterisk hands calls to; its ``ivr`` script routes them."""
        host, port = self.settings.fastagi_host_port
        if self.settings.uses_simulator:
            port = 0  # the embedded simulator is told the port; never clash with a real one
        self.agi = AgiServer()
        step = RoutingStep(
            engine=self.engine,
            snapshot=self.routing_snapshot,
            now=self._now,
            on_decision=self.record_decision,
            default_node=SIMULATOR_NODE if self.settings.uses_simulator else "",
            history=self.caller_history,
        )
        route = self.ivr_factory(self, step) if self.ivr_factory else routing_only_route(step)
        self.agi.add_route("ivr", route)
        self.agi_port = await self.agi.start(host, port)
        log.info("FastAGI listening on %s:%d", host, self.agi_port)

    def now(self) -> datetime:
        """The platform's clock for call logic (the simulator's in embedded mode)."""
        return self._now()

    def _now(self) -> datetime:
        """Routing time: the simulator's virtual clock in the demo, else the real one."""
        if self.simulator is not None:
            return datetime.fromtimestamp(self.simulator.clock.now(), UTC)
        return datetime.now(UTC)

    async def caller_history(self, number: str | None, linkedid: str) -> CallerHistory:
        """Earlier calls of this number (indexed lookup), this call excluded.

        The previous agent is named by the interface they are logged in with now, so routing
        can prefer them only while they are actually in a queue.
        """
        if not number:
            return CallerHistory()
        from sqlalchemy import select

        from callcenter.db.models import Call

        days = max(self.engine.rules.previous_agent.days, 1)
        since = self._now() - timedelta(days=days)
        stmt = (
            select(Call.offered_at, Call.answered_at, Call.agent_extension)
            .where(Call.caller_number == number[:32], Call.offered_at >= since)
            .where(Call.linkedid != linkedid)
            .order_by(Call.offered_at.desc())
            .limit(20)
        )
        async with self.sessionmaker() as session:
            rows = (await session.execute(stmt)).all()
        if not rows:
            return CallerHistory()
        answered = next((r for r in rows if r.answered_at and r.agent_extension), None)
        interface = None
        if answered is not None:
            interface = next(
                (a.interface for a in self.live.agents if a.extension == answered.agent_extension),
                None,
            )
        return CallerHistory(
            last_call_at=rows[0].offered_at,
            previous_agent=interface,
            previous_agent_at=answered.answered_at if answered is not None else None,
        )

    async def load_seat_skills(self) -> None:
        """Read seat skills at start: a seat with skills configured takes only calls that
        need them (its languages become ``lang-…`` skills through the rule file); a seat with
        none configured is a generalist."""
        from sqlalchemy import select

        from callcenter.db.models import Seat

        rules = self.engine.rules
        lang_skill = {code: rule.skill for code, rule in rules.languages.items() if rule.skill}
        async with self.sessionmaker() as session:
            seats = (await session.execute(select(Seat))).scalars().all()
        self.seat_skills = {}
        for seat in seats:
            if seat.skills:
                langs = {lang.split("-")[0] for lang in seat.languages}
                extra = {lang_skill[code] for code in langs if code in lang_skill}
                self.seat_skills[seat.extension] = frozenset(seat.skills) | extra

    def _skills_of(self, extension: str | None) -> frozenset[str]:
        configured = self.seat_skills.get(extension or "")
        if configured is not None:
            return configured
        rules = self.engine.rules
        return frozenset(s for st in rules.service_types.values() for s in st.skills) | frozenset(
            lang.skill for lang in rules.languages.values() if lang.skill
        )

    def routing_snapshot(self) -> RoutingSnapshot:
        """Ready agents (with their seat's skills) and waiting callers per queue."""
        ready: dict[str, list[AgentView]] = {}
        for agent in self.live.agents:
            for membership in agent.queues:
                if membership.state == "ready":
                    view = AgentView(agent.interface, self._skills_of(agent.extension))
                    ready.setdefault(membership.queue, []).append(view)
        waiting = {q.name: len(q.waiting) for q in self.live.queues}
        names = set(ready) | set(waiting)
        views = {n: QueueView(tuple(ready.get(n, ())), waiting.get(n, 0)) for n in names}
        return self.engine.snapshot(views)

    def record_decision(self, node: str, linkedid: str, decision: RoutingDecision) -> None:
        """Store the decision on the call once the bridge has seen the call (row queued)."""
        self.decisions += 1
        if not node and len(self.nodes) == 1:
            node = next(iter(self.nodes))
        if self.live.call(node, linkedid) is not None:
            self._store_decision(node, linkedid, decision)
            return
        self._pending_routing[(node, linkedid)] = decision
        while len(self._pending_routing) > 10_000:  # calls the bridge never saw
            self._pending_routing.popitem(last=False)

    def record_ivr(self, node: str, linkedid: str, path: tuple[str, ...], language: str) -> None:
        """Store the IVR path and language on the call, once the bridge has seen the call."""
        if not node and len(self.nodes) == 1:
            node = next(iter(self.nodes))
        if self.live.call(node, linkedid) is not None:
            self.recorder.record_ivr_path(node, linkedid, path, language)
            return
        self._pending_ivr[(node, linkedid)] = (path, language)
        while len(self._pending_ivr) > 10_000:
            self._pending_ivr.popitem(last=False)

    def _store_decision(self, node: str, linkedid: str, decision: RoutingDecision) -> None:
        record = decision.to_record()
        self.recorder.record_routing(node, linkedid, [record], decision.service_type)

    def _add_node(self, config: AmiNodeConfig) -> None:
        normalizer = Normalizer(config.name)
        client = AmiClient(config, self._on_event, on_connected=self._on_connected)
        self.nodes[config.name] = Node(client, normalizer, AmiActions(client))

    async def close(self) -> None:
        """Shut down in order; no step may hang the process (each is bounded and logged)."""
        steps: list[tuple[str, Callable[[], Awaitable[None]]]] = [
            (f"AMI node {name}", node.client.close) for name, node in self.nodes.items()
        ]
        if self.simulator is not None:
            steps.append(("PBX simulator", self.simulator.stop))
        if self.agi is not None:
            steps.append(("FastAGI server", self.agi.close))
        steps += [("call recorder", self.recorder.close), ("live state", self.live.close)]
        for what, close in steps:
            try:
                async with asyncio.timeout(CLOSE_TIMEOUT_S):
                    await close()
            except TimeoutError:
                log.error("shutdown: %s did not close within %g s", what, CLOSE_TIMEOUT_S)

    # ----------------------------------------------------------------- event flow

    async def _on_event(self, node_name: str, frame: Frame) -> None:
        for event in self.nodes[node_name].normalizer.feed(frame):
            await self.live.apply(event)
            self.recorder.handle(event)
            if isinstance(event, CallOffered) and event.linkedid:
                pending = self._pending_routing.pop((node_name, event.linkedid), None)
                if pending is not None:
                    self._store_decision(node_name, event.linkedid, pending)
                ivr = self._pending_ivr.pop((node_name, event.linkedid), None)
                if ivr is not None:
                    self.recorder.record_ivr_path(node_name, event.linkedid, *ivr)

    async def _on_connected(self, node_name: str) -> None:
        node = self.nodes[node_name]
        try:
            result = await rebuild_from_ami(
                items_sender(node.client),
                self.live,
                node_name,
                recorder=self.recorder,
                normalizer=node.normalizer,
            )
        finally:
            if self.simulator is not None:
                # Embedded callers start once the bridge watches: none lives and dies unseen
                # however slowly this process started.
                self.simulator.start_callers()
        log.info(
            "AMI node %s resynced: %d live calls, %d closed while disconnected",
            node_name,
            len(result.live),
            len(result.closed),
        )

    # ----------------------------------------------------------------- status

    async def wait_connected(self, timeout: float) -> None:
        for node in self.nodes.values():
            await node.client.wait_connected(timeout)

    async def readiness(self) -> str:
        """Every node logged in and answering pings recently; raises naming the first that isn't."""
        details = []
        for name, node in self.nodes.items():
            status = node.client.status
            if not status["connected"]:
                raise ConnectionError(
                    f"AMI node {name} not connected: {status['last_error'] or 'connecting'}"
                )
            age = status["last_pong_age_s"]
            limit = 2 * node.client.config.ping_interval + node.client.config.ping_timeout
            if age is None or age > limit:
                raise ConnectionError(f"AMI node {name}: no Pong for {age} s")
            details.append(f"{name} ok")
        kind = "built-in PBX simulator" if self.simulator else "Asterisk"
        return f"{kind}: {', '.join(details)}"

    def summary(self) -> dict[str, Any]:
        """Counts for the demo's terminal line and the logs."""
        calls = self.live.calls
        return {
            "at": time.strftime("%H:%M:%S"),
            "live_calls": len(calls),
            "nodes": {n: node.client.status for n, node in self.nodes.items()},
        }


async def calls_by_city(
    sessionmaker: async_sessionmaker[AsyncSession], province: ProvinceData
) -> list[tuple[str, int, int, int, int, int]]:
    """Per city (caller's geocoded region): offered, answered, abandoned, to province, live.

    Read from the ``calls`` table the bridge writes, so it shows what the platform recorded,
    not what the simulator believes it did.
    """
    from sqlalchemy import case, func, select

    from callcenter.db.models import Call

    names = {c.code: c.name for c in province.cities}
    provincial = ("province", "province-duty")
    stmt = select(
        Call.caller_region_code,
        func.count(),
        func.sum(case((Call.answered_at.is_not(None), 1), else_=0)),
        func.sum(case((Call.disposition == "abandoned", 1), else_=0)),
        func.sum(case((Call.queue_name.in_(provincial), 1), else_=0)),
        func.sum(case((Call.ended_at.is_(None), 1), else_=0)),
    ).group_by(Call.caller_region_code)
    async with sessionmaker() as session:
        rows = (await session.execute(stmt)).all()
    out = []
    for code, offered, answered, abandoned, to_province, live in rows:
        label = names.get(code or "", "外省/未知" if code is None else code)
        out.append((label, offered, answered or 0, abandoned or 0, to_province or 0, live or 0))
    return sorted(out)


def _cell(text: str, width: int, left: bool = False) -> str:
    """Pad by display width: a CJK character takes two terminal columns."""
    pad = " " * max(0, width - sum(2 if ord(ch) > 0x2E80 else 1 for ch in text))
    return text + pad if left else pad + text


def format_city_table(rows: list[tuple[str, int, int, int, int, int]]) -> str:
    heads = ("呼入", "接通", "放弃", "转省", "在线")
    lines = [_cell("城市", 12, left=True) + "".join(_cell(h, 7) for h in heads)]
    for label, *nums in rows:
        lines.append(_cell(label, 12, left=True) + "".join(_cell(str(n), 7) for n in nums))
    totals = [sum(int(r[i]) for r in rows) for i in range(1, 6)]
    lines.append(_cell("合计", 12, left=True) + "".join(_cell(str(n), 7) for n in totals))
    return "\n".join(lines)
