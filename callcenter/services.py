"""The composition root: every long-lived resource is built here once and closed on exit.

The CLI's ``serve`` builds the services before starting the HTTP server, so a bad database or
Redis URL stops the program with one line instead of a traceback inside the server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from callcenter.bus import EventBus
from callcenter.bus.factory import make_bus
from callcenter.db.engine import make_engine, make_sessionmaker, ping
from callcenter.ratelimit import RateLimiter, make_rate_limiter
from callcenter.readiness import StatusAggregator, tcp_banner_check
from callcenter.settings import Settings

if TYPE_CHECKING:
    from callcenter.jobs import JobContext, JobRegistry
    from callcenter.jobs.inprocess import InProcessRunner
    from callcenter.pbxsim.workload import TrafficConfig
    from callcenter.regions.provinces import ProvinceData
    from callcenter.speech import Recognizer
    from callcenter.state import LiveState
    from callcenter.telephony import IvrFactory, Telephony
    from ivr_flows.store import FlowStore


@dataclass(slots=True)
class Services:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    bus: EventBus
    rate_limiter: RateLimiter
    readiness: StatusAggregator
    telephony: Telephony | None = None
    live: LiveState | None = None
    """Live calls/queues/agents: fed by this process's bridge, or read from Redis (a web-only
    instance beside the bridge process); None when neither (embedded mode without a bridge)."""
    ivr_flows: FlowStore | None = None
    """The active IVR flow (hot-reloaded); the FastAGI ``ivr`` route runs it."""
    jobs: InProcessRunner | None = None
    """Background jobs run in this process (embedded mode, ``jobs=True``); with Redis they
    run in ``callcenter worker`` processes instead."""


def _readiness(
    settings: Settings, engine: AsyncEngine, bus: EventBus, telephony: Telephony | None
) -> StatusAggregator:
    agg = StatusAggregator()

    async def database() -> str:
        await ping(engine)
        return engine.dialect.name

    async def redis() -> str:
        await bus.ping()
        return bus.name

    async def ami() -> str:
        if telephony is not None:
            return await telephony.readiness()
        if settings.uses_simulator:
            return "AMI bridge not running in this process (built-in PBX simulator configured)"
        found = [
            await tcp_banner_check(host, port, b"Asterisk Call Manager/")
            for _, host, port in settings.asterisk_nodes
        ]
        return "; ".join(found)

    agg.add("database", database, required=True)
    agg.add("redis", redis, required=settings.redis_url is not None)
    agg.add("ami", ami, required=not settings.uses_simulator or telephony is not None)
    return agg


@asynccontextmanager
async def build_services(
    settings: Settings,
    *,
    telephony: bool = False,
    traffic: TrafficConfig | None = None,
    jobs: bool = False,
) -> AsyncIterator[Services]:
    """Open the database and the bus (failing fast with one-line errors); close on exit.

    With ``telephony`` the AMI bridge runs in this process (``serve`` and ``demo``): against
    Asterisk when configured, else against the built-in PBX simulator (with ``traffic``).
    With ``jobs`` and no Redis, the background jobs (SLA scan…) run in this process too.
    """
    from ticketing.assignment import configure_rules

    configure_rules(settings.assignment_rules)  # a bad rule file stops us before anything runs
    async with AsyncExitStack() as stack:
        engine, bus = await _open_storage(stack, settings)
        limiter = make_rate_limiter(settings)
        stack.push_async_callback(limiter.close)
        sessionmaker = make_sessionmaker(engine)
        flows = _flow_store(settings)
        tel = None
        live = None
        if telephony:
            from callcenter.speech import load_recognizer
            from callcenter.telephony import Telephony

            recognizer = load_recognizer(settings)  # a bad model stops us here, in one line
            if recognizer is not None:
                stack.callback(recognizer.close)
            ivr = _ivr(flows, bus, sessionmaker, recognizer)
            tel = await Telephony.start(settings, bus, sessionmaker, traffic=traffic, ivr=ivr)
            stack.push_async_callback(tel.close)
            live = tel.live
            if settings.call_tickets:  # every answered call gets its ticket (话务工单)
                from ticketing.from_calls import CallTicketer

                ticketer = CallTicketer(
                    sessionmaker,
                    bus,
                    tz=settings.tz,
                    repeat_window_days=settings.repeat_window_days,
                )
                await ticketer.start()
                stack.push_async_callback(ticketer.close)
        elif settings.redis_url:
            from callcenter.state import make_live_state

            live = make_live_state(settings, None)
            stack.push_async_callback(live.close)
        runner = None
        if jobs and not settings.redis_url:
            runner = await _start_jobs(settings, sessionmaker, bus)
            stack.push_async_callback(runner.close)
        yield Services(
            settings=settings,
            engine=engine,
            sessionmaker=sessionmaker,
            bus=bus,
            rate_limiter=limiter,
            readiness=_readiness(settings, engine, bus, tel),
            telephony=tel,
            live=live,
            ivr_flows=flows,
            jobs=runner,
        )


def job_registry(settings: Settings) -> JobRegistry:
    """Every background job of the platform; the server and ``callcenter worker`` share it."""
    from datetime import timedelta

    from callcenter.jobs import JobRegistry
    from ticketing.supervision import SupervisionPolicy, scan_job

    policy = SupervisionPolicy(yellow_before=timedelta(hours=settings.sla_yellow_hours))
    return JobRegistry((scan_job(timedelta(minutes=settings.sla_scan_minutes), policy),))


@asynccontextmanager
async def job_context(settings: Settings) -> AsyncIterator[JobContext]:
    """What a worker process's jobs use: the database and the bus, nothing else."""
    from callcenter.jobs import JobContext

    async with AsyncExitStack() as stack:
        engine, bus = await _open_storage(stack, settings)
        yield JobContext(settings, make_sessionmaker(engine), bus)


async def _open_storage(stack: AsyncExitStack, settings: Settings) -> tuple[AsyncEngine, EventBus]:
    """The database (pinged, so a wrong URL fails at once) and the started bus; ``stack``
    closes them. Web, telephony and worker processes all start this way."""
    engine = make_engine(settings.database_url)
    stack.push_async_callback(engine.dispose)
    await ping(engine)
    bus = make_bus(settings)
    await bus.start()
    stack.push_async_callback(bus.close)
    return engine, bus


async def _start_jobs(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], bus: EventBus
) -> InProcessRunner:
    from callcenter.jobs import JobContext
    from callcenter.jobs.inprocess import InProcessRunner

    runner = InProcessRunner(job_registry(settings), JobContext(settings, sessionmaker, bus))
    await runner.start()
    return runner


async def seed_features(session: AsyncSession, province: ProvinceData) -> str:
    """Seed what features add to a province (the handling units of ``ticketing``), called by
    ``callcenter seed`` after the regions exist; idempotent. Returns a note for the output."""
    from ticketing.assignment import read_units, seed_units, units_file

    path = units_file(province.province.code)
    if not path.exists():
        return f"; no handling-unit file {path.name}, units not seeded"
    added = await seed_units(session, read_units(path, province), str(path))
    return f", {added} handling units added"


def _flow_store(settings: Settings) -> FlowStore:
    """The active IVR flow; an invalid one stops the program with every problem listed."""
    from callcenter.settings import ConfigError
    from ivr_flows.errors import FlowError
    from ivr_flows.store import FlowStore
    from ivr_flows.validator import DEFAULT_FLOW

    try:
        return FlowStore.open(settings.ivr_flow or DEFAULT_FLOW)
    except FlowError as exc:
        message = f"CALLCENTER_IVR_FLOW: the IVR flow is invalid, refusing to start:\n{exc}"
        raise ConfigError(message) from None


def _ivr(
    flows: FlowStore,
    bus: EventBus,
    sessionmaker: async_sessionmaker[AsyncSession],
    recognizer: Recognizer | None,
) -> IvrFactory:
    from ivr_flows.wiring import ivr_factory

    return ivr_factory(flows, bus=bus, sessionmaker=sessionmaker, recognizer=recognizer)
