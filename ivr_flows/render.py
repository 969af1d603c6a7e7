"""Render the Asterisk configuration (``extensions.conf``, ``queues.conf``, ``pjsip.conf``).

The dialplan only hands calls to the platform's FastAGI IVR and carries out its decision (see
``docs/dialplan-contract.md``); queues and seat endpoints come from the database.  Every value
that reaches a file is checked against a strict pattern first: a newline, ``;``, ``,``, ``(``
or ``$`` in a name would add dialplan lines or application arguments (dialplan injection), so
such a value is refused with :class:`UnsafeConfigValue`, never rendered.  The rendered text is
then parsed back (:func:`check_rendered`) so that a template edit that breaks a reference
(a ``Goto`` to a missing label, a queue without its exit context, a seat without its auth) is
caught before a file is written.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader, StrictUndefined
from pydantic import SecretStr
from sqlalchemy import select

from callcenter.db.models import Queue, QueueKind, QueueMember, Region, RegionLevel, Seat
from callcenter.errors import Conflict, DomainError, InvalidInput

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from callcenter.settings import Settings
    from ivr_flows.model import DialplanSettings

FILES = ("extensions.conf", "queues.conf", "pjsip.conf")
MARKER = "-- rendered by `callcenter render-asterisk`"
"""First line of every rendered file: what may be overwritten without ``--force``."""

ENTRIES = ("main", "virtual_hold", "survey")
STRATEGIES = frozenset(
    {"ringall", "leastrecent", "fewestcalls", "random", "rrmemory", "rrordered", "linear"}
    | {"wrandom"}
)
CALLBACK_PATTERNS = ("_1XXXXXXXXXX", "_0XXXXXXXXX", "_0XXXXXXXXXX", "_0XXXXXXXXXXX")
"""Mobile numbers and landlines with their area code: digits only reach ``Dial()``."""


class UnsafeConfigValue(InvalidInput):
    """A value would change the meaning of a config file (newline, ``;``, ``,`` ...)."""

    error_id = "unsafe-config-value"


class RenderedConfigInvalid(DomainError):
    """The rendered files fail their own consistency check (a template or data bug)."""

    error_id = "rendered-config-invalid"
    status_code = 500


class RefusedOverwrite(Conflict):
    """The output directory holds a file that this command did not render."""

    error_id = "refused-overwrite"


# --------------------------------------------------------------------------- patterns

_PATTERNS: dict[str, re.Pattern[str]] = {
    "queue name": re.compile(r"[a-z0-9][a-z0-9-]{0,63}"),
    "extension": re.compile(r"[0-9]{2,16}"),
    "transfer name": re.compile(r"[0-9A-Za-z]{1,32}"),
    "number": re.compile(r"\+?[0-9]{2,20}"),
    "trunk": re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"),
    "node name": re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"),
    "region code": re.compile(r"[0-9]{6}"),
    "area code": re.compile(r"0[0-9]{2,3}"),
    "language": re.compile(r"[a-z]{2,3}(-[A-Za-z]{2,4})?"),
    "audio name": re.compile(
        r"[A-Za-z0-9_][A-Za-z0-9_-]{0,63}(/[A-Za-z0-9_][A-Za-z0-9_-]{0,63}){0,3}"
    ),
    "exit key": re.compile(r"[0-9]"),
    "host": re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?"),
    "password": re.compile(r"[A-Za-z0-9_-]{16,64}"),
    "sip bind": re.compile(r"[0-9.]{7,15}:[0-9]{1,5}"),
}
_LABEL = re.compile(r"[^\x00-\x1f\x7f;,()$\[\]{}\"'\\<>=&|^`]{1,64}")
"""Names shown in comments, member names and caller IDs: Chinese welcome, syntax is not."""


def safe(kind: str, value: str, where: str = "") -> str:
    """``value`` if it fully matches the pattern for ``kind``; else :class:`UnsafeConfigValue`.

    ``where`` names the record (``seat 8001: ``) so the operator knows what to fix.
    """
    pattern = _PATTERNS.get(kind, _LABEL)
    if not isinstance(value, str) or not pattern.fullmatch(value) or value != value.strip():
        raise UnsafeConfigValue(
            f"{where}{kind} {value!r} refused: not allowed in an Asterisk config"
        )
    return value


def _seconds(kind: str, value: int, low: int, high: int) -> int:
    """A whole number in ``low..high`` (seconds, or a penalty)."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise UnsafeConfigValue(f"{kind} {value!r} refused: expected {low}..{high}")
    return value


# --------------------------------------------------------------------------- the spec


@dataclass(frozen=True, slots=True)
class TransferTarget:
    """A number the flow may transfer to (``HOTLINE_TRANSFER=name``), dialled via ``trunk``."""

    name: str
    number: str
    trunk: str


@dataclass(frozen=True, slots=True)
class QueueAnnouncements:
    announce_position: bool
    announce_holdtime: bool
    periodic_announce: str | None
    """The virtual-hold offer prompt's audio name ("press 1 to keep your place ...")."""
    periodic_every_s: int
    exit_key: str | None
    """One digit that leaves the queue to ``hotline-queue-exit`` (virtual hold); None: off."""
    announce_every_s: int | None = None
    """Position/hold-time announcement period; None: the same as ``periodic_every_s``."""


@dataclass(frozen=True, slots=True)
class DialplanSpec:
    """What the flow and the settings decide; the database supplies the :class:`Inventory`."""

    agi_url: str
    """``agi://10.0.0.5:4573/ivr``: where Asterisk reaches the platform's FastAGI server."""
    pbx_node: str
    transfers: tuple[TransferTarget, ...]
    announcements: QueueAnnouncements
    survey: bool
    """Callers stay for the satisfaction survey when the seat hangs up (Queue option ``c``)."""
    seat_password_key: SecretStr | None = field(default=None, repr=False)
    """HMAC key for seat SIP passwords (``CALLCENTER_SECRET_KEY``); required when seats exist."""
    language: str = "zh-CN"
    outbound_trunk: str = "trunk-pstn"
    callback_caller_id: str = "12348"
    sip_bind: str = "0.0.0.0:5060"
    retry_s: int = 5
    wrapup_s: int = 10
    service_level_s: int = 20
    transfer_ring_s: int = 60
    seat_ring_s: int = 30
    callback_ring_s: int = 30
    fallback_overflow_s: int = 60
    """Without the FastAGI answer: seconds in the city queue before the provincial one."""


DEFAULT_TRANSFERS = (
    TransferTarget("12345", "12345", "trunk-gov"),
    TransferTarget("110", "110", "trunk-emergency"),
    TransferTarget("119", "119", "trunk-emergency"),
    TransferTarget("120", "120", "trunk-emergency"),
)
DEFAULT_ANNOUNCEMENTS = QueueAnnouncements(
    announce_position=True,
    announce_holdtime=True,
    periodic_announce="hotline/virtual-hold-offer",
    periodic_every_s=45,
    exit_key="1",
)


def default_spec(settings: Settings) -> DialplanSpec:
    """Sensible defaults until the IVR flow supplies its transfers and announcements."""
    host, port = public_fastagi(settings)
    return DialplanSpec(
        agi_url=f"agi://{host}:{port}/ivr",
        pbx_node=settings.ami_node_name,
        transfers=DEFAULT_TRANSFERS,
        announcements=DEFAULT_ANNOUNCEMENTS,
        survey=True,
        seat_password_key=settings.secret_key,
    )


def flow_spec(settings: Settings, flow: DialplanSettings) -> DialplanSpec:
    """The spec for an IVR flow: its transfer targets and its queue announcements (position,
    hold time, the virtual-hold offer and exit key), so the dialplan and the flow agree."""
    return replace(
        default_spec(settings),
        transfers=tuple(TransferTarget(*target) for target in flow.transfers),
        announcements=QueueAnnouncements(
            announce_position=flow.announce_position,
            announce_holdtime=flow.announce_holdtime,
            periodic_announce=flow.periodic_announce,
            periodic_every_s=flow.periodic_every_s,
            exit_key=flow.exit_key,
            announce_every_s=flow.announce_every_s,
        ),
    )


def public_fastagi(settings: Settings) -> tuple[str, int]:
    """The FastAGI address Asterisk connects to: ``CALLCENTER_FASTAGI_PUBLIC`` or the bind."""
    if settings.fastagi_public:
        public_host, _, public_port = settings.fastagi_public.rpartition(":")
        return safe("host", public_host), int(public_port)
    host, port = settings.fastagi_host_port
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 - detecting, not binding
        raise InvalidInput(
            "CALLCENTER_FASTAGI_BIND listens on every address: set CALLCENTER_FASTAGI_PUBLIC "
            "to the HOST:PORT Asterisk should connect to"
        )
    return safe("host", host), port


# --------------------------------------------------------------------------- the inventory


@dataclass(frozen=True, slots=True)
class City:
    code: str
    name: str
    area_code: str


@dataclass(frozen=True, slots=True)
class QueueMemberInfo:
    extension: str
    name: str
    penalty: int = 0


@dataclass(frozen=True, slots=True)
class QueueInfo:
    name: str
    display_name: str
    kind: str
    region_code: str
    strategy: str = "rrmemory"
    ring_timeout_s: int = 15
    overflow_after_s: int | None = None
    members: tuple[QueueMemberInfo, ...] = ()


@dataclass(frozen=True, slots=True)
class SeatInfo:
    extension: str
    name: str
    region_code: str


@dataclass(frozen=True, slots=True)
class Inventory:
    """Regions, queues and seats of one province, as the database holds them."""

    province_code: str
    province_name: str
    cities: tuple[City, ...]
    queues: tuple[QueueInfo, ...]
    seats: tuple[SeatInfo, ...]


async def load_inventory(sessions: async_sessionmaker[AsyncSession], province: str) -> Inventory:
    """Cities, queues (with members) and seats of ``province``; values are checked at render."""
    async with sessions() as session:
        prov = await session.get(Region, province)
        if prov is None or prov.level != RegionLevel.PROVINCE:
            raise InvalidInput(f"province {province} is not in the database: run `callcenter seed`")
        cities = (
            await session.execute(
                select(Region)
                .where(Region.parent_code == province, Region.level == RegionLevel.CITY)
                .order_by(Region.code)
            )
        ).scalars()
        city_list = tuple(City(c.code, c.name, c.area_code or "") for c in cities)
        scope = {province, *(c.code for c in city_list)}
        queues = (
            await session.execute(
                select(Queue).where(Queue.region_code.in_(scope)).order_by(Queue.name)
            )
        ).scalars()
        queue_rows = list(queues)
        seats = list(
            (
                await session.execute(
                    select(Seat).where(Seat.region_code.in_(scope)).order_by(Seat.extension)
                )
            ).scalars()
        )
        rows = (
            await session.execute(
                select(QueueMember.queue_id, QueueMember.penalty, Seat)
                .join(Seat, Seat.id == QueueMember.seat_id)
                .where(QueueMember.queue_id.in_([q.id for q in queue_rows]))
                .order_by(Seat.extension)
            )
        ).all()
    members: dict[int, list[QueueMemberInfo]] = {}
    for queue_id, penalty, seat in rows:
        members.setdefault(queue_id, []).append(QueueMemberInfo(seat.extension, seat.name, penalty))
    return Inventory(
        province_code=prov.code,
        province_name=prov.name,
        cities=city_list,
        queues=tuple(
            QueueInfo(
                name=q.name,
                display_name=q.display_name,
                kind=q.kind,
                region_code=q.region_code,
                strategy=q.strategy,
                ring_timeout_s=q.ring_timeout_s,
                overflow_after_s=q.overflow_after_s,
                members=tuple(members.get(q.id, ())),
            )
            for q in queue_rows
        ),
        seats=tuple(SeatInfo(s.extension, s.name, s.region_code) for s in seats),
    )


def inbound_contexts(inventory: Inventory) -> tuple[str, ...]:
    """Contexts where callers' channels are created: give them to the AMI bridge."""
    return ("from-trunk", *(f"from-trunk-{c.code}" for c in inventory.cities))


# --------------------------------------------------------------------------- seat secrets


def seat_password(key: SecretStr, extension: str) -> str:
    """A seat's SIP password: HMAC-SHA256(secret key, extension), 24 URL-safe characters.

    Derived, never stored: re-rendering keeps every phone registered, and a new
    ``CALLCENTER_SECRET_KEY`` changes them all at once.
    """
    from callcenter.settings import DEV_SECRET

    secret = key.get_secret_value()
    if secret == DEV_SECRET or len(secret) < 16:
        raise InvalidInput(
            "CALLCENTER_SECRET_KEY is the public default (or too short): seat SIP passwords "
            "derived from it would be guessable; set a secret key of at least 32 characters"
        )
    mac = hmac.new(secret.encode(), b"12348-pjsip-seat:" + extension.encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).decode()[:24]


# --------------------------------------------------------------------------- rendering

_ENV = Environment(
    loader=PackageLoader("ivr_flows", "templates"),
    undefined=StrictUndefined,
    autoescape=False,  # noqa: S701 - Asterisk config files; every value is checked by safe()
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)


def agi_url(spec: DialplanSpec, entry: str) -> str:
    """``agi://host:port/ivr?entry=<entry>&node=<node>`` (the contract's FastAGI request)."""
    match = re.fullmatch(r"agi://([^/:]+):([0-9]{1,5})/([a-z][a-z0-9_]{0,31})", spec.agi_url)
    if match is None or not 0 < int(match.group(2)) < 65536:
        raise UnsafeConfigValue(f"AGI URL {spec.agi_url!r} refused: expected agi://HOST:PORT/ivr")
    host = safe("host", match.group(1))
    query = urlencode({"entry": entry, "node": safe("node name", spec.pbx_node)})
    return f"agi://{host}:{int(match.group(2))}/{match.group(3)}?{query}"


def render_asterisk(spec: DialplanSpec, inventory: Inventory) -> dict[str, str]:
    """File name → text for ``extensions.conf``, ``queues.conf`` and ``pjsip.conf``."""
    context = _context(spec, inventory)
    files = {name: _ENV.get_template(f"{name}.j2").render(**context) for name in FILES}
    problems = check_rendered(files, spec, inventory)
    if problems:
        raise RenderedConfigInvalid(
            "rendered Asterisk config is inconsistent: " + "; ".join(problems[:5]),
            problems=problems,
        )
    return files


def _context(spec: DialplanSpec, inv: Inventory) -> dict[str, Any]:
    cities = [_city(c) for c in inv.cities]
    seats = [_seat(s) for s in inv.seats]
    queues = [_queue(q) for q in inv.queues]
    transfers = [_transfer(t) for t in spec.transfers]
    _unique("queue", [q["name"] for q in queues])
    _unique("seat extension", [s["extension"] for s in seats])
    _unique(
        "transfer target / seat extension",
        [t.name for t in transfers] + [s["extension"] for s in seats],
    )
    known_seats = {s["extension"] for s in seats}
    for q in queues:
        for m in q["members"]:
            if m["extension"] not in known_seats:
                raise InvalidInput(f"queue {q['name']}: member {m['extension']} is not a seat")
    by_name = {q["name"]: q for q in queues}
    province_q = next((q["name"] for q in queues if q["kind"] == QueueKind.PROVINCE), None)
    for city in cities:
        _fallback(city, by_name, province_q, spec.fallback_overflow_s)
    if seats and spec.seat_password_key is None:
        raise InvalidInput("seat SIP passwords need CALLCENTER_SECRET_KEY (seat_password_key)")
    for seat in seats:
        assert spec.seat_password_key is not None
        password = seat_password(spec.seat_password_key, seat["extension"])
        seat["password"] = safe("password", password)
    ann = spec.announcements
    announce = ann.announce_position or ann.announce_holdtime
    every = ann.periodic_every_s
    return {
        "province": {
            "code": safe("region code", inv.province_code),
            "name": safe("province name", inv.province_name),
        },
        "node": safe("node name", spec.pbx_node),
        "language": safe("language", spec.language),
        "agi_main": agi_url(spec, "main"),
        "agi_virtual_hold": agi_url(spec, "virtual_hold"),
        "agi_survey": agi_url(spec, "survey"),
        "queue_options": "tc" if spec.survey else "t",
        "survey": spec.survey,
        "exit_key": safe("exit key", ann.exit_key) if ann.exit_key is not None else None,
        "cities": cities,
        "queues": queues,
        "seats": seats,
        "transfers": transfers,
        "trunks": sorted({t.trunk for t in transfers} | {safe("trunk", spec.outbound_trunk)}),
        "outbound_trunk": spec.outbound_trunk,
        "callback_caller_id": safe("number", spec.callback_caller_id),
        "callback_patterns": CALLBACK_PATTERNS,
        "sip_bind": safe("sip bind", spec.sip_bind),
        "announce_frequency": _seconds("announce every", ann.announce_every_s or every, 10, 3600)
        if announce
        else 0,
        "announce_position": "yes" if ann.announce_position else "no",
        "announce_holdtime": "yes" if ann.announce_holdtime else "no",
        "periodic_announce": safe("audio name", ann.periodic_announce)
        if ann.periodic_announce
        else None,
        "periodic_every_s": _seconds("periodic announce", every, 10, 3600),
        "retry_s": _seconds("retry", spec.retry_s, 0, 300),
        "wrapup_s": _seconds("wrap-up", spec.wrapup_s, 0, 3600),
        "service_level_s": _seconds("service level", spec.service_level_s, 1, 3600),
        "transfer_ring_s": _seconds("transfer ring", spec.transfer_ring_s, 5, 600),
        "seat_ring_s": _seconds("seat ring", spec.seat_ring_s, 5, 600),
        "callback_ring_s": _seconds("callback ring", spec.callback_ring_s, 5, 600),
    }


def _unique(kind: str, names: Sequence[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise InvalidInput(f"{kind} {name} appears twice")
        seen.add(name)


def _city(c: City) -> dict[str, Any]:
    code = safe("region code", c.code, "city: ")
    return {
        "code": code,
        "name": safe("city name", c.name, f"city {code}: "),
        "area_code": safe("area code", c.area_code, f"city {code}: "),
    }


def _fallback(
    city: dict[str, Any], queues: Mapping[str, Any], province_q: str | None, default_s: int
) -> None:
    """Where a caller goes when the FastAGI server does not answer: city, then province."""
    own = queues.get(f"city-{city['code']}")
    first = own["name"] if own else province_q
    if first is None:
        raise InvalidInput(f"city {city['code']} has no queue and there is no provincial queue")
    overflow = province_q if own and province_q else ""
    after = (own or {}).get("overflow_after_s") or default_s
    city.update(
        fallback_queue=first,
        fallback_overflow=overflow,
        fallback_after=_seconds("overflow", after, 1, 3600) if overflow else "",
    )


def _queue(q: QueueInfo) -> dict[str, Any]:
    name = safe("queue name", q.name, "queue: ")
    where = f"queue {name}: "
    if q.strategy not in STRATEGIES:
        raise UnsafeConfigValue(f"{where}strategy {q.strategy!r} refused")
    return {
        "name": name,
        "display_name": safe("queue display name", q.display_name, where),
        "kind": safe("queue kind", q.kind, where),
        "region_code": safe("region code", q.region_code, where),
        "strategy": q.strategy,
        "ring_timeout_s": _seconds(f"{where}ring timeout", q.ring_timeout_s, 1, 600),
        "overflow_after_s": q.overflow_after_s,
        "members": [
            {
                "extension": safe("extension", m.extension, where),
                "name": safe("member name", m.name, where),
                "penalty": _seconds(f"{where}penalty", m.penalty, 0, 1000),
            }
            for m in q.members
        ],
    }


def _seat(s: SeatInfo) -> dict[str, Any]:
    extension = safe("extension", s.extension, "seat: ")
    return {
        "extension": extension,
        "name": safe("seat name", s.name, f"seat {extension}: "),
        "region_code": safe("region code", s.region_code, f"seat {extension}: "),
    }


def _transfer(t: TransferTarget) -> TransferTarget:
    where = "transfer target: "
    return TransferTarget(
        safe("transfer name", t.name, where),
        safe("number", t.number, f"transfer target {t.name!r}: "),
        safe("trunk", t.trunk, f"transfer target {t.name!r}: "),
    )


# --------------------------------------------------------------------------- parsing


@dataclass(slots=True)
class ConfSection:
    """One ``[name]`` block: ``template`` is ``(!)``/``(parent)`` text, options in order."""

    name: str
    template: str = ""
    options: list[tuple[str, str]] = field(default_factory=list)

    def get(self, key: str) -> str | None:
        return next((v for k, v in self.options if k == key), None)

    def all(self, key: str) -> list[str]:
        return [v for k, v in self.options if k == key]


@dataclass(slots=True)
class ParsedConf:
    sections: list[ConfSection]
    includes: list[str]

    def named(self, name: str) -> list[ConfSection]:
        return [s for s in self.sections if s.name == name]


_SECTION = re.compile(r"\[([^\]\s]+)\](?:\(([^)]*)\))?")
_OPTION = re.compile(r"([A-Za-z0-9_().-]+)\s*=>?\s*(.*)")


def parse_conf(text: str) -> ParsedConf:
    """A strict parser for the subset of Asterisk config syntax we render.

    ``;`` starts a comment, ``[name](template)`` opens a section, ``key = value`` and
    ``key => value`` are options, ``#include``/``#tryinclude`` are recorded.  Anything else is
    a :class:`RenderedConfigInvalid` naming the line.
    """
    sections: list[ConfSection] = []
    includes: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split(";", 1)[0].strip()
        if not line:
            continue
        if line.startswith(("#include", "#tryinclude")):
            includes.append(line.split(None, 1)[1].strip())
            continue
        section = _SECTION.fullmatch(line)
        if section is not None:
            sections.append(ConfSection(section.group(1), section.group(2) or ""))
            continue
        option = _OPTION.fullmatch(line)
        if option is None or not sections:
            raise RenderedConfigInvalid(f"line {number}: cannot parse {raw!r}")
        sections[-1].options.append((option.group(1), option.group(2).strip()))
    return ParsedConf(sections, includes)


@dataclass(frozen=True, slots=True)
class Step:
    """One dialplan priority: ``exten => name,prio(label),App(args)`` or ``same => ...``."""

    context: str
    exten: str
    label: str | None
    app: str
    args: str


@dataclass(slots=True)
class Dialplan:
    steps: list[Step]
    includes: dict[str, list[str]]

    @property
    def contexts(self) -> set[str]:
        return {s.context for s in self.steps} | set(self.includes)

    def extensions(self, context: str, _seen: frozenset[str] = frozenset()) -> set[str]:
        """Extensions of ``context`` and of the contexts it includes (cycles stop)."""
        own = {s.exten for s in self.steps if s.context == context}
        for other in self.includes.get(context, []):
            if other not in _seen:
                own |= self.extensions(other, _seen | {context})
        return own

    def labels(self, context: str, exten: str) -> set[str]:
        return {
            s.label for s in self.steps if s.context == context and s.exten == exten and s.label
        }

    def apps(self, name: str) -> list[Step]:
        return [s for s in self.steps if s.app.lower() == name.lower()]


_STEP = re.compile(r"(?:([^,]+),)?(1|n)(?:\(([A-Za-z0-9_-]+)\))?,([A-Za-z]+)\((.*)\)")


def parse_dialplan(text: str) -> Dialplan:
    """The extensions of every context, in order, with their labels, apps and arguments."""
    steps: list[Step] = []
    includes: dict[str, list[str]] = {}
    for section in parse_conf(text).sections:
        if section.name in ("general", "globals"):
            continue
        includes.setdefault(section.name, [])
        exten: str | None = None
        for key, value in section.options:
            if key == "include":
                includes[section.name].append(value)
                continue
            match = _STEP.fullmatch(value)
            if key not in ("exten", "same") or match is None:
                raise RenderedConfigInvalid(f"[{section.name}]: cannot parse {key} => {value}")
            if key == "exten":
                if match.group(1) is None or match.group(2) != "1":
                    raise RenderedConfigInvalid(f"[{section.name}]: bad first step {value}")
                exten = match.group(1)
            elif exten is None or match.group(1) is not None:
                raise RenderedConfigInvalid(f"[{section.name}]: 'same' without an extension")
            steps.append(Step(section.name, exten, match.group(3), match.group(4), match.group(5)))
    return Dialplan(steps, includes)


def split_args(text: str, sep: str = ",") -> list[str]:
    """Split application arguments on ``sep`` outside ``()``, ``[]`` and ``{}``."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        if char == sep and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def goto_targets(step: Step) -> list[tuple[str, str, str]]:
    """``(context, exten, priority-or-label)`` of a ``Goto``/``GotoIf`` step."""
    if step.app == "Goto":
        destinations = [step.args]
    elif step.app == "GotoIf":
        condition = split_args(step.args, "?")
        if len(condition) != 2:
            raise RenderedConfigInvalid(f"[{step.context}] GotoIf without '?': {step.args}")
        destinations = [d for d in split_args(condition[1], ":") if d]
    else:
        return []
    targets = []
    for dest in destinations:
        parts = split_args(dest)
        if len(parts) == 1:
            targets.append((step.context, step.exten, parts[0]))
        elif len(parts) == 2:
            targets.append((step.context, parts[0], parts[1]))
        else:
            targets.append((parts[0], parts[1], parts[2]))
    return targets


# --------------------------------------------------------------------------- self-check


def check_rendered(files: Mapping[str, str], spec: DialplanSpec, inventory: Inventory) -> list[str]:
    """Every reference between the rendered files resolves; empty list: consistent."""
    problems: list[str] = []
    plan = parse_dialplan(files["extensions.conf"])
    queues = {s.name: s for s in parse_conf(files["queues.conf"]).sections if s.name != "general"}
    pjsip = parse_conf(files["pjsip.conf"])
    problems += _check_gotos(plan)
    problems += _check_queue_apps(plan, queues)
    problems += _check_entries(plan, spec, inventory)
    problems += _check_queues(queues, plan, inventory)
    problems += _check_seats(pjsip, queues, inventory)
    return problems


def _check_gotos(plan: Dialplan) -> list[str]:
    problems = []
    for step in plan.steps:
        for context, exten, prio in goto_targets(step):
            where = f"[{step.context}] {step.exten}: {step.app}({step.args})"
            if "${" in context or context not in plan.contexts:
                problems.append(f"{where}: unknown context {context}")
            elif "${" in exten:
                continue  # the platform's variable, e.g. HOTLINE_TRANSFER; `i` catches misses
            elif exten not in plan.extensions(context):
                problems.append(f"{where}: no extension {exten} in [{context}]")
            elif prio != "1" and prio not in plan.labels(context, exten):
                problems.append(f"{where}: no label {prio} at {exten}@{context}")
    return problems


def _check_queue_apps(plan: Dialplan, queues: Mapping[str, ConfSection]) -> list[str]:
    problems = []
    for step in plan.apps("Queue"):
        args = split_args(step.args)
        if "${" not in args[0] and args[0] not in queues:
            problems.append(f"[{step.context}] Queue({args[0]}): no such queue")
        options = args[1] if len(args) > 1 else ""
        for target in re.findall(r"F\(([^)]*)\)", options):
            context, exten, _prio = [*target.split("^"), "", "", ""][:3]
            if exten not in plan.extensions(context):
                problems.append(f"[{step.context}] Queue option F({target}): no such target")
    for step in plan.apps("Set"):
        match = re.fullmatch(r"HOTLINE_(?:OVERFLOW_)?QUEUE=(.*)", step.args)
        if match and match.group(1) and match.group(1) not in queues:
            problems.append(f"[{step.context}] {step.args}: no such queue")
    return problems


def _check_entries(plan: Dialplan, spec: DialplanSpec, inv: Inventory) -> list[str]:
    problems = []
    for city in inv.cities:
        context = f"from-trunk-{city.code}"
        if "12348" not in plan.extensions(context):
            problems.append(f"city {city.code}: no 12348 entry in [{context}]")
        if f"{city.area_code}12348" not in plan.extensions("from-trunk"):
            problems.append(f"city {city.code}: [from-trunk] lacks {city.area_code}12348")
    seen = {_entry_of(s.args) for s in plan.apps("AGI")}
    wanted = {"main", "survey"} | ({"virtual_hold"} if spec.announcements.exit_key else set())
    problems += [f"no AGI request with entry={e}" for e in sorted(wanted - seen)]
    for target in spec.transfers:
        if target.name not in plan.extensions("hotline-transfer"):
            problems.append(f"transfer target {target.name}: no extension in [hotline-transfer]")
    return problems


def _entry_of(args: str) -> str | None:
    match = re.search(r"[?&]entry=([a-z_]+)", split_args(args)[0])
    return match.group(1) if match else None


def _check_queues(queues: Mapping[str, ConfSection], plan: Dialplan, inv: Inventory) -> list[str]:
    problems = []
    for q in inv.queues:
        section = queues.get(q.name)
        if section is None:
            problems.append(f"queue {q.name}: missing from queues.conf")
            continue
        for key, want in (("strategy", q.strategy), ("timeout", str(q.ring_timeout_s))):
            if section.get(key) != want:
                problems.append(f"queue {q.name}: {key} is {section.get(key)}, expected {want}")
        exit_context = section.get("context")
        if exit_context is None or exit_context not in plan.contexts:
            problems.append(f"queue {q.name}: exit context {exit_context} not in the dialplan")
    return problems


def _check_seats(pjsip: ParsedConf, queues: Mapping[str, ConfSection], inv: Inventory) -> list[str]:
    problems = []
    templates = {s.name: s for s in pjsip.sections if s.template == "!"}
    for seat in inv.seats:
        kinds = {_type(s, templates) for s in pjsip.named(seat.extension)}
        auth = pjsip.named(f"{seat.extension}-auth")
        if kinds != {"endpoint", "aor"} or [_type(a, templates) for a in auth] != ["auth"]:
            problems.append(f"seat {seat.extension}: needs an endpoint, an aor and an auth")
    for q in inv.queues:
        section = queues.get(q.name)
        members = {m.split(",")[0] for m in section.all("member")} if section else set()
        for m in q.members:
            if f"PJSIP/{m.extension}" not in members:
                problems.append(f"queue {q.name}: seat {m.extension} is not a member")
    return problems


def _type(section: ConfSection, templates: Mapping[str, ConfSection]) -> str | None:
    parent = templates.get(section.template)
    return section.get("type") or (parent.get("type") if parent else None)


# --------------------------------------------------------------------------- writing


def write_rendered(files: Mapping[str, str], out_dir: Path, *, force: bool = False) -> list[Path]:
    """Write each file atomically (temp file + rename) into ``out_dir``, mode 0640.

    A file already there that this command did not render (no :data:`MARKER` on its first
    line) is refused with :class:`RefusedOverwrite` before anything is written, unless
    ``force``: hand-written Asterisk configuration is never replaced by accident.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    if not force:
        for name in files:
            _refuse_foreign(out_dir / name)
    written = []
    for name, text in files.items():
        written.append(_atomic_write(out_dir / name, text))
    return written


def _refuse_foreign(path: Path) -> None:
    if not path.exists():
        return
    with path.open(encoding="utf-8", errors="replace") as fh:
        first = fh.readline()
    if MARKER not in first:
        raise RefusedOverwrite(
            f"{path} was not rendered by `callcenter render-asterisk`: refusing to overwrite it "
            "(move it away or use --force)"
        )


def _atomic_write(path: Path, text: str) -> Path:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o640)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def describe(files: Iterable[Path], inventory: Inventory, spec: DialplanSpec) -> str:
    """One summary line for the CLI."""
    names = ", ".join(p.name for p in files)
    trunks = sorted({t.trunk for t in spec.transfers} | {spec.outbound_trunk})
    return (
        f"wrote {names}: {len(inventory.cities)} cities, {len(inventory.queues)} queues, "
        f"{len(inventory.seats)} seats; define the trunks {', '.join(trunks)} in "
        "pjsip_trunks.conf (inbound context=from-trunk)"
    )
