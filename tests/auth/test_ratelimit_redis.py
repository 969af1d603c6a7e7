"""Login rate limiting with the Redis limiter, as used when several instances run."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import pytest_asyncio
from redis.asyncio import Redis

from callcenter.auth import services as auth
from callcenter.errors import NotAuthenticated, RateLimited
from callcenter.ratelimit import RedisRateLimiter
from callcenter.settings import Settings
from tests.auth.conftest import AuthEnv
from tests.conftest import REDIS_URL

Wait = Callable[[], Awaitable[None]]


@pytest_asyncio.fixture
async def redis_prefix() -> AsyncIterator[str]:
    """A prefix of our own on the shared server; its keys are deleted afterwards."""
    prefix = f"cc-test-{uuid.uuid4().hex[:12]}"
    yield prefix
    client = Redis.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest_asyncio.fixture
async def limiter(redis_prefix: str) -> AsyncIterator[RedisRateLimiter]:
    built = RedisRateLimiter(REDIS_URL, redis_prefix)
    yield built
    await built.close()


@pytest.mark.redis
async def test_counts_per_key_and_expires_its_keys(
    limiter: RedisRateLimiter, redis_prefix: str, fresh_rate_window: Wait
) -> None:
    await fresh_rate_window()
    assert [await limiter.hit("login:ip:10.0.0.1", 3, 60) for _ in range(4)] == [
        True,
        True,
        True,
        False,
    ]
    assert await limiter.hit("login:ip:10.0.0.2", 3, 60)
    client = Redis.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match=f"{redis_prefix}:rl:*")]
        assert len(keys) == 2
        ttls = [await client.ttl(key) for key in keys]
        assert all(0 < ttl <= 61 for ttl in ttls), ttls
    finally:
        await client.aclose()


@pytest.mark.redis
async def test_authenticate_is_limited_through_redis(
    sqlite_env: AuthEnv,
    limiter: RedisRateLimiter,
    make_settings: Callable[..., Settings],
    fresh_rate_window: Wait,
) -> None:
    settings = make_settings(login_rate_per_minute=2)
    await fresh_rate_window()

    async def attempt() -> None:
        async with sqlite_env.services.sessionmaker() as session:
            await auth.authenticate(
                session, limiter, settings, username="zhangsan", password="x" * 10,
                client_ip="10.0.0.1", passwords=sqlite_env.passwords,
            )  # fmt: skip

    for _ in range(2):
        with pytest.raises(NotAuthenticated):
            await attempt()
    with pytest.raises(RateLimited):
        await attempt()


async def test_given_redis_down_then_it_fails_open(free_port: Callable[[], int]) -> None:
    """The account lockout in the database still protects logins while Redis is away."""
    down = RedisRateLimiter(f"redis://127.0.0.1:{free_port()}/0", "cc-test")
    try:
        assert all([await down.hit("login:ip:10.0.0.1", 1, 60) for _ in range(3)])
    finally:
        await down.close()
