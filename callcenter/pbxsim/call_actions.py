"""Actions that steer a live call: Hangup, Redirect, BlindTransfer, Atxfer (traces 03, 04, 04b,
04c).

The checks and their error texts are Asterisk's, in Asterisk's order (a Redirect without
``Priority`` is refused before the channel is even looked up, trace 04).  A channel owned by a
simulated call is handed to that call (it answers whether it can, then acts after the
response); a channel nobody owns (added by a test) gets the plain behaviour: it hangs up, or
jumps to the new dialplan location.
"""

from __future__ import annotations

from callcenter.ami.codec import Frame
from callcenter.pbxsim.ami_server import AmiSession
from callcenter.pbxsim.engine import (
    Command,
    HangupCommand,
    Pbx,
    RedirectCommand,
    TransferCommand,
)
from callcenter.pbxsim.model import Channel

__all__ = ["CallActions"]


class CallActions:
    """Handlers bound to one simulated node; :meth:`install` registers them."""

    def __init__(self, pbx: Pbx) -> None:
        self.pbx = pbx

    def install(self) -> None:
        server = self.pbx.server
        server.register_action("Hangup", self.hangup)
        server.register_action("Redirect", self.redirect)
        server.register_action("BlindTransfer", self.blind_transfer)
        server.register_action("Atxfer", self.atxfer)

    async def _dispatch(
        self,
        session: AmiSession,
        action_id: str | None,
        channel: Channel,
        command: Command,
        success: str,
    ) -> None:
        """Give the command to the channel's call (or act alone), then answer."""
        owner = self.pbx.calls.owner(channel.name)
        refusal = owner.accept(channel, command) if owner is not None else self._alone(command)
        if refusal is not None:
            return await self.pbx.server.error(session, action_id, refusal)
        await self.pbx.server.ack(session, action_id, success)
        if owner is None:
            await self._act_alone(channel, command)

    @staticmethod
    def _alone(command: Command) -> str | None:
        """A channel outside any call is in no bridge, so it cannot be transferred blind."""
        if isinstance(command, TransferCommand) and not command.attended:
            return "Transfer invalid"
        return None

    async def _act_alone(self, channel: Channel, command: Command) -> None:
        steps = self.pbx.steps
        if isinstance(command, HangupCommand):
            await steps.hangup(channel, command.cause, request="SoftHangupRequest")
        elif isinstance(command, RedirectCommand):
            channel.context = command.context
            await steps.exten(channel, command.exten, command.priority, "NoOp", "redirected")

    def _find(self, name: str) -> Channel | None:
        return self.pbx.model.find_channel(name)

    # ------------------------------------------------------------------ Hangup

    async def hangup(self, session: AmiSession, frame: Frame, action_id: str | None) -> None:
        server = self.pbx.server
        name = frame.get("Channel")
        if not name:
            return await server.error(session, action_id, "No channel specified")
        cause_text = (frame.get("Cause") or "16").strip()
        if not cause_text.isdigit():
            return await server.error(session, action_id, "Invalid cause")
        channel = self._find(name)
        if channel is None:
            return await server.error(session, action_id, "No such channel")
        command = HangupCommand(int(cause_text))
        await self._dispatch(session, action_id, channel, command, "Channel Hungup")

    # ------------------------------------------------------------------ Redirect

    async def redirect(self, session: AmiSession, frame: Frame, action_id: str | None) -> None:
        server = self.pbx.server
        name, context = frame.get("Channel"), frame.get("Context")
        exten, priority = frame.get("Exten"), frame.get("Priority")
        for value, message in (
            (name, "Channel not specified"),
            (context, "Context not specified"),
            (exten, "Exten not specified"),
            (priority, "Priority not specified"),
        ):
            if not value:
                return await server.error(session, action_id, message)
        assert name and context and exten and priority
        if not priority.strip().isdigit() or int(priority) < 1:
            return await server.error(session, action_id, "Priority is invalid")
        channel = self._find(name)
        if channel is None:
            return await server.error(session, action_id, f"Channel does not exist: {name}")
        command = RedirectCommand(context, exten, int(priority))
        await self._dispatch(session, action_id, channel, command, "Redirect successful")

    # ------------------------------------------------------------------ transfers

    async def blind_transfer(
        self, session: AmiSession, frame: Frame, action_id: str | None
    ) -> None:
        await self._transfer(session, frame, action_id, attended=False)

    async def atxfer(self, session: AmiSession, frame: Frame, action_id: str | None) -> None:
        await self._transfer(session, frame, action_id, attended=True)

    async def _transfer(
        self, session: AmiSession, frame: Frame, action_id: str | None, *, attended: bool
    ) -> None:
        server = self.pbx.server
        name, exten = frame.get("Channel"), frame.get("Exten")
        if not name:
            return await server.error(session, action_id, "No channel specified")
        if not exten:
            return await server.error(session, action_id, "No extension specified")
        channel = self._find(name)
        if channel is None:
            return await server.error(session, action_id, "Channel specified does not exist")
        context = frame.get("Context") or channel.context
        command = TransferCommand(context, exten, attended)
        success = "Atxfer successfully queued" if attended else "Transfer succeeded"
        await self._dispatch(session, action_id, channel, command, success)
