"""WebSocket fan-out: frames encoded once, a bounded queue and a sender task per subscriber.

Awaiting each client's ``send`` in turn would stall everyone on the slowest one
(engineering-notes.md, "WebSocket fan-out"). Here publishing never awaits: a frame is offered to
every subscriber's queue and each subscriber's own task sends at the pace its client reads. A full
queue drops its oldest telemetry frame (alerts and status messages are kept) and counts it; the count
is sent to the client (a ``dropped``
message) before its next frame, and every telemetry frame carries the tick's ``seq`` so gaps are
visible. A subscriber whose frames are older than the lag limit when their turn comes, or whose
send does not complete within the send timeout, is disconnected.

Telemetry is encoded without a Python loop over readings: each tick's readings become an array of
JSON object strings (static per-jar fragments precomputed, numbers formatted once per distinct
value), and a frame for a subscriber is a join over the rows its filter selects. Subscribers with
the same filter share one encoded string.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import numpy as np
from starlette.websockets import WebSocket, WebSocketDisconnect

from battsim.engine.battery import MODE_NAMES
from battsim.engine.fleet import Fleet
from battsim.wire import WIRE_NUMBERS, format_numbers, iso_utc

log = logging.getLogger(__name__)

# Close codes (RFC 6455 §7.4.1): 1008 policy violation (too slow to keep up), 1011 server error.
CLOSE_TOO_SLOW = 1008

@dataclass(frozen=True)
class ReadingFilter:
    """Which readings a subscriber wants: any of these batteries, sites, strings (kinds combine with AND)."""

    battery_ids: frozenset[str] = frozenset()
    site_ids: frozenset[str] = frozenset()
    string_ids: frozenset[str] = frozenset()

    @property
    def everything(self) -> bool:
        return not (self.battery_ids or self.site_ids or self.string_ids)

    def unknown_ids(self, fleet: Fleet) -> list[str]:
        return sorted((self.battery_ids - set(fleet.battery_ids)) | (self.site_ids - set(fleet.site_ids))
                      | (self.string_ids - set(fleet.string_ids)))

    def describe(self) -> dict:
        return {"battery_id": sorted(self.battery_ids), "site_id": sorted(self.site_ids),
                "string_id": sorted(self.string_ids)}


class TelemetryEncoder:
    """Turns ticks of a fleet's readings into telemetry frames."""

    def __init__(self, fleet: Fleet):
        self.fleet = fleet
        battery_ids = np.array(fleet.battery_ids, dtype=object)
        sites = np.array(fleet.site_ids, dtype=object)[fleet.battery_site]
        strings = np.array(fleet.string_ids, dtype=object)[fleet.battery_string]
        self.prefix = ('{"battery_id":' + _quoted(battery_ids) + ',"site_id":' + _quoted(sites)
                       + ',"string_id":' + _quoted(strings) + ',"timestamp":"')
        self.mode_text = np.array([f',"mode":"{name}"' for name in MODE_NAMES], dtype=object)
        self._selections: dict[ReadingFilter, np.ndarray] = {}

    def select(self, reading_filter: ReadingFilter) -> np.ndarray | None:
        """Jar indices a filter keeps (None: all), computed once per filter."""
        if reading_filter.everything:
            return None
        if reading_filter not in self._selections:
            fleet = self.fleet
            keep = np.ones(fleet.size, dtype=bool)
            for wanted, ids, of_jar in (
                (reading_filter.battery_ids, fleet.battery_ids, np.arange(fleet.size)),
                (reading_filter.site_ids, fleet.site_ids, fleet.battery_site),
                (reading_filter.string_ids, fleet.string_ids, fleet.battery_string),
            ):
                if wanted:
                    keep &= np.isin(of_jar, [index for index, name in enumerate(ids) if name in wanted])
            self._selections[reading_filter] = np.flatnonzero(keep)
        return self._selections[reading_filter]

    def tick(self, seq: int, columns: dict[str, np.ndarray], rows: slice) -> TelemetryFrame:
        """The frame of one tick: ``rows`` of ``columns`` (one reading per jar, in jar order).

        Encoding waits until a subscriber asks for the text, so a tick nobody listens to costs nothing.
        """
        return TelemetryFrame(self, seq, columns, rows)

    def encode_readings(self, columns: dict[str, np.ndarray], rows: slice, sim_time: str) -> np.ndarray:
        """One JSON object string per jar, built column by column (no loop over readings)."""
        parts = [self.prefix, sim_time]
        for index, (name, decimals) in enumerate(WIRE_NUMBERS):
            parts.append(("\"," if index == 0 else ",") + f'"{name}":')
            parts.append(format_numbers(columns[name][rows], decimals))
            if name == "soh_pct":
                parts.append(self.mode_text[columns["mode"][rows]])
        parts.append(ROW_END)
        fragments = np.empty((self.fleet.size, len(parts)), dtype=object)
        for column, part in enumerate(parts):
            fragments[:, column] = part
        # One join over the whole matrix, split at the row ends: every reading's JSON object.
        return np.array("".join(fragments.ravel().tolist()).split("\x00")[:-1], dtype=object)


# Ends a reading's fragments; JSON text never contains a raw NUL (json.dumps escapes it).
ROW_END = "}\x00"


def _quoted(values: np.ndarray) -> np.ndarray:
    return np.array([json.dumps(value) for value in values], dtype=object)


class Frame(Protocol):
    """Something to send: the text for a subscriber's filter (None when nothing in it is theirs).

    Frames with ``droppable`` true (telemetry; the default when a frame does not say) may be dropped for
    a subscriber that falls behind; the others (alerts, status) are kept.
    """

    def text(self, reading_filter: ReadingFilter) -> str | None: ...


class TelemetryFrame:
    """One tick's readings; the text for each filter is encoded on first request and shared."""

    droppable = True

    def __init__(self, encoder: TelemetryEncoder, seq: int, columns: dict[str, np.ndarray], rows: slice):
        self.encoder, self.seq, self.columns, self.rows = encoder, seq, columns, rows
        self.sim_time = iso_utc(int(columns["timestamp_us"][rows.start]))
        self._readings: np.ndarray | None = None
        self._texts: dict[ReadingFilter, str] = {}

    @property
    def readings(self) -> np.ndarray:
        if self._readings is None:
            self._readings = self.encoder.encode_readings(self.columns, self.rows, self.sim_time)
        return self._readings

    def text(self, reading_filter: ReadingFilter) -> str | None:
        if reading_filter not in self._texts:
            chosen = self.encoder.select(reading_filter)
            rows = self.readings if chosen is None else self.readings[chosen]
            self._texts[reading_filter] = (f'{{"type":"telemetry","seq":{self.seq},"sim_time":"{self.sim_time}",'
                                           f'"data":[' + ",".join(rows.tolist()) + "]}")
        return self._texts[reading_filter]


@dataclass
class MessageFrame:
    """A small message every subscriber gets (status, ping), encoded once."""

    payload: dict
    _text: str | None = None
    droppable = False  # a class attribute (no annotation): not a dataclass field

    def text(self, reading_filter: ReadingFilter) -> str:
        if self._text is None:
            self._text = json.dumps(self.payload)
        return self._text


@dataclass
class AlertFrame:
    """Alarm changes of one tick; a subscriber gets those of the jars its filter keeps."""

    encoder: TelemetryEncoder
    seq: int
    sim_time: str
    jars: np.ndarray
    alerts: list[dict]
    droppable = False

    def text(self, reading_filter: ReadingFilter) -> str | None:
        chosen = self.encoder.select(reading_filter)
        alerts = self.alerts if chosen is None else [a for a, kept in zip(self.alerts, np.isin(self.jars, chosen))
                                                     if kept]
        if not alerts:
            return None
        return json.dumps({"type": "alert", "seq": self.seq, "sim_time": self.sim_time, "data": alerts})


# ------------------------------------------------------------------------------------ subscribers
class SubscriberGone(Exception):
    pass


class Subscriber:
    """One WebSocket client: its queue, its counters and its sender task."""

    _ids = itertools.count(1)

    def __init__(self, websocket: WebSocket, reading_filter: ReadingFilter, max_frames: int, max_bytes: int,
                 send_timeout_s: float, lag_limit_s: float, ping_interval_s: float):
        self.id = next(self._ids)
        self.websocket = websocket
        self.filter = reading_filter
        self.max_frames, self.max_bytes = max_frames, max_bytes
        self.send_timeout_s, self.lag_limit_s, self.ping_interval_s = send_timeout_s, lag_limit_s, ping_interval_s
        self.queue: deque[tuple[str, float, bool]] = deque()  # (text, published at, droppable)
        self.queued_bytes = 0
        self.sent = 0
        self.dropped = 0
        self.unreported_drops = 0
        self.connected_at = time.time()
        self.closed_reason: str | None = None
        self._ready = asyncio.Event()

    def offer(self, text: str, published_at: float, droppable: bool = True) -> None:
        """Queue a frame without waiting; when full, the oldest droppable frames (telemetry, not alerts
        or status) make room and are counted."""
        self.queue.append((text, published_at, droppable))
        self.queued_bytes += len(text)
        while len(self.queue) > 1 and (len(self.queue) > self.max_frames or self.queued_bytes > self.max_bytes):
            oldest = next((index for index, entry in enumerate(self.queue) if entry[2]), None)
            if oldest is None:
                break
            dropped = self.queue[oldest][0]
            del self.queue[oldest]
            self.queued_bytes -= len(dropped)
            self.dropped += 1
            self.unreported_drops += 1
        self._ready.set()

    async def send_loop(self) -> None:
        """Send queued frames as fast as the client takes them; a ping after each quiet second."""
        while True:
            if not self.queue:
                self._ready.clear()
                try:
                    await asyncio.wait_for(self._ready.wait(), self.ping_interval_s)
                except TimeoutError:
                    await self._send('{"type":"ping"}')
                continue
            text, published_at, _ = self.queue.popleft()
            self.queued_bytes -= len(text)
            lag_s = time.monotonic() - published_at
            if lag_s > self.lag_limit_s:
                raise SubscriberGone(f"lagging {lag_s:.1f} s behind (limit {self.lag_limit_s:g} s)")
            if self.unreported_drops:
                drops, self.unreported_drops = self.unreported_drops, 0
                await self._send(json.dumps({"type": "dropped", "dropped": drops, "dropped_total": self.dropped}))
            await self._send(text)
            self.sent += 1

    async def _send(self, text: str) -> None:
        try:
            await asyncio.wait_for(self.websocket.send_text(text), self.send_timeout_s)
        except TimeoutError:
            raise SubscriberGone(f"a send took longer than {self.send_timeout_s:g} s") from None

    def stats(self) -> dict:
        client = self.websocket.client
        return {
            "id": self.id, "client": f"{client.host}:{client.port}" if client else None,
            "filter": self.filter.describe(), "sent": self.sent, "dropped": self.dropped,
            "queued": len(self.queue), "queued_bytes": self.queued_bytes,
            "connected_at": datetime.fromtimestamp(self.connected_at, tz=UTC).isoformat(),
        }


class Broadcaster:
    """The subscribers of one simulation slot, and the fan-out of its frames to them."""

    def __init__(self, max_frames: int = 64, max_bytes: int = 16 * 2**20, send_timeout_s: float = 5.0,
                 lag_limit_s: float = 30.0, ping_interval_s: float = 1.0):
        self.settings = dict(max_frames=max_frames, max_bytes=max_bytes, send_timeout_s=send_timeout_s,
                             lag_limit_s=lag_limit_s, ping_interval_s=ping_interval_s)
        self.subscribers: dict[int, Subscriber] = {}
        self.disconnected_slow = 0

    def publish(self, frame: Frame) -> None:
        """Offer a frame to every subscriber (never waits); each distinct filter is encoded once."""
        now = time.monotonic()
        texts: dict[ReadingFilter, str | None] = {}
        for subscriber in self.subscribers.values():
            if subscriber.filter not in texts:
                texts[subscriber.filter] = frame.text(subscriber.filter)
            text = texts[subscriber.filter]
            if text is not None:
                subscriber.offer(text, now, getattr(frame, "droppable", True))

    async def serve(self, websocket: WebSocket, reading_filter: ReadingFilter, greeting: dict | None = None) -> None:
        """Run an accepted WebSocket until the client leaves or is too slow."""
        subscriber = Subscriber(websocket, reading_filter, **self.settings)
        if greeting is not None:
            subscriber.offer(json.dumps(greeting), time.monotonic(), droppable=False)
        self.subscribers[subscriber.id] = subscriber
        sender = asyncio.create_task(subscriber.send_loop(), name=f"ws-sender-{subscriber.id}")
        receiver = asyncio.create_task(_drain_client(websocket), name=f"ws-receiver-{subscriber.id}")
        try:
            done, _ = await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
            if sender in done and isinstance(sender.exception(), SubscriberGone):
                subscriber.closed_reason = str(sender.exception())
                self.disconnected_slow += 1
                log.info("disconnecting subscriber %s: %s", subscriber.id, subscriber.closed_reason)
                try:
                    await asyncio.wait_for(websocket.close(CLOSE_TOO_SLOW, subscriber.closed_reason[:120]), 1.0)
                except Exception:  # the client is gone or not reading: the server drops the connection
                    pass
        finally:
            self.subscribers.pop(subscriber.id, None)
            for task in (sender, receiver):
                task.cancel()
            await asyncio.gather(sender, receiver, return_exceptions=True)

    def stats(self) -> dict:
        return {"subscribers": [s.stats() for s in self.subscribers.values()],
                "disconnected_slow": self.disconnected_slow, **self.settings}


async def _drain_client(websocket: WebSocket) -> None:
    """Read (and ignore) what the client sends, so that its leaving is noticed."""
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
    except (WebSocketDisconnect, RuntimeError):
        return
