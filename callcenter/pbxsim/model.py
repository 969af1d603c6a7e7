"""State of the simulated PBX: channels, queues and their members.

Kept apart from the AMI server so a call generator can drive it (create channels, move callers
through queues) while the server only renders what the model holds.  Field *order* of every
rendered block follows the real Asterisk 22 traces (``shared/asterisk-traces/CATALOGUE.md``).
"""

from __future__ import annotations

import itertools
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

Fields = list[tuple[str, str]]
Clock = Callable[[], float]

STATE_DESC = {0: "Down", 4: "Ring", 5: "Ringing", 6: "Up"}


@dataclass
class Channel:
    """One channel, with the snapshot fields Asterisk puts into every channel event."""

    name: str
    uniqueid: str
    linkedid: str
    context: str
    exten: str
    priority: int = 1
    state: int = 0
    caller_num: str = "<unknown>"
    caller_name: str = "<unknown>"
    connected_num: str = "<unknown>"
    connected_name: str = "<unknown>"
    language: str = "en"
    account_code: str = ""
    application: str = ""
    app_data: str = ""
    bridge_id: str = ""
    created: float = 0.0
    variables: dict[str, str] = field(default_factory=dict)

    def snapshot(self, prefix: str = "", channelvars: tuple[str, ...] = ()) -> Fields:
        """The 14 standard fields (``Channel`` … ``Linkedid``), then ``ChanVariable`` lines."""
        fields = [
            ("Channel", self.name),
            ("ChannelState", str(self.state)),
            ("ChannelStateDesc", STATE_DESC.get(self.state, "Unknown")),
            ("CallerIDNum", self.caller_num),
            ("CallerIDName", self.caller_name),
            ("ConnectedLineNum", self.connected_num),
            ("ConnectedLineName", self.connected_name),
            ("Language", self.language),
            ("AccountCode", self.account_code),
            ("Context", self.context),
            ("Exten", self.exten),
            ("Priority", str(self.priority)),
            ("Uniqueid", self.uniqueid),
            ("Linkedid", self.linkedid),
        ]
        fields += [("ChanVariable", f"{n}={self.variables.get(n, '')}") for n in channelvars]
        return [(prefix + key, value) for key, value in fields]


@dataclass
class Member:
    """A queue member (seat) as ``QueueMember*`` events describe it."""

    queue: str
    name: str
    interface: str
    state_interface: str = ""
    membership: str = "static"
    penalty: int = 0
    calls_taken: int = 0
    last_call: int = 0
    last_pause: int = 0
    login_time: int = 0
    in_call: int = 0
    status: int = 1
    paused: bool = False
    paused_reason: str = ""
    ringinuse: int = 0
    wrapuptime: int = 0

    def event_fields(self) -> Fields:
        """Body of QueueMemberStatus/Added/Removed/Pause/Penalty (after ``Privilege``)."""
        return [
            ("Queue", self.queue),
            ("MemberName", self.name),
            ("Interface", self.interface),
            ("StateInterface", self.state_interface or self.interface),
            *self._counters(),
            ("Ringinuse", str(self.ringinuse)),
            ("Wrapuptime", str(self.wrapuptime)),
        ]

    def list_fields(self) -> Fields:
        """Body of a ``QueueMember`` list item (QueueStatus); ``ActionID`` goes last."""
        return [
            ("Queue", self.queue),
            ("Name", self.name),
            ("Location", self.interface),
            ("StateInterface", self.state_interface or self.interface),
            *self._counters(),
            ("Wrapuptime", str(self.wrapuptime)),
        ]

    def _counters(self) -> Fields:
        return [
            ("Membership", self.membership),
            ("Penalty", str(self.penalty)),
            ("CallsTaken", str(self.calls_taken)),
            ("LastCall", str(self.last_call)),
            ("LastPause", str(self.last_pause)),
            ("LoginTime", str(self.login_time)),
            ("InCall", str(self.in_call)),
            ("Status", str(self.status)),
            ("Paused", "1" if self.paused else "0"),
            ("PausedReason", self.paused_reason),
        ]

    @property
    def available(self) -> bool:
        return not self.paused and self.status == 1


@dataclass
class QueueEntry:
    channel: Channel
    joined: float
    priority: int = 0


@dataclass
class Queue:
    name: str
    strategy: str = "ringall"
    max: int = 0
    service_level: int = 0
    weight: int = 0
    members: list[Member] = field(default_factory=list)
    entries: list[QueueEntry] = field(default_factory=list)
    completed: int = 0
    abandoned: int = 0
    holdtime: int = 0
    talktime: int = 0

    def params_fields(self) -> Fields:
        return [
            ("Queue", self.name),
            ("Max", str(self.max)),
            ("Strategy", self.strategy),
            ("Calls", str(len(self.entries))),
            ("Holdtime", str(self.holdtime)),
            ("TalkTime", str(self.talktime)),
            ("Completed", str(self.completed)),
            ("Abandoned", str(self.abandoned)),
            ("ServiceLevel", str(self.service_level)),
            ("ServicelevelPerf", "0.0"),
            ("ServicelevelPerf2", "0.0"),
            ("Weight", str(self.weight)),
        ]

    def entry_fields(self, now: float) -> list[Fields]:
        """``QueueEntry`` bodies; ``Wait`` is a difference of whole epoch seconds (``time_t``),
        as Asterisk computes it (trace 10: 2.9 s of waiting can show as ``Wait: 3``)."""
        return [
            [
                ("Queue", self.name),
                ("Position", str(position)),
                ("Channel", entry.channel.name),
                ("Uniqueid", entry.channel.uniqueid),
                ("CallerIDNum", entry.channel.caller_num),
                ("CallerIDName", entry.channel.caller_name),
                ("ConnectedLineNum", entry.channel.connected_num),
                ("ConnectedLineName", entry.channel.connected_name),
                ("Wait", str(int(now) - int(entry.joined))),
                ("Priority", str(entry.priority)),
            ]
            for position, entry in enumerate(self.entries, start=1)
        ]

    def summary_fields(self, now: float) -> Fields:
        longest = max((int(now) - int(e.joined) for e in self.entries), default=0)
        return [
            ("Queue", self.name),
            ("LoggedIn", str(len(self.members))),
            ("Available", str(sum(m.available for m in self.members))),
            ("Callers", str(len(self.entries))),
            ("HoldTime", str(self.holdtime)),
            ("TalkTime", str(self.talktime)),
            ("LongestHoldTime", str(longest)),
        ]


class PbxModel:
    """Channels and queues of one simulated Asterisk node.

    ``systemname`` mimics ``asterisk.conf`` (prefixes Uniqueids, adds ``SystemName:`` to events);
    ``timestamp_events`` and ``channelvars`` mimic ``manager.conf`` (trace 13).
    """

    def __init__(
        self,
        *,
        systemname: str | None = None,
        timestamp_events: bool = False,
        channelvars: tuple[str, ...] = (),
        clock: Clock = time.time,
    ) -> None:
        self.systemname = systemname
        self.timestamp_events = timestamp_events
        self.channelvars = channelvars
        self.clock = clock
        self.started = clock()
        self.channels: dict[str, Channel] = {}
        self.queues: dict[str, Queue] = {}
        self.processed_calls = 0
        self.globals: dict[str, str] = {}
        self.rng: random.Random | None = None
        """Set by the traffic generator so bridge ids repeat under a seed."""
        self._sequence = itertools.count()
        self._local_counter = itertools.count()

    # -- ids

    def new_uniqueid(self) -> str:
        prefix = f"{self.systemname}-" if self.systemname else ""
        return f"{prefix}{int(self.clock())}.{next(self._sequence)}"

    def continue_ids(self, *, local: int, sequence: int) -> None:
        """Go on counting Local channels and Uniqueids from ``local`` / ``sequence``.

        The traces were captured in one Asterisk run, so their counters carry over from file
        to file; a replay that starts where a trace started names its channels exactly as the
        trace does (and the platform's actions can be sent byte for byte).
        """
        self._local_counter = itertools.count(local)
        self._sequence = itertools.count(sequence)

    def new_bridge_id(self) -> str:
        if self.rng is not None:
            return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        return str(uuid.uuid4())

    # -- channels

    def add_channel(
        self, name: str, context: str, exten: str, *, linkedid: str | None = None
    ) -> Channel:
        uid = self.new_uniqueid()
        channel = Channel(name, uid, linkedid or uid, context, exten, created=self.clock())
        self.channels[name] = channel
        return channel

    def add_local_pair(
        self, exten: str, context: str, *, linkedid: str | None = None
    ) -> tuple[Channel, Channel]:
        """A Local channel pair ``Local/<exten>@<context>-0000000N;1`` / ``;2``."""
        base = f"Local/{exten}@{context}-{next(self._local_counter):08x}"
        one = self.add_channel(f"{base};1", context, exten, linkedid=linkedid)
        two = self.add_channel(f"{base};2", context, exten, linkedid=one.linkedid)
        two.state = 4
        return one, two

    def remove_channel(self, name: str) -> Channel | None:
        return self.channels.pop(name, None)

    def find_channel(self, name: str) -> Channel | None:
        return self.channels.get(name)

    # -- queues

    def add_queue(self, queue: Queue) -> Queue:
        self.queues[queue.name] = queue
        return queue

    def members_of(self, interface: str) -> list[Member]:
        return [m for q in self.queues.values() for m in q.members if m.interface == interface]

    @property
    def uptime(self) -> int:
        return int(self.clock() - self.started)


def hotline_lab(
    *,
    systemname: str | None = None,
    timestamp_events: bool = False,
    channelvars: tuple[str, ...] = (),
    clock: Clock = time.time,
) -> PbxModel:
    """The queues and seats of the trace lab (``conf/queues.conf``), in Asterisk's list order."""
    model = PbxModel(
        systemname=systemname,
        timestamp_events=timestamp_events,
        channelvars=channelvars,
        clock=clock,
    )
    login = int(model.clock())

    def seat(queue: str, name: str, number: str) -> Member:
        return Member(queue, name, f"Local/{number}@agent-phones/n", login_time=login)

    model.add_queue(Queue("mediation", strategy="leastrecent"))
    model.add_queue(
        Queue(
            "legal-consult",
            strategy="rrmemory",
            service_level=20,
            members=[seat("legal-consult", "张伟", "8001"), seat("legal-consult", "李娜", "8002")],
        )
    )
    model.add_queue(Queue("province", members=[seat("province", "省中心-陈静", "8004")]))
    model.add_queue(Queue("city-330400", members=[seat("city-330400", "王芳", "8009")]))
    model.add_queue(
        Queue("legal-aid", service_level=20, members=[seat("legal-aid", "王芳", "8009")])
    )
    return model
