"""Who calls: Chinese names and phone numbers that geocode to the caller's city.

The platform finds a caller's city with ``phonenumbers``' Chinese geocoder, so simulated
numbers must be real-looking: mobile numbers use 7-digit prefixes (号段) that the geocoder maps
to each Zhejiang city (checked against ``phonenumbers`` in the tests), landlines use the city's
long-distance code and an 8-digit local number.  A share of callers have numbers from other
provinces (migrant workers calling the city they work in).  ``136``/``137``/``138`` numbers are
avoided: the simulator's Originate treats those as congestion / no answer / busy, and a
callback to a generated caller should normally go through.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import phonenumbers

__all__ = [
    "MOBILE_PREFIXES",
    "OTHER_PROVINCE_PREFIXES",
    "CallerIdentity",
    "chinese_name",
    "make_caller",
]

MOBILE_PREFIXES: dict[str, tuple[str, ...]] = {
    "330100": ("1390581", "1390651", "1350581", "1500581", "1580581", "1880651", "1330581"),
    "330200": ("1390574", "1395740", "1350574", "1500574", "1580574", "1885740", "1330574"),
    "330300": ("1390665", "1395775", "1350665", "1505754", "1582562", "1881498", "1860665"),
    "330400": ("1395733", "1396734", "1351673", "1506734", "1585733", "1885733", "1865733"),
    "330500": ("1390672", "1395726", "1350672", "1506727", "1585726", "1885726", "1330672"),
    "330600": ("1395754", "1396755", "1351575", "1506755", "1585754", "1885754", "1865754"),
    "330700": ("1390679", "1395796", "1350679", "1502457", "1585796", "1885796", "1330679"),
    "330800": ("1351141", "1356706", "1505705", "1506895", "1585705", "1889268", "1865705"),
    "330900": ("1396720", "1356769", "1357560", "1885705", "1885838", "1332590", "1865803"),
    "331000": ("1390658", "1390686", "1350686", "1505761", "1582408", "1880686", "1330686"),
    "331100": ("1390588", "1395705", "1356762", "1500588", "1585782", "1885782", "1330588"),
}
"""Prefix -> city as ``phonenumbers.geocoder`` (zh) reports it, keyed by GB/T 2260 city code."""

OTHER_PROVINCE_PREFIXES: tuple[str, ...] = (
    "1500000",  # 上海市
    "1391400",  # 江苏省苏州市
    "1395600",  # 安徽省合肥市
    "1352100",  # 北京市
    "1390700",  # 江西省南昌市
    "1351400",  # 福建省泉州市
    "1394900",  # 河南省郑州市
)

_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶程"
    "苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦方白邹孟熊秦邱江尹薛段雷侯龙史陶黎贺顾毛郝"
    "龚邵万钱严戴莫孔汤欧阳"
)
_GIVEN = (
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍鹏辉玲红建国志文斌宇浩凯婷雪琳晨"
    "欣怡涵轩雨"
)


@dataclass(frozen=True)
class CallerIdentity:
    number: str
    name: str
    home_city: str | None
    """City code the number belongs to (None: another province)."""


def chinese_name(rng: random.Random) -> str:
    """A surname and one or two given-name characters (张伟, 李秀英)."""
    surname = rng.choice(_SURNAMES)
    given = "".join(rng.choice(_GIVEN) for _ in range(rng.choice((1, 2, 2))))
    return surname + given


def _mobile(rng: random.Random, prefixes: tuple[str, ...]) -> str:
    return rng.choice(prefixes) + f"{rng.randrange(10_000):04d}"


def _landline(rng: random.Random, area_code: str) -> str:
    """8-digit local number, or 7 digits where the city still has those (湖州, 衢州, 舟山, 丽水)."""
    local = str(rng.randrange(2, 9)) + f"{rng.randrange(10_000_000):07d}"
    number = area_code + local
    if not phonenumbers.is_valid_number(phonenumbers.parse(number, "CN")):
        number = area_code + local[:7]
    return number


def make_caller(
    rng: random.Random,
    city_code: str,
    area_code: str | None,
    *,
    other_province_share: float = 0.1,
    landline_share: float = 0.15,
) -> CallerIdentity:
    """A caller calling the 12348 line of ``city_code``."""
    name = chinese_name(rng)
    draw = rng.random()
    if draw < other_province_share:
        return CallerIdentity(_mobile(rng, OTHER_PROVINCE_PREFIXES), name, None)
    if draw < other_province_share + landline_share and area_code:
        return CallerIdentity(_landline(rng, area_code), name, city_code)
    prefixes = MOBILE_PREFIXES.get(city_code, OTHER_PROVINCE_PREFIXES)
    home = city_code if city_code in MOBILE_PREFIXES else None
    return CallerIdentity(_mobile(rng, prefixes), name, home)
