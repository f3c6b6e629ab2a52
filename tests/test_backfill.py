"""Back-fill then live (issue 16, point 1): history before now at batch speed, then paced from now.

The identity test fixes "now" with the sessions' injectable wall clock (freezegun would freeze the
event loop's monotonic clock too), back-fills 2 h at 60 s and compares every reading with what
``battsim run`` writes for the same span and seed.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from datetime import UTC, datetime, timedelta

import duckdb
import pytest

from battsim.engine.fleet import get_preset
from battsim.service.live import LiveConfig, Sessions, default_start, parse_backfill
from test_service_helpers import WAIT_S, battsim_command, next_of, serve, wait_until

NOW = datetime(2026, 6, 1, 12, 0, 30, tzinfo=UTC)  # the fixed "now": half-way between two ticks
COLUMNS = "epoch_us(timestamp) AS t, battery_key, voltage_v, current_a, temperature_c, internal_resistance_mohm, " \
          "soh_pct, soc_pct, ambient_c, mode"


def readings(path, before: datetime) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(f"SELECT {COLUMNS} FROM reading_samples WHERE timestamp < $before ORDER BY t, battery_key",
                           {"before": before}).fetchall()


async def backfilled(data_dir, backfill_s: float, seed: int) -> dict:
    """A live session back-filling up to NOW, stopped once it has gone live; its last status."""
    sessions = Sessions(data_dir, wall_time=NOW.timestamp)
    session = await sessions.start(LiveConfig(fleet=get_preset("single-string"), interval_s=60, seed=seed,
                                              backfill_s=backfill_s))
    deadline = time.monotonic() + 4 * WAIT_S
    while not session.backfill.done:
        assert session.running, session.error
        assert time.monotonic() < deadline, "the back-fill did not finish"
        await asyncio.sleep(0.01)
    await sessions.stop()
    return session.status()


def test_backfill_readings_equal_battsim_run_of_the_same_span(tmp_path):
    status = asyncio.run(backfilled(tmp_path / "live", 2 * 3600, seed=7))
    start = NOW.replace(second=0) - timedelta(hours=2)
    assert status["sim_start"] == start.isoformat()
    backfill = status["backfill"]
    assert backfill["state"] == "done" and backfill["progress"] == 1.0
    assert backfill["to"] == NOW.isoformat()  # it ran up to "now", and pacing goes on from there
    batch = tmp_path / "batch.duckdb"
    subprocess.run([*battsim_command(), "run", "--preset", "single-string", "--seed", "7", "--interval", "60",
                    "--start", start.isoformat(), "--until", NOW.isoformat(), "--out", str(batch), "--no-progress"],
                   check=True, capture_output=True, timeout=120)
    live = readings(status["recording_path"], NOW)
    expected = readings(batch, NOW)
    assert len(expected) == 121 * 24  # 10:00 to 12:00 inclusive, 24 jars
    assert live == expected
    assert backfill["readings"] >= len(expected)


def test_another_seed_gives_other_readings(tmp_path):
    # The comparison above is not vacuous: the seed shows in the readings.
    one = readings(asyncio.run(backfilled(tmp_path / "a", 3600, seed=7))["recording_path"], NOW)
    other = readings(asyncio.run(backfilled(tmp_path / "b", 3600, seed=8))["recording_path"], NOW)
    assert len(one) == len(other) and one != other


def test_backfill_start_is_that_long_before_now_on_a_whole_interval():
    assert default_start(60, NOW.timestamp(), 30 * 86_400) == datetime(2026, 5, 2, 12, 0, tzinfo=UTC)
    assert default_start(5, NOW.timestamp()) == NOW


@pytest.mark.parametrize(("text", "seconds"), [("30d", 30 * 86_400), ("2h", 7200), ("90min", 5400), ("PT1H", 3600),
                                               (600, 600), (None, 0), ("0", 0)])
def test_parse_backfill(text, seconds):
    assert parse_backfill(text) == seconds


@pytest.mark.parametrize(("text", "says"), [("soon", "not a duration"), ("400d", "more than 366 days"),
                                            ("-2h", "not a duration")])
def test_parse_backfill_refuses(text, says):
    with pytest.raises(ValueError, match=says):
        parse_backfill(text)


def test_start_with_backfill_over_http_reports_progress_then_goes_live(tmp_path):
    with serve(tmp_path) as server, server.telemetry() as ws:
        started = server.http.post("/api/v1/simulation/start", json={
            "preset": "single-string", "interval_seconds": 60, "seed": 3, "backfill": "6h"})
        assert started.status_code == 200, started.text
        # Progress on the WebSocket (status frames), then the first live tick, numbered after the history.
        done = next_of(ws, "status", lambda m: (m.get("backfill") or {}).get("state") == "done", timeout=4 * WAIT_S)
        assert done["backfill"]["readings"] == done["readings_generated"] >= 6 * 60 * 24
        status = server.http.get("/api/v1/simulation/status").json()
        assert status["backfill"]["state"] == "done" and status["is_running"]
        sim_start = datetime.fromisoformat(status["sim_start"])
        assert timedelta(hours=6) <= datetime.now(UTC) - sim_start < timedelta(hours=6, minutes=5)
        # The back-fill's readings are handed to the recorder's writer thread before the first live
        # tick; the file shows them once that thread commits, which is not at a fixed instant.
        listed = wait_until(lambda: [entry for entry in server.http.get("/api/v1/recordings").json()
                                     if entry["readings"] >= 6 * 60 * 24])
        assert [entry["status"] for entry in listed] == ["running"]


@pytest.mark.parametrize(("body", "field"), [({"backfill": "lots"}, "backfill"), ({"backfill": "900d"}, "backfill"),
                                             ({"backfill": "1h", "start": "2026-01-01T00:00:00Z"}, "backfill")])
def test_bad_backfill_is_a_422_naming_the_field(tmp_path, body, field):
    with serve(tmp_path) as server:
        answer = server.http.post("/api/v1/simulation/start", json={"preset": "single-string", **body})
        assert answer.status_code in (400, 422), answer.text
        assert field in answer.text
        assert server.http.get("/api/v1/simulation/status").json()["is_running"] is False


@pytest.mark.parametrize(("args", "says"), [(["--preset", "single-string", "--backfill", "lots"], "--backfill"),
                                            (["--backfill", "2h"], "needs a fleet")])
def test_serve_refuses_a_bad_backfill(tmp_path, args, says):
    result = subprocess.run([*battsim_command(), "serve", "--data-dir", str(tmp_path), *args], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2
    assert "error:" in result.stderr and says in result.stderr
