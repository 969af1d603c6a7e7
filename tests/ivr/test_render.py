"""Asterisk configuration rendered from the database, parsed back and checked.

The files are rendered for the seeded default province (浙江省) with real seats and queue
members in SQLite and PostgreSQL, then parsed: every city has its entry context, every queue
and seat is there, every Goto/GotoIf/Queue target exists, hostile names are refused.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import pytest_asyncio
from pydantic import SecretStr
from sqlalchemy import select

from callcenter.db import migrate
from callcenter.db.engine import make_engine, make_sessionmaker
from callcenter.db.models import Queue, QueueMember, Seat
from callcenter.errors import InvalidInput
from callcenter.settings import ConfigError, Settings
from ivr_flows.render import (
    DEFAULT_ANNOUNCEMENTS,
    DEFAULT_TRANSFERS,
    MARKER,
    City,
    DialplanSpec,
    Inventory,
    QueueInfo,
    QueueMemberInfo,
    RefusedOverwrite,
    RenderedConfigInvalid,
    SeatInfo,
    TransferTarget,
    UnsafeConfigValue,
    check_rendered,
    default_spec,
    goto_targets,
    inbound_contexts,
    load_inventory,
    parse_conf,
    parse_dialplan,
    render_asterisk,
    seat_password,
    split_args,
    write_rendered,
)
from tests.conftest import PgDatabases, seed_database

KEY = SecretStr("test-secret-key-for-seat-passwords-0123456789")
SEATS = {
    # extension: (name, region, [(queue, penalty)])
    "8001": ("张伟", "330100", [("city-330100", 0), ("province", 1)]),
    "8002": ("李娜", "330100", [("city-330100", 0)]),
    "8100": ("赵敏", "330400", [("city-330400", 0)]),
    "8004": ("省中心-陈静", "330000", [("province", 0), ("province-duty", 0)]),
}
HOSTILE = ["张伟\n[evil]", "a;b", "a,b", "Dial(x)", "${SHELL(rm)}", 'x" <1>', "a\rb"]


async def add_seats(url: str, seats: dict[str, tuple[str, str, list[tuple[str, int]]]]) -> None:
    engine = make_engine(url)
    try:
        async with make_sessionmaker(engine)() as s:
            queues = {q.name: q.id for q in (await s.execute(select(Queue))).scalars()}
            for ext, (name, region, memberships) in seats.items():
                seat = Seat(extension=ext, name=name, region_code=region)
                s.add(seat)
                await s.flush()
                for queue, penalty in memberships:
                    s.add(QueueMember(queue_id=queues[queue], seat_id=seat.id, penalty=penalty))
            await s.commit()
    finally:
        await engine.dispose()


@pytest_asyncio.fixture(scope="module")
async def seated_pg_url(pg_databases: PgDatabases) -> str:
    """A PostgreSQL database of this module's own (never the shared one), seeded, with seats."""
    url = await pg_databases.create()
    await migrate.upgrade(url)
    await seed_database(url)
    await add_seats(url, SEATS)
    return url


@pytest_asyncio.fixture
async def seated_sqlite_url(sqlite_url: str) -> str:
    await add_seats(sqlite_url, SEATS)
    return sqlite_url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def seated_url(request: pytest.FixtureRequest) -> str:
    """The seeded province with four seats in their queues, on SQLite and on PostgreSQL."""
    name = "seated_sqlite_url" if request.param == "sqlite" else "seated_pg_url"
    return str(request.getfixturevalue(name))


async def inventory_of(url: str) -> Inventory:
    engine = make_engine(url)
    try:
        return await load_inventory(make_sessionmaker(engine), "330000")
    finally:
        await engine.dispose()


def spec(**changes: object) -> DialplanSpec:
    base = DialplanSpec(
        agi_url="agi://10.0.0.5:4573/ivr",
        pbx_node="js1",
        transfers=DEFAULT_TRANSFERS,
        announcements=DEFAULT_ANNOUNCEMENTS,
        survey=True,
        seat_password_key=KEY,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def small_inventory(**changes: object) -> Inventory:
    base = Inventory(
        province_code="330000",
        province_name="浙江省",
        cities=(City("330400", "嘉兴市", "0573"),),
        queues=(
            QueueInfo("city-330400", "嘉兴市12348", "city", "330400", "ringall", 5, 20),
            QueueInfo(
                "province",
                "省级中心",
                "province",
                "330000",
                "rrmemory",
                15,
                None,
                (QueueMemberInfo("8001", "张伟"),),
            ),
        ),
        seats=(SeatInfo("8001", "张伟", "330400"),),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- from the database


async def test_given_seeded_province_with_seats_when_rendered_then_every_city_has_an_entry(
    seated_url: str,
) -> None:
    inventory = await inventory_of(seated_url)
    plan = parse_dialplan(render_asterisk(spec(), inventory)["extensions.conf"])
    assert len(inventory.cities) == 11
    for city in inventory.cities:
        context = f"from-trunk-{city.code}"
        steps = [s for s in plan.steps if s.context == context and s.exten == "12348"]
        agi = [s for s in steps if s.app == "AGI"]
        assert len(agi) == 1
        url, city_arg, language = split_args(agi[0].args)
        assert url == "agi://10.0.0.5:4573/ivr?entry=main&node=js1"
        assert (city_arg, language) == (city.code, "zh-CN")
        assert any(s.app == "Set" and s.args == f"__HOTLINE_CITY={city.code}" for s in steps)
        dispatch = [s for s in plan.steps if s.context == "from-trunk"]
        assert any(
            s.exten == f"{city.area_code}12348" and s.args == f"{context},12348,1" for s in dispatch
        )
    assert inbound_contexts(inventory)[0] == "from-trunk"
    assert set(inbound_contexts(inventory)) <= plan.contexts


async def test_given_seeded_province_when_rendered_then_every_db_queue_is_in_queues_conf(
    seated_url: str,
) -> None:
    inventory = await inventory_of(seated_url)
    queues = parse_conf(render_asterisk(spec(), inventory)["queues.conf"])
    by_name = {s.name: s for s in queues.sections}
    assert len(inventory.queues) == 13
    for q in inventory.queues:
        section = by_name[q.name]
        assert section.get("strategy") == q.strategy == "rrmemory"
        assert section.get("timeout") == str(q.ring_timeout_s)
        assert section.get("context") == "hotline-queue-exit"
        assert section.get("announce-position") == "yes"
        assert section.get("periodic-announce") == "hotline/virtual-hold-offer"
        assert section.get("setinterfacevar") == "yes"
    assert set(by_name) == {q.name for q in inventory.queues} | {"general"}


async def test_given_seats_in_db_when_rendered_then_each_has_endpoint_aor_auth_and_membership(
    seated_url: str,
) -> None:
    files = render_asterisk(spec(), await inventory_of(seated_url))
    pjsip = parse_conf(files["pjsip.conf"])
    queues = {s.name: s for s in parse_conf(files["queues.conf"]).sections}
    for ext, (name, _region, memberships) in SEATS.items():
        assert [s.template for s in pjsip.named(ext)] == ["seat-endpoint", "seat-aor"]
        endpoint = pjsip.named(ext)[0]
        assert endpoint.get("auth") == f"{ext}-auth" and endpoint.get("aors") == ext
        assert endpoint.get("callerid") == f'"{name}" <{ext}>'
        (auth,) = pjsip.named(f"{ext}-auth")
        assert auth.template == "seat-auth" and auth.get("username") == ext
        assert auth.get("password") == seat_password(KEY, ext)
        for queue, penalty in memberships:
            assert f"PJSIP/{ext},{penalty},{name},PJSIP/{ext}" in queues[queue].all("member")
    (template,) = pjsip.named("seat-endpoint")
    assert template.template == "!" and template.get("context") == "hotline-seats"
    assert ("type", "auth") in pjsip.named("seat-auth")[0].options
    assert pjsip.includes == ["pjsip_trunks.conf"]
    assert queues["city-330200"].all("member") == []


async def test_given_rendered_dialplan_then_every_goto_and_queue_target_exists(
    seated_url: str,
) -> None:
    inventory = await inventory_of(seated_url)
    files = render_asterisk(spec(), inventory)
    plan = parse_dialplan(files["extensions.conf"])
    queue_names = {s.name for s in parse_conf(files["queues.conf"]).sections}
    checked = 0
    for step in plan.steps:
        for context, exten, prio in goto_targets(step):
            assert context in plan.contexts, step
            if "${" in exten:
                assert (context, exten) == ("hotline-transfer", "${HOTLINE_TRANSFER}")
                assert "i" in plan.extensions(context)  # an unknown target ends the call
                continue
            assert exten in plan.extensions(context), step
            assert prio == "1" or prio in plan.labels(context, exten), step
            checked += 1
    assert checked >= 11 * 6
    for step in plan.apps("Set"):
        if step.args.startswith(("HOTLINE_QUEUE=", "HOTLINE_OVERFLOW_QUEUE=")):
            value = step.args.split("=", 1)[1]
            assert value == "" or value in queue_names
    assert check_rendered(files, spec(), inventory) == []


async def test_given_transfers_and_entries_when_rendered_then_targets_and_agi_entries_exist(
    seated_url: str,
) -> None:
    files = render_asterisk(spec(), await inventory_of(seated_url))
    plan = parse_dialplan(files["extensions.conf"])
    transfer = {
        s.exten: s for s in plan.steps if s.context == "hotline-transfer" and s.app == "Dial"
    }
    for target in DEFAULT_TRANSFERS:
        assert transfer[target.name].args == f"PJSIP/{target.number}@{target.trunk},60"
    for ext in SEATS:
        assert transfer[ext].args == f"PJSIP/{ext},30"
    assert {"12345", "110", "8001"} <= plan.extensions("hotline-seats")
    entries = {}
    for step in plan.apps("AGI"):
        url = split_args(step.args)[0]
        match = re.fullmatch(r"agi://10\.0\.0\.5:4573/ivr\?entry=(\w+)&node=js1", url)
        assert match, url
        entries.setdefault(match.group(1), set()).add(step.context)
    assert entries["virtual_hold"] == {"hotline-queue-exit"}
    assert entries["survey"] == {"hotline-survey"}
    assert len(entries["main"]) == 11
    exit_step = next(s for s in plan.steps if s.context == "hotline-queue-exit")
    assert exit_step.exten == "1"
    assert split_args(exit_step.args)[1:] == ["${HOTLINE_CITY}", "${CHANNEL(language)}"]
    # the seat hangs up -> the caller continues (option c) into the survey
    queue_steps = [s for s in plan.apps("Queue") if s.context == "from-trunk-330400"]
    assert [split_args(s.args)[1] for s in queue_steps] == ["tc", "tc"]


async def test_given_fastagi_down_when_rendered_then_caller_still_queues_city_then_province(
    seated_url: str,
) -> None:
    files = render_asterisk(spec(), await inventory_of(seated_url))
    plan = parse_dialplan(files["extensions.conf"])
    steps = [s for s in plan.steps if s.context == "from-trunk-330400"]
    fallback = steps[[s.label for s in steps].index("fallback") :]
    assert [s.args for s in fallback if s.app == "Set"] == [
        "HOTLINE_ACTION=queue",
        "HOTLINE_QUEUE=city-330400",
        "HOTLINE_OVERFLOW_QUEUE=province",
        "HOTLINE_OVERFLOW_AFTER=60",
    ]
    assert fallback[-1].app == "Goto" and fallback[-1].args == "queue"
    assert '"${AGISTATUS}" != "SUCCESS"' in steps[3].args


# --------------------------------------------------------------------------- options


def test_given_survey_and_exit_key_off_when_rendered_then_no_survey_or_virtual_hold() -> None:
    off = dataclasses.replace(DEFAULT_ANNOUNCEMENTS, exit_key=None, periodic_announce=None)
    files = render_asterisk(spec(survey=False, announcements=off), small_inventory())
    plan = parse_dialplan(files["extensions.conf"])
    assert [split_args(s.args)[1] for s in plan.apps("Queue")] == ["t", "t"]
    assert plan.extensions("hotline-queue-exit") == set()
    assert "entry=virtual_hold" not in files["extensions.conf"]
    assert not any("hotline-survey" in s.args for s in plan.apps("GotoIf"))
    (queue,) = parse_conf(files["queues.conf"]).named("province")
    assert queue.get("periodic-announce") is None and queue.get("context") == "hotline-queue-exit"


def test_given_separate_announce_period_when_rendered_then_both_frequencies_written() -> None:
    ann = dataclasses.replace(DEFAULT_ANNOUNCEMENTS, announce_every_s=30, announce_holdtime=False)
    files = render_asterisk(spec(announcements=ann), small_inventory())
    (queue,) = parse_conf(files["queues.conf"]).named("city-330400")
    assert queue.get("announce-frequency") == "30"
    assert queue.get("periodic-announce-frequency") == "45"
    assert (queue.get("announce-position"), queue.get("announce-holdtime")) == ("yes", "no")
    assert (queue.get("strategy"), queue.get("timeout")) == ("ringall", "5")


def test_given_city_without_queue_when_rendered_then_fallback_goes_to_province() -> None:
    inventory = small_inventory(queues=small_inventory().queues[1:])
    plan = parse_dialplan(render_asterisk(spec(), inventory)["extensions.conf"])
    sets = [s.args for s in plan.apps("Set") if s.context == "from-trunk-330400"]
    assert "HOTLINE_QUEUE=province" in sets and "HOTLINE_OVERFLOW_QUEUE=" in sets


def test_given_settings_when_default_spec_then_public_fastagi_and_node_are_used(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(
        fastagi_bind="0.0.0.0:4573", fastagi_public="10.1.2.3:4573", ami_node_name="js1"
    )
    made = default_spec(settings)
    assert made.agi_url == "agi://10.1.2.3:4573/ivr" and made.pbx_node == "js1"
    assert {t.name for t in made.transfers} == {"12345", "110", "119", "120"}
    assert made.announcements.exit_key == "1" and made.survey
    with pytest.raises(InvalidInput, match="CALLCENTER_FASTAGI_PUBLIC"):
        default_spec(make_settings(fastagi_bind="0.0.0.0:4573"))
    with pytest.raises(ConfigError, match="CALLCENTER_FASTAGI_PUBLIC"):
        make_settings(fastagi_public="evil host;:4573")


# --------------------------------------------------------------------------- security


@pytest.mark.parametrize("name", HOSTILE)
def test_given_hostile_seat_name_when_rendering_then_refused(name: str) -> None:
    inventory = small_inventory(seats=(SeatInfo("8001", name, "330400"),))
    with pytest.raises(UnsafeConfigValue, match="seat name"):
        render_asterisk(spec(), inventory)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", "12345\nexten => 9,1,System(x)"),
        ("name", "_X."),
        ("number", "12345&PJSIP/110"),
        ("number", "12345,60,U(x)"),
        ("trunk", "trunk-gov)"),
        ("trunk", "gov;x"),
    ],
)
def test_given_hostile_transfer_target_when_rendering_then_refused(field: str, value: str) -> None:
    target = dataclasses.replace(TransferTarget("12345", "12345", "trunk-gov"), **{field: value})
    with pytest.raises(UnsafeConfigValue, match="refused"):
        render_asterisk(spec(transfers=(target,)), small_inventory())


@pytest.mark.parametrize(
    "inventory",
    [
        small_inventory(seats=(SeatInfo("80$1", "张伟", "330400"),)),
        small_inventory(seats=(SeatInfo("8001\n", "张伟", "330400"),)),
        small_inventory(
            queues=(QueueInfo("city-330400,x", "嘉兴", "city", "330400"),),
        ),
        small_inventory(queues=(QueueInfo("City 1", "嘉兴", "city", "330400"),)),
        small_inventory(queues=(QueueInfo("province", "省级\n[x]", "province", "330000"),)),
        small_inventory(queues=(QueueInfo("province", "省级", "province", "330000", "ringall\n"),)),
        small_inventory(cities=(City("330400", "嘉兴市(", "0573"),)),
        small_inventory(cities=(City("330400", "嘉兴市", "0573;"),)),
        small_inventory(
            queues=(
                QueueInfo(
                    "province",
                    "省级",
                    "province",
                    "330000",
                    members=(QueueMemberInfo("8001", "张伟,1"),),
                ),
            )
        ),
    ],
)
def test_given_hostile_inventory_value_when_rendering_then_refused(inventory: Inventory) -> None:
    with pytest.raises(UnsafeConfigValue, match="refused"):
        render_asterisk(spec(), inventory)


@pytest.mark.parametrize(
    "changes",
    [
        {"agi_url": "agi://10.0.0.5:4573/ivr?x=1,evil"},
        {"agi_url": "agi://10.0.0.5;x:4573/ivr"},
        {"pbx_node": "js1&entry=survey"},
        {"language": "zh-CN)"},
        {"outbound_trunk": "pstn;x"},
        {"announcements": dataclasses.replace(DEFAULT_ANNOUNCEMENTS, exit_key="1,2")},
        {"announcements": dataclasses.replace(DEFAULT_ANNOUNCEMENTS, periodic_announce="../x")},
        {"announcements": dataclasses.replace(DEFAULT_ANNOUNCEMENTS, periodic_every_s=0)},
    ],
)
def test_given_hostile_spec_value_when_rendering_then_refused(changes: dict[str, object]) -> None:
    with pytest.raises(UnsafeConfigValue, match="refused"):
        render_asterisk(spec(**changes), small_inventory())


def test_given_transfer_name_equal_to_a_seat_extension_when_rendering_then_refused() -> None:
    clash = (TransferTarget("8001", "12345", "trunk-gov"),)
    with pytest.raises(InvalidInput, match="8001 appears twice"):
        render_asterisk(spec(transfers=clash), small_inventory())


def test_given_member_that_is_no_seat_when_rendering_then_refused() -> None:
    queue = QueueInfo(
        "province", "省级", "province", "330000", members=(QueueMemberInfo("8999", "x"),)
    )
    with pytest.raises(InvalidInput, match="member 8999 is not a seat"):
        render_asterisk(spec(), small_inventory(queues=(queue,)))


def test_given_seat_passwords_then_derived_per_key_and_extension_never_default_key() -> None:
    first = seat_password(KEY, "8001")
    assert first == seat_password(KEY, "8001") and len(first) == 24
    assert first != seat_password(KEY, "8002")
    assert first != seat_password(SecretStr("another-secret-key-of-enough-length-000"), "8001")
    assert re.fullmatch(r"[A-Za-z0-9_-]{24}", first)
    from callcenter.settings import DEV_SECRET

    with pytest.raises(InvalidInput, match="CALLCENTER_SECRET_KEY"):
        seat_password(SecretStr(DEV_SECRET), "8001")
    with pytest.raises(InvalidInput, match="CALLCENTER_SECRET_KEY"):
        render_asterisk(spec(seat_password_key=None), small_inventory())
    assert KEY.get_secret_value() not in repr(spec())


def test_given_broken_references_when_checked_then_each_problem_is_named() -> None:
    files = render_asterisk(spec(), small_inventory())
    broken = dict(files)
    broken["extensions.conf"] = files["extensions.conf"].replace("[hotline-survey]", "[other]")
    broken["queues.conf"] = files["queues.conf"].replace("timeout = 5", "timeout = 6")
    broken["pjsip.conf"] = files["pjsip.conf"].replace("[8001-auth]", "[8001-x]")
    problems = check_rendered(broken, spec(), small_inventory())
    assert any("unknown context hotline-survey" in p for p in problems)
    assert any("queue city-330400: timeout is 6, expected 5" in p for p in problems)
    assert any("seat 8001: needs an endpoint, an aor and an auth" in p for p in problems)


def test_given_include_cycle_or_unparsable_line_when_parsed_then_no_hang_and_line_named() -> None:
    plan = parse_dialplan("[a]\ninclude => b\nexten => 1,1,Hangup()\n[b]\ninclude => a\n")
    assert plan.extensions("b") == {"1"}
    with pytest.raises(RenderedConfigInvalid, match="line 2"):
        parse_conf("[a]\nexten 1,1,Hangup()\n")
    with pytest.raises(RenderedConfigInvalid, match="'same' without an extension"):
        parse_dialplan("[a]\nsame => n,Hangup()\n")


# --------------------------------------------------------------------------- lab syntax


def test_given_lab_conf_then_parser_reads_it_and_rendered_keys_match_real_syntax(
    shared_dir: Path,
) -> None:
    conf = shared_dir / "asterisk-traces" / "conf"
    lab_plan = parse_dialplan((conf / "extensions.conf").read_text(encoding="utf-8"))
    lab_queues = parse_conf((conf / "queues.conf").read_text(encoding="utf-8"))
    assert {"from-trunk", "agent-phones", "transfer-targets"} <= lab_plan.contexts
    lab_targets = [t for s in lab_plan.steps for t in goto_targets(s)]
    assert ("from-trunk", "12348", "menu") in lab_targets
    assert all(e in lab_plan.extensions(c) for c, e, _ in lab_targets)

    files = render_asterisk(spec(), small_inventory())
    ours = parse_conf(files["queues.conf"])
    lab_keys = {k for s in lab_queues.sections for k, _ in s.options}
    documented = {  # queues.conf.sample options beyond the lab's
        "context", "announce-frequency", "min-announce-frequency", "announce-position",
        "announce-holdtime", "announce-round-seconds", "periodic-announce",
        "periodic-announce-frequency",
    }  # fmt: skip
    assert {k for s in ours.sections for k, _ in s.options} <= lab_keys | documented
    lab_general = dict(lab_queues.named("general")[0].options)
    assert dict(ours.named("general")[0].options).keys() == lab_general.keys()
    # member => interface,penalty,name[,state interface], like the lab's Local members
    (lab_member,) = lab_queues.named("legal-aid")[0].all("member")
    assert lab_member.split(",")[1:] == ["0", "王芳"]
    (our_member,) = ours.named("province")[0].all("member")
    assert our_member.split(",") == ["PJSIP/8001", "0", "张伟", "PJSIP/8001"]
    plan = parse_dialplan(files["extensions.conf"])
    assert {s.app for s in plan.steps} <= {s.app for s in lab_plan.steps}
    lab_mix = next(s.args for s in lab_plan.apps("MixMonitor"))
    assert {s.args for s in plan.apps("MixMonitor")} == {lab_mix}
    lab_overflow = next(s.args for s in lab_plan.apps("GotoIf") if "QUEUESTATUS" in s.args)
    assert lab_overflow.startswith('$["${QUEUESTATUS}" = "TIMEOUT"')
    assert any(s.args.startswith(lab_overflow[: -len("]?overflow")]) for s in plan.apps("GotoIf"))


# --------------------------------------------------------------------------- writing + CLI


def test_given_foreign_file_when_writing_then_refused_and_untouched(tmp_path: Path) -> None:
    files = render_asterisk(spec(), small_inventory())
    (tmp_path / "queues.conf").write_text("; hand-written\n[x]\n", encoding="utf-8")
    with pytest.raises(RefusedOverwrite, match=r"queues\.conf was not rendered"):
        write_rendered(files, tmp_path)
    assert (tmp_path / "queues.conf").read_text(encoding="utf-8") == "; hand-written\n[x]\n"
    assert not (tmp_path / "extensions.conf").exists()
    write_rendered(files, tmp_path, force=True)
    assert MARKER in (tmp_path / "queues.conf").read_text(encoding="utf-8").splitlines()[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(files)  # no temp files left
    assert (tmp_path / "pjsip.conf").stat().st_mode & 0o777 == 0o640


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CALLCENTER_")}
    clean.update(env)
    return subprocess.run(
        [sys.executable, "-m", "callcenter", *args],
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _one_error(result: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith("callcenter: error: ") and fragment in result.stderr


@pytest.mark.slow
async def test_given_seeded_sqlite_when_cli_renders_then_three_files_and_refusals(
    sqlite_url: str, tmp_path: Path
) -> None:
    await add_seats(sqlite_url, SEATS)
    out = tmp_path / "asterisk"
    env = {
        "CALLCENTER_DATABASE_URL": sqlite_url,
        "CALLCENTER_DATA_DIR": str(tmp_path / "data"),
        "CALLCENTER_SECRET_KEY": KEY.get_secret_value(),
        "CALLCENTER_AMI_NODE_NAME": "js1",
    }
    result = run_cli("render-asterisk", "--out", str(out), env=env)
    assert result.returncode == 0, result.stderr
    assert "11 cities, 13 queues, 4 seats" in result.stdout
    files = {p.name: p.read_text(encoding="utf-8") for p in out.iterdir()}
    assert sorted(files) == ["extensions.conf", "pjsip.conf", "queues.conf"]
    assert "agi://127.0.0.1:4573/ivr?entry=main&node=js1" in files["extensions.conf"]
    assert check_rendered(files, spec(), await inventory_of(sqlite_url)) == []
    assert run_cli("render-asterisk", "--out", str(out), env=env).returncode == 0

    (out / "pjsip.conf").write_text("[mine]\ntype=endpoint\n", encoding="utf-8")
    _one_error(run_cli("render-asterisk", "--out", str(out), env=env), "refusing to overwrite")
    assert (out / "pjsip.conf").read_text(encoding="utf-8") == "[mine]\ntype=endpoint\n"

    no_key = {k: v for k, v in env.items() if k != "CALLCENTER_SECRET_KEY"}
    _one_error(
        run_cli("render-asterisk", "--out", str(tmp_path / "b"), env=no_key),
        "CALLCENTER_SECRET_KEY",
    )
    assert not (tmp_path / "b").exists() or not any((tmp_path / "b").iterdir())


@pytest.mark.slow
async def test_given_hostile_seat_name_in_db_when_cli_renders_then_one_line_and_nothing_written(
    sqlite_url: str, tmp_path: Path
) -> None:
    await add_seats(sqlite_url, {"8009": ("王芳\n[from-trunk]", "330100", [("province", 0)])})
    out = tmp_path / "asterisk"
    env = {
        "CALLCENTER_DATABASE_URL": sqlite_url,
        "CALLCENTER_SECRET_KEY": KEY.get_secret_value(),
    }
    _one_error(run_cli("render-asterisk", "--out", str(out), env=env), "seat 8009: seat name")
    assert not out.exists()


async def test_given_edited_flow_when_cli_renders_then_transfers_and_offer_follow_the_flow(
    sqlite_url: str, tmp_path: Path
) -> None:
    import shutil

    from ivr_flows.validator import DEFAULT_FLOW

    flows = tmp_path / "flows"
    shutil.copytree(DEFAULT_FLOW.parent, flows)
    flow_file = flows / DEFAULT_FLOW.name
    text = flow_file.read_text(encoding="utf-8")
    text = text.replace("every_s: 45}", "every_s: 75}").replace(
        '  "119": {number: "119", trunk: trunk-emergency, label: 119火警}\n', ""
    )
    flow_file.write_text(text, encoding="utf-8")
    env = {
        "CALLCENTER_DATABASE_URL": sqlite_url,
        "CALLCENTER_DATA_DIR": str(tmp_path / "data"),
        "CALLCENTER_SECRET_KEY": KEY.get_secret_value(),
        "CALLCENTER_IVR_FLOW": str(flow_file),
    }
    out = tmp_path / "asterisk"
    result = run_cli("render-asterisk", "--out", str(out), env=env)
    assert result.returncode == 0, result.stderr
    queues = (out / "queues.conf").read_text(encoding="utf-8")
    assert "periodic-announce = hotline/virtual-hold-offer" in queues
    assert "periodic-announce-frequency = 75" in queues
    plan = parse_dialplan((out / "extensions.conf").read_text(encoding="utf-8"))
    targets = {s.exten for s in plan.steps if s.context == "hotline-transfer"}
    assert {"12345", "110", "120"} <= targets and "119" not in targets

    flow_file.write_text(text.replace("entries:", "entriez:"), encoding="utf-8")
    refused = run_cli("render-asterisk", "--out", str(out), env=env)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert refused.stderr.startswith("callcenter: error: CALLCENTER_IVR_FLOW:")
    assert f"{flow_file}:35: entriez: unknown key" in refused.stderr  # every problem, located
    assert (out / "queues.conf").read_text(encoding="utf-8") == queues  # nothing rewritten
