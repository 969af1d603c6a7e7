"""Typed AMI actions: the only way the platform tells Asterisk to do something.

Each method builds exactly the fields the real traces show (``shared/asterisk-traces`` 03, 04,
04b, 04c, 05, 05b, 08), checks every value first (shape, and no CR/LF anywhere: the codec refuses
those again before writing) and returns typed results.  Originate is always ``Async: true``: a
synchronous Originate blocks the AMI session for the whole ring time.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from callcenter.ami.client import AmiResponse, FieldValue
from callcenter.ami.events import originate_reason
from callcenter.errors import InvalidInput

_CHANNEL = re.compile(r"^[A-Za-z0-9_]+/[\w@.+:;/\-]{1,120}$")
_INTERFACE = re.compile(r"^[A-Za-z0-9_]+/[\w@.+\-/]{1,80}$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,63}$", re.IGNORECASE)
_EXTEN = re.compile(r"^[0-9A-Za-z*#+_\-]{1,32}$")
_NUMBER = re.compile(r"^\+?[0-9]{3,20}$")
_VARIABLE = re.compile(r"^[A-Z_][A-Z0-9_]{0,40}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class Sender(Protocol):
    async def send(
        self,
        action: str,
        fields: dict[str, FieldValue] | None = None,
        *,
        timeout: float | None = None,
        as_list: bool | None = None,
    ) -> AmiResponse: ...


class SpyMode(StrEnum):
    """Supervisor modes of ChanSpy: listen only, whisper to the agent, or join the call."""

    LISTEN = "listen"
    WHISPER = "whisper"
    BARGE = "barge"


_SPY_OPTIONS = {SpyMode.LISTEN: "qE", SpyMode.WHISPER: "qEw", SpyMode.BARGE: "qEB"}


@dataclass(frozen=True, slots=True)
class OriginateOutcome:
    """What Asterisk reported in ``OriginateResponse`` (reason 4 = answered)."""

    action_id: str
    success: bool
    reason_code: int | None
    reason: str
    channel_id: str | None


def _check(kind: str, value: str, pattern: re.Pattern[str]) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        shown = _CONTROL.sub("?", str(value))[:60]
        raise InvalidInput(f"invalid {kind}: {shown!r}", field=kind)
    return value


def _text(kind: str, value: str, limit: int = 80) -> str:
    """Free text (names, reasons): any Unicode, but no control characters and bounded."""
    if _CONTROL.search(value) or len(value) > limit:
        raise InvalidInput(f"invalid {kind}: control characters or over {limit} characters")
    return value


def _caller_id(name: str, number: str) -> str:
    name = _text("caller name", name, 40).replace('"', "'")
    return f'"{name}" <{_check("caller number", number, _EXTEN)}>'


def _variables(variables: dict[str, str]) -> list[str]:
    return [
        f"{_check('variable name', k, _VARIABLE)}={_text(f'variable {k}', v, 200)}"
        for k, v in variables.items()
    ]


class AmiActions:
    """Typed actions over one node's client (anything with ``send``)."""

    def __init__(self, client: Sender) -> None:
        self.client = client

    # ----------------------------------------------------------------- calls

    async def originate(
        self,
        channel: str,
        *,
        context: str | None = None,
        exten: str | None = None,
        application: str | None = None,
        data: str = "",
        caller_id: tuple[str, str] | None = None,
        timeout_s: int = 30,
        variables: dict[str, str] | None = None,
        account: str | None = None,
        channel_id: str | None = None,
    ) -> OriginateOutcome:
        """Place a call; waits for ``OriginateResponse`` (answer or failure reason)."""
        fields: dict[str, FieldValue] = {
            "Channel": _check("channel", channel, _INTERFACE),
            "Async": "true",
            "Timeout": str(int(timeout_s) * 1000),
        }
        if application is not None:
            fields["Application"] = _check("application", application, _NAME)
            fields["Data"] = _text("application data", data, 200)
        elif context is not None and exten is not None:
            fields["Context"] = _check("context", context, _NAME)
            fields["Exten"] = _check("extension", exten, _EXTEN)
            fields["Priority"] = "1"
        else:
            raise InvalidInput("originate needs either context+exten or an application")
        if caller_id is not None:
            fields["CallerID"] = _caller_id(*caller_id)
        if variables:
            fields["Variable"] = _variables(variables)
        if account is not None:
            fields["Account"] = _check("account", account, _NAME)
        chan_id = channel_id or f"cc-{uuid.uuid4()}"
        fields["ChannelId"] = _check("channel id", chan_id, _NAME)
        wait = timeout_s + 15.0
        response = await self.client.send("Originate", fields, timeout=wait)
        return _originate_outcome(response, chan_id)

    async def click_to_call(
        self,
        agent_interface: str,
        customer_number: str,
        *,
        caller_id: tuple[str, str],
        ticket_id: str | None = None,
        context: str = "callback-dial",
        timeout_s: int = 30,
    ) -> OriginateOutcome:
        """Callback / click-to-call: ring the agent's seat first, then dial the customer."""
        variables = {"TICKET_ID": ticket_id} if ticket_id else None
        return await self.originate(
            agent_interface,
            context=context,
            exten=_check("customer number", customer_number, _NUMBER),
            caller_id=caller_id,
            timeout_s=timeout_s,
            variables=variables,
        )

    async def redirect(self, channel: str, context: str, exten: str) -> None:
        """Blind transfer by moving the caller's channel to another dialplan place."""
        await self.client.send(
            "Redirect",
            {
                "Channel": _check("channel", channel, _CHANNEL),
                "Context": _check("context", context, _NAME),
                "Exten": _check("extension", exten, _EXTEN),
                "Priority": "1",
            },
        )

    async def blind_transfer(self, agent_channel: str, context: str, exten: str) -> None:
        await self.client.send("BlindTransfer", self._transfer(agent_channel, context, exten))

    async def attended_transfer(self, agent_channel: str, context: str, exten: str) -> None:
        """Agent consults the target first; hanging up the agent leg completes the transfer."""
        await self.client.send("Atxfer", self._transfer(agent_channel, context, exten))

    @staticmethod
    def _transfer(channel: str, context: str, exten: str) -> dict[str, FieldValue]:
        return {
            "Channel": _check("channel", channel, _CHANNEL),
            "Context": _check("context", context, _NAME),
            "Exten": _check("extension", exten, _EXTEN),
        }

    async def hangup(self, channel: str, cause: int = 16) -> None:
        if not 0 <= cause <= 127:
            raise InvalidInput(f"invalid hangup cause: {cause}")
        await self.client.send(
            "Hangup", {"Channel": _check("channel", channel, _CHANNEL), "Cause": str(cause)}
        )

    # ----------------------------------------------------------------- recording

    async def start_recording(self, channel: str, filename: str) -> None:
        """MixMonitor with ``b`` (only while bridged): the caller-agent conversation."""
        await self.client.send(
            "MixMonitor",
            {
                "Channel": _check("channel", channel, _CHANNEL),
                "File": _check("file name", filename, re.compile(r"^[\w.\-]{1,100}\.wav$")),
                "Options": "b",
            },
        )

    async def stop_recording(self, channel: str) -> None:
        await self.client.send("StopMixMonitor", {"Channel": _check("channel", channel, _CHANNEL)})

    # ----------------------------------------------------------------- agents

    async def queue_add(
        self,
        queue: str,
        interface: str,
        *,
        member_name: str,
        penalty: int = 0,
        paused: bool = False,
        state_interface: str | None = None,
    ) -> None:
        """Agent login to a queue."""
        fields: dict[str, FieldValue] = {
            "Queue": _check("queue", queue, _NAME),
            "Interface": _check("interface", interface, _INTERFACE),
            "MemberName": _text("member name", member_name, 40),
            "Penalty": str(max(0, int(penalty))),
            "Paused": "true" if paused else "false",
        }
        if state_interface is not None:
            fields["StateInterface"] = _check("state interface", state_interface, _INTERFACE)
        await self.client.send("QueueAdd", fields)

    async def queue_remove(self, queue: str, interface: str) -> None:
        """Agent logout from a queue."""
        await self.client.send(
            "QueueRemove",
            {
                "Queue": _check("queue", queue, _NAME),
                "Interface": _check("interface", interface, _INTERFACE),
            },
        )

    async def queue_pause(
        self, interface: str, paused: bool, *, reason: str | None = None, queue: str | None = None
    ) -> None:
        """Pause (with a reason code such as 小休) or make ready; all queues when none given."""
        fields: dict[str, FieldValue] = {
            "Interface": _check("interface", interface, _INTERFACE),
            "Paused": "true" if paused else "false",
        }
        if queue is not None:
            fields["Queue"] = _check("queue", queue, _NAME)
        if reason:
            fields["Reason"] = _text("pause reason", reason, 40)
        await self.client.send("QueuePause", fields)

    # ----------------------------------------------------------------- supervision

    async def spy(
        self,
        supervisor_interface: str,
        target_channel: str,
        mode: SpyMode,
        *,
        supervisor: tuple[str, str],
        context: str = "supervisor",
    ) -> OriginateOutcome:
        """Ring the supervisor's phone, which then runs ChanSpy on the agent leg (trace 08)."""
        return await self.originate(
            supervisor_interface,
            application="Wait",
            data="60",
            caller_id=supervisor,
            variables={
                "SPY_TARGET": _check("target channel", target_channel, _CHANNEL),
                "SPY_OPTS": _SPY_OPTIONS[SpyMode(mode)],
            },
        )


def _originate_outcome(response: AmiResponse, channel_id: str) -> OriginateOutcome:
    result = next(
        (i for i in response.items if str(i.get("Event", "")).lower() == "originateresponse"),
        None,
    )
    if result is None:
        return OriginateOutcome(response.get("ActionID") or "", False, None, "unknown", channel_id)
    raw = str(result.get("Reason", ""))
    code = int(raw) if raw.isdigit() else None
    return OriginateOutcome(
        action_id=str(result.get("ActionID", "")),
        success=str(result.get("Response", "")) == "Success",
        reason_code=code,
        reason=originate_reason(code),
        channel_id=channel_id,
    )
