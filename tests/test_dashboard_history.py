"""The dashboard's history on load (issue 16, point 4): GET /api/v1/history over a live recording.

And the page in chromium: on load it shows that history, the alarms active now, and the running
simulation's settings in its form.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dashboard_browser import WAIT_MS, assert_clean, chromium, needs_chromium, new_page, wait_loaded
from test_service_helpers import WAIT_S, serve, wait_until


def test_history_is_the_last_window_of_the_live_recording_as_telemetry_frames(tmp_path):
    with serve(tmp_path) as server:
        http = server.http
        started = http.post("/api/v1/simulation/start", json={"preset": "single-string", "interval_seconds": 60,
                                                               "seed": 1, "backfill": "3h"})
        assert started.status_code == 200, started.text
        wait_until(lambda: (http.get("/api/v1/simulation/status").json()["backfill"] or {}).get("state") == "done",
                   timeout=4 * WAIT_S)
        # Committed about a second after the back-fill: wait until the history reaches an hour.
        body = wait_until(lambda: (lambda b: len(b["frames"]) == 60 and b)(http.get("/api/v1/history?window=1h").json()))
        assert body["interval_s"] == 60 and body["window_s"] == 3600
        times = [datetime.fromisoformat(f["sim_time"]) for f in body["frames"]]
        assert times == sorted(times) and times[-1] - times[0] == timedelta(minutes=59)
        assert all(f["type"] == "telemetry" and len(f["data"]) == 24 for f in body["frames"])
        assert {r["timestamp"] for r in body["frames"][-1]["data"]} == {body["frames"][-1]["sim_time"]}
        thinned = http.get("/api/v1/history", params={"window": "2h", "max_frames": 10}).json()["frames"]
        assert len(thinned) == 10 and thinned[-1]["sim_time"] >= body["frames"][-1]["sim_time"]
        assert http.get("/api/v1/history?window=soon").status_code == 422
        assert http.get("/api/v1/history?window=30d").status_code == 422


def test_history_before_any_simulation_is_a_404(tmp_path):
    with serve(tmp_path) as server:
        answer = server.http.get("/api/v1/history")
        assert answer.status_code == 404 and "start one" in answer.text


# ------------------------------------------------------------------------------------ in the browser
@needs_chromium
def test_the_page_opens_on_history_alarms_and_the_running_settings(tmp_path):
    with serve(tmp_path) as server:
        http = server.http
        http.post("/api/v1/simulation/start", json={"preset": "single-string", "interval_seconds": 60, "seed": 5,
                                                    "speed": 3, "backfill": "2h"}).raise_for_status()
        wait_until(lambda: (http.get("/api/v1/simulation/status").json()["backfill"] or {}).get("state") == "done",
                   timeout=4 * WAIT_S)
        wait_until(lambda: len(http.get("/api/v1/history?window=1h").json()["frames"]) == 60)
        active = http.get("/api/v1/alarms").json()["active"]
        with chromium() as browser:
            page = new_page(browser.new_context(viewport={"width": 1280, "height": 1000}))
            page.goto(server.base + "/")
            wait_loaded(page)
            page.wait_for_function("() => window.__battsim.historyFrames >= 60", timeout=WAIT_MS)
            # The form shows the running simulation's settings, not the page's defaults.
            assert page.input_value("#seed") == "5" and page.input_value("#interval") == "60"
            assert float(page.input_value("#speed")) == 3
            assert page.input_value("#preset") == "single-string"
            shown = page.evaluate("() => window.__battsim.activeAlarms.length")
            assert shown >= len(active)  # every alarm active at load (more may have been raised since)
            assert page.evaluate("() => window.__battsim.framesParsed") >= 60
            # The float-voltage deviation chart of the selected battery's string: 24 jars, in mV from the mean.
            page.evaluate("() => window.__battsim.select('BKK_DC1_SYS01_STR01_BAT007')")
            page.wait_for_function("() => document.querySelector('#chart-deviation').dataset.series === '24' "
                                   "&& Number(document.querySelector('#chart-deviation').dataset.points) >= 24 * 60")
            deviation = page.evaluate("() => window.__battsim.deviation")
            assert deviation["string"] == "BKK_DC1_SYS01_STR01" and len(deviation["last"]) == 24
            assert abs(sum(deviation["last"])) < 1 and 0 < max(abs(v) for v in deviation["last"]) < 500
            assert_clean(page)


@needs_chromium
def test_a_replay_started_elsewhere_is_shown_and_controllable_and_1280_px_cuts_nothing(tmp_path):
    from battsim.engine.fleet import get_preset
    from battsim.recordings.batch import BatchRun, record_run

    start = datetime(2026, 3, 2, tzinfo=UTC)
    record_run(BatchRun(fleet=get_preset("thailand-9x24"), out=tmp_path / "six.duckdb", seed=3, start=start,
                        end=start + timedelta(hours=6), interval_s=60))
    with serve(tmp_path) as server:
        http = server.http
        http.post("/api/v1/simulation/start", json={"preset": "thailand-9x24", "interval_seconds": 5, "seed": 2,
                                                    "speed": 600}).raise_for_status()
        # Started by curl, not by the page:
        http.post("/api/v1/replay/start", json={"recording": "six", "speed": 60, "start_paused": True}).raise_for_status()
        with chromium() as browser:
            page = new_page(browser.new_context(viewport={"width": 1280, "height": 1000}))
            page.goto(server.base + "/")
            wait_loaded(page)
            page.wait_for_function("() => window.__battsim.view === 'replay'", timeout=WAIT_MS)
            # Controllable from the page: resume it there, and the server's replay plays.
            page.click("#replay-resume")
            wait_until(lambda: http.get("/api/v1/replay/status").json()["state"] == "playing")
            page.wait_for_function("() => window.__battsim.framesParsed > 0", timeout=WAIT_MS)
            # At 1,280 px nothing overflows the page, and no status value is cut.
            overflow = page.evaluate("""() => {
                const cut = [...document.querySelectorAll('.status dd, .status dt, .fields dd, .fields dt, label')]
                    .filter((e) => e.offsetParent && e.scrollWidth > e.clientWidth + 1).map((e) => e.textContent);
                const wide = [...document.querySelectorAll('body *')].filter((e) => e.getBoundingClientRect().right > 1281)
                    .map((e) => `${e.tagName}#${e.id} in .${e.parentElement.className}: ${e.textContent.slice(0, 40)}`);
                return {page: document.documentElement.scrollWidth, cut, wide: wide.slice(0, 5)};
            }""")
            assert overflow["page"] <= 1280 and overflow["cut"] == [], overflow
            assert_clean(page)
