"""``/api/auth``: log in (cookie or bearer token), log out, and who am I."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from callcenter.auth import services as auth
from callcenter.auth.cache import announce
from callcenter.auth.deps import COOKIE_NAME, CurrentUser, PasswordsDep, principal_cache
from callcenter.auth.principal import AuthKind
from callcenter.auth.schemas import (
    BrowserLoginOut,
    LoginRequest,
    LogoutOut,
    MeOut,
    TokenLoginOut,
    UserOut,
)
from callcenter.settings import Mode, Settings
from callcenter.web.deps import ServicesDep, SessionDep

router = APIRouter(prefix="/api/auth", tags=["auth"])


@router.post("/login")
async def login(
    body: LoginRequest,
    request: Request,
    response: Response,
    session: SessionDep,
    services: ServicesDep,
    passwords: PasswordsDep,
) -> BrowserLoginOut | TokenLoginOut:
    client_ip = request.client.host if request.client else None
    user = await auth.authenticate(
        session,
        services.rate_limiter,
        services.settings,
        username=body.username,
        password=body.password,
        client_ip=client_ip or "unknown",
        passwords=passwords,
    )
    kind: AuthKind = "cookie" if body.client == "browser" else "bearer"
    token, opened = await auth.open_session(
        session,
        user,
        kind,
        client_ip=client_ip,
        user_agent=request.headers.get("user-agent"),
        settings=services.settings,
    )
    user_out = UserOut.model_validate(user)
    if opened.csrf_token is None:
        return TokenLoginOut(access_token=token, expires_at=opened.expires_at, user=user_out)
    _set_cookie(response, token, services.settings)
    return BrowserLoginOut(
        user=user_out, csrf_token=opened.csrf_token, expires_at=opened.expires_at
    )


@router.post("/logout")
async def logout(
    principal: CurrentUser,
    request: Request,
    response: Response,
    session: SessionDep,
    services: ServicesDep,
) -> LogoutOut:
    await auth.revoke(session, principal.session_hash)
    principal_cache(request).discard(principal.session_hash)  # refused from the next request
    await announce(services.bus, session_hash=principal.session_hash)  # and by other workers
    if principal.auth_kind == "cookie":
        _clear_cookie(response, services.settings)
    return LogoutOut()


@router.get("/me")
async def me(principal: CurrentUser) -> MeOut:
    return MeOut.of(principal)


def _clear_cookie(response: Response, settings: Settings) -> None:
    """Browsers only drop a cookie named with the same attributes it was set with."""
    response.delete_cookie(
        COOKIE_NAME,
        path="/",
        httponly=True,
        samesite="lax",
        secure=settings.mode is Mode.PRODUCTION,
    )


def _set_cookie(response: Response, token: str, settings: Settings) -> None:
    response.set_cookie(
        COOKIE_NAME,
        token,
        max_age=settings.session_hours * 3600,
        path="/",
        httponly=True,
        samesite="lax",
        secure=settings.mode is Mode.PRODUCTION,
    )
