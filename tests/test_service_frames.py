"""Telemetry frame encoding and per-subscriber queues, without a network."""

from __future__ import annotations

import asyncio
import json
import time

import numpy as np
import pytest

from battsim.engine.battery import Mode
from battsim.engine.fleet import FleetSpec, JarSpec, SiteSpec, build_fleet, get_preset
from battsim.engine.readings import ReadingBuffer
from battsim.service.broadcast import AlertFrame, ReadingFilter, Subscriber, SubscriberGone, TelemetryEncoder
from test_service_helpers import WAIT_S


def two_site_fleet():
    spec = FleetSpec(sites=[SiteSpec(site_id="A", jars=[JarSpec(battery_id="A1"), JarSpec(battery_id="A2")]),
                            SiteSpec(site_id="B", jars=[JarSpec(battery_id="B1")])])
    return build_fleet(spec, seed=1)


def one_tick(values: dict, size: int, timestamp_us: int = 1_775_000_000_000_000):
    buffer = ReadingBuffer(size, 1)
    for name, view in ((n, buffer.tick_view(n)) for n in buffer.columns):
        view[:] = values.get(name, 0)
    buffer.tick_view("timestamp_us")[:] = timestamp_us
    buffer.commit_tick()
    return buffer.take().columns


def test_a_frame_is_json_with_the_original_fields_rounded_and_missing_values_null():
    fleet = two_site_fleet()
    columns = one_tick({
        "voltage_v": np.array([13.6419, np.nan, 12.0], np.float32),
        "current_a": np.array([-34.12345, 0.0284, 1.5], np.float32),
        "temperature_c": np.array([24.349, np.nan, 31.0], np.float32),
        "internal_resistance_mohm": np.array([3.91, 4.0, 4.2], np.float32),
        "soh_pct": np.array([96.8, 80.0, 79.96], np.float32),
        "soc_pct": np.array([99.996, 50.0, 1.0], np.float32),
        "ambient_c": np.array([24.0, 24.0, 30.5], np.float32),
        "mode": np.array([Mode.DISCHARGE, Mode.FLOAT, Mode.BOOST], np.uint8),
    }, fleet.size)
    frame = TelemetryEncoder(fleet).tick(41, columns, slice(0, fleet.size))
    message = json.loads(frame.text(ReadingFilter()))
    assert (message["type"], message["seq"], message["sim_time"]) == ("telemetry", 41, "2026-03-31T23:33:20+00:00")
    first, second, third = message["data"]
    assert first == {"battery_id": "A1", "site_id": "A", "string_id": "A_SYS01_STR01",
                     "timestamp": "2026-03-31T23:33:20+00:00", "voltage_v": 13.642, "current_a": -34.123,
                     "temperature_c": 24.35, "internal_resistance_mohm": 3.91, "soh_pct": 96.8, "mode": "discharge",
                     "soc_pct": 100.0, "ambient_c": 24.0}
    assert second["voltage_v"] is None and second["temperature_c"] is None and second["mode"] == "float"
    assert third["mode"] == "boost" and third["soh_pct"] == 79.96 and third["string_id"] == "B_SYS01_STR01"


def test_filters_combine_ids_of_a_kind_with_or_and_kinds_with_and():
    fleet = two_site_fleet()
    frame = TelemetryEncoder(fleet).tick(0, one_tick({}, fleet.size), slice(0, fleet.size))

    def ids(**kinds):
        chosen = ReadingFilter(**{name: frozenset(values) for name, values in kinds.items()})
        return [reading["battery_id"] for reading in json.loads(frame.text(chosen))["data"]]

    assert ids(battery_ids={"A2", "B1"}) == ["A2", "B1"]
    assert ids(site_ids={"A"}) == ["A1", "A2"]
    assert ids(site_ids={"A"}, battery_ids={"A2", "B1"}) == ["A2"]
    assert ids(string_ids={"B_SYS01_STR01"}) == ["B1"]
    assert ReadingFilter(battery_ids=frozenset({"Z9"}), site_ids=frozenset({"A"})).unknown_ids(fleet) == ["Z9"]


def test_the_full_fleet_frame_has_every_jar_once():
    fleet = build_fleet(get_preset("thailand-full"), seed=0)
    columns = one_tick({"voltage_v": np.full(fleet.size, 13.5, np.float32)}, fleet.size)
    data = json.loads(TelemetryEncoder(fleet).tick(0, columns, slice(0, fleet.size)).text(ReadingFilter()))["data"]
    assert [reading["battery_id"] for reading in data] == fleet.battery_ids


def test_alerts_reach_only_subscribers_whose_filter_keeps_the_jar():
    fleet = two_site_fleet()
    frame = AlertFrame(TelemetryEncoder(fleet), 3, "t", np.array([2]), [{"battery_id": "B1", "rule": "low_soh"}])
    assert frame.text(ReadingFilter(site_ids=frozenset({"A"}))) is None
    assert json.loads(frame.text(ReadingFilter(battery_ids=frozenset({"B1"}))))["data"][0]["rule"] == "low_soh"


class NoSocket:
    client = None


def test_a_full_queue_drops_its_oldest_frames_and_counts_them():
    subscriber = Subscriber(NoSocket(), ReadingFilter(), max_frames=3, max_bytes=10_000, send_timeout_s=1,
                            lag_limit_s=1, ping_interval_s=1)
    for seq in range(5):
        subscriber.offer(f"frame {seq}", published_at=0.0)
    assert [text for text, _, _ in subscriber.queue] == ["frame 2", "frame 3", "frame 4"]
    assert (subscriber.dropped, subscriber.unreported_drops) == (2, 2)
    # Alerts and status messages are kept: telemetry makes room for them.
    subscriber.offer("alert", 0.0, droppable=False)
    subscriber.offer("frame 5", 0.0)
    assert [text for text, _, _ in subscriber.queue] == ["frame 4", "alert", "frame 5"]
    # The byte bound too, but the newest frame always stays.
    subscriber = Subscriber(NoSocket(), ReadingFilter(), max_frames=100, max_bytes=10, send_timeout_s=1,
                            lag_limit_s=1, ping_interval_s=1)
    subscriber.offer("x" * 8, 0.0)
    subscriber.offer("y" * 20, 0.0)
    assert [text for text, _, _ in subscriber.queue] == ["y" * 20] and subscriber.dropped == 1


class RecordingSocket:
    """A WebSocket stand-in: records what is sent, or never finishes a send when ``stuck``."""

    client = None

    def __init__(self, stuck: bool = False):
        self.sent, self.stuck = [], stuck

    async def send_text(self, text: str) -> None:
        if self.stuck:
            await asyncio.Event().wait()
        self.sent.append(text)


def run_sender(subscriber: Subscriber) -> str:
    async def go():
        with pytest.raises(SubscriberGone) as gone:
            await asyncio.wait_for(subscriber.send_loop(), WAIT_S)
        return str(gone.value)
    return asyncio.run(go())


def test_a_subscriber_is_cut_off_when_its_next_frame_is_older_than_the_lag_limit():
    socket = RecordingSocket()
    subscriber = Subscriber(socket, ReadingFilter(), max_frames=10, max_bytes=10_000, send_timeout_s=WAIT_S,
                            lag_limit_s=5.0, ping_interval_s=WAIT_S)
    subscriber.offer("fresh", time.monotonic() + 3600)
    subscriber.offer("stale", time.monotonic() - 60)
    assert "lagging" in run_sender(subscriber)
    assert socket.sent == ["fresh"]


def test_a_send_that_never_completes_cuts_the_subscriber_off():
    subscriber = Subscriber(RecordingSocket(stuck=True), ReadingFilter(), max_frames=10, max_bytes=10_000,
                            send_timeout_s=0.05, lag_limit_s=WAIT_S, ping_interval_s=WAIT_S)
    subscriber.offer("frame", time.monotonic())
    assert "took longer than" in run_sender(subscriber)


def test_drops_are_reported_before_the_next_frame():
    socket = RecordingSocket()
    subscriber = Subscriber(socket, ReadingFilter(), max_frames=2, max_bytes=10_000, send_timeout_s=WAIT_S,
                            lag_limit_s=WAIT_S, ping_interval_s=WAIT_S)
    for seq in range(5):
        subscriber.offer(f"frame {seq}", time.monotonic())
    subscriber.offer("stale", time.monotonic() - 2 * WAIT_S)  # ends the loop once the rest is sent
    run_sender(subscriber)
    assert socket.sent[0] == '{"type": "dropped", "dropped": 4, "dropped_total": 4}'
    assert socket.sent[1:] == ["frame 4"]
