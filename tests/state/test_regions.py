"""Which region a queue, a call and an agent belong to."""

from __future__ import annotations

from callcenter.db.engine import make_engine, make_sessionmaker
from callcenter.regions.provinces import load_province, province_file
from callcenter.state import Regions, queue_regions_from_db


def test_queues_of_the_province_file() -> None:
    regions = Regions.from_province(load_province(province_file("330000")))
    assert regions.queue("city-330400") == "330400"
    assert regions.queue("province") == regions.queue("province-duty") == "330000"
    assert regions.queue("legal-consult") is None
    assert regions.queue_or_default("legal-consult") == "330000"


def test_call_region_prefers_queue_then_caller_then_province() -> None:
    regions = Regions("330000", {"city-330400": "330400", "province": "330000"})
    assert regions.call("province", "330400") == "330000"  # overflowed: the province serves it
    assert regions.call("legal-consult", "330400") == "330400"
    assert regions.call(None, None) == "330000"


def test_agent_region_is_the_most_specific_of_their_queues() -> None:
    regions = Regions("330000", {"city-330400": "330400", "province": "330000"})
    assert regions.agent("PJSIP/8009", ["province", "city-330400", "legal-aid"]) == "330400"
    assert regions.agent("PJSIP/8004", ["province"]) == "330000"
    seats = Regions("330000", agent_region={"PJSIP/8001": "330100"}.get)
    assert seats.agent("PJSIP/8001", ["province"]) == "330100"


def test_a_failing_locate_is_logged_not_raised() -> None:
    def broken(number: str | None) -> str | None:
        raise RuntimeError("geocoder down")

    assert Regions("330000", locate=broken).caller("13805730001") is None


async def test_queue_regions_from_the_seeded_database(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    try:
        async with make_sessionmaker(engine)() as session:
            found = await queue_regions_from_db(session)
    finally:
        await engine.dispose()
    expected = Regions.from_province(load_province(province_file("330000")))
    assert found and all(expected.queue(name) == code for name, code in found.items())
