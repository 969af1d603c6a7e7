"""The rendered manager.conf: an include filter per used event, nothing injectable."""

from __future__ import annotations

import configparser

import pytest

from callcenter.ami.manager_conf import render_manager_conf
from callcenter.ami.normalize import USED_EVENTS
from callcenter.errors import InvalidInput


def _parse(text: str) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False, comment_prefixes=(";",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(text)
    return parser


def test_bridge_account_receives_only_used_events() -> None:
    text = render_manager_conf(username="hotline", secret="s3cret-12348", permit=["10.8.0.0/16"])
    account = _parse(text)["hotline"]
    assert account["secret"] == "s3cret-12348"
    assert account["permit"] == "10.8.0.0/255.255.0.0"
    filters = [line for line in text.splitlines() if line.startswith("eventfilter(")]
    names = {line.split("name(")[1].split(")")[0] for line in filters}
    assert names == set(USED_EVENTS)
    assert all("action(include)" in line for line in filters)
    assert "VarSet" not in names and "Cdr" not in names and "DeviceStateChange" not in names
    assert {"Newchannel", "Hangup", "QueueCallerJoin", "AgentConnect"} <= names


@pytest.mark.parametrize(
    "kwargs",
    [
        {"username": "hotline\n[evil]", "secret": "s3cret-12348"},
        {"username": "hotline", "secret": "s3cret\r\nread = all"},
        {"username": "hotline", "secret": "short"},
        {"username": "hotline", "secret": "ok-secret;comment"},
        {"username": "hotline", "secret": "s3cret-12348", "permit": ["0.0.0.0/0\npermit=1"]},
        {"username": "hotline", "secret": "s3cret-12348", "events": ["Hangup\nread=all"]},
    ],
)
def test_given_injection_attempt_then_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidInput):
        render_manager_conf(**kwargs)  # type: ignore[arg-type]
