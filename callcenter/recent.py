"""A bounded "recently seen" set, shared by the AMI normalizer and the live-state tracker."""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class RecentSet(Generic[K]):
    """Remembers the last ``size`` keys added and forgets the oldest, so memory stays flat.

    A set for lookups and a deque for the order, so ``add`` is O(1) also when full (popping the
    first key of a dict with ``next(iter(...))`` scans every slot deleted before it: O(size)).
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._keys: set[K] = set()
        self._order: deque[K] = deque()

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, key: K) -> None:
        if key in self._keys:
            return
        self._keys.add(key)
        self._order.append(key)
        if len(self._order) > self._size:
            self._keys.discard(self._order.popleft())
