"""Editing the flow changes what callers hear without a restart; a bad edit never serves."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from callcenter.auth import services as auth
from callcenter.db.models import Role, User
from callcenter.services import Services, build_services
from callcenter.settings import ConfigError, Settings
from callcenter.web.app import create_app
from tests.ivr.conftest import MakeBench, flow_copy

pytestmark = pytest.mark.asyncio


def _rewrite(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    before = path.stat().st_mtime_ns
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    os.utime(path, ns=(before + 1_000_000_000, before + 1_000_000_000))  # a later edit


async def test_given_flow_edited_when_next_call_then_callers_hear_the_new_flow(
    make_bench: MakeBench,
) -> None:
    bench = await make_bench()
    first = await bench.call(["1", "3"])
    assert first.prompts[:2] == ["hotline/welcome", "hotline/emergency-notice"]
    version = bench.store.status().version
    _rewrite(
        bench.flow_dir / "12348.yaml", "    next: emergency_notice", "    next: choose_language"
    )
    _rewrite(
        bench.flow_dir / "12348.yaml",
        "  emergency_notice:\n    type: play\n    prompt: emergency-notice\n"
        "    next: choose_language\n",
        "",
    )
    _rewrite(
        bench.flow_dir / "prompts.yaml", "audio: hotline/welcome", "audio: hotline/welcome-2027"
    )
    second = await bench.call(["1", "3"])
    assert second.prompts[:2] == ["hotline/welcome-2027", "hotline/language-zh"]
    assert bench.store.status().version != version and bench.store.status().reloads == 1


async def test_given_invalid_edit_then_refused_and_the_last_valid_flow_keeps_serving(
    make_bench: MakeBench,
) -> None:
    bench = await make_bench()
    version = bench.store.status().version
    _rewrite(bench.flow_dir / "12348.yaml", '"3": mediation', '"3": mediaton')
    session = await bench.call(["1", "3"])
    assert session.channel.variables["HOTLINE_SERVICE"] == "mediation"  # old flow served
    status = bench.store.status()
    assert status.version == version
    assert status.last_error is not None
    assert "node main_menu: options.3: unknown node 'mediaton'" in str(status.last_error[0])
    _rewrite(bench.flow_dir / "12348.yaml", '"3": mediaton', '"3": notary')  # mediation orphaned
    assert (await bench.call(["1", "3"])).channel.variables["HOTLINE_SERVICE"] == "mediation"
    assert "node mediation: unreachable" in " ".join(
        map(str, bench.store.status().last_error or [])
    )
    _rewrite(bench.flow_dir / "12348.yaml", '"3": notary', '"3": mediation')
    fixed = await bench.call(["1", "3"])
    assert fixed.channel.variables["HOTLINE_SERVICE"] == "mediation"
    assert bench.store.status().last_error is None and bench.store.status().reloads == 1


@pytest.mark.parametrize(
    "hostile",
    [
        "a: &a [x, x]\nb: &b [*a, *a, *a, *a]\nc: &c [*b, *b, *b, *b]\nd: [*c, *c, *c, *c]\n",
        "x: " + "[" * 50_000 + "]" * 50_000 + "\n",
        "# padding\n" * 80_000,
        'version: 1\nname: "evil\\x00"\nnodes: {"we\\u0007lcome": {type: hangup}}\n',
    ],
    ids=["alias-bomb", "deep-nesting", "huge", "control-characters"],
)
async def test_given_hostile_file_on_a_live_server_then_refused_and_calls_still_served(
    make_bench: MakeBench, hostile: str
) -> None:
    bench = await make_bench()
    version = bench.store.status().version
    flow_file = bench.flow_dir / "12348.yaml"
    before = flow_file.stat().st_mtime_ns
    flow_file.write_text(hostile, encoding="utf-8")
    os.utime(flow_file, ns=(before + 1_000_000_000, before + 1_000_000_000))
    session = await bench.call(["1", "3"])  # the server is alive and serves the last good flow
    assert session.channel.variables["HOTLINE_SERVICE"] == "mediation"
    status = bench.store.status()
    assert status.version == version and status.last_error is not None


# --- the admin API and start-up -------------------------------------------------------------------


@pytest_asyncio.fixture
async def api(
    make_settings: Callable[..., Settings], sqlite_url: str, tmp_path: Path
) -> AsyncIterator[tuple[Services, httpx.AsyncClient, Path]]:
    folder = flow_copy(tmp_path)
    settings = make_settings(database_url=sqlite_url, ivr_flow=folder / "12348.yaml")
    async with build_services(settings) as services:
        app = create_app(services=services)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield services, c, folder / "12348.yaml"


async def _headers(services: Services, role: Role) -> dict[str, str]:
    async with services.sessionmaker() as session:
        user = User(
            username=f"ivr_{role.value}_{uuid.uuid4().hex[:8]}",
            display_name="测试",
            password_hash="!unusable",
            role=role.value,
            region_code="330000",
        )
        session.add(user)
        await session.commit()
        token, _ = await auth.open_session(
            session, user, "bearer", client_ip=None, user_agent=None, settings=services.settings
        )
    return {"Authorization": f"Bearer {token}"}


async def test_given_invalid_edit_when_admin_reloads_then_400_with_the_precise_error(
    api: tuple[Services, httpx.AsyncClient, Path],
) -> None:
    services, client, path = api
    admin = await _headers(services, Role.ADMIN)
    before = (await client.get("/api/ivr/flow", headers=admin)).json()
    _rewrite(
        path,
        "    timeout_s: 6\n    retries: 2\n    invalid_prompt: invalid-input\n"
        "    on_failure: to_agent\n\n  # 1",
        "    retries: 2\n\n  # 1",
    )
    response = await client.post("/api/ivr/reload", headers=admin)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error_id"] == "invalid-input"
    messages = [p["message"] for p in body["details"]["problems"]]
    assert any("menu has no timeout handling" in m for m in messages)
    assert all(p["node"] == "main_menu" and p["line"] > 1 for p in body["details"]["problems"])
    after = (await client.get("/api/ivr/flow", headers=admin)).json()
    assert after["version"] == before["version"]
    assert after["last_error"][0]["node"] == "main_menu"


async def test_given_valid_edit_when_admin_reloads_then_new_version(
    api: tuple[Services, httpx.AsyncClient, Path],
) -> None:
    services, client, path = api
    admin = await _headers(services, Role.ADMIN)
    before = (await client.get("/api/ivr/flow", headers=admin)).json()
    text = path.read_text(encoding="utf-8")
    path.write_text(
        text.replace("name: 12348 浙江省统一语音导航", "name: 12348 浙江 v2"), encoding="utf-8"
    )
    response = await client.post("/api/ivr/reload", headers=admin)
    assert response.status_code == 200
    assert (
        response.json()["version"] != before["version"]
        and response.json()["name"] == "12348 浙江 v2"
    )


@pytest.mark.parametrize(
    ("role", "get", "post"),
    [(Role.SUPERVISOR, 200, 403), (Role.AGENT, 403, 403), (Role.FOLLOWUP, 403, 403)],
)
async def test_given_roles_then_only_admins_reload_and_supervisors_view(
    api: tuple[Services, httpx.AsyncClient, Path], role: Role, get: int, post: int
) -> None:
    services, client, _ = api
    headers = await _headers(services, role)
    assert (await client.get("/api/ivr/flow", headers=headers)).status_code == get
    assert (await client.post("/api/ivr/reload", headers=headers)).status_code == post
    assert (await client.get("/api/ivr/flow")).status_code == 401


async def test_given_invalid_flow_then_the_platform_refuses_to_start(
    make_settings: Callable[..., Settings], sqlite_url: str, tmp_path: Path
) -> None:
    folder = flow_copy(tmp_path)
    _rewrite(folder / "12348.yaml", "  main: welcome", "  main: welcom")
    settings = make_settings(database_url=sqlite_url, ivr_flow=folder / "12348.yaml")
    with pytest.raises(ConfigError) as info:
        async with build_services(settings):
            pass  # pragma: no cover
    assert str(info.value).startswith("CALLCENTER_IVR_FLOW: the IVR flow is invalid")
    assert "entries.main: unknown node 'welcom'" in str(info.value)
