"""Request bodies over ``CALLCENTER_MAX_BODY_BYTES`` are refused (413) before the app buffers
them, over a real uvicorn server: declared (Content-Length) or streamed (chunked), with or
without credentials; nothing is written and bodies up to the cap still work."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest_asyncio
import uvicorn

from callcenter.services import build_services
from callcenter.settings import Settings
from callcenter.web.app import create_app
from tests.ticketing.conftest import CITY, Actor, TicketEnv

LIMIT = 4096


def _ticket(content: str = "劳动合同纠纷咨询") -> dict[str, Any]:
    return {
        "caller_number": "13805730001",
        "caller_region_code": CITY,
        "category": "legal_consultation",
        "request_type": "consultation",
        "content": content,
    }


def _batch_of(size: int) -> bytes:
    """A valid batch whose JSON is exactly ``size`` bytes (padded with JSON whitespace)."""
    raw = json.dumps({"tickets": [_ticket()]}, ensure_ascii=False).encode()
    assert len(raw) <= size
    return raw + b" " * (size - len(raw))


@pytest_asyncio.fixture
async def served(
    make_settings: Callable[..., Settings], sqlite_url: str, free_port: Callable[[], int]
) -> AsyncIterator[TicketEnv]:
    """The app on a real port with a 4 KiB cap; ``env.client`` talks to it over TCP."""
    settings = make_settings(database_url=sqlite_url, max_body_bytes=LIMIT)
    async with build_services(settings) as services:
        app = create_app(services=services)
        port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="error")
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve())
        try:
            async with asyncio.timeout(10):
                while not server.started:
                    await asyncio.sleep(0.01)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                yield TicketEnv(app=app, services=services, client=client)
        finally:
            server.should_exit = True
            await asyncio.wait_for(task, 10)


async def _post(env: TicketEnv, actor: Actor | None, content: Any) -> httpx.Response:
    headers = {"Content-Type": "application/json", **(actor.headers if actor else {})}
    return await env.client.post("/api/tickets/batch", content=content, headers=headers)


def _assert_too_large(response: httpx.Response) -> None:
    assert response.status_code == 413, response.text
    body = response.json()
    assert body["error_id"] == "payload-too-large"
    assert body["details"] == {"limit": LIMIT} and str(LIMIT) in body["message"]


async def test_given_a_declared_body_over_the_cap_then_413_before_auth_and_nothing_written(
    served: TicketEnv,
) -> None:
    before = await served.row_counts()
    _assert_too_large(await _post(served, None, b"{" + b" " * LIMIT + b"}"))  # no credentials
    agent = await served.actor()
    _assert_too_large(await _post(served, agent, _batch_of(LIMIT + 1)))
    assert await served.row_counts() == before
    # The connection was closed with the refusal; the client simply carries on.
    response = await _post(served, agent, _batch_of(LIMIT))
    assert response.status_code == 201, response.text
    assert await served.row_counts() != before


async def test_given_a_streamed_body_over_the_cap_then_413_and_nothing_written(
    served: TicketEnv,
) -> None:
    agent = await served.actor()
    before = await served.row_counts()

    async def chunks(body: bytes) -> AsyncIterator[bytes]:  # no Content-Length: chunked
        for start in range(0, len(body), 1000):
            yield body[start : start + 1000]

    _assert_too_large(await _post(served, agent, chunks(_batch_of(LIMIT + 1))))
    _assert_too_large(await _post(served, None, chunks(b" " * (LIMIT * 50))))
    assert await served.row_counts() == before
    response = await _post(served, agent, chunks(_batch_of(LIMIT)))
    assert response.status_code == 201, response.text
    [ticket] = response.json()["tickets"]
    assert ticket["state"] == "accepted"


async def test_given_an_unusable_content_length_then_400_and_the_app_never_runs(
    make_settings: Callable[..., Settings], sqlite_url: str
) -> None:
    """A server in front would refuse it first; the app refuses it too (in-process here,
    since an HTTP client will not send such a header)."""
    settings = make_settings(database_url=sqlite_url, max_body_bytes=LIMIT)
    async with build_services(settings) as services:
        transport = httpx.ASGITransport(app=create_app(services=services))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            for value in ("abc", "-1", "1e3"):
                response = await client.post(
                    "/api/tickets/batch", content=b"{}", headers={"Content-Length": value}
                )
                assert response.status_code == 400, (value, response.text)
                assert response.json()["message"] == "invalid Content-Length header"


async def test_given_an_endless_stream_then_the_server_gives_up_on_it_and_keeps_serving(
    served: TicketEnv,
) -> None:
    """Past the drain allowance the server stops reading and closes the connection: the
    client sees a 413 or a reset, depending on timing; nothing is written either way."""
    before = await served.row_counts()

    async def endless() -> AsyncIterator[bytes]:
        for _ in range(3 * 1024):  # 3 MiB, more than the 1 MiB drained
            yield b" " * 1024

    try:
        _assert_too_large(await _post(served, None, endless()))
    except (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError):
        pass  # the reset: what a client streaming on regardless gets
    assert await served.row_counts() == before
    agent = await served.actor()
    response = await _post(served, agent, _batch_of(LIMIT))
    assert response.status_code == 201, response.text
