"""Replay: exactly the recorded readings, the selection SQL makes, paced by an injected clock."""

from __future__ import annotations

import hashlib
import json
import math
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import duckdb
import numpy as np
import pytest
from typer.testing import CliRunner

from battsim.engine.fleet import get_preset
from battsim.recordings.batch import BatchRun, record_run
from battsim.recordings.format import RecordingBusyError
from battsim.recordings.recording import NotARecordingError
from battsim.recordings.replay import Player, ReplayError, ReplaySource, parse_speed
from battsim.service.cli import app
from battsim.wire import WIRE_NUMBERS

START = datetime(2026, 3, 1, tzinfo=ZoneInfo("Asia/Bangkok"))
UTC = UTC
BANGKOK = ZoneInfo("Asia/Bangkok")


@pytest.fixture(scope="module")
def day(tmp_path_factory):
    """One string of 24 jars, one day at a 60 s interval: 1,440 ticks, 34,560 readings."""
    path = tmp_path_factory.mktemp("replay") / "day.duckdb"
    record_run(BatchRun(fleet=get_preset("single-string"), out=path, seed=3, start=START,
                        end=START + timedelta(days=1), interval_s=60, preset="single-string"))
    return path


class FakeClock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def expected(path, where: str = "", params: dict | None = None) -> list[dict]:
    """What SQL selects, rounded as the wire rounds (numpy), in time then jar order."""
    with duckdb.connect(str(path), read_only=True) as con:
        table = con.sql(f"SELECT r.*, b.battery_key FROM readings r JOIN batteries b USING (battery_id) {where} "
                        "ORDER BY timestamp, battery_key", params=params or None).to_arrow_table()
    columns = {"battery_id": table.column("battery_id").to_pylist(), "site_id": table.column("site_id").to_pylist(),
               "string_id": table.column("string_id").to_pylist(),
               "timestamp": [t.astimezone(UTC).isoformat() for t in table.column("timestamp").to_pylist()],
               "mode": table.column("mode").to_pylist()}
    for name, decimals in WIRE_NUMBERS:
        values = table.column(name).to_numpy(zero_copy_only=False).astype(np.float32).astype(np.float64)
        rounded = np.round(values, decimals).astype(object)
        rounded[np.isnan(values)] = None
        columns[name] = rounded.tolist()
    return [dict(zip(columns, row)) for row in zip(*columns.values())]


def digest(readings: list[dict]) -> str:
    return hashlib.sha256(json.dumps(readings, sort_keys=True).encode()).hexdigest()


def play_all(player: Player) -> list[dict]:
    frames = []
    while player.state != "ended":
        frames.extend(json.loads(frame.payload) for frame in player.poll())
    return frames


def readings_of(frames: list[dict]) -> list[dict]:
    return [reading for frame in frames for reading in frame["data"]]


# ------------------------------------------------------------------------------------ content
@pytest.mark.parametrize("chunk_rows", [65_536, 1_000, 240])
def test_replay_emits_exactly_the_recorded_readings_in_order(day, chunk_rows):
    source = ReplaySource.open(day)
    player = Player(source, source.window(), speed="max", chunk_rows=chunk_rows)
    frames = play_all(player)
    player.close()
    source.close()
    want = expected(day)
    got = readings_of(frames)
    assert len(got) == len(want) == 1440 * 24
    assert digest(got) == digest(want)
    assert [f["seq"] for f in frames] == list(range(1440))
    assert all(r["timestamp"] == f["sim_time"] for f in frames for r in f["data"])
    assert frames[0]["type"] == "telemetry" and list(frames[0]["data"][0]) == [
        "battery_id", "site_id", "string_id", "timestamp", "voltage_v", "current_a", "temperature_c",
        "internal_resistance_mohm", "soh_pct", "mode", "soc_pct", "ambient_c"]


@pytest.mark.parametrize(("start", "end", "batteries", "sites", "where", "params"), [
    ("+2h", "+3h", (), (), "WHERE timestamp >= $a AND timestamp < $b",
     {"a": START + timedelta(hours=2), "b": START + timedelta(hours=3)}),
    ("2026-03-01T12:30:00+07:00", "-11h", (), (), "WHERE timestamp >= $a AND timestamp < $b",
     {"a": START + timedelta(hours=12, minutes=30), "b": START + timedelta(hours=13)}),
    ("2026-03-01T12:30", None, (), (), "WHERE timestamp >= $a", {"a": START + timedelta(hours=12, minutes=30)}),
    ("+1h30m", "+1h45m", ("BKK_DC1_SYS01_STR01_BAT003", "BKK_DC1_SYS01_STR01_BAT017"), (),
     "WHERE timestamp >= $a AND timestamp < $b AND battery_id IN ('BKK_DC1_SYS01_STR01_BAT003', "
     "'BKK_DC1_SYS01_STR01_BAT017')", {"a": START + timedelta(minutes=90), "b": START + timedelta(minutes=105)}),
    (None, "+20m", ("BKK_DC1_SYS01_STR01_BAT024",), ("BKK_DC1",),
     "WHERE timestamp < $b AND battery_id = 'BKK_DC1_SYS01_STR01_BAT024'", {"b": START + timedelta(minutes=20)}),
    ("+23h59m30s", None, (), ("BKK_DC1",), "WHERE timestamp >= $a",
     {"a": START + timedelta(hours=23, minutes=59, seconds=30)}),
    # Offsets are timeparse durations, as in timelines and --backfill: ISO 8601 and unit words too.
    ("+PT2H", "+150min", (), (), "WHERE timestamp >= $a AND timestamp < $b",
     {"a": START + timedelta(hours=2), "b": START + timedelta(hours=2, minutes=30)}),
])
def test_from_to_and_filters_select_what_sql_selects(day, start, end, batteries, sites, where, params):
    source = ReplaySource.open(day)
    player = Player(source, source.window(start, end, batteries, sites), speed="max", chunk_rows=500)
    got = readings_of(play_all(player))
    player.close()
    source.close()
    want = expected(day, where, params)
    assert len(got) == len(want) and digest(got) == digest(want)


def test_bad_windows_and_filters_name_the_field(day):
    source = ReplaySource.open(day)
    cases = [
        (dict(start="+3h", end="+2h"), "to", "is not after from"),
        (dict(start="+2d"), "from", "after the recording's last reading"),
        (dict(start="yesterday"), "from", "not an ISO 8601 time"),
        (dict(start="+2months"), "from", "offset '2months': unknown unit 'months'"),
        (dict(batteries=["BKK_DC1_SYS01_STR01_BAT999"]), "battery_ids", "unknown BKK_DC1_SYS01_STR01_BAT999"),
        (dict(sites=["CNX_DC1"]), "site_ids", "unknown CNX_DC1; sites: BKK_DC1"),
    ]
    for kwargs, field, text in cases:
        with pytest.raises(ReplayError) as error:
            source.window(**kwargs)
        assert error.value.field == field and text in str(error.value)
    source.close()
    for bad in ("0.001", "100001", "-1", "fast", 0):
        with pytest.raises(ReplayError, match="speed"):
            parse_speed(bad)
    assert parse_speed("max") == math.inf and parse_speed("0.01") == 0.01 and parse_speed(100000) == 100000


def test_files_that_are_not_recordings_are_refused(tmp_path, day):
    with pytest.raises(FileNotFoundError):
        ReplaySource.open(tmp_path / "missing.duckdb")
    (tmp_path / "text.duckdb").write_text("not a database")
    with pytest.raises(NotARecordingError, match="not a DuckDB file"):
        ReplaySource.open(tmp_path / "text.duckdb")
    duckdb.connect(str(tmp_path / "other.duckdb")).execute("CREATE TABLE t (x INT)").close()
    with pytest.raises(NotARecordingError, match="not a battsim recording"):
        ReplaySource.open(tmp_path / "other.duckdb")
    writer = duckdb.connect(str(day))  # this process now holds the file read-write, like a live recorder
    try:
        with pytest.raises(RecordingBusyError, match="being written"):
            ReplaySource.open(day)
    finally:
        writer.close()


# ------------------------------------------------------------------------------------ pacing
def drive(player: Player, clock: FakeClock, until_wall: float | None = None, limit: int = 100_000):
    """Run the player as a driver would, jumping the fake clock to each due time; (wall, frame) pairs."""
    out = []
    for _ in range(limit):
        for frame in player.poll():
            out.append((clock.t, json.loads(frame.payload)))
        if player.state != "playing":
            break
        delay = player.wall_delay()
        if until_wall is not None and clock.t + delay > until_wall:
            clock.t = until_wall
            break
        clock.t += delay
    return out


def sim_s(frame: dict) -> float:
    return (datetime.fromisoformat(frame["sim_time"]) - START).total_seconds()


def test_at_3600x_a_virtual_hour_takes_one_wall_second(day):
    clock = FakeClock()
    source = ReplaySource.open(day)
    player = Player(source, source.window(end="+1h"), speed=3600, wall_clock=clock)
    began = clock.t
    sent = drive(player, clock)
    assert player.state == "ended" and len(sent) == 60
    for wall, frame in sent:
        assert wall - began == pytest.approx(sim_s(frame) / 3600, abs=1e-9)  # each tick exactly when due
    assert sent[-1][0] - began == pytest.approx(59 / 60)  # the last tick of the hour, at 59 min
    assert player.status().position == START + timedelta(minutes=59)
    player.close()
    source.close()


def test_achieved_speed_is_reported_beside_the_requested(day):
    clock = FakeClock()
    source = ReplaySource.open(day)
    player = Player(source, source.window(), speed=3600, wall_clock=clock)
    drive(player, clock, until_wall=clock.t + 3.0)
    status = player.status()
    assert status.state == "playing" and status.speed == 3600
    assert status.achieved_speed == pytest.approx(3600, rel=0.05)
    assert status.as_dict()["position"] == (START + timedelta(hours=3)).astimezone(UTC).isoformat()
    player.pause()
    assert player.status().achieved_speed == 0.0
    player.close()
    source.close()


def test_pause_holds_time_and_resume_re_anchors(day):
    clock = FakeClock()
    source = ReplaySource.open(day)
    player = Player(source, source.window(), speed=60, wall_clock=clock)
    sent = drive(player, clock, until_wall=clock.t + 4.5)  # ticks at 0, 1, 2, 3, 4 wall s
    assert [sim_s(f) for _, f in sent] == [0, 60, 120, 180, 240]
    player.pause()
    assert player.state == "paused" and player.wall_delay() == math.inf
    clock.t += 500  # a long pause: nothing is sent, time stands still
    assert player.poll() == []
    assert player.status().position == START + timedelta(seconds=270)
    player.resume()
    resumed = clock.t
    sent = drive(player, clock, until_wall=clock.t + 2.0)
    # No catching up for the pause: 270 s of virtual time were reached, the next tick (300 s) is 0.5 s away.
    assert [(round(w - resumed, 6), sim_s(f)) for w, f in sent] == [(0.5, 300), (1.5, 360)]
    player.close()
    source.close()


def test_start_paused_sends_nothing_until_resumed(day):
    clock = FakeClock()
    source = ReplaySource.open(day)
    player = Player(source, source.window(), speed=60, paused=True, wall_clock=clock)
    clock.t += 100
    assert player.poll() == [] and player.state == "paused"
    player.resume()
    assert [sim_s(json.loads(f.payload)) for f in player.poll()] == [0]
    player.close()
    source.close()


def test_speed_change_re_anchors_at_the_current_position(day):
    clock = FakeClock()
    source = ReplaySource.open(day)
    player = Player(source, source.window(), speed=60, wall_clock=clock)
    drive(player, clock, until_wall=clock.t + 2.5)  # 150 virtual seconds in
    player.set_speed(600)
    changed = clock.t
    sent = drive(player, clock, until_wall=clock.t + 0.3)
    assert [(round(w - changed, 6), sim_s(f)) for w, f in sent] == [(0.05, 180), (0.15, 240), (0.25, 300)]
    player.set_speed("max")
    assert player.wall_delay() == 0
    frames = player.poll(max_frames=10)
    assert [sim_s(json.loads(f.payload)) for f in frames] == [360 + 60 * i for i in range(10)]
    player.set_speed(1)  # back from max: anchored where playback got to, not at infinity
    assert player.wall_delay() == pytest.approx(60)
    player.close()
    source.close()


def test_seek_sends_each_batterys_last_value_first(day):
    clock = FakeClock()
    source = ReplaySource.open(day)
    wanted = ("BKK_DC1_SYS01_STR01_BAT002", "BKK_DC1_SYS01_STR01_BAT011")
    player = Player(source, source.window(batteries=wanted), speed=60, wall_clock=clock)
    drive(player, clock, until_wall=clock.t + 3.5)
    at = START + timedelta(hours=5, seconds=30)  # between two ticks
    player.seek(at)
    first = json.loads(player.poll()[0].payload)
    assert first["sim_time"] == at.astimezone(UTC).isoformat()
    assert first["data"] == expected(day, "WHERE timestamp = $t AND battery_id IN $ids",
                                     {"t": START + timedelta(hours=5), "ids": list(wanted)})
    seek_wall = clock.t
    sent = drive(player, clock, until_wall=clock.t + 1.6)
    # Then on from there, paced from the seek point: 05:01 is 30 virtual s (0.5 wall s) later.
    assert [(round(w - seek_wall, 6), sim_s(f)) for w, f in sent] == [(0.5, 5 * 3600 + 60), (1.5, 5 * 3600 + 120)]
    with pytest.raises(ReplayError, match="outside the replay window"):
        player.seek(START - timedelta(hours=1))
    player.close()
    source.close()


def test_seek_while_paused_shows_that_moment_and_stays_paused(day):
    clock = FakeClock()
    source = ReplaySource.open(day)
    player = Player(source, source.window(start="+1h", end="+3h"), speed=60, paused=True, wall_clock=clock)
    player.seek("+2h")
    frames = [json.loads(f.payload) for f in player.poll()]
    assert len(frames) == 1 and len(frames[0]["data"]) == 24
    assert {r["timestamp"] for r in frames[0]["data"]} == {(START + timedelta(hours=2)).astimezone(UTC).isoformat()}
    clock.t += 60
    assert player.poll() == [] and player.state == "paused"
    player.resume()
    assert [sim_s(json.loads(f.payload)) for f in drive_once(player, clock, 1.0)] == [7260]
    player.close()
    source.close()


def drive_once(player: Player, clock: FakeClock, wall_s: float):
    clock.t += wall_s
    return player.poll()


def test_loop_restarts_at_the_window_end_and_keeps_counting(day):
    clock = FakeClock()
    source = ReplaySource.open(day)
    player = Player(source, source.window(start="+1h", end="+1h5m"), speed=60, loop=True, wall_clock=clock)
    began = clock.t
    sent = drive(player, clock, until_wall=clock.t + 12.5)
    # 5 ticks a lap; a lap lasts the window's 5 virtual minutes (5 wall s), the restart exactly on time.
    assert [(round(w - began, 6), sim_s(f) - 3600) for w, f in sent] == [
        (float(i), (i % 5) * 60.0) for i in range(13)]
    assert [f["seq"] for _, f in sent] == list(range(13))
    assert player.loops == 2 and player.state == "playing"
    player.close()
    source.close()


def test_ended_replay_can_be_sought_back(day):
    source = ReplaySource.open(day)
    player = Player(source, source.window(start="-10m"), speed="max")
    assert len(play_all(player)) == 10 and player.status().ended_reason == "finished"
    player.seek("-5m")
    assert player.state == "paused"
    player.resume()
    frames = play_all(player)
    assert [f["sim_time"][11:16] for f in frames] == ["16:55", "16:56", "16:57", "16:58", "16:59"]
    player.close()
    source.close()


# ------------------------------------------------------------------------------------ live file
def test_a_recording_being_written_plays_up_to_what_is_committed(tmp_path, day):
    """Through the writer's own connection, as the server does for its live recording."""
    path = tmp_path / "live.duckdb"
    writer = duckdb.connect(str(path))
    writer.execute(f"ATTACH '{day}' AS done (READ_ONLY)")
    for table in ("runs", "sites", "batteries", "events", "strings", "string_readings", "ohmic_tests"):
        writer.execute(f"CREATE TABLE {table} AS SELECT * FROM done.{table}")
    writer.execute("UPDATE runs SET status = 'running'")
    writer.execute("CREATE TABLE reading_samples AS SELECT * FROM done.reading_samples WHERE timestamp < $t",
                   {"t": START + timedelta(hours=1)})
    source = ReplaySource.from_connection(writer, "live")
    assert source.live and source.info.status == "running"
    player = Player(source, source.window(), speed="max", chunk_rows=240)
    first = [json.loads(f.payload) for f in player.poll(max_frames=30)]
    # The writer commits the next hour while the replay is under way; the replay follows it.
    writer.execute("INSERT INTO reading_samples SELECT * FROM done.reading_samples WHERE timestamp >= $a "
                   "AND timestamp < $b ORDER BY timestamp, battery_key",
                   {"a": START + timedelta(hours=1), "b": START + timedelta(hours=2)})
    rest = []
    while player.state != "following":  # at the edge it waits for more (issue 16), it does not end
        rest.extend(json.loads(frame.payload) for frame in player.poll())
    frames = first + rest
    assert len(frames) == 120 and [f["seq"] for f in frames] == list(range(120))
    assert digest(readings_of(frames)) == digest(expected(day, "WHERE timestamp < $t",
                                                          {"t": START + timedelta(hours=2)}))
    player.close()
    source.close()
    writer.close()


# ------------------------------------------------------------------------------------ CLI
runner = CliRunner()


def test_cli_writes_the_frames_as_json_lines(day):
    result = runner.invoke(app, ["replay", str(day), "--speed", "max", "--from", "+6h", "--to", "+7h",
                                 "--battery", "BKK_DC1_SYS01_STR01_BAT001", "--battery", "BKK_DC1_SYS01_STR01_BAT002"])
    assert result.exit_code == 0, result.output
    frames = [json.loads(line) for line in result.stdout.splitlines()]
    want = expected(day, "WHERE timestamp >= $a AND timestamp < $b AND battery_id IN "
                         "('BKK_DC1_SYS01_STR01_BAT001', 'BKK_DC1_SYS01_STR01_BAT002')",
                    {"a": START + timedelta(hours=6), "b": START + timedelta(hours=7)})
    assert len(frames) == 60 and digest(readings_of(frames)) == digest(want)
    assert "replayed 120 readings in 60 frames" in result.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["replay", "{tmp}/missing.duckdb"], "FILE: {tmp}/missing.duckdb: no such recording"),
    (["replay", "{tmp}/text.duckdb"], "FILE: {tmp}/text.duckdb: not a DuckDB file"),
    (["replay", "{day}", "--from", "+3h", "--to", "+1h"], "--to: "),
    (["replay", "{day}", "--speed", "0"], "--speed: 0 is outside 0.01-100000"),
    (["replay", "{day}", "--speed", "200000"], "--speed: 200000 is outside"),
    (["replay", "{day}", "--speed", "fast"], "--speed: 'fast' is not a number or 'max'"),
    (["replay", "{day}", "--battery", "NOPE"], "--battery: unknown NOPE"),
    (["replay", "{day}", "--site", "NOPE"], "--site: unknown NOPE"),
    (["replay", "{day}", "--from", "soon"], "--from: 'soon' is not an ISO 8601 time"),
])
def test_cli_refuses_bad_input_with_exit_code_2(tmp_path, day, args, message):
    (tmp_path / "text.duckdb").write_text("hello")
    args = [a.format(tmp=tmp_path, day=day) for a in args]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert message.format(tmp=tmp_path) in " ".join(result.stderr.split())
    assert result.stdout == ""


def test_cli_ctrl_c_ends_after_whole_lines(day, monkeypatch):
    """Ctrl-C (SIGINT) while frames are being written: exit 0, and every line is a whole frame."""
    import os
    import signal

    from battsim.recordings.replay import player as player_module

    polls = []
    poll = player_module.Player.poll

    def poll_then_interrupt(self, *args, **kwargs):
        polls.append(1)
        if len(polls) == 3:
            os.kill(os.getpid(), signal.SIGINT)  # arrives while this poll's frames are written
        return poll(self, *args, **kwargs)

    monkeypatch.setattr(player_module.Player, "poll", poll_then_interrupt)
    handler = signal.getsignal(signal.SIGINT)
    result = runner.invoke(app, ["replay", str(day), "--speed", "3600"], catch_exceptions=False)
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert len(lines) >= 1 and all(json.loads(line)["type"] == "telemetry" for line in lines)
    assert len(lines) < 1440 and result.stdout.endswith("\n")
    assert signal.getsignal(signal.SIGINT) is handler  # given back


# ------------------------------------------------------------------------------------ same frames as live
def test_replay_frames_are_the_live_frames_of_the_same_readings(day):
    """The live service encodes a tick from numpy, the replay inside DuckDB: the JSON must be the same."""
    from battsim.engine.fleet import build_fleet
    from battsim.engine.readings import READING_COLUMNS
    from battsim.service import broadcast

    encoder = broadcast.TelemetryEncoder(build_fleet(get_preset("single-string"), seed=3))
    source = ReplaySource.open(day)
    player = Player(source, source.window(start="+8h", end="+8h5m"), speed="max")
    replayed = [f.payload for f in player.poll()]
    player.close()
    with duckdb.connect(str(day), read_only=True) as con:
        for seq, payload in enumerate(replayed):
            columns = con.sql("SELECT epoch_us(timestamp) AS timestamp_us, * EXCLUDE (timestamp) FROM reading_samples "
                              "WHERE timestamp = $t ORDER BY battery_key",
                              params={"t": START + timedelta(hours=8, minutes=seq)}).fetchnumpy()
            columns = {name: np.asarray(columns[name]).astype(dtype) for name, (dtype, _) in READING_COLUMNS.items()}
            live = encoder.tick(seq, columns, slice(0, 24)).text(broadcast.ReadingFilter())
            mine = json.loads(payload)
            assert mine == json.loads(live)
            assert [list(r) for r in mine["data"]] == [list(r) for r in json.loads(live)["data"]]  # key order too
    source.close()
