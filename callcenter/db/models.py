"""Core tables: regions, users and their sessions, queues and seats, calls.

Other features (tickets, recordings, IVR) add their own tables through migrations.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from callcenter.db.base import Base, utcnow


class RegionLevel(StrEnum):
    PROVINCE = "province"
    CITY = "city"
    COUNTY = "county"


class Role(StrEnum):
    AGENT = "agent"
    SUPERVISOR = "supervisor"
    FOLLOWUP = "followup"
    ADMIN = "admin"


class QueueKind(StrEnum):
    CITY = "city"
    PROVINCE = "province"
    DUTY = "duty"


class Region(Base):
    """An administrative division with its GB/T 2260 code and long-distance area code."""

    __tablename__ = "regions"
    __table_args__ = (CheckConstraint("level IN ('province', 'city', 'county')", name="level"),)

    code: Mapped[str] = mapped_column(String(6), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    level: Mapped[str] = mapped_column(String(16))
    parent_code: Mapped[str | None] = mapped_column(
        ForeignKey("regions.code", ondelete="RESTRICT"), index=True
    )
    area_code: Mapped[str | None] = mapped_column(String(8))
    name_en: Mapped[str | None] = mapped_column(String(64))


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint("role IN ('agent', 'supervisor', 'followup', 'admin')", name="role"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(64), default="")
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    region_code: Mapped[str] = mapped_column(ForeignKey("regions.code"), index=True)
    skills: Mapped[list[str]] = mapped_column(default=list)
    languages: Mapped[list[str]] = mapped_column(default=list)
    is_active: Mapped[bool] = mapped_column(default=True)
    failed_logins: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    password_changed_at: Mapped[datetime] = mapped_column(default=utcnow)

    region: Mapped[Region] = relationship(lazy="raise")


class AuthSession(Base):
    """A server-side login: a browser cookie session or a bearer token for API clients.

    Only the SHA-256 of the token is stored, so a database leak yields no usable token.
    """

    __tablename__ = "auth_sessions"
    __table_args__ = (CheckConstraint("kind IN ('cookie', 'bearer')", name="kind"),)

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(8))
    csrf_token: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    revoked_at: Mapped[datetime | None]
    client_ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(256))


class Queue(Base):
    """An Asterisk queue: one per city, the provincial centre and the provincial duty queue."""

    __tablename__ = "queues"
    __table_args__ = (CheckConstraint("kind IN ('city', 'province', 'duty')", name="kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    region_code: Mapped[str] = mapped_column(ForeignKey("regions.code"), index=True)
    skills: Mapped[list[str]] = mapped_column(default=list)
    languages: Mapped[list[str]] = mapped_column(default=list)
    strategy: Mapped[str] = mapped_column(String(32), default="rrmemory")
    ring_timeout_s: Mapped[int] = mapped_column(default=15)
    overflow_after_s: Mapped[int | None]


class Seat(Base):
    """A seat (坐席): a phone endpoint in a region, optionally bound to a user."""

    __tablename__ = "seats"

    id: Mapped[int] = mapped_column(primary_key=True)
    extension: Mapped[str] = mapped_column(String(16), unique=True)
    name: Mapped[str] = mapped_column(String(64))
    region_code: Mapped[str] = mapped_column(ForeignKey("regions.code"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    skills: Mapped[list[str]] = mapped_column(default=list)
    languages: Mapped[list[str]] = mapped_column(default=list)


class QueueMember(Base):
    __tablename__ = "queue_members"

    queue_id: Mapped[int] = mapped_column(
        ForeignKey("queues.id", ondelete="CASCADE"), primary_key=True
    )
    seat_id: Mapped[int] = mapped_column(
        ForeignKey("seats.id", ondelete="CASCADE"), primary_key=True
    )
    penalty: Mapped[int] = mapped_column(default=0)


class Call(Base):
    """One call as followed by the AMI bridge, keyed by the Asterisk node and ``Linkedid``."""

    __tablename__ = "calls"
    __table_args__ = (
        UniqueConstraint("node", "linkedid"),
        Index("ix_calls_region_offered", "caller_region_code", "offered_at"),
        CheckConstraint(
            "satisfaction IN ('very_satisfied', 'satisfied', 'basically_satisfied', "
            "'dissatisfied', 'very_dissatisfied')",
            name="satisfaction",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    node: Mapped[str] = mapped_column(String(64), default="default")
    linkedid: Mapped[str] = mapped_column(String(96))
    direction: Mapped[str] = mapped_column(String(16), default="inbound")
    caller_number: Mapped[str | None] = mapped_column(String(32), index=True)
    caller_name: Mapped[str | None] = mapped_column(String(128))
    caller_region_code: Mapped[str | None] = mapped_column(ForeignKey("regions.code"))
    called_number: Mapped[str | None] = mapped_column(String(32))
    ivr_path: Mapped[list[str]] = mapped_column(default=list)
    service_type: Mapped[str | None] = mapped_column(String(32))
    language: Mapped[str | None] = mapped_column(String(8))
    queue_name: Mapped[str | None] = mapped_column(String(64), index=True)
    agent_extension: Mapped[str | None] = mapped_column(String(16))
    agent_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    offered_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    queued_at: Mapped[datetime | None]
    answered_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    disposition: Mapped[str | None] = mapped_column(String(32))
    hangup_cause: Mapped[str | None] = mapped_column(String(64))
    routing: Mapped[list[dict[str, Any]]] = mapped_column(default=list)
    notes: Mapped[str | None] = mapped_column(Text)
    satisfaction: Mapped[str | None] = mapped_column(String(24))
    """The caller's answer to the IVR survey after the seat hung up (ticketing's five levels)."""
