"""The CLI's small extras (issue 23, point 6): ``battsim --version``, ``battsim serve --fleet/--timeline``
booting like ``battsim run``, and Ctrl-C on ``battsim run`` leaving a readable recording marked incomplete."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from importlib.metadata import version

import pytest
from typer.testing import CliRunner

from battsim.engine.fleet import get_preset
from battsim.recordings import open_recording
from battsim.recordings.batch import BatchRun, RunInterrupted, record_run
from battsim.service import cli
from test_service_helpers import WAIT_S, battsim_command, free_port, json_once_listening, wait_until

LAB_FLEET = '[[sites]]\nsite_id = "LAB"\njars_per_string = 2\nmodel = "GS GPL12-100"\n'
# An outage a virtual minute after boot: at --speed 600 it begins within a wall second.
SOON_OUTAGE = '[[event]]\nscenario = "power_outage"\nat = "+1m"\nduration = "1h"\n'
LATER_HEATWAVE = '[[event]]\nscenario = "heatwave"\nat = "+100d"\n'  # merged in, never reached by the test


def test_version_prints_the_installed_package_version():
    result = CliRunner().invoke(cli.app, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.output == f"battsim {version('battsim')}\n"


def test_serve_boots_a_fleet_file_with_its_timelines(tmp_path):
    (tmp_path / "fleet.toml").write_text(LAB_FLEET)
    (tmp_path / "soon.toml").write_text(SOON_OUTAGE)
    (tmp_path / "later.toml").write_text(LATER_HEATWAVE)
    port = free_port()
    process = subprocess.Popen(
        battsim_command() + ["serve", "--port", str(port), "--data-dir", str(tmp_path / "rec"),
                             "--fleet", str(tmp_path / "fleet.toml"), "--timeline", str(tmp_path / "soon.toml"),
                             "--timeline", str(tmp_path / "later.toml"), "--interval", "1", "--speed", "600",
                             "--no-random-outages"],  # only the given timelines: no random outage beside them
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        def status():
            return json_once_listening(process, f"http://127.0.0.1:{port}/api/v1/simulation/status")

        booted = wait_until(lambda: (s := status()) and s["active_scenarios"] and s)
        assert booted["is_running"] and booted["batteries_count"] == 2 and booted["preset"] is None
        timelines = [str(tmp_path / "soon.toml"), str(tmp_path / "later.toml")]
        assert booted["timelines"] == timelines
        assert [(a["name"], a["source"]) for a in booted["active_scenarios"]] == [
            ("power_outage", "timeline soon.toml: [[event]] #1 (power_outage)")]
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=WAIT_S)
    finally:
        if process.poll() is None:
            process.kill()
    assert f"timeline {tmp_path / 'later.toml'}" in output, output
    with open_recording(booted["recording_path"]) as recording:
        assert recording.run.status == "complete"
        config = recording.config
    assert config.mode == "live" and config.speed is not None and config.start is None
    assert [t.source for t in config.timelines] == timelines


@pytest.mark.parametrize(("flags", "named", "says"), [
    (["--fleet", "{tmp}/missing.toml"], "--fleet", "missing.toml"),
    (["--fleet", "{tmp}/bad.toml"], "--fleet", "jars_per_string"),
    (["--preset", "single-string", "--fleet", "{tmp}/fleet.toml"], "--preset/--fleet", "not both"),
    (["--preset", "single-string", "--timeline", "{tmp}/missing.toml"], "--timeline", "no such file"),
    (["--fleet", "{tmp}/fleet.toml", "--timeline", "{tmp}/elsewhere.toml"], "--timeline", "ATLANTIS"),
    (["--timeline", "daily-outage"], "--timeline", "--preset or --fleet"),
])
def test_serve_refuses_a_bad_fleet_or_timeline_naming_the_flag(tmp_path, flags, named, says):
    (tmp_path / "fleet.toml").write_text(LAB_FLEET)
    (tmp_path / "bad.toml").write_text('[[sites]]\nsite_id = "A"\njars_per_string = "many"\n')
    (tmp_path / "elsewhere.toml").write_text('[[event]]\nscenario = "power_outage"\nat = "14:00"\nsites = ["ATLANTIS"]\n')
    args = [flag.format(tmp=tmp_path) for flag in flags]
    result = CliRunner().invoke(cli.app, ["serve", "--port", str(free_port()), "--data-dir", str(tmp_path / "rec"), *args])
    assert result.exit_code == 2, result.output
    assert f"error: {named}:" in result.output and says in result.output, result.output
    assert not (tmp_path / "rec").exists()  # refused before anything was created


def test_ctrl_c_on_run_prints_the_summary_exits_130_and_keeps_the_recording_incomplete(tmp_path):
    out = tmp_path / "long.duckdb"
    # The progress bar is drawn to a pipe as to a terminal, so the test can wait for the first report.
    env = {**os.environ, "TTY_COMPATIBLE": "1", "TTY_INTERACTIVE": "1", "COLUMNS": "200"}
    process = subprocess.Popen(
        battsim_command() + ["run", "--preset", "single-string", "--days", "36500", "--batch-rows", "480",
                             "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )
    stderr, reported = bytearray(), threading.Event()

    def pump():
        while chunk := process.stderr.read1(4096):
            stderr.extend(chunk)
            if b"readings/s" in stderr:  # the first progress report: six virtual hours of batches handed over
                reported.set()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        assert reported.wait(WAIT_S), stderr.decode(errors="replace")
        process.send_signal(signal.SIGINT)
        # Only the pump reads stderr (communicate() would race it for the last lines); stdout is a short summary.
        process.wait(timeout=WAIT_S)
        stdout = process.stdout.read()
    finally:
        if process.poll() is None:
            process.kill()
    reader.join(WAIT_S)
    message = stderr.decode(errors="replace")
    assert process.returncode == 130, message
    assert "interrupted at 2026-01-0" in message and ", recording marked incomplete" in message, message
    assert "Traceback" not in message
    summary = stdout.decode()
    assert f"recording     {out}" in summary and "readings" in summary
    with open_recording(out) as recording:
        assert recording.run.status == "incomplete"
        assert recording.run.readings > 0 and recording.run.readings % 24 == 0


def test_an_interrupted_replacing_run_keeps_the_previous_file_and_the_partial_one(tmp_path):
    out = tmp_path / "week.duckdb"
    out.write_bytes(b"the previous recording")

    def interrupt(done_s: float, readings: int) -> None:
        raise KeyboardInterrupt

    run = BatchRun(fleet=get_preset("single-string"), out=out, overwrite=True, batch_rows=480)
    with pytest.raises(RunInterrupted) as interrupted:
        record_run(run, progress=interrupt)
    kept = tmp_path / "week.incomplete.duckdb"
    assert interrupted.value.kept == kept and interrupted.value.summary.path == kept
    assert interrupted.value.stopped_s == 6 * 3600
    assert out.read_bytes() == b"the previous recording"
    with open_recording(kept) as recording:
        assert recording.run.status == "incomplete" and recording.run.readings == interrupted.value.summary.readings
