"""Fleet presets, ids, the degradation mix and custom fleet/model files."""

import numpy as np
import pytest

from battsim.engine.fleet import PRESETS, FleetFileError, build_fleet, get_preset, load_fleet_file
from battsim.engine.models import BUILT_IN_MODELS, ModelFileError, load_model_file


@pytest.mark.parametrize(("name", "sites", "jars"), [("thailand-9x24", 9, 216), ("thailand-full", 9, 1944),
                                                     ("single-string", 1, 24)])
def test_presets_have_the_documented_size(name, sites, jars):
    fleet = build_fleet(get_preset(name), seed=1)
    assert len(fleet.site_ids) == sites
    assert fleet.size == jars
    assert len(set(fleet.battery_ids)) == jars


def test_ids_are_stable_and_readable():
    fleet = build_fleet(get_preset("thailand-full"), seed=1)
    assert fleet.battery_ids[0] == "CNX_DC1_SYS01_STR01_BAT001"
    assert fleet.battery_ids[-1] == "HDY_DC1_SYS01_STR09_BAT024"
    assert fleet.string_ids[9] == "KKC_DC1_SYS01_STR01"


def test_full_fleet_mix_and_manufacturing_spread():
    fleet = build_fleet(get_preset("thailand-full"), seed=3)
    shares = np.bincount(fleet.profile, minlength=3) / fleet.size
    assert shares == pytest.approx([0.85, 0.12, 0.03], abs=0.025)
    assert 0.02 < fleet.capacity_spread.std() < 0.04
    assert 0.035 < fleet.resistance_spread.std() < 0.065
    assert {m.name for m in fleet.models} == {"CSB HX12-120", "GS GPL12-100"}


def test_a_jar_is_the_same_whatever_fleet_it_is_in():
    full = build_fleet(get_preset("thailand-full"), seed=5)
    small = build_fleet(get_preset("single-string"), seed=5)
    index = full.battery_ids.index(small.battery_ids[0])
    assert small.capacity_spread[0] == full.capacity_spread[index]
    assert small.profile[0] == full.profile[index]


def test_seed_changes_the_draws():
    a = build_fleet(get_preset("single-string"), seed=1)
    b = build_fleet(get_preset("single-string"), seed=2)
    assert not np.array_equal(a.capacity_spread, b.capacity_spread)


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(FleetFileError, match="thailand-full"):
        get_preset("nope")
    assert set(PRESETS) == {"thailand-9x24", "thailand-full", "single-string", "national-telecom"}


def test_custom_fleet_and_model_from_toml(tmp_path):
    path = tmp_path / "fleet.toml"
    path.write_text("""
name = "lab"
[[models]]
name = "Big150"
cells = 6
capacity_ah_c10 = 150
internal_resistance_mohm = 3.6
design_life_years = 12
float_v_per_cell = 2.25
boost_v_per_cell = 2.35

[[sites]]
site_id = "LAB"
strings = 2
jars_per_string = 4
model = "Big150"
""")
    fleet = build_fleet(load_fleet_file(path), seed=0)
    assert fleet.size == 8
    assert fleet.battery_ids[-1] == "LAB_SYS01_STR02_BAT004"
    assert fleet.models[0].capacity_ah_c10 == 150


def test_fleet_file_errors_name_the_key(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[[sites]]\nsite_id = "X"\nstrings = 0\n')
    with pytest.raises(FleetFileError, match=r"bad.toml: sites.0.strings"):
        load_fleet_file(path)
    path.write_text('[[sites]]\nsite_id = "X"\nmodel = "Nope"\n')
    with pytest.raises(FleetFileError, match="model 'Nope' is unknown"):
        load_fleet_file(path)


def test_fleet_file_syntax_error_names_the_line(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text('name = "x"\n[[sites]\n')
    with pytest.raises(FleetFileError, match=r"broken.toml: not valid TOML: .*line 2"):
        load_fleet_file(path)


def test_model_file_errors_name_the_key(tmp_path):
    path = tmp_path / "model.toml"
    path.write_text('name = "M"\ncells = 6\ncapacity_ah_c10 = -5\ninternal_resistance_mohm = 4\n'
                    'design_life_years = 10\n')
    with pytest.raises(ModelFileError, match="capacity_ah_c10"):
        load_model_file(path)
    assert "CSB HX12-120" in BUILT_IN_MODELS and "GS GPL12-100" in BUILT_IN_MODELS


def test_each_jar_draws_its_own_ageing_from_its_own_stream():
    from battsim.engine import ageing

    full = build_fleet(get_preset("thailand-full"), seed=5)
    small = build_fleet(get_preset("single-string"), seed=5)
    start = full.battery_ids.index(small.battery_ids[0])
    jars = slice(start, start + small.size)
    for name in ("fade_rate_multiplier", "knee_soh_pct", "resistance_coupling", "resistance_noise"):
        assert np.array_equal(getattr(small.ageing, name), getattr(full.ageing, name)[jars]), name
    assert len(full.ageing) == full.size and full.ageing.resistance_noise.shape == (full.size, ageing.RESISTANCE_NOISE_KNOTS)
    other = build_fleet(get_preset("single-string"), seed=6)
    assert not np.array_equal(small.ageing.fade_rate_multiplier, other.ageing.fade_rate_multiplier)
    # The manufacturing draws are those of before: ageing has a stream of its own.
    assert np.array_equal(small.capacity_spread, build_fleet(get_preset("single-string"), seed=5).capacity_spread)


def test_initial_state_of_health_follows_each_jars_own_trajectory():
    from battsim.engine import ageing

    fleet = build_fleet(get_preset("thailand-full"), seed=3)
    design_life_years = np.array([fleet.models[m].design_life_years for m in fleet.battery_model])
    wear_pct = ageing.wear_pct(fleet.initial_soh_pct, fleet.ageing.knee_soh_pct)
    expected_pct = 20.0 * fleet.initial_age_years / design_life_years * fleet.ageing.fade_rate_multiplier
    assert wear_pct == pytest.approx(expected_pct, abs=1e-9)
    # Jars still in service: none is past 90 % of its own life, so every one is above end of life.
    assert wear_pct.max() <= 18.0 + 1e-9 and fleet.initial_soh_pct.min() > 80.0
    # Jars of one profile and age class now differ: faster jars are further down.
    healthy = fleet.profile == 0
    assert np.corrcoef(fleet.ageing.fade_rate_multiplier[healthy] * fleet.initial_age_years[healthy],
                       100.0 - fleet.initial_soh_pct[healthy])[0, 1] > 0.9
