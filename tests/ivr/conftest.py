"""An IVR bench: the real flow engine on a real FastAGI server, real routing engine, real
database (callbacks, survey), real in-process bus; simulated callers speak FastAGI over TCP."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from callcenter.agi.handoff import RoutingStep
from callcenter.agi.server import AgiServer
from callcenter.bus import MemoryBus
from callcenter.db.engine import make_engine, make_sessionmaker
from callcenter.pbxsim.agi_caller import AgiCaller
from callcenter.pbxsim.fastagi_client import FastAgiSession
from callcenter.pbxsim.model import Channel
from callcenter.regions.provinces import load_province, province_file
from callcenter.routing.calendar import SHANGHAI, is_business_time
from callcenter.routing.engine import AgentView, RoutingDecision, RoutingEngine, queue_views
from callcenter.routing.rules import load_default_rules
from callcenter.speech import Recognizer
from ivr_flows.engine import FlowRoute, IvrServices
from ivr_flows.store import FlowStore
from ivr_flows.survey import SurveyStore
from ivr_flows.wiring import book_callback

FLOWS = Path(__file__).resolve().parents[2] / "ivr_flows" / "flows"
NODE = "sim-node1"
MONDAY_10 = datetime(2026, 11, 23, 10, 0, tzinfo=SHANGHAI)
"""An ordinary working day, inside opening hours."""


@dataclass
class Bench:
    store: FlowStore
    route: FlowRoute
    port: int
    flow_dir: Path
    sessionmaker: Any
    bus: MemoryBus
    clock: list[datetime]
    decisions: list[tuple[str, str, RoutingDecision]] = field(default_factory=list)
    paths: dict[str, tuple[tuple[str, ...], str]] = field(default_factory=dict)
    calls: int = 0

    async def call(
        self,
        inputs: Sequence[str],
        *,
        entry: str = "main",
        city: str = "330400",
        language: str = "zh-CN",
        caller: str = "13905730001",
        variables: dict[str, str] | None = None,
        uniqueid: str | None = None,
    ) -> FastAgiSession:
        self.calls += 1
        uid = uniqueid or f"1795400000.{self.calls}"
        channel = Channel(
            name=f"PJSIP/trunk-{self.calls:08x}",
            uniqueid=uid,
            linkedid=uid,
            context=f"from-trunk-{city}",
            exten="12348",
            caller_num=caller,
            caller_name="张三",
            language=language,
            variables=dict(variables or {}),
        )
        request = f"agi://127.0.0.1:{self.port}/ivr?entry={entry}&node={NODE}"
        session = FastAgiSession(channel, request, (city, language), AgiCaller(inputs=inputs))
        await session.run("127.0.0.1", self.port, timeout=20.0)
        return session


def flow_copy(tmp_path: Path) -> Path:
    """The packaged flow and catalogue in a folder the test may edit."""
    target = tmp_path / "flows"
    shutil.copytree(FLOWS, target)
    return target


MakeBench = Callable[..., Awaitable[Bench]]


@pytest_asyncio.fixture
async def make_bench(sqlite_url: str, tmp_path: Path) -> AsyncIterator[MakeBench]:
    province = load_province(province_file("330000"))
    rules = load_default_rules(province)
    engine = RoutingEngine(rules, province)
    skills = frozenset(s for t in rules.service_types.values() for s in t.skills)
    agents = [
        (province.city_queue_name(c.code), AgentView(f"PJSIP/{c.code}", skills))
        for c in province.cities
    ]
    snapshot = engine.snapshot(
        queue_views([*agents, ("province", AgentView("PJSIP/9001", skills))])
    )
    db = make_engine(sqlite_url)
    sessionmaker = make_sessionmaker(db)
    bus = MemoryBus()
    await bus.start()
    servers: list[AgiServer] = []

    async def make(
        *,
        recognizer: Recognizer | None = None,
        flow_dir: Path | None = None,
        callbacks: bool = True,
    ) -> Bench:
        folder = flow_dir or flow_copy(tmp_path)
        store = FlowStore.open(folder / "12348.yaml", service_types=set(rules.service_types))
        clock = [MONDAY_10]
        decisions: list[tuple[str, str, RoutingDecision]] = []
        paths: dict[str, tuple[tuple[str, ...], str]] = {}
        step = RoutingStep(
            engine=engine,
            snapshot=lambda: snapshot,
            now=lambda: clock[0],
            on_decision=lambda n, lid, d: decisions.append((n, lid, d)),
            default_node=NODE,
        )
        hours = rules.business_hours.hours()
        services = IvrServices(
            routing=step,
            now=lambda: clock[0],
            is_open=lambda when: is_business_time(when, hours),
            record_path=lambda n, lid, path, lang: paths.__setitem__(lid, (path, lang)),
            speech_dir=tmp_path / "recordings" / "ivr",
            province_code="330000",
            recognizer=recognizer,
            book_callback=book_callback(sessionmaker) if callbacks else None,
            store_survey=SurveyStore(sessionmaker),
            publish=bus.publish,
        )
        route = FlowRoute(store, services)
        server = AgiServer(command_timeout=10.0)
        server.add_route("ivr", route)
        port = await server.start("127.0.0.1", 0)
        servers.append(server)
        bench = Bench(store, route, port, folder, sessionmaker, bus, clock, decisions, paths)
        return bench

    yield make
    for server in servers:
        await server.close()
    await bus.close()
    await db.dispose()


@pytest.fixture
def tone_model(shared_dir: Path) -> Path:
    path = shared_dir / "models" / "vosk-tiny-tones"
    assert (path / "am" / "final.mdl").is_file(), f"tone model missing at {path}"
    return path
