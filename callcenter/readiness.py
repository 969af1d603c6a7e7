"""Readiness: each dependency (database, Redis, AMI) checked and reported on its own."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

Check = Callable[[], Awaitable[str]]
"""A check returns a short detail string when healthy and raises when not."""


@dataclass(slots=True)
class Component:
    name: str
    check: Check
    required: bool


@dataclass(slots=True)
class StatusAggregator:
    """Runs all checks concurrently, each under its own timeout."""

    timeout: float = 3.0
    components: list[Component] = field(default_factory=list)

    def add(self, name: str, check: Check, *, required: bool) -> None:
        self.components.append(Component(name, check, required))

    async def _run(self, comp: Component) -> dict[str, Any]:
        try:
            async with asyncio.timeout(self.timeout):
                detail = await comp.check()
            return {"status": "ok", "required": comp.required, "detail": detail}
        except TimeoutError:
            return {"status": "down", "required": comp.required, "detail": "check timed out"}
        except Exception as exc:
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            return {"status": "down", "required": comp.required, "detail": msg}

    async def report(self) -> tuple[bool, dict[str, Any]]:
        results = await asyncio.gather(*(self._run(c) for c in self.components))
        checks = {c.name: r for c, r in zip(self.components, results, strict=True)}
        ready = all(r["status"] == "ok" for r in checks.values() if r["required"])
        return ready, {"status": "ready" if ready else "not-ready", "checks": checks}


async def tcp_banner_check(host: str, port: int, expect: bytes, timeout: float = 2.0) -> str:
    """Connect and read the first line: proves the peer is up and speaks the right protocol."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    try:
        line = await asyncio.wait_for(reader.readline(), timeout)
    finally:
        writer.close()
        await writer.wait_closed()
    if not line.startswith(expect):
        raise ConnectionError(f"{host}:{port} answered {line[:40]!r}, expected {expect!r}")
    return f"{host}:{port} {line.decode('utf-8', 'replace').strip()}"
