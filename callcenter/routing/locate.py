"""Caller number → city of the province, with ``phonenumbers`` and its Chinese geocoder.

Caller ID is untrusted text from the network: it may be empty, ``anonymous``, carry +86/0086,
full-width digits or plain garbage. Nothing here raises on such input; it yields "unknown" and
the call goes to the provincial queue. Geocoding costs ~20 µs, so results are cached per raw
string (the same callers ring again and again).

Sources, tried in the configured order:
- ``caller``: the geocoder names province and city ("浙江省嘉兴市"); a valid number of another
  province or country is *out of province* and stops the search (provincial queue);
- ``called``: the number the caller dialled names the city by its area code (0573-12348);
- ``trunk``: the rules file maps a trunk name or DID to a city.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import phonenumbers
from phonenumbers import NumberParseException, geocoder
from phonenumbers.phonenumberutil import is_number_type_geographical

from callcenter.regions.provinces import ProvinceData

Source = Literal["caller", "called", "trunk"]
LocationSource = Literal["caller", "called", "trunk", "unknown"]

CN = 86
_MAX_RAW = 40  # longer caller IDs are not phone numbers; also bounds the cache's memory
_UNKNOWN_TYPE = phonenumbers.PhoneNumberType.UNKNOWN
E164 = phonenumbers.PhoneNumberFormat.E164


@dataclass(frozen=True, slots=True)
class NumberFacts:
    """What ``phonenumbers`` says about one raw number string (independent of the province)."""

    e164: str | None = None  # only for valid numbers
    country_code: int = 0
    national: str = ""
    national_form: bool = False  # dialled with 0 / +86 / 0086: a leading area code is meaningful
    valid: bool = False
    mobile: bool = False
    geographic: bool = False
    description: str = ""  # Chinese geocoder text, e.g. "浙江省嘉兴市"; "" when unknown


UNKNOWN_NUMBER = NumberFacts()


@dataclass(frozen=True, slots=True)
class Location:
    """Where a call comes from, as far as routing is concerned."""

    city_code: str | None
    source: LocationSource
    description: str
    out_of_province: bool = False
    caller_e164: str | None = None


def _parse(text: str) -> phonenumbers.PhoneNumber | None:
    try:
        return phonenumbers.parse(text, "CN")
    except NumberParseException:
        return None


def _describe(number: phonenumbers.PhoneNumber, kind: int, geographic: bool) -> str:
    """Same result as ``geocoder.description_for_number(number, "zh")`` without validating the
    number a second time (that check is three quarters of its cost)."""
    if kind == _UNKNOWN_TYPE:
        return ""
    if not geographic:
        return str(geocoder.country_name_for_number(number, "zh"))
    return str(geocoder.description_for_valid_number(number, "zh"))


def _facts(number: phonenumbers.PhoneNumber, text: str) -> NumberFacts:
    kind = phonenumbers.number_type(number)
    country = int(number.country_code or 0)
    national = str(number.national_number or "")
    geographic = kind != _UNKNOWN_TYPE and is_number_type_geographical(kind, country)
    # Something was stripped in front (0, +86, 0086, 86): a leading area code is meaningful.
    digits = phonenumbers.normalize_digits_only(text)
    national_form = digits.startswith("0") or len(digits) > len(national) + len(
        number.extension or ""
    )
    return NumberFacts(
        e164=phonenumbers.format_number(number, E164) if kind != _UNKNOWN_TYPE else None,
        country_code=country,
        national=national,
        national_form=national_form,
        valid=kind != _UNKNOWN_TYPE,
        mobile=kind == phonenumbers.PhoneNumberType.MOBILE,
        geographic=geographic,
        description=_describe(number, kind, geographic),
    )


@lru_cache(maxsize=65536)
def _cached_facts(text: str) -> NumberFacts:
    number = _parse(text)
    return UNKNOWN_NUMBER if number is None else _facts(number, text)


def number_facts(raw: str | None) -> NumberFacts:
    """Parse and geocode ``raw`` (cached); anything unusable gives ``UNKNOWN_NUMBER``."""
    if not raw:
        return UNKNOWN_NUMBER
    text = raw.strip()
    if not text or len(text) > _MAX_RAW:
        return UNKNOWN_NUMBER
    return _cached_facts(text)


def warm_up() -> None:
    """Load phonenumbers' CN metadata and geocoder data now (5–10 ms, lazily loaded on first
    use) so that the first real call does not pay for it."""
    _describe_uncached("13800138000")
    _describe_uncached("057112348")


def _describe_uncached(text: str) -> None:
    number = _parse(text)
    if number is not None:
        _facts(number, text)


def clear_number_cache() -> None:
    """Forget cached look-ups (benchmarks measure the cold path with it)."""
    _cached_facts.cache_clear()


@dataclass(frozen=True, slots=True)
class _Hit:
    city_code: str | None
    description: str
    out_of_province: bool = False


class Locator:
    """Maps numbers and trunks to a city code of one province. Build once, share freely."""

    def __init__(
        self,
        province: ProvinceData,
        trunks: Mapping[str, str] | None = None,
        order: Sequence[Source] = ("caller", "called", "trunk"),
    ) -> None:
        self._province_name = province.province.name
        self._by_description = {province.province.name + c.name: c.code for c in province.cities}
        self._by_area = {c.area_code[1:]: c.code for c in province.cities if c.area_code}
        self._area_lengths = sorted({len(a) for a in self._by_area}, reverse=True)
        self._city_names = {c.code: c.name for c in province.cities}
        self._area_of = {c.code: c.area_code or "" for c in province.cities}
        self._trunks = dict(trunks or {})
        self._order = tuple(order)

    def locate(
        self, caller: str | None, called: str | None = None, trunk: str | None = None
    ) -> Location:
        """First source (in the configured order) that names a city, or out-of-province."""
        facts = number_facts(caller)
        for source in self._order:
            hit = self._hit(source, facts, called, trunk)
            if hit is not None:
                return Location(
                    hit.city_code, source, hit.description, hit.out_of_province, facts.e164
                )
        return Location(None, "unknown", facts.description or "无法判断来电归属", False, facts.e164)

    def _hit(
        self, source: Source, facts: NumberFacts, called: str | None, trunk: str | None
    ) -> _Hit | None:
        if source == "caller":
            return self._from_caller(facts)
        if source == "called":
            return self._from_called(number_facts(called))
        return self._from_trunk(trunk, called)

    def _from_caller(self, facts: NumberFacts) -> _Hit | None:
        if not facts.valid:
            return None
        if facts.country_code != CN:
            return _Hit(None, facts.description or "境外号码", out_of_province=True)
        hit = self._in_province(facts)
        if hit is None and facts.geographic and facts.description:
            if not facts.description.startswith(self._province_name):
                return _Hit(None, facts.description, out_of_province=True)
        return hit

    def _from_called(self, facts: NumberFacts) -> _Hit | None:
        if facts.country_code != CN:
            return None
        return self._in_province(facts)

    def _from_trunk(self, trunk: str | None, called: str | None) -> _Hit | None:
        for key, label in ((trunk, "中继"), (called, "被叫号码")):
            city = self._trunks.get(key) if key else None
            if city is None and key is trunk and key in self._city_names:
                city = key  # the dialplan names the trunk by its city (agi_arg_1, 330400)
            if city is not None:
                return _Hit(city, f"{label} {key} → {self._city_names.get(city, city)}")
        return None

    def _in_province(self, facts: NumberFacts) -> _Hit | None:
        """City from the geocoder's text, else from a landline area code."""
        city = self._by_description.get(facts.description)
        if city is None and facts.description.startswith(self._province_name):
            city = self._by_prefix(facts.description)
        if city is None and facts.national_form and not facts.mobile:
            city = self._by_area_code(facts.national)
        if city is None:
            return None
        return _Hit(city, facts.description or f"区号 {self._area_of[city]}")

    def _by_prefix(self, description: str) -> str | None:
        """County-level text such as "浙江省杭州市萧山区" (not in today's data, cheap to allow)."""
        for text, code in self._by_description.items():
            if description.startswith(text):
                return code
        return None

    def _by_area_code(self, national: str) -> str | None:
        for length in self._area_lengths:
            city = self._by_area.get(national[:length])
            if city is not None and len(national) > length:
                return city
        return None

    def city_name(self, code: str) -> str:
        return self._city_names.get(code, code)
