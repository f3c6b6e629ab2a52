"""Big fleets: the national-telecom preset, --sites N, fleet-file site templates × counts, memory flat per worker."""

from __future__ import annotations

import json
import os
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from tests.test_service_helpers import battsim_command

from battsim.engine.fleet import (
    PRESETS,
    FleetFileError,
    build_fleet,
    get_preset,
    load_fleet_file,
    national_telecom,
    with_sites,
)
from battsim.recordings import open_recording
from battsim.scale.manifest import read_manifest


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*battsim_command(), *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "COLUMNS": "250"})


def test_national_telecom_is_thousands_of_48_v_plants_in_the_documented_mix():
    spec = get_preset("national-telecom")
    assert len(spec.sites) == 2_000 and len({s.site_id for s in spec.sites}) == 2_000
    kinds = Counter(site.site_id.split("-")[1][:2] for site in spec.sites)
    shares = {kind: count / 2_000 for kind, count in kinds.items()}
    assert abs(shares["CE"] - 0.80) < 0.03 and abs(shares["HU"] - 0.15) < 0.03 and abs(shares["EX"] - 0.05) < 0.015
    assert {site.site_id.split("-")[0] for site in spec.sites} == {"N", "NE", "C", "BKK", "E", "S"}
    for site in spec.sites:
        model = spec.model_named(site.model)
        assert model.cells * 2 * site.jars_per_string == 48  # every string a 48 V plant
        assert site.jars_per_string in (4, 24)
    fleet = build_fleet(national_telecom(60), seed=1)
    assert fleet.size == sum(site.strings * site.jars_per_string for site in national_telecom(60).sites)


def test_sites_scales_a_procedural_preset_by_its_first_sites_and_repeats_any_other():
    assert with_sites(PRESETS["national-telecom"], 50).sites == PRESETS["national-telecom"].sites[:50]
    assert len(with_sites(PRESETS["national-telecom"], 5_000).sites) == 5_000
    grown = with_sites(get_preset("thailand-9x24"), 20)
    ids = [site.site_id for site in grown.sites]
    assert len(set(ids)) == 20 and ids[:9] == [s.site_id for s in get_preset("thailand-9x24").sites]
    assert ids[9] == "CNX_DC1-2" and ids[18] == "CNX_DC1-3"
    fleet, original = build_fleet(grown, seed=4), build_fleet(get_preset("thailand-9x24"), seed=4)
    assert (fleet.capacity_spread[:216] == original.capacity_spread).all()  # a jar is the same in any fleet
    assert with_sites(get_preset("thailand-9x24"), 3).sites == get_preset("thailand-9x24").sites[:3]
    with pytest.raises(FleetFileError, match="1-200,000"):
        with_sites(get_preset("thailand-9x24"), 0)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "fleet.toml"
    path.write_text(text)
    return path


def test_fleet_file_site_templates_times_counts(tmp_path):
    spec = load_fleet_file(write(tmp_path, """
name = "operator"
[[sites]]
site_id = "CORE"
strings = 2
[[site_templates]]
id_prefix = "BTS-"
count = 120
strings = 2
jars_per_string = 4
model = "GS GPL12-100"
load_kw_per_string = 1.0
[[site_templates]]
id_prefix = "HUB-"
count = 3
strings = 4
jars_per_string = 4
"""))
    ids = [site.site_id for site in spec.sites]
    assert len(ids) == 124 and ids[:3] == ["CORE", "BTS-001", "BTS-002"] and ids[-1] == "HUB-3"
    bts = spec.sites[5]
    assert (bts.strings, bts.jars_per_string, bts.model, bts.load_kw_per_string) == (2, 4, "GS GPL12-100", 1.0)
    assert spec.site_templates == []  # expanded: the spec (and a recording's config) lists sites only
    assert type(spec).model_validate(spec.model_dump()).sites == spec.sites
    assert build_fleet(spec, seed=0).size == 48 + 120 * 8 + 3 * 16


@pytest.mark.parametrize("body, named", [
    ('[[site_templates]]\nid_prefix = "B"\ncount = 0\n', "site_templates.0.count"),
    ('[[site_templates]]\nid_prefix = "B"\ncount = 2\nsite_id = "X"\n', "site_templates.0.site_id"),
    ('[[site_templates]]\nid_prefix = "B/"\ncount = 2\n', "site_templates.0.id_prefix"),
    ('[[site_templates]]\nid_prefix = "B"\ncount = 2\ncolour = "red"\n', "site_templates.0.colour"),
    ('[[sites]]\nsite_id = "B1"\n[[site_templates]]\nid_prefix = "B"\ncount = 2\n', "'B1' is used twice"),
    ('[[site_templates]]\nid_prefix = "B"\ncount = 150000\n[[site_templates]]\nid_prefix = "C"\ncount = 60000\n',
     "210,000 sites"),
    ('name = "empty"\n', "at least one site"),
])
def test_bad_templates_are_refused_naming_the_field(tmp_path, body, named):
    with pytest.raises(FleetFileError) as error:
        load_fleet_file(write(tmp_path, body))
    assert named in str(error.value) and "fleet.toml" in str(error.value)


def test_a_big_preset_scaled_runs_sharded_and_memory_stays_flat_per_worker(tmp_path):
    peaks = {}
    for sites in (40, 160):
        out = tmp_path / f"nt{sites}"
        result = cli("run", "--preset", "national-telecom", "--sites", str(sites), "--days", "0.25", "--interval", "300",
                     "--workers", "2", "--part-jars", "120", "--out", str(out), "--no-progress")
        assert result.returncode == 0, result.stderr
        jars = sum(s.strings * s.jars_per_string for s in national_telecom(sites).sites)
        with open_recording(out) as recording:
            assert recording.run.readings == jars * 72
            assert recording.sql("SELECT count(DISTINCT site_id) FROM readings").item() == sites
        manifest = read_manifest(out)
        assert all(part["jars"] <= 120 or part["sites"][1] - part["sites"][0] == 1 for part in manifest["parts"])
        peaks[sites] = max(part["worker_peak_rss_mb"] for part in manifest["parts"])
        assert json.loads((out / "run-config.json").read_text())["fleet"]["name"] == "national-telecom"
        with open_recording(out) as recording:  # the set's runs.config is the whole run's
            assert len(json.loads(recording.sql("SELECT config FROM runs").item())["fleet"]["sites"]) == sites
    # Four times the fleet, the same part size: each worker's peak stays what one part needs.
    assert peaks[160] < peaks[40] * 1.25, peaks


def test_bad_sites_flag_names_it(tmp_path):
    result = cli("run", "--preset", "national-telecom", "--sites", "300000", "--out", str(tmp_path / "x"), "--workers", "2")
    assert result.returncode == 2 and "--sites" in result.stderr and "200,000" in result.stderr


def test_a_fleet_too_big_for_one_recording_is_refused_without_workers(tmp_path):
    result = cli("run", "--preset", "national-telecom", "--sites", "6000", "--out", str(tmp_path / "big.duckdb"))
    assert result.returncode == 2 and "--workers" in result.stderr and "66,536 jars" in result.stderr
    assert not (tmp_path / "big.duckdb").exists()
