"""MQTT sink against Debian's mosquitto on 127.0.0.1 (tests/real_servers.py), read back by a real paho subscriber."""

import json
import shutil
import tempfile
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from tests.real_servers import MosquittoBroker, free_port, self_signed_certificates
from tests.sink_batches import simulate

from battsim.engine.world import Event
from battsim.sinks import MqttConfig, SinkConfigError, parse_sinks
from battsim.sinks.mqtt import HOMEASSISTANT_SENSORS, MqttSink
from battsim.sinks.payload import JarIds
from test_service_helpers import wait_until

FLEET, BATCHES = simulate(ticks=30)  # 24 jars, one tick a batch
SITE, STRING = FLEET.site_ids[0], FLEET.string_ids[0]


@pytest.fixture
def root():
    path = Path(tempfile.mkdtemp(prefix="battsim-mqtt-"))
    yield path
    shutil.rmtree(path)


@pytest.fixture
def broker(root):
    broker = MosquittoBroker(root)
    yield broker
    broker.stop()


class Subscriber:
    """A paho client that keeps every message it gets; a persistent session (fixed id, clean session off) at
    QoS 1, so the broker keeps its messages across a restart."""

    def __init__(self, port: int, topic: str = "battsim/#", client_id: str = "test-subscriber",
                 login: tuple[str, str] | None = None):
        self.messages: list[mqtt.MQTTMessage] = []
        self._lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
        self.client.reconnect_delay_set(0.05, 0.2)
        if login:
            self.client.username_pw_set(*login)
        self.client.on_connect = lambda client, *_: client.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = self._keep
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self.subscribed.wait(10)

    def _keep(self, client, userdata, message):
        with self._lock:
            self.messages.append(message)

    def on(self, topic: str) -> list:
        """What came on ``topic``: JSON decoded, the status topic's plain online/offline as text."""
        with self._lock:
            payloads = [m.payload for m in self.messages if m.topic == topic]
        return [p.decode() if p in (b"online", b"offline") else json.loads(p) for p in payloads]

    def readings(self) -> list[dict]:
        with self._lock:
            messages = [m for m in self.messages
                        if m.topic.count("/") >= 2 and not m.topic.endswith(("status", "alarms", "events"))]
        return [json.loads(m.payload) for m in messages]

    def stop(self):
        self.client.disconnect()
        self.client.loop_stop()


def sink(port: int, **settings) -> MqttSink:
    settings = {"reconnect_min_s": 0.05, "reconnect_max_s": 0.2, **settings}
    return MqttSink(MqttConfig(port=port, **settings), JarIds.of_fleet(FLEET))


def pairs(readings) -> set[tuple[str, int]]:
    return {(reading["battery_id"], reading["seq"]) for reading in readings}


def test_per_jar_topics_payloads_alarms_and_status(broker):
    subscriber = Subscriber(broker.port)
    publisher = sink(broker.port)
    wait_until(lambda: subscriber.on("battsim/status") == ["online"] or None)
    for batch in BATCHES[:3]:
        publisher.readings(batch)
    alarm = Event(int(BATCHES[2].columns["timestamp_us"][0]), "alarm_raised", SITE, STRING, FLEET.battery_ids[5],
                  {"rule": "high_temperature", "value": 41.5})
    publisher.event(alarm)
    publisher.close()
    wait_until(lambda: len(subscriber.readings()) >= 72 and subscriber.on("battsim/status")[-1:] == ["offline"])
    jar = FLEET.battery_ids[0]
    [first] = [m for m in subscriber.messages if m.topic == f"battsim/{SITE}/{STRING}/{jar}" and b'"seq":0' in m.payload]
    reading = json.loads(first.payload)
    assert reading["battery_id"] == jar and reading["string_id"] == STRING and reading["site_id"] == SITE
    assert {"voltage_v", "current_a", "temperature_c", "internal_resistance_mohm", "soh_pct", "soc_pct", "mode",
            "timestamp", "seq", "sent_at"} <= set(reading)
    assert pairs(subscriber.readings()) == {(battery, seq) for battery in FLEET.battery_ids for seq in range(3)}
    [raised] = subscriber.on("battsim/alarms")
    assert raised["kind"] == "alarm_raised" and raised["battery_id"] == FLEET.battery_ids[5] and raised["value"] == 41.5
    status = publisher.status()
    assert (status["kind"], status["state"], status["sent"], status["dropped"], status["queued"]) == (
        "mqtt", "stopped", 72, 0, 0)
    subscriber.stop()


def test_a_late_subscriber_sees_the_retained_status(broker):
    publisher = sink(broker.port, topic_prefix="fleet/a")
    wait_until(lambda: publisher.status()["state"] == "connected")
    late = Subscriber(broker.port, topic="fleet/a/status", client_id="late")
    wait_until(lambda: late.on("fleet/a/status") == ["online"] or None)
    publisher.close()
    late.stop()


def test_per_string_payloads_at_qos_0(broker):
    subscriber = Subscriber(broker.port)
    publisher = sink(broker.port, per="string", qos=0)
    wait_until(lambda: publisher.status()["state"] == "connected")
    for batch in BATCHES[:2]:
        publisher.readings(batch)
    publisher.close()
    wait_until(lambda: len(subscriber.on(f"battsim/{SITE}/{STRING}")) == 2)
    messages = subscriber.on(f"battsim/{SITE}/{STRING}")
    assert [len(message["readings"]) for message in messages] == [24, 24]
    assert [message["readings"][0]["seq"] for message in messages] == [0, 1]
    assert publisher.status()["sent"] == 48
    subscriber.stop()


def test_qos1_delivers_every_reading_across_a_broker_restart(broker):
    subscriber = Subscriber(broker.port)
    publisher = sink(broker.port)
    wait_until(lambda: publisher.status()["state"] == "connected")
    for batch in BATCHES[:10]:
        publisher.readings(batch)
    broker.stop()                          # mid-run: SIGTERM, sessions and queued messages saved
    wait_until(lambda: publisher.status()["state"] == "reconnecting")
    for batch in BATCHES[10:20]:           # published while the broker is down: kept by the client
        publisher.readings(batch)
    wait_until(lambda: publisher.status()["queued"] > 0)
    broker.start()                         # same port, persistence on
    for batch in BATCHES[20:]:
        publisher.readings(batch)
    publisher.close(timeout_s=60)
    expected = {(battery, seq) for battery in FLEET.battery_ids for seq in range(30)}
    wait_until(lambda: pairs(subscriber.readings()) >= expected, timeout=60)
    assert pairs(subscriber.readings()) == expected   # every seq of every jar at least once
    status = publisher.status()
    assert (status["sent"], status["dropped"]) == (720, 0)
    assert status["retried"] >= 240        # at least the ten ticks buffered while the broker was down
    subscriber.stop()


def test_a_tiny_buffer_drops_and_counts_while_the_broker_is_down(root):
    broker = MosquittoBroker(root)
    broker.stop()                                       # not there yet
    publisher = sink(broker.port, buffer_messages=10)
    for batch in BATCHES[:2]:                            # 48 messages, room for 10
        publisher.readings(batch)
    wait_until(lambda: publisher.status()["dropped"] == 38)
    broker.start()
    subscriber = Subscriber(broker.port, client_id="after")
    wait_until(lambda: publisher.status()["state"] == "connected")
    publisher.close(timeout_s=30)
    status = publisher.status()
    assert (status["sent"], status["dropped"]) == (10, 38)
    broker.stop()
    subscriber.stop()


def test_a_back_fill_waits_for_room_in_the_buffer_instead_of_dropping(broker):
    subscriber = Subscriber(broker.port)
    publisher = MqttSink(MqttConfig(port=broker.port, buffer_messages=10), JarIds.of_fleet(FLEET), wait=True)
    wait_until(lambda: publisher.status()["state"] == "connected")
    for batch in BATCHES[:5]:                            # 120 messages through room for 10
        publisher.readings(batch)
    publisher.close(timeout_s=30)
    assert (publisher.status()["sent"], publisher.status()["dropped"]) == (120, 0)
    wait_until(lambda: len(subscriber.readings()) == 120)
    subscriber.stop()


def test_username_password_and_a_refused_login(root):
    broker = MosquittoBroker(root, users={"battsim": "s3cret", "reader": "r"})
    try:
        refused = sink(broker.port, username="battsim", password="wrong", client_id="refused")
        wait_until(lambda: (refused.status()["last_error"] or "").startswith("connect refused"))
        assert refused.status()["state"] == "connecting"
        refused.close(timeout_s=1)
        subscriber = Subscriber(broker.port, client_id="reader", login=("reader", "r"))
        accepted = sink(broker.port, username="battsim", password="s3cret")
        wait_until(lambda: accepted.status()["state"] == "connected")
        accepted.readings(BATCHES[0])
        accepted.close()
        assert accepted.status()["sent"] == 24
        wait_until(lambda: len(subscriber.readings()) == 24)
        subscriber.stop()
    finally:
        broker.stop()


def test_tls_with_a_self_signed_ca(root):
    ca, cert, key = self_signed_certificates(root)
    broker = MosquittoBroker(root, tls=(ca, cert, key))
    try:
        subscriber = Subscriber(broker.port)
        [config] = parse_sinks({"sink": [{"kind": "mqtt", "url": f"mqtts://127.0.0.1:{broker.tls_port}",
                                          "ca_file": str(ca), "reconnect_min_s": 0.05, "reconnect_max_s": 0.2}]})
        publisher = MqttSink(config, JarIds.of_fleet(FLEET))
        wait_until(lambda: publisher.status()["state"] == "connected")
        publisher.readings(BATCHES[0])
        publisher.close()
        wait_until(lambda: len(subscriber.readings()) == 24)
        subscriber.stop()
    finally:
        broker.stop()


def test_home_assistant_discovery(broker):
    subscriber = Subscriber(broker.port, topic="homeassistant/#", client_id="ha")
    publisher = sink(broker.port, homeassistant=True)
    publisher.close()
    wait_until(lambda: len(subscriber.messages) == 24 * len(HOMEASSISTANT_SENSORS))
    jar = FLEET.battery_ids[0]
    [voltage] = subscriber.on(f"homeassistant/sensor/battsim_{jar}_voltage_v/config")
    assert voltage["state_topic"] == f"battsim/{SITE}/{STRING}/{jar}"
    assert voltage["value_template"] == "{{ value_json.voltage_v }}" and voltage["unit_of_measurement"] == "V"
    assert voltage["availability_topic"] == "battsim/status"
    late = Subscriber(broker.port, topic="homeassistant/#", client_id="ha-late")   # retained: a new one gets them
    wait_until(lambda: len(late.messages) == 24 * len(HOMEASSISTANT_SENSORS))
    assert all(message.retain for message in late.messages)
    subscriber.stop()
    late.stop()


def test_no_broker_delays_nothing():
    publisher = sink(free_port(), qos=0)
    for batch in BATCHES:
        publisher.readings(batch)          # returns at once: QoS 0 with no connection is dropped and counted
    wait_until(lambda: publisher.status()["dropped"] == 720)
    publisher.close(timeout_s=1)


@pytest.mark.parametrize(("section", "message"), [
    ({"url": "http://h"}, "sink[0]: 'url' must be a mqtt:// or mqtts:// URL"),
    ({"url": "mqtt://h:99999"}, "sink[0]: 'url' has a bad port"),
    ({"url": "mqtt://h?retain=1"}, "'url' query may set qos or per, not 'retain'"),
    ({"qos": 2}, "'qos' must be one of 0, 1, got 2"),
    ({"per": "site"}, "'per' must be one of jar, string, got 'site'"),
    ({"topic_prefix": "a/#"}, "'topic_prefix' must be a topic without wildcards"),
    ({"topic_prefix": "/a"}, "'topic_prefix' must be a topic without wildcards"),
    ({"password": "x"}, "'password' needs a 'username'"),
    ({"ca_file": "/nonexistent.pem", "tls": True}, "'ca_file' '/nonexistent.pem' is not a readable file"),
    ({"ca_file": "/etc/hostname", "tls": True}, "'ca_file' '/etc/hostname' is not a PEM CA certificate"),
    ({"cert_file": "/etc/hostname", "tls": True}, "'cert_file' and 'key_file' go together"),
    ({"ca_file": "/etc/ssl/certs/ca-certificates.crt", "tls": False}, "need 'tls = true'"),
    ({"homeassistant": True, "per": "string"}, "'homeassistant' discovery needs per = \"jar\""),
    ({"buffer_messages": 70_000}, "'buffer_messages' must be at most 60000"),
    ({"reconnect_min_s": 5, "reconnect_max_s": 1}, "'reconnect_max_s' must be at least 'reconnect_min_s'"),
    ({"keepalive_s": 1}, "'keepalive_s' must be at least 5"),
    ({"retain": True}, "unknown field 'retain' for kind 'mqtt'"),
])
def test_bad_mqtt_sections_name_the_field(section, message):
    with pytest.raises(SinkConfigError) as error:
        parse_sinks({"sink": [{"kind": "mqtt", **section}]})
    assert message in str(error.value)


def test_mqtt_url_fields():
    [config] = parse_sinks({"sink": [{"kind": "mqtt", "url": "mqtt://user:p%40ss@10.0.0.5:1884/site/a?qos=0&per=string",
                                      "keepalive_s": 60}]})
    assert (config.host, config.port, config.username, config.password, config.topic_prefix, config.qos, config.per,
            config.tls, config.keepalive_s) == ("10.0.0.5", 1884, "user", "p@ss", "site/a", 0, "string", False, 60)
