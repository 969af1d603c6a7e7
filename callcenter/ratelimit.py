"""Fixed-window rate limiting: in memory for one process, in Redis when several instances run."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod

from redis.asyncio import Redis
from redis.exceptions import RedisError

from callcenter.settings import Settings


class RateLimiter(ABC):
    @abstractmethod
    async def hit(self, key: str, limit: int, window_s: int) -> bool:
        """Count one hit; return False when ``key`` is over ``limit`` in the current window."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


class MemoryRateLimiter(RateLimiter):
    def __init__(self) -> None:
        self._counts: dict[tuple[str, int], int] = {}

    async def hit(self, key: str, limit: int, window_s: int) -> bool:
        window = int(time.time() // window_s)
        if len(self._counts) > 100_000:  # bounded memory under a flood of distinct keys
            self._counts = {k: v for k, v in self._counts.items() if k[1] >= window}
        count = self._counts.get((key, window), 0) + 1
        self._counts[(key, window)] = count
        return count <= limit


class RedisRateLimiter(RateLimiter):
    def __init__(self, url: str, prefix: str) -> None:
        self._redis: Redis = Redis.from_url(url)
        self._prefix = prefix

    async def hit(self, key: str, limit: int, window_s: int) -> bool:
        window = int(time.time() // window_s)
        rkey = f"{self._prefix}:rl:{key}:{window}"
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.incr(rkey)
                pipe.expire(rkey, window_s + 1)
                count, _ = await pipe.execute()
        except (RedisError, OSError):
            return True  # fail open: the account lockout in the database still protects logins
        return int(count) <= limit

    async def close(self) -> None:
        await self._redis.aclose()


def make_rate_limiter(settings: Settings) -> RateLimiter:
    if settings.redis_url:
        return RedisRateLimiter(settings.redis_url, settings.redis_prefix)
    return MemoryRateLimiter()
