"""The one place where domain errors become HTTP responses."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from callcenter.errors import DomainError


async def _domain_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
    return JSONResponse(exc.to_dict(), status_code=exc.status_code, headers=headers)


def _field(err: Mapping[str, Any]) -> str:
    """``body.user.name`` → ``user.name``; a JSON syntax error has no field (loc is an offset)."""
    if err.get("type") == "json_invalid":
        return ""
    return ".".join(str(p) for p in err.get("loc", ()) if p != "body")


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    """Bad payloads are a 400 naming each field, never a 500 and never a partial write."""
    assert isinstance(exc, RequestValidationError)
    fields = [{"field": _field(err), "message": err.get("msg", "invalid")} for err in exc.errors()]
    body = {
        "error_id": "invalid-input",
        "message": "invalid request",
        "details": {"fields": fields},
    }
    return JSONResponse(body, status_code=400)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
