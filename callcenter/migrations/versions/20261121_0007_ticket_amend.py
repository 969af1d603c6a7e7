"""ticket amend: the ``amend`` (补录修改) action joins the CHECK on ``ticket_history.action``

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-21 14:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The actions known up to 0006 (0004's list), frozen here.
_ACTIONS_0006 = (
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
    "reopen",
)
_ACTIONS_0007 = (*_ACTIONS_0006, "amend")


def _set_actions(codes: Sequence[str]) -> None:
    body = f"action IN ({', '.join(repr(code) for code in codes)})"
    with op.batch_alter_table("ticket_history", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_ticket_history_action"), type_="check")
        batch_op.create_check_constraint(op.f("ck_ticket_history_action"), body)


def upgrade() -> None:
    _set_actions(_ACTIONS_0007)


def downgrade() -> None:
    op.execute("DELETE FROM ticket_history WHERE action = 'amend'")
    _set_actions(_ACTIONS_0006)
