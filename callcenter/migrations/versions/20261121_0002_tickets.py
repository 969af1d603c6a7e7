"""tickets: tickets, their history and the per-(region, day) number sequence

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 11:02:24.852196
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import callcenter.db.base

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _in(column: str, *codes: str) -> str:
    """A CHECK body; the codes are frozen here, whatever the enums become later."""
    return f"{column} IN ({', '.join(repr(code) for code in codes)})"


def upgrade() -> None:
    op.create_table(
        "ticket_sequences",
        sa.Column("region_code", sa.String(length=6), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("last_value", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["region_code"], ["regions.code"], name=op.f("fk_ticket_sequences_region_code_regions")
        ),
        sa.PrimaryKeyConstraint("region_code", "day", name=op.f("pk_ticket_sequences")),
    )
    op.create_table(
        "tickets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("region_code", sa.String(length=6), nullable=False),
        sa.Column("source_call_id", sa.Integer(), nullable=True),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("caller_number", sa.String(length=32), nullable=True),
        sa.Column("caller_region_code", sa.String(length=6), nullable=True),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("request_type", sa.String(length=16), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("answer", sa.Text(), nullable=True),
        sa.Column("urgency", sa.String(length=16), nullable=False),
        sa.Column("green_channel", sa.Boolean(), nullable=False),
        sa.Column("resolved_on_call", sa.Boolean(), nullable=False),
        sa.Column("handling_unit", sa.String(length=128), nullable=True),
        sa.Column("assignee_id", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("accept_by", callcenter.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("resolve_by", callcenter.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("extension_requested_days", sa.Integer(), nullable=True),
        sa.Column("extended_days", sa.Integer(), nullable=False),
        sa.Column("urge_count", sa.Integer(), nullable=False),
        sa.Column("supervised", sa.Boolean(), nullable=False),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column("satisfaction", sa.String(length=24), nullable=True),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", callcenter.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", callcenter.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("signed_at", callcenter.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("resolved_at", callcenter.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            _in(
                "category",
                "legal_consultation",
                "legal_aid",
                "mediation",
                "notarization",
                "judicial_expertise",
                "lawyer_service",
                "arbitration",
                "legal_publicity",
                "complaint_suggestion",
            ),
            name=op.f("ck_tickets_category"),
        ),
        sa.CheckConstraint(
            _in("channel", "phone", "12345", "web"), name=op.f("ck_tickets_channel")
        ),
        sa.CheckConstraint(
            _in("request_type", "consultation", "help", "complaint", "report", "suggestion"),
            name=op.f("ck_tickets_request_type"),
        ),
        sa.CheckConstraint(
            _in(
                "satisfaction",
                "very_satisfied",
                "satisfied",
                "basically_satisfied",
                "dissatisfied",
                "very_dissatisfied",
            ),
            name=op.f("ck_tickets_satisfaction"),
        ),
        sa.CheckConstraint(
            _in(
                "state",
                "accepted",
                "dispatched",
                "signed",
                "in_progress",
                "resolved",
                "visited",
                "archived",
            ),
            name=op.f("ck_tickets_state"),
        ),
        sa.CheckConstraint(
            _in("urgency", "normal", "urgent", "emergency"), name=op.f("ck_tickets_urgency")
        ),
        sa.CheckConstraint("extended_days >= 0", name=op.f("ck_tickets_extended_days")),
        sa.ForeignKeyConstraint(
            ["assignee_id"],
            ["users.id"],
            name=op.f("fk_tickets_assignee_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["caller_region_code"],
            ["regions.code"],
            name=op.f("fk_tickets_caller_region_code_regions"),
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["users.id"],
            name=op.f("fk_tickets_created_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["region_code"], ["regions.code"], name=op.f("fk_tickets_region_code_regions")
        ),
        sa.ForeignKeyConstraint(
            ["source_call_id"],
            ["calls.id"],
            name=op.f("fk_tickets_source_call_id_calls"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tickets")),
        sa.UniqueConstraint("number", name=op.f("uq_tickets_number")),
    )
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tickets_assignee_id"), ["assignee_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_tickets_caller_number"), ["caller_number"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_tickets_created_at"), ["created_at"], unique=False)
        batch_op.create_index("ix_tickets_region_state", ["region_code", "state"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_tickets_source_call_id"), ["source_call_id"], unique=False
        )
        batch_op.create_index("ix_tickets_state_resolve_by", ["state", "resolve_by"], unique=False)

    op.create_table(
        "ticket_history",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("at", callcenter.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(length=24), nullable=False),
        sa.Column("from_state", sa.String(length=16), nullable=True),
        sa.Column("to_state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column(
            "details",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.CheckConstraint(
            _in(
                "action",
                "create",
                "dispatch",
                "sign",
                "start",
                "resolve",
                "visit",
                "archive",
                "return",
                "reassign",
                "request_extension",
                "approve_extension",
                "reject_extension",
                "urge",
                "supervise",
            ),
            name=op.f("ck_ticket_history_action"),
        ),
        sa.ForeignKeyConstraint(
            ["actor_id"],
            ["users.id"],
            name=op.f("fk_ticket_history_actor_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_ticket_history_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticket_history")),
    )
    with op.batch_alter_table("ticket_history", schema=None) as batch_op:
        batch_op.create_index("ix_ticket_history_ticket", ["ticket_id", "id"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("ticket_history", schema=None) as batch_op:
        batch_op.drop_index("ix_ticket_history_ticket")

    op.drop_table("ticket_history")
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_index("ix_tickets_state_resolve_by")
        batch_op.drop_index(batch_op.f("ix_tickets_source_call_id"))
        batch_op.drop_index("ix_tickets_region_state")
        batch_op.drop_index(batch_op.f("ix_tickets_created_at"))
        batch_op.drop_index(batch_op.f("ix_tickets_caller_number"))
        batch_op.drop_index(batch_op.f("ix_tickets_assignee_id"))

    op.drop_table("tickets")
    op.drop_table("ticket_sequences")
