"""What a live session feeds besides its recording: every attachment sees the readings and events the recording
gets, and is closed when the session stops (the hook sinks and devices plug into)."""

from __future__ import annotations

import threading

from battsim.recordings import open_recording
from test_service_helpers import serve, wait_until

START_BODY = {"preset": "single-string", "interval_seconds": 5, "speed": 600, "start": "2026-04-01T06:00:00+07:00"}


class Collecting:
    """An attachment that keeps what it is given (a test's stand-in for a user's own sink)."""

    def __init__(self, session):
        self.session = session
        self.rows = 0
        self.kinds: list[str] = []
        self.closed = threading.Event()

    def readings(self, batch):
        self.rows += batch.rows

    def event(self, event):
        self.kinds.append(event.kind)

    def close(self):
        self.closed.set()


def test_an_attachment_sees_what_is_recorded_and_is_closed_on_stop(tmp_path):
    made: list[Collecting] = []

    def attach(session):
        made.append(Collecting(session))
        return made[-1]

    with serve(tmp_path / "recordings", attachments=[attach]) as server:
        assert server.http.post("/api/v1/simulation/start", json=START_BODY).status_code == 200
        wait_until(lambda: made and made[0].rows >= 3 * made[0].session.fleet.size)
        applied = server.http.post("/api/v1/scenarios/apply", json={"scenario": "power_outage"})
        assert applied.status_code == 200
        wait_until(lambda: "scenario_applied" in made[0].kinds)
        assert server.http.post("/api/v1/simulation/stop").status_code == 200
        assert made[0].closed.is_set()
        path = made[0].session.recording_path

    with open_recording(path) as recording:
        recorded = recording.sql("SELECT count(*) AS n FROM readings")["n"][0]
        kinds = set(recording.sql("SELECT DISTINCT kind FROM events")["kind"])
    assert made[0].rows == recorded
    assert set(made[0].kinds) <= kinds and "scenario_applied" in made[0].kinds
