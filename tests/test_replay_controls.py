"""Replay controls (issue 16, point 3): step, string filter, a window changed while playing, a delayed
start, clock frames, the achieved rate, and seq across loops. Paced with a fake clock, or over a real
socket waiting on messages (never on time)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from battsim.engine.fleet import get_preset
from battsim.recordings.batch import BatchRun, record_run
from battsim.recordings.replay import Player, ReplayError, ReplaySource
from battsim.service.cli import app
from test_replay_http import receive_until, replay_socket

START = datetime(2026, 3, 1, tzinfo=UTC)
STRING = "CNX_DC1_SYS01_STR01"


@pytest.fixture(scope="module")
def fleet_hour(tmp_path_factory):
    """The 9 Thai sites (one string each), one hour at 60 s: 60 ticks of 216 jars."""
    path = tmp_path_factory.mktemp("controls") / "hour.duckdb"
    record_run(BatchRun(fleet=get_preset("thailand-9x24"), out=path, seed=2, start=START,
                        end=START + timedelta(hours=1), interval_s=60))
    return path


class FakeClock:
    def __init__(self):
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def frames_of(player: Player) -> list[dict]:
    return [json.loads(frame.payload) for frame in player.poll()]


@pytest.fixture
def source(fleet_hour):
    source = ReplaySource.open(fleet_hour)
    yield source
    source.close()


def test_step_sends_one_frame_and_stays_paused(source):
    clock = FakeClock()
    player = Player(source, source.window(), speed=60, paused=True, wall_clock=clock)
    clock.t += 600  # paused: nothing falls due however long it waits
    assert frames_of(player) == []
    player.step()
    player.step()
    stepped = frames_of(player)
    assert [f["seq"] for f in stepped] == [0, 1] and player.state == "paused"
    assert stepped[1]["sim_time"] == (START + timedelta(minutes=1)).isoformat()
    assert player.position() == START + timedelta(minutes=1)
    player.resume()
    clock.t += 1.0  # one virtual minute at 60x: the next tick
    assert [f["seq"] for f in frames_of(player)] == [2]
    with pytest.raises(ReplayError, match="pause it first") as error:
        player.step()
    assert error.value.field == "step"
    player.close()


def test_string_filter_selects_that_strings_jars(source):
    player = Player(source, source.window(strings=[STRING]), speed="max")
    frames = frames_of(player)
    assert {r["string_id"] for f in frames for r in f["data"]} == {STRING}
    assert all(len(f["data"]) == 24 for f in frames)
    player.close()
    with pytest.raises(ReplayError, match="unknown NOPE") as error:
        source.window(strings=["NOPE"])
    assert error.value.field == "string_ids"


def test_the_loop_window_changes_while_playing_and_seq_goes_on_across_loops(source):
    clock = FakeClock()
    player = Player(source, source.window(start="+10m", end="+13m"), speed=60, loop=True, wall_clock=clock)
    sent = []
    for _ in range(8):  # 8 virtual minutes over a 3-minute window: it loops
        sent += frames_of(player)
        clock.t += 1.0
    times = [f["sim_time"] for f in sent]
    assert set(times) == {(START + timedelta(minutes=m)).isoformat() for m in (10, 11, 12)} and player.loops >= 2
    # seq numbers every frame sent: it never restarts, while sim_time does at each loop.
    assert [f["seq"] for f in sent] == list(range(len(sent)))
    player.set_window("+30m", "+32m")
    later = []
    for _ in range(5):
        later += frames_of(player)
        clock.t += 1.0
    assert {f["sim_time"] for f in later} == {(START + timedelta(minutes=m)).isoformat() for m in (30, 31)}
    assert [f["seq"] for f in sent + later] == list(range(len(sent) + len(later)))
    with pytest.raises(ReplayError) as error:
        player.set_window("+40m", "+35m")
    assert error.value.field == "to"
    player.close()


def test_achieved_rate_is_reported(source):
    clock = FakeClock()
    player = Player(source, source.window(), speed=120, wall_clock=clock)
    for _ in range(6):
        frames_of(player)
        clock.t += 0.5
    frames_of(player)
    status = player.status().as_dict()
    assert status["achieved_speed"] == pytest.approx(120, rel=0.05)
    assert status["achieved_frames_per_s"] == pytest.approx(2.0, rel=0.05)  # 120x at 60 s: two ticks a second
    player.close()


def clock_frame(ws) -> dict:
    """The next clock frame (receive_until skips them)."""
    for _ in range(10_000):
        message = json.loads(ws.recv(timeout=30))
        if message["type"] == "clock":
            return message
    raise AssertionError("no clock frame")


def test_http_delay_step_window_and_clock_frames(client_hour):
    http = client_hour
    with replay_socket(http) as ws:
        receive_until(ws, lambda m: m["type"] == "playback_state")
        started = http.post("/api/v1/replay/start", json={"recording": "hour", "speed": 60, "delay_s": 0.5,
                                                          "string_ids": [STRING]}).json()
        assert started["state"] == "paused" and started["resumes_in_s"] > 0 and started["batteries"] == 24
        # Without a command it starts playing after the delay; clock frames come while it plays.
        receive_until(ws, lambda m: m["type"] == "playback_state" and m["state"] == "playing")
        clock = clock_frame(ws)
        assert clock["state"] == "playing" and datetime.fromisoformat(clock["sim_time"]) >= START
        assert http.post("/api/v1/replay/step").status_code == 422  # playing: nothing to step
        http.post("/api/v1/replay/pause")
        stepped = http.post("/api/v1/replay/step")
        assert stepped.status_code == 200 and stepped.json()["state"] == "paused"
        frame = receive_until(ws, lambda m: m["type"] == "telemetry" and m["seq"] == stepped.json()["frames"])
        assert {r["string_id"] for r in frame[-1]["data"]} == {STRING}
        window = http.post("/api/v1/replay/window", json={"from": "+40m", "to": "+45m", "loop": True})
        assert window.status_code == 200 and window.json()["loop"] and window.json()["from"] == \
            (START + timedelta(minutes=40)).isoformat()
        assert http.post("/api/v1/replay/window", json={"from": "soon"}).status_code == 422


@pytest.fixture
def client_hour(fleet_hour, tmp_path):
    import shutil
    import socket
    import threading
    import time

    import httpx
    import uvicorn
    from fastapi import FastAPI

    from battsim.service.routes_replay import Replays, router

    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(fleet_hour, data / "hour.duckdb")
    web = FastAPI()
    web.state.replays = Replays(data)
    web.include_router(router)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(web, log_level="warning", ws_per_message_deflate=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        http.ws_url = f"ws://127.0.0.1:{port}/api/v1/ws/replay"
        try:
            yield http
        finally:
            http.post("/api/v1/replay/stop")
            server.should_exit = True
            thread.join(30)
            sock.close()


runner = CliRunner()


def test_cli_string_filter_and_delay(fleet_hour):
    result = runner.invoke(app, ["replay", str(fleet_hour), "--speed", "max", "--string", STRING, "--to", "+5m",
                                 "--delay", "0.1"])
    assert result.exit_code == 0, result.output
    frames = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(frames) == 5 and {r["string_id"] for f in frames for r in f["data"]} == {STRING}


@pytest.mark.parametrize(("args", "flag"), [(["--string", "NOPE"], "--string"), (["--delay", "-1"], "--delay")])
def test_cli_refuses_bad_string_or_delay(fleet_hour, args, flag):
    result = runner.invoke(app, ["replay", str(fleet_hour), *args])
    assert result.exit_code == 2 and flag in result.output
