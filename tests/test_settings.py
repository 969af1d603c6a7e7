"""Settings: defaults, normalization, and one-line errors naming the variable."""

from __future__ import annotations

import pytest

from callcenter.settings import ConfigError, Mode, load_settings


def test_given_no_environment_when_loaded_then_embedded_defaults() -> None:
    s = load_settings()
    assert s.mode is Mode.EMBEDDED
    assert s.database_url == "sqlite+aiosqlite:///./data/callcenter.db"
    assert s.redis_url is None and s.uses_simulator
    assert s.time_zone == "Asia/Shanghai" and s.tz.key == "Asia/Shanghai"
    assert s.province_code == "330000"


def test_given_plain_postgres_url_when_loaded_then_async_driver_is_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CALLCENTER_DATABASE_URL", "postgresql://u:pw@db.example/hotline")
    assert load_settings().database_url == "postgresql+asyncpg://u:pw@db.example/hotline"


@pytest.mark.parametrize(
    ("var", "value", "expected"),
    [
        ("DATABASE_URL", "mysql://x/y", "CALLCENTER_DATABASE_URL: must be a postgresql"),
        ("REDIS_URL", "http://x", "CALLCENTER_REDIS_URL: must start with redis://"),
        ("HTTP_PORT", "eighty", "CALLCENTER_HTTP_PORT: Input should be a valid integer"),
        ("AMI_PORT", "70000", "CALLCENTER_AMI_PORT: Input should be less than or equal to 65535"),
        ("TIME_ZONE", "Mars/Olympus", "CALLCENTER_TIME_ZONE: unknown time zone 'Mars/Olympus'"),
        ("PROVINCE_CODE", "33", "CALLCENTER_PROVINCE_CODE: String should match pattern"),
        ("FASTAGI_BIND", "4573", "CALLCENTER_FASTAGI_BIND: expected HOST:PORT"),
        ("MODE", "testing", "CALLCENTER_MODE: Input should be 'embedded' or 'production'"),
        ("LOG_LEVEL", "LOUD", "CALLCENTER_LOG_LEVEL: must be one of"),
    ],
)
def test_given_invalid_variable_when_loaded_then_one_line_names_it(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(f"CALLCENTER_{var}", value)
    with pytest.raises(ConfigError) as err:
        load_settings()
    message = str(err.value)
    assert message.startswith(expected)
    assert "\n" not in message


def test_given_production_mode_when_secret_is_default_then_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CALLCENTER_MODE", "production")
    with pytest.raises(ConfigError, match=r"^CALLCENTER_SECRET_KEY: the default secret is refused"):
        load_settings()
    monkeypatch.setenv("CALLCENTER_SECRET_KEY", "short")
    with pytest.raises(ConfigError, match="at least 32 characters"):
        load_settings()
    monkeypatch.setenv("CALLCENTER_SECRET_KEY", "x" * 40)
    assert load_settings().mode is Mode.PRODUCTION


def test_given_ami_host_without_credentials_then_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLCENTER_AMI_HOST", "pbx1.internal")
    with pytest.raises(ConfigError, match="CALLCENTER_AMI_USERNAME and CALLCENTER_AMI_SECRET"):
        load_settings()
    monkeypatch.setenv("CALLCENTER_AMI_USERNAME", "bridge")
    monkeypatch.setenv("CALLCENTER_AMI_SECRET", "s3cret")
    s = load_settings()
    assert not s.uses_simulator
    assert s.ami_secret is not None and "s3cret" not in repr(s)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("js1", "expected name=host:port"),
        ("js1=10.0.0.1", "expected HOST:PORT"),
        ("js1=10.0.0.1:5038,js1=10.0.0.2:5038", "node name 'js1' appears twice"),
        ("bad name=10.0.0.1:5038", "expected name=host:port"),
    ],
)
def test_given_bad_node_list_then_one_line_names_it(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: str
) -> None:
    monkeypatch.setenv("CALLCENTER_AMI_NODES", value)
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert str(err.value).startswith("CALLCENTER_AMI_NODES: ")
    assert expected in str(err.value)


def test_given_node_list_then_every_node_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLCENTER_AMI_NODES", "js1=10.0.0.1:5038, js2=10.0.0.2:5039")
    monkeypatch.setenv("CALLCENTER_AMI_USERNAME", "bridge")
    monkeypatch.setenv("CALLCENTER_AMI_SECRET", "s3cret-12348")
    s = load_settings()
    assert not s.uses_simulator
    assert s.asterisk_nodes == [("js1", "10.0.0.1", 5038), ("js2", "10.0.0.2", 5039)]
