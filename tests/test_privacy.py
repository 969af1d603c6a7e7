"""Phone-number masking and who sees full numbers."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcenter.auth.principal import Principal
from callcenter.db.models import Role
from callcenter.privacy import can_see_full_number, mask_name, mask_phone


@pytest.mark.parametrize(
    ("number", "masked"),
    [
        ("13805730001", "138****0001"),
        ("+8613805730001", "+86 138****0001"),
        ("008613805730001", "+86 138****0001"),
        ("8613805730001", "+86 138****0001"),
        ("138 0573 0001", "138****0001"),
        ("１３８０５７３０００１", "138****0001"),  # full-width digits
        ("057312348000", "0573****8000"),  # landline: the area code stays
        ("0573-8234567", "0573*****67"),
        ("01012345678", "010****5678"),
        ("02187654321", "021****4321"),
        ("12348", "12348"),  # service numbers and extensions are not personal
        ("110", "110"),
        ("8001", "8001"),
        ("1234567", "*****67"),
        ("+4930123456", "+******3456"),
        ("anonymous", "anonymous"),
        ("call 13805730001 now", "call *********** now"),
        ("", ""),
        ("   ", ""),
        (None, None),
    ],
)
def test_mask_phone(number: str | None, masked: str | None) -> None:
    assert mask_phone(number) == masked


@given(st.one_of(st.text(max_size=60), st.from_regex(r"\+?[0-9 ()-]{0,20}", fullmatch=True)))
def test_mask_phone_never_raises_nor_shows_six_digits_in_a_row(text: str) -> None:
    masked = mask_phone(text)
    assert masked is not None
    assert re.search(r"[0-9]{6}", masked) is None


@pytest.mark.parametrize(
    ("name", "masked"),
    [("张三", "张*"), ("欧阳娜娜", "欧***"), ("Z", "*"), ("", ""), (None, None)],
)
def test_mask_name(name: str | None, masked: str | None) -> None:
    assert mask_name(name) == masked


def principal(role: Role, user_id: int = 7) -> Principal:
    return Principal(
        user_id=user_id,
        username="u",
        display_name="",
        role=role,
        region_code="330400",
        skills=(),
        languages=(),
        auth_kind="bearer",
        session_hash="x",
    )


@pytest.mark.parametrize(
    ("role", "call_agent", "full"),
    [
        (Role.ADMIN, None, True),
        (Role.ADMIN, 99, True),
        (Role.AGENT, 7, True),  # the agent handling the call
        (Role.AGENT, 99, False),  # another agent's call
        (Role.AGENT, None, False),  # a call in the queue
        (Role.SUPERVISOR, 99, False),  # wallboards show masked numbers
        (Role.SUPERVISOR, 7, True),  # ...unless the supervisor took the call themself
        (Role.FOLLOWUP, None, False),
    ],
)
def test_who_sees_full_numbers(role: Role, call_agent: int | None, full: bool) -> None:
    assert can_see_full_number(principal(role), call_agent) is full
