"""Change messages for the event bus: ``live.<region_code>.<calls|queues|agents>``.

A wallboard subscribes to ``live.330400.*`` (one city) or ``live.*`` (province) and receives the
new value of each changed item, or its removal.  Messages are compact (empty fields left out) and
carry *masked* caller numbers and names: the bus fans out to every wallboard of a region, and a
screen that may show full numbers (the handling agent's) fetches them from the API, which
applies :func:`callcenter.privacy.can_see_full_number` per user.
"""

from __future__ import annotations

from typing import Any

from callcenter.privacy import mask_name, mask_phone
from callcenter.state.model import Change, item_to_dict

__all__ = ["channel_of", "compact"]


def channel_of(change: Change) -> str:
    return f"live.{change.region_code}.{change.kind}"


def compact(change: Change) -> dict[str, Any]:
    if change.item is None:
        return {"op": "remove", "kind": change.kind, "key": change.key}
    data = _masked(item_to_dict(change.item))
    return {"op": "upsert", "kind": change.kind, "key": change.key, "item": data}


def _masked(data: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in data.items():
        if value is None or value == () or value == []:
            continue
        if name == "caller_number":
            value = mask_phone(value)
        elif name == "caller_name":
            value = mask_name(value)
        elif name == "waiting":
            value = [_masked(w) for w in value]
        out[name] = value
    return out
