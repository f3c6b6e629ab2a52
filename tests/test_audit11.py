"""Issue 11 gaps found in the audit (/work/briefs/audit11-checklist.md): the WebSocket's own inbound cap
under `battsim serve`, `battsim query`'s spill directory, `battsim lab` on bad input, and apply's
duration_s named in its 422."""

from __future__ import annotations

import csv
import io
import os
import signal
import subprocess
from pathlib import Path

import pytest
from tests.helpers import make_recording
from typer.testing import CliRunner
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from battsim.service.cli import app
from battsim.service.limits import MAX_WS_MESSAGE_BYTES
from test_service_helpers import WAIT_S, battsim_command, free_port, json_once_listening, receive, serve, wait_until

API = "/api/v1"
runner = CliRunner()


def refused(result, flag: str, *texts: str) -> None:
    """Exit 2, `error: FLAG:` and no traceback."""
    output = " ".join(result.output.split())
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert f"error: {flag}:" in output and "Traceback" not in output, output
    for text in texts:
        assert text in output, output


# --------------------------------------------------------------------------- the WebSocket's inbound cap
@pytest.fixture
def battsim_serve(tmp_path):
    """`battsim serve` itself in a subprocess on a free loopback port: its own uvicorn configuration."""
    port = free_port()
    process = subprocess.Popen(battsim_command() + ["serve", "--port", str(port), "--data-dir", str(tmp_path)],
                               env={**os.environ, "BATTSIM_TOKEN": ""}, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        wait_until(lambda: json_once_listening(process, f"http://127.0.0.1:{port}/health"))
        yield f"ws://127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.communicate(timeout=WAIT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


def test_a_client_message_over_the_cap_closes_the_websocket_with_1009(battsim_serve):
    with connect(f"{battsim_serve}/api/v1/ws/telemetry", open_timeout=WAIT_S) as ws:
        assert receive(ws)["type"] == "status"
        ws.send("x" * 1024)  # a keep-alive-sized message is read and dropped; the socket stays open
        ws.ping().wait(WAIT_S)
        # 1 MiB: far below uvicorn's own 16 MiB default, so only battsim's cap refuses it.
        ws.send("x" * (1024 * 1024))
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                ws.recv(timeout=WAIT_S)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009, closed.value
    assert MAX_WS_MESSAGE_BYTES < 1024 * 1024


# --------------------------------------------------------------------------- battsim query's spill directory
@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    path = tmp_path_factory.mktemp("rec") / "rec.duckdb"
    make_recording(path, days=0.1, interval_s=600)
    return path


def test_query_spills_to_a_private_temporary_directory_removed_afterwards(recording, tmp_path, monkeypatch):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    result = runner.invoke(app, ["query", str(recording), "SELECT current_setting('temp_directory') AS spill_dir",
                                 "--format", "csv"])
    assert result.exit_code == 0, result.output
    spill_dir = Path(next(csv.DictReader(io.StringIO(result.stdout)))["spill_dir"])
    # DuckDB's default for an in-memory database is <cwd>/.tmp: a big sort filled the user's directory.
    assert spill_dir.is_absolute() and cwd not in (spill_dir, *spill_dir.parents), spill_dir
    assert spill_dir.name.startswith("battsim-query-")
    assert not spill_dir.exists()  # removed when the command ends
    assert list(cwd.iterdir()) == []


def test_query_removes_its_spill_directory_after_an_error_too(recording, tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    result = runner.invoke(app, ["query", str(recording), "SELECT no_such_column FROM readings"])
    refused(result, "SQL", "no_such_column")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("battsim-query-")] == []


# --------------------------------------------------------------------------- battsim lab on bad input
MODEL = 'name = "x"\ncells = 6\ncapacity_ah_c10 = 100\ninternal_resistance_mohm = 4\ndesign_life_years = 10\n'


def model_file(tmp_path, kind: str) -> Path:
    path = tmp_path / f"{kind}.toml"
    if kind == "directory":
        path.mkdir()
    elif kind == "not-utf8":
        path.write_bytes(b'name = "\xff\xfe"\n' + MODEL.encode()[9:])
    elif kind == "not-toml":
        path.write_text("[[[")
    elif kind == "nested":
        path.write_text("a = " + "[" * 3000)
    elif kind == "missing-keys":
        path.write_text('name = "x"\ncells = 6\n')
    elif kind == "unknown-key":
        path.write_text(MODEL + "bogus = 1\n")
    elif kind == "out-of-range":
        path.write_text(MODEL.replace("cells = 6", "cells = 6000"))
    elif kind == "infinite":
        path.write_text(MODEL.replace("internal_resistance_mohm = 4", "internal_resistance_mohm = inf"))
    elif kind == "wrong-type":
        path.write_text(MODEL.replace("cells = 6", 'cells = "six"'))
    return path


@pytest.mark.parametrize("kind, text", [
    ("directory", "is a directory"), ("not-utf8", "not UTF-8"), ("not-toml", "not valid TOML"),
    ("nested", "nested too deeply"), ("missing-keys", "capacity_ah_c10"), ("unknown-key", "bogus"),
    ("out-of-range", "cells"), ("infinite", "internal_resistance_mohm"), ("wrong-type", "cells"),
])
@pytest.mark.parametrize("command", [["discharge", "--current", "5"], ["float", "--hours", "1"],
                                     ["life", "--temperature", "25"]])
def test_every_bad_model_file_is_an_error_naming_model_file(tmp_path, kind, text, command):
    path = model_file(tmp_path, kind)
    refused(runner.invoke(app, ["lab", command[0], "--model-file", str(path), *command[1:]]), "--model-file", text)


@pytest.mark.parametrize("args, flag", [
    (["discharge", "--model", "USF12-100A", "--current", "nan"], "--current"),
    (["discharge", "--model", "USF12-100A", "--current", "inf"], "--current"),
    (["discharge", "--model", "USF12-100A", "--power", "1e308"], "--power"),
    (["discharge", "--model", "USF12-100A", "--current", "5", "--power", "5"], "--current/--power"),
    (["discharge", "--model", "USF12-100A", "--current", "5", "--temperature", "nan"], "--temperature"),
    (["discharge", "--model", "USF12-100A", "--current", "5", "--soh", "101"], "--soh"),
    (["discharge", "--model", "USF12-100A", "--model-file", "x.toml", "--current", "5"], "--model/--model-file"),
    (["float", "--model", "USF12-100A", "--hours", "nan"], "--hours"),
    (["float", "--model", "USF12-100A", "--hours", "1e9"], "--hours"),
    (["float", "--model", "USF12-100A", "--cutoff", "-inf"], "--cutoff"),
    (["float", "--model", "USF12-100A", "--temperature", "61"], "--temperature"),
    (["life", "--model", "USF12-100A", "--temperature", "nan"], "--temperature"),
    (["life", "--model", "USF12-100A", "--temperature", "71"], "--temperature"),
])
def test_out_of_range_and_non_finite_flags_are_errors_naming_the_flag(args, flag):
    refused(runner.invoke(app, ["lab", *args]), flag)


def test_an_unparsable_number_is_a_usage_error_not_a_traceback():
    result = runner.invoke(app, ["lab", "discharge", "--model", "USF12-100A", "--current", "five"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "--current" in result.output


# --------------------------------------------------------------------------- apply's duration_s
@pytest.fixture
def server(tmp_path):
    with serve(tmp_path) as running:
        yield running


def test_apply_duration_s_out_of_range_names_duration_s_not_params(server):
    http = server.http
    assert http.post(f"{API}/simulation/start", json={"preset": "single-string", "paused": True}).status_code == 200
    try:
        for duration in (1e300, "1e400", -1, 0, 36_525 * 86_400 + 1):
            for body in ({"scenario": "power_outage", "duration_s": duration},
                         {"scenario": "hvac_failure", "params": {}, "duration_s": duration}):
                response = http.post(f"{API}/scenarios/apply", json=body)
                assert response.status_code == 422, response.text
                # apply is one of the original's endpoints: detail is text, "field: message"
                assert response.json()["detail"].startswith("duration_s: "), response.text
        # A non-finite number written as JSON's NaN is refused the same way.
        response = http.post(f"{API}/scenarios/apply", content=b'{"scenario": "power_outage", "duration_s": NaN}',
                             headers={"Content-Type": "application/json"})
        assert response.status_code == 422, response.text
        assert response.json()["detail"].startswith("duration_s: "), response.text
    finally:
        http.post(f"{API}/simulation/stop")


@pytest.mark.parametrize("command", ["export", "report"])
def test_export_and_report_spill_to_a_private_temporary_directory_too(recording, tmp_path, monkeypatch, command):
    from battsim.recordings import export, query, report

    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    seen = []

    def spying(paths):
        seen.append(paths)
        return query.spill_privately(paths)

    monkeypatch.setattr(export if command == "export" else report, "spill_privately", spying)
    out = tmp_path / ("out.parquet" if command == "export" else "report")
    args = ["export", str(recording), "--format", "parquet", "--out", str(out)] if command == "export" else [
        "report", str(recording), "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert seen == [[recording]] and list(cwd.iterdir()) == []
