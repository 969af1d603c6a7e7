"""Small asyncio helpers shared by the background loops."""

from __future__ import annotations

import asyncio
import contextlib


async def sleep_unless(stopping: asyncio.Event, seconds: float) -> bool:
    """Sleep ``seconds``, or return early when ``stopping`` is set; True when stopping.

    Loops that write to the database sleep this way so closing can wait for a write in
    progress instead of cancelling it mid-statement.
    """
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), seconds)
    return stopping.is_set()
