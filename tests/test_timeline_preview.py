"""The timeline preview and the builder's conversions (issue 24): POST /api/v1/timeline/preview, /toml, /form,
GET /api/v1/timeline/targets, on a real server on 127.0.0.1; the DST and escaping cases on the core functions."""

from __future__ import annotations

import copy
import subprocess
from datetime import UTC, datetime

import duckdb
import pytest

from battsim.engine.fleet import FleetSpec, SiteSpec, build_fleet, get_preset
from battsim.scenarios import load_timeline, shipped_timelines
from battsim.scenarios.builder_form import TimelineForm, form_to_toml, timeline_to_form
from battsim.scenarios.preview import occurrences
from battsim.scenarios.timeline import parse_timeline
from test_service_helpers import battsim_command, serve

# "A power outage at the Phuket site every weekday at 14:00 Bangkok time for 2 h."
WEEKDAY_OUTAGE = {"timezone": "Asia/Bangkok", "events": [{
    "name": "afternoon outage", "scenario": "power_outage", "targets": {"sites": ["HKT_DC1"]},
    "when": {"kind": "recurring", "every": "weekdays", "time": "14:00"}, "duration": "2h"}]}
SATURDAY = "2026-02-28T00:00:00+00:00"  # so the first weekday is Monday 2 March


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with serve(tmp_path_factory.mktemp("preview")) as running:
        yield running


@pytest.fixture
def running(server):
    """A paused 9-site simulation at a fixed virtual start, stopped after the test."""
    answer = server.http.post("/api/v1/simulation/start", json={
        "preset": "thailand-9x24", "interval_seconds": 60, "start": "2026-03-02T06:00:00Z", "paused": True})
    assert answer.status_code == 200, answer.text
    yield server
    server.http.post("/api/v1/simulation/stop")


def problem(answer) -> tuple[list, str]:
    assert answer.status_code == 422, answer.text
    [detail] = answer.json()["detail"]
    return detail["loc"], detail["msg"]


def form_with(**changes) -> dict:
    form = copy.deepcopy(WEEKDAY_OUTAGE)
    event = form["events"][0]
    for key, value in changes.items():
        if key in ("time", "every", "until", "starting", "days", "kind", "rate_per_year", "at"):
            event["when"][key] = value
        else:
            event[key] = value
    return form


# ------------------------------------------------------------------------------------------ preview
def test_weekday_outage_preview_lists_the_next_five_weekdays_at_14_bangkok_and_installs_nothing(running):
    answer = running.http.post("/api/v1/timeline/preview", json={"form": WEEKDAY_OUTAGE, "count": 5, "since": SATURDAY})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["fleet"] == "thailand-9x24"
    starts = [row["start"] for row in body["occurrences"]]
    # 14:00 at +07:00 is 07:00 UTC, Monday 2 March to Friday 6 March; Saturday and Sunday are skipped.
    assert starts == [f"2026-03-0{day}T07:00:00+00:00" for day in range(2, 7)]
    for row in body["occurrences"]:
        assert row["scenario"] == "power_outage" and row["targets"] == {"sites": ["HKT_DC1"]}
        assert row["duration_s"] == 7200
        [local] = row["local"]
        assert local["sites"] == ["HKT_DC1"] and local["timezone"] == "Asia/Bangkok"
        assert local["start"].endswith("T14:00:00+07:00") and local["end"].endswith("T16:00:00+07:00")
        assert local["utc_offset"] == local["utc_offset_end"] == "+07:00"
    # The TOML it answers with is the form's, as `battsim run --timeline` reads it.
    assert parse_timeline(body["toml"]).events[0].entry.repeat == "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR"
    # Nothing was installed: the running simulation has no timeline and no scenario acting.
    assert body["installed"] == {"occurrences": [], "random": [], "active": []}
    assert running.http.get("/api/v1/timeline").json()["installed"] == []
    assert running.http.get("/api/v1/simulation/status").json()["timelines"] == []


def test_preview_defaults_to_the_simulation_s_virtual_now_and_shows_what_is_installed(running):
    # The simulation is at 06:00 UTC (13:00 Bangkok) on Monday 2 March: today's 14:00 is next.
    installed = running.http.post("/api/v1/timeline", json={"form": WEEKDAY_OUTAGE})
    assert installed.status_code == 200, installed.text
    other = {"events": [{"scenario": "hvac_failure", "targets": {"sites": ["BKK_DC1"]},
                         "when": {"kind": "once", "at": "+30min"}, "duration": "1h"}]}
    body = running.http.post("/api/v1/timeline/preview", json={"form": other, "count": 3}).json()
    assert body["since"] == "2026-03-02T06:00:00+00:00"
    [once] = body["occurrences"]  # a one-off happens once, 30 min after it would be installed
    assert (once["start"], once["end"]) == ("2026-03-02T06:30:00+00:00", "2026-03-02T07:30:00+00:00")
    assert [row["start"] for row in body["installed"]["occurrences"]] == [
        "2026-03-02T07:00:00+00:00", "2026-03-03T07:00:00+00:00", "2026-03-04T07:00:00+00:00"]
    assert running.http.get("/api/v1/simulation/status").json()["timelines"] == ["timeline"]


def test_a_running_occurrence_is_shown_and_a_finished_one_is_not(running):
    body = running.http.post("/api/v1/timeline/preview", json={
        "form": WEEKDAY_OUTAGE, "count": 2, "since": "2026-03-02T08:00:00Z"}).json()
    # At 15:00 Bangkok the day's outage (14:00-16:00) still runs: installing now would apply its last hour.
    assert [row["start"] for row in body["occurrences"]] == ["2026-03-02T07:00:00+00:00", "2026-03-03T07:00:00+00:00"]
    body = running.http.post("/api/v1/timeline/preview", json={
        "form": WEEKDAY_OUTAGE, "count": 1, "since": "2026-03-02T09:00:00Z"}).json()
    assert body["occurrences"][0]["start"] == "2026-03-03T07:00:00+00:00"


def test_preview_of_toml_text_and_of_a_shipped_timeline_on_a_preset_with_nothing_running(server):
    body = server.http.post("/api/v1/timeline/preview", json={
        "timeline": "daily-outage", "preset": "thailand-9x24", "count": 2, "since": SATURDAY}).json()
    assert body["installed"] is None
    first = body["occurrences"][0]
    assert first["start"] == "2026-02-28T07:00:00+00:00" and first["targets"] == {"sites": "all"}
    assert len(first["local"][0]["sites"]) == 9
    text = "[[random]]\nkind = \"grid_outage\"\nsites = [\"HKT_DC1\"]\nrate_per_year = 12\n"
    body = server.http.post("/api/v1/timeline/preview", json={"timeline": text, "preset": "thailand-9x24"}).json()
    assert body["occurrences"] == []
    [random] = body["random"]
    assert (random["kind"], random["rate_per_year"], random["site_ids"]) == ("grid_outage", 12, ["HKT_DC1"])


def test_across_a_dst_change_the_local_times_show_both_offsets():
    fleet = build_fleet(FleetSpec(sites=[SiteSpec(site_id="FRA_DC1", timezone="Europe/Berlin", jars_per_string=2),
                                         SiteSpec(site_id="BKK_DC1", jars_per_string=2)]), seed=0)
    timeline = parse_timeline('timezone = "Europe/Berlin"\n[[event]]\nscenario = "power_outage"\nat = "01:30"\n'
                              'repeat = "daily"\nduration = "2h"\n')
    rows = occurrences(timeline, fleet, datetime(2026, 3, 28, tzinfo=UTC), count=2)
    berlin = [next(local for local in row["local"] if local["timezone"] == "Europe/Berlin") for row in rows]
    # 28 March: winter time; 29 March 01:30 CET, ending 04:30 CEST (the clocks went forward at 02:00).
    assert [(b["start"], b["end"]) for b in berlin] == [
        ("2026-03-28T01:30:00+01:00", "2026-03-28T03:30:00+01:00"),
        ("2026-03-29T01:30:00+01:00", "2026-03-29T04:30:00+02:00")]
    assert (berlin[1]["utc_offset"], berlin[1]["utc_offset_end"]) == ("+01:00", "+02:00")
    bangkok = next(local for local in rows[1]["local"] if local["timezone"] == "Asia/Bangkok")
    assert bangkok["sites"] == ["BKK_DC1"] and bangkok["start"] == "2026-03-29T07:30:00+07:00"


# ------------------------------------------------------------------------------------------ errors
@pytest.mark.parametrize(("changes", "loc", "words"), [
    ({"targets": {"sites": ["NOPE_DC9"]}}, ["events", 0, "targets", "sites"], "unknown id(s) NOPE_DC9"),
    ({"targets": {"batteries": ["BAT999"]}}, ["events", 0, "targets", "batteries"], "unknown id(s) BAT999"),
    ({"until": "2026-03-04", "starting": "2026-03-02", "duration": "12h"}, ["events", 0, "duration"],
     "runs past the end of the repeat"),
    ({"until": "2026-03-01", "starting": "2026-03-02"}, ["events", 0, "when", "until"], "before the first day"),
    ({"duration": "2 fortnights"}, ["events", 0, "duration"], "unknown unit"),
    ({"duration": "200y"}, ["events", 0, "duration"], "unknown unit"),
    ({"time": "25:00"}, ["events", 0, "when", "time"], "not a time of day"),
    ({"scenario": "meteor_strike"}, ["events", 0, "scenario"], "unknown scenario"),
    ({"params": {"ambient_c": 45}}, ["events", 0, "params"], "ambient_c"),
    ({"scenario": "hvac_failure", "kind": "random", "rate_per_year": 2}, ["events", 0, "when", "kind"],
     "only power_outage happens at random"),
])
def test_bad_form_fields_are_named_in_the_422(running, changes, loc, words):
    form = form_with(**changes)
    if changes.get("kind") == "random":
        form["events"][0]["when"] = {"kind": "random", "rate_per_year": 2}
    for path, extra in (("/api/v1/timeline/preview", {"since": SATURDAY}), ("/api/v1/timeline", {})):
        where, message = problem(running.http.post(path, json={"form": form, **extra}))
        assert where == ["body", "form", *loc] and words in message, (where, message)
    assert running.http.get("/api/v1/simulation/status").json()["timelines"] == []


def test_a_field_the_form_does_not_have_and_a_bad_time_zone_are_named(server):
    form = form_with()
    form["events"][0]["when"]["hour"] = 14
    where, message = problem(server.http.post("/api/v1/timeline/preview", json={"form": form, "preset": "single-string"}))
    assert where[-1] == "hour" and "extra" in message.lower()
    martian = {**form_with(), "timezone": "Mars/Olympus"}
    where, message = problem(server.http.post("/api/v1/timeline/toml", json={"form": martian}))
    assert where == ["body", "form", "timezone"] and "IANA" in message


def test_toml_errors_name_the_entry_and_field(server):
    text = '[[event]]\nscenario = "power_outage"\nat = "14:00"\nsites = ["NOPE_DC9"]\n'
    where, message = problem(server.http.post("/api/v1/timeline/preview", json={"timeline": text, "preset": "thailand-9x24"}))
    assert where == ["body", "timeline"] and "[[event]] #1" in message and "NOPE_DC9" in message


def test_preview_needs_a_fleet_and_one_timeline(server):
    answer = server.http.post("/api/v1/timeline/preview", json={"form": WEEKDAY_OUTAGE})
    assert answer.status_code == 409 and "give a preset" in answer.json()["detail"]
    where, message = problem(server.http.post("/api/v1/timeline/preview", json={"form": WEEKDAY_OUTAGE, "preset": "mars"}))
    assert where == ["body", "preset"] and "thailand-9x24" in message
    answer = server.http.post("/api/v1/timeline/preview", json={"preset": "thailand-9x24"})
    assert answer.status_code == 422 and "one of them" in answer.text
    answer = server.http.post("/api/v1/timeline/preview", json={"preset": "thailand-9x24", "timeline": "daily-outage",
                                                                "form": WEEKDAY_OUTAGE})
    assert answer.status_code == 422 and "one of them" in answer.text
    assert server.http.get("/api/v1/timeline/targets").status_code == 409
    where, message = problem(server.http.get("/api/v1/timeline/targets?preset=mars"))
    assert where == ["query", "preset"]


# ------------------------------------------------------------------------------------------ round trips
ROUND_TRIP_FORMS = [
    WEEKDAY_OUTAGE,
    {"name": 'Quotes " and \\ back\\slash, ünïcode, tab\tand DEL\x7f', "description": "line one\nline two",
     "timezone": "Europe/Berlin", "events": [
         {"scenario": "high_temperature", "params": {"ambient_c": 41.5}, "targets": {"strings": ["BKK_DC1_SYS01_STR01"]},
          "when": {"kind": "once", "at": "2026-07-01T09:00"}, "duration": "3h"},
         {"scenario": "hvac_failure", "targets": {"sites": ["BKK_DC1", "HKT_DC1"]},
          "when": {"kind": "recurring", "every": "weekly", "time": "02:30", "days": ["SU", "WE"],
                   "starting": "2026-03-01", "until": "2026-12-31"}, "duration": "90min"},
         {"scenario": "battery_degradation", "targets": {"batteries": ["HKT_DC1_SYS01_STR01_BAT007"]},
          "when": {"kind": "recurring", "every": "monthly", "time": "08:00:30", "day_of_month": 15}},
         {"scenario": "sensor_fault", "params": {"fault": "drift", "drift_c_per_h": 0.25},
          "when": {"kind": "once", "at": "+3d"}, "duration": "PT6H"},
         {"name": "random grid", "scenario": "power_outage", "targets": {"sites": ["KKC_DC1"]},
          "when": {"kind": "random", "rate_per_year": 6.5}, "duration": "45min"},
     ]},
]


@pytest.mark.parametrize("form", ROUND_TRIP_FORMS)
def test_form_to_toml_to_form_is_the_identity_over_http(server, form):
    toml = server.http.post("/api/v1/timeline/toml", json={"form": form})
    assert toml.status_code == 200, toml.text
    text = toml.json()["toml"]
    back = server.http.post("/api/v1/timeline/form", json={"timeline": text})
    assert back.status_code == 200, back.text
    assert TimelineForm.model_validate(back.json()["form"]) == TimelineForm.model_validate(form)
    # And the TOML written from the form read back is the same text.
    assert server.http.post("/api/v1/timeline/toml", json=back.json()).json()["toml"] == text
    assert parse_timeline(text).timezone == form["timezone"]


def test_shipped_timelines_the_builder_can_express_come_back_the_same(server):
    fleet, since = build_fleet(get_preset("thailand-9x24"), seed=0), datetime(2026, 3, 1, tzinfo=UTC)

    def when(timeline):  # what happens when, to which sites: labels and sources aside
        return [(row["scenario"], row["start"], row["end"], [local["sites"] for local in row["local"]])
                for row in occurrences(timeline, fleet, since, count=40)]

    expressed = 0
    for name, path in shipped_timelines().items():
        original = load_timeline(path)
        answer = server.http.post("/api/v1/timeline/form", json={"timeline": path.read_text()})
        if answer.status_code == 422:  # random HVAC faults, clear actions, RRULEs beyond the builder's four
            assert "edit this timeline as TOML" in answer.json()["detail"][0]["msg"], name
            continue
        expressed += 1
        again = parse_timeline(form_to_toml(TimelineForm.model_validate(answer.json()["form"])))
        assert again.timezone == original.timezone
        assert when(again) == when(original) and when(original), name
    assert expressed >= 1
    assert timeline_to_form(load_timeline("daily-outage")).events[0].when.every == "daily"


def test_battsim_run_reads_the_builder_s_toml_and_the_outage_lands_at_14_bangkok(tmp_path):
    form = form_with(starting="2026-03-02", targets={"sites": ["BKK_DC1"]})
    path = tmp_path / "weekday-outage.toml"
    path.write_text(form_to_toml(TimelineForm.model_validate(form)), encoding="utf-8")
    out = tmp_path / "run.duckdb"
    result = subprocess.run([*battsim_command(), "run", "--preset", "single-string", "--start", "2026-03-02T00:00:00Z",
                             "--days", "2", "--interval", "60", "--timeline", str(path), "--no-random-outages",
                             "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    with duckdb.connect(str(out), read_only=True) as db:
        rows = db.execute("SELECT kind, strftime(timestamp AT TIME ZONE 'Asia/Bangkok', '%Y-%m-%d %H:%M') FROM events "
                          "WHERE kind LIKE 'scenario%' ORDER BY timestamp").fetchall()
    assert rows == [("scenario_applied", "2026-03-02 14:00"), ("scenario_cleared", "2026-03-02 16:00"),
                    ("scenario_applied", "2026-03-03 14:00"), ("scenario_cleared", "2026-03-03 16:00")]


def test_targets_tree_is_the_fleet_site_string_jar(running):
    tree = running.http.get("/api/v1/timeline/targets").json()
    assert tree["fleet"] == "thailand-9x24" and len(tree["sites"]) == 9
    phuket = next(site for site in tree["sites"] if site["site_id"] == "HKT_DC1")
    assert phuket["timezone"] == "Asia/Bangkok" and phuket["name"] == "Phuket"
    [string] = phuket["strings"]
    assert string["string_id"] == "HKT_DC1_SYS01_STR01" and len(string["batteries"]) == 24


def test_openapi_documents_the_preview_request_and_response(server):
    schema = server.http.get("/openapi.json").json()
    operation = schema["paths"]["/api/v1/timeline/preview"]["post"]
    assert operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/PreviewRequest")
    assert operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/PreviewResponse")
    components = schema["components"]["schemas"]
    assert {"Occurrence", "LocalTime", "TimelineForm", "Recurring"} <= set(components)
    assert {"/api/v1/timeline/toml", "/api/v1/timeline/form", "/api/v1/timeline/targets"} <= set(schema["paths"])
