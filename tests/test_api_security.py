"""Authentication on every API: each route the app serves, called without credentials or with
a forged token, is refused with 401 before it reads or writes anything. The list of routes is
taken from the app itself, so a new router cannot slip through untested."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from callcenter.services import Services
from callcenter.web.app import create_app

PUBLIC = {
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),  # guarded by CALLCENTER_METRICS_TOKEN when set (tested in test_web_ops)
    ("POST", "/api/auth/login"),
}
_PARAM = re.compile(r"\{[^}]+\}")


def _api_routes(services: Services) -> Iterator[tuple[str, str]]:
    """Every documented operation (the OpenAPI description lists each included router)."""
    paths = create_app(services=services).openapi()["paths"]
    for path, operations in paths.items():
        for method in operations:
            if (method.upper(), path) not in PUBLIC:
                yield method.upper(), _PARAM.sub("1", path)


async def test_given_every_api_route_when_called_without_credentials_then_401(
    services: Services, client: httpx.AsyncClient
) -> None:
    routes = sorted(set(_api_routes(services)))
    assert len(routes) >= 25, routes  # tickets, follow-ups, supervision, stats, IVR, live…
    for prefix in ("/api/tickets", "/api/followups", "/api/supervision", "/api/stats",
                   "/api/ivr", "/api/live", "/api/assignment"):  # fmt: skip
        assert any(path.startswith(prefix) for _, path in routes), prefix
    for method, path in routes:
        for headers in ({}, {"Authorization": "Bearer forged-token-0000000000000000000000"}):
            response = await client.request(method, path, headers=headers, json={})
            assert response.status_code == 401, (method, path, headers, response.text)


@pytest.mark.parametrize("path", ["/docs", "/openapi.json"])
async def test_given_the_api_description_then_it_is_served_without_secrets(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.get(path)
    assert response.status_code == 200
    assert "secret_key" not in response.text.lower()
