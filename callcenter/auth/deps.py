"""The dependencies every API uses to know who is calling: ``CurrentUser``, ``require_roles``.

A bearer token (``Authorization: Bearer ...``) is tried first, then the ``cc_session`` cookie.
A browser sends the cookie on its own, even on requests forged by another site, so cookie
sessions must also prove knowledge of their CSRF token on every unsafe request.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from callcenter.auth.cache import PrincipalCache
from callcenter.auth.passwords import Passwords, default_passwords
from callcenter.auth.principal import AuthKind, Principal
from callcenter.auth.services import CsrfFailed, resolve
from callcenter.db.models import Role
from callcenter.errors import NotAuthenticated, PermissionDenied
from callcenter.services import Services
from callcenter.web.deps import SessionDep

COOKIE_NAME = "cc_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})

_bearer = HTTPBearer(auto_error=False, description="token from POST /api/auth/login (api)")
_cookie = APIKeyCookie(name=COOKIE_NAME, auto_error=False, description="browser session")

BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
CookieDep = Annotated[str | None, Depends(_cookie)]


def get_passwords() -> Passwords:
    """The password hasher; tests override this dependency with a cheap one."""
    return default_passwords()


PasswordsDep = Annotated[Passwords, Depends(get_passwords)]


async def get_principal(
    request: Request, session: SessionDep, bearer: BearerDep, cookie: CookieDep
) -> Principal:
    """Resolve the caller or raise 401; cookie sessions also pass the CSRF check."""
    cache = principal_cache(request)
    if bearer is not None:
        return await _resolve_as(session, bearer.credentials, "bearer", cache)
    if "authorization" in request.headers:
        raise NotAuthenticated("the Authorization header must be 'Bearer <token>'")
    if cookie is None:
        raise NotAuthenticated("not logged in")
    principal = await _resolve_as(session, cookie, "cookie", cache)
    if request.method not in SAFE_METHODS:
        check_csrf(principal, request.headers.get(CSRF_HEADER))
    return principal


def principal_cache(request: Request) -> PrincipalCache:
    """The app's cache of resolved sessions: one per app, made on first use with the TTL of
    ``CALLCENTER_AUTH_CACHE_SECONDS`` and following the bus's revocation notices (see
    ``callcenter.auth.cache``); a cache put in ``app.state.principal_cache`` is used as is."""
    cache: PrincipalCache | None = getattr(request.app.state, "principal_cache", None)
    if cache is None:
        services: Services = request.app.state.services
        cache = PrincipalCache(ttl_s=services.settings.auth_cache_seconds)
        cache.follow(services.bus)
        request.app.state.principal_cache = cache
    return cache


async def _resolve_as(
    session: AsyncSession, token: str, transport: AuthKind, cache: PrincipalCache
) -> Principal:
    """A cookie token replayed as a bearer token would skip the CSRF check: refuse it."""
    principal = await resolve(session, token, cache=cache)
    if principal.auth_kind != transport:
        raise NotAuthenticated(f"this token is not valid as a {transport} credential")
    return principal


def check_csrf(principal: Principal, header: str | None) -> None:
    expected = principal.csrf_token
    if not expected or header is None or not hmac.compare_digest(header, expected):
        raise CsrfFailed(f"missing or wrong {CSRF_HEADER} header")


CurrentUser = Annotated[Principal, Depends(get_principal)]


def require_roles(*roles: Role) -> Callable[[Principal], Principal]:
    """A dependency that lets only the given roles through (403 otherwise)."""
    if not roles:
        raise ValueError("require_roles() needs at least one role")
    allowed = frozenset(roles)
    names = ", ".join(sorted(role.value for role in allowed))

    def dependency(principal: CurrentUser) -> Principal:
        if principal.role not in allowed:
            raise PermissionDenied(f"requires role: {names}", required=sorted(allowed))
        return principal

    return dependency


AdminUser = Annotated[Principal, Depends(require_roles(Role.ADMIN))]
