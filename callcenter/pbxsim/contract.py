"""The dialplan contract (``docs/dialplan-contract.md``) played for one inbound call.

The steps a rendered ``extensions.conf`` runs around the platform's FastAGI IVR, with the
``Newexten`` each priority produces (``AppData`` substituted, as Asterisk reports it)::

    [from-trunk-<city>] 12348: 1 NoOp  2 Set(__HOTLINE_CITY)  3 AGI(entry=main)
        4 GotoIf(no answer from the platform ? fallback)  5 GotoIf(transfer)
        6 GotoIf(!= queue ? done)  7 MixMonitor  8 Queue(..., tc)
        9 GotoIf(MEMBERINTERFACE ? hotline-survey)  10 GotoIf(TIMEOUT & overflow ? overflow)
        11 (done) Hangup  12 (overflow) Queue  13 GotoIf(MEMBERINTERFACE ? survey)  14 Hangup
    [hotline-queue-exit] 1: 1 AGI(entry=virtual_hold)  2 Hangup
    [hotline-survey] s: 1 AGI(entry=survey)  2 Hangup
    [hotline-transfer] <target>: 1 Dial(PJSIP/<target>@<trunk>,60)  2 Hangup

The queue mechanics (ringing seats, talk, abandon) are :class:`InboundCall`'s; this module
holds the parts only the contract has.  Its channel context stays ``from-trunk`` (the bridge's
configured inbound context) rather than the rendered ``from-trunk-<city>``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from callcenter.pbxsim import scripts
from callcenter.pbxsim.agi_caller import AgiCaller
from callcenter.pbxsim.fastagi_client import FastAgiSession
from callcenter.pbxsim.model import Channel

if TYPE_CHECKING:
    from callcenter.pbxsim.inbound import InboundCall

__all__ = [
    "AGI_PRIORITY",
    "QUEUE_OPTIONS",
    "RING_S",
    "agi_request",
    "end_in_dialplan",
    "end_transfer",
    "run_agi",
    "survey",
    "transfer",
    "virtual_hold",
]

AGI_PRIORITY = 3
FALLBACK_CHECK_PRIORITY = 4
TRANSFER_CHECK_PRIORITY = 5
QUEUE_CHECK_PRIORITY = 6
MIXMONITOR_PRIORITY = 7
QUEUE_PRIORITY = 8
SURVEY_CHECK_PRIORITY = 9
OVERFLOW_CHECK_PRIORITY = 10
DONE_PRIORITY = 11
OVERFLOW_PRIORITY = 12
OVERFLOW_SURVEY_CHECK_PRIORITY = 13
QUEUE_OPTIONS = "tc"
"""``t``: the seat may transfer; ``c``: the caller stays in the dialplan when the seat hangs up
(the survey). ``F`` would do the opposite (send the *seat* on when the caller hangs up)."""
SURVEY_TARGET = "hotline-survey,s,1"
EXIT_CONTEXT = "hotline-queue-exit"
EXIT_KEYS = frozenset("1")
"""Keys with an extension in ``hotline-queue-exit``: only these leave the queue."""
RING_S = 2.0
"""How long a transfer target rings before it answers."""


def agi_request(url: str, entry: str, node: str | None) -> str:
    """``agi://host:port/ivr?entry=main&node=pbx1`` (no ``node`` = the platform's default)."""
    return f"{url}?entry={entry}" + (f"&node={node}" if node else "")


async def run_agi(
    call: InboundCall,
    entry: str,
    agi: AgiCaller,
    *,
    exten: str,
    priority: int,
    args: tuple[str, str],
) -> FastAgiSession:
    """One ``AGI(...)`` step: the ``Newexten``, then the session over the network.

    Like the classic hand-off, the session runs while this call holds the simulated clock.
    """
    url = call.ctx.config.fastagi_url
    assert url is not None
    request = agi_request(url, entry, call.ctx.config.node_name)
    caller = call.caller
    await call.pbx.steps.exten(caller, exten, priority, "AGI", f"{request},{','.join(args)}")
    session = FastAgiSession(caller, request, args, agi)
    call.sessions[entry] = session
    host, port = _host_port(url)
    await session.run(host, port)
    return session


def _host_port(url: str) -> tuple[str, int]:
    netloc = url.partition("://")[2].partition("/")[0]
    host, _, port = netloc.partition(":")
    return host or "127.0.0.1", int(port or 4573)


async def arrive(call: InboundCall) -> None:
    """The trunk call reaches ``[from-trunk-<city>]``: ``NoOp``, ``Set(__HOTLINE_CITY)``."""
    steps, caller, code = call.pbx.steps, call.caller, call.line.city_code
    await steps.new_channel(caller)
    await steps.caller_id(caller, call.who.number, call.who.name, connected=True)
    await steps.exten(caller, caller.exten, 1, "NoOp", f"12348 {code}")
    await steps.exten(caller, caller.exten, 2, "Set", f"__HOTLINE_CITY={code}")
    await steps.varset(caller, "HOTLINE_CITY", code)


async def after_main(call: InboundCall, action: str) -> None:
    """Priorities 4 to 6: the ``GotoIf`` steps on ``AGISTATUS`` and ``HOTLINE_ACTION``."""
    steps, caller = call.pbx.steps, call.caller
    await steps.exten(caller, caller.exten, FALLBACK_CHECK_PRIORITY, "GotoIf", "0?fallback")
    target = caller.variables.get("HOTLINE_TRANSFER", "")
    is_transfer = "1" if action == "transfer" else "0"
    await steps.exten(
        caller, caller.exten, TRANSFER_CHECK_PRIORITY, "GotoIf",
        f"{is_transfer}?hotline-transfer,{target},1",
    )  # fmt: skip
    if action == "transfer":
        return
    not_queue = "0" if action == "queue" else "1"
    await steps.exten(caller, caller.exten, QUEUE_CHECK_PRIORITY, "GotoIf", f"{not_queue}?done")


async def survey_check(call: InboundCall, *, overflow: bool, connected: bool) -> None:
    """``GotoIf($["${MEMBERINTERFACE}" != ""]?hotline-survey,s,1)`` after a ``Queue()``."""
    priority = OVERFLOW_SURVEY_CHECK_PRIORITY if overflow else SURVEY_CHECK_PRIORITY
    data = f"{'1' if connected else '0'}?{SURVEY_TARGET}"
    await call.pbx.steps.exten(call.caller, call.caller.exten, priority, "GotoIf", data)


async def end_in_dialplan(call: InboundCall, exten: str, priority: int, *, hung_up: bool) -> None:
    """``Hangup()`` at ``exten``/``priority`` -- or the caller already hung up (in an AGI)."""
    steps, caller = call.pbx.steps, call.caller
    if not hung_up:
        await steps.exten(caller, exten, priority, "Hangup")
    await steps.event("HangupRequest", caller, ("Cause", "16"))
    await steps.event("SoftHangupRequest", caller, ("Cause", "16"))
    await steps.hangup(caller)


async def virtual_hold(call: InboundCall, script: scripts.CallScript | None) -> None:
    """The caller pressed the exit key: ``hotline-queue-exit,1,1`` then ``Hangup()``."""
    call.caller.context = EXIT_CONTEXT
    call.outcome = scripts.VIRTUAL_HOLD
    call.stats.virtual_holds += 1
    call.phase = "ivr"
    if script is not None:
        agi = script.virtual_hold
    else:
        agi = AgiCaller(inputs=call.ctx.config.virtual_hold_inputs)
    session = await run_agi(
        call, "virtual_hold", agi, exten="1", priority=1, args=_later_args(call.caller)
    )
    await end_in_dialplan(call, "1", 2, hung_up=session.hung_up)


async def survey(call: InboundCall, agi: AgiCaller) -> None:
    """Queue option ``c``: the seat hung up, the caller runs ``hotline-survey,s,1``."""
    call.caller.context = "hotline-survey"
    call.phase = "ivr"
    call.stats.surveys += 1
    session = await run_agi(
        call, "survey", agi, exten="s", priority=1, args=_later_args(call.caller)
    )
    await end_in_dialplan(call, "s", 2, hung_up=session.hung_up)


def _later_args(caller: Channel) -> tuple[str, str]:
    """``${HOTLINE_CITY},${CHANNEL(language)}`` as the channel has them now."""
    return caller.variables.get("HOTLINE_CITY", ""), caller.language


async def transfer(call: InboundCall, talk_s: float) -> None:
    """``hotline-transfer,${HOTLINE_TRANSFER},1``: Dial the trunk, talk, the caller hangs up."""
    steps, caller = call.pbx.steps, call.caller
    target = caller.variables.get("HOTLINE_TRANSFER", "")
    trunk = call.ctx.config.transfer_trunks.get(target)
    caller.context = "hotline-transfer"
    if trunk is None:  # Goto to a missing extension: Asterisk ends the channel
        call.outcome = scripts.TRANSFER_FAILED
        await end_in_dialplan(call, target, 1, hung_up=True)
        return
    await steps.exten(caller, target, 1, "Dial", f"PJSIP/{target}@{trunk},60")
    dest = call.pbx.model.add_channel(
        f"PJSIP/{trunk}-{call.ctx.trunk_counter():08x}", "hotline-transfer", target,
        linkedid=caller.linkedid,
    )  # fmt: skip
    call.own(dest)
    call.dialled = dest
    await steps.new_channel(dest)
    await steps.caller_id(dest, target, "", connected=False, announce=False)
    dest.connected_num, dest.connected_name = caller.caller_num, caller.caller_name
    await steps.event("DialBegin", caller, ("DialString", f"{target}@{trunk}"), dest=dest)
    call.phase = "dialled"
    await call.pause(RING_S)
    dest.state = 6
    await steps.event("DialEnd", caller, ("DialStatus", "ANSWER"), dest=dest)
    call.bridge = call.pbx.model.new_bridge_id()
    dest.bridge_id = caller.bridge_id = call.bridge
    await steps.bridge_event("BridgeEnter", call.bridge, 1, dest)
    await steps.bridge_event("BridgeEnter", call.bridge, 2, caller)
    call.outcome = scripts.TRANSFERRED
    call.stats.transferred += 1
    await call.pause(talk_s)
    await end_transfer(call, cause=16, requested=True)


async def end_transfer(call: InboundCall, *, cause: int, requested: bool) -> None:
    """The caller hangs up the transferred call (or a Hangup action ends it)."""
    steps, caller, dest = call.pbx.steps, call.caller, call.dialled
    if requested:
        await steps.event("HangupRequest", caller, ("Cause", str(cause)))
    if dest is not None and dest.state != 6:  # still ringing: the Dial is cancelled
        await steps.event("DialEnd", caller, ("DialStatus", "CANCEL"), dest=dest)
        await steps.hangup(dest, 0)
    elif dest is not None:
        await steps.bridge_event("BridgeLeave", call.bridge, 1, caller)
        await steps.bridge_event("BridgeLeave", call.bridge, 0, dest)
        await steps.hangup(dest, cause, request="HangupRequest")
    call.dialled = None
    await steps.event("SoftHangupRequest", caller, ("Cause", str(cause)))
    await steps.hangup(caller, cause)
