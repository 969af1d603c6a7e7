"""AMI message builders for the simulator, field order as in the real Asterisk 22 traces.

Responses: ``Response``, then ``ActionID`` (only when the action had one), then the body.
Events: ``Event``, ``Privilege``, then ``Timestamp`` / ``SystemName`` when configured (trace 13),
then the body.  List items carry no ``Privilege`` and put the ``ActionID`` last -- except
``CoreShowChannel`` and the ``…Complete`` events, which put it right after ``Event``.
"""

from __future__ import annotations

import time

from callcenter.pbxsim.model import Channel, Fields, PbxModel

BANNER = b"Asterisk Call Manager/11.0.0\r\n"
UNKNOWN_ACTION = "Invalid/unknown command: {}. Use Action: ListCommands to show available commands."


def render(fields: Fields) -> bytes:
    """``Key: Value`` CRLF lines and the blank line (bytes of odd text kept as they came)."""
    lines = b"".join(f"{k}: {v}\r\n".encode("utf-8", "surrogateescape") for k, v in fields)
    return lines + b"\r\n"


def response(status: str, action_id: str | None, *body: tuple[str, str]) -> Fields:
    head = [("Response", status)]
    if action_id is not None:
        head.append(("ActionID", action_id))
    return [*head, *body]


def message_response(status: str, action_id: str | None, message: str) -> Fields:
    return response(status, action_id, ("Message", message))


def event_header(model: PbxModel, name: str, privilege: str) -> Fields:
    fields = [("Event", name), ("Privilege", privilege)]
    if model.timestamp_events:
        fields.append(("Timestamp", f"{model.clock():.6f}"))
    if model.systemname:
        fields.append(("SystemName", model.systemname))
    return fields


def event(model: PbxModel, name: str, privilege: str, *body: tuple[str, str]) -> Fields:
    return [*event_header(model, name, privilege), *body]


def channel_event(
    model: PbxModel,
    name: str,
    channel: Channel,
    *extra: tuple[str, str],
    privilege: str = "call,all",
    dest: Channel | None = None,
) -> Fields:
    """A channel event: header, the channel snapshot, the ``Dest…`` snapshot, then ``extra``."""
    fields = [*event_header(model, name, privilege), *channel.snapshot("", model.channelvars)]
    if dest is not None:
        fields += dest.snapshot("Dest", model.channelvars)
    return [*fields, *extra]


# --------------------------------------------------------------------------- list responses


def list_start(action_id: str | None, message: str) -> Fields:
    return response("Success", action_id, ("EventList", "start"), ("Message", message))


def list_item(name: str, body: Fields, action_id: str | None) -> Fields:
    tail = [("ActionID", action_id)] if action_id is not None else []
    return [("Event", name), *body, *tail]


def list_item_id_first(name: str, body: Fields, action_id: str | None) -> Fields:
    head = [("ActionID", action_id)] if action_id is not None else []
    return [("Event", name), *head, *body]


def list_complete(name: str, action_id: str | None, count: int, *, items: bool = False) -> Fields:
    body = [("EventList", "Complete"), ("ListItems", str(count))]
    if items:
        body.append(("Items", str(count)))  # legacy header of StatusComplete
    return list_item_id_first(name, body, action_id)


def core_show_channel_body(channel: Channel, now: float) -> Fields:
    seconds = max(0, int(now - channel.created))
    duration = f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
    return [
        *channel.snapshot(),
        ("Application", channel.application),
        ("ApplicationData", channel.app_data),
        ("Duration", duration),
        ("BridgeId", channel.bridge_id),
    ]


# --------------------------------------------------------------------------- session events


def event_tv(at: float) -> str:
    """Security-event time format: ``2026-11-21T09:40:59.809+0000``."""
    millis = int(at * 1000) % 1000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + f".{millis:03d}+0000"


def fully_booted(model: PbxModel) -> Fields:
    uptime = str(model.uptime)
    return event(
        model,
        "FullyBooted",
        "system,all",
        ("Uptime", uptime),
        ("LastReload", uptime),
        ("Status", "Fully Booted"),
    )


def successful_auth(
    model: PbxModel, *, user: str, session_id: str, local: str, remote: str, session_start: float
) -> Fields:
    return event(
        model,
        "SuccessfulAuth",
        "security,all",
        ("EventTV", event_tv(model.clock())),
        ("Severity", "Informational"),
        ("Service", "AMI"),
        ("EventVersion", "1"),
        ("AccountID", user),
        ("SessionID", session_id),
        ("LocalAddress", local),
        ("RemoteAddress", remote),
        ("UsingPassword", "0"),
        ("SessionTV", event_tv(session_start)),
    )
