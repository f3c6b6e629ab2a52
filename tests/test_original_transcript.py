"""The original service's transcript, replayed against ours over a real socket.

``data/original-api-transcript.json`` holds every request the original sensor-simulator received, in
order, and what it answered. Each is sent to a uvicorn server running our app on 127.0.0.1; the status
code must be the original's and every key the original answered must be there (values that depend on
physics or time are not compared; keys we add are fine). An exchange marked ``then: stop`` is followed
by a stop whenever its start was accepted, as it was against the original.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from test_service_helpers import serve

TRANSCRIPT = json.loads((Path(__file__).parent / "data" / "original-api-transcript.json").read_text(encoding="utf-8"))
EXCHANGES = TRANSCRIPT["exchanges"]
# Where we answer differently on purpose (README, "Compatibility with the original service"), with our status:
# - the bodies the original's own README and frontend sent to clear, which its code refused with a 422 (it
#   took only a bare list): ours takes both; what a client could depend on, the bare list, is unchanged;
# - a CORS preflight is answered 204 (no content) where the original said 200 "OK": only browsers send one,
#   and the Fetch standard treats any 2xx preflight alike, so no client can tell.
DELIBERATE = {
    'clear {"battery_ids": [BAT001]} (README)': 200,
    "clear {} (frontend)": 200,
    "CORS preflight start": 204,
}
# The origin the original's frontend is served from in development (a Vite dev server).
FRONTEND_ORIGIN = "http://localhost:5173"


def request_of(exchange: dict) -> dict:
    headers = {}
    if exchange["body"] is not None:
        headers["Content-Type"] = "application/json"
    if exchange["label"] == "GET / (Accept: application/json)":
        headers["Accept"] = "application/json"
    if exchange["label"].startswith("CORS"):
        headers["Origin"] = FRONTEND_ORIGIN
        if exchange["method"] == "OPTIONS":
            headers |= {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
    content = exchange["body"].encode() if exchange["body"] is not None else None
    return {"method": exchange["method"], "url": exchange["path"], "headers": headers, "content": content}


def missing_keys(original, ours, where: str = "") -> list[str]:
    """Keys (at any depth) the original answered and we do not; ``detail`` must be text, as the original's
    frontend shows it (a list blanks its page)."""
    if isinstance(original, dict):
        if not isinstance(ours, dict):
            return [f"{where or 'body'}: an object in the original, {type(ours).__name__} here"]
        found = []
        for key, value in original.items():
            if key not in ours:
                found.append(f"{where}{key}")
            elif key == "detail":
                if not isinstance(ours[key], str):
                    found.append(f"{where}detail: text in the original's clients, {type(ours[key]).__name__} here")
            else:
                found += missing_keys(value, ours[key], f"{where}{key}.")
        return found
    if isinstance(original, list) and original and isinstance(original[0], dict) and "scenario" in original[0]:
        # The scenario catalogue: each of the original's, by name (ours has more).
        ours_by_name = {item.get("scenario"): item for item in ours} if isinstance(ours, list) else {}
        return [problem for item in original
                for problem in (missing_keys(item, ours_by_name[item["scenario"]], f"{where}{item['scenario']}.")
                                if item["scenario"] in ours_by_name else [f"{where}{item['scenario']}"])]
    return []


def test_the_transcript_has_every_exchange():
    assert len(EXCHANGES) == 76
    assert set(DELIBERATE) <= {exchange["label"] for exchange in EXCHANGES}


@pytest.fixture
def server(tmp_path):
    with serve(tmp_path / "recordings") as running:
        yield running


def test_every_exchange_of_the_original_answers_as_it_did(server):
    differences = []
    for number, exchange in enumerate(EXCHANGES):
        original = exchange["original"]
        response = server.http.request(**request_of(exchange))
        label = f"#{number} {exchange['label']}"
        expected = DELIBERATE.get(exchange["label"], original["status"])
        if response.status_code != expected:
            differences.append(f"{label}: {response.status_code}, the original {original['status']}: {response.text[:200]}")
        elif original["json"] is not None and exchange["label"] not in DELIBERATE:
            assert response.headers["content-type"].startswith("application/json"), label
            ours = response.json()
            differences += [f"{label}: missing {key}" for key in missing_keys(original["json"], ours)]
        if exchange.get("then") == "stop" and response.status_code == 200:
            stopped = server.http.post("/api/v1/simulation/stop")
            assert stopped.status_code == 200 and stopped.json()["status"] == "stopped", label
    assert not differences, "\n".join(differences)


def test_the_original_values_that_do_not_depend_on_physics_or_time(server):
    by_label = {exchange["label"]: exchange["original"]["json"] for exchange in EXCHANGES}
    http = server.http
    assert http.get("/health").json().items() >= by_label["GET /health"].items()
    root = http.get("/", headers={"Accept": "application/json"}).json()
    original_root = by_label["GET / (Accept: application/json)"]
    assert root["service"] == original_root["service"] and root["version"] == original_root["version"]
    assert root["endpoints"].items() >= original_root["endpoints"].items()
    ours = {s["scenario"]: s["typical_conditions"] for s in http.get("/api/v1/scenarios").json()}
    assert {s["scenario"]: ours.get(s["scenario"]) for s in by_label["GET scenarios"]} == {
        s["scenario"]: s["typical_conditions"] for s in by_label["GET scenarios"]}
    assert http.get("/api/v1/simulation/status").json().items() >= by_label["status (idle, never started)"].items()


def test_what_the_original_accepted_is_accepted_and_reported_as_warnings(server):
    http = server.http
    started = http.post("/api/v1/simulation/start", json={
        "client": "x", "batteries": [{"battery_id": "BKK DC1.BAT 1", "initial_soh": 0, "location": "BKK"},
                                     {"battery_id": "B" * 41}, {"battery_id": "B" * 41, "profile": "failing"}]})
    assert started.status_code == 200, started.text
    assert started.json()["message"] == "Simulation started for 2 batteries"
    warnings = started.json()["warnings"]
    assert warnings[0] == "client: not a field here, ignored"
    assert warnings[1] == "batteries[0].location: not a field here, ignored"
    assert warnings[2].startswith("batteries[0].initial_soh: 0 starts at the 1 % floor")
    assert warnings[3].startswith("batteries[2].battery_id:") and len(warnings) == 4
    status = http.get("/api/v1/simulation/status").json()
    assert status["batteries_count"] == 2 and status["scenario"] is None
    # An empty list of ids is every battery; unknown ids are ignored and named.
    assert http.post("/api/v1/scenarios/apply", json={"scenario": "power_outage", "battery_ids": []}).json()[
        "batteries"] == 2
    unknown = http.post("/api/v1/scenarios/apply", json={"scenario": "power_outage", "battery_ids": ["NOPE"], "note": "x"})
    assert unknown.status_code == 200 and unknown.json()["batteries"] == 0
    assert unknown.json()["warnings"][0] == "note: not a field here, ignored" and "NOPE" in unknown.json()["warnings"][1]
    # A request the original refused is still refused, with the field named in text.
    refused = http.post("/api/v1/scenarios/apply", json={"scenario": "power_outage", "battery_ids": "BAT001"})
    assert refused.status_code == 422 and refused.json()["detail"].startswith("battery_ids: ")
    # Control characters are never an id.
    assert http.post("/api/v1/simulation/stop").json()["status"] == "stopped"
    bad = http.post("/api/v1/simulation/start", json={"batteries": [{"battery_id": "BAT\n001"}]})
    assert bad.status_code == 422 and bad.json()["detail"].startswith("batteries.0.battery_id: ")


def test_status_after_a_full_clear_and_after_stop_is_the_originals(server):
    http = server.http
    http.post("/api/v1/simulation/start", json={"batteries": [{"battery_id": "BAT001"}, {"battery_id": "BAT002"}],
                                               "scenario": "high_temperature"}).raise_for_status()
    assert http.get("/api/v1/simulation/status").json()["scenario"] == "high_temperature"
    http.post("/api/v1/scenarios/clear", json=["BAT001"]).raise_for_status()
    assert http.get("/api/v1/simulation/status").json()["scenario"] == "high_temperature"  # BAT002 still has it
    http.post("/api/v1/scenarios/clear").raise_for_status()
    assert http.get("/api/v1/simulation/status").json()["scenario"] is None
    http.post("/api/v1/simulation/stop").raise_for_status()
    stopped = http.get("/api/v1/simulation/status").json()
    assert stopped["is_running"] is False and stopped["batteries_count"] == 0 and stopped["scenario"] is None
    assert stopped["interval_seconds"] == 5 and stopped["readings_generated"] >= 0
