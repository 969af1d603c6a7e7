"""Full-text search over ticket content and answers, Chinese included, on both databases.

Semantics (identical on PostgreSQL and SQLite): the query is split on whitespace into terms
(at most :data:`MAX_TERMS`); a ticket matches when *every* term occurs, as a case-insensitive
substring, in its content or its answer. ``%``, ``_``, quotes, backslashes and tsquery
operators are ordinary characters. Relevance: tickets with more terms in the content (诉求)
come first, then those matched only in the answer; ties newest first.

Chinese has no spaces, so a word index is useless; PostgreSQL's parsers and dictionaries for
Chinese (zhparser, pg_jieba) are server extensions we cannot count on. Instead every run of
letters/digits/CJK characters is cut into character *bigrams* (plus single characters),
stored as a ``tsvector`` in ``ticket_search`` with a GIN index ('simple', no parser: the
lexemes are written by :func:`lexemes`). A query term's bigrams must all be present: an
index-backed *necessary* condition that narrows the candidates, after which the exact
substring test decides. SQLite has no such index; it runs the substring test alone (LIKE),
fine for the embedded mode's volumes.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Any, Final, cast

from sqlalchemy import ColumnElement, Select, Table, and_, case, literal, or_, select
from sqlalchemy.dialects.postgresql import TSQUERY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from callcenter.errors import InvalidInput
from ticketing.models import Ticket, TicketSearch

MAX_TERMS: Final = 10
_RUN = re.compile(r"[^\W_]+")  # letters, digits and CJK characters; punctuation separates
_SEARCH = cast(Table, TicketSearch.__table__)


def _normal(text: str) -> str:
    """Full-width forms to ASCII (ＡＢＣ１２３ → abc123), lower case, as PostgreSQL's lower()."""
    return unicodedata.normalize("NFKC", text).lower()


def lexemes(*texts: str | None) -> set[str]:
    """Every character bigram and every single character of each run of word characters."""
    out: set[str] = set()
    for text in texts:
        if not text:
            continue
        for run in _RUN.findall(_normal(text)):
            out.update(run)
            out.update(run[i : i + 2] for i in range(len(run) - 1))
    return out


def _quote(lexeme: str) -> str:
    """A tsvector/tsquery literal token; runs hold no quote or backslash, doubled anyway."""
    return "'" + lexeme.replace("\\", "\\\\").replace("'", "''") + "'"


def tsvector_literal(words: Iterable[str]) -> str:
    return " ".join(_quote(w) for w in sorted(words))


def terms(q: str) -> list[str]:
    """The whitespace-separated terms of a query, deduplicated, in order."""
    out: list[str] = []
    for term in q.split():
        if term not in out:
            out.append(term)
    if not out:
        raise InvalidInput("q must contain a search term", fields=[_field("is blank")])
    if len(out) > MAX_TERMS:
        message = f"at most {MAX_TERMS} search terms"
        raise InvalidInput(message, fields=[_field(message)])
    return out


def _field(message: str) -> dict[str, str]:
    return {"field": "query.q", "message": message}


def tsquery_literal(query_terms: Iterable[str]) -> str | None:
    """All bigrams (or the lone character) of every run of every term, ANDed; ``None`` if the
    terms hold no word character (``%%%``): then only the substring test applies."""
    needed: set[str] = set()
    for term in query_terms:
        for run in _RUN.findall(_normal(term)):
            needed.update([run] if len(run) == 1 else (run[i : i + 2] for i in range(len(run) - 1)))
    return " & ".join(_quote(w) for w in sorted(needed)) or None


def _contains(term: str) -> ColumnElement[bool]:
    return or_(
        Ticket.content.icontains(term, autoescape=True),
        Ticket.answer.icontains(term, autoescape=True),
    )


def match(query_terms: list[str], dialect: str) -> ColumnElement[bool]:
    """The WHERE clause: every term in content or answer (index-narrowed on PostgreSQL)."""
    clauses = [_contains(term) for term in query_terms]
    tsquery = tsquery_literal(query_terms) if dialect == "postgresql" else None
    if tsquery is not None:
        candidates = select(TicketSearch.ticket_id).where(
            TicketSearch.vector.bool_op("@@")(literal(tsquery, TSQUERY))
        )
        clauses.insert(0, Ticket.id.in_(candidates))
    return and_(*clauses)


def relevance(query_terms: list[str]) -> ColumnElement[Any]:
    """How many terms the content holds (answer-only matches rank after content matches)."""
    score: ColumnElement[Any] = literal(0)
    for term in query_terms:
        score = score + case((Ticket.content.icontains(term, autoescape=True), 1), else_=0)
    return score


def ordered(page: Select[Any], query_terms: list[str]) -> Select[Any]:
    return page.order_by(relevance(query_terms).desc(), Ticket.id.desc())


def index_statement(ticket_id: int, content: str | None, answer: str | None) -> Any:
    """The upsert of a ticket's search material (PostgreSQL only)."""
    vector = literal(tsvector_literal(lexemes(content, answer)), TicketSearch.vector.type)
    stmt = pg_insert(_SEARCH).values(ticket_id=ticket_id, vector=vector)
    return stmt.on_conflict_do_update(index_elements=["ticket_id"], set_={"vector": vector})


async def index_tickets(
    session: AsyncSession, items: Sequence[tuple[int, str | None, str | None]]
) -> None:
    """Rewrite the search material of tickets written with Core or ORM bulk statements (which
    fire no mapper events): one executemany upsert of (ticket id, content, answer), in the
    writing transaction, so the index is never behind a committed ticket. ORM inserts and
    updates are indexed by the mapper events in ``ticketing.models``."""
    if not items or session.get_bind().dialect.name != "postgresql":
        return
    stmt = pg_insert(_SEARCH)
    stmt = stmt.on_conflict_do_update(
        index_elements=["ticket_id"], set_={"vector": stmt.excluded.vector}
    )
    rows = [
        {"ticket_id": tid, "vector": tsvector_literal(lexemes(content, answer))}
        for tid, content, answer in items
    ]
    await session.execute(stmt, rows)
