"""Who may see a caller's full phone number, and what everyone else sees instead.

Why mask at all: a caller's number (and the name their phone sends) is personal information under
the Personal Information Protection Law (个人信息保护法), and the platform should show it only
where the work needs it ("minimum necessary").  Live state is shown on supervisor wallboards,
often a big screen in an open room, and to every agent of a region; none of them needs the
digits of a call they are not handling.  Hence the policy in :func:`can_see_full_number`:

* the **agent handling the call** sees the full number: they may have to verify or call back;
* an **admin** sees it: support and incident analysis;
* everyone else (supervisors, other agents) sees ``138****0001``: enough to tell two callers
  apart or notice a repeat caller on a wallboard, not enough to dial.

Follow-up staff reach numbers through their callback workflow, not through live state.

The masking functions take untrusted text (Caller ID comes from the network) and never raise.
"""

from __future__ import annotations

import re
import unicodedata

from callcenter.auth.principal import Principal
from callcenter.db.models import Role

__all__ = ["can_see_full_number", "mask_name", "mask_phone"]

_SEPARATORS = re.compile(r"[\s\-().]")
_PHONE = re.compile(r"\+?\d+")
_MAX_TEXT = 32
_SHORT_SERVICE = 5
"""Numbers this short are services or extensions (110, 12345, 8001), not a person's phone."""


def can_see_full_number(principal: Principal, call_agent_user_id: int | None) -> bool:
    """Full numbers for admins and for the user whose seat is handling the call."""
    if principal.role is Role.ADMIN:
        return True
    return call_agent_user_id is not None and call_agent_user_id == principal.user_id


def mask_phone(number: str | None) -> str | None:
    """``13805730001`` → ``138****0001``; ``057312348000`` → ``0573****8000`` (area code kept).

    ``+86``/``0086`` prefixes are kept in front of the masked national number; numbers of up to
    five digits are shown as they are; text that is not a phone number has every digit masked.
    """
    if number is None:
        return None
    text = unicodedata.normalize("NFKC", number).strip()
    compact = _SEPARATORS.sub("", text)
    if not compact:
        return ""
    if _PHONE.fullmatch(compact):
        return _mask_digits(compact)
    return _mask_text(text)


def mask_name(name: str | None) -> str | None:
    """``张三`` → ``张*``; ``Zhang San`` → ``Z********``: the first character stays."""
    if name is None:
        return None
    clean = name.strip()
    if len(clean) <= 1:
        return "*" if clean else ""
    return clean[0] + "*" * min(len(clean) - 1, _MAX_TEXT)


def _mask_digits(compact: str) -> str:
    country, national = _split_country(compact)
    return country + _mask_national(national)


def _split_country(compact: str) -> tuple[str, str]:
    for prefix in ("+86", "0086"):
        if compact.startswith(prefix) and len(compact) > len(prefix) + _SHORT_SERVICE:
            return "+86 ", compact[len(prefix) :]
    if len(compact) == 13 and compact.startswith("861"):  # 86 + mobile, without the +
        return "+86 ", compact[2:]
    if compact.startswith("+"):
        return "+", compact[1:]
    return "", compact


def _mask_national(digits: str) -> str:
    if len(digits) <= _SHORT_SERVICE:
        return digits
    if len(digits) == 11 and digits.startswith("1"):  # mobile: 138 **** 0001
        return digits[:3] + "****" + digits[-4:]
    if digits.startswith("0"):  # landline: the area code names a city, not a person
        area = 3 if digits.startswith(("010", "02")) else 4
        return _keep_ends(digits, area)
    return _keep_ends(digits, 0)


def _keep_ends(digits: str, head: int) -> str:
    """Keep ``head`` leading digits and the last 4 (last 2 when the rest is short)."""
    rest = len(digits) - head
    tail = 4 if rest >= 8 else 2
    if rest <= tail:
        return digits[:head] + "*" * rest
    return digits[:head] + "*" * (rest - tail) + digits[-tail:]


def _mask_text(text: str) -> str:
    """Not a phone number (``anonymous``, junk): show it, with every digit masked, shortened."""
    masked = "".join("*" if ch.isdigit() else ch for ch in text)
    return masked[:_MAX_TEXT]
