"""Webhook sink and [[sink]] parsing against a real HTTP server on 127.0.0.1."""

import json
import tomllib
from datetime import datetime

import pytest
from tests.real_servers import WebhookServer
from tests.sink_batches import simulate

from battsim.service.broadcast import WIRE_NUMBERS, ReadingFilter, TelemetryEncoder
from battsim.sinks import SinkConfigError, WebhookConfig, parse_sinks
from battsim.sinks.payload import JarIds
from battsim.sinks.webhook import WebhookSink


@pytest.fixture
def server():
    server = WebhookServer()
    yield server
    server.stop()


FLEET, BATCHES = simulate(ticks=4)  # 24 jars, one tick a batch


def sink(config: WebhookConfig) -> WebhookSink:
    return WebhookSink(config, JarIds.of_fleet(FLEET))


def test_rows_are_the_websocket_readings_plus_seq_and_sent_at(server):
    webhook = sink(WebhookConfig(url=server.url, batch_rows=10, gzip=True, bearer_token="s3cret"))
    for batch in BATCHES:
        webhook.readings(batch)
    webhook.close()
    rows = server.rows()
    assert [(row["seq"], row["battery_id"]) for row in rows] == [
        (tick, battery) for tick in range(4) for battery in FLEET.battery_ids]
    assert [len(body["readings"]) for body in server.received] == [10, 10, 4] * 4
    assert all(headers["Authorization"] == "Bearer s3cret" for headers in server.headers)
    assert all(headers["Content-Encoding"] == "gzip" for headers in server.headers)
    encoder = TelemetryEncoder(FLEET)
    for batch in BATCHES:
        frame = json.loads(encoder.tick(batch.first_tick, batch.columns, slice(0, FLEET.size)).text(ReadingFilter()))
        sent = [row for row in rows if row["seq"] == frame["seq"]]
        assert [{key: value for key, value in row.items() if key not in ("seq", "sent_at")} for row in sent] == frame["data"]
    assert {name for name, _ in WIRE_NUMBERS} <= set(rows[0])
    assert datetime.fromisoformat(rows[0]["sent_at"]).tzinfo is not None
    assert webhook.status() | {"last_error": None} == {
        "kind": "webhook", "name": "webhook", "state": "stopped", "last_error": None, "queued": 0, "sent": 96,
        "retried": 0, "dropped": 0}


def test_failing_endpoint_is_retried_then_counted(server):
    server.fail_next = 2
    webhook = sink(WebhookConfig(url=server.url, batch_rows=24, max_retries=3, backoff_s=0.01))
    webhook.readings(BATCHES[0])
    webhook.close()
    assert len(server.rows()) == 24
    status = webhook.status()
    assert (status["sent"], status["retried"], status["dropped"]) == (24, 2, 0)
    assert "500" in status["last_error"]


def test_endpoint_that_never_recovers_drops_and_counts(server):
    server.fail_next = 100
    webhook = sink(WebhookConfig(url=server.url, batch_rows=12, max_retries=1, backoff_s=0.01))
    webhook.readings(BATCHES[0])
    webhook.close()
    assert server.rows() == []
    status = webhook.status()
    assert (status["sent"], status["retried"], status["dropped"]) == (0, 2, 24)


def test_stalled_endpoint_never_blocks_the_sender_and_bounds_the_queue(server):
    server.release.clear()
    webhook = sink(WebhookConfig(url=server.url, batch_rows=24, queue_batches=2, timeout_s=30))
    webhook.readings(BATCHES[0])
    assert server.stalled.wait(10)          # the worker is stuck inside a POST ...
    for batch in BATCHES[1:]:
        webhook.readings(batch)             # ... and readings still returns, dropping the oldest queued batch
    status = webhook.status()
    assert status["queued"] == 48 and status["dropped"] == 24
    server.release.set()
    webhook.close()
    assert sorted({row["seq"] for row in server.rows()}) == [0, 2, 3]   # the one in flight, then the newest two
    status = webhook.status()
    assert (status["sent"], status["dropped"]) == (72, 24)


def test_a_back_fill_waits_for_room_instead_of_dropping(server):
    server.release.clear()
    webhook = WebhookSink(WebhookConfig(url=server.url, batch_rows=24, queue_batches=1, timeout_s=30),
                          JarIds.of_fleet(FLEET), wait=True)
    webhook.readings(BATCHES[0])
    assert server.stalled.wait(10)
    webhook.readings(BATCHES[1])            # room for one waiting batch
    server.release.set()                    # the next hand-over waits until the worker takes it
    for batch in BATCHES[2:]:
        webhook.readings(batch)
    webhook.close()
    assert sorted({row["seq"] for row in server.rows()}) == [0, 1, 2, 3]
    assert webhook.status()["dropped"] == 0


def test_a_back_fill_is_delivered_whole_however_long_the_close_takes(server):
    server.fail_next = 3                    # each failure costs a backoff, far past the close's timeout
    webhook = WebhookSink(WebhookConfig(url=server.url, batch_rows=24, max_retries=3, backoff_s=0.2),
                          JarIds.of_fleet(FLEET), wait=True)
    for batch in BATCHES:
        webhook.readings(batch)
    webhook.close(timeout_s=0.01)
    assert sorted({row["seq"] for row in server.rows()}) == [0, 1, 2, 3]
    assert (webhook.status()["sent"], webhook.status()["dropped"]) == (96, 0)


def parse(text: str):
    return parse_sinks(tomllib.loads(text))


def test_sink_file_sections_parse():
    [config] = parse('[[sink]]\nkind = "webhook"\nurl = "http://127.0.0.1:9/x"\ngzip = true\nbatch_rows = 50\n'
                     'timeout_s = 2\n')
    assert config == WebhookConfig(url="http://127.0.0.1:9/x", gzip=True, batch_rows=50, timeout_s=2)


@pytest.mark.parametrize(("text", "message"), [
    ('[[sink]]\nkind = "kafka"\n', "sink[0]: 'kind' must be one of mqtt, postgres, webhook, got 'kafka'"),
    ('[[sink]]\nkind = "webhook"\n', "sink[0]: 'url' is required"),
    ('[[sink]]\nkind = "webhook"\nurl = "ftp://x"\n', "sink[0]: 'url' must be a http:// or https:// URL"),
    ('[[sink]]\nkind = "webhook"\nurl = "http://x"\nbatch_rows = 0\n', "'batch_rows' must be at least 1, got 0"),
    ('[[sink]]\nkind = "webhook"\nurl = "http://x"\nbatch_rows = true\n', "'batch_rows' must be an integer, not a boolean"),
    ('[[sink]]\nkind = "webhook"\nurl = "http://x"\ngzip = "yes"\n', "'gzip' must be true or false"),
    ('[[sink]]\nkind = "webhook"\nurl = "http://x"\ntimeout_s = "5"\n', "'timeout_s' must be a number, got '5'"),
    ('[[sink]]\nkind = "webhook"\nurl = "http://x"\nbatchrows = 5\n', "sink[0]: unknown field 'batchrows'"),
    ('[[sink]]\nkind = "webhook"\nurl = "http://x"\n[[sink]]\nkind = "webhook"\nurl = 5\n',
     "sink[1]: 'url' must be a string, got 5"),
    ('[sink]\nkind = "webhook"\n', "write [[sink]], not [sink]"),
])
def test_bad_sections_name_the_field(text, message):
    with pytest.raises(SinkConfigError) as error:
        parse(text)
    assert message in str(error.value)


def test_two_sinks_of_a_kind_get_distinct_names():
    configs = parse('[[sink]]\nkind = "webhook"\nurl = "http://a"\n[[sink]]\nkind = "webhook"\nurl = "http://b"\n')
    assert [config.name for config in configs] == ["webhook", "webhook-2"]
