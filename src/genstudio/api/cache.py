"""Answers that are read far more often than they change (gallery pages, finished jobs), kept as JSON bytes.

An entry is used while no asset row has changed in this process (the store's generation) and for at most
`ttl_s` (rows written by other processes: outside workers, the CLI). So a poll costs a dict lookup, not
a query and a serialisation, whatever the gallery's size."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any

from genstudio.storage.db import Store


class ReadCache:
    def __init__(self, store: Store, *, ttl_s: float = 2.0, size: int = 512) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self.size = size
        self._entries: OrderedDict[Any, tuple[int, float, bytes]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any) -> bytes | None:
        with self._lock:
            hit = self._entries.get(key)
            if hit is None:
                return None
            generation, at, data = hit
            if generation != self.store.asset_generation or time.monotonic() - at > self.ttl_s:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return data

    def put(self, key: Any, data: bytes, generation: int) -> None:
        """Keep `data`, made from the rows as they were at `generation` (read it before the query)."""
        with self._lock:
            self._entries[key] = (generation, time.monotonic(), data)
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
