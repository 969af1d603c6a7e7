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
    from callcenter.pbxsim.workload import TrafficConfig
    from callcenter.state import LiveState
    from callcenter.telephony import Telephony


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
    settings: Settings, *, telephony: bool = False, traffic: TrafficConfig | None = None
) -> AsyncIterator[Services]:
    """Open the database and the bus (failing fast with one-line errors); close on exit.

    With ``telephony`` the AMI bridge runs in this process (``serve`` and ``demo``): against
    Asterisk when configured, else against the built-in PBX simulator (with ``traffic``).
    """
    async with AsyncExitStack() as stack:
        engine = make_engine(settings.database_url)
        stack.push_async_callback(engine.dispose)
        await ping(engine)
        bus = make_bus(settings)
        await bus.start()
        stack.push_async_callback(bus.close)
        limiter = make_rate_limiter(settings)
        stack.push_async_callback(limiter.close)
        sessionmaker = make_sessionmaker(engine)
        tel = None
        live = None
        if telephony:
            from callcenter.telephony import Telephony

            tel = await Telephony.start(settings, bus, sessionmaker, traffic=traffic)
            stack.push_async_callback(tel.close)
            live = tel.live
        elif settings.redis_url:
            from callcenter.state import make_live_state

            live = make_live_state(settings, None)
            stack.push_async_callback(live.close)
        yield Services(
            settings=settings,
            engine=engine,
            sessionmaker=sessionmaker,
            bus=bus,
            rate_limiter=limiter,
            readiness=_readiness(settings, engine, bus, tel),
            telephony=tel,
            live=live,
        )
