"""Caller location with the real phonenumbers geocoder (no mocks)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcenter.routing.locate import Locator, number_facts
from tests.routing import MOBILE, zhejiang


@pytest.fixture(scope="module")
def locator() -> Locator:
    return Locator(zhejiang(), {"trunk-jx-01": "330400", "88001234": "330900"})


@pytest.mark.parametrize(("city", "number"), sorted(MOBILE.items()))
def test_given_a_mobile_of_a_zhejiang_city_then_that_city(
    locator: Locator, city: str, number: str
) -> None:
    location = locator.locate(number)
    assert (location.city_code, location.source) == (city, "caller")
    assert location.description.startswith("浙江省")
    assert location.caller_e164 == "+86" + number


@pytest.mark.parametrize(
    ("number", "city"),
    [
        ("0573-82345678", "330400"),  # 嘉兴
        ("057182345678", "330100"),  # 杭州, no separator
        ("0577 8888 8888", "330300"),  # 温州
        ("0580-2012345", "330900"),  # 舟山, 7-digit local number
        ("0570-8012345", "330800"),  # 衢州
        ("(0576) 8123-4567", "331000"),  # 台州
    ],
)
def test_given_a_landline_with_area_code_then_its_city(
    locator: Locator, number: str, city: str
) -> None:
    assert locator.locate(number).city_code == city


@pytest.mark.parametrize(
    "number",
    [
        "+8613002601234",
        "+86 130 0260 1234",
        "008613002601234",
        "86 13002601234",
        "+86-573-8234-5678",
        "0086 573 82345678",
        "+86 0573 82345678",  # trunk prefix kept after +86, as some PBXs send it
        "１３００２６０１２３４",  # full-width digits
    ],
)
def test_given_international_forms_then_same_city(locator: Locator, number: str) -> None:
    assert locator.locate(number).city_code == "330400"


@pytest.mark.parametrize(
    ("number", "where"),
    [
        ("13800138000", "北京市"),  # Beijing mobile
        ("021-62345678", "上海市"),  # Shanghai landline
        ("+86 20 8123 4567", "广东省广州市"),
        ("+1 650 253 0000", "美国"),  # abroad
    ],
)
def test_given_a_number_of_another_province_then_out_of_province(
    locator: Locator, number: str, where: str
) -> None:
    location = locator.locate(number, called="057312348")
    assert location.city_code is None
    assert location.out_of_province
    assert location.source == "caller"
    assert where in location.description


@pytest.mark.parametrize(
    "caller",
    [None, "", "   ", "anonymous", "Anonymous", "<unknown>", "restricted", "abc", "12345", "0"],
)
def test_given_no_usable_caller_number_then_unknown(locator: Locator, caller: str | None) -> None:
    location = locator.locate(caller)
    assert (location.city_code, location.source, location.out_of_province) == (
        None,
        "unknown",
        False,
    )
    assert location.description


def test_given_a_nationwide_400_number_then_unknown_not_out_of_province(locator: Locator) -> None:
    location = locator.locate("400-800-1234")
    assert location.source == "unknown"
    assert not location.out_of_province


@pytest.mark.parametrize(
    ("called", "city"),
    [
        ("057312348", "330400"),
        ("0573-12348", "330400"),
        ("+8657112348", "330100"),
        ("8657712348", "330300"),
        ("0580 8800 1234", "330900"),
    ],
)
def test_given_unknown_caller_when_called_number_carries_area_code_then_city_from_called(
    locator: Locator, called: str, city: str
) -> None:
    location = locator.locate("anonymous", called=called)
    assert (location.city_code, location.source) == (city, "called")


@pytest.mark.parametrize("called", ["12348", "57312348", "", "garbage", "05"])
def test_given_called_number_without_area_code_then_it_names_no_city(
    locator: Locator, called: str
) -> None:
    assert locator.locate(None, called=called).source == "unknown"


def test_given_unknown_caller_when_trunk_is_mapped_then_city_from_trunk(locator: Locator) -> None:
    location = locator.locate("", called="12348", trunk="trunk-jx-01")
    assert (location.city_code, location.source) == ("330400", "trunk")
    assert "trunk-jx-01" in location.description


def test_given_a_did_in_the_trunk_map_then_city_from_trunk(locator: Locator) -> None:
    assert locator.locate(None, called="88001234").city_code == "330900"


def test_given_caller_known_then_caller_wins_over_called_by_default(locator: Locator) -> None:
    location = locator.locate(MOBILE["330100"], called="057312348", trunk="trunk-jx-01")
    assert (location.city_code, location.source) == ("330100", "caller")


def test_given_called_first_in_order_then_called_wins() -> None:
    locator = Locator(zhejiang(), {}, order=("called", "caller"))
    location = locator.locate(MOBILE["330100"], called="057312348")
    assert (location.city_code, location.source) == ("330400", "called")


def test_given_trunk_first_then_out_of_province_caller_still_reaches_the_city() -> None:
    """A Shanghai mobile roaming in Jiaxing reaches the Jiaxing trunk: trust it if configured."""
    locator = Locator(zhejiang(), {"trunk-jx-01": "330400"}, order=("trunk", "caller"))
    assert locator.locate("13800138000", trunk="trunk-jx-01").city_code == "330400"


def test_given_same_number_twice_then_the_lookup_is_cached() -> None:
    assert number_facts("0573-82345678") is number_facts("0573-82345678")


def test_given_a_very_long_string_then_unknown_without_parsing() -> None:
    assert number_facts("1" * 10_000).e164 is None


@given(caller=st.text(max_size=60), called=st.text(max_size=30), trunk=st.text(max_size=20))
def test_any_text_as_numbers_never_raises(caller: str, called: str, trunk: str) -> None:
    locator = Locator(zhejiang(), {"t": "330400"})
    location = locator.locate(caller, called=called, trunk=trunk)
    assert location.source in {"caller", "called", "trunk", "unknown"}
    assert location.city_code is None or location.city_code.startswith("33")


@given(st.from_regex(r"\A[+0-9 ()\-]{0,24}\Z"))
def test_any_digit_soup_never_raises(raw: str) -> None:
    facts = number_facts(raw)
    assert facts.e164 is None or facts.e164.startswith("+")
