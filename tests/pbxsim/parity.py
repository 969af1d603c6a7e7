"""Compare what the simulator sent on the platform's AMI connection with a trace's ``ami1``.

The trace side is restricted to what the platform gets in production: events of
:data:`callcenter.ami.normalize.USED_EVENTS` (the rendered ``manager.conf`` filter) and the
responses to the platform's own actions, without the lab's artefacts the README lists (the
simulated caller phone -- the ``;1`` half of ``Local/…@from-trunk`` / ``@odd-callers`` --,
the generator's ``OriginateResponse``, the login's ``FullyBooted`` / ``SuccessfulAuth``).

Compared for every message: the name, the header keys in order, and the value of every key
except those that cannot repeat between two runs (:func:`volatile`): ids, timestamps, the
dialplan's free text and the seats' history from before the capture.  Scenario-specific
exceptions are :class:`Waiver` objects with their reason next to them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from callcenter.ami.codec import Frame, FrameDecoder
from callcenter.ami.normalize import USED_EVENTS
from tests.ami.conftest import Trace

LAB_PHONE = re.compile(r"^Local/[^@]+@(from-trunk|odd-callers)-[0-9a-f]{8};1$")
"""The lab's simulated caller phone: it runs ``sim-caller`` (or the Originate's ``Wait``)."""

LOGIN_EVENTS = frozenset({"FullyBooted", "SuccessfulAuth"})

HISTORY = frozenset({"LoginTime", "LastCall", "LastPause", "CallsTaken"})
"""Member counters that carry what happened in the lab before the capture started."""

FREE_TEXT = frozenset({"AppData", "Timestamp"})
"""``AppData`` is the lab dialplan's text (file names with Uniqueids); ``Timestamp`` a clock."""


def volatile(key: str) -> bool:
    """Keys whose values differ between any two runs, even of the same scenario."""
    return key.endswith(("Uniqueid", "Linkedid")) or key in HISTORY or key in FREE_TEXT


@dataclass(frozen=True)
class Waiver:
    """A documented difference: trace messages the simulator does not send, or keys whose
    value it does not reproduce, in one scenario."""

    reason: str
    skip: Callable[[Frame], bool] = field(default=lambda _frame: False)
    keys: Callable[[Frame], frozenset[str]] = field(default=lambda _frame: frozenset())


def action_ids(trace: Trace, conn: str = "ami1") -> set[str]:
    decoder = FrameDecoder(expect_banner=False)
    return {
        f["ActionID"]
        for msg in trace.outgoing(conn)
        for f in decoder.feed(msg.data)
        if "ActionID" in f
    }


def platform_actions(trace: Trace, conn: str = "ami1") -> list[bytes]:
    """What the platform sent, in order, without its Login / Logoff."""
    return [
        msg.data
        for msg in trace.outgoing(conn)
        if not msg.data.startswith((b"Action: Login", b"Action: Logoff"))
    ]


def is_platform_message(frame: Frame, own_ids: set[str]) -> bool:
    """Would the production platform receive this, and is it not a lab artefact?"""
    if frame.is_response:
        return frame.get("ActionID") in own_ids
    event = frame.get("Event") or ""
    if event not in USED_EVENTS or event in LOGIN_EVENTS:
        return False
    if event == "OriginateResponse" and frame.get("ActionID") not in own_ids:
        return False  # the traffic generator's Originate creating the lab caller
    return not LAB_PHONE.match(frame.get("Channel") or "")


def expected_frames(trace: Trace, waivers: Iterable[Waiver] = ()) -> list[Frame]:
    """The trace's ``ami1`` messages the simulator must reproduce, in order."""
    own = action_ids(trace)
    login = FrameDecoder(expect_banner=False).feed(trace.outgoing("ami1")[0].data)[0]
    logoff = {f["ActionID"] for f in trace.frames() if f.get("Response") == "Goodbye"}
    own -= {login["ActionID"], *logoff}
    skips = [w.skip for w in waivers]
    return [
        f
        for f in trace.frames()
        if is_platform_message(f, own) and not any(skip(f) for skip in skips)
    ]


def differences(
    got: list[Frame], expected: list[Frame], waivers: Iterable[Waiver] = ()
) -> list[str]:
    """Human-readable differences (empty: the same messages, keys and stable values)."""
    waivers = list(waivers)
    out = []
    names = [f.name for f in got], [f.name for f in expected]
    if names[0] != names[1]:
        out.append(f"message names differ:\n{_side_by_side(got, expected)}")
        return out
    for index, (mine, theirs) in enumerate(zip(got, expected, strict=True)):
        if mine.keys() != theirs.keys():
            out.append(f"#{index} {theirs.name}: keys {mine.keys()} != {theirs.keys()}")
            continue
        waived = frozenset().union(*(w.keys(theirs) for w in waivers))
        for (key, value), (_, wanted) in zip(mine.items(), theirs.items(), strict=True):
            if not volatile(key) and key not in waived and value != wanted:
                out.append(
                    f"#{index} {theirs.name} {theirs.get('Channel')}: {key}={value!r} != {wanted!r}"
                )
    return out


def _label(frame: Frame | None) -> str:
    if frame is None:
        return "-"
    who = frame.get("Channel") or frame.get("MemberName") or frame.get("Message") or ""
    return f"{frame.name} {who}"


def _side_by_side(got: list[Frame], expected: list[Frame]) -> str:
    rows = []
    for index in range(max(len(got), len(expected))):
        mine = got[index] if index < len(got) else None
        theirs = expected[index] if index < len(expected) else None
        mark = (
            "  " if mine is not None and theirs is not None and mine.name == theirs.name else "!!"
        )
        rows.append(f"{mark} {index:3d} {_label(mine):70.70s} | {_label(theirs)}")
    return "\n".join(rows)
