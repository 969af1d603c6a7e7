"""core tables

Revision ID: 0001
Revises:
Create Date: 2026-11-21 09:57:55.117566
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import callcenter.db.base

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "regions",
        sa.Column("code", sa.String(length=6), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("parent_code", sa.String(length=6), nullable=True),
        sa.Column("area_code", sa.String(length=8), nullable=True),
        sa.Column("name_en", sa.String(length=64), nullable=True),
        sa.CheckConstraint(
            "level IN ('province', 'city', 'county')", name=op.f("ck_regions_level")
        ),
        sa.ForeignKeyConstraint(
            ["parent_code"],
            ["regions.code"],
            name=op.f("fk_regions_parent_code_regions"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_regions")),
    )
    with op.batch_alter_table("regions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_regions_parent_code"), ["parent_code"], unique=False)

    op.create_table(
        "queues",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("display_name", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("region_code", sa.String(length=6), nullable=False),
        sa.Column(
            "skills",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "languages",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("strategy", sa.String(length=32), nullable=False),
        sa.Column("ring_timeout_s", sa.Integer(), nullable=False),
        sa.Column("overflow_after_s", sa.Integer(), nullable=True),
        sa.CheckConstraint("kind IN ('city', 'province', 'duty')", name=op.f("ck_queues_kind")),
        sa.ForeignKeyConstraint(
            ["region_code"], ["regions.code"], name=op.f("fk_queues_region_code_regions")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_queues")),
        sa.UniqueConstraint("name", name=op.f("uq_queues_name")),
    )
    with op.batch_alter_table("queues", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_queues_region_code"), ["region_code"], unique=False)

    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("display_name", sa.String(length=64), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("region_code", sa.String(length=6), nullable=False),
        sa.Column(
            "skills",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "languages",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        sa.Column("locked_until", callcenter.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", callcenter.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "password_changed_at", callcenter.db.base.UTCDateTime(timezone=True), nullable=False
        ),
        sa.CheckConstraint(
            "role IN ('agent', 'supervisor', 'followup', 'admin')", name=op.f("ck_users_role")
        ),
        sa.ForeignKeyConstraint(
            ["region_code"], ["regions.code"], name=op.f("fk_users_region_code_regions")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
    )
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_users_region_code"), ["region_code"], unique=False)

    op.create_table(
        "auth_sessions",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=True),
        sa.Column("created_at", callcenter.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", callcenter.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", callcenter.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("client_ip", sa.String(length=64), nullable=True),
        sa.Column("user_agent", sa.String(length=256), nullable=True),
        sa.CheckConstraint("kind IN ('cookie', 'bearer')", name=op.f("ck_auth_sessions_kind")),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_auth_sessions_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_auth_sessions")),
    )
    with op.batch_alter_table("auth_sessions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_auth_sessions_expires_at"), ["expires_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_auth_sessions_user_id"), ["user_id"], unique=False)

    op.create_table(
        "calls",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("node", sa.String(length=64), nullable=False),
        sa.Column("linkedid", sa.String(length=96), nullable=False),
        sa.Column("direction", sa.String(length=16), nullable=False),
        sa.Column("caller_number", sa.String(length=32), nullable=True),
        sa.Column("caller_name", sa.String(length=128), nullable=True),
        sa.Column("caller_region_code", sa.String(length=6), nullable=True),
        sa.Column("called_number", sa.String(length=32), nullable=True),
        sa.Column(
            "ivr_path",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("service_type", sa.String(length=32), nullable=True),
        sa.Column("language", sa.String(length=8), nullable=True),
        sa.Column("queue_name", sa.String(length=64), nullable=True),
        sa.Column("agent_extension", sa.String(length=16), nullable=True),
        sa.Column("agent_user_id", sa.Integer(), nullable=True),
        sa.Column("offered_at", callcenter.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("queued_at", callcenter.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("answered_at", callcenter.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("ended_at", callcenter.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("disposition", sa.String(length=32), nullable=True),
        sa.Column("hangup_cause", sa.String(length=64), nullable=True),
        sa.Column(
            "routing",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["agent_user_id"],
            ["users.id"],
            name=op.f("fk_calls_agent_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["caller_region_code"],
            ["regions.code"],
            name=op.f("fk_calls_caller_region_code_regions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calls")),
        sa.UniqueConstraint("node", "linkedid", name=op.f("uq_calls_node_linkedid")),
    )
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_calls_caller_number"), ["caller_number"], unique=False)
        batch_op.create_index(batch_op.f("ix_calls_offered_at"), ["offered_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_calls_queue_name"), ["queue_name"], unique=False)
        batch_op.create_index(
            "ix_calls_region_offered", ["caller_region_code", "offered_at"], unique=False
        )

    op.create_table(
        "seats",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("extension", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("region_code", sa.String(length=6), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column(
            "skills",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "languages",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["region_code"], ["regions.code"], name=op.f("fk_seats_region_code_regions")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_seats_user_id_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_seats")),
        sa.UniqueConstraint("extension", name=op.f("uq_seats_extension")),
    )
    with op.batch_alter_table("seats", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_seats_region_code"), ["region_code"], unique=False)

    op.create_table(
        "queue_members",
        sa.Column("queue_id", sa.Integer(), nullable=False),
        sa.Column("seat_id", sa.Integer(), nullable=False),
        sa.Column("penalty", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["queue_id"],
            ["queues.id"],
            name=op.f("fk_queue_members_queue_id_queues"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["seat_id"],
            ["seats.id"],
            name=op.f("fk_queue_members_seat_id_seats"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("queue_id", "seat_id", name=op.f("pk_queue_members")),
    )


def downgrade() -> None:

    op.drop_table("queue_members")
    with op.batch_alter_table("seats", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_seats_region_code"))

    op.drop_table("seats")
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_index("ix_calls_region_offered")
        batch_op.drop_index(batch_op.f("ix_calls_queue_name"))
        batch_op.drop_index(batch_op.f("ix_calls_offered_at"))
        batch_op.drop_index(batch_op.f("ix_calls_caller_number"))

    op.drop_table("calls")
    with op.batch_alter_table("auth_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_auth_sessions_user_id"))
        batch_op.drop_index(batch_op.f("ix_auth_sessions_expires_at"))

    op.drop_table("auth_sessions")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_users_region_code"))

    op.drop_table("users")
    with op.batch_alter_table("queues", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_queues_region_code"))

    op.drop_table("queues")
    with op.batch_alter_table("regions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_regions_parent_code"))

    op.drop_table("regions")
