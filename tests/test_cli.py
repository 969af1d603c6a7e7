"""The ``callcenter`` command, run as a real subprocess the way an operator runs it."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from callcenter.db import migrate

COMMANDS = [
    [], ["serve"], ["demo"], ["migrate"], ["seed"], ["check-config"],
    ["user"], ["user", "add"], ["user", "list"], ["user", "passwd"],
]  # fmt: skip


def run_cli(
    *args: str, env: dict[str, str] | None = None, stdin: str | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CALLCENTER_")}
    clean.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "callcenter", *args],
        env=clean,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        check=False,
    )


@pytest.fixture
def sqlite_env(tmp_path: Path) -> dict[str, str]:
    return {
        "CALLCENTER_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "CALLCENTER_DATA_DIR": str(tmp_path / "data"),
    }


def _one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    """Exit 2, no traceback, and exactly one error line (log lines of `serve` may precede it)."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("callcenter: error: ")]
    assert len(errors) == 1 and result.stderr.strip().endswith(errors[0]), result.stderr
    for fragment in fragments:
        assert fragment in errors[0]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "callcenter")
def test_every_command_has_help(command: list[str]) -> None:
    result = run_cli(*command, "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage: python -m callcenter" in result.stdout
    assert "Options:" in result.stdout


def test_given_bad_setting_when_any_command_runs_then_one_line_names_variable() -> None:
    result = run_cli("check-config", env={"CALLCENTER_HTTP_PORT": "eighty"})
    _one_line_error(result, "CALLCENTER_HTTP_PORT")


def test_given_unreachable_postgres_when_migrating_then_one_line_error(
    free_port: Callable[[], int],
) -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"
    result = run_cli("migrate", env={"CALLCENTER_DATABASE_URL": url})
    _one_line_error(result, "database postgresql+asyncpg://postgres@127.0.0.1", "unreachable")


@pytest.mark.postgres
def test_given_missing_postgres_database_when_migrating_then_one_line_error() -> None:
    url = "postgresql://postgres@127.0.0.1:5432/cc_does_not_exist"
    result = run_cli("migrate", env={"CALLCENTER_DATABASE_URL": url})
    _one_line_error(result, "unreachable", "cc_does_not_exist")


def test_given_unreachable_redis_when_connecting_then_one_line_error(
    sqlite_env: dict[str, str], free_port: Callable[[], int]
) -> None:
    assert run_cli("migrate", env=sqlite_env).returncode == 0
    env = {**sqlite_env, "CALLCENTER_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    result = run_cli("check-config", "--connect", env=env)
    _one_line_error(result, "Redis", "unreachable")
    result = run_cli("serve", "--port", str(free_port()), env=env)
    _one_line_error(result, "Redis", "unreachable")


def test_given_unmigrated_database_when_serving_then_told_to_migrate(
    sqlite_env: dict[str, str], free_port: Callable[[], int]
) -> None:
    result = run_cli("serve", "--port", str(free_port()), env=sqlite_env)
    _one_line_error(result, "run `callcenter migrate`")


def test_check_config_masks_secrets() -> None:
    env = {
        "CALLCENTER_SECRET_KEY": "a-very-secret-value-that-must-not-leak",
        "CALLCENTER_DATABASE_URL": "postgresql://app:dbpassw0rd@db/hotline",
    }
    result = run_cli("check-config", env=env)
    assert result.returncode == 0, result.stderr
    assert "a-very-secret-value" not in result.stdout and "dbpassw0rd" not in result.stdout
    assert "CALLCENTER_SECRET_KEY=(set)" in result.stdout
    assert "CALLCENTER_TIME_ZONE=Asia/Shanghai" in result.stdout


def test_migrate_seed_and_users_without_leaking_passwords(sqlite_env: dict[str, str]) -> None:
    head = migrate.head_revision()
    assert run_cli("migrate", env=sqlite_env).stdout.startswith(f"database at revision {head}")
    seeded = run_cli("seed", env=sqlite_env)
    assert seeded.returncode == 0, seeded.stderr
    assert "浙江省 (330000): 11 cities, 12 regions and 13 queues added" in seeded.stdout
    pw_file = Path(sqlite_env["CALLCENTER_DATA_DIR"]) / "admin-password.txt"
    assert stat.S_IMODE(pw_file.stat().st_mode) == 0o600
    admin_pw = pw_file.read_text().strip()
    assert admin_pw not in seeded.stdout + seeded.stderr

    again = run_cli("seed", env=sqlite_env)
    assert "0 regions and 0 queues added" in again.stdout and "admin" not in again.stdout

    secret = "Zhang-Wei-pass-2026"
    added = run_cli(
        "user", "add", "zhangwei", "--role", "agent", "--region", "330400", "--name", "张伟",
        "--password-stdin", env=sqlite_env, stdin=secret + "\n",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert secret not in added.stdout + added.stderr

    dup = run_cli(
        "user", "add", "zhangwei", "--role", "agent", "--password-stdin",
        env=sqlite_env, stdin=secret + "\n",
    )  # fmt: skip
    _one_line_error(dup, "zhangwei already exists")

    bad_region = run_cli(
        "user", "add", "lina", "--role", "agent", "--region", "999900", "--password-stdin",
        env=sqlite_env, stdin=secret + "\n",
    )  # fmt: skip
    _one_line_error(bad_region, "999900")

    listed = run_cli("user", "list", env=sqlite_env)
    assert "zhangwei\tagent\t330400\t张伟\tactive" in listed.stdout
    assert "admin\tadmin\t330000" in listed.stdout
    assert "lina" not in listed.stdout

    changed = run_cli(
        "user", "passwd", "zhangwei", "--password-stdin", env=sqlite_env, stdin="New-pass-2026x\n"
    )
    assert changed.returncode == 0, changed.stderr
    assert "New-pass-2026x" not in changed.stdout + changed.stderr

    down = run_cli("migrate", "--down", "--to", "base", env=sqlite_env)
    assert down.stdout.strip() == "database at revision base"
