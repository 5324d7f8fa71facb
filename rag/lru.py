"""A bounded, thread-safe least-recently-used map: question vectors, prepared passages,
chunk records. Size 0 turns it off (every get misses, puts are dropped)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Generic, Hashable, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LRU(Generic[K, V]):
    """Bounded LRU map; every method is safe to call from several threads."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._d: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._d)

    def get(self, key: K) -> V | None:
        """The cached value, or None (always None while the cache is off)."""
        if self.size <= 0:
            return None
        with self._lock:
            v = self._d.get(key)
            if v is not None:
                self._d.move_to_end(key)
            return v

    def put(self, key: K, value: V) -> None:
        """Store, evicting the oldest entries beyond the bound."""
        if self.size <= 0:
            return
        with self._lock:
            self._d[key] = value
            self._d.move_to_end(key)
            while len(self._d) > self.size:
                self._d.popitem(last=False)
