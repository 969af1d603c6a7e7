"""``/api/followups``: the follow-up workbench (回访 and callbacks); ``/api/tickets/{id}/related``.

Roles: follow-up staff and admins work tasks; supervisors read them; agents have no access.
Region scope as everywhere (another region's task is a 404). Caller numbers are shown in full
to follow-up staff and admins (they call back), masked for supervisors. Routes only validate,
call :class:`~ticketing.followup.FollowupService` and serialize.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Self

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from callcenter.auth.deps import CurrentUser
from callcenter.auth.principal import Principal
from callcenter.db.models import Role
from callcenter.errors import NotFound, ServiceUnavailable
from callcenter.privacy import mask_phone
from callcenter.web.deps import ServicesDep, SessionDep
from ticketing.catalogue import Satisfaction, label
from ticketing.followup import (
    CALLBACK_CALLER_ID,
    AttemptInput,
    Dialer,
    FollowupPolicy,
    FollowupService,
    TaskQuery,
)
from ticketing.http import ClockDep
from ticketing.models import (
    FollowupAttempt,
    FollowupTask,
    Outcome,
    TaskKind,
    TaskReason,
    TaskStatus,
    Ticket,
)
from ticketing.repeats import family_tickets
from ticketing.services import TicketService
from ticketing.states import FOLLOWUP_VISIBLE, STATE_LABELS, State

if TYPE_CHECKING:
    from callcenter.telephony import Telephony

__all__ = ["related_router", "router"]

router = APIRouter(prefix="/api/followups", tags=["follow-up"])
related_router = APIRouter(prefix="/api/tickets", tags=["tickets"])

TASK_LABELS: dict[str, str] = {
    TaskKind.RETURN_VISIT: "回访",
    TaskKind.CALLBACK: "回拨",
    TaskReason.LEGAL_AID: "法律援助必访",
    TaskReason.COMPLAINT: "投诉必访",
    TaskReason.GREEN_CHANNEL: "绿色通道必访",
    TaskReason.EMERGENCY: "紧急事项必访",
    TaskReason.SAMPLED: "抽样回访",
    TaskReason.REQUESTED: "来电人要求",
    TaskReason.VIRTUAL_HOLD: "排队预约回拨",
    TaskReason.AFTER_HOURS: "非工作时间预约回拨",
    TaskStatus.PENDING: "待处理",
    TaskStatus.CLAIMED: "处理中",
    TaskStatus.COMPLETED: "已完成",
    TaskStatus.UNREACHABLE: "无法联系",
    TaskStatus.CLOSED: "已关闭",
    Outcome.REACHED: "已接通",
    Outcome.NO_ANSWER: "无人接听",
    Outcome.BUSY: "占线",
    Outcome.POWERED_OFF: "关机/停机",
    Outcome.WRONG_NUMBER: "号码错误",
    Outcome.REFUSED: "拒绝回访",
}


# --- bodies -----------------------------------------------------------------------------------


class AttemptBody(BaseModel):
    """What came of one call: ``satisfaction`` is required for a reached return visit."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    outcome: Outcome
    satisfaction: Satisfaction | None = None
    note: str | None = Field(default=None, min_length=1, max_length=2000)
    version: int | None = Field(default=None, ge=1, le=2**31 - 1)


class TaskListQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: list[TaskStatus] | None = None
    kind: TaskKind | None = None
    region: str | None = Field(default=None, pattern=r"^\d{6}$")
    due_before: datetime | None = None
    mine: bool = False
    limit: int = Field(default=50, ge=1, le=200)
    offset: int = Field(default=0, ge=0, le=1_000_000)


class TaskOut(BaseModel):
    id: int
    kind: TaskKind
    kind_label: str
    reason: TaskReason
    reason_label: str
    status: TaskStatus
    status_label: str
    region_code: str
    ticket_id: int | None
    caller_number: str
    number_masked: bool
    priority: int
    due_at: datetime
    attempts: int
    max_attempts: int
    claimed_by_id: int | None
    claimed_at: datetime | None
    outcome: Outcome | None
    outcome_label: str | None
    satisfaction: Satisfaction | None
    satisfaction_label: str | None
    note: str | None
    language: str | None
    service_type: str | None
    version: int
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None

    @classmethod
    def of(cls, task: FollowupTask, *, mask_number: bool) -> Self:
        kind, reason, status = TaskKind(task.kind), TaskReason(task.reason), TaskStatus(task.status)
        outcome = Outcome(task.outcome) if task.outcome else None
        satisfaction = Satisfaction(task.satisfaction) if task.satisfaction else None
        number = mask_phone(task.caller_number) if mask_number else task.caller_number
        return cls(
            id=task.id,
            kind=kind,
            kind_label=TASK_LABELS[kind],
            reason=reason,
            reason_label=TASK_LABELS[reason],
            status=status,
            status_label=TASK_LABELS[status],
            region_code=task.region_code,
            ticket_id=task.ticket_id,
            caller_number=number or "",
            number_masked=mask_number,
            priority=task.priority,
            due_at=task.due_at,
            attempts=task.attempts,
            max_attempts=task.max_attempts,
            claimed_by_id=task.claimed_by_id,
            claimed_at=task.claimed_at,
            outcome=outcome,
            outcome_label=TASK_LABELS[outcome] if outcome else None,
            satisfaction=satisfaction,
            satisfaction_label=label(satisfaction) if satisfaction else None,
            note=task.note,
            language=task.language,
            service_type=task.service_type,
            version=task.version,
            created_at=task.created_at,
            updated_at=task.updated_at,
            closed_at=task.closed_at,
        )


class TaskPage(BaseModel):
    items: list[TaskOut]
    total: int
    limit: int
    offset: int


class NextOut(BaseModel):
    task: TaskOut | None
    message: str


class AttemptOut(BaseModel):
    id: int
    at: datetime
    actor_id: int | None
    outcome: Outcome
    outcome_label: str
    satisfaction: Satisfaction | None
    note: str | None

    @classmethod
    def of(cls, row: FollowupAttempt) -> Self:
        outcome = Outcome(row.outcome)
        return cls(
            id=row.id,
            at=row.at,
            actor_id=row.actor_id,
            outcome=outcome,
            outcome_label=TASK_LABELS[outcome],
            satisfaction=Satisfaction(row.satisfaction) if row.satisfaction else None,
            note=row.note,
        )


class DialOut(BaseModel):
    task_id: int
    success: bool
    reason: str
    channel_id: str | None


class RelatedTicketOut(BaseModel):
    id: int
    number: str
    state: State
    state_label: str
    category: str
    created_at: datetime
    is_root: bool


class RelatedOut(BaseModel):
    ticket_id: int
    root_id: int
    repeat_count: int
    """Repeats of the matter (all of them, also those in regions the caller cannot see)."""
    items: list[RelatedTicketOut]


# --- dependencies -----------------------------------------------------------------------------


class TelephonyDialer(Dialer):
    """Click-to-call through the AMI node that carried the call (else the first node)."""

    def __init__(self, telephony: Telephony) -> None:
        self.telephony = telephony

    async def click_to_call(
        self, node: str | None, agent_interface: str, number: str, task_id: int
    ) -> dict[str, Any]:
        nodes = self.telephony.nodes
        if not nodes:
            raise ServiceUnavailable("no AMI node is configured")
        chosen = nodes.get(node or "") or next(iter(nodes.values()))
        try:
            outcome = await chosen.actions.click_to_call(
                agent_interface,
                number,
                caller_id=CALLBACK_CALLER_ID,
                ticket_id=f"followup-{task_id}",
                timeout_s=25,
            )
        except (ConnectionError, TimeoutError) as exc:
            raise ServiceUnavailable(f"电话交换机不可用 (PBX unavailable): {exc}") from None
        return {
            "success": outcome.success,
            "reason": outcome.reason,
            "channel_id": outcome.channel_id,
        }


async def get_followup_service(
    session: SessionDep, services: ServicesDep, clock: ClockDep
) -> FollowupService:
    settings = services.settings
    policy = FollowupPolicy.from_settings(settings)
    tickets = TicketService(
        session,
        services.bus,
        clock=clock,
        tz=settings.tz,
        followup=policy,
        repeat_window_days=settings.repeat_window_days,
    )
    dialer = TelephonyDialer(services.telephony) if services.telephony is not None else None
    return FollowupService(session, tickets=tickets, policy=policy, clock=clock, dialer=dialer)


FollowupDep = Annotated[FollowupService, Depends(get_followup_service)]
TaskId = Annotated[int, Path(ge=1, le=2**31 - 1)]
TicketId = Annotated[int, Path(ge=1, le=2**31 - 1)]


def _visible(principal: Principal, ticket: Ticket) -> bool:
    if not principal.can_see_region(ticket.region_code):
        return False
    return principal.role is not Role.FOLLOWUP or State(ticket.state) in FOLLOWUP_VISIBLE


def _out(principal: Principal, task: FollowupTask) -> TaskOut:
    full = principal.role in (Role.FOLLOWUP, Role.ADMIN)
    return TaskOut.of(task, mask_number=not full)


# --- routes -----------------------------------------------------------------------------------


@router.get("")
async def list_tasks(
    principal: CurrentUser, svc: FollowupDep, query: Annotated[TaskListQuery, Query()]
) -> TaskPage:
    """Tasks of the caller's regions, most urgent first; filter by status, kind, region…"""
    found, total = await svc.search(
        principal,
        TaskQuery(
            status=query.status,
            kind=query.kind,
            region=query.region,
            due_before=query.due_before,
            mine=query.mine,
            limit=query.limit,
            offset=query.offset,
        ),
    )
    items = [_out(principal, t) for t in found]
    return TaskPage(items=items, total=total, limit=query.limit, offset=query.offset)


@router.post("/next")
async def take_next(principal: CurrentUser, svc: FollowupDep) -> NextOut:
    """Claim the next due task (or get back the one already claimed); 409 outside calling
    hours. ``task`` is null when nothing is due."""
    task = await svc.claim_next(principal)
    if task is None:
        return NextOut(task=None, message="暂无到期任务 (no task is due)")
    return NextOut(task=_out(principal, task), message="已领取 (claimed)")


@router.get("/{task_id}")
async def get_task(task_id: TaskId, principal: CurrentUser, svc: FollowupDep) -> TaskOut:
    return _out(principal, await svc.get(principal, task_id))


@router.get("/{task_id}/attempts")
async def list_attempts(
    task_id: TaskId, principal: CurrentUser, svc: FollowupDep
) -> list[AttemptOut]:
    return [AttemptOut.of(a) for a in await svc.attempts(principal, task_id)]


@router.post("/{task_id}/attempts")
async def record_attempt(
    task_id: TaskId, body: AttemptBody, principal: CurrentUser, svc: FollowupDep
) -> TaskOut:
    """Record one attempt: a failed one reschedules until the limit (then 无法联系); a reached
    return visit records the satisfaction on the ticket (不满意 reopens it for 重办)."""
    attempt = AttemptInput(
        outcome=body.outcome,
        satisfaction=body.satisfaction,
        note=body.note,
        version=body.version,
    )
    return _out(principal, await svc.record(principal, task_id, attempt))


@router.post("/{task_id}/dial")
async def dial_task(task_id: TaskId, principal: CurrentUser, svc: FollowupDep) -> DialOut:
    """Ring the staff member's seat, then the caller; 409 outside calling hours, 503 without
    a PBX."""
    result = await svc.dial(principal, task_id)
    return DialOut(task_id=task_id, **result)


@related_router.get("/{ticket_id}/related")
async def related(
    ticket_id: TicketId, principal: CurrentUser, session: SessionDep, services: ServicesDep
) -> RelatedOut:
    """The repeat family of a ticket (重复诉求): the first ticket and every repeat that the
    caller may see, oldest first."""
    tickets = TicketService(session, services.bus, tz=services.settings.tz)
    await tickets.get(principal, ticket_id)  # 404 unless visible
    family, rows = await family_tickets(session, ticket_id)
    items = [
        RelatedTicketOut(
            id=t.id,
            number=t.number,
            state=State(t.state),
            state_label=STATE_LABELS[State(t.state)],
            category=t.category,
            created_at=t.created_at,
            is_root=t.id == family.root_id,
        )
        for t in rows
        if _visible(principal, t)
    ]
    if not items:
        raise NotFound(f"ticket {ticket_id} not found", ticket_id=ticket_id)
    return RelatedOut(
        ticket_id=ticket_id,
        root_id=family.root_id,
        repeat_count=family.repeat_count,
        items=items,
    )
