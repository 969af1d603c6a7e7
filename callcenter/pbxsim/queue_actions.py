"""Queue member actions as app_queue answers them (trace 03): QueueAdd, QueueRemove, QueuePause,
QueuePenalty, QueueLog.

Each success is answered first and followed by the member event (``QueueMemberAdded``,
``QueueMemberRemoved``, ``QueueMemberPause``, ``QueueMemberPenalty``) -- Asterisk publishes
events asynchronously, so the response always wins the race in the traces.  Error texts are
app_queue's, byte for byte.
"""

from __future__ import annotations

from callcenter.ami.codec import Frame
from callcenter.pbxsim.ami_server import AmiServer, AmiSession
from callcenter.pbxsim.model import Member, PbxModel

__all__ = ["QueueActions", "is_true"]

_TRUE = frozenset({"yes", "true", "y", "t", "1", "on"})


def is_true(value: str | None) -> bool:
    """Asterisk's ``ast_true``."""
    return (value or "").strip().lower() in _TRUE


class QueueActions:
    """Handlers bound to one server; :meth:`install` registers them."""

    def __init__(self, server: AmiServer) -> None:
        self.server = server

    @property
    def model(self) -> PbxModel:
        return self.server.model

    def install(self) -> None:
        self.server.register_action("QueueAdd", self.queue_add)
        self.server.register_action("QueueRemove", self.queue_remove)
        self.server.register_action("QueuePause", self.queue_pause)
        self.server.register_action("QueuePenalty", self.queue_penalty)
        self.server.register_action("QueueLog", self.queue_log)

    # ------------------------------------------------------------------ QueueAdd

    async def queue_add(self, session: AmiSession, frame: Frame, action_id: str | None) -> None:
        name, interface = frame.get("Queue"), frame.get("Interface")
        if not name:
            return await self.server.error(session, action_id, "'Queue' not specified.")
        if not interface:
            return await self.server.error(session, action_id, "'Interface' not specified.")
        queue = self.model.queues.get(name)
        if queue is None:
            message = "Unable to add interface to queue: No such queue"
            return await self.server.error(session, action_id, message)
        if any(m.interface == interface for m in queue.members):
            message = "Unable to add interface: Already there"
            return await self.server.error(session, action_id, message)
        member = self._new_member(name, interface, frame)
        queue.members.append(member)
        await self.server.ack(session, action_id, "Added interface to queue")
        await self.server.emit_member_event("QueueMemberAdded", member)

    def _new_member(self, queue: str, interface: str, frame: Frame) -> Member:
        now = int(self.model.clock())
        paused = is_true(frame.get("Paused"))
        others = self.model.members_of(interface)
        return Member(
            queue,
            frame.get("MemberName") or interface,
            interface,
            state_interface=frame.get("StateInterface") or interface,
            membership="dynamic",
            penalty=_int(frame.get("Penalty")),
            login_time=now,
            last_pause=now if paused else 0,
            status=others[0].status if others else 1,
            paused=paused,
            paused_reason=(frame.get("Reason") or "") if paused else "",
            wrapuptime=self._wrapuptime(queue),
        )

    def _wrapuptime(self, queue: str) -> int:
        members = self.model.queues[queue].members
        return members[0].wrapuptime if members else 0

    # ------------------------------------------------------------------ QueueRemove

    async def queue_remove(self, session: AmiSession, frame: Frame, action_id: str | None) -> None:
        name, interface = frame.get("Queue"), frame.get("Interface")
        if not name or not interface:
            message = "Need 'Queue' and 'Interface' parameters."
            return await self.server.error(session, action_id, message)
        queue = self.model.queues.get(name)
        if queue is None:
            message = "Unable to remove interface from queue: No such queue"
            return await self.server.error(session, action_id, message)
        member = next((m for m in queue.members if m.interface == interface), None)
        if member is None:
            message = "Unable to remove interface: Not there"
            return await self.server.error(session, action_id, message)
        if member.membership != "dynamic":
            return await self.server.error(session, action_id, "Member not dynamic")
        queue.members.remove(member)
        await self.server.ack(session, action_id, "Removed interface from queue")
        await self.server.emit_member_event("QueueMemberRemoved", member)

    # ------------------------------------------------------------------ QueuePause

    async def queue_pause(self, session: AmiSession, frame: Frame, action_id: str | None) -> None:
        interface, paused_text = frame.get("Interface"), frame.get("Paused")
        if not interface or not paused_text:
            message = "Need 'Interface' and 'Paused' parameters."
            return await self.server.error(session, action_id, message)
        members = self._members(interface, frame.get("Queue"))
        if not members:
            return await self.server.error(session, action_id, "Interface not found")
        paused = is_true(paused_text)
        for member in members:
            self._set_paused(member, paused, frame.get("Reason") or "")
        state = "paused" if paused else "unpaused"
        await self.server.ack(session, action_id, f"Interface {state} successfully")
        for member in members:
            await self.server.emit_member_event("QueueMemberPause", member)

    def _members(self, interface: str, queue: str | None) -> list[Member]:
        """The interface's memberships: in one queue, or in all of them (no ``Queue``)."""
        members = self.model.members_of(interface)
        return [m for m in members if not queue or m.queue == queue]

    def _set_paused(self, member: Member, paused: bool, reason: str) -> None:
        if paused:
            member.last_pause = int(self.model.clock())
        member.paused = paused
        member.paused_reason = reason if paused else ""

    # ------------------------------------------------------------------ QueuePenalty, QueueLog

    async def queue_penalty(self, session: AmiSession, frame: Frame, action_id: str | None) -> None:
        interface, penalty = frame.get("Interface"), frame.get("Penalty")
        if not interface or not penalty:
            message = "Need 'Interface' and 'Penalty' parameters."
            return await self.server.error(session, action_id, message)
        if not penalty.strip().isdigit():
            return await self.server.error(session, action_id, f"Invalid penalty ({penalty})")
        members = self._members(interface, frame.get("Queue"))
        if not members:
            message = "Invalid interface, queuename or penalty"
            return await self.server.error(session, action_id, message)
        for member in members:
            member.penalty = int(penalty)
        await self.server.ack(session, action_id, "Interface penalty set successfully")
        for member in members:
            await self.server.emit_member_event("QueueMemberPenalty", member)

    async def queue_log(self, session: AmiSession, frame: Frame, action_id: str | None) -> None:
        if not frame.get("Queue") or not frame.get("Event"):
            message = "Need 'Queue' and 'Event' parameters."
            return await self.server.error(session, action_id, message)
        await self.server.ack(session, action_id, "Event added successfully")


def _int(value: str | None) -> int:
    try:
        return int(value) if value else 0
    except ValueError:
        return 0
