"""``/api/auth`` over HTTP: cookie and bearer logins, CSRF, lockout, rate limit, bad payloads."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import Depends
from sqlalchemy import update

from callcenter.auth import services as auth
from callcenter.auth.deps import AdminUser, CurrentUser, require_roles
from callcenter.auth.principal import Principal
from callcenter.db.base import utcnow
from callcenter.db.models import AuthSession, Role, User
from tests.auth.conftest import PASSWORD, AuthEnv, OpenEnv

NewName = Callable[[], str]


def set_cookie_header(response: httpx.Response) -> str:
    headers = response.headers.get_list("set-cookie")
    assert len(headers) == 1, headers
    return headers[0]


async def browser_login(env: AuthEnv, name: str) -> tuple[str, str]:
    """Log in as a browser; return (session token from the cookie, csrf token)."""
    response = await env.login(name)
    assert response.status_code == 200, response.text
    return response.cookies["cc_session"], response.json()["csrf_token"]


async def expire_sessions(env: AuthEnv, user_id: int) -> None:
    async with env.services.sessionmaker() as session:
        await session.execute(
            update(AuthSession)
            .where(AuthSession.user_id == user_id)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
        await session.commit()


# --- login ---------------------------------------------------------------------------------


async def test_browser_login_sets_a_hardened_cookie(env: AuthEnv, new_username: NewName) -> None:
    name = new_username()
    await env.add_user(name, role=Role.SUPERVISOR)
    response = await env.login(name)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"user", "csrf_token", "expires_at"}
    assert body["user"]["username"] == name and body["user"]["role"] == "supervisor"
    assert "password_hash" not in body["user"]
    cookie = set_cookie_header(response)
    assert cookie.startswith("cc_session=")
    for flag in ("HttpOnly", "SameSite=lax", "Path=/", "Max-Age=43200"):
        assert flag in cookie
    assert "Secure" not in cookie  # embedded mode serves plain http on localhost
    assert (await env.user(name)).password_hash.startswith("$argon2id$")

    me = await env.client.get("/api/auth/me")
    assert me.status_code == 200
    assert me.json() | {"user_id": 0} == {
        "user_id": 0,
        "username": name,
        "display_name": "测试坐席",
        "role": "supervisor",
        "region_code": "330400",
        "region_prefix": "3304",
        "skills": [],
        "languages": [],
        "auth_kind": "cookie",
        "csrf_token": body["csrf_token"],
    }


async def test_in_production_the_cookie_is_secure(
    open_env: OpenEnv, sqlite_url: str, new_username: NewName
) -> None:
    async with open_env(sqlite_url, mode="production", secret_key="s" * 40) as env:
        name = new_username()
        await env.add_user(name)
        response = await env.login(name)
    assert response.status_code == 200
    assert "Secure" in set_cookie_header(response)


async def test_wrong_password_and_unknown_user_look_the_same(
    env: AuthEnv, new_username: NewName
) -> None:
    name = new_username()
    await env.add_user(name)
    wrong = await env.login(name, "not the password")
    unknown = await env.login(new_username())
    assert wrong.status_code == unknown.status_code == 401
    assert (
        wrong.json()
        == unknown.json()
        == {
            "error_id": "not-authenticated",
            "message": "invalid username or password",
            "details": {},
        }
    )
    assert wrong.headers["www-authenticate"] == "Bearer"
    assert "set-cookie" not in wrong.headers
    assert (await env.user(name)).failed_logins == 1


async def test_lockout_then_unlock_when_the_time_has_passed(
    open_env: OpenEnv, db_url: str, new_username: NewName
) -> None:
    async with open_env(db_url, login_max_failures=3) as env:
        name = new_username()
        user = await env.add_user(name)
        for _ in range(3):
            assert (await env.login(name, "not the password")).status_code == 401
        locked = await env.login(name)  # even the right password
        assert locked.status_code == 423
        assert locked.json()["error_id"] == "account-locked"
        assert "Asia/Shanghai" in locked.json()["message"]
        async with env.services.sessionmaker() as session:
            await session.execute(
                update(User)
                .where(User.id == user.id)
                .values(locked_until=utcnow() - timedelta(seconds=1))
            )
            await session.commit()
        assert (await env.login(name)).status_code == 200
        assert (await env.user(name)).failed_logins == 0


async def test_too_many_attempts_get_429_and_do_not_count_as_failures(
    open_env: OpenEnv,
    sqlite_url: str,
    new_username: NewName,
    fresh_rate_window: Callable[[], Awaitable[None]],
) -> None:
    async with open_env(sqlite_url, login_rate_per_minute=2) as env:
        name = new_username()
        await env.add_user(name)
        await fresh_rate_window()
        statuses = [(await env.login(name, "not the password")).status_code for _ in range(3)]
        refused = await env.login(name)
        assert statuses == [401, 401, 429]
        assert refused.status_code == 429
        assert refused.json()["error_id"] == "rate-limited"
        assert (await env.user(name)).failed_logins == 2


# --- CSRF, logout, bearer --------------------------------------------------------------------


async def test_cookie_logout_needs_the_csrf_header(env: AuthEnv, new_username: NewName) -> None:
    name = new_username()
    user = await env.add_user(name)
    token, csrf = await browser_login(env, name)
    for headers in ({}, {"X-CSRF-Token": csrf[:-1] + "?"}, {"X-CSRF-Token": ""}):
        refused = await env.client.post("/api/auth/logout", headers=headers)
        assert refused.status_code == 403
        assert refused.json()["error_id"] == "csrf-failed"
    assert (await env.client.get("/api/auth/me")).status_code == 200  # still logged in

    done = await env.client.post("/api/auth/logout", headers={"X-CSRF-Token": csrf})
    assert done.status_code == 200
    assert done.json() == {"status": "logged-out"}
    cleared = set_cookie_header(done)
    assert cleared.startswith('cc_session=""') and "Max-Age=0" in cleared
    assert [s.revoked_at is not None for s in await env.sessions_of(user.id)] == [True]
    env.client.cookies.set("cc_session", token)  # a copy of the cookie kept by an attacker
    assert (await env.client.get("/api/auth/me")).status_code == 401


async def test_bearer_flow_needs_no_csrf_and_sets_no_cookie(
    env: AuthEnv, new_username: NewName
) -> None:
    name = new_username()
    await env.add_user(name, role=Role.ADMIN, region_code="330000")
    response = await env.login(name, client="api")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_at", "user"}
    assert body["token_type"] == "bearer"
    assert "set-cookie" not in response.headers
    headers = {"Authorization": f"Bearer {body['access_token']}"}

    me = await env.client.get("/api/auth/me", headers=headers)
    assert me.status_code == 200
    assert (me.json()["auth_kind"], me.json()["csrf_token"]) == ("bearer", None)
    assert me.json()["region_prefix"] == "33"
    assert (await env.client.post("/api/auth/logout", headers=headers)).status_code == 200
    assert (await env.client.get("/api/auth/me", headers=headers)).status_code == 401


async def test_a_token_only_works_on_its_own_transport(
    sqlite_env: AuthEnv, new_username: NewName
) -> None:
    env = sqlite_env
    name = new_username()
    await env.add_user(name)
    cookie_token, _ = await browser_login(env, name)
    env.client.cookies.clear()
    bearer_token = (await env.login(name, client="api")).json()["access_token"]

    as_bearer = await env.client.get(
        "/api/auth/me", headers={"Authorization": f"Bearer {cookie_token}"}
    )
    assert as_bearer.status_code == 401  # else a cookie token could skip the CSRF check
    env.client.cookies.set("cc_session", bearer_token)
    assert (await env.client.get("/api/auth/me")).status_code == 401


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer not-a-real-token"}],
)
async def test_without_valid_credentials_then_401(
    sqlite_env: AuthEnv, headers: dict[str, str]
) -> None:
    response = await sqlite_env.client.get("/api/auth/me", headers=headers)
    assert response.status_code == 401
    assert response.json()["error_id"] == "not-authenticated"
    assert response.headers["www-authenticate"] == "Bearer"


async def test_an_expired_session_is_refused(env: AuthEnv, new_username: NewName) -> None:
    name = new_username()
    user = await env.add_user(name)
    await browser_login(env, name)
    assert (await env.client.get("/api/auth/me")).status_code == 200
    await expire_sessions(env, user.id)
    # Written behind the app's back, the expiry is seen once the session cache lets go of the
    # entry (CALLCENTER_AUTH_CACHE_SECONDS at most, see test_principal_cache); here: now.
    env.app.state.principal_cache.discard_user(user.id)
    response = await env.client.get("/api/auth/me")
    assert response.status_code == 401
    assert "expired" in response.json()["message"]


async def test_set_password_logs_out_every_session(env: AuthEnv, new_username: NewName) -> None:
    name = new_username()
    await env.add_user(name)
    await browser_login(env, name)
    bearer = (await env.login(name, client="api")).json()["access_token"]
    async with env.services.sessionmaker() as session:
        await auth.set_password(session, name, "a brand new secret", passwords=env.passwords)
    assert (await env.client.get("/api/auth/me")).status_code == 401
    response = await env.client.get("/api/auth/me", headers={"Authorization": f"Bearer {bearer}"})
    assert response.status_code == 401


# --- bad payloads ----------------------------------------------------------------------------

GOOD = {"username": "USER", "password": PASSWORD}


@pytest.mark.parametrize(
    ("request_kwargs", "field", "message"),
    [
        ({"json": {"username": "USER"}}, "password", "Field required"),
        ({"json": {"username": 123, "password": PASSWORD}}, "username", "valid string"),
        ({"json": {"username": "USER", "password": ["x"]}}, "password", "valid string"),
        ({"json": {"username": "x" * 2000, "password": PASSWORD}}, "username", "at most 64"),
        ({"json": {"username": "USER", "password": "x" * 1025}}, "password", "at most 1024"),
        ({"json": GOOD | {"client": "mobile"}}, "client", "'browser' or 'api'"),
        ({"json": GOOD | {"remember_me": True}}, "remember_me", "not permitted"),
        ({"json": ["USER", PASSWORD]}, "", "valid dictionary"),
        ({"data": GOOD}, "", "valid dictionary"),  # a form post: JSON only
        ({"content": b"{not json", "headers": {"Content-Type": "application/json"}}, None, "JSON"),
        ({}, "", "Field required"),
    ],
)
async def test_bad_payloads_are_400_with_field_errors_and_change_nothing(
    sqlite_env: AuthEnv,
    new_username: NewName,
    request_kwargs: dict[str, Any],
    field: str | None,
    message: str,
) -> None:
    env = sqlite_env
    name = new_username()
    user = await env.add_user(name)
    kwargs = _with_username(request_kwargs, name)
    response = await env.client.post("/api/auth/login", **kwargs)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error_id"] == "invalid-input"
    fields = body["details"]["fields"]
    assert any(field in (None, f["field"]) and message in f["message"] for f in fields), fields
    assert (await env.user(name)).failed_logins == 0
    assert await env.sessions_of(user.id) == []
    assert "set-cookie" not in response.headers


def _with_username(value: Any, name: str) -> Any:
    """Put the test's real username where the case says USER."""
    if value == "USER":
        return name
    if isinstance(value, dict):
        return {k: _with_username(v, name) for k, v in value.items()}
    if isinstance(value, list):
        return [_with_username(v, name) for v in value]
    return value


# --- CurrentUser / require_roles used by other routes ---------------------------------------


async def test_require_roles_guards_routes(sqlite_env: AuthEnv, new_username: NewName) -> None:
    env = sqlite_env

    async def admin_only(principal: AdminUser) -> dict[str, str]:
        return {"hello": principal.username}

    supervisors = require_roles(Role.SUPERVISOR, Role.ADMIN)

    async def supervisors_only(principal: Principal = Depends(supervisors)) -> dict[str, str]:  # noqa: B008
        return {"hello": principal.username}

    env.app.add_api_route("/test/admin", admin_only, methods=["GET"])
    env.app.add_api_route("/test/supervisors", supervisors_only, methods=["GET"])
    agent, admin = new_username(), new_username()
    await env.add_user(agent)
    await env.add_user(admin, role=Role.ADMIN)

    await browser_login(env, agent)
    refused = await env.client.get("/test/admin")
    assert refused.status_code == 403
    assert refused.json()["error_id"] == "permission-denied"
    assert refused.json()["message"] == "requires role: admin"
    refused = await env.client.get("/test/supervisors")
    assert refused.json()["message"] == "requires role: admin, supervisor"

    env.client.cookies.clear()
    await browser_login(env, admin)
    assert (await env.client.get("/test/admin")).json() == {"hello": admin}
    assert (await env.client.get("/test/supervisors")).json() == {"hello": admin}


def test_require_roles_needs_a_role() -> None:
    with pytest.raises(ValueError, match="at least one role"):
        require_roles()


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
async def test_every_unsafe_method_needs_csrf_for_cookies(
    sqlite_env: AuthEnv, new_username: NewName, method: str
) -> None:
    env = sqlite_env

    async def change(principal: CurrentUser) -> dict[str, str]:
        return {"by": principal.username}

    env.app.add_api_route("/test/thing", change, methods=[method])
    name = new_username()
    await env.add_user(name)
    _, csrf = await browser_login(env, name)
    refused = await env.client.request(method, "/test/thing")
    assert (refused.status_code, refused.json()["error_id"]) == (403, "csrf-failed")
    done = await env.client.request(method, "/test/thing", headers={"X-CSRF-Token": csrf})
    assert done.json() == {"by": name}
