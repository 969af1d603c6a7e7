"""Base of a simulated call: a process on the virtual clock that AMI actions can interrupt.

A call only waits through :meth:`SimCall.pause`.  When an action hands it a command (see
:mod:`callcenter.pbxsim.engine`), the clock wakes it and ``pause`` raises
:class:`Interrupted`; the call then runs the command's consequences from whatever phase it was
in.  Event sequences themselves are never cut in the middle: a command waits until the call's
next pause.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from callcenter.pbxsim.engine import Command, Pbx
from callcenter.pbxsim.model import Channel

__all__ = ["Interrupted", "SimCall"]


class Interrupted(Exception):
    """Raised by :meth:`SimCall.pause` when an AMI action wants something from the call."""

    def __init__(self, channel: Channel, command: Command) -> None:
        super().__init__(f"{type(command).__name__} on {channel.name}")
        self.channel = channel
        self.command = command


class SimCall:
    """Owns some channels; runs as one simulated process (:meth:`start`)."""

    def __init__(self, pbx: Pbx) -> None:
        self.pbx = pbx
        self.task: asyncio.Task[None] | None = None
        self._inbox: list[tuple[Channel, Command]] = []
        self._owned: dict[str, Channel] = {}

    # ------------------------------------------------------------------ process

    def start(self, name: str) -> asyncio.Task[None]:
        self.task = self.pbx.clock.spawn(self.run(), name=name)
        return self.task

    async def run(self) -> None:
        raise NotImplementedError

    async def pause(self, seconds: float) -> None:
        """Wait ``seconds`` of virtual time; raises :class:`Interrupted` for a pending command."""
        self._check_inbox()
        await self.pbx.clock.sleep(seconds)
        self._check_inbox()

    def _check_inbox(self) -> None:
        if self._inbox:
            channel, command = self._inbox.pop(0)
            raise Interrupted(channel, command)

    # ------------------------------------------------------------------ control

    def accept(self, channel: Channel, command: Command) -> str | None:
        """Take a command from an action handler (see :class:`engine.CallControl`)."""
        refusal = self.refuse(channel, command)
        if refusal is not None:
            return refusal
        self._inbox.append((channel, command))
        if self.task is not None:
            self.pbx.clock.wake(self.task)
        return None

    def refuse(self, channel: Channel, command: Command) -> str | None:
        """The AMI error for a command this call cannot take now (None: it can)."""
        return None

    def own(self, *channels: Channel) -> None:
        for channel in channels:
            self._owned[channel.name] = channel
            self.pbx.calls.bind(channel, self)

    def disown(self, channels: Iterable[Channel]) -> None:
        for channel in channels:
            self._owned.pop(channel.name, None)
            self.pbx.calls.unbind(channel)

    def disown_all(self) -> None:
        self.disown(list(self._owned.values()))
