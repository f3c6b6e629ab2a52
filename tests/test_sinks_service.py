"""Sinks wired into `battsim serve` (every session's attachments, GET /api/v1/sinks, GET /metrics scraped by a real
HTTP client and parsed by prometheus_client's parser) and into `battsim run` (a back-fill that delivers everything)."""

import re
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from tests.real_servers import MosquittoBroker, WebhookServer
from typer.testing import CliRunner

from battsim.recordings import open_recording
from battsim.service.cli import app
from battsim.sinks import MqttConfig, WebhookConfig
from test_service_helpers import battsim_command, free_port, json_once_listening, serve, wait_until

START_BODY = {"preset": "single-string", "interval_seconds": 5, "speed": 600, "start": "2026-04-01T06:00:00+07:00"}


@pytest.fixture
def webhook():
    server = WebhookServer()
    yield server
    server.stop()


@pytest.fixture
def broker():
    root = Path(tempfile.mkdtemp(prefix="battsim-mqtt-"))
    broker = MosquittoBroker(root)
    yield broker
    broker.stop()
    shutil.rmtree(root)


def families(text: str) -> dict:
    return {family.name: family for family in text_string_to_metric_families(text)}


def test_a_live_session_feeds_its_sinks_and_metrics(tmp_path, webhook, broker):
    sinks = [WebhookConfig(url=webhook.url, batch_rows=24),
             MqttConfig(port=broker.port, reconnect_min_s=0.05, reconnect_max_s=0.2)]
    with serve(tmp_path / "recordings", sinks=sinks) as server:
        assert server.http.post("/api/v1/simulation/start", json=START_BODY).status_code == 200
        wait_until(lambda: all(sink["sent"] >= 72 for sink in server.http.get("/api/v1/sinks").json()["sinks"]))
        listing = server.http.get("/api/v1/sinks").json()
        assert listing["running"] is True
        assert [(sink["name"], sink["kind"]) for sink in listing["sinks"]] == [("webhook", "webhook"), ("mqtt", "mqtt")]
        assert set(listing["sinks"][1]) == {"name", "kind", "state", "queued", "sent", "retried", "dropped",
                                            "last_error"}
        with httpx.Client(base_url=server.base) as scraper:      # as Prometheus would: a plain GET
            scraped = scraper.get("/metrics")
        assert scraped.status_code == 200 and scraped.headers["content-type"].startswith("text/plain")
        metrics = families(scraped.text)
        voltage = metrics["battsim_jar_voltage_volts"].samples
        assert len(voltage) == 24 and {"site", "string", "battery"} == set(voltage[0].labels)
        for name in ("battsim_jar_current_amperes", "battsim_jar_temperature_celsius", "battsim_jar_soc_percent",
                     "battsim_jar_soh_percent", "battsim_string_voltage_volts", "battsim_string_current_amperes"):
            assert metrics[name].samples, name
        assert 10 < voltage[0].value < 16
        [ticks] = metrics["battsim_ticks"].samples
        [readings] = metrics["battsim_readings"].samples
        assert readings.value == 24 * ticks.value > 0
        sent = {sample.labels["sink"]: sample.value for sample in metrics["battsim_sink_sent_readings"].samples
                if sample.name.endswith("_total")}
        assert sent["webhook"] >= 72 and sent["mqtt"] >= 72
        assert {s.labels["sink"] for s in metrics["battsim_sink_dropped_readings"].samples} == {"webhook", "mqtt"}
        assert server.http.post("/api/v1/simulation/stop").status_code == 200
        after = server.http.get("/api/v1/sinks").json()
        assert after["running"] is False and {sink["state"] for sink in after["sinks"]} == {"stopped"}
        delivered, dropped = after["sinks"][0]["sent"], after["sinks"][0]["dropped"]
        listed = {(e["method"], e["path"]) for e in server.http.get("/api/v1/").json()["endpoints"]}
        assert {("GET", "/api/v1/sinks"), ("GET", "/metrics")} <= listed
    recordings = list((tmp_path / "recordings").glob("*.duckdb"))
    with open_recording(recordings[0]) as recording:
        recorded = recording.sql("SELECT count(*) AS n FROM readings")["n"][0]
    # Every recorded reading reached the webhook or was counted dropped: a live sink that falls behind drops the
    # oldest (at 600x on a loaded machine it may), and says how many.
    assert len(webhook.rows()) == delivered and delivered + dropped == recorded and delivered >= 72


def test_the_sinks_carry_the_default_sessions_telemetry_only(tmp_path, webhook):
    with serve(tmp_path / "recordings", sinks=[WebhookConfig(url=webhook.url, batch_rows=24)]) as server:
        named = {**START_BODY, "preset": "thailand-9x24"}  # nine sites; the default session's one is BKK_DC1
        assert server.http.post("/api/v1/sessions/lab/simulation/start", json=named).status_code == 200
        assert server.http.post("/api/v1/simulation/start", json=START_BODY).status_code == 200
        wait_until(lambda: server.http.get("/api/v1/sessions/lab/simulation/status").json()["readings_generated"]
                   >= 216 * 12 and len(webhook.rows()) >= 72)
        assert server.http.post("/api/v1/sessions/lab/simulation/stop").status_code == 200
        assert server.http.post("/api/v1/simulation/stop").status_code == 200
    assert {row["battery_id"][:7] for row in webhook.rows()} == {"BKK_DC1"}


def test_metrics_before_any_simulation(tmp_path):
    with serve(tmp_path / "recordings") as server:
        metrics = families(server.http.get("/metrics").text)
        assert "battsim_jar_voltage_volts" not in metrics
        assert server.http.get("/api/v1/sinks").json() == {"running": False, "sinks": []}


runner = CliRunner()


def test_run_backfills_every_reading_into_the_sinks(tmp_path, webhook):
    sink_file = tmp_path / "sinks.toml"
    sink_file.write_text(f'[[sink]]\nkind = "webhook"\nurl = "{webhook.url}"\nbatch_rows = 500\nqueue_batches = 1\n')
    out = tmp_path / "run.duckdb"
    result = runner.invoke(app, ["run", "--preset", "single-string", "--days", "0.5", "--out", str(out),
                                 "--sink-file", str(sink_file), "--no-progress"])
    assert result.exit_code == 0, result.output
    with open_recording(out) as recording:
        recorded = recording.sql("SELECT count(*) AS n FROM readings")["n"][0]
    assert len(webhook.rows()) == recorded == 720 * 24                     # a tiny queue waited, dropped nothing
    assert f"sink webhook  {recorded:,} sent, 0 dropped" in result.output


@pytest.mark.parametrize(("args", "message"), [
    (["--webhook", "ftp://x"], "--webhook: 'url' must be a http:// or https:// URL"),
    (["--mqtt", "mqtt://h?qos=2"], "--mqtt: 'qos' must be one of 0, 1, got 2"),
    (["--sink-file", "/nonexistent.toml"], "--sink-file: cannot read /nonexistent.toml"),
])
def test_run_refuses_bad_sink_flags_before_anything_runs(tmp_path, args, message):
    out = tmp_path / "run.duckdb"
    result = runner.invoke(app, ["run", "--preset", "single-string", "--days", "0.1", "--out", str(out), *args])
    assert result.exit_code == 2 and message in " ".join(result.output.split())
    assert not out.exists()


def test_run_names_the_section_and_field_of_a_bad_sink_file(tmp_path):
    sink_file = tmp_path / "sinks.toml"
    sink_file.write_text('[[sink]]\nkind = "mqtt"\nqos = 1\n[[sink]]\nkind = "postgres"\n')
    result = runner.invoke(app, ["run", "--preset", "single-string", "--days", "0.1", "--out",
                                 str(tmp_path / "r.duckdb"), "--sink-file", str(sink_file)])
    assert result.exit_code == 2
    assert f"--sink-file: {sink_file}: sink[1]: 'dsn' is required" in " ".join(result.output.split())


def test_serve_refuses_a_bad_sink_file_from_the_environment(tmp_path):
    sink_file = tmp_path / "sinks.toml"
    sink_file.write_text('[[sink]]\nkind = "webhook"\nurl = "http://127.0.0.1:9/x"\ngzip = "yes"\n')
    result = runner.invoke(app, ["serve"], env={"BATTSIM_SINK_FILE": str(sink_file)})
    assert result.exit_code == 2
    assert "sink[0]: 'gzip' must be true or false" in " ".join(result.output.split())


def test_battsim_serve_feeds_its_flags_sinks(tmp_path, webhook):
    port = free_port()
    process = subprocess.Popen([*battsim_command(), "serve", "--port", str(port), "--data-dir", str(tmp_path / "r"),
                                "--preset", "single-string", "--speed", "600", "--webhook", webhook.url],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        sinks = f"http://127.0.0.1:{port}/api/v1/sinks"
        wait_until(lambda: (listing := json_once_listening(process, sinks)) and listing["sinks"]
                   and listing["sinks"][0]["sent"] >= 48)
        assert json_once_listening(process, sinks)["sinks"][0]["name"] == "webhook"
        assert len({row["seq"] for row in webhook.rows()}) >= 2
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    assert re.search(rf"^sinks +webhook \(webhook\); state: http://127.0.0.1:{port}/api/v1/sinks$", output, re.M)
