"""Repeat calls (重复诉求): the same caller about the same matter again.

A new ticket is a repeat when an earlier ticket has the same caller number (in any of its
usual spellings: ``13805730001``, ``+8613805730001``, ``008613805730001``) and the same category,
and that earlier ticket is still open, or was closed (办结) at most ``window_days`` ago. The new
ticket is linked to the *root* of the matter (the first ticket, never a repeat itself), so the
root's repeat count is the number of times the caller came back, and every ticket of the matter
shows the same family. Linking is part of the creating transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Final, cast

import phonenumbers
from phonenumbers import NumberParseException
from sqlalchemy import and_, func, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from ticketing.models import LinkKind, Ticket, TicketLink
from ticketing.states import State

__all__ = [
    "DEFAULT_WINDOW_DAYS",
    "Related",
    "family_tickets",
    "link_repeat",
    "link_repeats",
    "number_variants",
    "related_tickets",
    "repeat_counts",
]

DEFAULT_WINDOW_DAYS: Final = 30
_OPEN: Final = tuple(
    s.value for s in (State.ACCEPTED, State.DISPATCHED, State.SIGNED, State.IN_PROGRESS)
)


def number_variants(raw: str) -> list[str]:
    """The spellings a stored caller number of the same phone may have."""
    return list(_variants(raw))


@lru_cache(maxsize=8192)
def _variants(raw: str) -> tuple[str, ...]:
    """Parsing a number costs more than the look-up it feeds; callers call again."""
    text = raw.strip()
    variants = {text}
    try:
        parsed = phonenumbers.parse(text, "CN")
    except NumberParseException:
        return tuple(sorted(variants))
    if parsed.country_code == 86 and phonenumbers.is_possible_number(parsed):
        national = phonenumbers.normalize_digits_only(
            phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)
        )
        significant = str(parsed.national_number)
        variants |= {national, significant, f"+86{significant}", f"0086{significant}"}
        variants.add(f"86{significant}")
    return tuple(sorted(variants))


async def _root_of(session: AsyncSession, ticket_id: int) -> int:
    root = await session.scalar(
        select(TicketLink.related_ticket_id).where(
            TicketLink.ticket_id == ticket_id, TicketLink.kind == LinkKind.REPEAT.value
        )
    )
    return int(root) if root is not None else ticket_id


async def link_repeat(
    session: AsyncSession, ticket: Ticket, now: datetime, window_days: int = DEFAULT_WINDOW_DAYS
) -> int | None:
    """Link ``ticket`` (just flushed) to the matter it repeats; the root ticket id, or None."""
    return (await link_repeats(session, [ticket], now, window_days)).get(ticket.id)


async def link_repeats(
    session: AsyncSession,
    tickets: Sequence[Ticket],
    now: datetime,
    window_days: int = DEFAULT_WINDOW_DAYS,
) -> dict[int, int]:
    """Link each of ``tickets`` (just flushed, in creation order) to the matter it repeats;
    ticket id → root ticket id for those linked.

    One query reads every candidate of the batch (same caller spellings, same categories,
    still open or closed within the window) with the root it links to. Tickets of the batch
    count as earlier for the ones after them, as if created one by one.
    """
    mine = [t for t in tickets if t.caller_number and window_days > 0]
    if not mine:
        return {}
    since = now - timedelta(days=window_days)
    repeat = LinkKind.REPEAT.value
    spellings = sorted({v for t in mine for v in _variants(cast(str, t.caller_number))})
    rows = await session.execute(
        select(
            Ticket.id,
            Ticket.caller_number,
            Ticket.category,
            Ticket.created_at,
            TicketLink.related_ticket_id,
        )
        .outerjoin(TicketLink, and_(TicketLink.ticket_id == Ticket.id, TicketLink.kind == repeat))
        .where(
            Ticket.caller_number.in_(spellings),
            Ticket.category.in_(sorted({t.category for t in mine})),
            Ticket.created_at <= now,
            or_(Ticket.state.in_(_OPEN), Ticket.resolved_at >= since),
        )
    )
    batch = {t.id for t in mine}
    # (stored number, category) → candidates as (created_at, id, root of their matter)
    earlier: dict[tuple[str, str], list[tuple[datetime, int, int]]] = {}
    for tid, number, category, created_at, root in rows:
        if tid not in batch:
            entry = (created_at, tid, root if root is not None else tid)
            earlier.setdefault((cast(str, number), category), []).append(entry)
    roots: dict[int, int] = {}
    for ticket in mine:  # creation order: each may find the batch's earlier ones
        number = cast(str, ticket.caller_number)
        candidates = [c for v in _variants(number) for c in earlier.get((v, ticket.category), ())]
        if candidates:
            roots[ticket.id] = max(candidates)[2]  # the latest, as ORDER BY created_at, id DESC
        entry = (ticket.created_at, ticket.id, roots.get(ticket.id, ticket.id))
        earlier.setdefault((number, ticket.category), []).append(entry)
    if roots:
        links = [
            {"ticket_id": tid, "related_ticket_id": root, "kind": repeat, "created_at": now}
            for tid, root in roots.items()
        ]
        await session.execute(insert(TicketLink), links)
    return roots


@dataclass(frozen=True, slots=True)
class Related:
    """A ticket's repeat family: the root and every repeat, oldest first."""

    root_id: int
    ticket_ids: list[int]
    repeat_count: int


async def related_tickets(session: AsyncSession, ticket_id: int) -> Related:
    """The family of ``ticket_id`` (itself included); visibility is the caller's business."""
    root = await _root_of(session, ticket_id)
    repeats = await session.scalars(
        select(TicketLink.ticket_id)
        .where(TicketLink.related_ticket_id == root, TicketLink.kind == LinkKind.REPEAT.value)
        .order_by(TicketLink.ticket_id)
    )
    ids = [root, *(int(i) for i in repeats)]
    return Related(root_id=root, ticket_ids=ids, repeat_count=len(ids) - 1)


async def repeat_counts(session: AsyncSession, root_ids: list[int]) -> dict[int, int]:
    """How many repeats each of these root tickets has (absent: none)."""
    if not root_ids:
        return {}
    rows = await session.execute(
        select(TicketLink.related_ticket_id, func.count(TicketLink.id))
        .where(TicketLink.related_ticket_id.in_(root_ids))
        .group_by(TicketLink.related_ticket_id)
    )
    return {int(root): int(count) for root, count in rows}


async def family_tickets(session: AsyncSession, ticket_id: int) -> tuple[Related, list[Ticket]]:
    """:func:`related_tickets` and the tickets themselves, oldest first."""
    family = await related_tickets(session, ticket_id)
    rows = await session.scalars(
        select(Ticket).where(Ticket.id.in_(family.ticket_ids)).order_by(Ticket.id)
    )
    return family, list(rows.all())
