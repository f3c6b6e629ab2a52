"""The scenario builder in a real browser (issue 24): Debian's chromium driven by Playwright against a real server
on 127.0.0.1. A user builds "power outage at one site every weekday at 14:00 Bangkok time for 2 h", reads the
preview, installs it and sees the outage arrive in the live telemetry at virtual 14:00; builder → TOML → builder
is a round trip; bad inputs show the server's message next to the field. Every wait is bounded (WAIT_MS)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from battsim.scenarios.timeline import parse_timeline
from dashboard_browser import chromium, needs_chromium, new_page
from test_service_helpers import next_of, serve

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect
pytestmark = needs_chromium
SCREENSHOTS = Path(__file__).resolve().parent.parent / "test-output" / "builder"
WAIT_MS = 20_000


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with serve(tmp_path_factory.mktemp("builder")) as running:
        yield running


@pytest.fixture(scope="module")
def browser():
    with chromium() as browser:
        yield browser


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1600, "height": 1100}, accept_downloads=True)
    page = new_page(context, WAIT_MS)
    yield page
    context.close()
    server.http.post("/api/v1/simulation/stop")


def open_builder(page, server) -> None:
    page.goto(server.base + "/")
    page.wait_for_function("() => document.querySelector('#builder').dataset.ready === 'true' "
                           "&& document.querySelectorAll('#preset option').length > 0")
    page.click("#builder > summary")
    expect(page.locator("#b-tree input[data-kind='sites']").first).to_be_visible()


def builder(page, expression: str):
    return page.evaluate(f"() => window.__battsimBuilder.{expression}")


def field_error(page, field: str):
    return page.locator(f"#builder .field-error[data-error-for='{field}']")


def weekday_outage_at(page, site: str) -> None:
    page.select_option("#b-scenario", "power_outage")
    page.fill("#b-target-search", site)
    page.check(f"#b-tree input[data-kind='sites'][data-id='{site}']")
    page.select_option("#b-when-kind", "recurring")
    page.select_option("#b-every", "weekdays")
    page.fill("#b-time", "14:00")
    page.fill("#b-duration", "2h")


def screenshot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)


def test_weekday_outage_previewed_installed_and_seen_in_the_telemetry_at_14_bangkok(page, server):
    # Monday 2 March 2026, 13:58 in Bangkok, paused: the builder is used before virtual time moves.
    started = server.http.post("/api/v1/simulation/start", json={
        "preset": "thailand-9x24", "interval_seconds": 10, "speed": 60, "seed": 3, "paused": True,
        "start": "2026-03-02T06:58:00Z"})
    assert started.status_code == 200, started.text
    open_builder(page, server)
    weekday_outage_at(page, "HKT_DC1")
    expect(page.locator("#b-target-summary")).to_have_text("sites: HKT_DC1")
    page.click("#b-preview")
    rows = page.locator("#b-occurrences tr")
    expect(rows).to_have_count(10)
    # The first five: Monday to Friday at 14:00-16:00 Bangkok (UTC+07:00), 07:00 UTC, at Phuket only.
    starts = rows.evaluate_all("rows => rows.slice(0, 5).map(r => r.dataset.start)")
    assert starts == [f"2026-03-0{day}T07:00:00+00:00" for day in range(2, 7)]
    for index, day in enumerate(range(2, 7)):
        local = rows.nth(index).locator(".local")
        expect(local).to_contain_text(f"2026-03-0{day} 14:00 → 16:00 Asia/Bangkok (UTC+07:00) HKT_DC1")
    assert rows.nth(5).get_attribute("data-start") == "2026-03-09T07:00:00+00:00"  # the weekend skipped
    expect(page.locator("#b-chart")).to_have_attribute("data-bars", "10")
    expect(page.locator("#b-chart")).to_have_attribute("data-installed", "0")
    assert server.http.get("/api/v1/simulation/status").json()["timelines"] == []  # a preview installs nothing
    screenshot(page, "01-preview")

    page.click("#b-install")
    expect(page.locator("#b-result")).to_contain_text("Installed")
    expect(page.locator("#b-chart")).to_have_attribute("data-installed", "10")  # now beside it, as installed
    assert server.http.get("/api/v1/simulation/status").json()["timelines"] == ["timeline"]

    # Run it: the outage arrives in the live telemetry at the virtual 14:00, at Phuket and nowhere else.
    with server.telemetry("?site_id=HKT_DC1") as ws:
        page.click("#resume")
        frame = next_of(ws, "telemetry", lambda m: all(r["mode"] == "discharge" for r in m["data"]), timeout=WAIT_MS / 1000)
    first = frame["data"][0]["timestamp"]
    assert "2026-03-02T07:00:00" < first.replace("Z", "+00:00") <= "2026-03-02T07:00:10+00:00", first
    page.wait_for_function("() => window.__battsim.siteModes().HKT_DC1?.discharge === 24")
    site_modes = page.evaluate("() => window.__battsim.siteModes()")
    assert all(modes == {"float": 24} for site, modes in site_modes.items() if site != "HKT_DC1"), site_modes
    [active] = server.http.get("/api/v1/scenarios/active").json()
    assert (active["name"], active["targets"], active["since"], active["until"]) == (
        "power_outage", {"sites": ["HKT_DC1"]}, "2026-03-02T07:00:00+00:00", "2026-03-02T09:00:00+00:00")
    screenshot(page, "02-outage")
    assert page.console_errors == [] and builder(page, "errors") == []


def test_builder_to_toml_to_builder_round_trip(page, server, tmp_path):
    open_builder(page, server)
    page.fill("#b-timeline-name", "hot nights")
    page.select_option("#b-scenario", "high_temperature")
    page.fill("#b-params [data-param='ambient_c']", "41.5")
    page.fill("#b-target-search", "BKK_DC1")
    page.locator("#b-tree details.tree-site").first.evaluate("d => d.open = true")
    page.check("#b-tree input[data-kind='strings'][data-id='BKK_DC1_SYS01_STR01']")
    page.select_option("#b-when-kind", "recurring")
    page.select_option("#b-every", "weekly")
    page.check("#b-day-WE")
    page.check("#b-day-SU")
    page.fill("#b-time", "02:30")
    page.fill("#b-starting", "2026-03-01")
    page.fill("#b-until", "2026-12-31")
    page.fill("#b-duration", "90min")
    page.click("#b-preview")
    # (How many of its occurrences are still to come depends on the wall clock: nothing runs, so "now" is real.)
    expect(page.locator("#b-occurrences tr").first).to_be_visible()
    built = builder(page, "form")
    with page.expect_download() as download:
        page.click("#b-download")
    assert download.value.suggested_filename == "hot-nights.toml"
    path = tmp_path / "hot-nights.toml"
    download.value.save_as(path)
    timeline = parse_timeline(path.read_text(encoding="utf-8"))  # what `battsim run --timeline` reads
    [event] = timeline.events
    assert (event.entry.scenario, event.entry.repeat, event.entry.params) == (
        "high_temperature", "FREQ=WEEKLY;BYDAY=WE,SU", {"ambient_c": 41.5})

    open_builder(page, server)  # a fresh page: nothing of the above left in it
    assert builder(page, "form")["events"][0]["scenario"] == "power_outage"
    page.set_input_files("#b-open", str(path))
    expect(page.locator("#b-result")).to_contain_text("Opened hot-nights.toml: 1 event")
    assert builder(page, "form") == built
    expect(page.locator("#b-scenario")).to_have_value("high_temperature")
    expect(page.locator("#b-params [data-param='ambient_c']")).to_have_value("41.5")
    expect(page.locator("#b-every")).to_have_value("weekly")
    assert [page.is_checked(f"#b-day-{day}") for day in ("MO", "WE", "SU")] == [False, True, True]
    expect(page.locator("#b-time")).to_have_value("02:30")
    expect(page.locator("#b-until")).to_have_value("2026-12-31")
    expect(page.locator("#b-duration")).to_have_value("90min")
    expect(page.locator("#b-target-summary")).to_have_text("strings: BKK_DC1_SYS01_STR01")
    expect(page.locator("#b-timeline-name")).to_have_value("hot nights")
    assert page.console_errors == []


def test_bad_inputs_show_the_server_s_message_next_to_the_field(page, server, tmp_path):
    open_builder(page, server)  # nothing runs: the preview is on the preset chosen in the Simulation panel
    weekday_outage_at(page, "BKK_DC1")
    page.select_option("#b-every", "daily")
    page.fill("#b-starting", "2026-03-02")
    page.fill("#b-until", "2026-03-03")
    page.fill("#b-duration", "20h")
    page.click("#b-preview")
    expect(field_error(page, "duration")).to_contain_text("runs past the end of the repeat (until 2026-03-03)")
    expect(page.locator("#b-occurrences tr")).to_have_count(0)

    page.fill("#b-duration", "2 fortnights")
    page.click("#b-preview")
    expect(field_error(page, "duration")).to_contain_text("unknown unit 'fortnights'")

    page.fill("#b-duration", "2h")
    page.select_option("#b-when-kind", "once")
    page.fill("#b-once-at", "tomorrow at tea time")
    page.click("#b-install")  # nothing runs: install has nothing to install into, but the field is checked first
    expect(page.locator("#b-error")).to_contain_text("no simulation is running")
    page.click("#b-preview")
    expect(field_error(page, "when.at")).to_contain_text("'tomorrow at tea time' is not a time of day")
    expect(field_error(page, "duration")).to_have_text("")  # the old message is gone

    page.select_option("#b-scenario", "high_temperature")
    page.fill("#b-params [data-param='ambient_c']", "99")
    page.fill("#b-once-at", "+10min")
    page.click("#b-preview")
    expect(field_error(page, "params")).to_contain_text("ambient_c")
    expect(field_error(page, "params")).to_contain_text("less than or equal to 60")

    # An unknown id, from a file: the builder takes it, the server names it next to the targets.
    unknown = tmp_path / "unknown.toml"
    unknown.write_text('[[event]]\nscenario = "power_outage"\nat = "14:00"\nduration = "2h"\nsites = ["NOPE_DC9"]\n')
    page.set_input_files("#b-open", str(unknown))
    expect(page.locator("#b-target-summary")).to_have_text("sites: NOPE_DC9")
    page.click("#b-preview")
    expect(field_error(page, "targets.sites")).to_contain_text("unknown id(s) NOPE_DC9")
    # A file the builder cannot express is refused with the server's reason.
    clear = tmp_path / "clear.toml"
    clear.write_text('[[event]]\nscenario = "power_outage"\naction = "clear"\nat = "14:00"\n')
    page.set_input_files("#b-open", str(clear))
    expect(page.locator("#b-error")).to_contain_text("a clear action has no place in the builder")
    screenshot(page, "03-errors")
    # The browser logs each refused request; those are the ones this test made, and nothing else went wrong.
    assert [e for e in page.console_errors if not re.search(r"status of (409|422)", e)] == []


def test_the_open_builder_fits_1280_px_with_a_preview(browser, server):
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    try:
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        open_builder(page, server)
        weekday_outage_at(page, "HKT_DC1")
        page.locator("#b-tree details.tree-string").first.evaluate("d => d.open = true")  # the jars shown too
        page.click("#b-preview")
        expect(page.locator("#b-occurrences tr").first).to_be_visible()
        overflow = page.evaluate("""() => {
            const cut = [...document.querySelectorAll('#builder label, #builder td, #builder button')]
                .filter((e) => e.offsetParent && e.scrollWidth > e.clientWidth + 1).map((e) => e.textContent);
            const wide = [...document.querySelectorAll('body *')].filter((e) => e.getBoundingClientRect().right > 1281)
                .map((e) => `${e.tagName}#${e.id}.${e.className}: ${e.textContent.slice(0, 40)}`);
            return {page: document.documentElement.scrollWidth, cut: cut.slice(0, 5), wide: wide.slice(0, 5)};
        }""")
        assert overflow["page"] <= 1280 and overflow["wide"] == [] and overflow["cut"] == [], overflow
        screenshot(page, "04-1280px")
    finally:
        context.close()
