"""ticket search: full-text index material for content and answers

One row per ticket in ``ticket_search``: the character bigrams of its content and answer as a
``tsvector`` with a GIN index on PostgreSQL (no server extension needed; see
``ticketing/search.py``). SQLite gets the same table as plain text and searches the ticket
text directly. Existing tickets are indexed here, on PostgreSQL, in batches.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BATCH = 1000


def upgrade() -> None:
    op.create_table(
        "ticket_search",
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column(
            "vector",
            postgresql.TSVECTOR().with_variant(sa.Text(), "sqlite"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_ticket_search_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("ticket_id", name=op.f("pk_ticket_search")),
    )
    op.create_index(
        op.f("ix_ticket_search_vector"),
        "ticket_search",
        ["vector"],
        unique=False,
        postgresql_using="gin",
    )
    if op.get_bind().dialect.name == "postgresql":
        _backfill()


def _backfill() -> None:
    """Index the tickets that exist already, with the application's own tokenizer."""
    from ticketing.search import lexemes, tsvector_literal

    bind = op.get_bind()
    last = 0
    while True:
        rows = bind.execute(
            sa.text(
                "SELECT id, content, answer FROM tickets WHERE id > :last ORDER BY id LIMIT :n"
            ),
            {"last": last, "n": _BATCH},
        ).all()
        if not rows:
            return
        bind.execute(
            sa.text(
                "INSERT INTO ticket_search (ticket_id, vector) VALUES (:id, CAST(:v AS tsvector))"
            ),
            [{"id": r.id, "v": tsvector_literal(lexemes(r.content, r.answer))} for r in rows],
        )
        last = rows[-1].id


def downgrade() -> None:
    op.drop_index(op.f("ix_ticket_search_vector"), table_name="ticket_search")
    op.drop_table("ticket_search")
