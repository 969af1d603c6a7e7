"""Live call state (calls, queues, agents per region), call records, and the live-state API.

* :class:`LiveState` applies normalized call events per node, keeps the model, writes each
  change to a :class:`LiveStore` (in process or Redis) and publishes it on the event bus;
* :func:`rebuild_from_ami` / :meth:`LiveState.resync` rebuild a node after a reconnect;
* :class:`CallRecorder` writes the ``calls`` table, idempotently and across DB outages;
* :mod:`callcenter.state.http` serves ``/api/live/{calls,queues,agents}``.
"""

from callcenter.state.factory import make_live_state, make_live_store, make_regions
from callcenter.state.live import LiveState
from callcenter.state.model import (
    Change,
    LiveAgent,
    LiveCall,
    LiveQueue,
    Membership,
    WaitingCaller,
)
from callcenter.state.recorder import CallRecorder, RecorderStats
from callcenter.state.records import Disposition
from callcenter.state.regions import Locate, Regions, queue_regions_from_db
from callcenter.state.resync import ResyncResult, items_sender, rebuild_from_ami
from callcenter.state.store import LiveStore, LiveStoreError, MemoryLiveStore

__all__ = [
    "CallRecorder",
    "Change",
    "Disposition",
    "LiveAgent",
    "LiveCall",
    "LiveQueue",
    "LiveState",
    "LiveStore",
    "LiveStoreError",
    "Locate",
    "Membership",
    "MemoryLiveStore",
    "RecorderStats",
    "Regions",
    "ResyncResult",
    "WaitingCaller",
    "items_sender",
    "make_live_state",
    "make_live_store",
    "make_regions",
    "queue_regions_from_db",
    "rebuild_from_ami",
]
