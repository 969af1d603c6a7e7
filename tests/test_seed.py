"""Province data files and the idempotent seed."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from callcenter.db.engine import make_engine, make_sessionmaker
from callcenter.db.models import Queue, Region
from callcenter.regions.provinces import ProvinceDataError, load_province, province_file
from callcenter.regions.seed import seed_province

ZHEJIANG_AREA_CODES = {
    "杭州市": "0571", "宁波市": "0574", "温州市": "0577", "嘉兴市": "0573",
    "湖州市": "0572", "绍兴市": "0575", "金华市": "0579", "衢州市": "0570",
    "舟山市": "0580", "台州市": "0576", "丽水市": "0578",
}  # fmt: skip


async def test_given_seeded_db_then_eleven_cities_with_area_codes_and_queues(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        async with make_sessionmaker(engine)() as s:
            cities = (await s.execute(select(Region).where(Region.level == "city"))).scalars()
            assert {c.name: c.area_code for c in cities} == ZHEJIANG_AREA_CODES
            jiaxing = await s.get(Region, "330400")
            assert jiaxing is not None and jiaxing.parent_code == "330000"
            queues = {q.name: q.kind for q in (await s.execute(select(Queue))).scalars()}
            assert queues["city-330400"] == "city"
            assert queues["province"] == "province" and queues["province-duty"] == "duty"
            assert sum(1 for kind in queues.values() if kind == "city") == 11
    finally:
        await engine.dispose()


async def test_given_seeded_db_when_seeded_again_then_nothing_duplicated(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    try:
        async with make_sessionmaker(engine)() as s:
            result = await seed_province(s, load_province(province_file("330000")))
            assert (result.regions_added, result.queues_added) == (0, 0)
            assert (await s.execute(select(func.count()).select_from(Region))).scalar_one() == 12
            assert (await s.execute(select(func.count()).select_from(Queue))).scalar_one() == 13
    finally:
        await engine.dispose()


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda t: t.replace('code: "330400"', 'code: "440400"'), "is not a city of 330000"),
        (lambda t: t.replace('area_code: "0573"', 'area_code: "573"'), "cities.3.area_code"),
        (lambda t: t.replace('code: "330500"', 'code: "330400"'), "appears twice"),
        (lambda t: t.replace("province:", "provinse:"), "province: Field required"),
        (lambda t: t + "\n  - [unclosed", "not valid YAML"),
    ],
)
def test_given_broken_province_file_then_error_names_file_and_field(
    tmp_path: Path, mutate: object, expected: str
) -> None:
    bad = tmp_path / "330000.yaml"
    bad.write_text(mutate(province_file("330000").read_text(encoding="utf-8")), encoding="utf-8")  # type: ignore[operator]
    with pytest.raises(ProvinceDataError) as err:
        load_province(bad)
    assert str(err.value).startswith(str(bad))
    assert expected in str(err.value)


def test_given_missing_province_file_then_clear_error() -> None:
    with pytest.raises(ProvinceDataError, match="cannot read"):
        load_province(province_file("990000"))
