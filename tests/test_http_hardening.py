"""Issue 11 at the HTTP edge: every input bounded, bodies capped, errors short, the listing robust, sessions
that can always be stopped and restarted, and a full disk handled by the live session.

Each case is one the issue reproduced on the code before this work (a 500, a stuck session, a locked file, a
57 MB echo). Servers are real (uvicorn on 127.0.0.1 and a free port); the disk fills for real, in a child
process with a file-size limit (RLIMIT_FSIZE), as in tests/test_disk_errors.py.
"""

from __future__ import annotations

import asyncio
import os
import re
import resource
import signal
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import duckdb
import httpx
import pytest

from battsim.engine.fleet import get_preset
from battsim.service.limits import MAX_BODY_BYTES
from battsim.service.live import LiveConfig, Sessions
from helpers import make_recording
from test_service_helpers import WAIT_S, serve, wait_until

API = "/api/v1"
FAR = "9999-12-31T23:00:00-14:00"  # year 10000 in UTC: past what datetime holds


@pytest.fixture(scope="module")
def day(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("hardening") / "day.duckdb"
    make_recording(path, days=0.25, interval_s=60)  # 360 ticks of 24 jars
    return path


@pytest.fixture
def server(tmp_path, day):
    data = tmp_path / "recordings"
    data.mkdir()
    (data / "day.duckdb").write_bytes(day.read_bytes())
    with serve(data) as running:
        yield running


def fields(response: httpx.Response) -> list[str]:
    """The fields a 422 names: the last element of each ``loc``, or on the original's endpoints (where
    ``detail`` is one line, "field: message; field: message") the last part of each field's path."""
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    if isinstance(detail, str):
        return [match.rsplit(".", 1)[-1] for match in re.findall(r"(?:^|; )([\w.]+): ", detail)]
    return [str(error["loc"][-1]) for error in detail]


def recording_status(path: Path) -> str:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute("SELECT status FROM runs").fetchone()[0]


# ------------------------------------------------------------------------------------ live start
def test_a_start_beyond_the_supported_years_is_refused_and_leaves_nothing(server):
    http = server.http
    for start in (FAR, "1969-12-31T23:59:59Z", "2200-01-01T00:00:00Z"):
        response = http.post(f"{API}/simulation/start", json={"preset": "single-string", "start": start})
        assert fields(response) == ["start"] and "1970" in response.text
    assert sorted(p.name for p in server.data_dir.iterdir()) == ["day.duckdb"]
    assert http.get(f"{API}/simulation/status").status_code == 200
    assert [r["id"] for r in http.get(f"{API}/recordings").json()] == ["day"]
    # The edges are allowed.
    started = http.post(f"{API}/simulation/start", json={"preset": "single-string", "start": "2199-12-31T23:00:00Z",
                                                         "paused": True})
    assert started.status_code == 200, started.text
    assert http.post(f"{API}/simulation/stop").status_code == 200


def test_apply_with_an_overlong_duration_names_duration_s(server):
    http = server.http
    assert http.post(f"{API}/simulation/start", json={"preset": "single-string", "paused": True}).status_code == 200
    for duration in (1e300, 36_525 * 86_400 + 1, 0):
        response = http.post(f"{API}/scenarios/apply", json={"scenario": "power_outage", "duration_s": duration})
        assert fields(response) == ["duration_s"]
    ok = http.post(f"{API}/scenarios/apply", json={"scenario": "power_outage", "duration_s": 36_525 * 86_400})
    assert ok.status_code == 200, ok.text
    assert http.get(f"{API}/simulation/status").json()["is_running"]
    http.post(f"{API}/simulation/stop")


def test_apply_takes_a_duration_in_the_shared_grammar(server):
    """The dashboard sends what the user typed ("1h30m"); the server reads it as timelines and the CLI do."""
    http = server.http
    assert http.post(f"{API}/simulation/start", json={"preset": "single-string", "paused": True}).status_code == 200
    for text, seconds in (("1h30m", 5400), ("PT2H", 7200), ("90min", 5400)):
        http.post(f"{API}/scenarios/clear")
        ok = http.post(f"{API}/scenarios/apply", json={"scenario": "hvac_failure", "duration_s": text})
        assert ok.status_code == 200, ok.text
        [active] = http.get(f"{API}/scenarios/active").json()
        since, until = (datetime.fromisoformat(active[key]) for key in ("since", "until"))
        assert (until - since).total_seconds() == seconds, text
    refused = http.post(f"{API}/scenarios/apply", json={"scenario": "hvac_failure", "duration_s": "soon"})
    assert fields(refused) == ["duration_s"] and "not a duration" in refused.text and "1d12h" in refused.text
    http.post(f"{API}/simulation/stop")


# ------------------------------------------------------------------------------------ the listing
def test_a_recording_with_an_out_of_range_start_is_listed_as_unreadable(server, day):
    # What the old code wrote for a start at 9999-12-31T23:00-14:00: every listing after it was a 500.
    bad = server.data_dir / "live-far.duckdb"
    bad.write_bytes(day.read_bytes())
    with duckdb.connect(str(bad)) as con:
        con.execute("UPDATE runs SET start = '9999-12-31 23:00:00-14'::TIMESTAMPTZ")
    listed = server.http.get(f"{API}/recordings")
    assert listed.status_code == 200, listed.text
    by_id = {r["id"]: r for r in listed.json()}
    assert by_id["day"]["status"] == "complete"
    assert by_id["live-far"]["status"] == "unreadable" and "start" in by_id["live-far"]["detail"]
    assert server.http.get(f"{API}/recordings/live-far").status_code == 409
    replay = server.http.post(f"{API}/replay/start", json={"recording": "live-far"})
    assert replay.status_code == 409 and "start" in replay.json()["detail"]


def test_a_truncated_recording_does_not_break_the_listing(server, day):
    content = day.read_bytes()
    (server.data_dir / "cut.duckdb").write_bytes(content[: int(len(content) * 0.5)])
    listed = server.http.get(f"{API}/recordings")
    assert listed.status_code == 200, listed.text
    by_id = {r["id"]: r for r in listed.json()}
    assert by_id["day"]["readings"] == 360 * 24
    assert by_id["cut"]["status"] == "unreadable" and "damaged" in by_id["cut"]["detail"]
    assert server.http.post(f"{API}/replay/start", json={"recording": "cut"}).status_code == 409


def test_symlinks_out_of_the_data_dir_are_not_followed(server, day, tmp_path):
    outside = tmp_path / "private"
    outside.mkdir()
    (outside / "secret.duckdb").write_bytes(day.read_bytes())
    (server.data_dir / "secret.duckdb").symlink_to(outside / "secret.duckdb")
    (server.data_dir / "inside.duckdb").symlink_to(server.data_dir / "day.duckdb")  # within: served
    http = server.http
    assert sorted(r["id"] for r in http.get(f"{API}/recordings").json()) == ["day", "inside"]
    assert http.get(f"{API}/recordings/secret").status_code == 404
    assert http.post(f"{API}/replay/start", json={"recording": "secret"}).status_code == 404
    assert http.post(f"{API}/query", json={"recording": "secret", "sql": "SELECT 1"}).status_code == 404


# ------------------------------------------------------------------------------------ replay
@pytest.mark.parametrize(("body", "field"), [
    ({"from": "+99999999999d"}, "from"),
    ({"to": "+99999999999d"}, "to"),
    ({"to": FAR}, "to"),
    ({"to": "9999-12-31T23:59:59Z", "loop": True}, "to"),
    ({"from": "0001-01-01T00:00:00+14:00"}, "from"),
    ({"from": "+" + "1" * 100 + "d"}, "from"),
    ({"speed": "NaN"}, "speed"),
])
def test_replay_times_and_speeds_out_of_range_name_the_field(server, body, field):
    response = server.http.post(f"{API}/replay/start", json={"recording": "day", **body})
    assert fields(response) == [field]
    assert server.http.get(f"{API}/replay/status").json() == {"state": "idle"}


def test_a_to_past_the_end_of_a_finished_recording_loops_at_its_end(server):
    # Before: the loop waited for the far-future `to` (here 1000 days away at 100000x: 14 minutes).
    http = server.http
    started = http.post(f"{API}/replay/start", json={"recording": "day", "to": "+1000d", "loop": True,
                                                     "speed": 100_000}).json()
    assert started["to"] == "2025-12-31T23:00:00+00:00"  # the end of its 6 hours, not 1000 days on
    wait_until(lambda: http.get(f"{API}/replay/status").json()["loops"] >= 1)
    assert http.post(f"{API}/replay/stop").json()["state"] == "ended"


def test_seek_after_a_replay_ended_plays_again_then_stop_and_restart(server):
    http = server.http
    http.post(f"{API}/replay/start", json={"recording": "day", "speed": "max"})
    ended = wait_until(lambda: (s := http.get(f"{API}/replay/status").json())["state"] == "ended" and s)
    assert ended["ended_reason"] == "finished" and ended["frames"] == 360
    sought = http.post(f"{API}/replay/seek", json={"time": "+5h"})
    assert sought.status_code == 200, sought.text
    assert sought.json()["state"] == "paused"
    assert http.post(f"{API}/replay/resume").status_code == 200
    again = wait_until(lambda: (s := http.get(f"{API}/replay/status").json())["state"] == "ended" and s)
    assert again["frames"] == 360 + 1 + 59  # the seek's snapshot frame, then the last hour's ticks after it
    assert http.post(f"{API}/replay/seek", json={"time": "+99999999999d"}).status_code == 422
    assert http.post(f"{API}/replay/stop").status_code == 200
    assert http.post(f"{API}/replay/stop").status_code == 200  # twice is fine
    assert http.post(f"{API}/replay/seek", json={"time": "+1h"}).status_code == 409  # stopped: start another
    restarted = http.post(f"{API}/replay/start", json={"recording": "day", "start_paused": True})
    assert restarted.status_code == 200 and restarted.json()["state"] == "paused"
    http.post(f"{API}/replay/stop")


# ------------------------------------------------------------------------------------ bodies and echoes
def test_a_body_over_the_cap_is_refused_before_it_is_read(server):
    sixty_mb = b'{"preset": "' + b"x" * (60 * 1024 * 1024) + b'"}'
    response = server.http.post(f"{API}/simulation/start", content=sixty_mb,
                                headers={"content-type": "application/json"})
    assert response.status_code == 413 and len(response.content) < 200
    assert str(MAX_BODY_BYTES) in response.json()["detail"]


def test_a_streamed_body_over_the_cap_is_refused_while_it_arrives(server):
    def chunks():
        yield b'{"timeline": "'
        for _ in range(40):
            yield b"a" * 65_536
        yield b'"}'

    response = server.http.post(f"{API}/timeline", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413 and len(response.content) < 200
    assert server.http.get("/health").status_code == 200


def test_errors_never_echo_a_long_input(server):
    http = server.http
    long_text = "z" * (MAX_BODY_BYTES - 1000)
    for path, body in ((f"{API}/replay/start", {"recording": long_text}),
                       (f"{API}/simulation/start", {"preset": long_text}),
                       (f"{API}/simulation/start", {"preset": "single-string", "scenario": long_text}),
                       (f"{API}/simulation/start", {"batteries": [{"battery_id": long_text}]}),
                       (f"{API}/replay/seek", {"time": long_text})):
        response = http.post(path, json=body)
        assert response.status_code in (404, 422), response.text[:200]
        assert len(response.content) < 2_000, (path, len(response.content))


def test_a_timeline_over_the_cap_is_refused_naming_timeline(server):
    http = server.http
    big = "# filler\n" * 30_000  # 300 kB, over the 256 KiB cap
    response = http.post(f"{API}/simulation/start", json={"preset": "single-string", "timeline": big})
    assert fields(response) == ["timeline"] and len(response.content) < 2_000
    assert http.post(f"{API}/simulation/start", json={"preset": "single-string", "paused": True}).status_code == 200
    response = http.post(f"{API}/timeline", json={"timeline": big})
    assert fields(response) == ["timeline"] and len(response.content) < 2_000
    http.post(f"{API}/simulation/stop")


# ------------------------------------------------------------------------------------ the live shutdown path
class FailingCursor:
    def close(self):
        raise duckdb.ConnectionException("cursor already gone")


def test_a_cursor_that_fails_to_close_cannot_keep_the_recording_from_being_marked_complete(tmp_path):
    async def run() -> Path:
        sessions = Sessions(tmp_path)
        session = await sessions.start(LiveConfig(fleet=get_preset("single-string"), preset="single-string",
                                                  interval_s=60, speed=1e6))
        await asyncio.sleep(0.2)
        session._reader_cursors.insert(0, FailingCursor())  # the first a reader left behind
        await sessions.stop()
        return session.recording_path

    path = asyncio.run(run())
    assert recording_status(path) == "complete"


# ------------------------------------------------------------------------------------ a full disk
CHILD = """
import socket, sys, uvicorn
from battsim.service.app import create_app
sock = socket.socket(); sock.bind(("127.0.0.1", 0)); print(sock.getsockname()[1], flush=True)
uvicorn.Server(uvicorn.Config(create_app(sys.argv[1]), log_level="error")).run(sockets=[sock])
"""


# Room for the schema and a batch or two of the live session's (at most RECORD_ROWS = 50,000 readings each, about
# 3 MB in the write-ahead log), far too little for a run at 1,000,000x (12 MB took twice as long to fill).
LIVE_LIMIT_BYTES = 5_000_000


@pytest.fixture
def server_with_file_limit(tmp_path):
    """A server in a child process whose files cannot grow past ``limit_bytes`` (writes then fail with EFBIG)."""
    children = []

    def start(limit_bytes: int) -> tuple[httpx.Client, Path]:
        data = tmp_path / f"data-{limit_bytes}"
        data.mkdir()

        def limit():
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

        child = subprocess.Popen([sys.executable, "-c", CHILD, str(data)], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, preexec_fn=limit,
                                 env={**os.environ, "PYTHONUNBUFFERED": "1"})
        children.append(child)
        port = int(child.stdout.readline())
        http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=WAIT_S)
        wait_until(lambda: _answers(http))
        return http, data

    yield start
    for child in children:
        child.send_signal(signal.SIGINT)
        try:
            child.wait(WAIT_S)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _answers(http: httpx.Client) -> bool:
    try:
        return http.get("/health").status_code == 200
    except httpx.TransportError:
        return False


@pytest.mark.skipif(not hasattr(resource, "RLIMIT_FSIZE"), reason="needs RLIMIT_FSIZE (POSIX)")
def test_a_disk_that_fills_during_a_live_run_closes_the_recording_marked_incomplete(server_with_file_limit):
    http, data = server_with_file_limit(LIVE_LIMIT_BYTES)
    started = http.post(f"{API}/simulation/start", json={"preset": "single-string", "interval_seconds": 1,
                                                         "speed": 1_000_000})
    assert started.status_code == 200, started.text
    status = wait_until(lambda: (s := http.get(f"{API}/simulation/status").json())["error"] and s, timeout=120)
    assert not status["is_running"] and "failed: the file is too large" in status["error"], status["error"]
    assert "TransactionContext" not in status["error"]
    path = Path(started.json()["recording_path"])
    # Closed: another process can open it (a file left open in the server is locked), and it says incomplete.
    assert recording_status(path) == "incomplete"
    with duckdb.connect(str(path), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM reading_samples").fetchone()[0] > 0
    listed = {r["id"]: r for r in http.get(f"{API}/recordings").json()}
    assert listed[path.stem]["status"] == "incomplete"
    # Stopped by the error: a stop says so (200, as the original answered a stop with nothing running), and a
    # new start works.
    assert http.post(f"{API}/simulation/stop").json()["warnings"] == ["no simulation was running"]
    again = http.post(f"{API}/simulation/start", json={"preset": "single-string", "paused": True})
    assert again.status_code == 200, again.text
    assert http.post(f"{API}/simulation/stop").status_code == 200


@pytest.mark.skipif(not hasattr(resource, "RLIMIT_FSIZE"), reason="needs RLIMIT_FSIZE (POSIX)")
def test_a_start_on_a_full_disk_is_refused_and_leaves_no_file(server_with_file_limit):
    http, data = server_with_file_limit(20_000)  # not even the schema fits
    for _ in range(2):
        response = http.post(f"{API}/simulation/start", json={"preset": "single-string"})
        assert response.status_code == 507 and "recording: cannot create" in response.json()["detail"], response.text
    assert list(data.iterdir()) == []
    assert http.get(f"{API}/simulation/status").json()["is_running"] is False
