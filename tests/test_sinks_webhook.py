"""Webhook sink and [[sink]] parsing against a real HTTP server on 127.0.0.1."""

import tomllib

import pytest
from tests.real_servers import WebhookServer

from battsim.sinks import SinkConfigError, WebhookConfig, parse_sinks
from battsim.sinks.webhook import WebhookSink


@pytest.fixture
def server():
    server = WebhookServer()
    yield server
    server.stop()


def readings(count: int) -> list[dict]:
    return [{"seq": index, "battery_id": f"B{index % 24:02d}", "voltage_v": 13.5} for index in range(count)]


def test_batches_gzip_and_bearer_token_arrive(server):
    sink = WebhookSink(WebhookConfig(url=server.url, batch_rows=10, gzip=True, bearer_token="s3cret"))
    sink.send(readings(25))
    sink.close()
    assert [row["seq"] for row in server.rows()] == list(range(25))
    assert [len(body["readings"]) for body in server.received] == [10, 10, 5]
    assert all(headers["Authorization"] == "Bearer s3cret" for headers in server.headers)
    assert sink.worker.status() | {"last_error": None} == {
        "name": "webhook", "state": "stopped", "last_error": None, "queued": 0, "sent": 25, "retried": 0, "dropped": 0}


def test_failing_endpoint_is_retried_then_counted(server):
    server.fail_next = 2
    sink = WebhookSink(WebhookConfig(url=server.url, batch_rows=5, max_retries=3, backoff_s=0.01))
    sink.send(readings(5))
    sink.close()
    assert len(server.rows()) == 5
    status = sink.worker.status()
    assert (status["sent"], status["retried"], status["dropped"]) == (5, 2, 0)
    assert "500" in status["last_error"]


def test_endpoint_that_never_recovers_drops_and_counts(server):
    server.fail_next = 100
    sink = WebhookSink(WebhookConfig(url=server.url, batch_rows=5, max_retries=1, backoff_s=0.01))
    sink.send(readings(10))
    sink.close()
    assert server.rows() == []
    status = sink.worker.status()
    assert (status["sent"], status["retried"], status["dropped"]) == (0, 2, 10)


def test_stalled_endpoint_never_blocks_the_sender_and_bounds_the_queue(server):
    server.release.clear()
    sink = WebhookSink(WebhookConfig(url=server.url, batch_rows=1, queue_batches=3, timeout_s=30))
    sink.send(readings(1))
    assert server.stalled.wait(10)          # the worker is stuck inside a POST ...
    sink.send(readings(10))                 # ... and send still returns, dropping the oldest queued batches
    status = sink.worker.status()
    assert status["queued"] == 3 and status["dropped"] == 7
    server.release.set()
    sink.close()
    assert [row["seq"] for row in server.rows()] == [0, 7, 8, 9]   # the one in flight, then the newest three
    status = sink.worker.status()
    assert (status["sent"], status["dropped"]) == (4, 7)


def parse(text: str):
    return parse_sinks(tomllib.loads(text))


def test_sink_file_sections_parse():
    [config] = parse('[[sink]]\nkind = "webhook"\nurl = "http://127.0.0.1:9/x"\ngzip = true\nbatch_rows = 50\n')
    assert config == WebhookConfig(url="http://127.0.0.1:9/x", gzip=True, batch_rows=50)


@pytest.mark.parametrize(("text", "message"), [
    ('[[sink]]\nkind = "kafka"\n', "sink[0]: 'kind' must be one of webhook, got 'kafka'"),
    ('[[sink]]\nkind = "webhook"\n', "sink[0]: 'url' is required"),
    ('[[sink]]\nkind = "webhook"\nurl = "ftp://x"\n', "sink[0]: 'url' must be an http:// or https:// URL"),
    ('[[sink]]\nkind = "webhook"\nurl = "http://x"\nbatch_rows = 0\n', "'batch_rows' must be at least 1, got 0"),
    ('[[sink]]\nkind = "webhook"\nurl = "http://x"\nbatch_rows = true\n', "'batch_rows' must be an integer, not a boolean"),
    ('[[sink]]\nkind = "webhook"\nurl = "http://x"\ngzip = "yes"\n', "'gzip' must be true or false"),
    ('[[sink]]\nkind = "webhook"\nurl = "http://x"\nbatchrows = 5\n', "unknown field 'batchrows'"),
    ('[sink]\nkind = "webhook"\n', "write [[sink]], not [sink]"),
])
def test_bad_sections_name_the_field(text, message):
    with pytest.raises(SinkConfigError) as error:
        parse(text)
    assert message in str(error.value)
