"""The auth domain layer, called directly (no HTTP), on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

import argon2
import pytest
from sqlalchemy import func, select

from callcenter.auth import services as auth
from callcenter.auth.passwords import Passwords, WeakPassword, make_passwords
from callcenter.db.base import utcnow
from callcenter.db.models import AuthSession, Role, User
from callcenter.errors import Conflict, InvalidInput, NotAuthenticated, NotFound, RateLimited
from callcenter.ratelimit import MemoryRateLimiter
from callcenter.settings import Settings
from tests.auth.conftest import PASSWORD, AuthEnv

NewName = Callable[[], str]


class CountingPasswords(Passwords):
    """Counts verifications, to show that unknown users cost one verify like everyone else."""

    verifies = 0

    async def verify(self, password_hash: str, password: str) -> bool:
        self.verifies += 1
        return await super().verify(password_hash, password)


async def count_users(env: AuthEnv, username: str) -> int:
    async with env.services.sessionmaker() as session:
        query = select(func.count()).select_from(User).where(User.username == username)
        return int(await session.scalar(query) or 0)


async def login(
    env: AuthEnv,
    settings: Settings,
    username: str,
    password: str = PASSWORD,
    *,
    now: datetime | None = None,
    passwords: Passwords | None = None,
) -> User:
    async with env.services.sessionmaker() as session:
        return await auth.authenticate(
            session,
            MemoryRateLimiter(),
            settings,
            username=username,
            password=password,
            client_ip="10.0.0.1",
            now=now,
            passwords=passwords or env.passwords,
        )


# --- create_user / list_users --------------------------------------------------------------


async def test_create_user_stores_an_argon2id_hash_only(
    env: AuthEnv, new_username: NewName
) -> None:
    name = new_username()
    async with env.services.sessionmaker() as session:
        user = await auth.create_user(
            session,
            username=name,
            password=PASSWORD,
            role="supervisor",
            region_code="330400",
            skills=["labor"],
            languages=["zh", "wuu"],
            passwords=env.passwords,
        )
    stored = await env.user(name)
    assert stored.id == user.id
    assert stored.password_hash.startswith("$argon2id$")
    assert PASSWORD not in stored.password_hash
    assert (stored.role, stored.region_code) == ("supervisor", "330400")
    assert (stored.skills, stored.languages) == (["labor"], ["zh", "wuu"])
    assert stored.failed_logins == 0 and stored.is_active


@pytest.mark.parametrize("username", ["ab", "x" * 65, "zhang san", "张三", "a/b", "bob\n", ""])
async def test_given_a_bad_username_then_invalid_input(env: AuthEnv, username: str) -> None:
    async with env.services.sessionmaker() as session:
        with pytest.raises(InvalidInput, match="3-64 characters"):
            await auth.create_user(
                session, username=username, password=PASSWORD, role=Role.AGENT,
                region_code="330400", passwords=env.passwords,
            )  # fmt: skip
    assert await count_users(env, username) == 0


@pytest.mark.parametrize(
    ("field", "value", "error", "message"),
    [
        ("region_code", "990000", InvalidInput, "unknown region '990000'"),
        ("role", "root", InvalidInput, "unknown role 'root'"),
        ("password", "1234567890123", WeakPassword, "digits only"),
    ],
)
async def test_given_bad_input_then_no_user_is_written(
    env: AuthEnv, new_username: NewName, field: str, value: str, error: type, message: str
) -> None:
    name = new_username()
    kwargs: dict[str, str] = {"password": PASSWORD, "role": "agent", "region_code": "330400"}
    kwargs[field] = value
    async with env.services.sessionmaker() as session:
        with pytest.raises(error, match=message):
            await auth.create_user(session, username=name, passwords=env.passwords, **kwargs)
    assert await count_users(env, name) == 0


async def test_given_an_existing_name_in_any_case_then_conflict(
    env: AuthEnv, new_username: NewName
) -> None:
    name = new_username()
    await env.add_user(name)
    for taken in (name, name.upper()):
        with pytest.raises(Conflict, match=f"user {taken} already exists"):
            await env.add_user(taken)
    assert await count_users(env, name.upper()) == 0


async def test_list_users_by_region_prefix(env: AuthEnv, new_username: NewName) -> None:
    names = {code: new_username() for code in ("330000", "330400", "330100")}
    for code, name in names.items():
        await env.add_user(name, region_code=code)
    async with env.services.sessionmaker() as session:
        jiaxing = {u.username for u in await auth.list_users(session, "3304")}
        zhejiang = {u.username for u in await auth.list_users(session, "33")}
        everyone = {u.username for u in await auth.list_users(session)}
    mine = set(names.values())
    assert jiaxing & mine == {names["330400"]}
    assert zhejiang & mine == mine
    assert everyone & mine == mine


# --- authenticate --------------------------------------------------------------------------


async def test_lockout_after_n_failures_then_unlock_after_the_lockout(
    env: AuthEnv, make_settings: Callable[..., Settings], new_username: NewName
) -> None:
    settings = make_settings(login_max_failures=3, login_lockout_minutes=15)
    name = new_username()
    await env.add_user(name)
    t0 = utcnow()
    for _ in range(3):
        with pytest.raises(NotAuthenticated):
            await login(env, settings, name, "wrong password!", now=t0)
    locked = await env.user(name)
    assert locked.failed_logins == 3
    assert locked.locked_until == t0 + timedelta(minutes=15)
    with pytest.raises(auth.AccountLocked) as info:
        await login(env, settings, name, now=t0 + timedelta(minutes=14))
    assert info.value.status_code == 423
    local = (t0 + timedelta(minutes=15)).astimezone(settings.tz)
    assert f"until {local:%Y-%m-%d %H:%M} (Asia/Shanghai)" in info.value.message
    user = await login(env, settings, name, now=t0 + timedelta(minutes=15, seconds=1))
    assert user.username == name
    assert ((await env.user(name)).failed_logins, (await env.user(name)).locked_until) == (0, None)


async def test_given_an_expired_lock_then_the_counter_starts_over(
    env: AuthEnv, make_settings: Callable[..., Settings], new_username: NewName
) -> None:
    settings = make_settings(login_max_failures=2, login_lockout_minutes=1)
    name = new_username()
    await env.add_user(name)
    t0 = utcnow()
    for _ in range(2):
        with pytest.raises(NotAuthenticated):
            await login(env, settings, name, "wrong password!", now=t0)
    with pytest.raises(NotAuthenticated):
        await login(env, settings, name, "wrong password!", now=t0 + timedelta(minutes=2))
    after = await env.user(name)
    assert (after.failed_logins, after.locked_until) == (1, None)


async def test_given_a_success_then_the_failure_count_is_reset(
    env: AuthEnv, make_settings: Callable[..., Settings], new_username: NewName
) -> None:
    settings = make_settings(login_max_failures=3)
    name = new_username()
    await env.add_user(name)
    for _ in range(2):
        with pytest.raises(NotAuthenticated):
            await login(env, settings, name, "wrong password!")
    assert (await env.user(name)).failed_logins == 2
    await login(env, settings, name)
    assert (await env.user(name)).failed_logins == 0


async def test_unknown_and_inactive_users_cost_one_verify_and_get_the_same_error(
    sqlite_env: AuthEnv, make_settings: Callable[..., Settings], new_username: NewName
) -> None:
    env, settings = sqlite_env, make_settings()
    counting = CountingPasswords(argon2.PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
    name = new_username()
    await env.add_user(name)
    async with env.services.sessionmaker() as session:
        user = await session.scalar(select(User).where(User.username == name))
        assert user is not None
        user.is_active = False
        await session.commit()
    messages = []
    for username in ("nobody-here", name):
        with pytest.raises(NotAuthenticated) as info:
            await login(env, settings, username, PASSWORD, passwords=counting)
        messages.append(info.value.message)
    assert messages == ["invalid username or password"] * 2
    assert counting.verifies == 2


async def test_rate_limit_per_username_and_per_ip(
    sqlite_env: AuthEnv,
    make_settings: Callable[..., Settings],
    fresh_rate_window: Callable[[], object],
) -> None:
    settings = make_settings(login_rate_per_minute=2)
    limiter = MemoryRateLimiter()
    await fresh_rate_window()  # type: ignore[misc]

    async def attempt(username: str, ip: str) -> None:
        async with sqlite_env.services.sessionmaker() as session:
            await auth.authenticate(
                session, limiter, settings, username=username, password="x" * 10,
                client_ip=ip, passwords=sqlite_env.passwords,
            )  # fmt: skip

    for ip in ("10.0.0.1", "10.0.0.2"):
        with pytest.raises(NotAuthenticated):
            await attempt("zhangsan", ip)
    with pytest.raises(RateLimited):  # same user, third IP: the per-user limit
        await attempt("zhangsan", "10.0.0.3")
    with pytest.raises(NotAuthenticated):
        await attempt("lisi", "10.0.0.4")
    with pytest.raises(NotAuthenticated):
        await attempt("wangwu", "10.0.0.4")
    with pytest.raises(RateLimited):  # other user, same IP: the per-IP limit
        await attempt("zhaoliu", "10.0.0.4")


async def test_given_weaker_stored_parameters_then_login_rehashes(
    env: AuthEnv, make_settings: Callable[..., Settings], new_username: NewName
) -> None:
    name = new_username()
    await env.add_user(name)
    old_hash = (await env.user(name)).password_hash
    stronger = make_passwords(time_cost=2, memory_cost=16, parallelism=1)
    await login(env, make_settings(), name, passwords=stronger)
    new_hash = (await env.user(name)).password_hash
    assert new_hash != old_hash and not stronger.needs_rehash(new_hash)
    await login(env, make_settings(), name, passwords=stronger)
    assert (await env.user(name)).password_hash == new_hash


async def test_logs_name_the_user_and_ip_but_never_the_password(
    sqlite_env: AuthEnv,
    make_settings: Callable[..., Settings],
    new_username: NewName,
    caplog: pytest.LogCaptureFixture,
) -> None:
    name = new_username()
    await sqlite_env.add_user(name)
    caplog.set_level(logging.INFO, logger="callcenter.auth")
    with pytest.raises(NotAuthenticated):
        await login(sqlite_env, make_settings(), name, "a wrong secret")
    user = await login(sqlite_env, make_settings(), name)
    async with sqlite_env.services.sessionmaker() as session:
        token, _ = await auth.open_session(
            session, user, "bearer", client_ip="10.0.0.1", user_agent=None,
            settings=make_settings(),
        )  # fmt: skip
        await auth.resolve(session, token)
    assert "login failed" in caplog.text and "login ok" in caplog.text
    assert name in caplog.text and "10.0.0.1" in caplog.text
    for secret in ("a wrong secret", PASSWORD, token):
        assert secret not in caplog.text


# --- sessions ------------------------------------------------------------------------------


async def test_open_session_stores_only_the_token_hash(
    env: AuthEnv, make_settings: Callable[..., Settings], new_username: NewName
) -> None:
    settings = make_settings(session_hours=8)
    name = new_username()
    user = await env.add_user(name)
    now = utcnow()
    async with env.services.sessionmaker() as session:
        cookie_token, cookie = await auth.open_session(
            session, user, "cookie", client_ip="10.0.0.1", user_agent="x" * 1000,
            settings=settings, now=now,
        )  # fmt: skip
        bearer_token, bearer = await auth.open_session(
            session, user, "bearer", client_ip=None, user_agent=None, settings=settings, now=now
        )
    rows = {row.token_hash: row for row in await env.sessions_of(user.id)}
    assert set(rows) == {
        hashlib.sha256(t.encode()).hexdigest() for t in (cookie_token, bearer_token)
    }
    assert cookie_token not in rows and len(cookie_token) >= 43
    row = rows[cookie.token_hash]
    assert row.expires_at == now + timedelta(hours=8)
    assert row.csrf_token is not None and len(row.csrf_token) >= 43
    assert row.user_agent == "x" * 256
    assert rows[bearer.token_hash].csrf_token is None


async def test_resolve_gives_the_principal(
    env: AuthEnv, make_settings: Callable[..., Settings], new_username: NewName
) -> None:
    name = new_username()
    user = await env.add_user(name, role=Role.ADMIN, region_code="330000")
    async with env.services.sessionmaker() as session:
        token, row = await auth.open_session(
            session, user, "cookie", client_ip=None, user_agent=None, settings=make_settings()
        )
        principal = await auth.resolve(session, token)
    assert (principal.user_id, principal.username, principal.role) == (user.id, name, Role.ADMIN)
    assert (principal.region_code, principal.auth_kind) == ("330000", "cookie")
    assert principal.session_hash == row.token_hash and principal.csrf_token == row.csrf_token
    assert principal.display_name == "测试坐席"


async def test_resolve_refuses_unknown_expired_revoked_and_inactive(
    env: AuthEnv, make_settings: Callable[..., Settings], new_username: NewName
) -> None:
    settings = make_settings(session_hours=1)
    user = await env.add_user(new_username())
    async with env.services.sessionmaker() as session:
        token, row = await auth.open_session(
            session, user, "bearer", client_ip=None, user_agent=None, settings=settings
        )
        await auth.resolve(session, token, now=row.expires_at - timedelta(seconds=1))
        for bad_token, when in ((token + "x", None), (token, row.expires_at)):
            with pytest.raises(NotAuthenticated):
                await auth.resolve(session, bad_token, now=when)
        await auth.revoke(session, row.token_hash)
        with pytest.raises(NotAuthenticated, match="session expired or ended"):
            await auth.resolve(session, token)
        token2, _ = await auth.open_session(
            session, user, "bearer", client_ip=None, user_agent=None, settings=settings
        )
        stored = await session.get(User, user.id)
        assert stored is not None
        stored.is_active = False
        await session.commit()
        with pytest.raises(NotAuthenticated):
            await auth.resolve(session, token2)


async def test_set_password_revokes_sessions_and_clears_lockout(
    env: AuthEnv, make_settings: Callable[..., Settings], new_username: NewName
) -> None:
    settings = make_settings(login_max_failures=1)
    name = new_username()
    user = await env.add_user(name)
    async with env.services.sessionmaker() as session:
        token, _ = await auth.open_session(
            session, user, "bearer", client_ip=None, user_agent=None, settings=settings
        )
    with pytest.raises(NotAuthenticated):
        await login(env, settings, name, "wrong password!")
    async with env.services.sessionmaker() as session:
        await auth.set_password(session, name, "a brand new secret", passwords=env.passwords)
        with pytest.raises(NotAuthenticated):
            await auth.resolve(session, token)
    assert all(s.revoked_at is not None for s in await env.sessions_of(user.id))
    stored = await env.user(name)
    assert (stored.failed_logins, stored.locked_until) == (0, None)
    with pytest.raises(NotAuthenticated):
        await login(env, make_settings(), name, PASSWORD)
    await login(env, make_settings(), name, "a brand new secret")


async def test_set_password_refuses_unknown_users_and_weak_passwords(
    env: AuthEnv, new_username: NewName
) -> None:
    name = new_username()
    await env.add_user(name)
    before = (await env.user(name)).password_hash
    async with env.services.sessionmaker() as session:
        with pytest.raises(NotFound):
            await auth.set_password(session, "nobody-here", "a brand new secret")
        with pytest.raises(WeakPassword, match="same as the username"):
            await auth.set_password(session, name, name.upper())
    assert (await env.user(name)).password_hash == before


async def test_revoke_is_idempotent(
    env: AuthEnv, new_username: NewName, make_settings: Callable[..., Settings]
) -> None:
    user = await env.add_user(new_username())
    async with env.services.sessionmaker() as session:
        _, row = await auth.open_session(
            session, user, "bearer", client_ip=None, user_agent=None, settings=make_settings()
        )
        first = utcnow()
        await auth.revoke(session, row.token_hash, now=first)
        await auth.revoke(session, row.token_hash, now=first + timedelta(hours=1))
    stored = await env.sessions_of(user.id)
    assert [s.revoked_at for s in stored] == [first]
    assert isinstance(stored[0], AuthSession)
