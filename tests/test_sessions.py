"""Several simulations side by side in one `battsim serve` (issue 18, point 4): named sessions under
/api/v1/sessions/{name}/..., each with its own recording and WebSocket, the original endpoints on the default one,
and the limits on sessions and jars."""

from __future__ import annotations

from battsim.recordings import open_recording
from test_service_helpers import next_of, serve

START = "2026-04-01T06:00:00+07:00"
SINGLE = {"preset": "single-string", "interval_seconds": 5, "speed": 600, "start": START}  # 24 jars
TWO_JARS = {"batteries": [{"battery_id": "A1"}, {"battery_id": "A2"}], "interval_seconds": 5, "speed": 600,
            "start": START}


def test_named_sessions_run_side_by_side_each_with_its_recording_and_websocket(tmp_path):
    with serve(tmp_path / "recordings") as server:
        http = server.http
        assert http.post("/api/v1/sessions/lab/simulation/start", json=TWO_JARS).status_code == 200
        assert http.post("/api/v1/simulation/start", json=SINGLE).status_code == 200  # the default session
        lab = http.get("/api/v1/sessions/lab/simulation/status").json()
        default = http.get("/api/v1/simulation/status").json()
        assert lab["is_running"] and lab["batteries_count"] == 2 and lab["session"] == "lab"
        assert default["is_running"] and default["batteries_count"] == 24 and default["session"] == "default"
        assert http.get("/api/v1/sessions/default/simulation/status").json()["batteries_count"] == 24

        with server.telemetry() as default_ws, \
                server.connect("/api/v1/sessions/lab/ws/telemetry?battery_id=A2") as lab_ws:
            frame = next_of(lab_ws, "telemetry")
            assert {reading["battery_id"] for reading in frame["data"]} == {"A2"}
            assert len(next_of(default_ws, "telemetry")["data"]) == 24

        # A scenario applied in one session acts there only.
        applied = http.post("/api/v1/sessions/lab/scenarios/apply", json={"scenario": "power_outage"})
        assert applied.status_code == 200 and applied.json()["batteries"] == 2
        assert [a["name"] for a in http.get("/api/v1/sessions/lab/scenarios/active").json()] == ["power_outage"]
        assert http.get("/api/v1/scenarios/active").json() == []

        listing = http.get("/api/v1/sessions").json()
        by_name = {entry["name"]: entry for entry in listing["sessions"]}
        assert set(by_name) == {"default", "lab"} and all(entry["is_running"] for entry in by_name.values())
        assert by_name["lab"]["path"] == "/api/v1/sessions/lab"
        assert by_name["lab"]["recording_path"] != by_name["default"]["recording_path"]

        stopped = http.post("/api/v1/sessions/lab/simulation/stop").json()
        assert stopped["status"] == "stopped"
        assert http.get("/api/v1/simulation/status").json()["is_running"]  # the default one goes on
        assert not http.get("/api/v1/sessions/lab/simulation/status").json()["is_running"]
        lab_file = by_name["lab"]["recording_path"]

    with open_recording(lab_file) as recording:
        ids = set(recording.sql("SELECT DISTINCT battery_id FROM readings")["battery_id"])
        kinds = set(recording.sql("SELECT DISTINCT kind FROM events")["kind"])
        assert recording.run.status == "complete"
    assert ids == {"A1", "A2"} and "scenario_applied" in kinds


def test_sessions_are_bounded_and_bad_names_are_refused(tmp_path):
    with serve(tmp_path / "recordings", max_named_sessions=2, max_live_jars=25) as server:
        http = server.http
        assert http.post("/api/v1/sessions/a/simulation/start", json=TWO_JARS).status_code == 200
        assert http.post("/api/v1/sessions/b/simulation/start", json=TWO_JARS).status_code == 200
        third = http.post("/api/v1/sessions/c/simulation/start", json=TWO_JARS)
        assert third.status_code == 429 and "at most 2 named sessions" in third.json()["detail"]
        too_big = http.post("/api/v1/simulation/start", json=SINGLE)  # 24 jars more than the 4 running
        assert too_big.status_code == 429 and "25 jars" in too_big.json()["detail"]
        again = http.post("/api/v1/sessions/a/simulation/start", json=TWO_JARS)
        assert again.status_code == 400 and "/api/v1/sessions/a/simulation/stop" in again.json()["detail"]
        assert http.post("/api/v1/sessions/a/simulation/stop").status_code == 200
        # A stopped named session may start again: its slot is reused, not a new one.
        assert http.post("/api/v1/sessions/a/simulation/start", json=TWO_JARS).status_code == 200

        bad = http.post("/api/v1/sessions/no%20spaces/simulation/start", json=TWO_JARS)
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["path", "name"]
        unknown = http.get("/api/v1/sessions/never/simulation/status")
        assert unknown.status_code == 404 and "no session named 'never'" in unknown.json()["detail"]
        assert http.post("/api/v1/sessions/never/scenarios/apply", json={"scenario": "power_outage"}).status_code == 400
        with server.connect("/api/v1/sessions/never/ws/telemetry") as ws:
            assert next_of(ws, "error")["detail"] == "no session named 'never'"
        assert http.get("/api/v1/sessions").json()["limits"] == {"named_sessions": 2, "live_jars": 25}
