"""The live-state model: frozen snapshots of calls, queues and agents, and the changes between them.

Snapshots are immutable so that a change is simply "old value, new value": the tracker replaces an
object, compares, and only a real difference becomes a :class:`Change` (which is what makes
applying an event twice publish nothing).  Times are epoch seconds (floats): cheap to compare,
and exactly what AMI's ``Timestamp`` header carries.

Every item is keyed by ``"<node>|<id>"``: two Asterisk nodes may both have a ``province`` queue
or a ``PJSIP/8001`` seat, and a resync of one node must only replace that node's items.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal, TypeAlias

from callcenter.ami.events import AgentState

__all__ = [
    "AgentState",
    "CallState",
    "Change",
    "Item",
    "Kind",
    "LiveAgent",
    "LiveCall",
    "LiveQueue",
    "Membership",
    "WaitingCaller",
    "extension_of",
    "item_from_dict",
    "item_key",
    "item_to_dict",
    "overall_state",
]

CallState = Literal["ivr", "queued", "ringing", "talking", "held", "ended"]
Kind = Literal["calls", "queues", "agents"]
KINDS: tuple[Kind, ...] = ("calls", "queues", "agents")
KEY_SEPARATOR = "|"


def item_key(node: str, ident: str) -> str:
    return f"{node}{KEY_SEPARATOR}{ident}"


def extension_of(interface: str | None) -> str | None:
    """The seat extension in an interface or channel name, if it has one.

    ``PJSIP/8001`` / ``PJSIP/8001-0000001a`` / ``Local/8001@agent-phones/n`` /
    ``Local/8001@agent-phones-0000000b;1`` → ``8001``.
    """
    if not interface or "/" not in interface:
        return None
    resource = interface.split("/", 2)[1].partition(";")[0].partition("@")[0]
    base, dash, suffix = resource.rpartition("-")
    if dash and suffix and all(c in "0123456789abcdef" for c in suffix):
        resource = base
    return resource or None


@dataclass(frozen=True, slots=True, kw_only=True)
class LiveCall:
    """One inbound call as it is now; it leaves live state when it ends (the DB keeps it)."""

    node: str
    linkedid: str
    uniqueid: str | None
    caller_number: str | None
    caller_name: str | None
    caller_region_code: str | None
    region_code: str
    """Who serves the call: the region of its (last) queue, else the caller's, else the province."""
    state: CallState
    state_since: float
    offered_at: float
    queue: str | None = None
    position: int | None = None
    agent_interface: str | None = None
    agent_name: str | None = None
    agent_extension: str | None = None
    queued_at: float | None = None
    answered_at: float | None = None
    ivr_path: tuple[str, ...] = ()
    recording: bool = False
    transfer_target: str | None = None

    @property
    def key(self) -> str:
        return item_key(self.node, self.linkedid)


@dataclass(frozen=True, slots=True, kw_only=True)
class WaitingCaller:
    linkedid: str
    uniqueid: str | None
    caller_number: str | None
    caller_name: str | None
    position: int
    since: float


@dataclass(frozen=True, slots=True, kw_only=True)
class LiveQueue:
    node: str
    name: str
    region_code: str
    waiting: tuple[WaitingCaller, ...] = ()
    answered_today: int = 0
    abandoned_today: int = 0
    overflowed_today: int = 0
    """Callers that timed out of this queue and went on (e.g. city → province, trace 09)."""

    @property
    def key(self) -> str:
        return item_key(self.node, self.name)

    @property
    def longest_wait_since(self) -> float | None:
        return min((w.since for w in self.waiting), default=None)


@dataclass(frozen=True, slots=True, kw_only=True)
class Membership:
    queue: str
    state: AgentState


@dataclass(frozen=True, slots=True, kw_only=True)
class LiveAgent:
    node: str
    interface: str
    member_name: str | None
    extension: str | None
    region_code: str
    state: AgentState
    state_since: float
    reason: str | None = None
    queues: tuple[Membership, ...] = ()
    current_call: str | None = None
    """``linkedid`` of the call the agent is talking to (same node)."""
    answered_today: int = 0
    missed_today: int = 0
    """Calls that rang this agent and were not answered by them (counted once per call)."""
    talk_seconds_today: float = 0.0

    @property
    def key(self) -> str:
        return item_key(self.node, self.interface)


_AGENT_PRIORITY: tuple[AgentState, ...] = (
    "in_call",
    "wrap_up",
    "ready",
    "logged_in",
    "paused",
    "logged_out",
)
"""An agent in several queues has one state per queue; the first of these present wins."""


def overall_state(states: Iterable[AgentState]) -> AgentState:
    present = set(states)
    return next((s for s in _AGENT_PRIORITY if s in present), "logged_out")


Item: TypeAlias = LiveCall | LiveQueue | LiveAgent


@dataclass(frozen=True, slots=True)
class Change:
    """One item of one region changed: ``item`` is the new value, ``None`` means removed."""

    kind: Kind
    key: str
    region_code: str
    item: Item | None


def item_to_dict(item: Item) -> dict[str, Any]:
    return asdict(item)


def item_from_dict(kind: Kind, data: Mapping[str, Any]) -> Item:
    """Inverse of :func:`item_to_dict` (JSON turns tuples into lists; this turns them back)."""
    if kind == "calls":
        return LiveCall(**{**data, "ivr_path": tuple(data.get("ivr_path", ()))})
    if kind == "queues":
        waiting = tuple(WaitingCaller(**w) for w in data.get("waiting", ()))
        return LiveQueue(**{**data, "waiting": waiting})
    queues = tuple(Membership(**m) for m in data.get("queues", ()))
    return LiveAgent(**{**data, "queues": queues})
