"""The replay router: recordings listing, replay control, and the replay WebSocket."""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from websockets.sync.client import connect

from battsim.engine.fleet import get_preset
from battsim.recordings.batch import BatchRun, record_run
from battsim.service.routes_replay import Replays, router

START = datetime(2026, 3, 1, tzinfo=ZoneInfo("Asia/Bangkok"))
UTC = UTC
WAIT_S = 30.0  # the most any response or message may take before a test fails


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    path = tmp_path_factory.mktemp("replay-src") / "outage-day.duckdb"
    summary = record_run(BatchRun(fleet=get_preset("single-string"), out=path, seed=5, start=START,
                                  end=START + timedelta(hours=6), interval_s=60, preset="single-string"))
    return path, summary.run_id


@pytest.fixture
def client(recorded, tmp_path):
    """The router in an app served by uvicorn on 127.0.0.1 (a real server: the WebSocket runs as in use)."""
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(recorded[0], data / "outage-day.duckdb")
    (data / "notes.duckdb").write_text("not a database")
    app = FastAPI()
    app.state.replays = Replays(data)
    app.include_router(router)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", ws_per_message_deflate=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + WAIT_S
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.01)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=WAIT_S) as http:
        http.ws_url = f"ws://127.0.0.1:{port}/api/v1/ws/replay"
        try:
            yield http
        finally:
            server.should_exit = True
            thread.join(WAIT_S)
            sock.close()


def replay_socket(client):
    return connect(client.ws_url, open_timeout=WAIT_S, max_size=None)


def count(path, where="", params=None) -> int:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(f"SELECT count(*) FROM readings {where}", params or {}).fetchall()[0][0]


def receive_until(ws, predicate, limit=10_000) -> list[dict]:
    """Messages up to and including the first for which ``predicate`` holds (pings and clock frames skipped)."""
    got = []
    for _ in range(limit):
        message = json.loads(ws.recv(timeout=WAIT_S))
        if message["type"] in ("ping", "clock"):
            continue
        got.append(message)
        if predicate(message):
            return got
    raise AssertionError("no matching message")


def test_recordings_are_listed_with_span_readings_status(client, recorded):
    listed = client.get("/api/v1/recordings").json()
    assert [r["id"] for r in listed] == ["outage-day"]  # notes.duckdb is not a recording
    one = listed[0]
    assert one["run_id"] == recorded[1] and one["preset"] == "single-string" and one["status"] == "complete"
    assert one["readings"] == 360 * 24 and one["span_s"] == 6 * 3600 and one["interval_s"] == 60
    assert one["start"] == START.astimezone(UTC).isoformat()
    detail = client.get("/api/v1/recordings/outage-day").json()
    assert len(detail["battery_ids"]) == 24 and detail["sites"] == ["BKK_DC1"]
    assert client.get(f"/api/v1/recordings/{recorded[1]}").json()["id"] == "outage-day"  # by run id too
    assert client.get("/api/v1/recordings/nope").status_code == 404
    assert client.get("/api/v1/recordings/notes").status_code == 404


@pytest.mark.parametrize(("body", "status", "field"), [
    ({"recording": "nope"}, 404, None),
    ({"recording": "notes"}, 404, None),
    ({"recording": "../etc/passwd"}, 422, "recording"),
    ({"recording": "outage-day", "speed": 0}, 422, "speed"),
    ({"recording": "outage-day", "speed": 200_000}, 422, "speed"),
    ({"recording": "outage-day", "speed": "fast"}, 422, "speed"),
    ({"recording": "outage-day", "from": "+3h", "to": "+1h"}, 422, "to"),
    ({"recording": "outage-day", "from": "tomorrow"}, 422, "from"),
    ({"recording": "outage-day", "battery_ids": ["X"]}, 422, "battery_ids"),
    ({"recording": "outage-day", "site_ids": ["X"]}, 422, "site_ids"),
    ({"recording": "outage-day", "colour": "red"}, 422, "colour"),
])
def test_bad_start_requests_are_refused(client, body, status, field):
    response = client.post("/api/v1/replay/start", json=body)
    assert response.status_code == status, response.text
    if field:
        assert field in json.dumps(response.json()["detail"])


def test_without_a_session_status_is_idle_and_commands_are_404(client):
    assert client.get("/api/v1/replay/status").json() == {"state": "idle"}
    for command in ("pause", "resume", "stop"):
        assert client.post(f"/api/v1/replay/{command}").status_code == 404
    assert client.post("/api/v1/replay/seek", json={"time": "+1h"}).status_code == 404
    assert client.post("/api/v1/replay/speed", json={"speed": 2}).status_code == 404


def test_websocket_gets_every_frame_and_a_state_frame_after_each_command(client, recorded):
    started = client.post("/api/v1/replay/start", json={
        "recording": "outage-day", "speed": "max", "from": "+1h", "to": "+2h", "site_ids": ["BKK_DC1"],
        "start_paused": True}).json()
    assert started["state"] == "paused" and started["speed"] == "max" and started["batteries"] == 24
    with replay_socket(client) as ws:
        greeting = json.loads(ws.recv(timeout=WAIT_S))
        assert greeting["type"] == "playback_state" and greeting["state"] == "paused"

        # Seek while paused: a state frame, and the moment's values (each battery's last at or before it).
        client.post("/api/v1/replay/seek", json={"time": "+1h30m30s"})
        got = receive_until(ws, lambda m: m["type"] == "telemetry")
        assert [m["type"] for m in got] == ["playback_state", "telemetry"]
        snapshot = got[-1]
        assert snapshot["sim_time"] == (START + timedelta(minutes=90, seconds=30)).astimezone(UTC).isoformat()
        assert {r["timestamp"] for r in snapshot["data"]} == {
            (START + timedelta(minutes=90)).astimezone(UTC).isoformat()}
        assert len(snapshot["data"]) == 24

        status = client.post("/api/v1/replay/resume").json()
        assert status["state"] in ("playing", "ended")
        got = receive_until(ws, lambda m: m["type"] == "playback_state" and m["state"] == "ended")
        telemetry = [m for m in got if m["type"] == "telemetry"]
        # Everything from 01:31 to 01:59, none dropped (at max the replay waits for its subscribers).
        assert len(telemetry) == 29 and sum(len(m["data"]) for m in telemetry) == 29 * 24
        assert [m["seq"] for m in telemetry] == list(range(snapshot["seq"] + 1, snapshot["seq"] + 30))
        assert got[0]["type"] == "playback_state" and got[0]["state"] == "playing"
        assert got[-1]["ended_reason"] == "finished" and got[-1]["readings"] == 30 * 24
    final = client.get("/api/v1/replay/status").json()
    assert final["state"] == "ended" and final["frames"] == 30


def test_a_whole_replay_over_the_websocket_is_the_recording(client, recorded):
    client.post("/api/v1/replay/start", json={"recording": "outage-day", "speed": "max", "start_paused": True,
                                              "battery_ids": ["BKK_DC1_SYS01_STR01_BAT007"]})
    with replay_socket(client) as ws:
        receive_until(ws, lambda m: m["type"] == "playback_state")
        client.post("/api/v1/replay/resume")
        got = receive_until(ws, lambda m: m["type"] == "playback_state" and m["state"] == "ended")
    readings = [r for m in got if m["type"] == "telemetry" for r in m["data"]]
    assert len(readings) == count(recorded[0], "WHERE battery_id = 'BKK_DC1_SYS01_STR01_BAT007'") == 360
    assert {r["battery_id"] for r in readings} == {"BKK_DC1_SYS01_STR01_BAT007"}


def test_pause_speed_stop_and_replacing_a_session(client):
    client.post("/api/v1/replay/start", json={"recording": "outage-day", "speed": 1})
    paused = client.post("/api/v1/replay/pause").json()
    assert paused["state"] == "paused" and paused["achieved_speed"] == 0
    faster = client.post("/api/v1/replay/speed", json={"speed": 3600}).json()
    assert faster["speed"] == 3600 and faster["state"] == "paused"
    assert client.post("/api/v1/replay/speed", json={"speed": 0.001}).status_code == 422
    assert client.post("/api/v1/replay/seek", json={"time": "+7h"}).status_code == 422
    first = client.get("/api/v1/replay/status").json()["session"]
    second = client.post("/api/v1/replay/start", json={"recording": "outage-day", "start_paused": True}).json()
    assert second["session"] != first and second["state"] == "paused"
    stopped = client.post("/api/v1/replay/stop").json()
    assert stopped["state"] == "ended" and stopped["ended_reason"] == "stopped"


def test_the_services_own_live_recording_replays_up_to_what_is_written(tmp_path):
    """Through the whole app: a live run's file is read via its writer's connection, then again on its own.

    Only what has been committed is checked, never how fast: the live run is paused while the replay plays
    (so the replay has an edge to reach however slow the machine); at the edge it is ``following`` (it waits
    for commits, it does not end), and when the run is resumed to commit more, it plays on by itself.
    """
    from test_service_helpers import serve, wait_until

    with serve(tmp_path / "recordings") as server:
        http = server.http
        started = http.post("/api/v1/simulation/start", json={"preset": "single-string", "interval_seconds": 1,
                                                               "speed": 600, "seed": 9}).json()
        recording_id = Path(started["recording_path"]).stem

        def committed() -> dict:
            return next(r for r in http.get("/api/v1/recordings").json() if r["id"] == recording_id)

        def pause_until_all_is_committed(at_least: int) -> int:
            wait_until(lambda: committed()["readings"] >= at_least)
            generated = http.post("/api/v1/simulation/pause").json()["readings_generated"]
            return wait_until(lambda: committed()["readings"] == generated and generated)

        first_part = pause_until_all_is_committed(24 * 60)
        assert committed()["status"] == "running"
        with connect(server.ws + "/api/v1/ws/replay", open_timeout=WAIT_S, max_size=None) as ws:
            json.loads(ws.recv(timeout=WAIT_S))  # the greeting
            replay = http.post("/api/v1/replay/start", json={"recording": recording_id, "speed": "max"})
            assert replay.status_code == 200, replay.text
            got = receive_until(ws, lambda m: m["type"] == "playback_state" and m["state"] == "following")
            telemetry = [m for m in got if m["type"] == "telemetry"]
            assert len(telemetry) * 24 == first_part and all(len(m["data"]) == 24 for m in telemetry)

            # More is committed; the replay, following, plays it without being told (issue 16).
            http.post("/api/v1/simulation/resume")
            both_parts = pause_until_all_is_committed(first_part + 24 * 60)
            more = receive_until(ws, lambda m: m["type"] == "telemetry" and m["seq"] == both_parts // 24 - 1)
        followed = [m for m in more if m["type"] == "telemetry"]
        played = telemetry + followed
        assert [m["seq"] for m in played] == list(range(len(played)))
        telemetry += followed
        assert len(telemetry) * 24 == both_parts
        http.post("/api/v1/simulation/stop")
    # The run is complete now: what was replayed while it was written is what the file holds.
    path = tmp_path / "recordings" / f"{recording_id}.duckdb"
    times = [datetime.fromisoformat(m["sim_time"]) for m in telemetry]
    assert times == sorted(set(times)) and count(path, "WHERE timestamp <= $b", {"b": times[-1]}) == 24 * len(times)
    with duckdb.connect(str(path), read_only=True) as con:
        first = con.sql("SELECT battery_id, voltage_v FROM readings WHERE timestamp = $t ORDER BY battery_id",
                        params={"t": times[0]}).fetchall()
    assert [(r["battery_id"], r["voltage_v"]) for r in sorted(telemetry[0]["data"], key=lambda r: r["battery_id"])] \
        == [(b, round(float(v), 3)) for b, v in first]
