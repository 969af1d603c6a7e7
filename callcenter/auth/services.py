"""Users, logins and sessions: the domain layer behind ``/api/auth`` (no FastAPI here).

Every function that changes data commits before returning, so a failed login is counted even
though the caller then receives an error. Passwords and tokens are never logged; the database
keeps only argon2id hashes of passwords and SHA-256 hashes of session tokens.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from callcenter.auth.cache import PrincipalCache, announce
from callcenter.auth.passwords import Passwords, check_password_policy, default_passwords
from callcenter.auth.principal import AuthKind, Principal
from callcenter.bus import EventBus
from callcenter.db.base import utcnow
from callcenter.db.models import AuthSession, Region, Role, User
from callcenter.errors import (
    Conflict,
    DomainError,
    InvalidInput,
    NotAuthenticated,
    NotFound,
    PermissionDenied,
    RateLimited,
)
from callcenter.ratelimit import RateLimiter
from callcenter.settings import Settings

log = logging.getLogger(__name__)

USERNAME_RE = re.compile(r"[A-Za-z0-9_.-]{3,64}")
BAD_CREDENTIALS = "invalid username or password"


class AccountLocked(DomainError):
    error_id = "account-locked"
    status_code = 423


class CsrfFailed(PermissionDenied):
    error_id = "csrf-failed"


def hash_token(token: str) -> str:
    """What the database stores instead of the token, so a leaked table yields no session."""
    return hashlib.sha256(token.encode()).hexdigest()


# --- users -------------------------------------------------------------------------------


async def create_user(
    session: AsyncSession,
    *,
    username: str,
    password: str,
    role: Role | str,
    region_code: str,
    display_name: str = "",
    skills: Iterable[str] = (),
    languages: Iterable[str] = (),
    passwords: Passwords | None = None,
) -> User:
    """Create and commit a user; the password must pass the policy."""
    _check_username(username)
    role = _parse_role(role)
    check_password_policy(password, username)
    if await session.get(Region, region_code) is None:
        raise InvalidInput(f"unknown region {region_code!r}", region_code=region_code)
    if await _find_user_casefold(session, username) is not None:
        raise Conflict(f"user {username} already exists", username=username)
    user = User(
        username=username,
        display_name=display_name,
        password_hash=await (passwords or default_passwords()).hash(password),
        role=role.value,
        region_code=region_code,
        skills=list(skills),
        languages=list(languages),
    )
    session.add(user)
    await _commit_new_user(session, username)
    log.info("user created: username=%r role=%s region=%s", username, role.value, region_code)
    return user


async def list_users(session: AsyncSession, region_prefix: str | None = None) -> Sequence[User]:
    """All users, or those whose region code starts with ``region_prefix``, by username."""
    query = select(User).order_by(User.username)
    if region_prefix is not None:
        query = query.where(User.region_code.startswith(region_prefix, autoescape=True))
    return (await session.scalars(query)).all()


async def set_password(
    session: AsyncSession,
    username: str,
    new_password: str,
    *,
    passwords: Passwords | None = None,
    now: datetime | None = None,
    bus: EventBus | None = None,
) -> None:
    """Change the password, clear any lockout and end every session of that user.

    Revoking the sessions is the point of a password reset after a suspected compromise; and
    clearing the lockout is how an admin gets a locked-out colleague back in. With ``bus``,
    the other processes' session caches evict the user at once too (see ``auth.cache``).
    """
    now = now or utcnow()
    user = await session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"user {username} not found", username=username)
    check_password_policy(new_password, username)
    user.password_hash = await (passwords or default_passwords()).hash(new_password)
    user.password_changed_at = now
    user.failed_logins = 0
    user.locked_until = None
    await _revoke_user_sessions(session, user.id, now)
    await session.commit()
    await announce(bus, user_id=user.id)  # session caches here now, other processes via bus
    log.info("password changed: username=%r, all sessions revoked", username)


def _check_username(username: str) -> None:
    if not USERNAME_RE.fullmatch(username):
        raise InvalidInput(
            "username must be 3-64 characters of letters, digits, '_', '.' or '-'",
            username=username[:80],
        )


def _parse_role(role: Role | str) -> Role:
    try:
        return Role(role)
    except ValueError:
        allowed = ", ".join(r.value for r in Role)
        raise InvalidInput(f"unknown role {role!r}; expected one of {allowed}") from None


async def _find_user_casefold(session: AsyncSession, username: str) -> User | None:
    """Look-alike names ("Alice" / "alice") would confuse admins, so they count as taken."""
    query = select(User).where(func.lower(User.username) == username.lower())
    return await session.scalar(query)


async def _commit_new_user(session: AsyncSession, username: str) -> None:
    """Commit; the unique index still wins if a concurrent request took the name first."""
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        raise Conflict(f"user {username} already exists", username=username) from None


# --- login -------------------------------------------------------------------------------


async def authenticate(
    session: AsyncSession,
    limiter: RateLimiter,
    settings: Settings,
    *,
    username: str,
    password: str,
    client_ip: str,
    now: datetime | None = None,
    passwords: Passwords | None = None,
) -> User:
    """Check a login; count failures and lock the account after too many.

    Unknown, inactive and wrong-password logins get the same message and cost the same time,
    so the answer does not reveal which usernames exist.
    """
    now = now or utcnow()
    passwords = passwords or default_passwords()
    await _rate_limit(limiter, settings, username=username, client_ip=client_ip)
    user = await session.scalar(select(User).where(User.username == username))
    if user is None or not user.is_active:
        await passwords.dummy_verify(password)
        _log_failure(username, client_ip, "unknown user" if user is None else "inactive user")
        raise NotAuthenticated(BAD_CREDENTIALS)
    _check_not_locked(user, settings, now)
    if not await passwords.verify(user.password_hash, password):
        await _record_failure(session, user, settings, now)
        _log_failure(username, client_ip, f"wrong password ({user.failed_logins} in a row)")
        raise NotAuthenticated(BAD_CREDENTIALS)
    await _record_success(session, user, password, passwords)
    log.info("login ok: username=%r ip=%s", username, client_ip)
    return user


async def _rate_limit(
    limiter: RateLimiter, settings: Settings, *, username: str, client_ip: str
) -> None:
    """Both counters are always hit, so an attacker cannot hide behind either one."""
    limit = settings.login_rate_per_minute
    ip_ok = await limiter.hit(f"login:ip:{client_ip}", limit, 60)
    user_ok = await limiter.hit(f"login:user:{username.lower()}", limit, 60)
    if not (ip_ok and user_ok):
        log.warning("login rate-limited: username=%r ip=%s", username, client_ip)
        raise RateLimited("too many login attempts; wait a minute and try again")


def _check_not_locked(user: User, settings: Settings, now: datetime) -> None:
    """A lock that has run out is cleared here, so the user gets a fresh set of attempts."""
    if user.locked_until is None:
        return
    if user.locked_until <= now:
        user.locked_until = None
        user.failed_logins = 0
        return
    local = user.locked_until.astimezone(settings.tz)
    raise AccountLocked(
        f"account locked after too many failed logins, until "
        f"{local:%Y-%m-%d %H:%M} ({settings.time_zone})",
        locked_until=user.locked_until.isoformat(),
    )


async def _record_failure(
    session: AsyncSession, user: User, settings: Settings, now: datetime
) -> None:
    """Increment in SQL so that concurrent failures cannot overwrite each other's count."""
    count = await session.scalar(
        update(User)
        .where(User.id == user.id)
        .values(failed_logins=User.failed_logins + 1)
        .returning(User.failed_logins)
    )
    user.failed_logins = int(count or 0)
    if user.failed_logins >= settings.login_max_failures:
        user.locked_until = now + timedelta(minutes=settings.login_lockout_minutes)
        log.warning("account locked: username=%r until %s", user.username, user.locked_until)
    await session.commit()


async def _record_success(
    session: AsyncSession, user: User, password: str, passwords: Passwords
) -> None:
    user.failed_logins = 0
    user.locked_until = None
    if passwords.needs_rehash(user.password_hash):
        user.password_hash = await passwords.hash(password)
    await session.commit()


def _log_failure(username: str, client_ip: str, reason: str) -> None:
    log.warning("login failed: username=%r ip=%s reason=%s", username, client_ip, reason)


# --- sessions ----------------------------------------------------------------------------


async def open_session(
    session: AsyncSession,
    user: User,
    kind: AuthKind,
    *,
    client_ip: str | None,
    user_agent: str | None,
    settings: Settings,
    now: datetime | None = None,
) -> tuple[str, AuthSession]:
    """Start a session; the token is returned once and only its hash is stored."""
    now = now or utcnow()
    token = secrets.token_urlsafe(32)
    auth = AuthSession(
        token_hash=hash_token(token),
        user_id=user.id,
        kind=kind,
        csrf_token=secrets.token_urlsafe(32) if kind == "cookie" else None,
        created_at=now,
        expires_at=now + timedelta(hours=settings.session_hours),
        client_ip=client_ip[:64] if client_ip else None,
        user_agent=user_agent[:256] if user_agent else None,
    )
    session.add(auth)
    await session.commit()
    return token, auth


async def resolve(
    session: AsyncSession,
    token: str,
    now: datetime | None = None,
    cache: PrincipalCache | None = None,
) -> Principal:
    """The principal behind a token; any doubt (unknown, expired, revoked, inactive) is a 401.

    With ``cache``, a session resolved in the last few seconds is not read again (see
    ``callcenter.auth.cache``); failures are never cached.
    """
    read_at = None
    if cache is not None:
        cached = cache.get(hash_token(token))
        if cached is not None:
            return cached
        read_at = cache.now()
    now = now or utcnow()
    principal, expires_at = await _resolve(session, token, now)
    if cache is not None:
        expires_in = (expires_at - now).total_seconds()
        cache.put(principal.session_hash, principal, expires_in, read_at=read_at)
    return principal


async def _resolve(session: AsyncSession, token: str, now: datetime) -> tuple[Principal, datetime]:
    row = (
        await session.execute(
            select(AuthSession, User)
            .join(User, User.id == AuthSession.user_id)
            .where(AuthSession.token_hash == hash_token(token))
        )
    ).first()
    if row is None:
        raise NotAuthenticated("not logged in")
    auth, user = row
    if auth.revoked_at is not None or auth.expires_at <= now or not user.is_active:
        raise NotAuthenticated("session expired or ended; please log in again")
    return _principal(user, auth), auth.expires_at


async def revoke(session: AsyncSession, token_hash: str, now: datetime | None = None) -> None:
    """End one session (logout). Ending an already ended session is not an error."""
    await session.execute(
        update(AuthSession)
        .where(AuthSession.token_hash == token_hash, AuthSession.revoked_at.is_(None))
        .values(revoked_at=now or utcnow())
    )
    await session.commit()


async def _revoke_user_sessions(session: AsyncSession, user_id: int, now: datetime) -> None:
    await session.execute(
        update(AuthSession)
        .where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=now)
    )


def _principal(user: User, auth: AuthSession) -> Principal:
    kind: AuthKind = "cookie" if auth.kind == "cookie" else "bearer"
    return Principal(
        user_id=user.id,
        username=user.username,
        display_name=user.display_name,
        role=Role(user.role),
        region_code=user.region_code,
        skills=tuple(user.skills),
        languages=tuple(user.languages),
        auth_kind=kind,
        session_hash=auth.token_hash,
        csrf_token=auth.csrf_token,
    )
