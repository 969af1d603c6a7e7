"""Ticket throughput on PostgreSQL, the way production runs (prints figures, not pass/fail).

Run: ``.venv/bin/python bench/bench_tickets.py [--tickets N] [--concurrency C] [--workers W]
[--batch B]``

The app runs as production runs it: ``W`` web processes (default 2: the machine has 2 cores),
each ``uvicorn --factory callcenter.web.app:create_app`` on its own port, on PostgreSQL and
Redis (event bus, rate limits, session-cache revocations), started by this script and driven
over real HTTP (``C`` keep-alive connections spread over the processes, one request in flight
on each) from this process. The same paths are also run against stock ``uvicorn --workers W``
(see :func:`_uvicorn` for why it is slower). Two paths per ticket:
- full: create (受理) → dispatch (派单) → sign (签收) → start (办理) → resolve (办结), five
  authenticated API calls, each a transaction with its history row, SLA deadlines, search
  index, repeat-call check and (on 办结) the return-visit task, then a bus event;
- 一次办结: one call, a consultation answered and closed on the call (two history rows).
The same two paths through the batch API, ``max(N, 2000, B x C)`` tickets in batches of ``B``
(default 100), one batch in flight per connection (our servers only, not stock uvicorn):
- batch full path: POST /api/tickets/batch (批量受理), then /api/tickets/batch/dispatch with
  the tickets spread over the handlers, then /batch/sign, /batch/start and /batch/resolve, each
  sent once per handler with that handler's token for the tickets it holds: 2 + 3 x (handlers
  in the batch) requests per batch, 26 for 100 tickets over 8 handlers;
- batch 一次办结: POST /api/tickets/batch of 一次办结 items, one request per batch.
Every item must succeed in the state its step leads to, and a batch's ticket numbers must be
consecutive in request order; the bench stops on the first item that does not.
Measured in the same run, for comparison:
- auth floor: ``GET /api/auth/me`` over the same HTTP path (authentication and framework only);
- service layer: the full path calling ``TicketService`` directly in this process (no HTTP);
- raw SQL: one bulk insert of the same final rows (tickets, history, search material, return
  visits) for each path: the floor any API could approach.
CPU seconds of the client (this process), the web workers, PostgreSQL (every ``postgres``
process on the machine, so other users' load shows up there too; a backend that exits during
the run takes its seconds with it) and the whole machine are printed per path: they say what
bounds the figure. Web CPU is given per request and per ticket (the figure that compares single
calls with batches); requests are counted as sent. The client is a minimal keep-alive HTTP/1.1
client (:class:`Connection`), so that it costs little next to the server. Goal (issue 5):
>= 500 tickets/s end to end.

Uses a throw-away database on ``CALLCENTER_TEST_PG`` (default ``postgres@127.0.0.1:5432``) and
a throw-away key prefix on ``CALLCENTER_TEST_REDIS`` (default ``redis://127.0.0.1:6379/0``).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from redis.asyncio import Redis
from sqlalchemy import insert

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from throwaway import province_database  # bench/, beside this script

from callcenter.auth import services as auth
from callcenter.auth.principal import Principal
from callcenter.db.models import Role, User
from callcenter.services import Services, build_services
from callcenter.settings import load_settings
from ticketing.followup import PRIORITY, TaskReason, sample_fraction
from ticketing.models import FollowupTask, Ticket, TicketHistory, TicketSearch
from ticketing.schemas import BATCH_LIMIT, ActionBody, DispatchBody, ResolveBody, TicketCreate
from ticketing.search import lexemes, tsvector_literal
from ticketing.services import TicketService
from ticketing.states import Action

ROOT = Path(__file__).resolve().parents[1]
APP = "callcenter.web.app:create_app"
REDIS_URL = os.environ.get("CALLCENTER_TEST_REDIS", "redis://127.0.0.1:6379/0")
CITY = "330400"
HANDLERS = 8
CREATE = {
    "channel": "phone",
    "caller_number": "13805730001",
    "caller_region_code": CITY,
    "category": "legal_aid",
    "request_type": "help",
    "content": "农民工欠薪求助：工地拖欠三个月工资，请求法律援助",
}
ONCE = {
    **CREATE,
    "category": "legal_consultation",
    "request_type": "consultation",
    "content": "咨询劳动合同未签订的双倍工资如何主张",
    "answer": "可在一年内向劳动争议仲裁委员会申请仲裁，主张未签合同期间的双倍工资",
    "resolved_on_call": True,
}
RESULT = "已指派法律援助律师"


def _caller(i: int) -> str:
    """Different callers (10,000 numbers), so the repeat check runs but rarely links."""
    return f"1380573{i % 10_000:04d}"


# --- set-up -----------------------------------------------------------------------------------


async def _user(services: Services, role: Role) -> tuple[User, str]:
    async with services.sessionmaker() as session:
        user = User(
            username=f"bench_{uuid.uuid4().hex[:10]}",
            password_hash="!unusable",  # noqa: S106 - no login: a bearer session is opened directly
            role=role.value,
            region_code=CITY,
        )
        session.add(user)
        await session.commit()
        token, _ = await auth.open_session(
            session, user, "bearer", client_ip=None, user_agent=None, settings=services.settings
        )
        return user, token


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def _uvicorn(
    env: dict[str, str], workers: int, ports: list[int], *, stock: bool
) -> Iterator[subprocess.Popen[bytes]]:
    """``workers`` uvicorn processes serving the app; stopped on exit.

    ``stock``: ``uvicorn --workers N`` exactly as its command line starts it, on ``ports[0]``.
    Its listening socket is made without ``IPPROTO_TCP``, so asyncio leaves Nagle's algorithm
    on for every accepted connection, and each response written in two parts (headers, body)
    waits for the client's delayed ACK: about 40 ms per request on Linux (uvicorn issue
    #3149, open). And its workers share one socket, so a burst of new keep-alive connections
    tends to land on whichever worker wakes first. Else :func:`serve`: one uvicorn server per
    worker on its own port (TCP_NODELAY), the client spreading its connections over them as a
    load balancer in front of N web instances would.
    """
    if stock:
        command = [sys.executable, "-m", "uvicorn", "--factory", APP, "--host", "127.0.0.1"]
        command += ["--port", str(ports[0]), "--workers", str(workers), "--no-access-log"]
        command += ["--log-level", "warning"]
    else:
        command = [sys.executable, __file__, "--serve", ",".join(map(str, ports))]
    server = subprocess.Popen(command, env={**os.environ, **env}, cwd=ROOT)  # noqa: S603 - ours
    try:
        yield server
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def serve(ports: list[int]) -> None:
    """One ``uvicorn`` server process per port (stopped together on SIGTERM)."""
    children = [
        subprocess.Popen([sys.executable, __file__, "--serve-one", str(port)])  # noqa: S603
        for port in ports
    ]

    def stop(_signum: int, _frame: Any) -> None:
        for child in children:
            child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for child in children:
        child.wait()


def serve_one(port: int) -> None:
    """``uvicorn --factory callcenter.web.app:create_app --port PORT``: given a host and a port,
    uvicorn lets asyncio make the socket, with TCP_NODELAY on its connections."""
    import uvicorn

    uvicorn.run(
        APP, factory=True, host="127.0.0.1", port=port, access_log=False, log_level="warning"
    )


async def _until_ready(client: httpx.AsyncClient, server: subprocess.Popen[bytes]) -> None:
    """Every worker answers ``/readyz`` (several probes, so both workers have started)."""
    deadline = time.monotonic() + 60
    ok = 0
    while ok < 20:
        if server.poll() is not None:
            raise RuntimeError(f"uvicorn exited with {server.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not become ready within 60 s")
        try:
            ok = ok + 1 if (await client.get("/readyz")).status_code == 200 else 0
        except httpx.TransportError:
            ok = 0
            await asyncio.sleep(0.2)


# --- the client -------------------------------------------------------------------------------


class Connection:
    """One keep-alive HTTP/1.1 connection, one request at a time: the lightest load generator
    we can write, so that the client's CPU is not what the figures measure (``httpx`` spent
    about 4 ms of CPU per request here at 32 in flight, more than a worker's whole request)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sent = 0  # requests sent: rows count what went over the wire, not what we meant
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, path: str, token: str, body: dict[str, Any] | None = None
    ) -> tuple[int, Any]:
        if self._reader is None or self._writer is None:
            self._reader, self._writer = await asyncio.open_connection("127.0.0.1", self.port)
        data = json.dumps(body, ensure_ascii=False).encode() if body is not None else b""
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
        )
        self._writer.write(head.encode() + data)
        self.sent += 1
        status = int((await self._reader.readline()).split()[1])
        length = 0
        while (line := await self._reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        payload = await self._reader.readexactly(length)
        return status, json.loads(payload) if payload else None

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            await self._writer.wait_closed()


async def _call(
    conn: Connection,
    method: str,
    path: str,
    token: str,
    body: dict[str, Any] | None = None,
    expected: int = 200,
) -> Any:
    status, answer = await conn.request(method, path, token, body)
    if status != expected:
        raise RuntimeError(f"{method} {path}: {status} {answer}")
    return answer


# --- CPU accounting ---------------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def _proc_cpu(pid: int) -> tuple[str, int, float]:
    """(command name, parent pid, CPU seconds) of one process, from ``/proc``."""
    with open(f"/proc/{pid}/stat") as f:
        raw = f.read()
    name = raw[raw.index("(") + 1 : raw.rindex(")")]
    fields = raw[raw.rindex(")") + 2 :].split()
    return name, int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICK


def _cpu(server_pid: int) -> dict[str, float]:
    """CPU seconds so far: this client, the uvicorn tree (its master and workers), postgres."""
    procs: dict[int, tuple[str, int, float]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                procs[int(entry)] = _proc_cpu(int(entry))
            except (OSError, ValueError, IndexError):
                continue
    tree = {server_pid} | {pid for pid, (_, ppid, _) in procs.items() if ppid == server_pid}
    with open("/proc/stat") as f:
        jiffies = [int(x) for x in f.readline().split()[1:]]
    busy = (sum(jiffies) - jiffies[3] - jiffies[4]) / _TICK  # all but idle and iowait
    workers = sorted(pid for pid in tree if pid != server_pid and pid in procs)
    return {
        **{f"worker{i}": procs[pid][2] for i, pid in enumerate(workers)},
        "machine": busy,
        "client": time.process_time(),
        "web": sum(procs[p][2] for p in tree if p in procs),
        "postgres": sum(cpu for name, _, cpu in procs.values() if name.startswith("postgres")),
        "wall": time.monotonic(),
    }


@dataclass(frozen=True, slots=True)
class Figure:
    label: str
    tickets: int
    requests: int
    seconds: float
    cpu: dict[str, float] | None = None


async def _timed(
    label: str,
    tickets: int,
    connections: list[Connection],
    one: One,
    server_pid: int,
    *,
    units: int | None = None,
) -> Figure:
    """Run ``one`` ``units`` times (default: once per ticket; a batch path runs once per
    batch) and count the requests actually sent, so batch rows need no arithmetic."""
    sent = sum(conn.sent for conn in connections)
    before = _cpu(server_pid)
    seconds = await _run(tickets if units is None else units, connections, one)
    after = _cpu(server_pid)
    used = {key: after[key] - before[key] for key in before}
    requests = sum(conn.sent for conn in connections) - sent
    return Figure(label, tickets, requests, seconds, used)


One = Callable[[int, Connection], Awaitable[None]]


async def _run(count: int, connections: list[Connection], one: One) -> float:
    """Seconds to push ``count`` tickets through ``one``, one in flight per connection."""
    queue = iter(range(count))

    async def worker(conn: Connection) -> None:
        for i in queue:
            await one(i, conn)

    start = time.perf_counter()
    await asyncio.gather(*(worker(conn) for conn in connections))
    return time.perf_counter() - start


async def _run_local(count: int, concurrency: int, one: Callable[[int], Awaitable[None]]) -> float:
    """:func:`_run` for the in-process service path (no connections)."""
    queue = iter(range(count))

    async def worker() -> None:
        for i in queue:
            await one(i)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - start


# --- the paths --------------------------------------------------------------------------------


def _api_flow(desk: str, handlers: list[tuple[User, str]]) -> One:
    async def one(i: int, conn: Connection) -> None:
        handler, token = handlers[i % len(handlers)]
        body = {**CREATE, "caller_number": _caller(i)}
        tid = (await _call(conn, "POST", "/api/tickets", desk, body, 201))["id"]
        steps: list[tuple[str, dict[str, Any] | None, str]] = [
            ("dispatch", {"assignee_id": handler.id}, desk),
            ("sign", None, token),
            ("start", None, token),
            ("resolve", {"result": RESULT}, token),
        ]
        for action, payload, who in steps:
            await _call(conn, "POST", f"/api/tickets/{tid}/actions/{action}", who, payload)

    return one


def _once_flow(desk: str) -> One:
    async def one(i: int, conn: Connection) -> None:
        body = {**ONCE, "caller_number": _caller(i)}
        answer = await _call(conn, "POST", "/api/tickets", desk, body, 201)
        if answer["state"] != "resolved":
            raise RuntimeError(f"一次办结 ticket not resolved: {answer}")

    return one


def _batches(count: int, size: int) -> list[range]:
    """Ticket indexes ``0..count-1`` cut into batches of ``size`` (the last may be shorter)."""
    return [range(start, min(count, start + size)) for start in range(0, count, size)]


def _batch_flow(desk: str, handlers: list[tuple[User, str]], batches: list[range]) -> One:
    """One batch through 批量受理 → 批量派单 → 批量签收/办理/办结: the items are spread over
    the handlers as in :func:`_api_flow`, and each handler signs, starts and resolves its own
    tickets with its own token (one request per handler and step)."""

    async def one(b: int, conn: Connection) -> None:
        indexes = batches[b]
        body = {"tickets": [{**CREATE, "caller_number": _caller(i)} for i in indexes]}
        created = await _call(conn, "POST", "/api/tickets/batch", desk, body, 201)
        ids = _check_created(created, len(indexes), "accepted")
        holders = [handlers[i % len(handlers)] for i in indexes]
        dispatch = [
            {"id": tid, "assignee_id": h.id} for tid, (h, _) in zip(ids, holders, strict=True)
        ]
        await _batch_act(conn, "dispatch", desk, dispatch, "dispatched")
        groups: dict[str, list[int]] = {}
        for tid, (_, token) in zip(ids, holders, strict=True):
            groups.setdefault(token, []).append(tid)
        steps: list[tuple[str, dict[str, str], str]] = [
            ("sign", {}, "signed"),
            ("start", {}, "in_progress"),
            ("resolve", {"result": RESULT}, "resolved"),
        ]
        for action, fields, state in steps:
            for token, group in groups.items():
                items = [{"id": tid, **fields} for tid in group]
                await _batch_act(conn, action, token, items, state)

    return one


def _batch_once_flow(desk: str, batches: list[range]) -> One:
    async def one(b: int, conn: Connection) -> None:
        indexes = batches[b]
        body = {"tickets": [{**ONCE, "caller_number": _caller(i)} for i in indexes]}
        created = await _call(conn, "POST", "/api/tickets/batch", desk, body, 201)
        _check_created(created, len(indexes), "resolved")

    return one


def _check_created(answer: dict[str, Any], count: int, state: str) -> list[int]:
    """The ticket ids of a 批量受理 answer, after checking it is whole: every item created in
    ``state``, numbers consecutive in request order (the API promises it)."""
    tickets = answer["tickets"]
    if len(tickets) != count:
        raise RuntimeError(f"batch create: {count} items sent, {len(tickets)} tickets back")
    wrong = [t for t in tickets if t["state"] != state]
    if wrong:
        raise RuntimeError(f"batch create: {len(wrong)} tickets not {state}: {wrong[0]}")
    numbers = [t["number"].rsplit("-", 1) for t in tickets]
    for (day0, seq0), (day1, seq1) in itertools.pairwise(numbers):
        if day1 != day0 or int(seq1) != int(seq0) + 1:
            raise RuntimeError(f"batch create: numbers not consecutive: {seq0} then {seq1}")
    return [int(t["id"]) for t in tickets]


async def _batch_act(
    conn: Connection, action: str, token: str, items: list[dict[str, Any]], state: str
) -> None:
    """POST /api/tickets/batch/{action}; raise unless every item succeeded into ``state``."""
    answer = await _call(conn, "POST", f"/api/tickets/batch/{action}", token, {"items": items})
    results = answer["results"]
    failed = [r for r in results if not r["ok"] or r["ticket"]["state"] != state]
    ids = [r["id"] for r in results]
    if failed or answer["failed"] or answer["succeeded"] != len(items):
        first = failed[0] if failed else answer
        raise RuntimeError(f"batch {action}: {answer['failed']} of {len(items)} failed: {first}")
    if ids != [item["id"] for item in items]:
        raise RuntimeError(f"batch {action}: results not in item order")


def _auth_only(token: str) -> One:
    async def one(i: int, conn: Connection) -> None:
        await _call(conn, "GET", "/api/auth/me", token)

    return one


def _principal(user: User) -> Principal:
    return Principal(
        user_id=user.id,
        username=user.username,
        display_name="",
        role=Role(user.role),
        region_code=user.region_code,
        skills=(),
        languages=(),
        auth_kind="bearer",
        session_hash="",
    )


def _service_flow(
    services: Services, desk: User, handlers: list[tuple[User, str]]
) -> Callable[[int], Awaitable[None]]:
    desk_p = _principal(desk)

    async def one(i: int) -> None:
        body = TicketCreate.model_validate({**CREATE, "caller_number": _caller(i)})
        handler = _principal(handlers[i % len(handlers)][0])
        async with services.sessionmaker() as session:
            svc = TicketService(session, services.bus)
            ticket = await svc.create(desk_p, body)
            await svc.act(
                desk_p, ticket.id, Action.DISPATCH, DispatchBody(assignee_id=handler.user_id)
            )
            await svc.act(handler, ticket.id, Action.SIGN, ActionBody())
            await svc.act(handler, ticket.id, Action.START, ActionBody())
            await svc.act(handler, ticket.id, Action.RESOLVE, ResolveBody(result=RESULT))

    return one


_FULL_MOVES = [
    ("create", None, "accepted"),
    ("dispatch", "accepted", "dispatched"),
    ("sign", "dispatched", "signed"),
    ("start", "signed", "in_progress"),
    ("resolve", "in_progress", "resolved"),
]
_ONCE_MOVES = [("create", None, "accepted"), ("resolve", "accepted", "resolved")]


async def _raw_insert(
    services: Services, count: int, desk: User, handler: User, *, once: bool
) -> Figure:
    """The same final rows in bulk (tickets, history, search material, return visits)."""
    now = datetime.now(UTC)
    template = ONCE if once else CREATE
    prefix = "20991230" if once else "20991231"
    fields = {k: v for k, v in template.items() if k != "resolved_on_call"}
    tickets = [
        {
            **fields,
            "caller_number": _caller(i),
            "number": f"{CITY}-{prefix}-{i:06d}",
            "region_code": CITY,
            "urgency": "normal",
            "green_channel": False,
            "resolved_on_call": once,
            "handling_unit": None,
            "assignee_id": None if once else handler.id,
            "state": "resolved",
            "version": 2 if once else 5,
            "accept_by": now + timedelta(days=1),
            "resolve_by": now + timedelta(days=7),
            "extended_days": 0,
            "urge_count": 0,
            "supervised": False,
            "result": template.get("answer") if once else RESULT,
            "created_by_id": desk.id,
            "created_at": now,
            "updated_at": now,
            "signed_at": None if once else now,
            "resolved_at": now,
        }
        for i in range(count)
    ]
    moves = _ONCE_MOVES if once else _FULL_MOVES
    start = time.perf_counter()
    async with services.sessionmaker() as session:
        ids = (await session.scalars(insert(Ticket).returning(Ticket.id), tickets)).all()
        history = [
            {
                "ticket_id": tid,
                "at": now,
                "actor_id": desk.id,
                "action": a,
                "from_state": f,
                "to_state": t,
                "reason": None,
                "details": {},
            }
            for tid in ids
            for a, f, t in moves
        ]
        await session.execute(insert(TicketHistory), history)
        vector = tsvector_literal(lexemes(template["content"], template.get("answer")))
        search = [{"ticket_id": tid, "vector": vector} for tid in ids]
        await session.execute(insert(TicketSearch.__table__), search)
        visits = [
            _visit(tid, row, now, once)
            for tid, row in zip(ids, tickets, strict=True)
            if not once or sample_fraction(str(row["number"])) < 0.30
        ]
        if visits:
            await session.execute(insert(FollowupTask), visits)
        await session.commit()
    seconds = time.perf_counter() - start
    label = "raw SQL bulk insert, same rows"
    return Figure(label, count, 0, seconds)


def _visit(ticket_id: int, row: dict[str, Any], now: datetime, once: bool) -> dict[str, Any]:
    reason = TaskReason.SAMPLED if once else TaskReason.LEGAL_AID
    return {
        "kind": "return_visit",
        "reason": reason.value,
        "status": "pending",
        "region_code": CITY,
        "ticket_id": ticket_id,
        "caller_number": row["caller_number"],
        "priority": PRIORITY[reason],
        "due_at": now,
        "attempts": 0,
        "max_attempts": 3,
        "version": 1,
        "created_at": now,
        "updated_at": now,
    }


# --- the run ----------------------------------------------------------------------------------

BATCH_MIN_TICKETS = 2000
"""Tickets per batch row at least: fewer, and a batch row lasts too short to measure."""


@dataclass(frozen=True, slots=True)
class Load:
    """What one run pushes: ``tickets`` per single-call path, in ``concurrency`` keep-alive
    connections to ``workers`` web processes; the batch rows send ``batch`` tickets per batch."""

    tickets: int
    concurrency: int
    workers: int
    batch: int

    @property
    def batch_tickets(self) -> int:
        """At least one batch per connection: with fewer (10 batches of 200 on 32 connections)
        the row measured one wave of too few chains in flight, not the server (565 against 757
        tickets/s with 32 batches of 200 here)."""
        return max(self.tickets, BATCH_MIN_TICKETS, self.batch * self.concurrency)

    @property
    def batches(self) -> list[range]:
        return _batches(self.batch_tickets, self.batch)


async def main(load: Load) -> None:
    prefix = f"cc-bench-{uuid.uuid4().hex[:10]}"
    try:
        async with province_database() as url:
            with tempfile.TemporaryDirectory() as tmp:
                env = {
                    "PYTHONPATH": str(ROOT),  # the workers run this tree's code
                    "CALLCENTER_DATABASE_URL": url,
                    "CALLCENTER_REDIS_URL": REDIS_URL,
                    "CALLCENTER_REDIS_PREFIX": prefix,
                    "CALLCENTER_DATA_DIR": tmp,
                    "CALLCENTER_RECORDINGS_DIR": str(Path(tmp) / "recordings"),
                    "CALLCENTER_LOG_LEVEL": "WARNING",
                }
                settings = load_settings(
                    database_url=url, redis_url=REDIS_URL, redis_prefix=prefix, data_dir=Path(tmp)
                )
                async with build_services(settings) as services:
                    figures = await _measure(services, env, load)
    finally:
        await _forget_redis(prefix)
    _print(figures, load)


async def _forget_redis(prefix: str) -> None:
    client = Redis.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


async def _measure(services: Services, env: dict[str, str], load: Load) -> list[Figure]:
    count = load.tickets
    desk, desk_token = await _user(services, Role.AGENT)
    handlers = [await _user(services, Role.AGENT) for _ in range(HANDLERS)]
    figures: list[Figure] = []
    for stock in (False, True):
        figures += await _over_http(env, load, desk_token, handlers, stock=stock)
    small = max(100, count // 4)
    service = _service_flow(services, desk, handlers)
    seconds = await _run_local(small, load.concurrency, service)
    figures.append(Figure("service layer, full, 1 process", small, small * 5, seconds))
    raw_full = await _raw_insert(services, count, desk, handlers[0][0], once=False)
    raw_once = await _raw_insert(services, count, desk, handlers[0][0], once=True)
    figures.append(Figure("raw SQL, full path's rows", count, 0, raw_full.seconds))
    figures.append(Figure("raw SQL, 一次办结 rows", count, 0, raw_once.seconds))
    return figures


async def _over_http(
    env: dict[str, str],
    load: Load,
    desk_token: str,
    handlers: list[tuple[User, str]],
    *,
    stock: bool,
) -> list[Figure]:
    """The HTTP rows on one server; the batch rows only on ours (not on stock uvicorn)."""
    count = load.tickets
    ports = [_free_port() for _ in range(1 if stock else load.workers)]
    figures: list[Figure] = []
    with _uvicorn(env, load.workers, ports, stock=stock) as server:
        for port in ports:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as probe:
                await _until_ready(probe, server)
        connections = [Connection(ports[i % len(ports)]) for i in range(load.concurrency)]
        try:
            full = _api_flow(desk_token, handlers)
            once = _once_flow(desk_token)
            await _run(min(200, count), connections, full)  # warm-up: pools, caches, prepares
            await _run(min(200, count), connections, once)
            tag = "stock uvicorn: " if stock else "HTTP "
            for label, flow in [
                (f"{tag}full path (5 calls)", full),
                (f"{tag}一次办结 (1 call)", once),
            ]:
                figures.append(await _timed(label, count, connections, flow, server.pid))
            if not stock:
                floor = _auth_only(desk_token)
                label = "HTTP auth floor GET /me"
                figures.append(await _timed(label, count * 5, connections, floor, server.pid))
                figures += await _over_http_batch(
                    load, connections, desk_token, handlers, server.pid
                )
        finally:
            for conn in connections:
                await conn.close()
    return figures


async def _over_http_batch(
    load: Load,
    connections: list[Connection],
    desk_token: str,
    handlers: list[tuple[User, str]],
    server_pid: int,
) -> list[Figure]:
    """The batch rows: ``load.batches`` in flight over the same connections, one batch per
    connection at a time, as the single-call rows run one ticket per connection."""
    batches = load.batches
    # warm-up with batches of the measured size (statement shapes follow the batch size),
    # two per web process so that each has run every batch route once
    warm = _batches(2 * load.workers * load.batch, load.batch)
    await _run(len(warm), connections, _batch_flow(desk_token, handlers, warm))
    await _run(len(warm), connections, _batch_once_flow(desk_token, warm))
    rows = [
        ("HTTP batch full path", _batch_flow(desk_token, handlers, batches)),
        ("HTTP batch 一次办结", _batch_once_flow(desk_token, batches)),
    ]
    figures = []
    for label, flow in rows:
        n = load.batch_tickets
        figures.append(await _timed(label, n, connections, flow, server_pid, units=len(batches)))
    return figures


def _print(figures: list[Figure], load: Load) -> None:
    batches = load.batches
    print(
        f"PostgreSQL + Redis, uvicorn --workers {load.workers}, {load.concurrency} keep-alive "
        f"connections, {load.tickets} tickets per single-call path, {load.batch_tickets} per "
        f"batch path ({len(batches)} batches of {load.batch}, "
        f"{min(len(batches), load.concurrency)} in flight), {os.cpu_count()} CPUs"
    )
    head = f"{'path':<34}{'seconds':>8}{'tickets/s':>10}{'req/s':>7}{'web ms/req':>11}"
    print(
        head + f"{'/ticket':>8}  CPU s:{'client':>7}{'web':>6}{'pg':>6}{'machine':>8}  (per worker)"
    )
    for f in figures:
        rate = f"{f.requests / f.seconds:>7.0f}" if f.requests else f"{'-':>7}"
        line = f"{_pad(f.label, 34)}{f.seconds:>8.2f}{_tickets(f) / f.seconds:>10.0f}{rate}"
        if f.cpu is None:
            line += f"{'-':>11}{'-':>8}"
        else:
            cpu = f.cpu
            line += (
                f"{cpu['web'] / f.requests * 1000:>11.2f}{cpu['web'] / _tickets(f) * 1000:>8.2f}"
            )
            line += f"{'':>8}{cpu['client']:>7.1f}{cpu['web']:>6.1f}{cpu['postgres']:>6.1f}"
            line += f"{cpu['machine']:>8.1f}"
            per_worker = [f"{v:.1f}" for k, v in cpu.items() if k.startswith("worker")]
            line += "  (" + "+".join(per_worker) + ")"
        print(line)
    full = next(f for f in figures if f.label == "HTTP full path (5 calls)")
    batch = next(f for f in figures if f.label == "HTTP batch full path")
    print(
        f"goal: >= 500 tickets/s end to end; the full path (5 calls per ticket) reaches "
        f"{full.tickets / full.seconds / 500:.0%} of it, the batch full path (up to "
        f"{load.batch} tickets per request, {batch.requests / len(batches):.0f} requests per "
        f"batch) {batch.tickets / batch.seconds / 500:.0%}. auth floor: tickets/s if each of "
        f"the 5 calls cost only authentication. web ms/req, /ticket: CPU the web workers spent "
        f"per request and per ticket (steadier than tickets/s when others load the machine). "
        f"machine: busy CPU seconds of all {os.cpu_count()} CPUs (others' work included; wall "
        f"time x CPUs is the most)."
    )


def _tickets(figure: Figure) -> float:
    """Tickets a row stands for: the auth floor's requests are 5 to a ticket."""
    return figure.tickets / 5 if "floor" in figure.label else figure.tickets


def _pad(text: str, width: int) -> str:
    """Left-align by display width (a CJK character takes two columns)."""
    shown = sum(2 if ord(ch) > 0x2E80 else 1 for ch in text)
    return text + " " * max(1, width - shown)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=800)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=100, help="tickets per batch request")
    parser.add_argument("--serve", metavar="PORT,PORT", help=argparse.SUPPRESS)
    parser.add_argument("--serve-one", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not 1 <= args.batch <= BATCH_LIMIT:
        parser.error(f"--batch must be 1..{BATCH_LIMIT} (the API's limit)")
    if args.serve_one:
        serve_one(args.serve_one)
    elif args.serve:
        serve([int(port) for port in args.serve.split(",")])
    else:
        asyncio.run(main(Load(args.tickets, args.concurrency, args.workers, args.batch)))
