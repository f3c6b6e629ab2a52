"""`battsim lab discharge|float|life`: JSON on stdout, exit code 2 naming the flag on bad input."""

import json

import pytest
from typer.testing import CliRunner

from battsim.service.cli import app

runner = CliRunner()


def run_json(*args):
    result = runner.invoke(app, ["lab", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_discharge_prints_runtime_delivered_charge_and_the_curve():
    out = run_json("discharge", "--model", "USF12-100A", "--current", "68", "--end-voltage", "1.75")
    assert out["runtime_s"] == pytest.approx(3600.0, rel=0.10)  # datasheet: 68.0 A for 1 h
    assert out["delivered_ah"] == pytest.approx(out["runtime_s"] / 3600.0 * 68.0, rel=0.01)
    curve = out["curve"]
    assert 100 <= len(curve) <= 500 and curve[0][0] == 0.0
    assert all(len(point) == 2 for point in curve)


def test_discharge_at_constant_power_and_temperature_from_a_model_file(tmp_path):
    path = tmp_path / "big.toml"
    path.write_text('name = "Big 150"\ncells = 6\ncapacity_ah_c10 = 150\ninternal_resistance_mohm = 3.6\n'
                    'design_life_years = 10\n')
    warm = run_json("discharge", "--model-file", str(path), "--power", "100", "--temperature", "25")
    cold = run_json("discharge", "--model-file", str(path), "--power", "100", "--temperature", "0")
    assert warm["model"] == "Big 150"
    assert cold["runtime_s"] < warm["runtime_s"]


def test_float_prints_current_per_ah_and_the_battery_temperature():
    out = run_json("float", "--model", "USF12-100A", "--temperature", "25", "--voltage", "2.25")
    assert 0.05 <= out["float_current_ma_per_ah"] <= 1.0
    assert out["float_current_a"] == pytest.approx(out["float_current_ma_per_ah"] * 104 / 1000, rel=0.01)
    assert out["battery_temperature_c"] == pytest.approx(25.0, abs=0.5)
    assert out["thermal_runaway"] is False


def test_float_with_a_shorted_cell_runs_away():
    out = run_json("float", "--model", "USF12-100A", "--failure", "internal_short")
    assert out["thermal_runaway"] is True and 65 <= out["battery_temperature_c"] <= 75


def test_life_prints_years_to_end_of_life():
    out = run_json("life", "--model", "CSB HX12-120", "--temperature", "35")
    assert out["years_to_eol"] == pytest.approx(5.0, rel=0.1)


@pytest.mark.parametrize("args, flag", [
    (["discharge", "--model", "USF12-100A"], "--current/--power"),
    (["discharge", "--model", "USF12-100A", "--current", "-5"], "--current"),
    (["discharge", "--model", "nope", "--current", "5"], "--model"),
    (["discharge", "--current", "5"], "--model/--model-file"),
    (["discharge", "--model", "USF12-100A", "--current", "5", "--end-voltage", "3"], "--end-voltage"),
    (["discharge", "--model", "USF12-100A", "--current", "5", "--soh", "0"], "--soh"),
    (["discharge", "--model-file", "/nonexistent.toml", "--current", "5"], "--model-file"),
    (["float", "--model", "USF12-100A", "--failure", "gremlins"], "--failure"),
    (["float", "--model", "USF12-100A", "--voltage", "9"], "--voltage"),
    (["life", "--model", "USF12-100A"], "--temperature"),
    (["life", "--model", "USF12-100A", "--temperature", "25", "--profile", "zombie"], "--profile"),
])
def test_bad_flags_exit_2_naming_the_flag(args, flag):
    result = runner.invoke(app, ["lab", *args])
    assert result.exit_code == 2
    assert flag in result.output


def test_a_bad_model_file_names_the_key(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('name = "x"\ncells = 6\ncapacity_ah_c10 = -1\ninternal_resistance_mohm = 4\ndesign_life_years = 10\n')
    result = runner.invoke(app, ["lab", "discharge", "--model-file", str(path), "--current", "5"])
    assert result.exit_code == 2 and "capacity_ah_c10" in result.output


def test_a_load_the_block_cannot_carry_has_a_runtime_of_zero():
    out = run_json("discharge", "--model", "USF12-100A", "--current", "2000")
    assert out["runtime_s"] == 0.0 and out["delivered_ah"] == 0.0


@pytest.mark.parametrize("key, value", [("mass_kg", "1e-6"), ("heat_transfer_w_per_k", "1e-6"), ("capacity_ah_c10", "nan")])
def test_a_model_file_outside_physical_bounds_is_refused_naming_the_key(tmp_path, key, value):
    # A microgram block with no cooling used to turn the jar's temperature into NaN and crash lab float.
    keys = {"name": '"x"', "cells": "6", "capacity_ah_c10": "100", "internal_resistance_mohm": "4",
            "design_life_years": "10", key: value}
    path = tmp_path / "tiny.toml"
    path.write_text("".join(f"{name} = {text}\n" for name, text in keys.items()))
    result = runner.invoke(app, ["lab", "float", "--model-file", str(path)])
    assert result.exit_code == 2 and key in result.output
