"""An in-process cache of full-resolution series (and of summary windows) for the comparison.

A compare request needs every point of every series it shows (smoothing, diffs and divergence
run on full resolution), and reading a million points out of the database costs far more than
comparing them. A run's ``updated_at`` moves on every ingestion, so an entry is valid exactly as
long as the run's ``updated_at`` is the one it was read at; finished runs stay cached until they
are evicted, least recently used first, under a byte budget. The same cache holds the summary
rows of a long window (``BucketStats``, under a key naming the level and window), valid the
same way.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import fields
from datetime import datetime
from typing import Any

import numpy as np

Series = tuple[np.ndarray, np.ndarray]


class SeriesCache:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple[int, str], tuple[datetime, Any]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @staticmethod
    def _size(series: Any) -> int:
        if isinstance(series, tuple):
            return sum(part.nbytes for part in series)
        return sum(getattr(series, f.name).nbytes for f in fields(series))

    def get(self, run_id: int, key: str, version: datetime) -> Any:
        """The cached series if it was read at this ``version`` of the run, else None."""
        with self._lock:
            entry = self._entries.get((run_id, key))
            if entry is None or entry[0] != version:
                return None
            self._entries.move_to_end((run_id, key))
            return entry[1]

    def put(self, run_id: int, key: str, version: datetime, series: Any) -> None:
        size = self._size(series)
        if size > self.max_bytes:
            return
        with self._lock:
            old = self._entries.pop((run_id, key), None)
            if old is not None:
                self._bytes -= self._size(old[1])
            self._entries[(run_id, key)] = (version, series)
            self._bytes += size
            while self._bytes > self.max_bytes and self._entries:
                _, (_, evicted) = self._entries.popitem(last=False)
                self._bytes -= self._size(evicted)

