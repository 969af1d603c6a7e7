"""Render the Asterisk ``manager.conf`` for the bridge's AMI account.

The account is allowed to read only the events in :data:`USED_EVENTS`: filtering in Asterisk
removes most of the volume (one real call is ~40–240 events, mostly ``VarSet``) and keeps
caller-controlled text we do not need off the wire.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Collection, Sequence

from jinja2 import Environment, PackageLoader, StrictUndefined

from callcenter.ami.normalize import USED_EVENTS
from callcenter.errors import InvalidInput

_ENV = Environment(
    loader=PackageLoader("callcenter.ami", "templates"),
    undefined=StrictUndefined,
    autoescape=False,  # noqa: S701 - an Asterisk config file, every value is validated below
    keep_trailing_newline=True,
)
_SAFE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
_SECRET = re.compile(r"^[\x21-\x7e]{8,128}$")
READ_CLASSES = "system,call,agent,user,dialplan,reporting"
WRITE_CLASSES = "call,agent,originate,reporting"


def render_manager_conf(
    *,
    username: str,
    secret: str,
    permit: Sequence[str] = ("127.0.0.1/255.255.255.255",),
    bindaddr: str = "127.0.0.1",
    port: int = 5038,
    events: Collection[str] = USED_EVENTS,
) -> str:
    """The file's text. Every value is checked: a CR/LF or ``;`` could add config lines."""
    if not _SAFE.fullmatch(username):
        raise InvalidInput("AMI username: letters, digits, '_', '.', '-' only")
    if not _SECRET.fullmatch(secret) or ";" in secret:
        raise InvalidInput("AMI secret: 8-128 printable ASCII characters, no spaces or ';'")
    nets = [_network(p) for p in permit]
    ipaddress.ip_address(bindaddr)
    for name in events:
        if not re.fullmatch(r"[A-Za-z]{2,40}", name):
            raise InvalidInput(f"invalid AMI event name {name!r}")
    return _ENV.get_template("manager.conf.j2").render(
        username=username,
        secret=secret,
        permit=nets,
        bindaddr=bindaddr,
        port=int(port),
        read=READ_CLASSES,
        write=WRITE_CLASSES,
        events=sorted(events),
    )


def _network(value: str) -> str:
    """``10.1.2.0/24`` or ``10.1.2.0/255.255.255.0`` → Asterisk's address/netmask form."""
    try:
        net = ipaddress.IPv4Network(value, strict=False)
    except ValueError as exc:
        raise InvalidInput(f"invalid permit network {value!r}: {exc}") from None
    return f"{net.network_address}/{net.netmask}"
