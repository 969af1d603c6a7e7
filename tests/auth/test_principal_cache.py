"""The cache of resolved sessions: bounds, eviction, and revocations taking effect at once, in
this process and (over Redis) in every other web worker."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update

from callcenter.auth import services as auth
from callcenter.auth.cache import CHANNEL, PrincipalCache, announce
from callcenter.auth.passwords import Passwords
from callcenter.auth.principal import Principal
from callcenter.db.models import AuthSession, Role, User
from callcenter.services import Services, build_services
from callcenter.settings import Settings
from callcenter.web.app import create_app
from tests.conftest import REDIS_URL


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _principal(user_id: int, session_hash: str) -> Principal:
    return Principal(
        user_id=user_id,
        username=f"u{user_id}",
        display_name="",
        role=Role.AGENT,
        region_code="330400",
        skills=(),
        languages=(),
        auth_kind="bearer",
        session_hash=session_hash,
    )


def test_given_a_ttl_then_entries_expire_with_it_or_with_the_session() -> None:
    clock = FakeClock()
    cache = PrincipalCache(ttl_s=5, clock=clock)
    cache.put("a", _principal(1, "a"), expires_in_s=3600)
    cache.put("b", _principal(1, "b"), expires_in_s=2)  # the session ends first
    clock.now += 2
    assert cache.get("a") is not None and cache.get("b") is None
    clock.now += 3
    assert cache.get("a") is None and len(cache) == 0


def test_given_ttl_zero_then_nothing_is_kept() -> None:
    cache = PrincipalCache()  # the default: off
    cache.put("a", _principal(1, "a"), expires_in_s=3600)
    assert cache.get("a") is None and len(cache) == 0
    with pytest.raises(ValueError):
        PrincipalCache(ttl_s=-1)


def test_given_discards_and_a_full_cache_then_entries_go() -> None:
    cache = PrincipalCache(ttl_s=60, max_entries=4, clock=FakeClock())
    for i in range(4):
        cache.put(f"t{i}", _principal(i % 2, f"t{i}"), expires_in_s=3600)
    cache.discard("t0")
    cache.discard("missing")
    assert cache.get("t0") is None and cache.get("t2") is not None
    cache.discard_user(1)
    assert cache.get("t1") is None and cache.get("t3") is None and len(cache) == 1
    for i in range(10):
        cache.put(f"n{i}", _principal(9, f"n{i}"), expires_in_s=3600)
    assert len(cache) <= 4 and cache.get("n9") is not None


async def _bearer(services: Services, username: str = "cache_user") -> tuple[int, str]:
    async with services.sessionmaker() as session:
        user = User(
            username=username,
            password_hash="!unusable",
            role=Role.AGENT.value,
            region_code="330400",
        )
        session.add(user)
        await session.commit()
        token, _ = await auth.open_session(
            session, user, "bearer", client_ip=None, user_agent=None, settings=services.settings
        )
        return user.id, token


async def test_given_the_cache_on_when_logging_out_then_the_token_is_refused_at_once(
    services: Services,
) -> None:
    app = create_app(services=services)
    clock = FakeClock()
    app.state.principal_cache = PrincipalCache(ttl_s=30, clock=clock)
    user_id, token = await _bearer(services)
    headers = {"Authorization": f"Bearer {token}"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.get("/api/auth/me", headers=headers)).status_code == 200
        assert len(app.state.principal_cache) == 1
        # Revoked behind the app's back (another worker, the CLI): honoured when the entry ends.
        async with services.sessionmaker() as session:
            await session.execute(
                update(AuthSession)
                .where(AuthSession.user_id == user_id)
                .values(revoked_at=AuthSession.created_at)
            )
            await session.commit()
        assert (await client.get("/api/auth/me", headers=headers)).status_code == 200
        clock.now += 30
        assert (await client.get("/api/auth/me", headers=headers)).status_code == 401

        _, token = await _fresh_session(services, user_id)
        headers = {"Authorization": f"Bearer {token}"}
        assert (await client.get("/api/auth/me", headers=headers)).status_code == 200
        assert (await client.post("/api/auth/logout", headers=headers)).status_code == 200
        refused = await client.get("/api/auth/me", headers=headers)
        assert refused.status_code == 401  # this process evicted it: no TTL window
        bogus = {"Authorization": "Bearer not-a-token"}
        assert (await client.get("/api/auth/me", headers=bogus)).status_code == 401
        assert len(app.state.principal_cache) == 0  # failures are never cached


async def _fresh_session(services: Services, user_id: int) -> tuple[int, str]:
    async with services.sessionmaker() as session:
        user = await session.get(User, user_id)
        assert user is not None
        token, _ = await auth.open_session(
            session, user, "bearer", client_ip=None, user_agent=None, settings=services.settings
        )
        return user_id, token


# --- on by default, revocations reach every cache ---------------------------------------------


def test_given_a_revocation_during_a_read_then_the_stale_answer_is_not_kept() -> None:
    clock = FakeClock()
    cache = PrincipalCache(ttl_s=5, clock=clock)
    read_at = cache.now()  # a request starts reading the session...
    clock.now += 0.01
    cache.apply({"session_hash": "a"})  # ...the logout lands meanwhile...
    cache.put("a", _principal(1, "a"), expires_in_s=3600, read_at=read_at)
    assert cache.get("a") is None  # ...so its answer (read before the logout) is dropped
    cache.apply({"user_id": 2})
    cache.put("b", _principal(2, "b"), expires_in_s=3600, read_at=read_at)
    assert cache.get("b") is None
    clock.now += 0.01
    cache.put("b", _principal(2, "b"), expires_in_s=3600, read_at=cache.now())  # a new login
    assert cache.get("b") is not None
    for junk in ({"user_id": "2"}, {"user_id": True}, {"session_hash": 5}, {}):
        cache.apply(junk)  # notices come over the network: malformed ones change nothing
    assert cache.get("b") is not None


async def test_given_default_settings_when_the_password_changes_then_the_cache_drops_the_user(
    services: Services, passwords: Passwords
) -> None:
    assert services.settings.auth_cache_seconds == 5.0
    app = create_app(services=services)
    _, token = await _bearer(services)
    headers = {"Authorization": f"Bearer {token}"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.get("/api/auth/me", headers=headers)).status_code == 200
        cache: PrincipalCache = app.state.principal_cache
        assert cache.ttl_s == 5.0 and len(cache) == 1 and cache.following
        async with services.sessionmaker() as session:  # no bus given: this process only
            await auth.set_password(
                session, "cache_user", "a brand new secret", passwords=passwords
            )
        assert len(cache) == 0
        assert (await client.get("/api/auth/me", headers=headers)).status_code == 401


async def test_given_ttl_zero_in_the_settings_then_every_request_reads_the_session(
    make_settings: Callable[..., Settings], sqlite_url: str
) -> None:
    settings = make_settings(database_url=sqlite_url, auth_cache_seconds=0)
    async with build_services(settings) as built:
        app = create_app(services=built)
        _, token = await _bearer(built)
        async with _client(app) as client:
            me = await client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
            assert me.status_code == 200
        assert len(app.state.principal_cache) == 0 and not app.state.principal_cache.following


async def test_given_two_workers_on_redis_when_one_logs_out_then_the_other_refuses_at_once(
    make_settings: Callable[..., Settings], pg_url: str, passwords: Passwords
) -> None:
    """Two web workers (two apps, two service sets, one database, one Redis): a logout and a
    password change served by one of them are honoured by the other on its next request, long
    before its cache entry would run out (TTL 60 s here)."""
    settings = make_settings(
        database_url=pg_url,
        redis_url=REDIS_URL,
        redis_prefix=f"cc-test-{uuid.uuid4().hex[:12]}",
        auth_cache_seconds=60,
    )
    async with AsyncExitStack() as stack:
        workers = [await stack.enter_async_context(build_services(settings)) for _ in range(2)]
        apps = [create_app(services=w) for w in workers]
        clients = [await stack.enter_async_context(_client(app)) for app in apps]
        name = f"cache_{uuid.uuid4().hex[:8]}"  # the PostgreSQL database is shared by the run
        user_id, token = await _bearer(workers[0], name)
        _, other_token = await _fresh_session(workers[0], user_id)
        mine = {"Authorization": f"Bearer {token}"}
        other = {"Authorization": f"Bearer {other_token}"}
        for client in clients:  # both workers have both sessions cached
            for headers in (mine, other):
                assert (await client.get("/api/auth/me", headers=headers)).status_code == 200
        await _until_following(apps, workers)

        assert (await clients[0].post("/api/auth/logout", headers=mine)).status_code == 200
        await _until(lambda: len(apps[1].state.principal_cache) == 1)
        assert (await clients[1].get("/api/auth/me", headers=mine)).status_code == 401
        assert (await clients[1].get("/api/auth/me", headers=other)).status_code == 200

        async with workers[1].sessionmaker() as session:  # e.g. an admin tool in worker 1
            await auth.set_password(
                session,
                name,
                "a brand new secret",
                passwords=passwords,
                bus=workers[1].bus,
            )
        await _until(lambda: len(apps[0].state.principal_cache) == 0)
        assert (await clients[0].get("/api/auth/me", headers=other)).status_code == 401


async def test_given_the_bus_is_closed_then_the_follower_ends_and_announce_still_evicts_here(
    services: Services,
) -> None:
    cache = PrincipalCache(ttl_s=30)
    cache.follow(services.bus)
    await _until(lambda: services.bus.subscriber_count == 1)
    cache.put("t", _principal(4, "t"), expires_in_s=3600)
    await services.bus.close()
    await _until(lambda: not cache.following)
    await announce(services.bus, user_id=4)  # publishing fails (closed bus): logged, not raised
    assert cache.get("t") is None
    with pytest.raises(ValueError):
        await announce(None)


def _client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def _until(condition: Callable[[], Any], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def _until_following(apps: list[FastAPI], workers: list[Services]) -> None:
    """Each worker's cache receives revocation notices (Redis confirmed the subscription)."""
    caches = [app.state.principal_cache for app in apps]
    assert all(cache.following for cache in caches)
    async with asyncio.timeout(5):
        while not all(cache.notices for cache in caches):
            await workers[0].bus.publish(CHANNEL, {"session_hash": "probe"})  # harmless
            await asyncio.sleep(0.05)


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.slow
async def test_given_a_running_worker_when_the_cli_resets_a_password_then_refused_at_once(
    make_settings: Callable[..., Settings], pg_url: str
) -> None:
    """``callcenter user passwd`` (another process) tells the web workers over Redis."""
    from tests.test_cli import run_cli

    prefix = f"cc-test-{uuid.uuid4().hex[:12]}"
    settings = make_settings(
        database_url=pg_url, redis_url=REDIS_URL, redis_prefix=prefix, auth_cache_seconds=60
    )
    async with build_services(settings) as worker:
        app = create_app(services=worker)
        async with _client(app) as client:
            name = f"cli_{uuid.uuid4().hex[:8]}"
            _, token = await _bearer(worker, name)
            headers = {"Authorization": f"Bearer {token}"}
            assert (await client.get("/api/auth/me", headers=headers)).status_code == 200
            await _until_following([app], [worker])
            env = {
                "CALLCENTER_DATABASE_URL": pg_url,
                "CALLCENTER_REDIS_URL": REDIS_URL,
                "CALLCENTER_REDIS_PREFIX": prefix,
            }
            done = await asyncio.to_thread(
                run_cli, "user", "passwd", name, "--password-stdin", env=env,
                stdin="New-pass-2026x\n",
            )  # fmt: skip
            assert done.returncode == 0, done.stderr
            await _until(lambda: len(app.state.principal_cache) == 0)
            assert (await client.get("/api/auth/me", headers=headers)).status_code == 401
