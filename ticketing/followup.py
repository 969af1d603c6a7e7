"""Return visits (回访) and callbacks: who gets called back, when, and what came of it.

Three parts, one workbench:

* **Sampling policy.** When a ticket is closed (办结) a return-visit task is created for every
  ticket of a mandatory class (法律援助, 投诉 — category 投诉建议 or request type 投诉 —, green
  channel, emergencies) and for a configurable share of the rest (consultations and everything
  else). The share is drawn from a hash of the ticket number, so the same ticket is always in or
  out, whoever runs the policy and however often.
* **Calling hours** (default 08:00–21:00 local, every day): a task is never handed out or
  dialled outside them; a due time outside moves to the next opening. ``08:00`` is inside,
  ``21:00`` is outside.
* **The workbench** (:class:`FollowupService`): list, claim the next due task (two staff at
  once get different tasks: a conditional update on ``version``, plus ``SKIP LOCKED`` on
  PostgreSQL), record an attempt (a failed one reschedules ``retry_after`` later, inside calling
  hours, until the attempt limit closes the task as unreachable), and dial through the PBX.
  A reached return visit records the satisfaction on the ticket: 满意 and better move it
  办结→回访 (``visit``), 不满意/非常不满意 reopen it for 重办 (``reopen``, history says why).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, tzinfo
from typing import TYPE_CHECKING, Any, Final, cast

from sqlalchemy import ColumnElement, CursorResult, Table, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from callcenter.auth.principal import Principal, region_prefix_of
from callcenter.db.base import utcnow
from callcenter.db.models import Role, Seat
from callcenter.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    PermissionDenied,
    ServiceUnavailable,
)
from callcenter.routing.calendar import SHANGHAI
from ticketing.catalogue import Category, RequestType, Satisfaction, Urgency, label
from ticketing.models import (
    FollowupAttempt,
    FollowupTask,
    Outcome,
    TaskKind,
    TaskReason,
    TaskStatus,
    Ticket,
)
from ticketing.schemas import ReopenBody, VisitBody
from ticketing.states import Action, State

if TYPE_CHECKING:
    from callcenter.settings import Settings
    from ticketing.services import TicketService

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
_TASKS = cast(Table, FollowupTask.__table__)

# --- policy -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FollowupPolicy:
    """The knobs of the follow-up desk (``CALLCENTER_FOLLOWUP_*`` settings)."""

    consultation_share: float = 0.30
    opens: time = time(8, 0)
    closes: time = time(21, 0)
    max_attempts: int = 3
    retry_after: timedelta = timedelta(hours=2)
    claim_lease: timedelta = timedelta(minutes=30)
    """A claimed task nobody finished goes back to the pool after this long."""
    tz: tzinfo = SHANGHAI

    def __post_init__(self) -> None:
        if not 0.0 <= self.consultation_share <= 1.0:
            raise ValueError(
                f"consultation share must be within 0..1, got {self.consultation_share}"
            )
        if not self.opens < self.closes:
            raise ValueError(
                f"calling hours must open before they close: {self.opens}-{self.closes}"
            )
        if self.max_attempts < 1:
            raise ValueError(f"attempt limit must be at least 1, got {self.max_attempts}")

    @classmethod
    def from_settings(cls, settings: Settings) -> FollowupPolicy:
        return cls(
            consultation_share=settings.followup_consultation_share,
            opens=settings.followup_calling_opens,
            closes=settings.followup_calling_closes,
            max_attempts=settings.followup_max_attempts,
            retry_after=timedelta(minutes=settings.followup_retry_minutes),
            tz=settings.tz,
        )


DEFAULT_POLICY: Final = FollowupPolicy()

PRIORITY: Final[dict[TaskReason, int]] = {
    TaskReason.EMERGENCY: 90,
    TaskReason.GREEN_CHANNEL: 80,
    TaskReason.VIRTUAL_HOLD: 70,
    TaskReason.AFTER_HOURS: 60,
    TaskReason.COMPLAINT: 50,
    TaskReason.LEGAL_AID: 40,
    TaskReason.REQUESTED: 30,
    TaskReason.SAMPLED: 10,
}
"""Higher is called first; within a priority, the earliest due."""


# --- calling hours ----------------------------------------------------------------------------


def in_calling_hours(when: datetime, policy: FollowupPolicy = DEFAULT_POLICY) -> bool:
    """Whether ``when`` (aware) is inside the calling hours: opening included, closing not."""
    local = when.astimezone(policy.tz).time()
    return policy.opens <= local < policy.closes


def next_calling_time(when: datetime, policy: FollowupPolicy = DEFAULT_POLICY) -> datetime:
    """``when`` itself inside calling hours, else the next opening (in UTC)."""
    if when.tzinfo is None:
        raise ValueError("naive datetime refused: pass a timezone-aware value")
    if in_calling_hours(when, policy):
        return when.astimezone(UTC)
    local = when.astimezone(policy.tz)
    day = local.date()
    if local.time() >= policy.closes:
        day += timedelta(days=1)
    return datetime.combine(day, policy.opens, tzinfo=policy.tz).astimezone(UTC)


# --- sampling ---------------------------------------------------------------------------------


def sample_fraction(ticket_number: str) -> float:
    """A stable number in [0, 1) for a ticket: the same ticket always draws the same value."""
    digest = hashlib.sha256(ticket_number.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def visit_reason(ticket: Ticket, policy: FollowupPolicy = DEFAULT_POLICY) -> TaskReason | None:
    """Why a closed ticket gets a return visit, or None when the sample leaves it out."""
    if ticket.urgency == Urgency.EMERGENCY.value:
        return TaskReason.EMERGENCY
    if ticket.green_channel:
        return TaskReason.GREEN_CHANNEL
    if (
        ticket.category == Category.COMPLAINT_SUGGESTION.value
        or ticket.request_type == RequestType.COMPLAINT.value
    ):
        return TaskReason.COMPLAINT
    if ticket.category == Category.LEGAL_AID.value:
        return TaskReason.LEGAL_AID
    if sample_fraction(ticket.number) < policy.consultation_share:
        return TaskReason.SAMPLED
    return None


async def schedule_return_visits(
    session: AsyncSession,
    tickets: Sequence[Ticket],
    now: datetime,
    policy: FollowupPolicy = DEFAULT_POLICY,
    *,
    new_tickets: bool = False,
) -> dict[int, FollowupTask]:
    """Create the return-visit tasks of tickets just closed, for those the policy picks.

    Runs inside the caller's transaction (the 办结 itself), so the close and its task commit
    together. A ticket without a caller number cannot be called back: no task, logged. An
    open return-visit task of the same ticket is reused (a ticket closed again after 重办 has
    at most one visit pending); ``new_tickets`` (created in this transaction, 一次办结) have
    none, so that look-up is skipped. One look-up and one insert for the whole batch.
    """
    picked: list[tuple[Ticket, TaskReason]] = []
    for ticket in tickets:
        reason = visit_reason(ticket, policy)
        if reason is None:
            continue
        if not ticket.caller_number:
            log.info("ticket %s: return visit skipped, no caller number", ticket.number)
            continue
        picked.append((ticket, reason))
    if not picked:
        return {}
    tasks: dict[int, FollowupTask] = {}
    if not new_tickets:
        existing = await session.scalars(
            select(FollowupTask).where(
                FollowupTask.ticket_id.in_([t.id for t, _ in picked]),
                FollowupTask.kind == TaskKind.RETURN_VISIT.value,
                FollowupTask.status.in_(_OPEN_STATUSES),
            )
        )
        tasks = {int(task.ticket_id): task for task in existing if task.ticket_id is not None}
    due = next_calling_time(now, policy)
    rows = [
        {
            "kind": TaskKind.RETURN_VISIT.value,
            "reason": reason.value,
            "status": TaskStatus.PENDING.value,
            "region_code": ticket.region_code,
            "ticket_id": ticket.id,
            "caller_number": ticket.caller_number,
            "priority": PRIORITY[reason],
            "due_at": due,
            "attempts": 0,
            "max_attempts": policy.max_attempts,
            "version": 1,
            "created_at": now,
            "updated_at": now,
        }
        for ticket, reason in picked
        if ticket.id not in tasks
    ]
    if rows:
        stmt = insert(FollowupTask).returning(FollowupTask, sort_by_parameter_order=True)
        for task in (await session.scalars(stmt, rows)).all():
            tasks[int(cast(int, task.ticket_id))] = task
    return tasks


# --- the workbench ----------------------------------------------------------------------------

_READERS: Final = frozenset({Role.FOLLOWUP, Role.SUPERVISOR, Role.ADMIN})
_WORKERS: Final = frozenset({Role.FOLLOWUP, Role.ADMIN})
_OPEN_STATUSES: Final = (TaskStatus.PENDING.value, TaskStatus.CLAIMED.value)
_RETRY: Final = frozenset({Outcome.NO_ANSWER, Outcome.BUSY, Outcome.POWERED_OFF})
_GOOD: Final = frozenset(
    {Satisfaction.VERY_SATISFIED, Satisfaction.SATISFIED, Satisfaction.BASICALLY_SATISFIED}
)
SEAT_INTERFACE: Final = "PJSIP/{extension}"
"""How a follow-up seat is rung first for a click-to-call: its PJSIP endpoint, as
``callcenter render-asterisk`` writes every seat in pjsip.conf (the call then continues in
the rendered ``callback-dial`` context to the caller)."""
CALLBACK_CALLER_ID: Final = ("12348热线", "12348")
_CANDIDATES: Final = 8


class OutsideCallingHours(Conflict):
    error_id = "outside-calling-hours"


class NoSeat(Conflict):
    """Click-to-call rings the staff member's own seat first: without one there is no call."""

    error_id = "no-seat"


class TaskClosed(Conflict):
    """The task is finished (completed, unreachable or closed): nothing more to record."""

    error_id = "task-closed"


class TaskTaken(Conflict):
    """Another member of staff holds the task (or it changed since it was read)."""

    error_id = "task-taken"


class Dialer:
    """What the workbench needs from telephony: ring a seat, then the customer.

    Built by the HTTP layer from the running :class:`~callcenter.telephony.Telephony`; kept as a
    small interface so the service does not import the AMI side."""

    async def click_to_call(
        self, node: str | None, agent_interface: str, number: str, task_id: int
    ) -> dict[str, Any]:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class TaskQuery:
    status: Sequence[TaskStatus] | None = None
    kind: TaskKind | None = None
    region: str | None = None
    due_before: datetime | None = None
    mine: bool = False
    limit: int = 50
    offset: int = 0


@dataclass(frozen=True, slots=True)
class AttemptInput:
    outcome: Outcome
    satisfaction: Satisfaction | None = None
    note: str | None = None
    version: int | None = None


def _check_role(principal: Principal, allowed: frozenset[Role], what: str) -> None:
    if principal.role not in allowed:
        names = ", ".join(sorted(role.value for role in allowed))
        raise PermissionDenied(f"{what} requires role: {names}", required=sorted(allowed))


def hours_text(policy: FollowupPolicy) -> str:
    return f"{policy.opens:%H:%M}–{policy.closes:%H:%M}"


class FollowupService:
    """One per request: a session, the policy, a clock, the ticket service (for 回访/重办)."""

    def __init__(
        self,
        session: AsyncSession,
        *,
        tickets: TicketService,
        policy: FollowupPolicy = DEFAULT_POLICY,
        clock: Clock = utcnow,
        dialer: Dialer | None = None,
    ) -> None:
        self.session = session
        self.tickets = tickets
        self.policy = policy
        self.clock = clock
        self.dialer = dialer

    def _now(self) -> datetime:
        return self.clock().astimezone(UTC)

    # --- reading --------------------------------------------------------------------------

    async def get(self, principal: Principal, task_id: int) -> FollowupTask:
        """The task, or 404 when it does not exist or lies outside the caller's region."""
        _check_role(principal, _READERS, "the follow-up workbench")
        task = await self.session.get(FollowupTask, task_id)
        if task is None or not principal.can_see_region(task.region_code):
            raise NotFound(f"follow-up task {task_id} not found", task_id=task_id)
        return task

    async def search(
        self, principal: Principal, query: TaskQuery
    ) -> tuple[list[FollowupTask], int]:
        """One page, most urgent first (open tasks by priority and due time, then the rest)."""
        _check_role(principal, _READERS, "the follow-up workbench")
        filters = self._filters(principal, query)
        total = await self.session.scalar(select(func.count(FollowupTask.id)).where(*filters))
        page = (
            select(FollowupTask)
            .where(*filters)
            .order_by(FollowupTask.priority.desc(), FollowupTask.due_at, FollowupTask.id.desc())
            .limit(query.limit)
            .offset(query.offset)
        )
        return list((await self.session.scalars(page)).all()), int(total or 0)

    @staticmethod
    def _filters(principal: Principal, query: TaskQuery) -> list[ColumnElement[bool]]:
        filters = [FollowupTask.region_code.startswith(principal.region_prefix, autoescape=True)]
        if query.region is not None:
            if not principal.can_see_region(query.region):
                raise NotFound(f"region {query.region} not found", region=query.region)
            prefix = region_prefix_of(query.region)
            filters.append(FollowupTask.region_code.startswith(prefix, autoescape=True))
        if query.status:
            filters.append(FollowupTask.status.in_(sorted({s.value for s in query.status})))
        if query.kind is not None:
            filters.append(FollowupTask.kind == query.kind.value)
        if query.due_before is not None:
            filters.append(FollowupTask.due_at <= query.due_before)
        if query.mine:
            filters.append(FollowupTask.claimed_by_id == principal.user_id)
        return filters

    async def attempts(self, principal: Principal, task_id: int) -> list[FollowupAttempt]:
        await self.get(principal, task_id)
        rows = await self.session.scalars(
            select(FollowupAttempt)
            .where(FollowupAttempt.task_id == task_id)
            .order_by(FollowupAttempt.id)
        )
        return list(rows.all())

    # --- claiming -------------------------------------------------------------------------

    def _check_hours(self, now: datetime, doing: str) -> None:
        if not in_calling_hours(now, self.policy):
            opens = next_calling_time(now, self.policy).astimezone(self.policy.tz)
            raise OutsideCallingHours(
                f"不在回访时段 ({hours_text(self.policy)}): cannot {doing} now; "
                f"calling resumes at {opens:%Y-%m-%d %H:%M}",
                calling_hours=hours_text(self.policy),
                next_opening=opens.isoformat(),
            )

    async def claim_next(self, principal: Principal) -> FollowupTask | None:
        """The caller's own unfinished claim, else the next due task (claimed now), else None.

        Candidates are read with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL (concurrent claimers
        skip each other's rows instead of queueing) and taken with a conditional update on
        ``version``, which is what guarantees one task per claimer on any database.
        """
        _check_role(principal, _WORKERS, "taking a follow-up task")
        now = self._now()
        self._check_hours(now, "hand out tasks")
        lease_start = now - self.policy.claim_lease
        held = await self.session.scalar(
            select(FollowupTask)
            .where(
                FollowupTask.status == TaskStatus.CLAIMED.value,
                FollowupTask.claimed_by_id == principal.user_id,
                FollowupTask.claimed_at > lease_start,
            )
            .order_by(FollowupTask.id)
            .limit(1)
        )
        if held is not None:
            return held
        for _ in range(5):
            candidates = await self._candidates(principal, now, lease_start)
            if not candidates:
                return None
            for task_id, version in candidates:
                if await self._take(task_id, version, principal, now):
                    await self.session.commit()
                    return await self.session.get(FollowupTask, task_id, populate_existing=True)
            await self.session.rollback()
        return None

    async def _candidates(
        self, principal: Principal, now: datetime, lease_start: datetime
    ) -> list[tuple[int, int]]:
        free = FollowupTask.status == TaskStatus.PENDING.value
        stale = (FollowupTask.status == TaskStatus.CLAIMED.value) & (
            FollowupTask.claimed_at <= lease_start
        )
        query = (
            select(FollowupTask.id, FollowupTask.version)
            .where(
                FollowupTask.region_code.startswith(principal.region_prefix, autoescape=True),
                FollowupTask.due_at <= now,
                free | stale,
            )
            .order_by(FollowupTask.priority.desc(), FollowupTask.due_at, FollowupTask.id)
        )
        if self.session.get_bind().dialect.name == "postgresql":
            # Lock one row only: a claimer holding several would hide them all from the rest.
            query = query.limit(1).with_for_update(skip_locked=True)
        else:
            query = query.limit(_CANDIDATES)
        rows = await self.session.execute(query)
        return [(int(i), int(v)) for i, v in rows]

    async def _take(self, task_id: int, version: int, principal: Principal, now: datetime) -> bool:
        stmt = (
            update(_TASKS)
            .where(_TASKS.c.id == task_id, _TASKS.c.version == version)
            .values(
                status=TaskStatus.CLAIMED.value,
                claimed_by_id=principal.user_id,
                claimed_at=now,
                version=version + 1,
                updated_at=now,
            )
        )
        result = cast(CursorResult[Any], await self.session.execute(stmt))
        return result.rowcount == 1

    # --- recording ------------------------------------------------------------------------

    async def record(
        self, principal: Principal, task_id: int, attempt: AttemptInput
    ) -> FollowupTask:
        """One attempt and its outcome (see the module docstring for what each outcome does)."""
        _check_role(principal, _WORKERS, "recording a follow-up attempt")
        task = await self.get(principal, task_id)
        now = self._now()
        self._check_open(principal, task, now)
        self._check_attempt(task, attempt)
        if attempt.version is not None and attempt.version != task.version:
            raise self._changed(task)
        values = self._result(task, attempt, now)
        stmt = (
            update(_TASKS)
            .where(_TASKS.c.id == task.id, _TASKS.c.version == task.version)
            .values(**values)
        )
        result = cast(CursorResult[Any], await self.session.execute(stmt))
        if result.rowcount != 1:
            await self.session.rollback()
            raise self._changed(task)
        self.session.add(
            FollowupAttempt(
                task_id=task.id,
                at=now,
                actor_id=principal.user_id,
                outcome=attempt.outcome.value,
                satisfaction=attempt.satisfaction.value if attempt.satisfaction else None,
                note=attempt.note,
            )
        )
        await self.session.flush()
        await self._apply_to_ticket(principal, task, attempt)
        await self.session.commit()
        return await self._fresh(task.id)

    async def _fresh(self, task_id: int) -> FollowupTask:
        task = await self.session.get(FollowupTask, task_id, populate_existing=True)
        if task is None:  # deleted with its ticket meanwhile
            raise NotFound(f"follow-up task {task_id} not found", task_id=task_id)
        return task

    def _check_open(self, principal: Principal, task: FollowupTask, now: datetime) -> None:
        if task.status not in _OPEN_STATUSES:
            raise TaskClosed(
                f"follow-up task {task.id} is {task.status}: nothing more can be recorded",
                status=task.status,
            )
        held_by_other = (
            task.status == TaskStatus.CLAIMED.value
            and task.claimed_by_id not in (None, principal.user_id)
            and task.claimed_at is not None
            and task.claimed_at > now - self.policy.claim_lease
        )
        if held_by_other and principal.role is not Role.ADMIN:
            raise TaskTaken(f"follow-up task {task.id} is being worked by another colleague")

    @staticmethod
    def _check_attempt(task: FollowupTask, attempt: AttemptInput) -> None:
        visit = task.kind == TaskKind.RETURN_VISIT.value
        reached = attempt.outcome is Outcome.REACHED
        if visit and reached and attempt.satisfaction is None:
            raise InvalidInput.at(
                "satisfaction", "a reached return visit needs the caller's satisfaction"
            )
        if attempt.satisfaction is not None and not reached:
            raise InvalidInput.at(
                "satisfaction", "satisfaction can only be given when the caller was reached"
            )

    def _changed(self, task: FollowupTask) -> TaskTaken:
        return TaskTaken(
            f"follow-up task {task.id} has changed (now {task.status}, version {task.version}): "
            "reload it and try again",
            status=task.status,
            version=task.version,
        )

    def _result(self, task: FollowupTask, attempt: AttemptInput, now: datetime) -> dict[str, Any]:
        attempts = task.attempts + 1
        values: dict[str, Any] = {
            "attempts": attempts,
            "outcome": attempt.outcome.value,
            "version": task.version + 1,
            "updated_at": now,
            "note": attempt.note if attempt.note is not None else task.note,
        }
        if attempt.outcome is Outcome.REACHED:
            values |= {"status": TaskStatus.COMPLETED.value, "closed_at": now}
            if attempt.satisfaction is not None:
                values["satisfaction"] = attempt.satisfaction.value
        elif attempt.outcome not in _RETRY:
            values |= {"status": TaskStatus.CLOSED.value, "closed_at": now}
        elif attempts >= task.max_attempts:
            values |= {"status": TaskStatus.UNREACHABLE.value, "closed_at": now}
        else:
            due = next_calling_time(now + self.policy.retry_after, self.policy)
            values |= {
                "status": TaskStatus.PENDING.value,
                "due_at": due,
                "claimed_by_id": None,
                "claimed_at": None,
            }
        return values

    async def _apply_to_ticket(
        self, principal: Principal, task: FollowupTask, attempt: AttemptInput
    ) -> None:
        """A reached return visit: 满意… → 回访 (visit); 不满意… → 重办 (reopen).

        Only from the states those actions allow; a ticket visited or archived meanwhile
        keeps its state (the task still records what the caller said). The ticket service
        commits, and with it the task update and the attempt pending in the same session:
        task, attempt, ticket and history change together or not at all."""
        satisfaction = attempt.satisfaction
        if task.ticket_id is None or satisfaction is None:
            return
        ticket = await self.session.get(Ticket, task.ticket_id)
        if ticket is None:
            return
        state = State(ticket.state)
        if satisfaction in _GOOD:
            if state is State.RESOLVED:
                body = VisitBody(satisfaction=satisfaction, reason=f"回访任务 {task.id}")
                await self.tickets.act(principal, ticket.id, Action.VISIT, body)
            return
        if state in (State.RESOLVED, State.VISITED):
            why = f"回访不满意 ({label(satisfaction)}), 回访任务 {task.id}"
            if attempt.note:
                why = f"{why}: {attempt.note}"
            reopen = ReopenBody(reason=why[:2000], satisfaction=satisfaction)
            await self.tickets.act(principal, ticket.id, Action.REOPEN, reopen)

    # --- dialling -------------------------------------------------------------------------

    async def dial(self, principal: Principal, task_id: int) -> dict[str, Any]:
        """Click-to-call: ring the staff member's seat, then the caller (inside calling hours)."""
        _check_role(principal, _WORKERS, "dialling a follow-up task")
        task = await self.get(principal, task_id)
        now = self._now()
        self._check_open(principal, task, now)
        self._check_hours(now, "dial")
        if self.dialer is None:
            raise ServiceUnavailable(
                "没有连接电话交换机 (no PBX connected to this server): dial the number by hand "
                "and record the outcome",
                task_id=task.id,
            )
        extension = await self.session.scalar(
            select(Seat.extension).where(Seat.user_id == principal.user_id).limit(1)
        )
        if extension is None:
            raise NoSeat(f"user {principal.username} has no seat (extension) to ring first")
        interface = SEAT_INTERFACE.format(extension=extension)
        return await self.dialer.click_to_call(
            task.source_node, interface, task.caller_number, task.id
        )
