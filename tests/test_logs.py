"""Structured logs carry the call/ticket ids bound in context."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from callcenter.logs import configure_logging, get_logger, log_context


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_given_json_logs_when_logging_inside_call_context_then_ids_in_record(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("INFO", json=True)
    with log_context(call_id=42, linkedid="1795200000.17", ticket_id="330400-20261121-0001"):
        get_logger("callcenter.test").info("call answered", queue="city-330400", caller="张三")
        logging.getLogger("callcenter.stdlib").warning("plain stdlib record")
    get_logger("callcenter.test").info("outside")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert lines[0]["event"] == "call answered" and lines[0]["caller"] == "张三"
    assert lines[0]["call_id"] == 42 and lines[0]["ticket_id"] == "330400-20261121-0001"
    assert lines[1]["linkedid"] == "1795200000.17" and lines[1]["level"] == "warning"
    assert "call_id" not in lines[2]
