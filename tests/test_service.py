"""The live service over real HTTP and WebSocket: the original API, live telemetry, scenarios, recording."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import numpy as np
import pytest

from battsim.recordings import open_recording
from battsim.wire import WIRE_NUMBERS
from test_service_helpers import WAIT_S, next_of, reading_of, receive, serve, wait_until

# The seed document's curl bodies, verbatim.
SEED_START = {
    "batteries": [
        {"battery_id": "BAT001", "profile": "healthy", "initial_soh": 95.0},
        {"battery_id": "BAT002", "profile": "accelerated", "initial_soh": 85.0},
    ],
    "interval_seconds": 5,
}
SEED_APPLY = {"scenario": "power_outage", "battery_ids": ["BAT001"], "ambient_temp": 28.0}
ORIGINAL_SCENARIOS = {"normal_operation", "high_temperature", "power_outage", "hvac_failure", "battery_degradation",
                      "thermal_runaway"}
ORIGINAL_READING_FIELDS = {"battery_id", "timestamp", "voltage_v", "current_a", "temperature_c",
                           "internal_resistance_mohm", "soh_pct", "mode"}
START = "2026-04-01T06:00:00+07:00"


@pytest.fixture
def server(tmp_path):
    with serve(tmp_path / "recordings") as running:
        yield running


def decimals(value: float) -> int:
    text = repr(value)
    return len(text.split(".")[1]) if "." in text else 0


def test_the_seed_curl_examples_work_verbatim(server):
    http = server.http
    assert http.get("/health").json() == {"status": "healthy", "service": "sensor-simulator", "version": "1.0.0",
                                          "battsim_version": http.get("/health").json()["battsim_version"]}
    listing = http.get("/", headers={"Accept": "application/json"}).json()
    assert listing["endpoints"]["start_simulation"] == "POST /api/v1/simulation/start"

    scenarios = http.get("/api/v1/scenarios").json()
    assert ORIGINAL_SCENARIOS <= {s["scenario"] for s in scenarios}
    outage = next(s for s in scenarios if s["scenario"] == "power_outage")
    assert outage["name"] == "Power Outage" and outage["description"] and isinstance(outage["typical_conditions"], dict)

    started = http.post("/api/v1/simulation/start", json=SEED_START)
    assert started.status_code == 200
    assert started.json() | {"status": "started", "message": "Simulation started for 2 batteries",
                             "interval_seconds": 5} == started.json()

    status = http.get("/api/v1/simulation/status").json()
    assert status["is_running"] is True and status["batteries_count"] == 2 and status["interval_seconds"] == 5
    assert status["scenario"] is None and datetime.fromisoformat(status["started_at"]).tzinfo is not None
    assert status["recording_id"] == started.json()["recording_id"]
    wait_until(lambda: http.get("/api/v1/simulation/status").json()["readings_generated"] >= 2)

    applied = http.post("/api/v1/scenarios/apply", json=SEED_APPLY)
    assert applied.status_code == 200
    assert applied.json()["status"] == "applied"
    assert applied.json()["message"].startswith("Scenario 'power_outage' applied to 1 batteries")

    for body in ({"battery_ids": ["BAT001"]}, ["BAT001"], None):
        cleared = http.post("/api/v1/scenarios/clear", json=body) if body is not None else http.post(
            "/api/v1/scenarios/clear")
        assert cleared.status_code == 200 and cleared.json()["status"] == "cleared", cleared.text
        assert cleared.json()["message"].startswith("Scenarios cleared for ")

    stopped = http.post("/api/v1/simulation/stop")
    assert stopped.json() | {"status": "stopped", "message": "Simulation stopped successfully"} == stopped.json()
    assert http.get("/api/v1/simulation/status").json()["is_running"] is False


def test_status_codes_name_what_is_wrong(server):
    http = server.http
    # The original's codes: apply with nothing running is a 400; stop and clear with nothing running are fine.
    assert http.post("/api/v1/scenarios/apply", json=SEED_APPLY).status_code == 400
    assert http.post("/api/v1/simulation/stop").json()["warnings"] == ["no simulation was running"]
    assert http.post("/api/v1/scenarios/clear").status_code == 200

    # On the original's endpoints a 422's detail is one line of text naming the field (its frontend shows it).
    for interval in (0, 61):
        response = http.post("/api/v1/simulation/start", json=SEED_START | {"interval_seconds": interval})
        assert response.status_code == 422
        assert response.json()["detail"].startswith("interval_seconds: ")
    response = http.post("/api/v1/simulation/start", json=SEED_START | {"scenario": "meteor_strike"})
    assert response.status_code == 422 and "power_outage" in response.json()["detail"]
    response = http.post("/api/v1/simulation/start", json={"preset": "atlantis"})
    assert response.status_code == 422 and "thailand-9x24" in response.json()["detail"]
    response = http.post("/api/v1/simulation/start", json=SEED_START | {"timeline": "no-such-timeline"})
    assert response.status_code == 422 and response.json()["detail"].startswith("timeline: ")
    assert "daily-outage" in response.json()["detail"]
    assert list(server.data_dir.glob("*.duckdb")) == [], "refused starts must not leave recordings"

    assert http.post("/api/v1/simulation/start", json=SEED_START | {"speed": 1000}).status_code == 200
    assert http.post("/api/v1/simulation/start", json=SEED_START).status_code == 400

    # Unknown battery ids are ignored, as the original did, and named in warnings; unknown sites are refused.
    response = http.post("/api/v1/scenarios/apply", json={"scenario": "power_outage", "battery_ids": ["BAT001", "BAT009"]})
    assert response.status_code == 200 and response.json()["batteries"] == 1
    assert "BAT009" in response.json()["warnings"][0] and "BAT001" not in response.json()["warnings"][0].split("(")[0]
    response = http.post("/api/v1/scenarios/apply", json={"scenario": "power_outage", "site_ids": ["ATLANTIS"]})
    assert response.status_code == 404 and "ATLANTIS" in response.json()["detail"]
    response = http.post("/api/v1/scenarios/apply", json={"scenario": "meteor_strike"})
    assert response.status_code == 422 and "thermal_runaway" in response.json()["detail"]
    response = http.post("/api/v1/scenarios/apply", json=SEED_APPLY | {"ambient_temp": 61})
    assert response.status_code == 422 and response.json()["detail"].startswith("ambient_temp: ")
    response = http.post("/api/v1/scenarios/apply", json={"scenario": "hvac_degradation", "params": {"capacity_pct": -5}})
    assert response.status_code == 422 and "capacity_pct" in response.json()["detail"]
    cleared = http.post("/api/v1/scenarios/clear", json=["BAT404"])
    assert cleared.status_code == 200 and "BAT404" in cleared.json()["warnings"][0]
    # The extensions stay strict, with FastAPI's list of errors.
    response = http.post("/api/v1/simulation/speed", json={"speed": 0})
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["body", "speed"]
    response = http.post("/api/v1/replay/start", json={"recording": "nope", "note": "x"})
    assert response.status_code == 422 and [error["loc"][-1] for error in response.json()["detail"]] == ["note"]


def test_of_two_simultaneous_starts_one_wins(server):
    body = {"preset": "thailand-full", "interval_seconds": 60}
    with ThreadPoolExecutor(2) as pool:
        codes = sorted(pool.map(lambda _: server.http.post("/api/v1/simulation/start", json=body).status_code, range(2)))
    assert codes == [200, 400]  # the original's code for "already running"
    assert len(list(server.data_dir.glob("*.duckdb"))) == 1
    server.http.post("/api/v1/simulation/stop").raise_for_status()


def test_telemetry_frames_arrive_at_the_configured_interval(server):
    with server.telemetry() as ws:
        assert receive(ws)["type"] == "status"  # the greeting
        server.http.post("/api/v1/simulation/start", json=SEED_START | {"speed": 500, "start": START}).raise_for_status()
        frames = [next_of(ws, "telemetry") for _ in range(6)]
    seqs = [frame["seq"] for frame in frames]
    assert seqs == list(range(seqs[0], seqs[0] + 6))
    times = [datetime.fromisoformat(frame["sim_time"]) for frame in frames]
    assert all(later - earlier == timedelta(seconds=5) for earlier, later in zip(times, times[1:]))
    assert times[0] - datetime.fromisoformat(START) == timedelta(seconds=5 * seqs[0])
    for frame in frames:
        assert [reading["battery_id"] for reading in frame["data"]] == ["BAT001", "BAT002"]
        for reading in frame["data"]:
            assert ORIGINAL_READING_FIELDS | {"soc_pct", "site_id", "string_id", "ambient_c"} <= set(reading)
            assert datetime.fromisoformat(reading["timestamp"]) == datetime.fromisoformat(frame["sim_time"])
            assert reading["timestamp"].endswith("+00:00")
            assert reading["mode"] == "float" and 13.0 < reading["voltage_v"] < 14.5
            for name in ("voltage_v", "current_a", "internal_resistance_mohm"):
                assert decimals(reading[name]) <= 3
            for name in ("temperature_c", "soh_pct", "soc_pct", "ambient_c"):
                assert decimals(reading[name]) <= 2


def test_power_outage_discharges_only_its_battery_then_boost_and_float(server):
    http = server.http
    with server.telemetry() as ws:
        http.post("/api/v1/simulation/start", json=SEED_START | {"interval_seconds": 60, "speed": 600}).raise_for_status()
        next_of(ws, "telemetry")
        applied = http.post("/api/v1/scenarios/apply", json={"scenario": "power_outage", "battery_ids": ["BAT001"]})
        assert applied.status_code == 200
        applied_seq = applied.json()["seq"]  # the last tick before the outage began
        after = [next_of(ws, "telemetry", lambda f: f["seq"] > applied_seq) for _ in range(2)]
        assert after[1]["seq"] == applied_seq + 2
        assert any(reading_of(f, "BAT001")["mode"] == "discharge" and reading_of(f, "BAT001")["current_a"] < 0
                   for f in after), "BAT001 must discharge within two ticks"
        assert reading_of(after[-1], "BAT001")["mode"] == "discharge"
        assert all(reading_of(f, "BAT002")["mode"] == "float" for f in after)

        http.post("/api/v1/scenarios/clear", json={"battery_ids": ["BAT001"]}).raise_for_status()
        modes, statuses = [], []
        while not modes or modes[-1] != "float":
            message = receive(ws)
            if message["type"] == "telemetry" and message["seq"] > applied_seq + 2:
                modes.append(reading_of(message, "BAT001")["mode"])
                if modes[-1] == "boost":
                    assert reading_of(message, "BAT001")["current_a"] > 0
            statuses += [message] if message["type"] == "status" else []
        after_discharge = [mode for mode in modes if mode != "discharge"]
        assert after_discharge[0] == "boost" and set(after_discharge) == {"boost", "float"}
        # Scenario changes are announced to subscribers.
        assert any(status["active_scenarios"] == [] for status in statuses)


def test_stop_completes_a_recording_that_holds_exactly_what_was_broadcast(tmp_path):
    # A queue deep enough that this client, however busy the machine, loses nothing it could compare.
    with serve(tmp_path, broadcaster={"max_frames": 100_000, "lag_limit_s": WAIT_S}) as server:
        compare_recording_with_broadcast(server)


def compare_recording_with_broadcast(server):
    http = server.http
    with server.telemetry() as ws:
        started = http.post("/api/v1/simulation/start", json=SEED_START | {"speed": 500, "seed": 7}).json()
        frames = [next_of(ws, "telemetry") for _ in range(20)]
        http.post("/api/v1/scenarios/apply", json={"scenario": "power_outage", "battery_ids": ["BAT002"]})
        http.post("/api/v1/simulation/stop").raise_for_status()
        while (message := receive(ws))["type"] != "status" or message["is_running"]:
            if message["type"] == "telemetry":
                frames.append(message)
            assert message["type"] != "dropped"
    assert [f["seq"] for f in frames] == list(range(len(frames)))
    broadcast = [(r["timestamp"], r["battery_id"], *(r[name] for name, _ in WIRE_NUMBERS), r["mode"])
                 for f in frames for r in f["data"]]

    with open_recording(started["recording_path"]) as recording:
        assert recording.run.status == "complete" and recording.run.id == started["recording_id"]
        stored = recording.sql(
            "SELECT strftime(timestamp AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%S+00:00') AS ts, battery_id, voltage_v, "
            "current_a, temperature_c, internal_resistance_mohm, soh_pct, soc_pct, ambient_c, mode FROM readings "
            "ORDER BY timestamp, battery_id")
        # The wire rounds as the original did (3 decimals for V, A, mΩ; 2 for °C, %): round the same way.
        wire = {name: np.round(stored[name].to_numpy().astype(np.float64), places).tolist()
                for name, places in WIRE_NUMBERS}
        rows = list(zip(stored["ts"], stored["battery_id"], *(wire[name] for name, _ in WIRE_NUMBERS),
                        stored["mode"]))
        events = recording.events(kinds=["scenario_applied"])
    assert len(rows) == len(broadcast) == 2 * len(frames)
    assert rows == broadcast
    assert events["detail"].str.contains('"source": "api"').all() and len(events) == 1


def test_a_scenario_given_at_start_acts_on_every_battery(server):
    with server.telemetry() as ws:
        server.http.post("/api/v1/simulation/start", json=SEED_START | {"scenario": "power_outage", "speed": 500})
        frame = next_of(ws, "telemetry", lambda f: f["seq"] >= 1)
    assert {reading["mode"] for reading in frame["data"]} == {"discharge"}
    status = server.http.get("/api/v1/simulation/status").json()
    assert status["scenario"] == "power_outage" and status["active_scenarios"][0]["source"] == "start"


def test_filters_keep_only_the_chosen_batteries(server):
    http = server.http
    http.post("/api/v1/simulation/start", json=SEED_START | {"speed": 500}).raise_for_status()
    with server.telemetry("?battery_id=BAT002") as ws:
        frame = next_of(ws, "telemetry")
        assert [reading["battery_id"] for reading in frame["data"]] == ["BAT002"]
    # Each API battery is in its own room: BAT001 in SITE01, BAT002 in SITE02.
    with server.telemetry("?site_id=SITE01,SITE02&battery_id=BAT001,BAT002") as ws:
        assert len(next_of(ws, "telemetry")["data"]) == 2
    with server.telemetry("?site_id=SITE01&battery_id=BAT001,BAT002") as ws:
        assert [reading["battery_id"] for reading in next_of(ws, "telemetry")["data"]] == ["BAT001"]
    with server.telemetry("?battery_id=BAT404") as ws:
        error = next_of(ws, "error")
        assert "BAT404" in error["detail"]


def test_speed_pause_and_resume(server):
    http = server.http
    with server.telemetry() as ws:
        http.post("/api/v1/simulation/start", json=SEED_START | {"speed": 100}).raise_for_status()
        next_of(ws, "telemetry")
        paused = http.post("/api/v1/simulation/pause").json()
        assert paused["is_paused"] is True
        next_of(ws, "status", lambda s: s["is_paused"])
        # While paused nothing is simulated: the next messages are keep-alive pings, not telemetry.
        assert [receive(ws)["type"] for _ in range(2)] == ["ping", "ping"]
        assert http.get("/api/v1/simulation/status").json()["seq"] == paused["seq"]
        resumed = http.post("/api/v1/simulation/resume").json()
        assert resumed["is_paused"] is False
        assert next_of(ws, "telemetry")["seq"] == paused["seq"] + 1
        faster = http.post("/api/v1/simulation/speed", json={"speed": 2500}).json()
        assert faster["speed"] == 2500
        next_of(ws, "status", lambda s: s["speed"] == 2500)


def test_alarm_raised_and_cleared_as_alert_frames_and_events(server):
    http = server.http
    with server.telemetry() as ws:
        started = http.post("/api/v1/simulation/start", json=SEED_START | {"interval_seconds": 60, "speed": 6000}).json()
        next_of(ws, "telemetry")
        http.post("/api/v1/scenarios/apply", json={"scenario": "high_temperature", "ambient_temp": 45}).raise_for_status()
        raised = next_of(ws, "alert", lambda m: any(a["rule"] == "high_temperature" for a in m["data"]))
        alert = next(a for a in raised["data"] if a["rule"] == "high_temperature")
        assert alert["state"] == "raised" and alert["value"] > 35 and alert["threshold"] == 35
        assert alert["battery_id"] in ("BAT001", "BAT002") and alert["severity"] == "warning"
        assert any(a["rule"] == "high_temperature" for a in http.get("/api/v1/alarms").json()["active"])
        http.post("/api/v1/scenarios/clear").raise_for_status()
        next_of(ws, "alert", lambda m: any(a["rule"] == "high_temperature" and a["state"] == "cleared"
                                           for a in m["data"]))
    http.post("/api/v1/simulation/stop").raise_for_status()
    with open_recording(started["recording_path"]) as recording:
        alarms = recording.events(kinds=["alarm_raised", "alarm_cleared"])
    high = alarms.filter(alarms["detail"].str.contains('"rule": "high_temperature"'))
    assert set(high["kind"]) == {"alarm_raised", "alarm_cleared"}


def test_presets_and_timelines(server):
    http = server.http
    presets = {p["name"]: p for p in http.get("/api/v1/presets").json()}
    assert presets["thailand-full"]["batteries"] == 1944
    shipped = http.get("/api/v1/timeline").json()["shipped"]
    assert "daily-outage" in shipped

    assert http.post("/api/v1/timeline", json={"timeline": "daily-outage"}).status_code == 409
    started = http.post("/api/v1/simulation/start", json={"preset": "single-string", "interval_seconds": 60,
                                                          "speed": 50_000, "start": "2026-04-01T13:00:00+07:00",
                                                          "timeline": "daily-outage"})
    assert started.status_code == 200, started.text
    bad = http.post("/api/v1/timeline", json={"timeline": "[[event]]\nscenario = 'nope'\nat = '14:00'\n"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "timeline"]
    extra = "[[event]]\nscenario = 'hvac_failure'\nat = '2026-04-01T15:00:00+07:00'\nsites = 'all'\n"
    assert http.post("/api/v1/timeline", json={"timeline": extra}).status_code == 200
    assert [t["source"] for t in http.get("/api/v1/timeline").json()["installed"]] == ["daily-outage", "timeline"]
    # The shipped timeline's outage at 14:00 comes before the HVAC fault at 15:00, which lasts until cleared.
    wait_until(lambda: any(s["name"] == "hvac_failure" for s in http.get("/api/v1/scenarios/active").json()))
    http.post("/api/v1/simulation/stop").raise_for_status()
    with open_recording(started.json()["recording_path"]) as recording:
        kinds = set(recording.events()["kind"])
    assert {"scenario_applied", "outage_start", "hvac_fault"} <= kinds


def test_cors_allows_a_local_dev_server_and_no_other_origin(server):
    # Who else may call the API is issue 11's (tests/test_security.py); the original allowed every origin.
    response = server.http.options("/api/v1/simulation/status", headers={
        "Origin": "http://localhost:5173", "Access-Control-Request-Method": "GET"})
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "http://localhost:5173"
    refused = server.http.options("/api/v1/simulation/status", headers={
        "Origin": "http://dashboard.example", "Access-Control-Request-Method": "GET"})
    assert refused.status_code == 403 and "access-control-allow-origin" not in refused.headers


def test_docs_and_openapi_are_served(server):
    assert server.http.get("/docs").status_code == 200
    paths = server.http.get("/openapi.json").json()["paths"]
    assert {"/api/v1/simulation/start", "/api/v1/scenarios/clear", "/api/v1/timeline"} <= set(paths)


def test_openapi_describes_the_answer_of_every_operation(server):
    """Every operation documents its 200 answer's fields (typed answer models); /metrics says it is Prometheus text."""
    spec = server.http.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    operations = [(path, method, operation) for path, methods in spec["paths"].items()
                  for method, operation in methods.items() if path != "/metrics"]
    assert len(operations) >= 49
    for path, method, operation in operations:
        answer = operation["responses"]["200"]["content"]["application/json"]["schema"]
        name = (answer.get("items") or answer)["$ref"].rsplit("/", 1)[-1]
        assert schemas[name]["properties"], (method, path, name)
    metrics = spec["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert metrics == {"text/plain": {"schema": {"type": "string"}}}
    status = schemas["SimulationStatus"]["properties"]
    assert {"is_running", "batteries_count", "interval_seconds", "readings_generated", "sim_time", "seq"} <= set(status)
    assert "ISO 8601" in status["sim_time"]["description"]


def test_typed_answers_keep_the_keys_the_original_had(server):
    """No key added by the answer models: a slot never started answers the original's few fields only."""
    idle = server.http.get("/api/v1/simulation/status").json()
    assert set(idle) == {"is_running", "batteries_count", "interval_seconds", "scenario", "started_at",
                         "readings_generated", "session", "is_paused", "recording_id"}
    stopped = server.http.post("/api/v1/simulation/stop").json()
    assert set(stopped) == {"status", "message", "warnings"}
    cleared = server.http.post("/api/v1/scenarios/clear").json()
    assert set(cleared) == {"status", "message", "batteries", "active_scenarios", "warnings"}
