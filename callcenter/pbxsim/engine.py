"""What the simulated calls and the AMI action handlers share: one :class:`Pbx` per node.

Action handlers must be able to reach into a live call (``Hangup`` of a caller who is waiting,
``BlindTransfer`` of a seat leg).  A call that owns channels registers itself in the
:class:`CallRegistry`; a handler looks the channel up and hands the owner a :data:`Command`.
The owner answers synchronously whether it accepts (so the AMI response can say so at once,
as Asterisk does) and carries the command out in its own simulated process, after the response
-- the order the traces show (response first, then the events).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Protocol

from callcenter.pbxsim.ami_server import AmiServer
from callcenter.pbxsim.clock import SimClock
from callcenter.pbxsim.model import Channel, PbxModel
from callcenter.pbxsim.recordings import Recorder
from callcenter.pbxsim.steps import CallSteps

__all__ = [
    "CallControl",
    "CallRegistry",
    "Command",
    "HangupCommand",
    "Pbx",
    "RedirectCommand",
    "TransferCommand",
]


@dataclass(frozen=True)
class HangupCommand:
    cause: int = 16


@dataclass(frozen=True)
class RedirectCommand:
    context: str
    exten: str
    priority: int


@dataclass(frozen=True)
class TransferCommand:
    context: str
    exten: str
    attended: bool


Command = HangupCommand | RedirectCommand | TransferCommand


class CallControl(Protocol):
    """A live call that can be steered by AMI actions."""

    def accept(self, channel: Channel, command: Command) -> str | None:
        """None if the command is taken (it runs later); else the AMI error message."""


class CallRegistry:
    """Channel name -> the call that owns it."""

    def __init__(self) -> None:
        self._owners: dict[str, CallControl] = {}

    def bind(self, channel: Channel, owner: CallControl) -> None:
        self._owners[channel.name] = owner

    def unbind(self, *channels: Channel) -> None:
        for channel in channels:
            self._owners.pop(channel.name, None)

    def owner(self, name: str) -> CallControl | None:
        return self._owners.get(name)

    def __len__(self) -> int:
        return len(self._owners)


@dataclass
class Pbx:
    """One simulated Asterisk node: AMI server, virtual clock, event steps, live calls."""

    server: AmiServer
    clock: SimClock
    steps: CallSteps
    rng: random.Random
    recorder: Recorder | None = None
    calls: CallRegistry = field(default_factory=CallRegistry)

    @property
    def model(self) -> PbxModel:
        return self.server.model
