"""All configuration in one place, read from ``CALLCENTER_*`` environment variables.

Errors are turned into one line naming the variable (``ConfigError``) so that the CLI can stop
with a readable message instead of a pydantic traceback.
"""

from __future__ import annotations

import re
import zoneinfo
from datetime import time as dt_time
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "CALLCENTER_"
DEV_SECRET = "dev-insecure-secret-change-me"  # noqa: S105 - the refused default, not a secret


class ConfigError(Exception):
    """A setting is missing or invalid; ``str()`` is one line naming the variable."""


class Mode(StrEnum):
    """``embedded`` is the laptop/dev mode; ``production`` refuses insecure defaults."""

    EMBEDDED = "embedded"
    PRODUCTION = "production"


def _host_port(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    return host, int(port)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="ignore", frozen=True, validate_default=True
    )

    mode: Mode = Mode.EMBEDDED
    database_url: str = "sqlite+aiosqlite:///./data/callcenter.db"
    redis_url: str | None = None
    redis_prefix: str = "cc"
    ami_host: str | None = None
    ami_port: Annotated[int, Field(ge=1, le=65535)] = 5038
    ami_username: str | None = None
    ami_secret: SecretStr | None = None
    ami_node_name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")] = "pbx1"
    ami_nodes: str | None = None
    """Several Asterisk nodes: ``name=host:port,name2=host2:port`` (same AMI account on each)."""
    fastagi_bind: str = "127.0.0.1:4573"
    fastagi_public: str | None = None
    """HOST:PORT Asterisk connects to for FastAGI when it differs from the bind address."""
    http_host: str = "127.0.0.1"
    http_port: Annotated[int, Field(ge=0, le=65535)] = 8000
    data_dir: Path = Path("./data")
    recordings_dir: Path = Path("./data/recordings")
    vosk_model_path: Path | None = None
    ivr_flow: Path | None = None
    """The IVR flow file (its prompt catalogue beside it); unset: the packaged 12348 flow."""
    speech_max_concurrency: Annotated[int, Field(ge=1, le=64)] = 2
    """Decodes running at once (each uses one CPU core); more requests wait their turn."""
    speech_max_audio_seconds: Annotated[float, Field(gt=0, le=24 * 3600)] = 4 * 3600.0
    """Longer audio is refused with ``SpeechError`` (a hotline call rarely passes 2 hours)."""
    secret_key: SecretStr = SecretStr(DEV_SECRET)
    time_zone: str = "Asia/Shanghai"
    province_code: Annotated[str, Field(pattern=r"^\d{2}0000$")] = "330000"
    log_level: str = "INFO"
    log_json: bool = False
    session_hours: Annotated[int, Field(ge=1, le=24 * 30)] = 12
    login_max_failures: Annotated[int, Field(ge=1, le=100)] = 5
    login_lockout_minutes: Annotated[int, Field(ge=1, le=24 * 60)] = 15
    login_rate_per_minute: Annotated[int, Field(ge=1, le=10_000)] = 20
    auth_cache_seconds: Annotated[float, Field(ge=0, le=60)] = 5.0
    """How long a resolved session is reused without reading it again (0: every request reads
    it); logout and password changes evict it at once, in every worker sharing the bus."""
    metrics_token: SecretStr | None = None
    max_body_bytes: Annotated[int, Field(ge=1024, le=1024**3)] = 16 * 1024**2
    """Largest request body accepted (413 beyond): a full batch of 200 tickets with the
    longest content and answer fits; anything bigger is refused before it is buffered."""
    # Follow-up desk (回访/回拨, ticketing.followup) and repeat calls (ticketing.repeats).
    followup_consultation_share: Annotated[float, Field(ge=0, le=1)] = 0.30
    """Share of non-mandatory closed tickets (consultations…) that get a return visit."""
    followup_calling_opens: dt_time = dt_time(8, 0)
    followup_calling_closes: dt_time = dt_time(21, 0)
    """Calling hours (local time): nobody is called back outside them."""
    followup_max_attempts: Annotated[int, Field(ge=1, le=10)] = 3
    followup_retry_minutes: Annotated[int, Field(ge=5, le=24 * 60)] = 120
    repeat_window_days: Annotated[int, Field(ge=0, le=365)] = 30
    """A ticket closed this recently still catches repeat calls (0: no linking)."""
    call_tickets: bool = True
    """Create a ticket for every call a seat answers (ticketing.from_calls)."""
    # Assignment rules and SLA supervision (ticketing.assignment, ticketing.supervision).
    assignment_rules: Path | None = None
    """The assignment rule file; unset: the packaged ``ticketing/data/assignment.default.yaml``."""
    sla_scan_minutes: Annotated[int, Field(ge=1, le=60)] = 1
    """How often the SLA scanner issues yellow/red cards (divides an hour for the cron job)."""
    sla_yellow_hours: Annotated[float, Field(gt=0, le=24 * 15)] = 24.0
    """Yellow card at most this much working time before a deadline (and at 25 % left)."""

    @field_validator("sla_scan_minutes")
    @classmethod
    def _divides_hour(cls, value: int) -> int:
        if 60 % value:
            raise ValueError("must divide 60 (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30 or 60)")
        return value

    @field_validator("database_url")
    @classmethod
    def _normalize_db_url(cls, value: str) -> str:
        """Accept the usual spellings and map them onto the async drivers we ship."""
        for plain, async_ in (
            ("postgres://", "postgresql+asyncpg://"),
            ("postgresql://", "postgresql+asyncpg://"),
            ("sqlite:///", "sqlite+aiosqlite:///"),
        ):
            if value.startswith(plain):
                return async_ + value[len(plain) :]
        if not value.startswith(("postgresql+asyncpg://", "sqlite+aiosqlite://")):
            raise ValueError("must be a postgresql:// or sqlite:/// URL")
        return value

    @field_validator("vosk_model_path", mode="before")
    @classmethod
    def _empty_model_path(cls, value: Any) -> Any:
        """An empty variable means unset, not the current directory."""
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @field_validator("ami_nodes")
    @classmethod
    def _check_nodes(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        _parse_nodes(value)
        return value

    @field_validator("fastagi_bind")
    @classmethod
    def _check_bind(cls, value: str) -> str:
        _host_port(value)
        return value

    @field_validator("fastagi_public")
    @classmethod
    def _check_public(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        host, _ = _host_port(value)
        if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?", host):
            raise ValueError(f"expected HOST:PORT with a host name or IPv4 address, got {value!r}")
        return value

    @field_validator("time_zone")
    @classmethod
    def _check_tz(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("log_level")
    @classmethod
    def _check_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return level

    @model_validator(mode="after")
    def _check_consistency(self) -> Settings:
        if (self.ami_host or self.ami_nodes) and not (self.ami_username and self.ami_secret):
            raise ValueError(
                f"{ENV_PREFIX}AMI_USERNAME and {ENV_PREFIX}AMI_SECRET are required "
                f"when {ENV_PREFIX}AMI_HOST or {ENV_PREFIX}AMI_NODES is set"
            )
        if self.followup_calling_opens >= self.followup_calling_closes:
            raise ValueError(
                f"{ENV_PREFIX}FOLLOWUP_CALLING_OPENS must be before "
                f"{ENV_PREFIX}FOLLOWUP_CALLING_CLOSES"
            )
        if self.mode is Mode.PRODUCTION:
            secret = self.secret_key.get_secret_value()
            if secret == DEV_SECRET:
                raise ValueError(
                    f"{ENV_PREFIX}SECRET_KEY: the default secret is refused in production mode"
                )
            if len(secret) < 32:
                raise ValueError(f"{ENV_PREFIX}SECRET_KEY: must be at least 32 characters")
        return self

    @property
    def uses_simulator(self) -> bool:
        """No AMI host configured: the built-in PBX simulator stands in for Asterisk."""
        return self.ami_host is None and self.ami_nodes is None

    @property
    def asterisk_nodes(self) -> list[tuple[str, str, int]]:
        """``(name, host, port)`` of every configured Asterisk node (empty: simulator)."""
        if self.ami_nodes:
            return _parse_nodes(self.ami_nodes)
        if self.ami_host:
            return [(self.ami_node_name, self.ami_host, self.ami_port)]
        return []

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @cached_property
    def tz(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.time_zone)

    @property
    def fastagi_host_port(self) -> tuple[str, int]:
        return _host_port(self.fastagi_bind)


_NODE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def _parse_nodes(value: str) -> list[tuple[str, str, int]]:
    nodes: list[tuple[str, str, int]] = []
    for item in value.split(","):
        name, sep, address = item.strip().partition("=")
        if not sep or not _NODE_NAME.fullmatch(name):
            raise ValueError(f"expected name=host:port[,name=host:port...], got {item.strip()!r}")
        host, port = _host_port(address)
        if any(n == name for n, _, _ in nodes):
            raise ValueError(f"node name {name!r} appears twice")
        nodes.append((name, host, port))
    return nodes


def _one_line(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = [str(part) for part in err.get("loc", ())]
    msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
    if not loc:
        return msg if msg.startswith(ENV_PREFIX) else f"configuration: {msg}"
    var = ENV_PREFIX + loc[0].upper()
    extra = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    return f"{var}: {msg}{extra}"


def load_settings(**overrides: Any) -> Settings:
    """Read the environment (plus ``overrides``); raise ``ConfigError`` with one clear line."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(_one_line(exc)) from None
