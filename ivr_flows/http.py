"""``/api/ivr``: the active flow (supervisors, admins) and its reload (admins only).

A reload that fails answers 400 with every problem (file, line, node, message); the last valid
flow keeps serving. The store comes from the composition root (``Services.ivr_flows``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from callcenter.auth.deps import require_roles
from callcenter.auth.principal import Principal
from callcenter.db.models import Role
from callcenter.errors import InvalidInput, ServiceUnavailable
from ivr_flows.errors import FlowError
from ivr_flows.store import FlowStore

router = APIRouter(prefix="/api/ivr", tags=["ivr"])


def get_flow_store(request: Request) -> FlowStore:
    services = getattr(request.app.state, "services", None)
    store: FlowStore | None = getattr(services, "ivr_flows", None)
    if store is None:
        raise ServiceUnavailable("the IVR flow is not loaded on this instance")
    return store


StoreDep = Annotated[FlowStore, Depends(get_flow_store)]
Viewer = Annotated[Principal, Depends(require_roles(Role.SUPERVISOR, Role.ADMIN))]
Admin = Annotated[Principal, Depends(require_roles(Role.ADMIN))]


def _summary(store: FlowStore) -> dict[str, Any]:
    loaded = store.current()
    flow = loaded.flow
    return {
        **store.status().to_dict(),
        "languages": list(flow.languages.enabled),
        "entries": dict(flow.entries),
        "nodes": {node_id: node.type for node_id, node in flow.nodes.items()},
        "transfers": {name: t.label for name, t in flow.transfers.items()},
    }


@router.get("/flow")
async def active_flow(_: Viewer, store: StoreDep) -> dict[str, Any]:
    """The flow serving calls now: version (hash of flow + prompts), nodes, last reload error."""
    return _summary(store)


@router.post("/reload")
async def reload_flow(_: Admin, store: StoreDep) -> dict[str, Any]:
    """Load the flow files now; an invalid edit is refused and the old flow keeps serving."""
    try:
        store.reload()
    except FlowError as exc:
        raise InvalidInput(
            f"flow refused, version {store.status().version} keeps serving",
            problems=[p.to_dict() for p in exc.problems],
        ) from None
    return _summary(store)
