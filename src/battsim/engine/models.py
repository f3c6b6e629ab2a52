"""Battery models as data: datasheet parameters of a VRLA block.

A model is everything the physics needs to know about one *type* of block. Built-in models come
from manufacturer datasheets (``docs/reference/vrla-facts.md``); a user adds their own from a
TOML file with the same keys. Parameters not given in a file take the documented defaults, which
are those of a generic 12 V AGM block.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from battsim.user_files import read_user_file

# Heat a racked 30 kg (100 Ah) block loses per kelvin above the room: natural convection
# (about 4-5 W/(m²·K) for a 0.22 m tall face) plus radiation (4σεT³ ≈ 6 W/(m²·K), ε 0.9) over the
# 0.27 m² not facing a neighbour or the shelf. Surface scales with mass^(2/3). See docs/physics.md.
HEAT_TRANSFER_W_PER_K_30KG = 3.0


class BatteryModel(BaseModel):
    """Datasheet parameters of one VRLA block type. Voltages are per cell, at 25 °C."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    name: str = Field(min_length=1, description="Model name, e.g. 'CSB HX12-120'.")
    cells: int = Field(ge=1, le=60, description="Cells in series in one block (6 for a 12 V block).")
    capacity_ah_c10: float = Field(gt=0, le=10_000, description="Rated capacity at the 10 h rate, Ah.")
    internal_resistance_mohm: float = Field(
        gt=0, le=1_000, description="Ohmic resistance of the whole block when new and full, mΩ."
    )
    design_life_years: float = Field(gt=0, le=30, description="Float life to 80 % capacity at 25 °C, years.")
    float_v_per_cell: float = Field(
        default=2.25, ge=2.15, le=2.35, description="Float voltage at 25 °C, V/cell (Narada, USF12-100A: 2.25)."
    )
    boost_v_per_cell: float = Field(
        default=2.35, ge=2.25, le=2.45, description="Boost/equalize voltage at 25 °C, V/cell (EN 50272-2: 2.35)."
    )
    float_compensation_mv_per_c: float = Field(
        default=-3.0, ge=-10, le=0, description="Float temperature compensation, mV/°C/cell (Narada, Yuasa: -3)."
    )
    boost_compensation_mv_per_c: float = Field(
        default=-5.0, ge=-10, le=0, description="Boost temperature compensation, mV/°C/cell (Narada: -5)."
    )
    boost_current_limit_c10: float = Field(
        default=0.1, gt=0, le=0.5, description="Charger current limit as a fraction of C10 (USF12-100A: < 0.3)."
    )
    end_voltage_v_per_cell: float = Field(
        default=1.75, ge=1.5, le=2.0, description="Low-voltage disconnect, V/cell (datasheets: 1.75 at <= 0.2 C)."
    )
    float_current_ma_per_ah: float = Field(
        default=0.125, gt=0, le=5,
        description="Overcharge (oxygen-recombination) current of a new block at 25 °C and float voltage, mA/Ah "
        "(vrla-facts.md: 0.125); the terminal float current adds the self-discharge the charger replaces.",
    )
    self_discharge_pct_per_month: float = Field(
        default=3.0, gt=0, le=20, description="Open-circuit self-discharge at 25 °C, %/month (AGM: about 3)."
    )
    mass_kg: float | None = Field(
        default=None, ge=0.1, le=2_000, description="Block mass, kg (at least a 1 Ah block's 0.1 kg); "
        "default 0.3 kg/Ah × C10 (USF12-100A: 31 kg)."
    )
    heat_transfer_w_per_k: float | None = Field(
        default=None, ge=0.1, le=1_000,
        description="Heat lost to the room per kelvin above it, W/K (at least a 1 Ah block's 0.1 W/K); "
        "default 3.0 W/K × (mass / 30 kg)^(2/3) "
        "(natural convection plus radiation, about 11 W/(m²·K) over the 0.27 m² a racked 100 Ah block exposes).",
    )
    specific_heat_j_per_kg_k: float = Field(
        default=800.0, gt=100, le=5_000,
        description="Specific heat of the whole block, J/(kg·K) (lead, acid, plastic by mass: 0.7-0.9 kJ/(kg·K)).",
    )
    # Discharge: fitted to the USF12-100A constant-current and constant-power tables by
    # tools/fit_discharge.py; currents enter as C-rates (A per Ah of C10), so other sizes scale.
    capacity_over_c10: float = Field(
        default=1.141, ge=1.0, le=1.5,
        description="Charge a full block holds, as a multiple of C10 (what a very slow discharge gets out; "
        "USF12-100A C20/C10 = 110/104).",
    )
    available_charge_fraction: float = Field(
        default=0.6687, gt=0.05, lt=1.0,
        description="Kinetic battery model: share of the charge that is immediately available (Manwell 1993).",
    )
    diffusion_rate_per_h: float = Field(
        default=0.1055, gt=0, le=100, description="Kinetic battery model: rate constant between the wells, 1/h."
    )
    tafel_v_per_cell: float = Field(
        default=0.1315, ge=0, le=2, description="Discharge overpotential b in b·ln(1 + C-rate/C0), V/cell."
    )
    tafel_reference_c_rate: float = Field(
        default=5.0, gt=0, le=100, description="C0 in the discharge overpotential b·ln(1 + C-rate/C0), 1/h."
    )
    depletion_v_per_cell: float = Field(
        default=0.06082, ge=0, le=1, description="Knee of the discharge curve near an empty available well, V/cell per C."
    )
    rate_capability: float = Field(
        default=1.0, ge=0.2, le=5.0,
        description="Rate capability: plate area per Ah relative to the USF12-100A the discharge constants were fitted on "
        "(thin-plate high-rate UPS blocks above 1, thick-plate cells below). The overpotential and the knee take the "
        "current per Ah of C10 × this, so 1 keeps the USF12-100A's behaviour; fit it from the block's own table "
        "(battsim lab fit): 5-30 min runtimes of another block need it.",
    )
    temperature_warning_c: float = Field(default=45.0, description="Manufacturer temperature warning, °C.")
    temperature_critical_c: float = Field(default=50.0, description="Manufacturer temperature limit, °C.")

    @property
    def nominal_voltage_v(self) -> float:
        return 2.0 * self.cells

    @property
    def block_mass_kg(self) -> float:
        return self.mass_kg if self.mass_kg is not None else 0.3 * self.capacity_ah_c10

    @property
    def block_heat_transfer_w_per_k(self) -> float:
        if self.heat_transfer_w_per_k is not None:
            return self.heat_transfer_w_per_k
        return HEAT_TRANSFER_W_PER_K_30KG * (self.block_mass_kg / 30.0) ** (2.0 / 3.0)


BUILT_IN_MODELS: dict[str, BatteryModel] = {
    model.name: model
    for model in (
        # CSB HX12-120: 12 V 120 Ah (C10), float 13.50-13.80 V, boost 14.40-14.70 V, warning 45 °C,
        # critical 50 °C, 10-year design life (vrla-facts.md, "The fleet this simulator was first written for").
        BatteryModel(
            name="CSB HX12-120",
            cells=6,
            capacity_ah_c10=120.0,
            internal_resistance_mohm=3.8,
            design_life_years=10.0,
            float_v_per_cell=2.27,
            boost_v_per_cell=2.42,
        ),
        # GS GPL12-100: 12 V 100 Ah, 8-year design life (vrla-facts.md); resistance of a 100 Ah AGM block.
        BatteryModel(
            name="GS GPL12-100",
            cells=6,
            capacity_ah_c10=100.0,
            internal_resistance_mohm=4.3,
            design_life_years=8.0,
        ),
        # USF12-100A: the block whose discharge tables are in reference/usf12-100a-*.csv
        # (C10 104 Ah, R about 4.3 mΩ, self-discharge 3 %/month at 25 °C).
        BatteryModel(
            name="USF12-100A",
            cells=6,
            capacity_ah_c10=104.0,
            internal_resistance_mohm=4.3,
            design_life_years=10.0,
        ),
        # CSB GP 645 and GP 12400: datasheet figures (cells, resistance, mass, 5-year standby life; float and
        # boost at the low end of the printed 2.25-2.30 and 2.40-2.50 V/cell) and discharge constants fitted to
        # their constant-current tables at 1.80 and 1.75 V/cell (docs/reference/csb-*.csv, with sources) by
        # tools/fit_datasheet_models.py, i.e. battsim lab fit; errors per end voltage in docs/physics.md.
        # GP 645: C10 is its table's 10 h load to 1.80 V/cell (0.431 A × 10 h).
        BatteryModel(
            name="CSB GP 645",
            cells=3,
            capacity_ah_c10=4.31,
            internal_resistance_mohm=19.0,
            design_life_years=5.0,
            mass_kg=0.84,
            float_v_per_cell=2.25,
            boost_v_per_cell=2.40,
            capacity_over_c10=1.1121,
            available_charge_fraction=0.77141,
            diffusion_rate_per_h=0.076137,
            rate_capability=0.96514,
        ),
        # GP 12400: the sheet rates only C20 (40 Ah to 1.75 V/cell) and its table stops at 4 h, so C10 is
        # taken as 40 Ah; the fitted capacity_over_c10 carries the difference.
        BatteryModel(
            name="CSB GP 12400",
            cells=6,
            capacity_ah_c10=40.0,
            internal_resistance_mohm=8.1,
            design_life_years=5.0,
            mass_kg=12.63,
            float_v_per_cell=2.25,
            boost_v_per_cell=2.40,
            capacity_over_c10=1.048,
            available_charge_fraction=0.50087,
            diffusion_rate_per_h=1.0492,
            rate_capability=2.2372,
        ),
    )
}


class ModelFileError(ValueError):
    """A battery model file that cannot be used; the message names the file and the key."""


def describe_validation_error(error: ValidationError, source: str) -> str:
    """One line per problem: ``source: key: message``."""
    lines = []
    for problem in error.errors():
        key = ".".join(str(part) for part in problem["loc"]) or "(top level)"
        lines.append(f"{source}: {key}: {problem['msg']}")
    return "\n".join(lines)


def read_toml(path: Path) -> dict:
    """Parse a TOML file, turning syntax errors into a message with the file and line."""
    text = read_user_file(path, ModelFileError, "a TOML file")
    try:
        return tomllib.loads(text)
    except RecursionError:
        raise ModelFileError(f"{path}: nested too deeply to be read") from None
    except tomllib.TOMLDecodeError as error:
        raise ModelFileError(f"{path}: not valid TOML: {error}") from None


def model_from_mapping(data: dict, source: str) -> BatteryModel:
    try:
        return BatteryModel.model_validate(data)
    except ValidationError as error:
        raise ModelFileError(describe_validation_error(error, source)) from None


def load_model_file(path: str | Path) -> BatteryModel:
    """Read a user's block from a TOML file whose keys are the fields of :class:`BatteryModel`."""
    path = Path(path)
    return model_from_mapping(read_toml(path), str(path))


def get_model(name: str) -> BatteryModel:
    try:
        return BUILT_IN_MODELS[name]
    except KeyError:
        known = ", ".join(sorted(BUILT_IN_MODELS))
        raise ModelFileError(f"unknown battery model {name!r}; built-in models: {known}") from None
