"""``/api/live``: current calls, queues and agents per region, for wallboards and agent desks.

Routes only check who is calling, call :class:`~callcenter.state.services.LiveReader` and return
its answer.  Follow-up staff have no use for live telephony state (403); a region outside the
caller's scope is a 404.  The :class:`~callcenter.state.LiveState` comes from
``app.state.live_state`` (set by the composition root; tests set it directly).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from callcenter.auth.deps import require_roles
from callcenter.auth.principal import Principal
from callcenter.db.models import Role
from callcenter.errors import ServiceUnavailable
from callcenter.state.live import LiveState
from callcenter.state.schemas import AgentsOut, CallsOut, QueuesOut
from callcenter.state.services import LiveReader
from callcenter.web.deps import SessionDep

__all__ = ["LiveStateDep", "get_live_reader", "get_live_state", "router"]

router = APIRouter(prefix="/api/live", tags=["live"])


def get_live_state(request: Request) -> LiveState:
    live: LiveState | None = getattr(request.app.state, "live_state", None)
    if live is None:
        raise ServiceUnavailable("live state is not available on this instance")
    return live


LiveStateDep = Annotated[LiveState, Depends(get_live_state)]


def get_live_reader(live: LiveStateDep, session: SessionDep) -> LiveReader:
    return LiveReader(live, session)


ReaderDep = Annotated[LiveReader, Depends(get_live_reader)]
LiveViewer = Annotated[Principal, Depends(require_roles(Role.AGENT, Role.SUPERVISOR, Role.ADMIN))]
RegionQuery = Annotated[
    str | None,
    Query(pattern=r"^\d{6}$", description="GB/T 2260 code; default: every region you may see"),
]


@router.get("/calls")
async def live_calls(
    principal: LiveViewer, reader: ReaderDep, region: RegionQuery = None
) -> CallsOut:
    return await reader.calls(principal, region)


@router.get("/queues")
async def live_queues(
    principal: LiveViewer, reader: ReaderDep, region: RegionQuery = None
) -> QueuesOut:
    return await reader.queues(principal, region)


@router.get("/agents")
async def live_agents(
    principal: LiveViewer, reader: ReaderDep, region: RegionQuery = None
) -> AgentsOut:
    return await reader.agents(principal, region)
