"""Replay follows a recording still being written (issue 16, point 2).

A live run and a replay at max speed of its own recording: the replay reaches the live edge
(``following``), keeps receiving what is committed after that, and ends only when the live run
stops. Only events are waited on (generous timeouts); nothing assumes how fast the machine is.
"""

from __future__ import annotations

from pathlib import Path

from websockets.sync.client import connect

from test_replay_http import receive_until
from test_service_helpers import WAIT_S, serve, wait_until


def test_a_faster_replay_keeps_receiving_after_the_live_edge_until_the_run_stops(tmp_path):
    with serve(tmp_path / "recordings") as server:
        http = server.http
        started = http.post("/api/v1/simulation/start", json={"preset": "single-string", "interval_seconds": 1,
                                                               "speed": 120, "seed": 4}).json()
        recording_id = Path(started["recording_path"]).stem
        with connect(server.ws + "/api/v1/ws/replay", open_timeout=WAIT_S, max_size=None) as ws:
            receive_until(ws, lambda m: m["type"] == "playback_state")  # the greeting
            assert http.post("/api/v1/replay/start", json={"recording": recording_id, "speed": "max"}).status_code == 200
            got = receive_until(ws, lambda m: m["type"] == "playback_state" and m["state"] == "following")
            edge = [m["seq"] for m in got if m["type"] == "telemetry"]
            # (Possibly nothing was committed yet when it started: then it follows from the first frame.)
            assert http.get("/api/v1/replay/status").json()["state"] in ("following", "playing")
            last = edge[-1] if edge else -1
            # After the edge: more frames, in order, none repeated, with nothing asked of the replay.
            after = receive_until(ws, lambda m: m["type"] == "telemetry" and m["seq"] >= last + 3)
            seqs = edge + [m["seq"] for m in after if m["type"] == "telemetry"]
            assert seqs == list(range(len(seqs)))
            times = [m["sim_time"] for m in got + after if m["type"] == "telemetry"]
            assert times == sorted(set(times))
            # The live run stops: the replay plays what was committed, then ends, saying why.
            http.post("/api/v1/simulation/stop")
            ended = receive_until(ws, lambda m: m["type"] == "playback_state" and m["state"] == "ended")
            assert ended[-1]["ended_reason"] == "live run stopped"


def test_a_finished_recording_still_ends_at_its_end(tmp_path):
    # Following is only for a recording being written: a complete one ends "finished", as before.
    with serve(tmp_path / "recordings") as server:
        http = server.http
        started = http.post("/api/v1/simulation/start", json={"preset": "single-string", "interval_seconds": 1,
                                                               "speed": 600, "seed": 4}).json()
        wait_until(lambda: http.get("/api/v1/simulation/status").json()["readings_generated"] >= 24 * 30)
        http.post("/api/v1/simulation/stop")
        recording_id = Path(started["recording_path"]).stem
        with connect(server.ws + "/api/v1/ws/replay", open_timeout=WAIT_S, max_size=None) as ws:
            receive_until(ws, lambda m: m["type"] == "playback_state")
            http.post("/api/v1/replay/start", json={"recording": recording_id, "speed": "max"})
            got = receive_until(ws, lambda m: m["type"] == "playback_state" and m["state"] in ("ended", "following"))
        assert got[-1]["state"] == "ended" and got[-1]["ended_reason"] == "finished"
