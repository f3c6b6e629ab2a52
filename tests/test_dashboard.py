"""The dashboard in a real browser: Debian's chromium driven by Playwright against the real server.

One server (uvicorn on a free loopback port, a temporary data directory holding one batch recording
for the replay test) and one browser serve the whole module; each test opens a fresh page, drives
it as a user would, and waits on what the page exposes (``window.__battsim`` and ``data-*``
attributes), never on pixels or fixed sleeps. A screenshot of each state is saved under
``test-output/dashboard/``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from battsim.engine.fleet import get_preset
from battsim.recordings.batch import BatchRun, record_run
from battsim.scenarios import load_timeline
from battsim.service.security import access_policy
from dashboard_browser import assert_clean, chromium, needs_chromium, new_page, wait_loaded
from test_service_helpers import serve, wait_until

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect
pytestmark = needs_chromium
SCREENSHOTS = Path(__file__).resolve().parent.parent / "test-output" / "dashboard"

RECORDING_START = datetime(2026, 3, 2, tzinfo=UTC)
# The recording the replay test plays: six hours of the 9-site fleet with a one-hour outage at one site.
OUTAGE_TIMELINE = """
[[event]]
scenario = "power_outage"
at = "+2h"
duration = "1h"
sites = ["BKK_DC1"]
"""


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("dashboard") / "recordings"
    directory.mkdir()
    record_run(BatchRun(fleet=get_preset("thailand-9x24"), preset="thailand-9x24", seed=11,
                        out=directory / "outage-6h.duckdb", start=RECORDING_START,
                        end=RECORDING_START + timedelta(hours=6), interval_s=60,
                        timelines=[load_timeline(OUTAGE_TIMELINE, source="outage")]))
    return directory


@pytest.fixture(scope="module")
def server(data_dir):
    with serve(data_dir) as running:
        yield running


@pytest.fixture(scope="module")
def browser():
    with chromium() as browser:
        yield browser



@pytest.fixture
def page(browser, server):
    """A fresh page on the dashboard, its console errors collected; the simulation and replay stopped after."""
    context = browser.new_context(viewport={"width": 1600, "height": 1100})
    page = new_page(context)
    page.goto(server.base + "/")
    wait_loaded(page)
    yield page
    context.close()
    for path in ("/api/v1/simulation/stop", "/api/v1/replay/stop"):
        server.http.post(path)  # 409/404 when nothing runs: fine


def screenshot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.evaluate("() => window.scrollTo(0, 0)")  # the banner is sticky: from the top it sits at the top
    page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)


def debug(page, expression: str):
    return page.evaluate(f"() => window.__battsim.{expression}")


def start_from_the_page(page, preset: str = "thailand-9x24", speed: str = "60") -> None:
    page.select_option("#preset", preset)
    page.fill("#seed", "7")
    page.fill("#interval", "1")
    page.fill("#speed", speed)
    page.click("#start")
    expect(page.locator("#stop")).to_be_enabled()


# ---------------------------------------------------------------------------------------------- tests
def test_the_page_loads_without_console_errors(page, server):
    expect(page.locator("#banner")).to_contain_text("SIMULATION MODE")
    # The chart library is the vendored copy, served by the package (nothing comes from the internet).
    assert page.evaluate("() => typeof uPlot") == "function"
    assert server.http.get("/static/vendor/uPlot.LICENSE").status_code == 200
    presets = page.locator("#preset option").all_inner_texts()
    assert any(text.startswith("thailand-9x24") for text in presets)
    assert "power_outage" in page.locator("#scenario option").evaluate_all("options => options.map(o => o.value)")
    # A scenario's parameters become inputs, from the catalogue's schema.
    page.select_option("#scenario", "high_temperature")
    expect(page.locator("#scenario-params [data-param='ambient_c']")).to_have_value("45")
    expect(page.locator("#start")).to_be_enabled()
    expect(page.locator("#stop")).to_be_disabled()
    screenshot(page, "01-loaded")
    assert_clean(page)


def test_start_draws_the_charts_heat_maps_and_detail_within_seconds(page, server):
    start_from_the_page(page)
    for chart in ("voltage", "current", "temperature"):
        # Nine strings (one per site), several points each.
        page.wait_for_function(f"() => +document.querySelector('#chart-{chart}').dataset.series === 9 "
                               f"&& +document.querySelector('#chart-{chart}').dataset.points >= 9 * 3")
    for heat_map in ("temperature", "soh", "mode"):
        expect(page.locator(f"#heat-{heat_map}")).to_have_attribute("data-cells", "216")
    page.wait_for_function("() => +document.querySelector('#chart-detail').dataset.points >= 3")
    status = server.http.get("/api/v1/simulation/status").json()
    assert status["is_running"] and status["batteries_count"] == debug(page, "jars") == 216
    assert debug(page, "modeCounts") == {"float": 216}
    # Picking a jar in the heat map selects it for the detail panel.
    page.locator("#heat-temperature canvas").click(position={"x": 5, "y": 5})
    expect(page.locator("#detail-id")).to_have_text(debug(page, "selected"))
    expect(page.locator("#detail-fields")).to_contain_text("float")
    screenshot(page, "02-running")
    # Pause and resume from the page.
    page.click("#pause")
    expect(page.locator("#resume")).to_be_enabled()
    assert server.http.get("/api/v1/simulation/status").json()["is_paused"] is True
    page.click("#resume")
    expect(page.locator("#pause")).to_be_enabled()
    page.click("#stop")
    expect(page.locator("#start")).to_be_enabled()
    assert_clean(page)


def test_the_full_fleet_fills_the_heat_maps_and_a_site_can_be_charted_alone(page, server):
    start_from_the_page(page, preset="thailand-full", speed="1")
    for heat_map in ("temperature", "soh", "mode"):
        expect(page.locator(f"#heat-{heat_map}")).to_have_attribute("data-cells", "1944")
    page.wait_for_function("() => +document.querySelector('#chart-voltage').dataset.series === 81 "
                           "&& window.__battsim.framesParsed >= 2")
    page.select_option("#chart-site", "BKK_DC1")
    page.wait_for_function("() => window.__battsim.framesParsed >= 3 "
                           "&& +document.querySelector('#chart-current').dataset.series === 9")
    assert len(page.locator("#target-strings option").all()) == 81
    screenshot(page, "03-full-fleet")
    assert_clean(page)


def test_power_outage_on_a_site_shows_the_discharge_and_an_alarm(page, server):
    start_from_the_page(page, speed="10")
    page.wait_for_function("() => window.__battsim.framesParsed >= 2")
    page.select_option("#scenario", "power_outage")
    page.select_option("#target-sites", "BKK_DC1")
    page.click("#apply-scenario")
    expect(page.locator("#active-scenarios")).to_contain_text("power_outage")
    expect(page.locator("#active-scenarios")).to_contain_text("BKK_DC1")
    # The site's string discharges (negative current on the chart), and no other site's does.
    page.wait_for_function("() => window.__battsim.siteModes().BKK_DC1?.discharge === 24 "
                           "&& window.__battsim.minStringCurrent < -1")
    site_modes = debug(page, "siteModes()")
    assert all(modes == {"float": 24} for site, modes in site_modes.items() if site != "BKK_DC1")
    page.evaluate("() => window.__battsim.select('BKK_DC1_SYS01_STR01_BAT001')")
    expect(page.locator("#detail-fields")).to_contain_text("discharge")
    # The alarm list is the server's alarm state, built from its alert frames: paused, the two agree
    # exactly, and the site's string is on battery: one alarm for the string (issue 15), not one per jar.
    page.click("#pause")
    expect(page.locator("#resume")).to_be_enabled()
    active = sorted(f"{a['battery_id'] or a['string_id']}|{a['rule']}"
                    for a in server.http.get("/api/v1/alarms").json()["active"])
    on_battery = [alarm for alarm in active if alarm.endswith("|on_battery")]
    assert on_battery == ["BKK_DC1_SYS01_STR01|on_battery"]
    page.wait_for_function("""(expected) => JSON.stringify(window.__battsim.activeAlarms
                                .map((a) => `${a.battery_id}|${a.rule}`).sort()) === JSON.stringify(expected)""",
                           arg=active)
    expect(page.locator("#alarms")).to_have_attribute("data-active", str(len(active)))
    expect(page.locator("#alarm-rows tr[data-battery^='BKK_DC1_']").first).to_be_visible()
    expect(page.locator("#alarm-rows")).to_contain_text("on_battery")
    screenshot(page, "04-power-outage")
    page.click("#resume")
    # Clearing brings the string back to charge.
    page.click("#clear-all")
    page.wait_for_function("() => !window.__battsim.siteModes().BKK_DC1?.discharge")
    assert_clean(page)


def test_a_scenario_with_parameters_on_batteries_and_a_timeline_from_the_control_panel(page, server):
    start_from_the_page(page, speed="1")
    page.wait_for_function("() => window.__battsim.jars === 216")
    page.select_option("#scenario", "high_temperature")
    page.fill("#scenario-params [data-param='ambient_c']", "41.5")
    page.evaluate("() => window.__battsim.select('HKT_DC1_SYS01_STR01_BAT003')")
    page.click("#target-selected")
    expect(page.locator("#target-batteries")).to_have_value("HKT_DC1_SYS01_STR01_BAT003")
    page.fill("#scenario-duration", "2h")
    page.click("#apply-scenario")
    expect(page.locator("#active-scenarios")).to_contain_text("high_temperature")
    [applied] = server.http.get("/api/v1/scenarios/active").json()
    assert applied["name"] == "high_temperature" and applied["params"] == {"ambient_c": 41.5}
    assert applied["jars"] == 24  # a site-scoped scenario: the battery's whole site
    assert applied["until"] is not None
    # A shipped timeline, chosen by name, installed in the running simulation.
    page.select_option("#timeline-name", "daily-outage")
    expect(page.locator("#timeline-text")).to_have_value(re.compile(r"\[\[event\]\]"))
    page.click("#load-timeline")
    expect(page.locator("#timeline-current")).to_contain_text("daily-outage")
    assert "daily-outage" in server.http.get("/api/v1/simulation/status").json()["timelines"]
    # A bad battery id is ignored by the server (as the original did) and the page says so.
    page.fill("#target-batteries", "NOPE_BAT")
    page.click("#apply-scenario")
    expect(page.locator("#toast")).to_contain_text("NOPE_BAT")
    assert page.evaluate("() => window.__battsim.errors.length") == 1


MARKUP = '<img src=x onerror="window.__pwned = 1">'


def test_markup_from_the_server_is_shown_as_text_never_run(page, server):
    """A timeline event named with markup reaches the active-scenario list as the text it is."""
    start_from_the_page(page, speed="1")
    page.wait_for_function("() => window.__battsim.jars === 216")
    timeline = f'[[event]]\nname = {MARKUP!r}\nscenario = "hvac_failure"\nat = "+1s"\nduration = "1h"\nsites = ["BKK_DC1"]\n'
    assert server.http.post("/api/v1/timeline", json={"timeline": timeline}).status_code == 200
    page.evaluate("() => document.dispatchEvent(new CustomEvent('battsim:timeline-installed'))")
    expect(page.locator("#active-scenarios")).to_contain_text(MARKUP)
    assert page.locator("#active-scenarios img").count() == 0
    assert page.evaluate("() => window.__pwned") is None
    assert_clean(page)


def test_the_html_helper_escapes_every_value_and_keeps_fragments(page):
    result = page.evaluate("""async () => {
        const { html, render } = await import("/static/dashboard/html.js");
        const name = '<b a="1">&\\'';
        const el = document.createElement("div");
        render(el, html`<b title="${name}">${name}${[html`<i>${"<x>"}</i>`, "<y>"]}${null}${false}</b>`);
        let refused = null;
        try { render(el, "<b>raw</b>"); } catch (error) { refused = error.constructor.name; }
        return { markup: String(html`<b title="${name}">${name}${[html`<i>${"<x>"}</i>`, "<y>"]}${null}${false}</b>`),
                 title: el.querySelector("b").title, text: el.textContent, refused };
    }""")
    assert result["markup"] == ('<b title="&lt;b a=&quot;1&quot;&gt;&amp;&#39;">&lt;b a=&quot;1&quot;&gt;&amp;&#39;'
                                "<i>&lt;x&gt;</i>&lt;y&gt;</b>")
    assert result["title"] == '<b a="1">&\'' and result["text"] == '<b a="1">&\'<x><y>'
    assert result["refused"] == "TypeError"


def test_a_replay_plays_and_seeks(page, server):
    page.select_option("#recording", label="outage-6h.duckdb")
    expect(page.locator("#recording-description")).to_contain_text("77,760 readings")
    page.select_option("#replay-speed", "3600")
    page.click("#replay-play")
    page.wait_for_function("() => window.__battsim.view === 'replay' && window.__battsim.jars === 216 "
                           "&& window.__battsim.framesParsed >= 3")
    # The seek bar spans the recording and marks its events (the outage starting and ending).
    expect(page.locator("#seek-bar")).to_be_enabled()
    span = debug(page, "replaySpan")
    assert span["start"] == RECORDING_START.timestamp()
    page.wait_for_function("() => window.__battsim.replayEvents >= 2")
    # Seek to 5 h in: the next frames come from there.
    five_hours = RECORDING_START.timestamp() + 5 * 3600
    page.locator("#seek-bar").fill(str(round((five_hours - span["start"]) / (span["end"] - span["start"]) * 1000)))
    page.wait_for_function(f"() => window.__battsim.simTime >= {five_hours - 120}")
    page.click("#replay-pause")
    page.wait_for_function("() => window.__battsim.replayStatus.state === 'paused'")
    screenshot(page, "05-replay")
    page.click("#replay-stop")
    page.wait_for_function("() => window.__battsim.view === 'live'")
    assert_clean(page)


def test_replaying_a_live_recording_shows_the_alarms_it_recorded(page, server):
    http = server.http
    started = http.post("/api/v1/simulation/start", json={"preset": "thailand-9x24", "interval_seconds": 1,
                                                           "speed": 60, "seed": 7})
    assert started.status_code == 200, started.text
    # A site on battery raises on_battery on each of its strings (issue 15), still active at the stop.
    http.post("/api/v1/scenarios/apply", json={"scenario": "power_outage", "site_ids": ["BKK_DC1"]}).raise_for_status()
    wait_until(lambda: http.get("/api/v1/simulation/status").json()["ticks"] >= 10)
    recording = Path(http.post("/api/v1/simulation/stop").json()["recording_path"])
    # What the recording says is active once it has been played to the end.
    with duckdb.connect(str(recording), read_only=True) as connection:
        active_at_end = connection.execute(
            "SELECT count(*) FROM (SELECT kind FROM events WHERE kind IN ('alarm_raised', 'alarm_cleared') "
            "QUALIFY row_number() OVER (PARTITION BY string_id, battery_id, json_extract_string(detail, '$.rule') "
            "ORDER BY timestamp DESC) = 1) WHERE kind = 'alarm_raised'").fetchone()[0]
        on_battery_at_end = connection.execute(
            "SELECT count(*), count(battery_id) FROM alarms WHERE rule = 'on_battery' AND active").fetchone()
    assert on_battery_at_end == (1, 0) and active_at_end >= 1  # BKK_DC1's one string, named by string
    page.click("#recordings-refresh")
    page.select_option("#recording", recording.stem)
    page.select_option("#replay-speed", "600")
    page.click("#replay-play")
    page.wait_for_function("() => window.__battsim.replayStatus?.state === 'ended'")
    page.wait_for_function(f"() => window.__battsim.activeAlarms.length === {active_at_end}")
    expect(page.locator("#alarms")).to_have_attribute("data-active", str(active_at_end))
    assert_clean(page)


def test_a_replay_as_fast_as_possible_reaches_the_page(page, server):
    # The page subscribes before it starts the replay: at max speed nothing waits for a late subscriber.
    page.select_option("#recording", label="outage-6h.duckdb")
    page.select_option("#replay-speed", "max")
    page.click("#replay-play")
    page.wait_for_function("() => window.__battsim.replayStatus?.state === 'ended'")
    page.wait_for_function(f"() => window.__battsim.simTime === {RECORDING_START.timestamp() + 6 * 3600 - 60}")
    assert debug(page, "jars") == 216 and debug(page, "framesParsed") >= 1
    assert_clean(page)


# ---------------------------------------------------------------------------------------------- security
TOKEN = "dashboard-test-token-0123456789"


@pytest.fixture
def locked_server(data_dir):
    """The server with a token (battsim serve --token)."""
    with serve(data_dir, access=access_policy(token=TOKEN)) as running:
        yield running


def test_the_dashboard_works_with_the_token_given_in_its_address(browser, locked_server):
    context = browser.new_context(viewport={"width": 1600, "height": 1100})
    page = new_page(context)
    page.goto(f"{locked_server.base}/#token={TOKEN}")
    wait_loaded(page)
    # Kept for this tab only, and out of the address bar (and so of the history and bookmarks).
    assert page.evaluate("() => sessionStorage.getItem('battsim.token')") == TOKEN
    assert page.evaluate("() => location.hash") == ""
    start_from_the_page(page, preset="single-string")
    page.wait_for_function("() => window.__battsim.framesParsed >= 3")  # the WebSocket carries the token too
    page.click("#stop")
    expect(page.locator("#start")).to_be_enabled()
    assert_clean(page)
    context.close()
    locked_server.http.post("/api/v1/simulation/stop", headers={"Authorization": f"Bearer {TOKEN}"})


def test_the_dashboard_asks_for_the_token_once_when_it_has_none(browser, locked_server):
    context = browser.new_context(viewport={"width": 1600, "height": 1100})
    page = new_page(context)
    asked = []
    page.on("dialog", lambda dialog: (asked.append(dialog.message), dialog.accept(TOKEN)))
    page.goto(locked_server.base + "/")
    wait_loaded(page)
    assert len(asked) == 1 and "token" in asked[0]
    assert page.evaluate("() => window.__battsim.errors") == []
    # The browser logs the refused requests (401, and the first WebSocket handshake): only those.
    assert all("401" in error or "WebSocket" in error for error in page.console_errors), page.console_errors
    context.close()


def test_the_docs_render_offline_under_their_content_security_policy(browser, server):
    context = browser.new_context(viewport={"width": 1600, "height": 1100})
    outside = []

    def only_local(route):
        if route.request.url.startswith(server.base):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", only_local)
    page = new_page(context)
    page.goto(server.base + "/docs")
    page.wait_for_function("() => document.querySelectorAll('.opblock').length >= 20")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("battsim")
    screenshot(page, "20-docs")
    assert outside == [] and page.console_errors == []
    context.close()
