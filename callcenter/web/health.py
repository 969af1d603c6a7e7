"""Liveness, readiness and Prometheus metrics: unauthenticated probes that reveal no data."""

from __future__ import annotations

import hmac
import time

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint

from callcenter.errors import NotAuthenticated
from callcenter.web.deps import ServicesDep

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up and serving; says nothing about dependencies."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(services: ServicesDep) -> JSONResponse:
    """Database, Redis and AMI each reported separately; 503 when a required one is down."""
    ready, body = await services.readiness.report()
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request, services: ServicesDep) -> Response:
    token = services.settings.metrics_token
    if token is not None:
        given = request.headers.get("authorization", "").removeprefix("Bearer ")
        if not hmac.compare_digest(given.encode(), token.get_secret_value().encode()):
            raise NotAuthenticated("metrics need the bearer token from CALLCENTER_METRICS_TOKEN")
    registry: CollectorRegistry = request.app.state.metrics_registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


class _HttpMetrics(BaseHTTPMiddleware):
    def __init__(self, app: FastAPI, registry: CollectorRegistry) -> None:
        super().__init__(app)
        self.requests = Counter(
            "http_requests", "HTTP requests", ["method", "route", "status"], registry=registry
        )
        self.latency = Histogram(
            "http_request_duration_seconds", "HTTP latency", ["method", "route"], registry=registry
        )

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        start = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "<unmatched>")
        self.requests.labels(request.method, path, str(response.status_code)).inc()
        self.latency.labels(request.method, path).observe(time.perf_counter() - start)
        return response


def install_metrics(app: FastAPI) -> CollectorRegistry:
    """A registry per app, so several apps in one process (tests) do not collide."""
    registry = CollectorRegistry()
    app.add_middleware(_HttpMetrics, registry=registry)
    app.state.metrics_registry = registry
    return registry
