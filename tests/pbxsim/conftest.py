"""Fixtures of the simulator tests: the real Asterisk traces to compare with."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.ami.conftest import TraceLoader


@pytest.fixture(scope="session")
def traces(shared_dir: Path) -> TraceLoader:
    return TraceLoader(shared_dir / "asterisk-traces")
