"""Region scope rules of ``Principal``: examples first, then properties over all codes."""

from __future__ import annotations

import dataclasses
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcenter.auth.principal import Principal
from callcenter.db.models import Role

DIGITS = "0123456789"
codes = st.text(alphabet=DIGITS, min_size=6, max_size=6)
two = st.text(alphabet=DIGITS, min_size=2, max_size=2)
nonzero_two = two.filter(lambda s: s != "00")


def principal(region_code: str, role: Role = Role.AGENT) -> Principal:
    return Principal(
        user_id=1,
        username="u",
        display_name="",
        role=role,
        region_code=region_code,
        skills=(),
        languages=(),
        auth_kind="cookie",
        session_hash="h",
    )


@pytest.mark.parametrize(
    ("user_region", "code", "visible"),
    [
        ("330000", "330000", True),
        ("330000", "330400", True),
        ("330000", "330402", True),
        ("330000", "340000", False),
        ("330400", "330400", True),
        ("330400", "330402", True),
        ("330400", "330100", False),
        ("330400", "330000", False),  # a city does not see province-level records
        ("330402", "330402", True),
        ("330402", "330400", False),
        ("330402", "330403", False),
    ],
)
def test_given_examples_then_scope_follows_the_code_layout(
    user_region: str, code: str, visible: bool
) -> None:
    assert principal(user_region).can_see_region(code) is visible


@pytest.mark.parametrize(
    ("user_region", "prefix"), [("330000", "33"), ("330400", "3304"), ("330402", "330402")]
)
def test_region_prefix(user_region: str, prefix: str) -> None:
    assert principal(user_region).region_prefix == prefix


def test_given_no_region_then_only_province_scope_sees_it() -> None:
    assert principal("330000").can_see_region(None)
    assert not principal("330400").can_see_region(None)
    assert not principal("330000", Role.ADMIN).can_see_region("340100")


@given(province=two, code=codes)
def test_province_user_sees_exactly_its_province(province: str, code: str) -> None:
    assert principal(province + "0000").can_see_region(code) is (code[:2] == province)


@given(province=two, city=nonzero_two, code=codes)
def test_city_user_sees_exactly_its_city_and_counties(province: str, city: str, code: str) -> None:
    user = principal(province + city + "00")
    assert user.can_see_region(code) is (code[:4] == province + city)


@given(prefix=st.text(alphabet=DIGITS, min_size=4, max_size=4), county=nonzero_two, code=codes)
def test_county_user_sees_only_itself(prefix: str, county: str, code: str) -> None:
    assert principal(prefix + county).can_see_region(code) is (code == prefix + county)


@given(user_region=codes, code=codes)
def test_whatever_a_user_sees_their_province_sees_too(user_region: str, code: str) -> None:
    province = principal(user_region[:2] + "0000")
    if principal(user_region).can_see_region(code):
        assert province.can_see_region(code)
        assert code.startswith(principal(user_region).region_prefix)


@given(user_region=codes, junk=st.text().filter(lambda s: not re.fullmatch("[0-9]{6}", s)))
def test_anything_but_a_six_digit_code_is_invisible(user_region: str, junk: str) -> None:
    assert not principal(user_region).can_see_region(junk)


def test_has_role_and_immutability() -> None:
    user = principal("330400", Role.SUPERVISOR)
    assert user.has_role(Role.SUPERVISOR, Role.ADMIN)
    assert not user.has_role(Role.ADMIN)
    with pytest.raises(dataclasses.FrozenInstanceError):
        user.role = Role.ADMIN  # type: ignore[misc]


def test_repr_hides_the_session_hash_and_csrf_token() -> None:
    user = dataclasses.replace(principal("330400"), session_hash="SECRET1", csrf_token="SECRET2")
    assert "SECRET" not in repr(user)
