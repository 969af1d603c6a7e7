"""The active flow, reloaded when its files change, never replaced by an invalid one.

``current()`` runs on every call: two ``stat`` calls, and a reload only when the flow file or
its prompt catalogue changed (modification time, size or inode). ``reload()`` forces one (the
admin API). A reload that fails keeps the last valid flow serving and keeps the precise error
for ``GET /api/ivr/flow`` and the log; the first load has no fallback, so a platform that
starts on an invalid flow refuses to start.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ivr_flows.errors import FlowError, Problem
from ivr_flows.validator import LoadedFlow, load_flow

log = logging.getLogger(__name__)

_Stamp = tuple[tuple[int, int, int] | None, ...]


@dataclass(slots=True)
class FlowStatus:
    path: str
    name: str
    version: str
    loaded_at: datetime
    reloads: int
    last_error: list[Problem] | None
    last_error_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "name": self.name,
            "version": self.version,
            "loaded_at": self.loaded_at.isoformat(),
            "reloads": self.reloads,
            "last_error": None
            if self.last_error is None
            else [p.to_dict() for p in self.last_error],
            "last_error_at": None if self.last_error_at is None else self.last_error_at.isoformat(),
        }


class FlowStore:
    def __init__(self, loaded: LoadedFlow, service_types: Collection[str] | None = None) -> None:
        self._flow = loaded
        self._service_types = service_types
        self._stamp = _stamp(loaded)
        self._failed_stamp: _Stamp | None = None
        self._loaded_at = datetime.now(UTC)
        self._reloads = 0
        self._error: list[Problem] | None = None
        self._error_at: datetime | None = None

    @classmethod
    def open(cls, path: Path, *, service_types: Collection[str] | None = None) -> FlowStore:
        """Load the flow or raise :class:`FlowError` (no last valid flow to fall back on)."""
        return cls(load_flow(path, service_types=service_types), service_types)

    @property
    def path(self) -> Path:
        return self._flow.path

    def current(self) -> LoadedFlow:
        """The flow to run for a new call: reloaded first if its files changed on disk."""
        stamp = _stamp(self._flow)
        if stamp != self._stamp and stamp != self._failed_stamp:
            try:
                self._load()
            except FlowError:
                self._failed_stamp = stamp  # logged once per bad edit, not once per call
        return self._flow

    def reload(self) -> LoadedFlow:
        """Load the files now; :class:`FlowError` (and the old flow stays) when invalid."""
        return self._load()

    def check_services(self, service_types: Collection[str]) -> None:
        """Re-check the active flow against the routing rules' service types (at start)."""
        self._service_types = service_types
        self._flow = load_flow(self._flow.path, service_types=service_types)
        self._stamp = _stamp(self._flow)

    def status(self) -> FlowStatus:
        flow = self._flow
        return FlowStatus(
            str(flow.path),
            flow.flow.name,
            flow.version,
            self._loaded_at,
            self._reloads,
            self._error,
            self._error_at,
        )

    def _load(self) -> LoadedFlow:
        path = self._flow.path
        try:
            loaded = load_flow(path, service_types=self._service_types)
        except FlowError as exc:
            self._error, self._error_at = exc.problems, datetime.now(UTC)
            log.error(
                "IVR flow %s refused, still serving version %s:\n%s",
                path,
                self._flow.version,
                exc,
            )
            raise
        previous = self._flow.version
        self._flow, self._stamp = loaded, _stamp(loaded)
        self._loaded_at = datetime.now(UTC)
        self._reloads += 1
        self._error = self._error_at = self._failed_stamp = None
        log.info("IVR flow %s reloaded: version %s → %s", path, previous, loaded.version)
        return loaded


def _stamp(loaded: LoadedFlow) -> _Stamp:
    return (_file_stamp(loaded.path), _file_stamp(loaded.catalogue_path))


def _file_stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)
