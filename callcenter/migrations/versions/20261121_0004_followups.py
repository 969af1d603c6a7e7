"""follow-up: return visits (回访), IVR callback bookings, repeat-call links

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21 12:00:00

Also adds the ``reopen`` (重办) action to the CHECK on ``ticket_history.action`` (batch mode,
so SQLite rebuilds the table).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import callcenter.db.base

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The actions known up to 0003 (0002's list plus the SLA scanner's cards), frozen here.
_ACTIONS_0003 = (
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
    "sla_yellow",
    "sla_red",
)
_ACTIONS_0004 = (*_ACTIONS_0003, "reopen")
_SATISFACTION = (
    "very_satisfied",
    "satisfied",
    "basically_satisfied",
    "dissatisfied",
    "very_dissatisfied",
)
_OUTCOMES = ("reached", "no_answer", "busy", "powered_off", "wrong_number", "refused")
_REASONS = (
    "legal_aid",
    "complaint",
    "green_channel",
    "emergency",
    "sampled",
    "requested",
    "virtual_hold",
    "after_hours",
)


def _in(column: str, *codes: str) -> str:
    """A CHECK body; the codes are frozen here, whatever the enums become later."""
    return f"{column} IN ({', '.join(repr(code) for code in codes)})"


def _set_actions(codes: Sequence[str]) -> None:
    with op.batch_alter_table("ticket_history", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_ticket_history_action"), type_="check")
        batch_op.create_check_constraint(op.f("ck_ticket_history_action"), _in("action", *codes))


def upgrade() -> None:
    _set_actions(_ACTIONS_0004)
    op.create_table(
        "followup_tasks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("region_code", sa.String(length=6), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=True),
        sa.Column("caller_number", sa.String(length=32), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("due_at", callcenter.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("claimed_by_id", sa.Integer(), nullable=True),
        sa.Column("claimed_at", callcenter.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("satisfaction", sa.String(length=24), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("source_node", sa.String(length=64), nullable=True),
        sa.Column("source_linkedid", sa.String(length=96), nullable=True),
        sa.Column("language", sa.String(length=8), nullable=True),
        sa.Column("service_type", sa.String(length=32), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", callcenter.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", callcenter.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("closed_at", callcenter.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            _in("kind", "return_visit", "callback"), name=op.f("ck_followup_tasks_kind")
        ),
        sa.CheckConstraint(_in("reason", *_REASONS), name=op.f("ck_followup_tasks_reason")),
        sa.CheckConstraint(
            _in("status", "pending", "claimed", "completed", "unreachable", "closed"),
            name=op.f("ck_followup_tasks_status"),
        ),
        sa.CheckConstraint(_in("outcome", *_OUTCOMES), name=op.f("ck_followup_tasks_outcome")),
        sa.CheckConstraint(
            _in("satisfaction", *_SATISFACTION), name=op.f("ck_followup_tasks_satisfaction")
        ),
        sa.CheckConstraint(
            "attempts >= 0 AND attempts <= max_attempts", name=op.f("ck_followup_tasks_attempts")
        ),
        sa.ForeignKeyConstraint(
            ["claimed_by_id"],
            ["users.id"],
            name=op.f("fk_followup_tasks_claimed_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["region_code"], ["regions.code"], name=op.f("fk_followup_tasks_region_code_regions")
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_followup_tasks_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_followup_tasks")),
        sa.UniqueConstraint(
            "source_node",
            "source_linkedid",
            "reason",
            name=op.f("uq_followup_tasks_source_node_source_linkedid_reason"),
        ),
    )
    with op.batch_alter_table("followup_tasks", schema=None) as batch_op:
        batch_op.create_index("ix_followup_tasks_status_due", ["status", "due_at"], unique=False)
        batch_op.create_index(
            "ix_followup_tasks_region_status", ["region_code", "status"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_followup_tasks_ticket_id"), ["ticket_id"])

    op.create_table(
        "followup_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("at", callcenter.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("satisfaction", sa.String(length=24), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.CheckConstraint(_in("outcome", *_OUTCOMES), name=op.f("ck_followup_attempts_outcome")),
        sa.CheckConstraint(
            _in("satisfaction", *_SATISFACTION), name=op.f("ck_followup_attempts_satisfaction")
        ),
        sa.ForeignKeyConstraint(
            ["actor_id"],
            ["users.id"],
            name=op.f("fk_followup_attempts_actor_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["task_id"],
            ["followup_tasks.id"],
            name=op.f("fk_followup_attempts_task_id_followup_tasks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_followup_attempts")),
    )
    with op.batch_alter_table("followup_attempts", schema=None) as batch_op:
        batch_op.create_index("ix_followup_attempts_task", ["task_id", "id"], unique=False)

    op.create_table(
        "ticket_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("related_ticket_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("created_at", callcenter.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(_in("kind", "repeat"), name=op.f("ck_ticket_links_kind")),
        sa.CheckConstraint("ticket_id <> related_ticket_id", name=op.f("ck_ticket_links_not_self")),
        sa.ForeignKeyConstraint(
            ["related_ticket_id"],
            ["tickets.id"],
            name=op.f("fk_ticket_links_related_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_ticket_links_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticket_links")),
        sa.UniqueConstraint(
            "ticket_id",
            "related_ticket_id",
            name=op.f("uq_ticket_links_ticket_id_related_ticket_id"),
        ),
    )
    with op.batch_alter_table("ticket_links", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ticket_links_related_ticket_id"), ["related_ticket_id"], unique=False
        )

    op.create_table(
        "call_tickets",
        sa.Column("call_id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("created_at", callcenter.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["call_id"],
            ["calls.id"],
            name=op.f("fk_call_tickets_call_id_calls"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_call_tickets_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("call_id", name=op.f("pk_call_tickets")),
        sa.UniqueConstraint("ticket_id", name=op.f("uq_call_tickets_ticket_id")),
    )


def downgrade() -> None:
    op.drop_table("call_tickets")
    with op.batch_alter_table("ticket_links", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ticket_links_related_ticket_id"))
    op.drop_table("ticket_links")
    with op.batch_alter_table("followup_attempts", schema=None) as batch_op:
        batch_op.drop_index("ix_followup_attempts_task")
    op.drop_table("followup_attempts")
    with op.batch_alter_table("followup_tasks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_followup_tasks_ticket_id"))
        batch_op.drop_index("ix_followup_tasks_region_status")
        batch_op.drop_index("ix_followup_tasks_status_due")
    op.drop_table("followup_tasks")
    op.execute("DELETE FROM ticket_history WHERE action = 'reopen'")
    _set_actions(_ACTIONS_0003)
