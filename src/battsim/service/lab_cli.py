"""``battsim lab``: single-battery experiments, printed as JSON on stdout.

A thin edge over :mod:`battsim.engine.lab`: it checks the flags (exit code 2 naming the flag when
one is wrong), loads the model and prints what the experiment returns.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from battsim.engine import lab
from battsim.engine.battery import PROFILE_NAMES
from battsim.engine.failures import FAILURE_NAMES
from battsim.engine.fleet import FleetSpec
from battsim.engine.models import BUILT_IN_MODELS, BatteryModel, ModelFileError, get_model, load_model_file
from battsim.service.terminal import fail

lab_app = typer.Typer(add_completion=False, no_args_is_help=True,
                      help="Single-battery experiments on the fleet's own physics (JSON on stdout).")

ModelOption = Annotated[str | None, typer.Option("--model", help=f"Built-in model: {', '.join(BUILT_IN_MODELS)}.")]
ModelFileOption = Annotated[Path | None, typer.Option("--model-file", help="A battery model TOML file.")]


def resolve_model(name: str | None, path: Path | None) -> BatteryModel:
    if (name is None) == (path is None):
        fail("--model/--model-file", "give exactly one of them")
    try:
        return get_model(name) if name is not None else load_model_file(path)
    except ModelFileError as error:
        fail("--model" if name is not None else "--model-file", str(error))


def fleet_with_model_file(spec: FleetSpec, path: Path) -> FleetSpec:
    """``battsim run --model-file``: the fleet with every site's block replaced by the file's model."""
    try:
        model = load_model_file(path)
    except ModelFileError as error:
        fail("--model-file", str(error))
    models = [custom for custom in spec.models if custom.name != model.name] + [model]
    sites = [site.model_copy(update={"model": model.name}) for site in spec.sites]
    return spec.model_copy(update={"models": models, "sites": sites})


def check_range(flag: str, value: float | None, low: float, high: float, unit: str) -> None:
    if value is not None and not low <= value <= high:
        fail(flag, f"{value:g} is outside {low:g}-{high:g} {unit}")


def emit(model: BatteryModel, inputs: dict, result: dict) -> None:
    print(json.dumps({"model": model.name, **inputs, **result}))


@lab_app.command()
def discharge(
    model: ModelOption = None,
    model_file: ModelFileOption = None,
    current: Annotated[float | None, typer.Option("--current", help="Constant current, A.")] = None,
    power: Annotated[float | None, typer.Option("--power", help="Constant power, W per cell.")] = None,
    temperature: Annotated[float, typer.Option("--temperature", help="Room and starting jar temperature, °C.")] = 25.0,
    end_voltage: Annotated[float | None, typer.Option(
        "--end-voltage", help="End voltage, V per cell (default: the model's).")] = None,
    soh: Annotated[float, typer.Option("--soh", help="State of health at the start, %.")] = 100.0,
) -> None:
    """Discharge a full jar at a constant current or power until it reaches the end voltage."""
    battery = resolve_model(model, model_file)
    if (current is None) == (power is None):
        fail("--current/--power", "give exactly one of them")
    # From about a 100 h discharge (the lab stops at 200 h) to 20 C.
    c10 = battery.capacity_ah_c10
    check_range("--current", current, 0.01 * c10, 20.0 * c10, f"A (0.01-20 C for {battery.name})")
    check_range("--power", power, 0.02 * c10, 40.0 * c10, f"W per cell (for {battery.name})")
    check_range("--temperature", temperature, -20.0, 60.0, "°C")
    check_range("--end-voltage", end_voltage, 1.5, 2.05, "V per cell")
    check_range("--soh", soh, 1.0, 100.0, "%")
    result = lab.discharge(battery, current_a=current, power_w_per_cell=power, temperature_c=temperature,
                           end_v_per_cell=end_voltage, soh_pct=soh)
    emit(battery, {"current_a": current, "power_w_per_cell": power, "temperature_c": temperature, "soh_pct": soh},
         result.as_dict())


@lab_app.command(name="float")
def float_(
    model: ModelOption = None,
    model_file: ModelFileOption = None,
    temperature: Annotated[float, typer.Option("--temperature", help="Room temperature, °C.")] = 25.0,
    voltage: Annotated[float | None, typer.Option(
        "--voltage", help="Fixed charger voltage, V per cell (default: compensated float).")] = None,
    soh: Annotated[float, typer.Option("--soh", help="State of health, %.")] = 100.0,
    failure: Annotated[list[str] | None, typer.Option(
        "--failure", help=f"Apply a failure first (repeatable): {', '.join(FAILURE_NAMES)}.")] = None,
    cutoff: Annotated[float | None, typer.Option(
        "--cutoff", help="Charger thermal cut-off, °C (default: none).")] = None,
    hours: Annotated[float, typer.Option("--hours", help="How long to hold the jar on float, h.")] = 48.0,
) -> None:
    """Hold a full jar on float and report the current and temperature it settles at (or runs away to)."""
    battery = resolve_model(model, model_file)
    check_range("--temperature", temperature, -20.0, 60.0, "°C")
    check_range("--voltage", voltage, 2.0, 2.7, "V per cell")
    check_range("--soh", soh, 1.0, 100.0, "%")
    check_range("--cutoff", cutoff, 30.0, 90.0, "°C")
    check_range("--hours", hours, 1.0, 24.0 * 30, "h")
    for name in failure or []:
        if name not in FAILURE_NAMES:
            fail("--failure", f"{name!r} is not one of {', '.join(FAILURE_NAMES)}")
    result = lab.float_charge(battery, temperature, voltage, soh, tuple(failure or ()), cutoff, hours)
    emit(battery, {"temperature_c": temperature, "failures": failure or [], "cutoff_c": cutoff}, result.as_dict())


@lab_app.command()
def life(
    model: ModelOption = None,
    model_file: ModelFileOption = None,
    temperature: Annotated[float | None, typer.Option("--temperature", help="Constant room temperature, °C.")] = None,
    profile: Annotated[str, typer.Option("--profile", help=f"Degradation profile: {', '.join(PROFILE_NAMES)}.")] = "healthy",
) -> None:
    """Years on float at a constant temperature until the state of health falls below 80 %."""
    battery = resolve_model(model, model_file)
    if temperature is None:
        fail("--temperature", "is required (°C)")
    check_range("--temperature", temperature, -20.0, 70.0, "°C")
    if profile not in PROFILE_NAMES:
        fail("--profile", f"{profile!r} is not one of {', '.join(PROFILE_NAMES)}")
    emit(battery, {}, lab.life(battery, temperature, profile).as_dict())


def resolve_base_model(text: str) -> BatteryModel:
    """A built-in model by name, or a model TOML file."""
    if text in BUILT_IN_MODELS:
        return BUILT_IN_MODELS[text]
    if not text.lower().endswith(".toml"):
        fail("--base-model", f"{text!r} is neither a built-in model ({', '.join(BUILT_IN_MODELS)}) nor a .toml file")
    try:
        return load_model_file(text)
    except ModelFileError as error:
        fail("--base-model", str(error))


def print_fit(result) -> None:
    """The fit as text: fitted parameters, then each row's error per column (* marks held-out points)."""
    lines = [f"model {result.model.name} (base {result.base.name}), {result.evaluations} evaluations"]
    for name, value in result.parameters.items():
        lines.append(f"  {name:<26} {value:<10g} (base {getattr(result.base, name):g})")
    for label, summary in (("fit", result.error_summary(result.fitted)), ("holdout", result.error_summary(result.held_out))):
        if summary is not None:
            lines.append(f"{label:<8} {summary['points']:>3} points: worst {summary['worst_pct']:.1f} %, "
                         f"rms {summary['rms_pct']:.1f} %")
    lines.append("runtime error, simulated / datasheet - 1, % (* held out)")
    for table in result.as_dict()["tables"]:
        lines.append(f"{table['table']} ({table['units']})")
        for row in table["rows"]:
            cells = " ".join(f"{c['column']}:{c['error_pct']:+.1f}{'*' if c['role'] == 'holdout' else ''}"
                             for c in row["columns"])
            lines.append(f"  {row['end_voltage_v_per_cell']:.2f} V/cell  {cells}")
    print("\n".join(lines))


@lab_app.command()
def fit(
    tables: Annotated[list[Path], typer.Argument(
        help="Discharge tables (CSV: end_voltage_per_cell × runtime columns; '# units: A|W/cell|W/block').")],
    base_model: Annotated[str, typer.Option(
        "--base-model", help="Built-in model or model TOML file giving everything but the fitted parameters.")
    ] = "USF12-100A",
    name: Annotated[str | None, typer.Option("--name", help="Name of the fitted model (default: '<base> (fitted)').")] = None,
    units: Annotated[str | None, typer.Option(
        "--units", help="Units of the loads of tables without a '# units:' line: A, W/cell or W/block.")] = None,
    fit_points: Annotated[list[str] | None, typer.Option(
        "--fit", help="Fit only these points (repeatable): 1.80, 10min, TABLE.csv or TABLE.csv:1.80. Default: all.")
    ] = None,
    holdout: Annotated[list[str] | None, typer.Option(
        "--holdout", help="Keep these points out of the fit and report their error (repeatable; same forms as --fit).")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write the fitted model here (TOML).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing --out file.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the parameters and every residual as JSON.")] = False,
) -> None:
    """Fit a battery model's rate capability to a manufacturer's discharge tables and write it as TOML."""
    from battsim.engine import datasheet, datasheet_fit  # scipy: only this command needs it

    base = resolve_base_model(base_model)
    if units is not None and datasheet.normalise_units(units) is None:
        fail("--units", f"{units!r} is not one of {', '.join(datasheet.UNITS)}")
    if out is not None and out.exists() and not force:
        fail("--out", f"{out} exists; give another path or --force")
    if out is not None and not out.parent.is_dir():
        fail("--out", f"{out.parent} is not a directory")
    if name is not None and not name.strip():
        fail("--name", "must not be empty")
    try:
        read = [datasheet.read_table(path, units) for path in tables]
    except datasheet.TableError as error:
        fail("TABLE", str(error))
    selectors = {}
    for flag, texts in (("--fit", fit_points or []), ("--holdout", holdout or [])):
        try:
            selectors[flag] = [datasheet_fit.parse_selector(text, read) for text in texts]
        except ValueError as error:
            fail(flag, str(error))
    try:
        result = datasheet_fit.fit_model(read, base, fit=selectors["--fit"], holdout=selectors["--holdout"], name=name)
    except ValueError as error:
        fail("--fit/--holdout", str(error))
    if out is not None:
        header = [f"{result.model.name}: fitted by battsim lab fit from {', '.join(t.source for t in read)}",
                  f"base model {base.name}; fitted: {', '.join(result.parameters)}"]
        for label, summary in (("fit", result.error_summary(result.fitted)),
                               ("holdout", result.error_summary(result.held_out))):
            if summary is not None:
                header.append(f"{label}: {summary['points']} points, worst {summary['worst_pct']} %, "
                              f"rms {summary['rms_pct']} % (runtime)")
        try:
            out.write_text(datasheet_fit.model_toml(result.model, header), encoding="utf-8")
        except OSError as error:
            fail("--out", f"cannot write {out} ({error.strerror or error})")
    if as_json:
        print(json.dumps({**result.as_dict(), "out": None if out is None else str(out)}))
    else:
        print_fit(result)
        if out is not None:
            print(f"wrote {out}: battsim run --model-file {out} ... or [[models]] in a fleet file")
