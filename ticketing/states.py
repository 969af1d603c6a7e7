"""The ticket life cycle as data: states, actions, which action moves which state where.

受理 accepted → 派单 dispatched → 签收 signed → 办理 in_progress → 办结 resolved → 回访 visited →
归档 archived, with 退回 (back to the hotline), 改派 (to another handler), 延期 (request and
approval), 催办 and 督办. Keeping the table here, apart from the service, lets the service, the
API documentation and the tests read one source, and makes an illegal move impossible to write
by accident: every change goes through :func:`target_state`.
"""

from __future__ import annotations

from enum import StrEnum
from types import MappingProxyType
from typing import Final

from callcenter.db.models import Role
from ticketing.errors import IllegalTransition


class State(StrEnum):
    ACCEPTED = "accepted"
    DISPATCHED = "dispatched"
    SIGNED = "signed"
    IN_PROGRESS = "in_progress"
    RESOLVED = "resolved"
    VISITED = "visited"
    ARCHIVED = "archived"


class Action(StrEnum):
    """What a user does to a ticket; ``create`` only appears in the history."""

    CREATE = "create"
    DISPATCH = "dispatch"
    SIGN = "sign"
    START = "start"
    RESOLVE = "resolve"
    VISIT = "visit"
    ARCHIVE = "archive"
    RETURN = "return"
    REASSIGN = "reassign"
    REQUEST_EXTENSION = "request_extension"
    APPROVE_EXTENSION = "approve_extension"
    REJECT_EXTENSION = "reject_extension"
    URGE = "urge"
    SUPERVISE = "supervise"
    # Written by the SLA scanner only (no user can take them; see ticketing.supervision).
    SLA_YELLOW = "sla_yellow"
    SLA_RED = "sla_red"
    # 重办 after a dissatisfied return visit (ticketing.followup; migration 0004).
    REOPEN = "reopen"
    # 补录修改: fill in or correct what the caller asked and what was answered (migration 0007),
    # e.g. the placeholder of a ticket made automatically for an answered call.
    AMEND = "amend"


STATE_LABELS: Final = MappingProxyType(
    {
        State.ACCEPTED: "受理",
        State.DISPATCHED: "派单",
        State.SIGNED: "签收",
        State.IN_PROGRESS: "办理",
        State.RESOLVED: "办结",
        State.VISITED: "回访",
        State.ARCHIVED: "归档",
    }
)

ACTION_LABELS: Final = MappingProxyType(
    {
        Action.CREATE: "受理",
        Action.DISPATCH: "派单",
        Action.SIGN: "签收",
        Action.START: "办理",
        Action.RESOLVE: "办结",
        Action.VISIT: "回访",
        Action.ARCHIVE: "归档",
        Action.RETURN: "退回",
        Action.REASSIGN: "改派",
        Action.REQUEST_EXTENSION: "延期申请",
        Action.APPROVE_EXTENSION: "延期批准",
        Action.REJECT_EXTENSION: "延期驳回",
        Action.URGE: "催办",
        Action.SUPERVISE: "督办",
        Action.SLA_YELLOW: "黄牌预警",
        Action.SLA_RED: "红牌超时",
        Action.REOPEN: "重办",
        Action.AMEND: "补录修改",
    }
)

_HANDLING: Final = (State.DISPATCHED, State.SIGNED, State.IN_PROGRESS)
_WORKING: Final = (State.SIGNED, State.IN_PROGRESS)
_OPEN: Final = (State.ACCEPTED, *_HANDLING)


def _stay(*states: State) -> dict[State, State]:
    return {state: state for state in states}


TRANSITIONS: Final[MappingProxyType[Action, MappingProxyType[State, State]]] = MappingProxyType(
    {
        action: MappingProxyType(moves)
        for action, moves in {
            Action.DISPATCH: {State.ACCEPTED: State.DISPATCHED},
            Action.SIGN: {State.DISPATCHED: State.SIGNED},
            Action.START: {State.SIGNED: State.IN_PROGRESS},
            # From accepted: the hotline answered it itself, nothing to dispatch (直接办结).
            Action.RESOLVE: {State.ACCEPTED: State.RESOLVED, State.IN_PROGRESS: State.RESOLVED},
            Action.VISIT: {State.RESOLVED: State.VISITED},
            # Return visits are sampled, so a resolved ticket may be archived unvisited.
            Action.ARCHIVE: {State.RESOLVED: State.ARCHIVED, State.VISITED: State.ARCHIVED},
            Action.RETURN: {state: State.ACCEPTED for state in _HANDLING},
            Action.REASSIGN: {state: State.DISPATCHED for state in _HANDLING},
            Action.REQUEST_EXTENSION: _stay(*_WORKING),
            Action.APPROVE_EXTENSION: _stay(*_WORKING),
            Action.REJECT_EXTENSION: _stay(*_WORKING),
            Action.URGE: _stay(*_HANDLING),
            Action.SUPERVISE: _stay(*_OPEN),
            # 重办: back to the hotline, to be dispatched anew.
            Action.REOPEN: {State.RESOLVED: State.ACCEPTED, State.VISITED: State.ACCEPTED},
            # Only while the ticket is open: a closed one is corrected by 重办, not rewritten.
            Action.AMEND: _stay(*_OPEN),
        }.items()
    }
)

_HANDLERS: Final = frozenset({Role.AGENT, Role.ADMIN})
_DESK: Final = frozenset({Role.AGENT, Role.SUPERVISOR, Role.ADMIN})
_OVERSIGHT: Final = frozenset({Role.SUPERVISOR, Role.ADMIN})

ACTION_ROLES: Final[MappingProxyType[Action, frozenset[Role]]] = MappingProxyType(
    {
        Action.CREATE: _DESK,
        Action.DISPATCH: _DESK,
        Action.SIGN: _HANDLERS,
        Action.START: _HANDLERS,
        Action.RESOLVE: _HANDLERS,
        Action.VISIT: frozenset({Role.FOLLOWUP, Role.ADMIN}),
        Action.ARCHIVE: frozenset({Role.FOLLOWUP, Role.SUPERVISOR, Role.ADMIN}),
        Action.RETURN: _DESK,
        Action.REASSIGN: _DESK,
        Action.REQUEST_EXTENSION: _HANDLERS,
        Action.APPROVE_EXTENSION: _OVERSIGHT,
        Action.REJECT_EXTENSION: _OVERSIGHT,
        Action.URGE: _DESK,
        Action.SUPERVISE: _OVERSIGHT,
        Action.REOPEN: frozenset({Role.FOLLOWUP, Role.SUPERVISOR, Role.ADMIN}),
        Action.AMEND: _DESK,
    }
)

# Actions taken one ticket at a time, never in a batch: 受理 has its own batch (POST
# /api/tickets/batch), 督办 is a deliberate act with its own record, 补录修改 edits one ticket.
SINGLE_ONLY: Final = frozenset({Action.CREATE, Action.SUPERVISE, Action.AMEND})

# Actions only the ticket's assignee may take (admins excepted): the handler's own work.
_ASSIGNEE_ONLY: Final = frozenset({Action.START, Action.REQUEST_EXTENSION})

# Follow-up staff work on finished tickets only; earlier states are invisible to them.
FOLLOWUP_VISIBLE: Final = frozenset({State.RESOLVED, State.VISITED, State.ARCHIVED})


def needs_assignee(action: Action, current: State) -> bool:
    """Whether only the assignee may do ``action`` now (a hotline 直接办结 needs no assignee)."""
    if action is Action.RESOLVE:
        return current is State.IN_PROGRESS
    return action in _ASSIGNEE_ONLY


def describe_state(state: State) -> str:
    return f"{state.value} ({STATE_LABELS[state]})"


def describe_action(action: Action) -> str:
    return f"{action.value} ({ACTION_LABELS[action]})"


def target_state(action: Action, current: State, *, number: str = "") -> State:
    """The state ``action`` leads to from ``current``; ``IllegalTransition`` (409) if none."""
    moves = TRANSITIONS.get(action)
    if moves is None:
        raise ValueError(f"{action.value} is not a transition")
    target = moves.get(current)
    if target is None:
        allowed = ", ".join(describe_state(s) for s in moves) or "nowhere"
        subject = f"ticket {number}" if number else "the ticket"
        raise IllegalTransition(
            f"{subject} is {describe_state(current)}: {describe_action(action)} is only "
            f"allowed from {allowed}",
            state=current.value,
            action=action.value,
        )
    return target
