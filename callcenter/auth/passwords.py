"""Password hashing (argon2id) and the password policy.

Hashing costs ~0.1 s of CPU with the argon2-cffi defaults, so it runs in a worker thread
(argon2-cffi releases the GIL) instead of stalling every call on the event loop. The cost
parameters live in one place, :func:`make_passwords`, so tests can build a cheap instance and
pass it in explicitly; nothing global is patched.
"""

from __future__ import annotations

import asyncio
import secrets
from functools import cache

import argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from callcenter.errors import InvalidInput

MIN_LENGTH = 10
MAX_LENGTH = 1024  # the login form accepts no more, so a longer password could never be used


class WeakPassword(InvalidInput):
    error_id = "weak-password"


class Passwords:
    """argon2id hash / verify, plus a decoy verify so unknown usernames cost the same time."""

    def __init__(self, hasher: argon2.PasswordHasher) -> None:
        if hasher.type is not argon2.Type.ID:
            raise ValueError("only argon2id hashers are accepted")
        self._hasher = hasher
        self._decoy_hash = hasher.hash(secrets.token_urlsafe(16))

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, password_hash: str, password: str) -> bool:
        """True on a match; a mismatch or an unreadable stored hash is simply False."""
        return await asyncio.to_thread(self._verify_sync, password_hash, password)

    def needs_rehash(self, password_hash: str) -> bool:
        """True when the hash was made with other parameters than the current ones."""
        try:
            return self._hasher.check_needs_rehash(password_hash)
        except InvalidHashError:
            return True

    async def dummy_verify(self, password: str) -> None:
        """Spend the time of a real verify, for users that do not exist or cannot log in."""
        await self.verify(self._decoy_hash, password)

    def _verify_sync(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False


def make_passwords(
    *, time_cost: int = 3, memory_cost: int = 65536, parallelism: int = 4
) -> Passwords:
    """Build the hasher; the defaults are argon2-cffi's (RFC 9106 low-memory profile)."""
    return Passwords(
        argon2.PasswordHasher(
            time_cost=time_cost,
            memory_cost=memory_cost,
            parallelism=parallelism,
            type=argon2.Type.ID,
        )
    )


@cache
def default_passwords() -> Passwords:
    """The production hasher, built on first use (building it computes one decoy hash)."""
    return make_passwords()


def check_password_policy(password: str, username: str) -> None:
    """Refuse passwords that a guessing attack or a shoulder-surfer would find first."""
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"password must be at least {MIN_LENGTH} characters long")
    if len(password) > MAX_LENGTH:
        raise WeakPassword(f"password must be at most {MAX_LENGTH} characters long")
    if password.isdigit():
        raise WeakPassword("password must not consist of digits only")
    if password.casefold() == username.casefold():
        raise WeakPassword("password must not be the same as the username")
