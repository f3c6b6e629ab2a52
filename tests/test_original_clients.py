"""What a client of the original service sees: per-battery conditions, and its documented curl sequence.

In the original each battery had its own conditions, so a room scenario (``high_temperature``,
``hvac_failure``, a ``power_outage``'s ``ambient_temp``) on one battery changed only that battery, and a
clear of one battery cleared only it. Ours gives each battery of a ``{"batteries": [...]}`` start its
own room (site). Run on a real uvicorn server on 127.0.0.1, in virtual time (60 s a tick at 600x).
"""

from __future__ import annotations

import pytest

from test_service_helpers import next_of, reading_of, serve

API = "/api/v1"
# The original README's start body (three batteries), and its apply example.
README_START = {"batteries": [
    {"battery_id": "BKK_DC1_SYS01_STR01_BAT001", "profile": "healthy", "initial_soh": 95.0},
    {"battery_id": "BKK_DC1_SYS01_STR01_BAT002", "profile": "accelerated", "initial_soh": 85.0},
    {"battery_id": "BKK_DC1_SYS01_STR01_BAT003", "profile": "failing", "initial_soh": 70.0},
], "interval_seconds": 5}
BAT1, BAT2, BAT3 = (battery["battery_id"] for battery in README_START["batteries"])
FAST = {"interval_seconds": 60, "speed": 600, "seed": 11}


@pytest.fixture
def server(tmp_path):
    with serve(tmp_path / "recordings") as running:
        yield running


def targets(active: list[dict]) -> list[tuple[str, int]]:
    return [(scenario["name"], scenario["jars"]) for scenario in active]


def test_each_battery_of_a_start_has_its_own_room(server):
    http = server.http
    with server.telemetry() as ws:
        http.post(f"{API}/simulation/start", json=README_START | FAST).raise_for_status()
        before = next_of(ws, "telemetry")
        assert len({reading["site_id"] for reading in before["data"]}) == 3
        applied = http.post(f"{API}/scenarios/apply", json={"scenario": "high_temperature", "battery_ids": [BAT2],
                                                            "ambient_temp": 45}).json()
        assert applied["batteries"] == 1 and targets(applied["active_scenarios"]) == [("high_temperature", 1)]
        after = next_of(ws, "telemetry", lambda frame: frame["seq"] > applied["seq"])
        # Since issue 15 ambient_c is the room's own probe: the held 45 °C within the probe's accuracy
        # (offset σ 0.5 °C plus 0.1 °C noise; three sigma), not the set value itself.
        probe_c = 1.6
        assert reading_of(after, BAT2)["ambient_c"] == pytest.approx(45, abs=probe_c)
        for other in (BAT1, BAT3):  # their rooms' HVAC still holds its setpoint
            assert reading_of(after, other)["ambient_c"] == pytest.approx(reading_of(before, other)["ambient_c"], abs=1)

        # A power outage's ambient_temp holds only that battery's room.
        outage = http.post(f"{API}/scenarios/apply", json={"scenario": "power_outage", "battery_ids": [BAT1],
                                                           "ambient_temp": 28.0}).json()
        assert targets(outage["active_scenarios"]) == [("high_temperature", 1), ("power_outage", 1),
                                                       ("high_temperature", 1)]
        frame = next_of(ws, "telemetry", lambda f: f["seq"] > outage["seq"])
        assert reading_of(frame, BAT1)["ambient_c"] == pytest.approx(28, abs=probe_c)
        assert reading_of(frame, BAT1)["mode"] == "discharge"
        assert reading_of(frame, BAT2)["ambient_c"] == pytest.approx(45, abs=probe_c)
        assert reading_of(frame, BAT3)["mode"] == "float"

    hvac = http.post(f"{API}/scenarios/apply", json={"scenario": "hvac_failure", "battery_ids": [BAT3]}).json()
    assert hvac["batteries"] == 1
    # Clearing one battery clears only it.
    cleared = http.post(f"{API}/scenarios/clear", json=[BAT1]).json()
    assert cleared["batteries"] == 1
    assert targets(cleared["active_scenarios"]) == [("high_temperature", 1), ("hvac_failure", 1)]
    assert [scenario["targets"] for scenario in cleared["active_scenarios"]] == [{"sites": ["SITE02"]},
                                                                                 {"sites": ["SITE03"]}]


def test_the_originals_documented_curl_sequence(server):
    """start 3 batteries, status, apply power_outage with ambient_temp to one, status, stop: what its
    README showed, checked as a client of the original would (raise on any non-2xx, read its fields)."""
    http = server.http
    http.post(f"{API}/simulation/stop").raise_for_status()  # a defensive stop first: fine with nothing running
    started = http.post(f"{API}/simulation/start", json=README_START)
    started.raise_for_status()
    assert started.json()["status"] == "started"
    assert started.json()["message"] == "Simulation started for 3 batteries"
    assert started.json()["interval_seconds"] == 5
    assert "warnings" not in started.json()

    status = http.get(f"{API}/simulation/status").json()
    assert status["is_running"] is True and status["batteries_count"] == 3 and status["interval_seconds"] == 5
    assert status["scenario"] is None and status["started_at"] is not None
    assert isinstance(status["readings_generated"], int)

    applied = http.post(f"{API}/scenarios/apply", json={"scenario": "power_outage", "battery_ids": [BAT1],
                                                        "ambient_temp": 28.0})
    applied.raise_for_status()
    assert applied.json()["status"] == "applied"
    assert applied.json()["message"].startswith("Scenario 'power_outage' applied to 1 batteries")

    status = http.get(f"{API}/simulation/status").json()
    assert status["is_running"] is True and status["batteries_count"] == 3

    stopped = http.post(f"{API}/simulation/stop")
    stopped.raise_for_status()
    assert stopped.json()["status"] == "stopped" and stopped.json()["message"] == "Simulation stopped successfully"
    status = http.get(f"{API}/simulation/status").json()
    assert status["is_running"] is False and status["batteries_count"] == 0 and status["scenario"] is None
