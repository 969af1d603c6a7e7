"""Channel inspection and recording actions (trace 03): Status, Getvar, Setvar, MixMonitor,
MixMonitorMute, StopMixMonitor, and the small Agents / ExtensionState answers.

``Status`` items carry ``Privilege: Call`` and the ``ActionID`` last, with the requested
``Variables`` as ``Variable: NAME=value`` lines before it.  Variables are read from the
channel's own store, plus the dialplan functions the platform asks for (``CALLERID(name)``,
``CALLERID(num)``, ``UNIQUEID``, ``CHANNEL``) and the global ``EPOCH``.
"""

from __future__ import annotations

from callcenter.ami.codec import Frame
from callcenter.pbxsim import messages as m
from callcenter.pbxsim.ami_server import AmiServer, AmiSession
from callcenter.pbxsim.model import Channel, Fields, PbxModel

__all__ = ["ChannelActions", "channel_variable"]


def channel_variable(channel: Channel, name: str) -> str:
    """A variable or dialplan function as ``Getvar`` would read it ("" when unset)."""
    functions = {
        "CALLERID(name)": channel.caller_name,
        "CALLERID(num)": channel.caller_num,
        "UNIQUEID": channel.uniqueid,
        "CHANNEL(linkedid)": channel.linkedid,
        "CHANNEL": channel.name,
        "CONTEXT": channel.context,
        "EXTEN": channel.exten,
    }
    return functions.get(name, channel.variables.get(name, ""))


class ChannelActions:
    """Handlers bound to one server; :meth:`install` registers them."""

    def __init__(self, server: AmiServer) -> None:
        self.server = server

    @property
    def model(self) -> PbxModel:
        return self.server.model

    def install(self) -> None:
        for name, handler in (
            ("Status", self.status),
            ("Getvar", self.getvar),
            ("Setvar", self.setvar),
            ("MixMonitor", self.mix_monitor),
            ("MixMonitorMute", self.mix_monitor_mute),
            ("StopMixMonitor", self.stop_mix_monitor),
            ("Agents", self.agents),
            ("ExtensionState", self.extension_state),
        ):
            self.server.register_action(name, handler)

    async def _channel(
        self, session: AmiSession, frame: Frame, action_id: str | None, missing: str
    ) -> Channel | None:
        """The ``Channel`` header's channel, or None after answering the error Asterisk gives."""
        name = frame.get("Channel")
        if not name:
            await self.server.error(session, action_id, missing)
            return None
        channel = self.model.find_channel(name)
        if channel is None:
            await self.server.error(session, action_id, "No such channel")
        return channel

    # ------------------------------------------------------------------ Status

    async def status(self, session: AmiSession, frame: Frame, action_id: str | None) -> None:
        name = frame.get("Channel")
        channels = list(self.model.channels.values())
        if name:
            found = self.model.find_channel(name)
            if found is None:
                return await self.server.error(session, action_id, "No such channel")
            channels = [found]
        wanted = [v.strip() for v in (frame.get("Variables") or "").split(",") if v.strip()]
        now = self.model.clock()
        items = [self._status_item(ch, wanted, now, action_id) for ch in channels]
        done = m.list_complete("StatusComplete", action_id, len(items), items=True)
        await self.server.send_list(session, action_id, "Channel status will follow", items, done)

    def _status_item(
        self, channel: Channel, wanted: list[str], now: float, action_id: str | None
    ) -> Fields:
        native = "slin" if channel.name.startswith("Local/") else "alaw"
        body: Fields = [
            ("Event", "Status"),
            ("Privilege", "Call"),
            *channel.snapshot("", self.model.channelvars),
            ("Type", channel.name.partition("/")[0]),
            ("DNID", ""),
            ("EffectiveConnectedLineNum", channel.connected_num),
            ("EffectiveConnectedLineName", channel.connected_name),
            ("TimeToHangup", "0"),
            ("BridgeID", channel.bridge_id),
            ("Application", channel.application),
            ("Data", channel.app_data),
            ("Nativeformats", f"({native})"),
            ("Readformat", native),
            ("Readtrans", ""),
            ("Writeformat", native),
            ("Writetrans", ""),
            ("Callgroup", "0"),
            ("Pickupgroup", "0"),
            ("Seconds", str(max(0, int(now - channel.created)))),
        ]
        body += [("Variable", f"{v}={channel_variable(channel, v)}") for v in wanted]
        return body + ([("ActionID", action_id)] if action_id is not None else [])

    # ------------------------------------------------------------------ variables

    async def getvar(self, session: AmiSession, frame: Frame, action_id: str | None) -> None:
        variable = frame.get("Variable")
        if not variable:
            return await self.server.error(session, action_id, "No variable specified")
        if frame.get("Channel"):
            channel = await self._channel(session, frame, action_id, "No such channel")
            if channel is None:
                return
            value = channel_variable(channel, variable)
        else:
            value = self._global(variable)
        body = (("Variable", variable), ("Value", value))
        await self.server.reply(session, m.response("Success", action_id, *body))

    def _global(self, name: str) -> str:
        if name == "EPOCH":
            return str(int(self.model.clock()))
        return self.model.globals.get(name, "")

    async def setvar(self, session: AmiSession, frame: Frame, action_id: str | None) -> None:
        variable = frame.get("Variable")
        if not variable:
            return await self.server.error(session, action_id, "Variable not specified")
        value = frame.get("Value") or ""
        if frame.get("Channel"):
            channel = await self._channel(session, frame, action_id, "No such channel")
            if channel is None:
                return
            channel.variables[variable] = value
        else:
            self.model.globals[variable] = value
        await self.server.ack(session, action_id, "Variable Set")

    # ------------------------------------------------------------------ MixMonitor

    async def mix_monitor(self, session: AmiSession, frame: Frame, action_id: str | None) -> None:
        channel = await self._channel(session, frame, action_id, "No channel specified")
        if channel is None:
            return
        channel.variables["MIXMONITOR_FILENAME"] = frame.get("File") or f"{channel.uniqueid}.wav"
        await self.server.ack(session, action_id, None)
        await self.server.emit_channel_event("MixMonitorStart", channel)

    async def mix_monitor_mute(
        self, session: AmiSession, frame: Frame, action_id: str | None
    ) -> None:
        channel = await self._channel(session, frame, action_id, "No channel specified")
        if channel is None:
            return
        direction = frame.get("Direction") or "both"
        state = "1" if (frame.get("State") or "").strip() == "1" else "0"
        await self.server.ack(session, action_id, None)
        extra = (("Direction", direction), ("State", state))
        await self.server.emit_channel_event("MixMonitorMute", channel, *extra)

    async def stop_mix_monitor(
        self, session: AmiSession, frame: Frame, action_id: str | None
    ) -> None:
        channel = await self._channel(session, frame, action_id, "No channel specified")
        if channel is None:
            return
        if channel.variables.pop("MIXMONITOR_FILENAME", None) is None:
            return await self.server.error(session, action_id, "Could not stop MixMonitor")
        await self.server.ack(session, action_id, None)
        await self.server.emit_channel_event("MixMonitorStop", channel)

    # ------------------------------------------------------------------ small ones

    async def agents(self, session: AmiSession, frame: Frame, action_id: str | None) -> None:
        done = m.list_complete("AgentsComplete", action_id, 0)
        await self.server.send_list(session, action_id, "Agents will follow", [], done)

    async def extension_state(
        self, session: AmiSession, frame: Frame, action_id: str | None
    ) -> None:
        body = (
            ("Message", "Extension Status"),
            ("Exten", frame.get("Exten") or ""),
            ("Context", frame.get("Context") or ""),
            ("Hint", ""),
            ("Status", "-1"),
            ("StatusText", "Unknown"),
        )
        await self.server.reply(session, m.response("Success", action_id, *body))
