"""The scenario catalogue: everything that can happen to the world, each as a change of *causes*.

A scenario never writes a reading. It changes what the physics reads: the grid input of strings,
the outdoor temperature, the HVAC's cooling capacity, the room temperature, how fast jars fade, how
their resistance drifts, their overcharge current, or the sensors that measure them. The readings
follow from the physics, and when a scenario is cleared its causes return to normal and the physics
recovers from wherever it got to (a discharged string recharges; a drifted resistance stays drifted).

Each scenario acts on a *scope*: the sites of its targets (room and climate), their strings (the
rectifier input), or the jars themselves. Its position in :data:`CATALOGUE` is its bit in each
reading's ``scenario_mask``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from battsim.engine.sensors import SensorFault
from battsim.scenarios.maintenance import start_capacity_test, start_impedance_survey, stop_capacity_test

if TYPE_CHECKING:
    from battsim.engine.world import World


class Scope(str, Enum):  # noqa: UP042 (StrEnum would change its str())
    SITE = "site"
    STRING = "string"
    JAR = "jar"


# ------------------------------------------------------------------------------------ parameters
# Thermal runaway (docs/physics.md "Runaway in a string"): a string of 24 CSB HX12-120 blocks in a 24 °C room
# has no thermal balance once its jars' oxygen cycle is about 95 × a new jar's (measured: 90 × settles 12 K
# above the room, 100 × runs away within two days, 150 × passes 45 °C in about 7 h). 400 × is about
# 50 mA/Ah at 25 °C, past the 10-30 mA/Ah of end-stage dried-out blocks.
RUNAWAY_ONSET_MULTIPLIER = 95.0
MAX_DRY_OUT_MULTIPLIER = 400.0


class Params(BaseModel):
    """A scenario without parameters."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class HighTemperatureParams(Params):
    ambient_c: float = Field(
        default=45.0, ge=-10, le=60, validation_alias=AliasChoices("ambient_c", "ambient_temp"),
        description="Battery-room temperature held while active, °C (the original API's ambient_temp).",
    )


class HeatwaveParams(Params):
    delta_c: float = Field(default=5.0, gt=0, le=20, description="Added to the outdoor temperature, °C.")


class HvacDegradationParams(Params):
    capacity_pct: float = Field(
        default=50.0, ge=0, lt=100, description="Cooling capacity left, % of a healthy unit's."
    )


class BatteryDegradationParams(Params):
    fade_multiplier: float = Field(
        default=20.0, ge=1, le=1000,
        description="Multiplies calendar and cycle fade on top of the jar's profile (failing jars: 6.5).",
    )
    resistance_rise_pct_per_day: float = Field(
        default=2.0, ge=0, le=100,
        description="Ohmic resistance added per day, % of the new value (grid corrosion, dry-out), "
        "beyond the rise that the lost capacity brings.",
    )


class ResistanceDriftParams(Params):
    rise_pct: float = Field(default=50.0, gt=0, le=1000, description="Rise of ohmic resistance, % of the new value.")
    over_h: float = Field(default=24.0, gt=0, le=24 * 3650, description="Hours over which it rises linearly.")


class ThermalRunawayParams(Params):
    dry_out_multiplier: float = Field(
        default=150.0, ge=1, le=MAX_DRY_OUT_MULTIPLIER,
        validation_alias=AliasChoices("dry_out_multiplier", "float_current_multiplier"),
        description="Multiplies the oxygen-recombination (float) current of every jar of the string: end-stage "
        f"dry-out. From about {RUNAWAY_ONSET_MULTIPLIER:.0f} the string's float heat outruns what its jars shed and "
        f"the current climbs to the rectifier's limit; at most {MAX_DRY_OUT_MULTIPLIER:.0f} (about 50 mA/Ah at 25 °C).",
    )
    charge_cutoff_c: float | None = Field(
        default=None, ge=30, le=80,
        description="The rectifier's battery-temperature cut-off on the string while the scenario lasts, °C "
        "(UPS default 50): charging stops when a jar reaches it and resumes 10 K below. None: no cut-off.",
    )


class SensorFaultParams(Params):
    fault: Literal["stuck", "drift", "spike", "dropout"] = Field(
        default="stuck", description="stuck: values frozen; drift: temperature drifts; spike: wild readings; "
        "dropout: no values (NULL)."
    )
    drift_c_per_h: float = Field(default=0.5, ge=-50, le=50, description="Temperature drift of a drift fault, °C/h.")
    spike_probability: float = Field(default=0.05, gt=0, le=1, description="Share of readings a spike fault spoils.")


class CapacityTestParams(Params):
    current_c10: float = Field(default=0.1, ge=0.01, le=3.0, description="Discharge current, A per Ah of the "
                               "string's rated C10 capacity (0.1: the 10-hour rate).")
    end_v_per_cell: float = Field(default=1.80, ge=1.5, le=2.0, description="End voltage per cell, V (1.80 at "
                                  "the 10-hour rate).")
    pass_pct: float = Field(default=80.0, gt=0, le=100, description="Capacity, % of rated, below which the test "
                            "fails and the weak jars are replaced.")


# ------------------------------------------------------------------------------------ effects
@dataclass
class SiteCauses:
    """The per-site causes as the active scenarios set them, folded from their normal values."""

    outdoor_offset_c: np.ndarray
    hvac_capacity_fraction: np.ndarray
    room_override_c: np.ndarray

    @classmethod
    def normal(cls, sites: int) -> SiteCauses:
        return cls(np.zeros(sites), np.ones(sites), np.full(sites, np.nan))


@dataclass
class JarCauses:
    """The per-jar causes as the active scenarios set them. Each is the strongest of the applications
    covering a jar, not their product: applying a scenario twice does not square its effect, so no stack
    of requests takes a jar beyond its parameter's bounds."""

    fade_factor: np.ndarray  # on top of the jar's own fade (profile, failures)
    float_current_factor: np.ndarray  # on its oxygen-recombination current
    charge_cutoff_c: np.ndarray  # the string's charger thermal cut-off (inf: none)

    @classmethod
    def normal(cls, jars: int) -> JarCauses:
        return cls(np.ones(jars), np.ones(jars), np.full(jars, np.inf))


# An effect on a world: (world, units, params) where units are site, string or jar indices.
Effect = Callable[["World", np.ndarray, Params], None]
SiteContribution = Callable[[SiteCauses, np.ndarray, Params], None]
JarContribution = Callable[[JarCauses, np.ndarray, Params], None]  # jars as a boolean mask
DriftRate = Callable[[Params], float]


def _nothing(world: World, units: np.ndarray, params: Params) -> None:
    pass


def _outage_start(world: World, strings: np.ndarray, params: Params) -> None:
    world.lose_input(strings, cause="scenario:power_outage")


def _outage_stop(world: World, strings: np.ndarray, params: Params) -> None:
    world.restore_input(strings, cause="scenario:power_outage")


def _hold_room(causes: SiteCauses, sites: np.ndarray, params: HighTemperatureParams) -> None:
    causes.room_override_c[sites] = params.ambient_c


def _heat_outdoors(causes: SiteCauses, sites: np.ndarray, params: HeatwaveParams) -> None:
    causes.outdoor_offset_c[sites] += params.delta_c


def _fail_hvac(causes: SiteCauses, sites: np.ndarray, params: Params) -> None:
    causes.hvac_capacity_fraction[sites] = 0.0


def _degrade_hvac(causes: SiteCauses, sites: np.ndarray, params: HvacDegradationParams) -> None:
    causes.hvac_capacity_fraction[sites] = np.minimum(causes.hvac_capacity_fraction[sites],
                                                      params.capacity_pct / 100.0)


def _faster_fade(causes: JarCauses, jars: np.ndarray, params: BatteryDegradationParams) -> None:
    causes.fade_factor[jars] = np.maximum(causes.fade_factor[jars], params.fade_multiplier)


def _degradation_drift(params: BatteryDegradationParams) -> float:
    return params.resistance_rise_pct_per_day / 100.0 / 86_400.0


def _resistance_drift(params: ResistanceDriftParams) -> float:
    return params.rise_pct / 100.0 / (params.over_h * 3600.0)


def _dry_out_string(causes: JarCauses, jars: np.ndarray, params: ThermalRunawayParams) -> None:
    # End-stage dry-out of the whole string (one batch, one age, one charger): the oxygen cycle of every
    # jar grows, so the string's one current rises with the heat of all of its jars (docs/physics.md).
    causes.float_current_factor[jars] = np.maximum(causes.float_current_factor[jars], params.dry_out_multiplier)
    if params.charge_cutoff_c is not None:
        causes.charge_cutoff_c[jars] = np.minimum(causes.charge_cutoff_c[jars], params.charge_cutoff_c)


def _sensor_fault_start(world: World, jars: np.ndarray, params: SensorFaultParams) -> None:
    world.flush()  # the readings taken so far are measured under the old fault state
    world.monitor.inject(jars, SensorFault[params.fault.upper()], world.now_us(), world.jar_voltage_v[jars],
                         world.bank.temperature_c[jars], drift_c_per_h=params.drift_c_per_h,
                         spike_probability=params.spike_probability)


def _sensor_fault_stop(world: World, jars: np.ndarray, params: SensorFaultParams) -> None:
    world.flush()
    world.monitor.clear(jars)


# ------------------------------------------------------------------------------------ the catalogue
@dataclass(frozen=True)
class ScenarioSpec:
    """One scenario: what it is called, what it does, its parameters and how it acts on a world."""

    name: str
    title: str
    description: str
    typical_conditions: dict
    params: type[Params]
    scope: Scope
    start: Effect = _nothing
    stop: Effect = _nothing
    site_causes: SiteContribution | None = None
    jar_causes: JarContribution | None = None
    resistance_drift: DriftRate | None = None
    ramp_hours: Callable[[Params], float] | None = None  # the drift stops after this long
    bit: int = field(default=0, compare=False)

    def parameter_table(self) -> list[dict]:
        """Each parameter: name, type, default, description (for listings and the API)."""
        rows = []
        for name, info in self.params.model_fields.items():
            annotation = info.annotation
            kind = getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")
            rows.append({"name": name, "type": kind, "default": info.default, "description": info.description or ""})
        return rows


_SPECS = (
    ScenarioSpec(
        name="normal_operation",
        title="Normal Operation",
        description="Clears every scenario on the targets: causes return to normal and the physics recovers "
        "from where it is (a discharged string recharges, drifted resistance stays).",
        typical_conditions={"mode": "float", "room_c": "24-25", "float_v_per_block": "13.5-13.8"},
        params=Params,
        scope=Scope.JAR,
    ),
    ScenarioSpec(
        name="high_temperature",
        title="High Temperature",
        description="The battery room of the targets' sites is held at ambient_c (default 45 °C); jars warm "
        "towards it over an hour or two, float current and ageing rise with temperature.",
        typical_conditions={"room_c": 45, "jar_temperature": "follows the room with a lag of 1-2 h (docs/physics.md)",
                            "float_current": "doubles per +10 °C"},
        params=HighTemperatureParams,
        scope=Scope.SITE,
        site_causes=_hold_room,
    ),
    ScenarioSpec(
        name="power_outage",
        title="Power Outage",
        description="The rectifiers of the targets' strings lose their input: the strings discharge into "
        "the site load, disconnect at the end voltage if it lasts, then boost and float when it clears.",
        typical_conditions={"mode": "discharge", "current_a": "about -28 per string at 8 kW",
                            "duration": "30-90 min", "end_voltage_v_per_cell": 1.75},
        params=Params,
        scope=Scope.STRING,
        start=_outage_start,
        stop=_outage_stop,
    ),
    ScenarioSpec(
        name="hvac_failure",
        title="HVAC Failure",
        description="The air conditioning of the targets' sites stops: the room climbs from about 24 °C "
        "towards outdoor plus equipment heat (about 38 °C) at about 2 °C/h; jars lag the room.",
        typical_conditions={"room_ramp_c_per_h": 2, "room_limit_c": "~38 (outdoor + 8)",
                            "jar_lag_h": "1-2 (a block's thermal mass; docs/physics.md)"},
        params=Params,
        scope=Scope.SITE,
        site_causes=_fail_hvac,
    ),
    ScenarioSpec(
        name="battery_degradation",
        title="Battery Degradation",
        description="The targeted jars fade faster (fade_multiplier) and their resistance rises, from now on, "
        "running or not; clearing stops the extra ageing, what was lost stays lost.",
        typical_conditions={"soh_pct": "falls faster", "internal_resistance": "+2 %/day",
                            "fade_multiplier": 20},
        params=BatteryDegradationParams,
        scope=Scope.JAR,
        jar_causes=_faster_fade,
        resistance_drift=_degradation_drift,
    ),
    ScenarioSpec(
        name="thermal_runaway",
        title="Thermal Runaway",
        description="The targets' strings reach end-stage dry-out: every jar's oxygen-recombination (float) "
        "current is multiplied by dry_out_multiplier, so on the rectifier's float voltage the string's one "
        "current rises with the heat of all its jars (x2 per 10 K), which heats them further, until the "
        "rectifier's current limit holds it and the jars settle around 65-75 °C (the warmest-placed jar "
        "hottest); a charge_cutoff_c stops charging there instead. Applied to one battery, it acts on its "
        "string. Combine with high_temperature or hvac_failure for a hot room. Clearing lets them cool.",
        typical_conditions={"temperature_c": "65-75", "above_ambient_c": "> 10", "string_current_a": "x3 and more, "
                            "to the current limit (0.1 C10)", "float_current": "rising faster than exponentially",
                            "hours_to_develop": "2-8"},
        params=ThermalRunawayParams,
        scope=Scope.STRING,
        jar_causes=_dry_out_string,
    ),
    ScenarioSpec(
        name="heatwave",
        title="Heatwave",
        description="Outdoor temperature at the targets' sites raised by delta_c; a working HVAC holds the "
        "room unless its capacity is short (combine with hvac_degradation).",
        typical_conditions={"outdoor_c": "+5", "duration": "days"},
        params=HeatwaveParams,
        scope=Scope.SITE,
        site_causes=_heat_outdoors,
    ),
    ScenarioSpec(
        name="hvac_degradation",
        title="HVAC Degradation",
        description="The air conditioning of the targets' sites keeps only capacity_pct of its cooling: "
        "the room holds on cool days and rises on hot afternoons.",
        typical_conditions={"capacity_pct": 50, "room_c": "above setpoint on hot afternoons"},
        params=HvacDegradationParams,
        scope=Scope.SITE,
        site_causes=_degrade_hvac,
    ),
    ScenarioSpec(
        name="resistance_drift",
        title="Resistance Drift",
        description="The targeted jars' ohmic resistance rises linearly by rise_pct over over_h hours, then "
        "holds; clearing stops the drift where it is.",
        typical_conditions={"internal_resistance": "+50 % over 24 h"},
        params=ResistanceDriftParams,
        scope=Scope.JAR,
        resistance_drift=_resistance_drift,
        ramp_hours=lambda params: params.over_h,
    ),
    ScenarioSpec(
        name="sensor_fault",
        title="Sensor Fault",
        description="The monitor of the targeted jars misreports (stuck, drift, spike or dropout); the true "
        "state is unaffected and stays in the true_* columns.",
        typical_conditions={"fault": "stuck | drift | spike | dropout"},
        params=SensorFaultParams,
        scope=Scope.JAR,
        start=_sensor_fault_start,
        stop=_sensor_fault_stop,
    ),
    ScenarioSpec(
        name="capacity_test",
        title="Capacity Test",
        description="Maintenance: each targeted string is discharged into a load bank at current_c10 to "
        "end_v_per_cell; the Ah it delivered over its rated capacity is its measured capacity (a capacity_test "
        "event). Below pass_pct the weak jars are replaced by new ones (jar_replaced). Ends by itself.",
        typical_conditions={"mode": "discharge, then boost", "duration": "about 8-10 h at the 10-hour rate",
                            "pass_pct": 80},
        params=CapacityTestParams,
        scope=Scope.STRING,
        start=start_capacity_test,
        stop=stop_capacity_test,
    ),
    ScenarioSpec(
        name="impedance_survey",
        title="Impedance Survey",
        description="Maintenance: a technician measures the targeted jars with a handheld impedance meter "
        "(ohmic_tests rows with instrument 1). Ends at once.",
        typical_conditions={"instrument": "handheld, ±1 %"},
        params=Params,
        scope=Scope.JAR,
        start=start_impedance_survey,
    ),
)

CATALOGUE: dict[str, ScenarioSpec] = {
    spec.name: ScenarioSpec(**{**spec.__dict__, "bit": bit}) for bit, spec in enumerate(_SPECS)
}
SCENARIO_NAMES: list[str] = list(CATALOGUE)
