"""Callbacks booked from the IVR (virtual hold, after hours) land in the follow-up workbench.

The IVR engine calls :func:`book_ivr_callback` while the caller is still on the line, so it
must be safe to call twice (the FastAGI step may be retried after a timeout, the caller may
press the key twice): one task per ``(node, linkedid, reason)``, enforced by a unique
constraint, and the second call returns the first task's id. The caller number comes from the
network (Caller ID) and is validated with ``phonenumbers``: only a valid mainland China number
can be dialled back; anything else is refused with :class:`BadCallbackNumber` and nothing is
written. The number is stored in national form (``13805730001``, ``057312348000``), digits
only, so it can go into a dial string as it is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal

import phonenumbers
from phonenumbers import NumberParseException
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from callcenter.db.base import utcnow
from callcenter.db.models import Region, RegionLevel
from callcenter.errors import InvalidInput
from ticketing.followup import DEFAULT_POLICY, PRIORITY, FollowupPolicy, next_calling_time
from ticketing.models import FollowupTask, TaskKind, TaskReason, TaskStatus

__all__ = [
    "BadCallbackNumber",
    "CallbackRefused",
    "IvrCallbackRequest",
    "book_ivr_callback",
    "callback_number",
]

CallbackReason = Literal["virtual_hold", "after_hours"]
_REASONS: Final = frozenset({"virtual_hold", "after_hours"})
_TOKEN = re.compile(r"^[A-Za-z0-9_.:@/+-]{1,96}$")
"""Node names and linkedids: printable, no spaces, no CR/LF (they end up in logs and AMI)."""
_REGION = re.compile(r"^\d{6}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_MAX_RAW_NUMBER = 40


class CallbackRefused(InvalidInput):
    """The booking request is malformed (unknown reason, bad node/linkedid, unknown region)."""

    error_id = "callback-refused"


class BadCallbackNumber(CallbackRefused):
    """The caller number is not a valid mainland China number that could be dialled back."""

    error_id = "bad-callback-number"


@dataclass(frozen=True, slots=True)
class IvrCallbackRequest:
    """What the IVR knows when the caller accepts a callback instead of waiting."""

    caller_number: str
    region_code: str | None
    """The city that serves the caller (from the called number or the caller's number); None:
    the province's centre calls back."""
    reason: CallbackReason
    linkedid: str
    node: str
    """The Asterisk node of the call (with ``linkedid`` it names the call)."""
    language: str
    service_type: str | None
    requested_at: datetime


def callback_number(raw: str) -> str:
    """The national-form digits of a valid mainland China number; ``BadCallbackNumber`` else."""
    if not isinstance(raw, str) or _CONTROL.search(raw):
        raise _bad_number(raw, "not a phone number (control characters)")
    text = raw.strip()
    if not text or len(text) > _MAX_RAW_NUMBER:
        raise _bad_number(raw, "empty or not a phone number")
    try:
        number = phonenumbers.parse(text, "CN")
    except NumberParseException:
        raise _bad_number(raw, "not a phone number") from None
    if number.country_code != 86:
        raise _bad_number(raw, "only mainland China numbers can be called back")
    if not phonenumbers.is_valid_number(number):
        raise _bad_number(raw, "not a valid China phone number")
    national = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
    return phonenumbers.normalize_digits_only(national)


def _bad_number(raw: object, why: str) -> BadCallbackNumber:
    shown = repr(raw)[:48]
    message = f"回拨号码无效 (invalid callback number {shown}): {why}"
    return BadCallbackNumber.at("caller_number", message, why=why)


def _refused(field_name: str, why: str) -> CallbackRefused:
    return CallbackRefused.at(
        field_name, f"回拨预约被拒绝 (callback refused): {field_name}: {why}", why=why
    )


def _check(request: IvrCallbackRequest) -> None:
    if request.reason not in _REASONS:
        raise _refused("reason", f"must be one of {sorted(_REASONS)}, got {request.reason!r}")
    if not isinstance(request.node, str) or not _TOKEN.fullmatch(request.node):
        raise _refused("node", "1-96 characters: letters, digits and _.:@/+-")
    if not isinstance(request.node, str) or len(request.node) > 64:
        raise _refused("node", "at most 64 characters")
    if not isinstance(request.linkedid, str) or not _TOKEN.fullmatch(request.linkedid):
        raise _refused("linkedid", "1-96 characters: letters, digits and _.:@/+-")
    if request.region_code is not None and not _REGION.fullmatch(request.region_code):
        raise _refused("region_code", "a 6-digit GB/T 2260 code")
    if not isinstance(request.language, str) or not 1 <= len(request.language) <= 8:
        raise _refused("language", "1-8 characters")
    if request.service_type is not None and not 1 <= len(request.service_type) <= 32:
        raise _refused("service_type", "1-32 characters")
    if request.requested_at.tzinfo is None:
        raise _refused("requested_at", "must be timezone-aware")


async def _existing(session: AsyncSession, request: IvrCallbackRequest) -> int | None:
    found = await session.scalar(
        select(FollowupTask.id).where(
            FollowupTask.source_node == request.node,
            FollowupTask.source_linkedid == request.linkedid,
            FollowupTask.reason == request.reason,
        )
    )
    return int(found) if found is not None else None


async def _region(session: AsyncSession, code: str | None) -> str:
    if code is not None:
        if await session.get(Region, code) is None:
            raise _refused("region_code", f"unknown region {code}")
        return code
    province = await session.scalar(
        select(Region.code).where(Region.level == RegionLevel.PROVINCE.value).order_by(Region.code)
    )
    if province is None:
        raise _refused("region_code", "no region given and no province seeded")
    return str(province)


async def book_ivr_callback(
    sessions: async_sessionmaker[AsyncSession],
    request: IvrCallbackRequest,
    *,
    policy: FollowupPolicy = DEFAULT_POLICY,
) -> int:
    """Book (or find) the callback task of this call; returns the task id.

    Idempotent per ``(node, linkedid, reason)``. Due at the request time, or the next opening
    of the calling hours (after hours: tomorrow 08:00). Raises :class:`BadCallbackNumber` or
    :class:`CallbackRefused` (400-class domain errors) for input it cannot book, writing nothing.
    """
    _check(request)
    number = callback_number(request.caller_number)
    reason = TaskReason(request.reason)
    async with sessions() as session:
        found = await _existing(session, request)
        if found is not None:
            return found
        now = utcnow()
        task = FollowupTask(
            kind=TaskKind.CALLBACK.value,
            reason=reason.value,
            status=TaskStatus.PENDING.value,
            region_code=await _region(session, request.region_code),
            ticket_id=None,
            caller_number=number,
            priority=PRIORITY[reason],
            due_at=next_calling_time(request.requested_at, policy),
            attempts=0,
            max_attempts=policy.max_attempts,
            source_node=request.node,
            source_linkedid=request.linkedid,
            language=request.language,
            service_type=request.service_type,
            version=1,
            created_at=now,
            updated_at=now,
        )
        session.add(task)
        try:
            await session.commit()
        except IntegrityError:
            await session.rollback()  # booked by a concurrent call of ours: return that one
            found = await _existing(session, request)
            if found is None:
                raise
            return found
        return task.id
