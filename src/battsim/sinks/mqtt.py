"""MQTT (paho-mqtt 2.x): readings as JSON on ``<prefix>/<site>/<string>/<jar>`` (or one message per string per tick
on ``<prefix>/<site>/<string>``), alarms on ``<prefix>/alarms``, other events on ``<prefix>/events``, and a
retained ``<prefix>/status`` that says ``online``, or ``offline`` (the last will, if the connection drops).

Delivery: the simulation's thread hands a batch to the sink's worker, which encodes it and hands the messages
to paho's client. The client keeps every QoS 1 message until the broker acknowledges it and sends it again after
a reconnect (with backoff), with a persistent session (a fixed client id, clean session off), so QoS 1 is
at-least-once across a broker restart. Its buffer is bounded (``buffer_messages``): a message that does not fit
is dropped and counted (a batch run's back-fill waits for room instead, while connected), as is a QoS 0
message published while disconnected.

Counters are in readings: ``sent`` acknowledged (QoS 1) or written (QoS 0), ``queued`` waiting on the worker or
in the client, ``dropped``, ``retried`` the readings the client had outstanding when it reconnected."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime

import numpy as np
import paho.mqtt.client as mqtt

from battsim.engine.readings import ReadingBatch
from battsim.engine.world import Event
from battsim.sinks.config import MqttConfig
from battsim.sinks.payload import JarIds, JsonRows
from battsim.sinks.worker import SinkWorker
from battsim.wire import iso_utc

# QoS 1 messages on the wire unacknowledged: no limit (the buffer bounds them). With a limit, paho scans its whole
# queue on every acknowledgement: 6,000 acknowledged messages/s with 1,000 in flight, 12,000 with its default 20,
# 22,000 with none (paho 2.2 and mosquitto 2.0 on 127.0.0.1, 20,000 messages, 2 loaded cores).
MAX_INFLIGHT = 0
# Home Assistant sensors of a jar: (reading field, name, unit, device class).
HOMEASSISTANT_SENSORS = (
    ("voltage_v", "voltage", "V", "voltage"), ("current_a", "current", "A", "current"),
    ("temperature_c", "temperature", "°C", "temperature"), ("internal_resistance_mohm", "internal resistance",
                                                             "mΩ", None),
    ("soc_pct", "state of charge", "%", "battery"), ("soh_pct", "state of health", "%", None),
)


def topic_level(name: str) -> str:
    """An id as one topic level: MQTT's separators and wildcards replaced."""
    return name.replace("/", "_").replace("+", "_").replace("#", "_")


class MqttSink:
    """A Sink publishing to one broker; see the module's docstring for topics, payloads and delivery."""

    kind = "mqtt"

    def __init__(self, config: MqttConfig, ids: JarIds, wait: bool = False):
        self.config = config
        self.ids = ids
        self._rows = JsonRows(ids)
        self._topics_of: tuple | None = None
        self._topics = np.empty(0, dtype=object)
        prefix = config.topic_prefix
        self.status_topic, self.alarm_topic, self.event_topic = f"{prefix}/status", f"{prefix}/alarms", f"{prefix}/events"
        self._lock = threading.Lock()
        self._pending: dict[int, int] = {}  # message id → readings, until acknowledged
        self._pending_rows = 0
        self._early: set[int] = set()  # acknowledged before publish() had returned its id
        self._own: set[int] = set()  # the status messages' ids: not readings
        self.sent = self.dropped = self.retried = 0
        self.state = "connecting"
        self.last_error: str | None = None
        self._connected_once = False
        self._connected = threading.Event()
        self.client = self._client()
        self.worker = SinkWorker(config.name, self._deliver, self._rows_in, capacity=config.queue_batches,
                                 max_retries=0, backoff_s=0, wait=wait)
        if config.homeassistant:
            self.worker.put(("discovery", None))
        self.client.connect_async(config.host, config.port, keepalive=config.keepalive_s)
        self.client.loop_start()

    def _client(self) -> mqtt.Client:
        config = self.config
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311, clean_session=False,
                             client_id=config.client_id or f"battsim-{topic_level(config.topic_prefix)}")
        if config.username is not None:
            client.username_pw_set(config.username, config.password)
        if config.tls:
            client.tls_set(ca_certs=config.ca_file, certfile=config.cert_file, keyfile=config.key_file)
        client.will_set(self.status_topic, "offline", qos=1, retain=True)
        client.reconnect_delay_set(config.reconnect_min_s, config.reconnect_max_s)
        client.max_inflight_messages_set(MAX_INFLIGHT)
        client.max_queued_messages_set(config.buffer_messages)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        return client

    # ---------------------------------------------------------------------------- the simulation's thread
    def readings(self, batch: ReadingBatch) -> None:
        self.worker.put(("readings", batch))

    def event(self, event: Event) -> None:
        self.ids.learn(event)
        self.worker.put(("event", event))

    def status(self) -> dict:
        worker = self.worker.status()
        with self._lock:
            return {"kind": self.kind, "name": self.config.name, "state": self.state, "last_error": self.last_error,
                    "queued": worker["queued"] + self._pending_rows, "sent": self.sent, "retried": self.retried,
                    "dropped": worker["dropped"] + self.dropped}

    def close(self, timeout_s: float = 10.0) -> None:
        """Publish what is queued, wait (up to ``timeout_s``, also for a reconnect; a back-fill as long as the broker
        is connected) for the broker's acknowledgements, say offline; what was never acknowledged is counted as
        dropped."""
        self.worker.close(timeout_s)
        deadline = time.monotonic() + timeout_s
        # Connected or not: it may reconnect meanwhile. A back-fill waits as long as the broker is acknowledging.
        while self._pending and (time.monotonic() < deadline or (self.worker.wait and self._connected.is_set())):
            time.sleep(0.01)
        if self._connected.is_set():
            with self._lock:  # its acknowledgement may come before publish() returns: keep it out of the counts
                offline = self.client.publish(self.status_topic, "offline", qos=1, retain=True)
            offline.wait_for_publish(max(0.1, deadline - time.monotonic()))
        self.client.disconnect()
        self.client.loop_stop()
        with self._lock:
            self.dropped += self._pending_rows  # never acknowledged
            self._pending.clear()
            self._pending_rows = 0
            self.state = "stopped"

    # ---------------------------------------------------------------------------- the worker's thread
    @staticmethod
    def _rows_in(item) -> int:
        kind, value = item
        return value.rows if kind == "readings" else 0

    def _deliver(self, item) -> None:
        kind, value = item
        if kind == "readings":
            self._publish_readings(value)
        elif kind == "event":
            self._publish_event(value)
        else:
            self._publish_discovery()

    def _publish(self, topic: str, payload: str, readings: int, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=self.config.qos, retain=retain)
        # A back-fill waits for room while the broker is acknowledging (live drops: fresh data first).
        while info.rc == mqtt.MQTT_ERR_QUEUE_SIZE and self.worker.wait and self._connected.is_set():
            time.sleep(0.001)
            info = self.client.publish(topic, payload, qos=self.config.qos, retain=retain)
        with self._lock:
            if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE or (info.rc == mqtt.MQTT_ERR_NO_CONN and self.config.qos == 0):
                self.dropped += readings  # the client's buffer is full, or QoS 0 with no connection
            elif info.mid in self._early:
                self._early.discard(info.mid)
                self.sent += readings
            else:
                self._pending[info.mid] = readings
                self._pending_rows += readings

    def _jar_topics(self) -> np.ndarray:
        table = self.ids.table
        if self._topics_of is not table:
            prefix = self.config.topic_prefix
            self._topics = np.array([f"{prefix}/{topic_level(site)}/{topic_level(string)}/{topic_level(battery)}"
                                     for battery, site, string in zip(*table, strict=True)], dtype=object)
            self._topics_of = table
        return self._topics

    def _publish_readings(self, batch: ReadingBatch) -> None:
        for topic, payload, readings in self.messages(batch, datetime.now(UTC).isoformat()):
            self._publish(topic, payload, readings)

    def messages(self, batch: ReadingBatch, sent_at: str) -> list[tuple[str, str, int]]:
        """(topic, JSON payload, readings in it) of a batch: a message per jar per tick, or per string per tick."""
        rows = self._rows.rows(batch, sent_at)
        keys = batch.columns["battery_key"]
        if self.config.per == "jar":
            return list(zip(self._jar_topics()[keys].tolist(), rows.tolist(), [1] * len(rows), strict=True))
        _, site_ids, string_ids = self.ids.table
        strings = np.array(string_ids, dtype=object)[keys]
        stamps = batch.columns["timestamp_us"]
        # A string's jars are contiguous in a tick: a message starts where the string or the tick changes.
        starts = np.flatnonzero(np.r_[True, (strings[1:] != strings[:-1]) | (stamps[1:] != stamps[:-1])])
        ends = np.r_[starts[1:], len(keys)]
        prefix = self.config.topic_prefix
        messages = []
        for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
            key = int(keys[start])
            site, string = site_ids[key], string_ids[key]
            payload = (f'{{"site_id":{json.dumps(site)},"string_id":{json.dumps(string)},'
                       f'"timestamp":"{iso_utc(int(stamps[start]))}","readings":[' + ",".join(rows[start:end]) + "]}")
            messages.append((f"{prefix}/{topic_level(site)}/{topic_level(string)}", payload, end - start))
        return messages

    def _publish_event(self, event: Event) -> None:
        payload = json.dumps({"kind": event.kind, "timestamp": iso_utc(event.timestamp_us), "site_id": event.site_id,
                              "string_id": event.string_id, "battery_id": event.battery_id, **event.detail,
                              "sent_at": datetime.now(UTC).isoformat()}, default=str)
        self._publish(self.alarm_topic if event.kind.startswith("alarm_") else self.event_topic, payload, 0)

    def _publish_discovery(self) -> None:
        """Home Assistant MQTT discovery: a retained config per jar and reading, a device per jar."""
        battery_ids, site_ids, string_ids = self.ids.table
        topics = self._jar_topics()
        for key, battery in enumerate(battery_ids):
            device = {"identifiers": [f"battsim_{battery}"], "name": battery, "manufacturer": "battsim",
                      "model": f"{site_ids[key]} {string_ids[key]}"}
            for field, name, unit, device_class in HOMEASSISTANT_SENSORS:
                unique = topic_level(f"battsim_{battery}_{field}")
                config = {"name": name, "unique_id": unique, "state_topic": topics[key],
                          "value_template": f"{{{{ value_json.{field} }}}}", "unit_of_measurement": unit,
                          "state_class": "measurement", "availability_topic": self.status_topic, "device": device,
                          **({"device_class": device_class} if device_class else {})}
                self._publish(f"{self.config.discovery_prefix}/sensor/{unique}/config", json.dumps(config), 0,
                              retain=True)

    # ---------------------------------------------------------------------------- paho's network thread
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            with self._lock:
                self.state, self.last_error = "connecting", f"connect refused: {reason_code}"
            return
        online = client.publish(self.status_topic, "online", qos=1, retain=True)
        with self._lock:
            self._own.add(online.mid)  # acknowledged on this thread, so never before this line
            if self._connected_once:
                self.retried += self._pending_rows  # the client sends these again now
            self._connected_once = True
            self.state = "connected"
        self._connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._connected.clear()
        with self._lock:
            if self.state == "connected":  # not a refused connect: that one's reason is the error to keep
                self.state = "reconnecting"
                if reason_code.is_failure:
                    self.last_error = f"disconnected: {reason_code}"

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        with self._lock:
            if mid in self._own:
                self._own.discard(mid)
                return
            readings = self._pending.pop(mid, None)
            if readings is None:
                self._early.add(mid)  # publish() on the worker has not returned yet
            else:
                self._pending_rows -= readings
                self.sent += readings
