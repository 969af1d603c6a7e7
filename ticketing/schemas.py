"""Request and response bodies of ``/api/tickets``.

Every request model forbids unknown fields and strips whitespace, so a typo or a blank reason is
a 400 naming the field before anything is read or written. Each action has its own body model
(:data:`ACTION_BODIES`): what an action needs (a reason to return a ticket, a result to close
it) is checked here, not deep inside the service.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

from callcenter.privacy import mask_phone
from ticketing.catalogue import Category, Channel, RequestType, Satisfaction, Urgency, label
from ticketing.models import Ticket, TicketHistory
from ticketing.states import ACTION_LABELS, STATE_LABELS, Action, State

RegionCode = Annotated[str, Field(pattern=r"^\d{6}$", description="GB/T 2260 code")]
Reason = Annotated[str, Field(min_length=1, max_length=2000)]
LongText = Annotated[str, Field(min_length=1, max_length=10_000)]
DbId = Annotated[int, Field(ge=1, le=2**31 - 1)]
MAX_EXTENSION_DAYS = 15


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class TicketCreate(_Body):
    """A new ticket. ``region_code`` defaults to the creator's region."""

    channel: Channel = Channel.PHONE
    caller_number: str | None = Field(default=None, pattern=r"^\+?\d{3,20}$")
    caller_region_code: RegionCode | None = None
    region_code: RegionCode | None = None
    source_call_id: DbId | None = None
    category: Category
    request_type: RequestType
    content: LongText
    answer: LongText | None = None
    urgency: Urgency = Urgency.NORMAL
    green_channel: bool = False
    handling_unit: str | None = Field(default=None, min_length=1, max_length=128)
    resolved_on_call: bool = Field(
        default=False, description="一次办结: answered on the call, closed at once"
    )

    @field_validator("resolved_on_call")
    @classmethod
    def _needs_answer(cls, value: bool, info: ValidationInfo) -> bool:
        if value and not info.data.get("answer"):
            raise ValueError("a ticket resolved on the call needs the answer given")
        return value


class ActionBody(_Body):
    """Common to every action: an optional reason, and ``version`` to act only if unchanged."""

    reason: Reason | None = None
    version: int | None = Field(
        default=None, ge=1, description="refuse (409) if the ticket has changed since"
    )


class DispatchBody(ActionBody):
    """派单: to a user (agent), a handling unit (directory name or code, or an outside body's
    name), or both; with neither, the assignment rules choose (see ``ticketing.assignment``)."""

    assignee_id: DbId | None = None
    handling_unit: str | None = Field(default=None, min_length=1, max_length=128)


class ReassignBody(DispatchBody):
    reason: Reason


class ReasonRequired(ActionBody):
    reason: Reason


class ResolveBody(ActionBody):
    result: LongText
    answer: LongText | None = None


class VisitBody(ActionBody):
    satisfaction: Satisfaction


class ReopenBody(ActionBody):
    """重办: why (``reason``, required: checked by the service after scope, so a stranger gets
    404 first) and, when a return visit found it, the caller's satisfaction."""

    satisfaction: Satisfaction | None = None


class AmendBody(ActionBody):
    """补录修改: the fields to fill in or correct (at least one); the others stay as they are."""

    content: LongText | None = None
    answer: LongText | None = None
    category: Category | None = None
    request_type: RequestType | None = None
    urgency: Urgency | None = None
    green_channel: bool | None = None

    @model_validator(mode="after")
    def _something(self) -> Self:
        if not self.model_fields_set & AMENDABLE:
            raise ValueError(f"give at least one of: {', '.join(sorted(AMENDABLE))}")
        return self


AMENDABLE = frozenset({"content", "answer", "category", "request_type", "urgency", "green_channel"})


class ExtensionBody(ActionBody):
    reason: Reason
    days: int = Field(ge=1, le=MAX_EXTENSION_DAYS, description="working days to add")


ACTION_BODIES: dict[Action, type[ActionBody]] = {
    Action.DISPATCH: DispatchBody,
    Action.SIGN: ActionBody,
    Action.START: ActionBody,
    Action.RESOLVE: ResolveBody,
    Action.VISIT: VisitBody,
    Action.ARCHIVE: ActionBody,
    Action.RETURN: ReasonRequired,
    Action.REASSIGN: ReassignBody,
    Action.REQUEST_EXTENSION: ExtensionBody,
    Action.APPROVE_EXTENSION: ActionBody,
    Action.REJECT_EXTENSION: ReasonRequired,
    Action.URGE: ActionBody,
    Action.SUPERVISE: ReasonRequired,
    Action.REOPEN: ReopenBody,
    Action.AMEND: AmendBody,
}


BATCH_LIMIT: Final = 200
"""Most tickets per batch request: a list view's page, and a transaction short enough not to
hold the region's number counter (see ``ticketing.numbers``) for long."""


class TicketBatch(_Body):
    """批量受理: tickets created together, all or none (e.g. forwarded by the 12345 platform)."""

    tickets: list[TicketCreate] = Field(min_length=1, max_length=BATCH_LIMIT)


class TicketList(BaseModel):
    tickets: list[TicketOut]


def batch_item_model(action: Action) -> type[_Body]:
    """The body of ``POST /api/tickets/batch/{action}``: ``items``, each the action's own body
    plus the ticket ``id``. Parsing it yields items that *are* the action's body model."""
    return _BATCH_MODELS[action]


def _batch_model(action: Action, body: type[ActionBody]) -> type[_Body]:
    item = create_model(f"{body.__name__}Item", __base__=body, id=(DbId, ...))
    items = (list[item], Field(min_length=1, max_length=BATCH_LIMIT))
    return create_model(f"{action.value.title()}Batch", __base__=_Body, items=items)


class BatchItemOut(BaseModel):
    """One item's outcome: the ticket changed, or the error the single action would give."""

    id: int
    ok: bool
    ticket: TicketOut | None = None
    status: int | None = None
    error: dict[str, Any] | None = None


class BatchOut(BaseModel):
    results: list[BatchItemOut]
    succeeded: int
    failed: int


class TicketQuery(_Body):
    """Filters of ``GET /api/tickets``; ``q`` searches content and answers."""

    state: list[State] | None = None
    category: Category | None = None
    region: RegionCode | None = None
    assignee_id: DbId | None = None
    q: str | None = Field(default=None, min_length=1, max_length=100)
    limit: int = Field(default=50, ge=1, le=200)
    offset: int = Field(default=0, ge=0, le=1_000_000)


class TicketOut(BaseModel):
    id: int
    number: str
    region_code: str
    source_call_id: int | None
    channel: Channel
    channel_label: str
    caller_number: str | None
    number_masked: bool
    caller_region_code: str | None
    category: Category
    category_label: str
    request_type: RequestType
    request_type_label: str
    content: str
    answer: str | None
    urgency: Urgency
    urgency_label: str
    green_channel: bool
    resolved_on_call: bool
    handling_unit: str | None
    assignee_id: int | None
    state: State
    state_label: str
    version: int
    accept_by: datetime
    resolve_by: datetime
    extension_requested_days: int | None
    extended_days: int
    urge_count: int
    supervised: bool
    result: str | None
    satisfaction: Satisfaction | None
    satisfaction_label: str | None
    created_by_id: int | None
    created_at: datetime
    updated_at: datetime
    signed_at: datetime | None
    resolved_at: datetime | None

    @classmethod
    def of(cls, ticket: Ticket, *, mask_number: bool) -> Self:
        """Codes and their labels side by side; the number masked unless ``mask_number`` is
        false (see :func:`ticketing.services.can_see_caller_number`)."""
        channel, category = Channel(ticket.channel), Category(ticket.category)
        request_type, urgency = RequestType(ticket.request_type), Urgency(ticket.urgency)
        state = State(ticket.state)
        satisfaction = Satisfaction(ticket.satisfaction) if ticket.satisfaction else None
        fields: dict[str, Any] = {name: getattr(ticket, name) for name in _COPIED}
        return cls(
            **fields,
            channel=channel,
            channel_label=label(channel),
            caller_number=mask_phone(ticket.caller_number) if mask_number else ticket.caller_number,
            number_masked=mask_number,
            category=category,
            category_label=label(category),
            request_type=request_type,
            request_type_label=label(request_type),
            urgency=urgency,
            urgency_label=label(urgency),
            state=state,
            state_label=STATE_LABELS[state],
            satisfaction=satisfaction,
            satisfaction_label=label(satisfaction) if satisfaction else None,
        )


_DERIVED = {"channel", "caller_number", "number_masked", "category", "request_type", "urgency"}
_DERIVED |= {"state", "satisfaction"}
_COPIED = tuple(
    name for name in TicketOut.model_fields if name not in _DERIVED and not name.endswith("_label")
)


class TicketPage(BaseModel):
    items: list[TicketOut]
    total: int
    limit: int
    offset: int


class HistoryOut(BaseModel):
    id: int
    at: datetime
    actor_id: int | None
    actor_username: str | None
    action: Action
    action_label: str
    from_state: State | None
    to_state: State
    reason: str | None
    details: dict[str, Any]

    @classmethod
    def of(cls, row: TicketHistory, actor_username: str | None) -> Self:
        action = Action(row.action)
        return cls(
            id=row.id,
            at=row.at,
            actor_id=row.actor_id,
            actor_username=actor_username,
            action=action,
            action_label=ACTION_LABELS[action],
            from_state=State(row.from_state) if row.from_state else None,
            to_state=State(row.to_state),
            reason=row.reason,
            details=row.details,
        )


class HistoryPage(BaseModel):
    ticket_id: int
    number: str
    items: list[HistoryOut]


_BATCH_MODELS: Final = {
    action: _batch_model(action, body) for action, body in ACTION_BODIES.items()
}
