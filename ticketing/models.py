"""Tables of the ticketing feature, on the shared ``Base.metadata`` (migration 0002).

The state and the vocabularies are plain strings guarded by CHECK constraints, so the database
refuses what the code would never write, and reports and exports can read the codes directly.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import CheckConstraint, Date, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from callcenter.db import models as _core  # noqa: F401  (users, regions, calls come first)
from callcenter.db.base import Base, utcnow
from ticketing.catalogue import Category, Channel, RequestType, Satisfaction, Urgency, sql_in
from ticketing.states import Action, State


class Ticket(Base):
    """One 话务工单. ``version`` grows by one on every change: writers update conditionally on
    the version they read, so two people acting at once cannot both succeed."""

    __tablename__ = "tickets"
    __table_args__ = (
        CheckConstraint(f"state IN ({sql_in(State)})", name="state"),
        CheckConstraint(f"channel IN ({sql_in(Channel)})", name="channel"),
        CheckConstraint(f"category IN ({sql_in(Category)})", name="category"),
        CheckConstraint(f"request_type IN ({sql_in(RequestType)})", name="request_type"),
        CheckConstraint(f"urgency IN ({sql_in(Urgency)})", name="urgency"),
        CheckConstraint(f"satisfaction IN ({sql_in(Satisfaction)})", name="satisfaction"),
        CheckConstraint("extended_days >= 0", name="extended_days"),
        Index("ix_tickets_region_state", "region_code", "state"),
        Index("ix_tickets_state_resolve_by", "state", "resolve_by"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    region_code: Mapped[str] = mapped_column(ForeignKey("regions.code"))
    source_call_id: Mapped[int | None] = mapped_column(
        ForeignKey("calls.id", ondelete="SET NULL"), index=True
    )
    channel: Mapped[str] = mapped_column(String(16))
    caller_number: Mapped[str | None] = mapped_column(String(32), index=True)
    caller_region_code: Mapped[str | None] = mapped_column(ForeignKey("regions.code"))
    category: Mapped[str] = mapped_column(String(32))
    request_type: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text)
    answer: Mapped[str | None] = mapped_column(Text)
    urgency: Mapped[str] = mapped_column(String(16))
    green_channel: Mapped[bool] = mapped_column(default=False)
    resolved_on_call: Mapped[bool] = mapped_column(default=False)
    handling_unit: Mapped[str | None] = mapped_column(String(128))
    assignee_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    state: Mapped[str] = mapped_column(String(16))
    version: Mapped[int] = mapped_column(default=1)
    accept_by: Mapped[datetime]
    resolve_by: Mapped[datetime]
    extension_requested_days: Mapped[int | None]
    extended_days: Mapped[int] = mapped_column(default=0)
    urge_count: Mapped[int] = mapped_column(default=0)
    supervised: Mapped[bool] = mapped_column(default=False)
    result: Mapped[str | None] = mapped_column(Text)
    satisfaction: Mapped[str | None] = mapped_column(String(24))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    signed_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]


class TicketHistory(Base):
    """Who did what to a ticket, when, from which state to which, and why. Append only."""

    __tablename__ = "ticket_history"
    __table_args__ = (
        CheckConstraint(f"action IN ({sql_in(Action)})", name="action"),
        Index("ix_ticket_history_ticket", "ticket_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    action: Mapped[str] = mapped_column(String(24))
    from_state: Mapped[str | None] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


class TicketSequence(Base):
    """The last ticket number handed out per region and local day (see ``ticketing.numbers``)."""

    __tablename__ = "ticket_sequences"

    region_code: Mapped[str] = mapped_column(ForeignKey("regions.code"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    last_value: Mapped[int]
