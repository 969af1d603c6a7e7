"""Tables of the ticketing feature, on the shared ``Base.metadata`` (migration 0002).

The state and the vocabularies are plain strings guarded by CHECK constraints, so the database
refuses what the code would never write, and reports and exports can read the codes directly.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    event,
    inspect,
)
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlalchemy.engine import Connection
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


# --- follow-up and callbacks (migration 0004)


class TaskKind(StrEnum):
    """A return visit after 办结, or a callback the caller booked from the IVR."""

    RETURN_VISIT = "return_visit"
    CALLBACK = "callback"


class TaskReason(StrEnum):
    """Why the task exists: the sampling rule that picked a ticket, or the IVR booking."""

    LEGAL_AID = "legal_aid"
    COMPLAINT = "complaint"
    GREEN_CHANNEL = "green_channel"
    EMERGENCY = "emergency"
    SAMPLED = "sampled"
    REQUESTED = "requested"
    VIRTUAL_HOLD = "virtual_hold"
    AFTER_HOURS = "after_hours"


class TaskStatus(StrEnum):
    PENDING = "pending"
    CLAIMED = "claimed"
    COMPLETED = "completed"
    UNREACHABLE = "unreachable"
    CLOSED = "closed"
    """Ended without a conversation that counts: wrong number, or the caller refused."""


class Outcome(StrEnum):
    REACHED = "reached"
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    POWERED_OFF = "powered_off"
    WRONG_NUMBER = "wrong_number"
    REFUSED = "refused"


class LinkKind(StrEnum):
    REPEAT = "repeat"


class FollowupTask(Base):
    """One call the follow-up desk owes someone. ``version`` guards claims and outcomes like
    ``tickets.version``: two staff taking the next task at once cannot both get the same one."""

    __tablename__ = "followup_tasks"
    __table_args__ = (
        CheckConstraint(f"kind IN ({sql_in(TaskKind)})", name="kind"),
        CheckConstraint(f"reason IN ({sql_in(TaskReason)})", name="reason"),
        CheckConstraint(f"status IN ({sql_in(TaskStatus)})", name="status"),
        CheckConstraint(f"outcome IN ({sql_in(Outcome)})", name="outcome"),
        CheckConstraint(f"satisfaction IN ({sql_in(Satisfaction)})", name="satisfaction"),
        CheckConstraint("attempts >= 0 AND attempts <= max_attempts", name="attempts"),
        UniqueConstraint("source_node", "source_linkedid", "reason"),
        Index("ix_followup_tasks_status_due", "status", "due_at"),
        Index("ix_followup_tasks_region_status", "region_code", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    region_code: Mapped[str] = mapped_column(ForeignKey("regions.code"))
    ticket_id: Mapped[int | None] = mapped_column(
        ForeignKey("tickets.id", ondelete="CASCADE"), index=True
    )
    caller_number: Mapped[str] = mapped_column(String(32))
    priority: Mapped[int]
    due_at: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int]
    claimed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    claimed_at: Mapped[datetime | None]
    outcome: Mapped[str | None] = mapped_column(String(16))
    satisfaction: Mapped[str | None] = mapped_column(String(24))
    note: Mapped[str | None] = mapped_column(Text)
    source_node: Mapped[str | None] = mapped_column(String(64))
    source_linkedid: Mapped[str | None] = mapped_column(String(96))
    language: Mapped[str | None] = mapped_column(String(8))
    service_type: Mapped[str | None] = mapped_column(String(32))
    version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None]


class FollowupAttempt(Base):
    """One dialling attempt and what came of it. Append only."""

    __tablename__ = "followup_attempts"
    __table_args__ = (
        CheckConstraint(f"outcome IN ({sql_in(Outcome)})", name="outcome"),
        CheckConstraint(f"satisfaction IN ({sql_in(Satisfaction)})", name="satisfaction"),
        Index("ix_followup_attempts_task", "task_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("followup_tasks.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    outcome: Mapped[str] = mapped_column(String(16))
    satisfaction: Mapped[str | None] = mapped_column(String(24))
    note: Mapped[str | None] = mapped_column(Text)


class TicketLink(Base):
    """``ticket_id`` repeats ``related_ticket_id`` (重复诉求): same caller, same matter."""

    __tablename__ = "ticket_links"
    __table_args__ = (
        CheckConstraint(f"kind IN ({sql_in(LinkKind)})", name="kind"),
        CheckConstraint("ticket_id <> related_ticket_id", name="not_self"),
        UniqueConstraint("ticket_id", "related_ticket_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    related_ticket_id: Mapped[int] = mapped_column(
        ForeignKey("tickets.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CallTicket(Base):
    """The ticket made automatically for an answered call: the primary key on the call is
    what makes it exactly one, however often the event arrives. (A seat may still file more
    tickets for the same call by hand, when a caller raises two matters.)"""

    __tablename__ = "call_tickets"

    call_id: Mapped[int] = mapped_column(
        ForeignKey("calls.id", ondelete="CASCADE"), primary_key=True
    )
    ticket_id: Mapped[int] = mapped_column(
        ForeignKey("tickets.id", ondelete="CASCADE"), unique=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# --- assignment and supervision (migration 0003)


class UnitKind(StrEnum):
    """Kinds of handling unit (承办单位) a ticket can be transferred to."""

    JUSTICE_BUREAU = "justice_bureau"
    LEGAL_AID_CENTER = "legal_aid_center"
    MEDIATION_COMMITTEE = "mediation_committee"
    NOTARY_OFFICE = "notary_office"
    ARBITRATION_COMMISSION = "arbitration_commission"


class CardKind(StrEnum):
    YELLOW = "yellow"
    RED = "red"


class DeadlineKind(StrEnum):
    ACCEPT = "accept"
    """``tickets.accept_by``: transferred and signed for (签收)."""
    RESOLVE = "resolve"
    """``tickets.resolve_by``: a result (办结)."""


class SupervisionState(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class HandlingUnit(Base):
    """A unit outside the hotline that handles tickets (司法局, 法律援助中心 …), per region.
    Seeded from ``ticketing/data/units.<province>.yaml``; ``code`` is the stable key."""

    __tablename__ = "handling_units"
    __table_args__ = (
        CheckConstraint(f"kind IN ({sql_in(UnitKind)})", name="kind"),
        Index("ix_handling_units_region_kind", "region_code", "kind"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    region_code: Mapped[str] = mapped_column(ForeignKey("regions.code"))
    is_active: Mapped[bool] = mapped_column(default=True)


class Team(Base):
    """A group of agents an assignment rule can name (e.g. 嘉兴法援值班组)."""

    __tablename__ = "teams"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(128))
    region_code: Mapped[str] = mapped_column(ForeignKey("regions.code"), index=True)
    unit_id: Mapped[int | None] = mapped_column(
        ForeignKey("handling_units.id", ondelete="SET NULL")
    )


class TeamMember(Base):
    __tablename__ = "team_members"

    team_id: Mapped[int] = mapped_column(
        ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class SlaCard(Base):
    """A yellow (黄牌, deadline near) or red (红牌, overdue) card. The unique key is what makes
    each card exactly once per ticket and deadline, however many scanners run at once; an
    extension moves ``resolve_by`` and so allows new cards for the new deadline."""

    __tablename__ = "sla_cards"
    __table_args__ = (
        CheckConstraint(f"kind IN ({sql_in(CardKind)})", name="kind"),
        CheckConstraint(f"deadline_kind IN ({sql_in(DeadlineKind)})", name="deadline_kind"),
        UniqueConstraint("ticket_id", "deadline_kind", "deadline", "kind"),
        Index("ix_sla_cards_region_issued", "region_code", "issued_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    region_code: Mapped[str] = mapped_column(ForeignKey("regions.code"))
    kind: Mapped[str] = mapped_column(String(8))
    deadline_kind: Mapped[str] = mapped_column(String(8))
    deadline: Mapped[datetime]
    issued_at: Mapped[datetime] = mapped_column(default=utcnow)


class Supervision(Base):
    """A 督办 record: opened by the scanner with a red card (``card_id``) and escalated to a
    supervisor, or ordered by a supervisor (``opened_by_id``, the 督办 action); closed by a
    supervisor with a note. ``version`` makes closing it twice at once a 409."""

    __tablename__ = "supervisions"
    __table_args__ = (
        CheckConstraint(f"state IN ({sql_in(SupervisionState)})", name="state"),
        CheckConstraint(f"deadline_kind IN ({sql_in(DeadlineKind)})", name="deadline_kind"),
        Index("ix_supervisions_region_state", "region_code", "state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    card_id: Mapped[int | None] = mapped_column(
        ForeignKey("sla_cards.id", ondelete="CASCADE"), unique=True
    )
    region_code: Mapped[str] = mapped_column(ForeignKey("regions.code"))
    deadline_kind: Mapped[str] = mapped_column(String(8))
    deadline: Mapped[datetime]
    state: Mapped[str] = mapped_column(String(8))
    supervisor_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    opened_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    reason: Mapped[str | None] = mapped_column(Text)
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None]
    closed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    note: Mapped[str | None] = mapped_column(Text)
    version: Mapped[int] = mapped_column(default=1)


# --- search (migration 0005)

_TSVECTOR = TSVECTOR().with_variant(Text(), "sqlite")


class TicketSearch(Base):
    """Search material of a ticket's content and answer: character bigrams as a ``tsvector``
    under a GIN index on PostgreSQL (see ``ticketing.search``); unused text on SQLite."""

    __tablename__ = "ticket_search"
    __table_args__ = (Index("ix_ticket_search_vector", "vector", postgresql_using="gin"),)

    ticket_id: Mapped[int] = mapped_column(
        ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True
    )
    vector: Mapped[str] = mapped_column(_TSVECTOR)


@event.listens_for(Ticket, "after_insert")
def _index_new_ticket(_mapper: Any, connection: Connection, ticket: Ticket) -> None:
    """Every ORM insert of a ticket writes its search material (PostgreSQL only), in the same
    transaction, whichever module creates the ticket."""
    _index(connection, ticket)


@event.listens_for(Ticket, "after_update")
def _reindex_changed_ticket(_mapper: Any, connection: Connection, ticket: Ticket) -> None:
    """An ORM update that changed the content or the answer rewrites the material."""
    attrs = inspect(ticket).attrs
    if attrs.content.history.has_changes() or attrs.answer.history.has_changes():
        _index(connection, ticket)


def _index(connection: Connection, ticket: Ticket) -> None:
    if connection.dialect.name == "postgresql":
        from ticketing.search import index_statement  # search builds on these models

        connection.execute(index_statement(ticket.id, ticket.content, ticket.answer))
