"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from callcenter import __version__
from callcenter.services import Services, build_services
from callcenter.settings import Settings, load_settings
from callcenter.web import health
from callcenter.web.body_limit import BodyLimit, BodyTooLarge, body_too_large
from callcenter.web.errors import install_error_handlers


def create_app(settings: Settings | None = None, services: Services | None = None) -> FastAPI:
    """Build the app; with ``services`` given (CLI ``serve``) the caller owns their lifetime."""
    settings = services.settings if services else (settings or load_settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if services is not None:
            yield
            return
        async with build_services(settings) as built:
            _attach(app, built)
            yield

    app = FastAPI(
        title="12348 公共法律服务热线平台",
        version=__version__,
        lifespan=lifespan,
        docs_url="/docs",
        openapi_url="/openapi.json",
    )
    if services is not None:
        _attach(app, services)
    install_error_handlers(app)
    app.add_exception_handler(BodyTooLarge, body_too_large)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    health.install_metrics(app)
    app.include_router(health.router)
    from callcenter.auth.http import router as auth_router
    from callcenter.state.http import router as live_router
    from ivr_flows.http import router as ivr_router
    from ticketing.http import router as tickets_router
    from ticketing.http_assignment import router as assignment_router
    from ticketing.http_followup import related_router
    from ticketing.http_followup import router as followup_router
    from ticketing.http_stats import router as stats_router
    from ticketing.http_supervision import router as supervision_router
    from ticketing.http_teams import router as teams_router

    app.include_router(auth_router)
    app.include_router(live_router)
    app.include_router(tickets_router)
    app.include_router(ivr_router)
    app.include_router(followup_router)
    app.include_router(related_router)
    app.include_router(stats_router)
    app.include_router(teams_router)
    app.include_router(assignment_router)
    app.include_router(supervision_router)
    return app


def _attach(app: FastAPI, services: Services) -> None:
    app.state.services = services
    if services.live is not None:
        app.state.live_state = services.live
