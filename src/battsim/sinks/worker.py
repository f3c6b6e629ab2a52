"""One thread per sink behind a bounded queue: the simulation's thread only enqueues, never waits on the network.

When the queue is full the oldest batch is dropped (and counted): fresh telemetry matters more to a live monitor
than a backlog it would show late. A batch run's back-fill (``wait=True``) waits for room instead, so every reading
is delivered and the run goes at the pace of its slowest sink."""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass


@dataclass
class SinkCounters:
    queued: int = 0
    sent: int = 0
    retried: int = 0
    dropped: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class SinkWorker:
    """Delivers items with ``deliver`` on its own thread; retries a failed delivery with exponential backoff.

    ``capacity`` bounds the batches waiting (the one in flight is not counted)."""

    def __init__(self, name: str, deliver: Callable[[object], None], rows_of: Callable[[object], int],
                 capacity: int, max_retries: int, backoff_s: float, wait: bool = False):
        self.name = name
        self.wait = wait
        self.counters = SinkCounters()
        self.state = "running"
        self.last_error: str | None = None
        self._deliver = deliver
        self._rows_of = rows_of
        self._max_retries = max_retries
        self._backoff_s = backoff_s
        self._queue: collections.deque = collections.deque()
        self._capacity = capacity
        self._lock = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name=f"sink-{name}", daemon=True)
        self._thread.start()

    def put(self, item) -> None:
        """Called on the simulation's thread: never blocks on delivery (with ``wait``, only until there is room)."""
        with self._lock:
            while self.wait and len(self._queue) >= self._capacity and self._thread.is_alive():
                self._lock.wait(1.0)
            if len(self._queue) >= self._capacity:
                self.counters.dropped += self._rows_of(self._queue.popleft())
            self._queue.append(item)
            self.counters.queued = sum(self._rows_of(queued) for queued in self._queue)
            self._lock.notify()

    def status(self) -> dict:
        with self._lock:
            return {"name": self.name, "state": self.state, "last_error": self.last_error, **self.counters.as_dict()}

    def close(self, timeout_s: float = 10.0) -> None:
        """Deliver what is queued (up to ``timeout_s``; a back-fill, ``wait``, until it is all delivered or given up,
        each delivery being bounded by its own timeout and retries), then stop; what could not be sent is counted
        as dropped."""
        with self._lock:
            self._closing = True
            self._lock.notify_all()
        self._thread.join(None if self.wait else timeout_s)
        with self._lock:
            self.counters.dropped += sum(self._rows_of(item) for item in self._queue)
            self._queue.clear()
            self.counters.queued = 0
            self.state = "stopped"

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._closing:
                    self._lock.wait()
                if not self._queue:
                    return
                # Taken off the queue while in flight, so a full queue drops the oldest *waiting* batch,
                # never the one being delivered (which would then be counted both dropped and sent).
                item = self._queue.popleft()
                self.counters.queued = sum(self._rows_of(queued) for queued in self._queue)
                self._lock.notify_all()  # room for a waiting put
            rows = self._rows_of(item)
            delivered = self._deliver_with_retries(item)
            with self._lock:
                if delivered:
                    self.counters.sent += rows
                else:
                    self.counters.dropped += rows

    def _deliver_with_retries(self, item) -> bool:
        for attempt in range(self._max_retries + 1):
            try:
                self._deliver(item)
            except Exception as error:  # noqa: BLE001 - any delivery failure is retried, then counted
                with self._lock:
                    self.last_error = f"{type(error).__name__}: {error}"
                    self.state = "retrying"
                if attempt == self._max_retries:
                    return False
                with self._lock:
                    self.counters.retried += 1
                time.sleep(self._backoff_s * 2 ** attempt)
            else:
                with self._lock:
                    self.state = "running"
                return True
        return False
