"""`battsim lab fit` (issue 14): a model from a manufacturer's discharge table, honest on points it never saw.

The fits run the fleet's own BatteryBank (through lab.discharge_many); the tables are the
USF12-100A's (docs/reference/usf12-100a-*.csv) and the CSB GP 12400's, with their sources.
"""

import json
import tomllib
from pathlib import Path

import duckdb
import numpy as np
import pytest
from typer.testing import CliRunner

from battsim.engine import lab
from battsim.engine.datasheet import parse_table, read_table
from battsim.engine.datasheet_fit import fit_model, parse_selector, simulated_runtime_s
from battsim.engine.fleet import load_fleet_file
from battsim.engine.models import BUILT_IN_MODELS, BatteryModel, get_model, load_model_file
from battsim.service.cli import app

REFERENCE = Path(__file__).resolve().parents[1] / "docs" / "reference"
CC = str(REFERENCE / "usf12-100a-constant-current.csv")
CP = str(REFERENCE / "usf12-100a-constant-power.csv")
GP12400 = str(REFERENCE / "csb-gp12400-constant-current.csv")
USF = get_model("USF12-100A")
runner = CliRunner()


def errors_pct(result, table_index, end_v):
    """Simulated / datasheet runtime - 1 at every column of one row, %."""
    table = result.tables[table_index]
    row = int(np.flatnonzero(np.isclose(table.end_v_per_cell, end_v))[0])
    return (result.ratio[table_index][row] - 1.0) * 100


def fit(tables, fit_points=(), holdout=()):
    return fit_model(tables, USF, fit=[parse_selector(text, tables) for text in fit_points],
                     holdout=[parse_selector(text, tables) for text in holdout], name="fitted")


@pytest.fixture(scope="module")
def usf_tables():
    return [read_table(CC), read_table(CP)]


@pytest.fixture(scope="module")
def fitted_on_1_80(usf_tables):
    """Fitted on the 1.80 V/cell constant-current row alone; the 1.75 row and the constant-power table held out."""
    return fit(usf_tables, ["usf12-100a-constant-current.csv:1.80"],
               ["usf12-100a-constant-current.csv:1.75", "usf12-100a-constant-power.csv"])


# ------------------------------------------------------------------------------- held-out honesty
def test_a_fit_to_the_1_80_row_predicts_the_1_75_row_within_5_percent(fitted_on_1_80):
    assert np.all(np.abs(errors_pct(fitted_on_1_80, 0, 1.80)) <= 2.0), errors_pct(fitted_on_1_80, 0, 1.80)
    held = errors_pct(fitted_on_1_80, 0, 1.75)
    assert np.all(np.abs(held) <= 5.0), held
    assert fitted_on_1_80.held_out[0].sum() == 14 and fitted_on_1_80.fitted[0].sum() == 14


@pytest.mark.parametrize("end_v", [1.80, 1.75])
def test_a_fit_to_the_1_80_row_predicts_constant_power_within_5_percent(fitted_on_1_80, end_v):
    held = errors_pct(fitted_on_1_80, 1, end_v)
    assert not fitted_on_1_80.fitted[1].any()
    assert np.all(np.abs(held) <= 5.0), held


def test_a_fit_to_the_constant_current_table_predicts_constant_power_within_5_percent(usf_tables):
    result = fit(usf_tables, ["usf12-100a-constant-current.csv:1.80", "usf12-100a-constant-current.csv:1.75"],
                 ["usf12-100a-constant-power.csv"])
    for end_v in (1.80, 1.75):
        held = errors_pct(result, 1, end_v)
        assert np.all(np.abs(held) <= 5.0), (end_v, held)
    summary = result.as_dict()
    assert summary["fit"]["points"] == 28 and summary["holdout"]["points"] == 84


def test_the_reported_errors_are_those_of_the_written_model(fitted_on_1_80):
    """The residuals come from the model as written (rounded parameters), re-run from scratch."""
    again = simulated_runtime_s(fitted_on_1_80.model, fitted_on_1_80.tables[:1], fitted_on_1_80.fitted[:1])[0]
    table = fitted_on_1_80.tables[0]
    mask = fitted_on_1_80.fitted[0]
    assert np.allclose(again[mask] / table.runtime_s[np.nonzero(mask)[1]], fitted_on_1_80.ratio[0][mask])


# ------------------------------------------------------------------------------ rate capability
def test_rate_capability_1_is_the_model_as_it_was():
    """The default leaves every model's discharge exactly as before the parameter existed."""
    assert all(model.rate_capability == 1.0 for name, model in BUILT_IN_MODELS.items() if not name.startswith("CSB GP"))
    explicit = USF.model_copy(update={"rate_capability": 1.0})
    currents = np.array([216.4, 68.0, 5.58])
    assert np.array_equal(lab.discharge_many(USF, current_a=currents).runtime_s,
                          lab.discharge_many(explicit, current_a=currents).runtime_s)


def test_a_higher_rate_capability_runs_longer_at_10_minutes_and_the_same_at_20_hours():
    high_rate = USF.model_copy(update={"rate_capability": 2.0})
    base = lab.discharge_many(USF, current_a=np.array([216.4, 5.58])).runtime_s[0]
    high = lab.discharge_many(high_rate, current_a=np.array([216.4, 5.58])).runtime_s[0]
    assert high[0] / base[0] > 1.10
    assert abs(high[1] / base[1] - 1.0) < 0.02


def test_the_high_rate_block_fitted_from_its_own_table_beats_the_borrowed_constants():
    """CSB GP 12400 (5 min-4 h table): the USF12-100A's constants are far off at 5-15 min; the built-in
    fitted from the table is within 3.5 % at 1.75 and 1.80 V/cell."""
    tables = [read_table(GP12400)]
    rows = np.isclose(tables[0].end_v_per_cell, 1.75) | np.isclose(tables[0].end_v_per_cell, 1.80)
    mask = [np.broadcast_to(rows[:, None], tables[0].loads.shape)]
    built_in = BUILT_IN_MODELS["CSB GP 12400"]
    borrowed = built_in.model_copy(update={name: BatteryModel.model_fields[name].default for name in (
        "capacity_over_c10", "available_charge_fraction", "diffusion_rate_per_h", "rate_capability")})
    sheet_s = tables[0].runtime_s[np.nonzero(mask[0])[1]]
    fitted_error = simulated_runtime_s(built_in, tables, mask)[0][mask[0]] / sheet_s - 1.0
    borrowed_error = simulated_runtime_s(borrowed, tables, mask)[0][mask[0]] / sheet_s - 1.0
    assert np.max(np.abs(fitted_error)) <= 0.035, fitted_error
    assert np.max(np.abs(borrowed_error)) > 0.10, borrowed_error


# ----------------------------------------------------------------------------------- the table
def test_watts_per_block_are_watts_per_cell_times_cells(usf_tables):
    per_cell = usf_tables[1]
    lines = [line for line in Path(CP).read_text().splitlines() if not line.startswith("#")]
    per_block = [lines[0]] + [",".join([row.split(",")[0]] + [f"{float(x) * 6:.6g}" for x in row.split(",")[1:]])
                              for row in lines[1:]]
    block_table = parse_table("\n".join(["# units: W/block", *per_block]), "block.csv")
    mask = [np.isclose(per_cell.end_v_per_cell, 1.75)[:, None] & np.ones(per_cell.loads.shape, dtype=bool)]
    a = simulated_runtime_s(USF, [per_cell], mask, steps=200)[0]
    b = simulated_runtime_s(USF, [block_table], mask, steps=200)[0]
    assert np.allclose(a[mask[0]], b[mask[0]], rtol=1e-9)


def test_empty_cells_are_loads_the_datasheet_does_not_give():
    table = parse_table("# units: A\nend_voltage_per_cell,10min,1h,10h\n1.80,20,,1.0\n1.75,21,6.5,1.05\n", "t.csv")
    assert np.isnan(table.loads[0, 1]) and table.loads[1, 1] == 6.5
    assert list(table.runtime_s) == [600.0, 3600.0, 36000.0]


HEADER = "end_voltage_per_cell,10min,1h,10h\n"


@pytest.mark.parametrize("text, message", [
    (HEADER + "1.80,20,x6,1.0\n", "line 3, column 3 (1h): 'x6' is not a number"),
    (HEADER + "1.80,20,6,1.0,4\n", "line 3: 5 cells, the header has 4"),
    (HEADER + "1.80,20,6,1.0\n1.80,21,7,1.1\n", "line 4, column 1 (end_voltage_per_cell): 1.8 V/cell appears twice"),
    (HEADER + "1.80,20,26,1.0\n", "line 3, column 3 (1h): 26 is not below 20 at 10min"),
    (HEADER + "2.50,20,6,1.0\n", "line 3, column 1 (end_voltage_per_cell): '2.50' is not an end voltage"),
    (HEADER + "1.80,20,-6,1.0\n", "line 3, column 3 (1h): the load must be positive"),
    (HEADER + "1.80,20,inf,1.0\n", "line 3, column 3 (1h): 'inf' is not a finite number"),
    ("end_voltage_per_cell,10min,1 day,10h\n1.80,20,6,1\n", "line 2, column 3: '1 day' is not a runtime"),
    ("end_voltage_per_cell,1h,10min\n1.80,20,6\n", "line 2, column 3 (10min): runtimes must increase"),
    ("volts,10min,1h\n1.80,20,6\n", "line 2, column 1: 'volts' should be end_voltage_per_cell"),
    (HEADER, "no rows of loads under the header"),
    (HEADER + "1.80,,,\n", "every load is empty"),
])
def test_a_malformed_table_is_refused_with_row_and_column_named(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text("# units: A\n" + text)
    result = runner.invoke(app, ["lab", "fit", str(path)])
    assert result.exit_code == 2, result.output
    assert "error:" in result.output and message in " ".join(result.output.split()), result.output


def test_a_table_without_units_needs_them(tmp_path):
    path = tmp_path / "no-units.csv"
    path.write_text(HEADER + "1.80,20,6,1.0\n")
    result = runner.invoke(app, ["lab", "fit", str(path)])
    assert result.exit_code == 2 and "# units: A" in result.output and "--units" in result.output
    result = runner.invoke(app, ["lab", "fit", str(path), "--units", "kW"])
    assert result.exit_code == 2 and "--units" in result.output and "W/block" in result.output


@pytest.mark.parametrize("args, message", [
    (["--holdout", "1.99"], "--holdout: '1.99' matches no load"),
    (["--holdout", "other.csv:1.75"], "no table named 'other.csv'"),
    (["--fit", "soon"], "--fit: 'soon' is not an end voltage"),
    (["--holdout", "usf12-100a-constant-current.csv"], "no point left to fit"),
    (["--base-model", "Nope"], "--base-model: 'Nope' is neither a built-in model"),
    (["--base-model", "missing.toml"], "missing.toml: no such file"),
])
def test_bad_fit_flags_are_refused_with_the_flag_named(args, message):
    result = runner.invoke(app, ["lab", "fit", CC, *args])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split()), result.output


# ------------------------------------------------------------- the CLI, its JSON and the round trip
@pytest.fixture(scope="module")
def fitted_file(tmp_path_factory):
    """`battsim lab fit` on the GP 12400's 1.80 V/cell row, holding out its 1.75 row, written to TOML."""
    out = tmp_path_factory.mktemp("fit") / "gp12400.toml"
    result = runner.invoke(app, ["lab", "fit", GP12400, "--base-model", "CSB GP 12400", "--name", "My GP12400",
                                 "--fit", "1.80", "--holdout", "1.75", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    return out, json.loads(result.stdout)


def test_json_output_shape(fitted_file):
    out, printed = fitted_file
    assert printed["model"] == "My GP12400" and printed["base_model"] == "CSB GP 12400" and printed["out"] == str(out)
    assert set(printed["parameters"]) == {"capacity_over_c10", "available_charge_fraction", "diffusion_rate_per_h",
                                          "rate_capability"}
    assert set(printed["base_parameters"]) == set(printed["parameters"])
    assert printed["fit"]["points"] == 8 and printed["holdout"]["points"] == 8
    assert printed["holdout"]["worst_pct"] <= 6.0 and printed["fit"]["worst_pct"] <= 3.0
    (table,) = printed["tables"]
    assert table["units"] == "A" and table["table"] == GP12400
    assert [row["end_voltage_v_per_cell"] for row in table["rows"]] == [1.75, 1.80]
    for row in table["rows"]:
        assert [c["column"] for c in row["columns"]] == ["5min", "10min", "15min", "30min", "1h", "2h", "3h", "4h"]
        for column in row["columns"]:
            assert set(column) == {"column", "runtime_s", "load", "simulated_runtime_s", "error_pct", "role"}
            assert column["role"] == ("fit" if row["end_voltage_v_per_cell"] == 1.80 else "holdout")
            assert column["error_pct"] == pytest.approx((column["simulated_runtime_s"] / column["runtime_s"] - 1) * 100,
                                                        abs=0.05)


def test_the_written_model_is_a_model_file(fitted_file):
    out, printed = fitted_file
    model = load_model_file(out)
    assert model.name == "My GP12400" and model.cells == 6 and model.internal_resistance_mohm == 8.1
    for name, value in printed["parameters"].items():
        assert getattr(model, name) == value
    assert tomllib.loads(out.read_text())["rate_capability"] == printed["parameters"]["rate_capability"]
    assert out.read_text().startswith("# My GP12400: fitted by battsim lab fit from ")


def test_fit_write_then_run_with_the_model_file(fitted_file, tmp_path):
    out, _ = fitted_file
    recording = tmp_path / "run.duckdb"
    result = runner.invoke(app, ["run", "--preset", "single-string", "--model-file", str(out), "--days", "0.1",
                                 "--interval", "600", "--out", str(recording), "--no-progress"])
    assert result.exit_code == 0, result.output
    with duckdb.connect(str(recording), read_only=True) as con:
        models = con.execute("SELECT DISTINCT model FROM batteries").fetchall()
    assert models == [("My GP12400",)]


def test_the_written_model_goes_into_a_fleet_file_and_the_lab(fitted_file, tmp_path):
    out, _ = fitted_file
    fleet = tmp_path / "fleet.toml"
    fleet.write_text('[[sites]]\nsite_id = "LAB"\njars_per_string = 2\nmodel = "My GP12400"\n\n[[models]]\n'
                     + "\n".join(line for line in out.read_text().splitlines() if not line.startswith("#")) + "\n")
    assert load_fleet_file(fleet).model_named("My GP12400") == load_model_file(out)
    result = runner.invoke(app, ["lab", "discharge", "--model-file", str(out), "--current", "88.3", "--end-voltage",
                                 "1.80"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["runtime_s"] == pytest.approx(600.0, rel=0.05)  # datasheet: 88.3 A for 10 min


def test_run_model_file_errors_name_the_flag(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\ncells = 6\n')
    result = runner.invoke(app, ["run", "--preset", "single-string", "--model-file", str(bad), "--days", "0.1",
                                 "--out", str(tmp_path / "x.duckdb"), "--no-progress"])
    assert result.exit_code == 2 and "--model-file" in result.output and "capacity_ah_c10" in result.output
    assert not (tmp_path / "x.duckdb").exists()


def test_an_existing_out_file_is_kept_without_force(fitted_file):
    out, _ = fitted_file
    before = out.read_text()
    result = runner.invoke(app, ["lab", "fit", GP12400, "--base-model", "CSB GP 12400", "--out", str(out)])
    assert result.exit_code == 2 and "--out" in result.output and "--force" in result.output
    assert out.read_text() == before


def test_text_output_lists_every_row_with_held_out_points_marked():
    result = runner.invoke(app, ["lab", "fit", GP12400, "--base-model", "CSB GP 12400", "--fit", "1.80",
                                 "--holdout", "1.85"])
    assert result.exit_code == 0, result.output
    assert "rate_capability" in result.output and "holdout    8 points" in result.output
    assert "1.85 V/cell  5min:" in result.output and "*" in result.output.split("1.85 V/cell")[1].splitlines()[0]
