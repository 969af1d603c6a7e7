"""A short-lived, in-process cache of resolved sessions: one database round trip less per request.

Every API request resolves its token to a :class:`Principal` (``SELECT auth_sessions JOIN
users``); a desk agent's screen sends several requests a second with the same token. The cache
keeps the answer for ``CALLCENTER_AUTH_CACHE_SECONDS`` (default 5 s; 0 turns it off), never
past the session's own expiry, keyed by the token's SHA-256 (the token itself is never kept).
Failures are never cached.

Revocation is explicit, not left to the TTL: logout and password change call :func:`announce`,
which evicts the session (or every session of the user) from every cache of this process at
once and publishes the notice on the event bus (``auth.revoked``); every web process follows
that channel (:meth:`PrincipalCache.follow`), so with Redis the other workers evict it too,
within the bus's delivery time. A request that read the session *before* the revocation
cannot put it back afterwards (the revocation time is remembered for one TTL).
What still takes up to one TTL: a change made with no notice at all (a row edited by hand in
the database), a notice lost while Redis is down, or a notice from a process with no shared
bus (the embedded in-process bus does not reach a separate CLI process).
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from callcenter.auth.principal import Principal
from callcenter.bus import EventBus
from callcenter.bus.base import BusClosed, BusError

log = logging.getLogger(__name__)

DEFAULT_TTL_S: Final = 0.0
"""A bare ``PrincipalCache()`` keeps nothing; the app builds its cache from the settings."""
DEFAULT_MAX_ENTRIES: Final = 10_000
CHANNEL: Final = "auth.revoked"
"""Bus channel of revocation notices: ``{"user_id": 7}`` or ``{"session_hash": "…"}``."""
_RESUBSCRIBE_S: Final = 2.0

_LIVE: weakref.WeakSet[PrincipalCache] = weakref.WeakSet()
"""Every cache of this process, so a revocation reaches them all without a bus round trip."""


@dataclass(frozen=True, slots=True)
class _Entry:
    principal: Principal
    until: float


class PrincipalCache:
    """Token hash → principal, each entry valid until ``min(now + ttl, session expiry)``."""

    def __init__(
        self,
        ttl_s: float = DEFAULT_TTL_S,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl_s < 0 or max_entries < 1:
            raise ValueError("ttl_s must be >= 0 and max_entries >= 1")
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._revoked: dict[str | int, float] = {}
        """Session hash or user id → when it was revoked, kept one TTL (see :meth:`put`)."""
        self._follower: asyncio.Task[None] | None = None
        self.notices = 0
        """Revocation notices received from the bus (for metrics and tests)."""
        _LIVE.add(self)

    def now(self) -> float:
        """This cache's clock: pass it to :meth:`put` as ``read_at`` before reading the DB."""
        return self._clock()

    def get(self, token_hash: str) -> Principal | None:
        entry = self._entries.get(token_hash)
        if entry is None:
            return None
        if entry.until <= self._clock():
            del self._entries[token_hash]
            return None
        return entry.principal

    def put(
        self,
        token_hash: str,
        principal: Principal,
        expires_in_s: float,
        read_at: float | None = None,
    ) -> None:
        """Keep ``principal`` for the TTL, or less if its session ends in ``expires_in_s``.

        ``read_at`` (from :meth:`now`, taken before the database read): a revocation of this
        session or user that arrived after it wins, and the entry is not kept.
        """
        lifetime = min(self.ttl_s, expires_in_s)
        if lifetime <= 0:
            return
        if read_at is not None and self._revoked_since(read_at, token_hash, principal.user_id):
            return
        if len(self._entries) >= self.max_entries:
            self._evict()
        self._entries[token_hash] = _Entry(principal, self._clock() + lifetime)

    def discard(self, token_hash: str) -> None:
        """Forget one session (logout)."""
        self._entries.pop(token_hash, None)
        self._remember(token_hash)

    def discard_user(self, user_id: int) -> None:
        """Forget every session of a user (password change, deactivation, role change)."""
        for key in [k for k, e in self._entries.items() if e.principal.user_id == user_id]:
            del self._entries[key]
        self._remember(user_id)

    def __len__(self) -> int:
        return len(self._entries)

    def follow(self, bus: EventBus) -> None:
        """Apply the revocation notices published by other processes, in the background, until
        the bus closes. Idempotent; a cache with TTL 0 has nothing to evict and skips it."""
        if self.ttl_s <= 0 or (self._follower is not None and not self._follower.done()):
            return
        self._follower = asyncio.get_running_loop().create_task(
            self._follow(bus), name="principal-cache-revocations"
        )

    @property
    def following(self) -> bool:
        return self._follower is not None and not self._follower.done()

    async def _follow(self, bus: EventBus) -> None:
        while True:
            try:
                async with bus.subscribe(CHANNEL) as subscription:
                    async for message in subscription:
                        self.notices += 1
                        self.apply(message.data)
                return  # the bus was closed: the app is shutting down
            except BusClosed:
                return
            except BusError as exc:  # Redis down at subscribe time: the TTL still bounds it
                log.warning("session cache: revocation notices not received: %s", exc)
                await asyncio.sleep(_RESUBSCRIBE_S)

    def apply(self, notice: dict[str, Any]) -> None:
        """One revocation notice (malformed ones are ignored: they come over the network)."""
        user_id = notice.get("user_id")
        session_hash = notice.get("session_hash")
        if isinstance(user_id, int) and not isinstance(user_id, bool):
            self.discard_user(user_id)
        if isinstance(session_hash, str):
            self.discard(session_hash)

    def _remember(self, key: str | int) -> None:
        if self.ttl_s <= 0:
            return
        now = self._clock()
        if len(self._revoked) >= self.max_entries:
            cutoff = now - self.ttl_s
            self._revoked = {k: t for k, t in self._revoked.items() if t > cutoff}
        self._revoked[key] = now

    def _revoked_since(self, read_at: float, token_hash: str, user_id: int) -> bool:
        return any(
            (stamp := self._revoked.get(key)) is not None and stamp >= read_at
            for key in (token_hash, user_id)
        )

    def _evict(self) -> None:
        """Drop expired entries; if still full, the oldest quarter (insertion order)."""
        now = self._clock()
        for key in [k for k, e in self._entries.items() if e.until <= now]:
            del self._entries[key]
        if len(self._entries) >= self.max_entries:
            for key in list(self._entries)[: max(1, self.max_entries // 4)]:
                del self._entries[key]


async def announce(
    bus: EventBus | None, *, user_id: int | None = None, session_hash: str | None = None
) -> None:
    """A session (``session_hash``) or every session of a user (``user_id``) has ended: evict
    it from every cache of this process now, and tell the other processes over ``bus``.

    Call it after the revocation is committed. Publishing is best effort (the database already
    refuses the session; a lost notice only leaves other processes their TTL).
    """
    if user_id is None and session_hash is None:
        raise ValueError("announce() needs a user_id or a session_hash")
    notice: dict[str, Any] = {}
    if user_id is not None:
        notice["user_id"] = user_id
    if session_hash is not None:
        notice["session_hash"] = session_hash
    for cache in list(_LIVE):
        cache.apply(notice)
    if bus is None:
        return
    try:
        await bus.publish(CHANNEL, notice)
    except BusError as exc:
        log.warning("session revocation not published (other workers wait for the TTL): %s", exc)
