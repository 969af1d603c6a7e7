"""ticket workflow: handling units and teams, SLA cards and 督办 records

Also widens the CHECK on ``ticket_history.action`` for the two scanner actions
(``sla_yellow``, ``sla_red``). A later migration that changes that CHECK again must start
from the list below, not from 0002's.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import callcenter.db.base

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACTIONS_0002 = (
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
)
ACTIONS_0003 = (*ACTIONS_0002, "sla_yellow", "sla_red")
UNIT_KINDS = (
    "justice_bureau",
    "legal_aid_center",
    "mediation_committee",
    "notary_office",
    "arbitration_commission",
)
DEADLINE_KINDS = ("accept", "resolve")


def _in(column: str, *codes: str) -> str:
    """A CHECK body; the codes are frozen here, whatever the enums become later."""
    return f"{column} IN ({', '.join(repr(code) for code in codes)})"


def _history_actions(codes: Sequence[str]) -> None:
    with op.batch_alter_table("ticket_history", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_ticket_history_action"), type_="check")
        batch_op.create_check_constraint(op.f("ck_ticket_history_action"), _in("action", *codes))


def upgrade() -> None:
    op.create_table(
        "handling_units",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("region_code", sa.String(length=6), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.CheckConstraint(_in("kind", *UNIT_KINDS), name=op.f("ck_handling_units_kind")),
        sa.ForeignKeyConstraint(
            ["region_code"], ["regions.code"], name=op.f("fk_handling_units_region_code_regions")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_handling_units")),
        sa.UniqueConstraint("code", name=op.f("uq_handling_units_code")),
        sa.UniqueConstraint("name", name=op.f("uq_handling_units_name")),
    )
    with op.batch_alter_table("handling_units", schema=None) as batch_op:
        batch_op.create_index(
            "ix_handling_units_region_kind", ["region_code", "kind"], unique=False
        )

    op.create_table(
        "teams",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("region_code", sa.String(length=6), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["region_code"], ["regions.code"], name=op.f("fk_teams_region_code_regions")
        ),
        sa.ForeignKeyConstraint(
            ["unit_id"],
            ["handling_units.id"],
            name=op.f("fk_teams_unit_id_handling_units"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_teams")),
        sa.UniqueConstraint("code", name=op.f("uq_teams_code")),
    )
    with op.batch_alter_table("teams", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_teams_region_code"), ["region_code"], unique=False)

    op.create_table(
        "team_members",
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["team_id"],
            ["teams.id"],
            name=op.f("fk_team_members_team_id_teams"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_team_members_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("team_id", "user_id", name=op.f("pk_team_members")),
    )
    with op.batch_alter_table("team_members", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_team_members_user_id"), ["user_id"], unique=False)

    op.create_table(
        "sla_cards",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("region_code", sa.String(length=6), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("deadline_kind", sa.String(length=8), nullable=False),
        sa.Column("deadline", callcenter.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("issued_at", callcenter.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(_in("kind", "yellow", "red"), name=op.f("ck_sla_cards_kind")),
        sa.CheckConstraint(
            _in("deadline_kind", *DEADLINE_KINDS), name=op.f("ck_sla_cards_deadline_kind")
        ),
        sa.ForeignKeyConstraint(
            ["region_code"], ["regions.code"], name=op.f("fk_sla_cards_region_code_regions")
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_sla_cards_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sla_cards")),
        sa.UniqueConstraint(
            "ticket_id",
            "deadline_kind",
            "deadline",
            "kind",
            name=op.f("uq_sla_cards_ticket_id_deadline_kind_deadline_kind"),
        ),
    )
    with op.batch_alter_table("sla_cards", schema=None) as batch_op:
        batch_op.create_index(
            "ix_sla_cards_region_issued", ["region_code", "issued_at"], unique=False
        )

    op.create_table(
        "supervisions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("card_id", sa.Integer(), nullable=True),
        sa.Column("region_code", sa.String(length=6), nullable=False),
        sa.Column("deadline_kind", sa.String(length=8), nullable=False),
        sa.Column("deadline", callcenter.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("supervisor_id", sa.Integer(), nullable=True),
        sa.Column("opened_by_id", sa.Integer(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("opened_at", callcenter.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("closed_at", callcenter.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("closed_by_id", sa.Integer(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.CheckConstraint(_in("state", "open", "closed"), name=op.f("ck_supervisions_state")),
        sa.CheckConstraint(
            _in("deadline_kind", *DEADLINE_KINDS), name=op.f("ck_supervisions_deadline_kind")
        ),
        sa.ForeignKeyConstraint(
            ["card_id"],
            ["sla_cards.id"],
            name=op.f("fk_supervisions_card_id_sla_cards"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["closed_by_id"],
            ["users.id"],
            name=op.f("fk_supervisions_closed_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["opened_by_id"],
            ["users.id"],
            name=op.f("fk_supervisions_opened_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["region_code"], ["regions.code"], name=op.f("fk_supervisions_region_code_regions")
        ),
        sa.ForeignKeyConstraint(
            ["supervisor_id"],
            ["users.id"],
            name=op.f("fk_supervisions_supervisor_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_supervisions_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_supervisions")),
        sa.UniqueConstraint("card_id", name=op.f("uq_supervisions_card_id")),
    )
    with op.batch_alter_table("supervisions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_supervisions_region_state", ["region_code", "state"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_supervisions_supervisor_id"), ["supervisor_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_supervisions_ticket_id"), ["ticket_id"], unique=False)

    _history_actions(ACTIONS_0003)


def downgrade() -> None:
    op.execute(sa.text("DELETE FROM ticket_history WHERE action IN ('sla_yellow', 'sla_red')"))
    _history_actions(ACTIONS_0002)

    with op.batch_alter_table("supervisions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_supervisions_ticket_id"))
        batch_op.drop_index(batch_op.f("ix_supervisions_supervisor_id"))
        batch_op.drop_index("ix_supervisions_region_state")
    op.drop_table("supervisions")

    with op.batch_alter_table("sla_cards", schema=None) as batch_op:
        batch_op.drop_index("ix_sla_cards_region_issued")
    op.drop_table("sla_cards")

    with op.batch_alter_table("team_members", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_team_members_user_id"))
    op.drop_table("team_members")

    with op.batch_alter_table("teams", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_teams_region_code"))
    op.drop_table("teams")

    with op.batch_alter_table("handling_units", schema=None) as batch_op:
        batch_op.drop_index("ix_handling_units_region_kind")
    op.drop_table("handling_units")
