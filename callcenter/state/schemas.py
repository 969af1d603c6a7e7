"""Response bodies of ``/api/live``: what a wallboard or an agent desk reads."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from callcenter.ami.events import AgentState
from callcenter.state.model import CallState


class CallOut(BaseModel):
    node: str
    linkedid: str
    state: CallState
    state_since: datetime
    region_code: str
    caller_region_code: str | None
    caller_number: str | None
    caller_name: str | None
    number_masked: bool
    queue: str | None
    position: int | None
    agent_extension: str | None
    agent_name: str | None
    offered_at: datetime
    queued_at: datetime | None
    answered_at: datetime | None
    ivr_path: list[str]
    recording: bool
    transfer_target: str | None


class WaitingOut(BaseModel):
    linkedid: str
    caller_number: str | None
    caller_name: str | None
    number_masked: bool
    position: int
    since: datetime
    wait_s: int


class QueueOut(BaseModel):
    node: str
    name: str
    region_code: str
    waiting: list[WaitingOut]
    waiting_count: int
    longest_wait_s: int | None
    answered_today: int
    abandoned_today: int
    overflowed_today: int


class MembershipOut(BaseModel):
    queue: str
    state: AgentState


class AgentOut(BaseModel):
    node: str
    interface: str
    extension: str | None
    member_name: str | None
    region_code: str
    state: AgentState
    state_since: datetime
    reason: str | None
    queues: list[MembershipOut]
    current_call: str | None
    answered_today: int
    missed_today: int
    talk_seconds_today: int


class CallsOut(BaseModel):
    items: list[CallOut]
    total: int
    truncated: bool


class QueuesOut(BaseModel):
    items: list[QueueOut]
    total: int
    truncated: bool


class AgentsOut(BaseModel):
    items: list[AgentOut]
    total: int
    truncated: bool
