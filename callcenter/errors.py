"""Domain errors with stable ids; the web layer maps them to HTTP in one handler."""

from __future__ import annotations

from typing import Any, Self


class DomainError(Exception):
    """Base for errors a client may see. ``error_id`` is stable; ``message`` is for humans."""

    error_id = "error"
    status_code = 400

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        return {"error_id": self.error_id, "message": self.message, "details": self.details}


class NotAuthenticated(DomainError):
    error_id = "not-authenticated"
    status_code = 401


class PermissionDenied(DomainError):
    error_id = "permission-denied"
    status_code = 403


class NotFound(DomainError):
    """Also used for a resource of another region, so its existence does not leak."""

    error_id = "not-found"
    status_code = 404


class Conflict(DomainError):
    error_id = "conflict"
    status_code = 409


class InvalidInput(DomainError):
    error_id = "invalid-input"
    status_code = 400

    @classmethod
    def at(cls, field_name: str, message: str, *, why: str | None = None) -> Self:
        """A 400 shaped like FastAPI's request-validation ones (``details.fields[].field`` and
        ``.message``), so clients handle one error shape; ``why`` is the field's own message
        when it differs from the headline."""
        return cls(message, fields=[{"field": field_name, "message": why or message}])


class RateLimited(DomainError):
    error_id = "rate-limited"
    status_code = 429


class ServiceUnavailable(DomainError):
    error_id = "service-unavailable"
    status_code = 503
