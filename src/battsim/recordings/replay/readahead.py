"""The chunks of a window read ahead, in parallel, by a pool of workers, and handed out in order."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import duckdb

from battsim.recordings.replay.source import ReplaySource, Window
from battsim.recordings.replay.wire_sql import TickChunk

# Chunks read at once (one worker and cursor each), so both cores encode while frames go out.
FETCH_WORKERS = 2

NOT_READY = object()  # what next(wait=False) gives for a chunk still being read


class ReadAhead:
    """The chunks of a window, read ahead and in parallel by a pool of workers (each with its own
    cursor: DuckDB runs each query on one core when it spans a row group or two), handed out in order.

    Chunks are planned back to back; when one comes back with a different end than planned (the
    window's or the written end cut it short, or it jumped a gap in the recording), the chunks planned
    after it are dropped and planning resumes from where it really ended.
    """

    def __init__(self, source: ReplaySource, window: Window, chunk_ticks: Callable[[], int],
                 workers: int = FETCH_WORKERS):
        self.source, self.window, self._chunk_ticks = source, window, chunk_ticks
        self._depth = workers
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="battsim-replay")
        self._local = threading.local()
        self._cursors: list[duckdb.DuckDBPyConnection] = []
        self._queue: deque[tuple[Future, int]] = deque()
        self._preloaded: tuple[int, Future, int] | None = None
        self._plan_lo = window.start_us
        self.resume_us = window.start_us  # where the chunks handed out so far end
        self.exhausted = False

    # -------------------------------------------------------------------------------- workers
    def _cursor(self) -> duckdb.DuckDBPyConnection:
        if not hasattr(self._local, "cursor"):
            self._local.cursor = self.source.cursor()
            self._cursors.append(self._local.cursor)
        return self._local.cursor

    def run(self, query: Callable, *args):
        """Run ``query(cursor, *args)`` on a worker and wait for it."""
        return self._pool.submit(lambda: query(self._cursor(), *args)).result()

    def _fetch(self, lo_us: int, hi_us: int) -> TickChunk | None:
        """On a worker: the first non-empty chunk from ``lo`` (None: nothing more, for now)."""
        try:
            return self._first_chunk(lo_us, hi_us)
        except duckdb.ConnectionException:
            if not (self.source.live or self.source.writer_gone):
                raise
            # The live writer stopped and closed the cursors it lent: everything it committed was played
            # or is in chunks already read, so this is the end of the recording, not a failure.
            self.source.live, self.source.writer_gone = False, True
            return None

    def _first_chunk(self, lo_us: int, hi_us: int) -> TickChunk | None:
        cursor, source, window = self._cursor(), self.source, self.window
        end = source.refresh_end(cursor)
        limit = end + 1 if end is not None else lo_us
        if window.end_us is not None:
            limit = min(limit, window.end_us)
        while lo_us < limit:
            chunk = source.fetch(cursor, window, lo_us, min(hi_us, limit))
            if len(chunk.tick_us):
                return chunk
            following = source.next_timestamp_us(cursor, window, hi_us)  # a gap in the recording: jump it
            if following is None:
                return None
            lo_us, hi_us = following, following + (hi_us - lo_us)
        return None

    # -------------------------------------------------------------------------------- planning
    def _span_us(self) -> int:
        return self._chunk_ticks() * self.source.interval_s * 1_000_000

    def _static_limit(self) -> int | None:
        """Where planning can stop for good (None: a recording still written may grow)."""
        limits = [] if self.window.end_us is None else [self.window.end_us]
        if not self.source.live and self.source.end_us is not None:
            limits.append(self.source.end_us + 1)
        if not self.source.live and self.source.end_us is None:
            limits.append(self.window.start_us)  # an empty recording
        return min(limits) if limits else None

    def _refill(self) -> None:
        limit = self._static_limit()
        while len(self._queue) < self._depth and (limit is None or self._plan_lo < limit):
            hi_us = self._plan_lo + self._span_us()
            self._queue.append((self._pool.submit(self._fetch, self._plan_lo, hi_us), hi_us))
            self._plan_lo = hi_us

    def _discard(self) -> None:
        for future, _ in self._queue:
            future.cancel()  # one already running finishes on its worker; its chunk is dropped
        self._queue.clear()

    def start(self, lo_us: int) -> None:
        """Read from ``lo`` on (after a seek, a loop restart, or to look again at a growing recording)."""
        self._discard()
        self.exhausted = False
        self._plan_lo = self.resume_us = lo_us
        if self._preloaded is not None and self._preloaded[0] == lo_us:
            _, future, hi_us = self._preloaded
            self._queue.append((future, hi_us))
            self._plan_lo = hi_us
        self._preloaded = None
        self._refill()

    def preload(self, lo_us: int) -> None:
        """Start reading the chunk at ``lo`` for a later :meth:`start` there (a loop's restart)."""
        if self._preloaded is None:
            hi_us = lo_us + self._span_us()
            self._preloaded = (lo_us, self._pool.submit(self._fetch, lo_us, hi_us), hi_us)

    def next(self, wait: bool = True):
        """The next chunk; None when there are no more; ``NOT_READY`` if ``wait`` is False and it is still read."""
        if not self._queue:
            self._refill()
        if not self._queue:
            self.exhausted = True
            return None
        future, planned_hi = self._queue[0]
        if not wait and not future.done():
            return NOT_READY
        self._queue.popleft()
        chunk = future.result()
        if chunk is None:
            self.exhausted = True
            self._discard()
            return None
        if chunk.hi_us != planned_hi:
            self._discard()
            self._plan_lo = chunk.hi_us
        self.resume_us = chunk.hi_us
        self._refill()
        return chunk

    def close(self) -> None:
        self._discard()
        if self._preloaded is not None:
            self._preloaded[1].cancel()
        self._pool.shutdown(wait=True)
        for cursor in self._cursors:
            cursor.close()
