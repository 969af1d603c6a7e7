"""Operational endpoints through the ASGI app, and the real server over real HTTP."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from callcenter.services import build_services
from callcenter.settings import Settings
from callcenter.web.app import create_app


async def _client_for(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with build_services(settings) as services:
        transport = httpx.ASGITransport(app=create_app(services=services))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c


async def test_healthz(client: httpx.AsyncClient) -> None:
    r = await client.get("/healthz")
    assert (r.status_code, r.json()) == (200, {"status": "ok"})


async def test_given_embedded_defaults_then_ready_with_each_check_named(
    client: httpx.AsyncClient,
) -> None:
    r = await client.get("/readyz")
    assert r.status_code == 200
    checks = r.json()["checks"]
    assert checks["database"] == {"status": "ok", "required": True, "detail": "sqlite"}
    assert checks["redis"]["status"] == "ok" and checks["redis"]["required"] is False
    assert checks["ami"]["detail"].startswith("AMI bridge not running in this process")
    assert checks["ami"]["required"] is False


class _FakeAmi:
    """A TCP peer that sends a banner, like Asterisk does on connect."""

    def __init__(self, banner: bytes) -> None:
        self.banner = banner
        self.server: asyncio.Server | None = None

    async def _handle(self, _r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(self.banner)
        await w.drain()
        w.close()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


def _ami_settings(make_settings: Callable[..., Settings], url: str, port: int) -> Settings:
    return make_settings(
        database_url=url, ami_host="127.0.0.1", ami_port=port, ami_username="u", ami_secret="s"
    )


async def test_given_configured_ami_down_then_not_ready_and_ami_named(
    make_settings: Callable[..., Settings], sqlite_url: str, free_port: Callable[[], int]
) -> None:
    async for c in _client_for(_ami_settings(make_settings, sqlite_url, free_port())):
        r = await c.get("/readyz")
        assert r.status_code == 503
        body = r.json()
        assert body["status"] == "not-ready"
        assert body["checks"]["ami"]["status"] == "down"
        assert body["checks"]["database"]["status"] == "ok"


async def test_given_configured_ami_up_then_ready(
    make_settings: Callable[..., Settings], sqlite_url: str
) -> None:
    ami = _FakeAmi(b"Asterisk Call Manager/11.0.0\r\n")
    port = await ami.start()
    try:
        async for c in _client_for(_ami_settings(make_settings, sqlite_url, port)):
            r = await c.get("/readyz")
            assert r.status_code == 200
            assert "Asterisk Call Manager/11.0.0" in r.json()["checks"]["ami"]["detail"]
    finally:
        await ami.stop()


async def test_given_peer_that_is_not_asterisk_then_ami_down(
    make_settings: Callable[..., Settings], sqlite_url: str
) -> None:
    ami = _FakeAmi(b"SSH-2.0-OpenSSH_9.2\r\n")
    port = await ami.start()
    try:
        async for c in _client_for(_ami_settings(make_settings, sqlite_url, port)):
            r = await c.get("/readyz")
            assert r.status_code == 503
            assert "expected b'Asterisk Call Manager/'" in r.json()["checks"]["ami"]["detail"]
    finally:
        await ami.stop()


@pytest_asyncio.fixture
async def own_redis(
    free_port: Callable[[], int],
) -> AsyncIterator[tuple[int, subprocess.Popen[bytes]]]:
    port = free_port()
    cmd = [
        "redis-server",
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(50):
        try:
            _r, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            await w.wait_closed()
            break
        except OSError:
            await asyncio.sleep(0.05)
    yield port, proc
    if proc.poll() is None:
        proc.kill()
    proc.wait()


@pytest.mark.redis
async def test_given_redis_goes_down_then_not_ready_and_redis_named(
    make_settings: Callable[..., Settings],
    sqlite_url: str,
    own_redis: tuple[int, subprocess.Popen[bytes]],
) -> None:
    port, proc = own_redis
    settings = make_settings(database_url=sqlite_url, redis_url=f"redis://127.0.0.1:{port}/0")
    async for c in _client_for(settings):
        ok = await c.get("/readyz")
        assert ok.status_code == 200 and ok.json()["checks"]["redis"]["required"] is True
        proc.kill()
        proc.wait()
        r = await c.get("/readyz")
        assert r.status_code == 503
        assert r.json()["checks"]["redis"]["status"] == "down"
        assert r.json()["checks"]["database"]["status"] == "ok"


async def test_metrics_in_prometheus_format(client: httpx.AsyncClient) -> None:
    await client.get("/healthz")
    r = await client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    assert 'http_requests_total{method="GET",route="/healthz",status="200"}' in r.text


async def test_given_metrics_token_then_metrics_need_it(
    make_settings: Callable[..., Settings], sqlite_url: str
) -> None:
    async for c in _client_for(make_settings(database_url=sqlite_url, metrics_token="m-token")):
        assert (await c.get("/metrics")).status_code == 401
        bad = await c.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert bad.status_code == 401
        good = await c.get("/metrics", headers={"Authorization": "Bearer m-token"})
        assert good.status_code == 200


async def test_openapi_lists_the_apis(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert "/api/auth/login" in spec["paths"] and "/readyz" in spec["paths"]
    assert (await client.get("/docs")).status_code == 200


@pytest.mark.slow
async def test_given_fresh_folder_when_demo_runs_then_real_http_serves_health_and_docs(
    tmp_path: Path, free_port: Callable[[], int]
) -> None:
    """What `make run` does: migrate, seed, serve on the embedded defaults, in a new folder."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLCENTER_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "callcenter", "demo", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as c:
            for _ in range(200):
                try:
                    if (await c.get("/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
            else:
                pytest.fail("server did not answer /healthz within 20 s")
            assert (await c.get("/docs")).status_code == 200
            assert (await c.get("/readyz")).json()["status"] == "ready"
        assert (tmp_path / "data" / "callcenter.db").exists()
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, out.decode()
    assert b"Traceback" not in out
