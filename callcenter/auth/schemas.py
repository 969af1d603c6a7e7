"""Request and response bodies of ``/api/auth``; no password hash ever leaves the server."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from callcenter.auth.principal import AuthKind, Principal
from callcenter.db.models import Role


class LoginRequest(BaseModel):
    """``browser`` gets an HttpOnly cookie plus a CSRF token; ``api`` gets a bearer token."""

    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)
    client: Literal["browser", "api"] = "browser"


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    username: str
    display_name: str
    role: Role
    region_code: str
    skills: list[str]
    languages: list[str]
    is_active: bool
    created_at: datetime


class BrowserLoginOut(BaseModel):
    """Send ``csrf_token`` back as the ``X-CSRF-Token`` header on every unsafe request."""

    user: UserOut
    csrf_token: str
    expires_at: datetime


class TokenLoginOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth2 scheme name
    expires_at: datetime
    user: UserOut


class MeOut(BaseModel):
    """The caller; ``csrf_token`` lets a reloaded browser page recover its token."""

    user_id: int
    username: str
    display_name: str
    role: Role
    region_code: str
    region_prefix: str
    skills: list[str]
    languages: list[str]
    auth_kind: AuthKind
    csrf_token: str | None

    @classmethod
    def of(cls, principal: Principal) -> MeOut:
        return cls(
            user_id=principal.user_id,
            username=principal.username,
            display_name=principal.display_name,
            role=principal.role,
            region_code=principal.region_code,
            region_prefix=principal.region_prefix,
            skills=list(principal.skills),
            languages=list(principal.languages),
            auth_kind=principal.auth_kind,
            csrf_token=principal.csrf_token,
        )


class LogoutOut(BaseModel):
    status: Literal["logged-out"] = "logged-out"
