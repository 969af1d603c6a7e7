"""The ``callcenter`` command. Every failure the user can fix ends in one line, exit code 2."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import os
import secrets
import sys
from collections.abc import Callable, Coroutine, Iterator
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import click

from callcenter.bus import BusError, EventBus
from callcenter.db.engine import DatabaseUnavailable
from callcenter.errors import DomainError
from callcenter.regions.provinces import ProvinceDataError
from callcenter.settings import ConfigError, Mode, Settings, load_settings
from callcenter.speech.errors import SpeechError

if TYPE_CHECKING:
    from callcenter.pbxsim.workload import TrafficConfig

P = ParamSpec("P")
R = TypeVar("R")

USER_ERRORS = (
    ConfigError,
    DatabaseUnavailable,
    BusError,
    ProvinceDataError,
    DomainError,
    SpeechError,
)


class StartupError(Exception):
    """A precondition for running is not met (e.g. the database is not migrated)."""


def _fail(message: str) -> None:
    click.echo(f"callcenter: error: {message}", err=True)
    sys.exit(2)


def _run(coro: Coroutine[Any, Any, R]) -> R:
    return asyncio.run(coro)


def handles_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn expected failures into one line on stderr instead of a traceback."""

    @wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except (*USER_ERRORS, StartupError) as exc:
            message = exc.message if isinstance(exc, DomainError) else str(exc)
            _fail(message)
            raise AssertionError("unreachable") from None

    return wrapper


def _settings() -> Settings:
    return load_settings()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hotline12348")
def cli() -> None:
    """12348 公共法律服务热线平台 — provincial hotline platform.

    Configuration comes from CALLCENTER_* environment variables (see check-config).
    """


# --------------------------------------------------------------------------- database


async def _migrate(settings: Settings, revision: str, down: bool) -> str | None:
    from callcenter.db import migrate
    from callcenter.db.engine import make_engine, ping

    engine = make_engine(settings.database_url)
    try:
        await ping(engine)
    finally:
        await engine.dispose()
    from sqlalchemy.exc import SQLAlchemyError

    try:
        if down:
            await migrate.downgrade(settings.database_url, revision)
        else:
            await migrate.upgrade(settings.database_url, revision)
    except (SQLAlchemyError, RuntimeError) as exc:
        first = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise StartupError(f"migration to {revision} failed: {first}") from None
    return await migrate.current_revision(settings.database_url)


@cli.command()
@click.option("--to", "revision", default="head", show_default=True, help="Target revision.")
@click.option("--down", is_flag=True, help="Downgrade to --to (e.g. --down --to base).")
@handles_errors
def migrate(revision: str, down: bool) -> None:
    """Apply (or roll back) database migrations."""
    if down and revision == "head":
        raise click.UsageError("--down needs --to REVISION (e.g. base)")
    current = _run(_migrate(_settings(), revision, down))
    click.echo(f"database at revision {current or 'base'}")


async def _seed(settings: Settings, path: Path) -> str:
    from callcenter.db.engine import make_engine, make_sessionmaker
    from callcenter.regions.provinces import load_province
    from callcenter.regions.seed import seed_province
    from callcenter.services import seed_features

    data = load_province(path)
    engine = make_engine(settings.database_url)
    try:
        await _require_head(engine.url.render_as_string(hide_password=False))
        async with make_sessionmaker(engine)() as session:
            result = await seed_province(session, data)
            features_note = await seed_features(session, data)
            admin_note = await _ensure_first_admin(session, settings, data.province.code)
    finally:
        await engine.dispose()
    return (
        f"seeded {data.province.name} ({data.province.code}): {len(data.cities)} cities, "
        f"{result.regions_added} regions and {result.queues_added} queues added"
        f"{features_note}{admin_note}"
    )


async def _ensure_first_admin(session: Any, settings: Settings, province_code: str) -> str:
    """Embedded mode only: create ``admin`` once, password into a 0600 file, never printed."""
    from sqlalchemy import func, select

    from callcenter.auth.services import create_user
    from callcenter.db.models import Role, User

    if settings.mode is not Mode.EMBEDDED:
        return ""
    if (await session.execute(select(func.count()).select_from(User))).scalar_one():
        return ""
    password = secrets.token_urlsafe(12)
    await create_user(
        session,
        username="admin",
        password=password,
        role=Role.ADMIN,
        region_code=province_code,
        display_name="管理员",
    )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    path = settings.data_dir / "admin-password.txt"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(password + "\n")
    return f"; first user 'admin' created, password in {path}"


@cli.command()
@click.option("--province", "code", help="Province code (default: CALLCENTER_PROVINCE_CODE).")
@click.option(
    "--file", "path", type=click.Path(path_type=Path), help="A province data file to load."
)
@handles_errors
def seed(code: str | None, path: Path | None) -> None:
    """Load the province, its cities and their queues (idempotent)."""
    from callcenter.regions.provinces import province_file

    settings = _settings()
    click.echo(_run(_seed(settings, path or province_file(code or settings.province_code))))


async def _require_head(url: str) -> None:
    from callcenter.db import migrate

    current, head = await migrate.current_revision(url), migrate.head_revision()
    if current != head:
        raise StartupError(
            f"database is at revision {current or 'base'}, code expects {head}: "
            "run `callcenter migrate`"
        )


# --------------------------------------------------------------------------- asterisk


async def _render_asterisk(settings: Settings, province: str, out_dir: Path, force: bool) -> str:
    from callcenter.db.engine import make_engine, make_sessionmaker, ping
    from ivr_flows.errors import FlowError
    from ivr_flows.render import (
        describe,
        flow_spec,
        load_inventory,
        render_asterisk,
        write_rendered,
    )
    from ivr_flows.validator import DEFAULT_FLOW, load_flow

    flow_file = settings.ivr_flow or DEFAULT_FLOW
    try:
        flow = load_flow(flow_file)
    except FlowError as exc:
        raise StartupError(f"CALLCENTER_IVR_FLOW: {flow_file} is invalid:\n{exc}") from None
    spec = flow_spec(settings, flow.dialplan_settings())
    engine = make_engine(settings.database_url)
    try:
        await ping(engine)
        await _require_head(settings.database_url)
        inventory = await load_inventory(make_sessionmaker(engine), province)
    finally:
        await engine.dispose()
    files = render_asterisk(spec, inventory)
    try:
        written = write_rendered(files, out_dir, force=force)
    except OSError as exc:
        raise StartupError(f"cannot write to {out_dir}: {exc.strerror or exc}") from None
    return describe(written, inventory, spec)


@cli.command("render-asterisk")
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for extensions.conf, queues.conf and pjsip.conf.",
)
@click.option("--province", "code", help="Province code (default: CALLCENTER_PROVINCE_CODE).")
@click.option("--force", is_flag=True, help="Also replace files not rendered by this command.")
@handles_errors
def render_asterisk_command(out_dir: Path, code: str | None, force: bool) -> None:
    """Render the Asterisk dialplan, queues and seat endpoints from the database and the flow.

    Transfer targets and queue announcements (virtual-hold offer, exit key) come from the
    active IVR flow (CALLCENTER_IVR_FLOW), so the dialplan and the flow always agree.

    Every name is checked before it reaches a file, the result is parsed back and checked
    (every queue, context and transfer target exists), then each file is replaced atomically.
    """
    settings = _settings()
    click.echo(_run(_render_asterisk(settings, code or settings.province_code, out_dir, force)))


# --------------------------------------------------------------------------- users


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("Password: ")
    if first != getpass.getpass("Repeat password: "):
        raise click.ClickException("passwords differ")
    return first


async def _with_session(settings: Settings, fn: Callable[[Any], Coroutine[Any, Any, R]]) -> R:
    from callcenter.db.engine import make_engine, make_sessionmaker, ping

    engine = make_engine(settings.database_url)
    try:
        await ping(engine)
        await _require_head(settings.database_url)
        async with make_sessionmaker(engine)() as session:
            return await fn(session)
    finally:
        await engine.dispose()


@cli.group()
def user() -> None:
    """Manage users (agents, supervisors, follow-up staff, admins)."""


@user.command("add")
@click.argument("username")
@click.option(
    "--role",
    required=True,
    type=click.Choice(["agent", "supervisor", "followup", "admin"]),
    help="What the user may do.",
)
@click.option("--region", "region_code", help="Region scope code (default: the province).")
@click.option("--name", "display_name", default="", help="Display name, e.g. 张伟.")
@click.option("--skills", default="", help="Comma-separated service skills.")
@click.option("--languages", default="zh-CN", show_default=True, help="Comma-separated.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@handles_errors
def user_add(
    username: str,
    role: str,
    region_code: str | None,
    display_name: str,
    skills: str,
    languages: str,
    password_stdin: bool,
) -> None:
    """Create a user. The password is prompted for (hidden) and never logged."""
    from callcenter.auth.services import create_user
    from callcenter.db.models import Role

    settings = _settings()
    password = _read_password(password_stdin)

    async def go(session: Any) -> None:
        await create_user(
            session,
            username=username,
            password=password,
            role=Role(role),
            region_code=region_code or settings.province_code,
            display_name=display_name,
            skills=_split(skills),
            languages=_split(languages),
        )

    _run(_with_session(settings, go))
    click.echo(f"user {username} created ({role}, region {region_code or settings.province_code})")


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


@user.command("list")
@handles_errors
def user_list() -> None:
    """List users with role and region scope."""
    from callcenter.auth.services import list_users

    async def go(session: Any) -> list[Any]:
        return list(await list_users(session))

    for u in _run(_with_session(_settings(), go)):
        state = "active" if u.is_active else "disabled"
        click.echo(f"{u.username}\t{u.role}\t{u.region_code}\t{u.display_name}\t{state}")


@user.command("passwd")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@handles_errors
def user_passwd(username: str, password_stdin: bool) -> None:
    """Set a user's password; all of the user's sessions are ended."""
    from callcenter.auth.services import set_password

    password = _read_password(password_stdin)
    settings = _settings()

    async def go(session: Any) -> None:
        bus = await _revocation_bus(settings)
        try:
            await set_password(session, username, password, bus=bus)
        finally:
            if bus is not None:
                await bus.close()

    _run(_with_session(settings, go))
    click.echo(f"password of {username} changed; sessions ended")


async def _revocation_bus(settings: Settings) -> EventBus | None:
    """The shared bus, so running web processes drop the user's cached sessions at once.

    Without Redis there is no bus another process can hear (their cache entries lapse within
    CALLCENTER_AUTH_CACHE_SECONDS); an unreachable Redis must not stop a password reset.
    """
    from callcenter.bus import make_bus

    if not settings.redis_url:
        return None
    bus = make_bus(settings)
    try:
        await bus.start()
    except BusError as exc:
        click.echo(f"warning: {exc}; other processes drop the old sessions within "
                   f"{settings.auth_cache_seconds:g} s", err=True)  # fmt: skip
        return None
    return bus


# --------------------------------------------------------------------------- config, serve


def describe_settings(settings: Settings) -> list[str]:
    """Every setting with its value; secrets masked, database password hidden."""
    from callcenter.db.engine import describe

    lines = []
    for name, value in settings.model_dump().items():
        if name == "database_url":
            value = describe(str(value))
        elif "secret" in name or "token" in name:
            value = "(set)" if value is not None else "(unset)"
        lines.append(f"CALLCENTER_{name.upper()}={'' if value is None else value}")
    return lines


@cli.command("check-config")
@click.option("--connect", is_flag=True, help="Also connect to the database, Redis and AMI.")
@handles_errors
def check_config(connect: bool) -> None:
    """Validate the configuration and print it (secrets masked)."""
    settings = _settings()
    for line in describe_settings(settings):
        click.echo(line)
    from callcenter.speech.loader import model_status

    speech_ok, speech = model_status(settings)
    click.echo(f"speech model: {speech}")
    if not speech_ok:
        _fail(f"speech model {speech}")
    if connect:
        from callcenter.services import build_services

        async def go() -> tuple[bool, dict[str, Any]]:
            async with build_services(settings) as services:
                return await services.readiness.report()

        ready, report = _run(go())
        for name, check in report["checks"].items():
            click.echo(f"{name}: {check['status']} ({check['detail']})")
        if not ready:
            _fail("a required dependency is down")
    click.echo("configuration OK")


def _graceful_server_class() -> type[Any]:
    import signal

    import uvicorn

    class GracefulServer(uvicorn.Server):
        """Ctrl-C/SIGTERM stop the server and then close our services, with exit code 0.

        Plain uvicorn re-raises the signal after shutdown, which would cancel our cleanup.
        """

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, self.handle_exit, sig, None)
            try:
                yield
            finally:
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.remove_signal_handler(sig)

    return GracefulServer


def _demo_callers(settings: Settings) -> dict[str, Any]:
    """Simulated callers who answer the default IVR flow's menus (another flow: one key each)."""
    from ivr_flows import demo_callers
    from ivr_flows.validator import DEFAULT_FLOW

    if settings.ivr_flow is not None and settings.ivr_flow.resolve() != DEFAULT_FLOW.resolve():
        return {}
    return {
        "ivr_scripts": demo_callers.DEFAULT_FLOW_CALLERS,
        "queue_exit_share": demo_callers.QUEUE_EXIT_SHARE,
        "survey_share": demo_callers.SURVEY_SHARE,
    }


async def _serve(
    settings: Settings, host: str, port: int, traffic: TrafficConfig | None = None
) -> None:
    import uvicorn

    from callcenter.logs import configure_logging
    from callcenter.services import build_services
    from callcenter.web.app import create_app

    configure_logging(settings.log_level, settings.log_json)
    await _require_head(settings.database_url)
    async with build_services(settings, telephony=True, traffic=traffic, jobs=True) as services:
        app = create_app(services=services)
        config = uvicorn.Config(app, host=host, port=port, log_config=None, lifespan="on")
        ticker = None
        if traffic is not None and services.telephony is not None:
            ticker = asyncio.create_task(_summary_loop(services))
        try:
            await _graceful_server_class()(config).serve()
        finally:
            if ticker is not None:
                ticker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ticker


async def _summary_loop(services: Any, every_s: float = 10.0) -> None:
    """The demo's live summary: what the platform recorded per city, printed every few s."""
    from callcenter.telephony import calls_by_city, format_city_table

    tel = services.telephony
    while True:
        await asyncio.sleep(every_s)
        rows = await calls_by_city(services.sessionmaker, tel.province)
        live = tel.live
        waiting = sum(len(q.waiting) for q in live.queues)
        click.echo(
            f"\n— {tel.summary()['at']}  在线通话 {len(live.calls)}  排队 {waiting} "
            f"(calls recorded by the platform, caller city → queue) —"
        )
        click.echo(format_city_table(rows))


@cli.command()
@click.option("--host", help="Bind address (default: CALLCENTER_HTTP_HOST).")
@click.option("--port", type=int, help="Port (default: CALLCENTER_HTTP_PORT).")
@handles_errors
def serve(host: str | None, port: int | None) -> None:
    """Run the web/API server with the configured database, bus and PBX."""
    settings = _settings()
    _run(
        _serve(
            settings, host or settings.http_host, port if port is not None else settings.http_port
        )
    )


@cli.command()
@click.option("--host", help="Bind address (default: CALLCENTER_HTTP_HOST).")
@click.option("--port", type=int, help="Port (default: CALLCENTER_HTTP_PORT).")
@click.option(
    "--calls-per-hour", default=60.0, show_default=True, help="Simulated callers per city."
)
@click.option("--speed", default=10.0, show_default=True, help="Simulated seconds per second.")
@click.option("--seed", "seed_", default=12348, show_default=True, help="Simulation seed.")
@click.option(
    "--clock",
    type=click.Choice(["workday", "now"]),
    default="workday",
    show_default=True,
    help="Simulated time starts at the next working morning (09:00), or now.",
)
@handles_errors
def demo(
    host: str | None,
    port: int | None,
    calls_per_hour: float,
    speed: float,
    seed_: int,
    clock: str,
) -> None:
    """Migrate, seed, and serve with the built-in PBX simulator generating callers.

    Callers from all 11 cities are routed city first, overflowing to the province; a summary
    of what the platform recorded is printed every 10 s, and /api/live shows the live state.
    """
    from callcenter.pbxsim.workload import TrafficConfig

    settings = _settings()
    click.echo(f"database at revision {_run(_migrate(settings, 'head', False))}")
    click.echo(_run(_seed(settings, _province_path(settings))))
    click.echo(f"serving on http://{host or settings.http_host}:{port or settings.http_port}")
    traffic = None
    if settings.uses_simulator:
        start = next_working_morning(settings) if clock == "workday" else None
        traffic = TrafficConfig(
            seed=seed_,
            speed=speed,
            calls_per_hour=calls_per_hour,
            start=start,
            **_demo_callers(settings),
        )
        when = "now" if start is None else _local(settings, start)
        click.echo(
            f"PBX simulator: {calls_per_hour:g} callers/hour per city at {speed:g}x speed, "
            f"simulated time from {when}"
        )
    port_ = port if port is not None else settings.http_port
    _run(_serve(settings, host or settings.http_host, port_, traffic))


def next_working_morning(settings: Settings, hour: int = 9) -> float:
    """Epoch of the next 09:00 (local) on an official working day (调休 days included)."""
    from datetime import datetime, timedelta

    from callcenter.routing.calendar import is_working_day

    day = datetime.now(settings.tz).date() + timedelta(days=1)
    while not is_working_day(day):
        day += timedelta(days=1)
    return datetime(day.year, day.month, day.day, hour, tzinfo=settings.tz).timestamp()


def _local(settings: Settings, epoch: float) -> str:
    from datetime import datetime

    return datetime.fromtimestamp(epoch, settings.tz).strftime("%Y-%m-%d %H:%M %Z")


def _province_path(settings: Settings) -> Path:
    from callcenter.regions.provinces import province_file

    return province_file(settings.province_code)


def _add_ivr_commands() -> None:
    from ivr_flows.cli import ivr

    cli.add_command(ivr)


_add_ivr_commands()


# --------------------------------------------------------------------------- background jobs


@cli.command()
@click.option("--burst", is_flag=True, help="Run the queued jobs, then exit.")
@handles_errors
def worker(burst: bool) -> None:
    """Run background jobs (SLA scan…) from the Redis queue: the production job runner.

    Needs CALLCENTER_REDIS_URL; without it the server runs the jobs itself (embedded mode).
    """
    _run(_worker(_settings(), burst))


async def _worker(settings: Settings, burst: bool) -> None:
    from callcenter.jobs.arq_worker import JobQueueUnavailable, make_worker, run_worker
    from callcenter.logs import configure_logging
    from callcenter.services import job_context, job_registry

    configure_logging(settings.log_level, settings.log_json)
    await _require_head(settings.database_url)
    try:
        runner = make_worker(
            settings, job_registry(settings), lambda: job_context(settings), burst=burst
        )
        await run_worker(runner)
    except JobQueueUnavailable as exc:
        raise StartupError(str(exc)) from None


def main() -> None:
    try:
        cli(standalone_mode=True)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
