"""IVR: flow runs and survey results on calls

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-21 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_LEVELS = (
    "very_satisfied",
    "satisfied",
    "basically_satisfied",
    "dissatisfied",
    "very_dissatisfied",
)


def upgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.add_column(sa.Column("satisfaction", sa.String(length=24), nullable=True))
        batch_op.create_check_constraint(
            op.f("ck_calls_satisfaction"),
            f"satisfaction IN ({', '.join(repr(level) for level in _LEVELS)})",
        )


def downgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_calls_satisfaction"), type_="check")
        batch_op.drop_column("satisfaction")
