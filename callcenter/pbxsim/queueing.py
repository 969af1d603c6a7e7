"""Which seat a waiting caller rings: availability, wrap-up and the ring strategy.

Like app_queue with ``autofill=yes``: the first *n* waiting callers of a queue may ring at
once, *n* being the number of free members.  A member is free when it is not paused, its
device is idle (``Status: 1`` -- ringing or talking makes it ``2`` in every queue it is in)
and its wrap-up after the last call is over.  Strategies:

* ``rrmemory`` -- round robin, remembering where the last ring stopped;
* ``leastrecent`` -- the member whose last call ended longest ago;
* ``ringall`` -- simplified to "first free member in list order" (one leg per caller).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from callcenter.pbxsim.model import Channel, Member, Queue

__all__ = ["SeatBoard"]


@dataclass
class SeatBoard:
    """Shared state of the queues that AMI does not show: wrap-ups and round-robin memory."""

    wrap_until: dict[str, float] = field(default_factory=dict)
    last_rung: dict[str, int] = field(default_factory=dict)

    def free(self, member: Member, now: float) -> bool:
        return (
            not member.paused
            and member.status == 1
            and self.wrap_until.get(member.interface, 0.0) <= now
        )

    def start_wrapup(self, member: Member, now: float) -> None:
        if member.wrapuptime > 0:
            self.wrap_until[member.interface] = now + member.wrapuptime

    def pick(self, queue: Queue, caller: Channel, now: float) -> Member | None:
        """The member ``caller`` should ring now, or None (nobody free, or not its turn)."""
        free = [(i, m) for i, m in enumerate(queue.members) if self.free(m, now)]
        if not free or _position(queue, caller) > len(free):
            return None
        if queue.strategy == "leastrecent":
            index, member = min(free, key=lambda item: (item[1].last_call, item[0]))
        elif queue.strategy == "rrmemory":
            last = self.last_rung.get(queue.name, -1)
            index, member = min(free, key=lambda item: (item[0] - last - 1) % len(queue.members))
        else:
            index, member = free[0]
        self.last_rung[queue.name] = index
        return member


def _position(queue: Queue, caller: Channel) -> int:
    for index, entry in enumerate(queue.entries, start=1):
        if entry.channel is caller:
            return index
    return len(queue.entries) + 1
