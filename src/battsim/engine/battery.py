"""Every jar of the fleet as numpy arrays, in series strings, advanced one step at a time.

:class:`BatteryBank` holds the state of all jars (charge in a two-well kinetic battery model,
temperature, state of health) and the parameters that come from each jar's model, manufacturing
spread and degradation profile. Jars of a string are contiguous and carry one current.
:meth:`BatteryBank.solve` finds every string's current and every jar's voltage under what the
rectifiers impose (``engine/circuit.py``); :meth:`BatteryBank.step` moves the state over a time
step at that current; :meth:`BatteryBank.advance` is the two. There is no Python loop over jars or
strings. The fleet, ``battsim lab`` and the failure hazards all drive this same code.

The charge model is the kinetic battery model (KiBaM, Manwell & McGowan 1993): an *available*
well feeds the terminals, a *bound* well refills it at a finite rate. It gives the rate-dependent
capacity of the datasheet tables and the recovery of voltage after a discharge, and its exact
solution for a constant current makes each step independent of its length. The jar is one thermal
mass heated by its own losses (ohmic, overpotential and the overcharge current that oxygen
recombination turns wholly into heat) and cooled by the air around it; the float current grows
with temperature, which is where thermal runaway comes from. Equations: ``docs/physics.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from battsim.engine import ageing, circuit, physics
from battsim.engine.models import BatteryModel


class Mode(IntEnum):
    """What the rectifier is doing to a string. Stored as a small integer in recordings."""

    FLOAT = 0
    BOOST = 1
    EQUALIZE = 2
    DISCHARGE = 3
    DISCONNECTED = 4  # after low-voltage disconnect, or on open circuit


MODE_NAMES = tuple(mode.name.lower() for mode in Mode)
CHARGING_MODES = (Mode.FLOAT, Mode.BOOST, Mode.EQUALIZE)
# The modes as plain integers, for comparisons with arrays (an IntEnum operand costs a few µs each).
FLOAT, BOOST, EQUALIZE, DISCHARGE, DISCONNECTED = (int(mode) for mode in Mode)


class Profile(IntEnum):
    """Degradation profile of a jar (vrla-facts.md: fleet mix 85/12/3 %)."""

    HEALTHY = 0
    ACCELERATED = 1
    FAILING = 2


PROFILE_NAMES = tuple(profile.name.lower() for profile in Profile)

# Multipliers on calendar and cycle fade for each profile. An accelerated jar reaches end of life
# in about 40 % of its design life, a failing one in about 15 % (field experience of early
# failures: 3-4 years for a 10-year block in a poor site, 1-2 years for a bad batch).
PROFILE_FADE_MULTIPLIER = np.array([1.0, 2.5, 6.5])
# Resistance rise per point of capacity lost, relative to a healthy jar: early failures are mostly
# grid corrosion and dry-out, which raise resistance faster than they take capacity, ending at
# 1.45 / 1.52 / 1.59 × the new resistance at 80 % (vrla-facts.md: 1.3-1.6 × at end of life).
PROFILE_RESISTANCE_RISE = np.array([1.0, 1.15, 1.3])

# Cycle ageing: a UPS AGM block gives about 250 full-depth cycles to 80 % (datasheet cycle-life curves).
FADE_PCT_PER_FULL_CYCLE = 20.0 / 250.0

# A charger's thermal cut-off resumes charging 10 K below the cut-off (hysteresis, as thermostat
# relays do; the figure is an assumption, UPS manuals give 5-10 K).
CHARGE_CUTOFF_HYSTERESIS_C = 10.0

# A jar is never modelled as holding nothing: a floor keeps its capacity positive.
SOH_FLOOR_PCT = 1.0
# Sulfation while a jar sits discharged: stress rises to 3 × at empty.
DISCHARGED_STRESS_AT_EMPTY = 2.0

# Manufacturing spread of the oxygen-recombination (float) current between jars of one type:
# lognormal, sigma 0.10 in ln. Through the float law (× 3 per 100 mV/cell) that spreads the float
# voltages of new 12 V jars on one string by about 55 mV (1 sigma), the "tens of mV" that string
# monitors see (monitoring-systems.md); see docs/physics.md "Float spread".
FLOAT_CURRENT_SPREAD_SIGMA_LN = 0.10


# Effects of sudden failures (failures.py draws them).
# Grid corrosion: the positive grid thins, resistance up 25 % and capacity fading twice as
# fast from then on. Dry-out: water lost through the valve, resistance up 40 %, float current 4 ×
# (oxygen recombination grows as the glass mat dries), 5 points of capacity gone. Sulfation: hard
# lead sulphate, 10 points of capacity gone and resistance up 15 %.
CORROSION_RESISTANCE_FACTOR = 1.25
CORROSION_FADE_FACTOR = 2.0
DRY_OUT_RESISTANCE_FACTOR = 1.4
DRY_OUT_FLOAT_CURRENT_FACTOR = 4.0
DRY_OUT_CAPACITY_LOSS_PCT = 5.0
SULFATION_CAPACITY_LOSS_PCT = 10.0
SULFATION_RESISTANCE_FACTOR = 1.15
# Thermal runaway's trigger: an end-stage dried-out jar with cells out of balance draws about
# 15 mA/Ah at 25 °C, above the ~12 mA/Ah at which a racked block can no longer shed the heat of
# its own float current (docs/physics.md "Thermal runaway"); the feedback does the rest.
RUNAWAY_FLOAT_CURRENT_FACTOR = 120.0


@dataclass
class Terminal:
    """What the circuit gives every jar at one instant (the start of a step)."""

    voltage_v: np.ndarray  # block terminal voltage, V
    current_a: np.ndarray  # + charging, − discharging, A: the string's current
    heat_w: np.ndarray  # heat generated in the block, W
    cell_v: np.ndarray  # voltage of each live cell, V
    main_a: np.ndarray  # current of the main (sulphate) reaction, + charge
    gassing_a: np.ndarray  # oxygen-cycle current (stores nothing), A
    stored_share: np.ndarray  # share of main_a that is stored (charge efficiency; 1 discharging)
    self_discharge_a: np.ndarray  # what self-discharge takes from the wells meanwhile, A
    charging: np.ndarray  # jar on a charging rectifier (not cut off)
    discharging: np.ndarray  # jar delivering a load
    float_setpoint_v_per_cell: np.ndarray  # compensated float voltage at the probe, V/cell
    soc: np.ndarray  # state of charge (0..1)
    capacity_ah: np.ndarray  # charge a full jar stores, Ah
    resistance_mohm: np.ndarray  # ohmic resistance, mΩ
    string_current_a: np.ndarray  # one current per string, A
    string_voltage_v: np.ndarray  # sum of its jars' voltages, V


class BatteryBank:
    """State and parameters of every jar, as arrays indexed by jar; strings as contiguous runs of jars."""

    def __init__(
        self,
        models: list[BatteryModel],
        model_index: np.ndarray,
        profile: np.ndarray,
        capacity_spread: np.ndarray,
        resistance_spread: np.ndarray,
        initial_soh_pct: np.ndarray,
        initial_temperature_c: np.ndarray,
        string_of_jar: np.ndarray | None = None,
        float_current_spread: np.ndarray | None = None,
        population: ageing.AgeingPopulation | None = None,
    ):
        def per_jar(attribute: str) -> np.ndarray:
            return np.array([getattr(model, attribute) for model in models], dtype=np.float64)[model_index]

        self.size = len(model_index)
        self.model_index = np.asarray(model_index)
        self.profile = np.asarray(profile, dtype=np.int8)
        # Strings: each jar's string index (default: every jar alone on its own charger).
        self.jar_string = np.arange(self.size) if string_of_jar is None else np.asarray(string_of_jar)
        if np.any(np.diff(self.jar_string) < 0):
            raise ValueError("jars of a string must be contiguous and strings in order")
        self.string_start = np.flatnonzero(np.diff(self.jar_string, prepend=-1))
        self.string_count = len(self.string_start)
        self.string_jars = np.diff(np.append(self.string_start, self.size))

        self.cells = per_jar("cells")
        self.rated_capacity_ah = per_jar("capacity_ah_c10") * capacity_spread
        self.full_capacity_ah = self.rated_capacity_ah * per_jar("capacity_over_c10")
        self.new_resistance_mohm = per_jar("internal_resistance_mohm") * resistance_spread
        self.design_life_years = per_jar("design_life_years")
        self.float_v_per_cell = per_jar("float_v_per_cell")
        self.boost_v_per_cell = per_jar("boost_v_per_cell")
        self.float_compensation_mv_per_c = per_jar("float_compensation_mv_per_c")
        self.boost_compensation_mv_per_c = per_jar("boost_compensation_mv_per_c")
        self.current_limit_a = per_jar("boost_current_limit_c10") * self.rated_capacity_ah
        # The rectifier limits the string's current: its jars' mean limit.
        self.string_current_limit_a = np.add.reduceat(self.current_limit_a, self.string_start) / self.string_jars
        self.end_voltage_v_per_cell = per_jar("end_voltage_v_per_cell")
        self.available_fraction = per_jar("available_charge_fraction")
        self.diffusion_rate_per_h = per_jar("diffusion_rate_per_h")
        self.tafel_v_per_cell = per_jar("tafel_v_per_cell")
        self.tafel_reference_c_rate = per_jar("tafel_reference_c_rate")
        self.depletion_v_per_cell = per_jar("depletion_v_per_cell")
        self.rate_reference_ah = physics.rate_reference_ah(self.rated_capacity_ah, per_jar("rate_capability"))
        mass_kg = np.array([model.block_mass_kg for model in models])[model_index]
        self.heat_capacity_j_per_k = mass_kg * per_jar("specific_heat_j_per_kg_k")
        self.heat_transfer_w_per_k = np.array([model.block_heat_transfer_w_per_k for model in models])[model_index]
        self.thermal_time_constant_s = self.heat_capacity_j_per_k / self.heat_transfer_w_per_k
        spread = np.ones(self.size) if float_current_spread is None else np.asarray(float_current_spread)
        self.float_reference_a = self.rated_capacity_ah * per_jar("float_current_ma_per_ah") * 1e-3 * spread
        # Self-discharge current per Ah held at 25 °C, A/Ah.
        self.self_discharge_a_per_ah = physics.self_discharge_fraction_per_s(
            per_jar("self_discharge_pct_per_month"), physics.REFERENCE_TEMPERATURE_C) * physics.SECONDS_PER_HOUR
        self.calendar_fade_pct_per_s = physics.calendar_fade_pct_per_s(self.design_life_years, 25.0, 1.0)
        # Each jar's own ageing (ageing.py); without a drawn population, the profile's median jar.
        if population is None:
            population = ageing.median_jar(PROFILE_FADE_MULTIPLIER[self.profile], PROFILE_RESISTANCE_RISE[self.profile],
                                           self.size)
        self.knee_soh_pct = population.knee_soh_pct
        self.knee_wear_scale = population.knee_wear_scale
        self.resistance_coupling = population.resistance_coupling
        self.resistance_noise = population.resistance_noise
        # KiBaM constant k' = k / (c (1 - c)) (Manwell & McGowan 1993), 1/h, at 25 °C.
        self.kibam_rate_per_h = self.diffusion_rate_per_h / (self.available_fraction * (1.0 - self.available_fraction))

        # Causes that scenarios and failures change (1.0 / inf = normal).
        self.live_cells = self.cells.copy()  # a shorted cell no longer counts (failures.py)
        self.fade_multiplier = population.fade_rate_multiplier.copy()
        self.resistance_multiplier = np.ones(self.size)
        self.float_current_multiplier = np.ones(self.size)
        self.self_discharge_multiplier = np.ones(self.size)
        # Rectifier thermal protection: stop charging a string when one of its jars passes this
        # temperature (inf = never; UPS defaults stop at 50 °C, vrla-facts.md). Off, a runaway
        # reaches its charger's current limit.
        self.charge_cutoff_c = np.full(self.size, np.inf)
        self.charge_cut = np.zeros(self.size, dtype=bool)

        # State.
        self.soh_pct = np.asarray(initial_soh_pct, dtype=np.float64).copy()
        self.temperature_c = np.asarray(initial_temperature_c, dtype=np.float64).copy()
        capacity = self.capacity_ah()
        self.available_ah = capacity * self.available_fraction
        self.bound_ah = capacity * (1.0 - self.available_fraction)
        self.depth_of_discharge = np.zeros(self.size)
        # The last circuit solution, where the next solve starts.
        self.cell_v = self.float_v_per_cell.copy()
        self.string_charge_a = np.zeros(self.string_count)
        self.string_current_limited = np.zeros(self.string_count, dtype=bool)
        self.string_discharge_a = np.zeros(self.string_count)
        self._thermal_decay_dt_s = None
        self._resistance_segment = (None, None, np.inf, -np.inf)  # none yet: found at the first solve

    STATE = ("available_ah", "bound_ah", "temperature_c", "soh_pct", "depth_of_discharge", "charge_cut",
             "resistance_multiplier", "cell_v", "string_charge_a", "string_current_limited", "string_discharge_a")

    def snapshot(self) -> tuple:
        """A copy of the state (what a step changes), to go back to with :meth:`restore`."""
        return tuple(getattr(self, name).copy() for name in self.STATE)

    def restore(self, snapshot: tuple) -> None:
        for name, value in zip(self.STATE, snapshot):
            setattr(self, name, value.copy())

    def reset_resistance_segments(self) -> None:
        """Forget the straight pieces of the resistance-ageing law (a jar was replaced: its state of health jumped)."""
        self._resistance_segment = (None, None, np.inf, -np.inf)

    @property
    def thermal_protection(self) -> bool:
        """Whether any jar's charger has a thermal cut-off (set ``charge_cutoff_c`` to enable it)."""
        return bool(np.isfinite(self.charge_cutoff_c).any())

    # ---------------------------------------------------------------------------------- state
    def capacity_ah(self) -> np.ndarray:
        """Charge a full jar stores now (after ageing), Ah. Temperature changes what can be delivered
        (the kinetics), not this."""
        return self.full_capacity_ah * self.soh_pct * 0.01

    def state_of_charge(self) -> np.ndarray:
        return np.minimum((self.available_ah + self.bound_ah) / self.capacity_ah(), 1.0)

    def resistance_mohm(self) -> np.ndarray:
        return self._resistance_mohm(self.state_of_charge())

    def _resistance_mohm(self, soc: np.ndarray) -> np.ndarray:
        return self.new_resistance_mohm * self.resistance_multiplier * self._resistance_ageing_factor() * (
            physics.resistance_factor(100.0, self.temperature_c, soc))

    def _resistance_ageing_factor(self) -> np.ndarray:
        """ageing.resistance_ageing_factor of the jars now, from the straight piece each jar is on (kept
        until a jar leaves it, every 2 points of capacity lost or on a sudden loss): a few operations a
        step instead of the interpolation, equal to it up to rounding."""
        soh = self.soh_pct
        offset, slope, low, high = self._resistance_segment
        if not ((soh > low) & (soh <= high)).all():
            self._resistance_segment = offset, slope, low, high = ageing.resistance_ageing_segment(
                soh, self.resistance_coupling, self.resistance_noise)
            if not ((soh > low) & (soh <= high)).all():  # above 100 % (never on its own): no piece holds
                return ageing.resistance_ageing_factor(soh, self.resistance_coupling, self.resistance_noise)
        return np.maximum(offset + slope * (100.0 - soh), 1.0)

    # The rectifier compensates its voltage from one probe per string, in the rack air beside the
    # jars: it follows the air, not the one jar that heats itself (which is why a runaway jar does
    # not pull its own charge voltage down). Setpoints therefore take the probe's temperature.
    def float_setpoint_v_per_cell(self, probe_temperature_c) -> np.ndarray:
        """Temperature-compensated float voltage at the charger probe's temperature, V/cell."""
        return physics.compensated_charge_voltage_v_per_cell(
            self.float_v_per_cell, self.float_compensation_mv_per_c, probe_temperature_c
        )

    def _surface(self, capacity_ah):
        return np.minimum(self.available_ah / (capacity_ah * self.available_fraction), 1.0)

    def _discharge_v_per_cell(self, current_a, surface, ocv, resistance_ohm, kinetics):
        # Cold steepens the knee as well as slowing diffusion; warmth only speeds the diffusion.
        return physics.discharge_voltage_v_per_cell(
            current_a, surface, ocv, resistance_ohm, self.cells, self.rate_reference_ah, self.tafel_v_per_cell,
            self.tafel_reference_c_rate, self.depletion_v_per_cell / np.minimum(kinetics, 1.0))

    def discharge_voltage_v(self, discharge_current_a: np.ndarray) -> np.ndarray:
        """Block terminal voltage of each jar while delivering ``discharge_current_a`` (positive), V."""
        capacity = self.capacity_ah()
        surface = self._surface(capacity)
        soc = np.minimum((self.available_ah + self.bound_ah) / capacity, 1.0)
        return self._discharge_v_per_cell(
            discharge_current_a, surface, physics.open_circuit_voltage_v_per_cell(surface),
            self._resistance_mohm(soc) * 1e-3, physics.kinetics_temperature_factor(self.temperature_c),
        ) * self.live_cells

    # ------------------------------------------------------------------------------- failures
    # Sudden failures (failures.py draws when they happen) change causes, never readings.
    def corrode_grid(self, jars) -> None:
        self.resistance_multiplier[jars] *= CORROSION_RESISTANCE_FACTOR
        self.fade_multiplier[jars] *= CORROSION_FADE_FACTOR

    def dry_out(self, jars) -> None:
        self.resistance_multiplier[jars] *= DRY_OUT_RESISTANCE_FACTOR
        self.float_current_multiplier[jars] *= DRY_OUT_FLOAT_CURRENT_FACTOR
        self.soh_pct[jars] = np.maximum(self.soh_pct[jars] - DRY_OUT_CAPACITY_LOSS_PCT, SOH_FLOOR_PCT)

    def sulfate(self, jars) -> None:
        self.soh_pct[jars] = np.maximum(self.soh_pct[jars] - SULFATION_CAPACITY_LOSS_PCT, SOH_FLOOR_PCT)
        self.resistance_multiplier[jars] *= SULFATION_RESISTANCE_FACTOR

    def short_cell(self, jars) -> None:
        """One cell of each jar shorts: the jar loses a cell's voltage (about 2 V); on charge the string's
        other cells take up the string voltage the rectifier still holds (the circuit solves it)."""
        jars = np.atleast_1d(jars)
        self.live_cells[jars] = np.maximum(self.live_cells[jars] - 1.0, 0.0)

    def start_thermal_runaway(self, jars) -> None:
        self.float_current_multiplier[jars] = np.maximum(self.float_current_multiplier[jars],
                                                         RUNAWAY_FLOAT_CURRENT_FACTOR)

    # ---------------------------------------------------------------------------------- solve
    def solve(self, mode: np.ndarray, jar_ambient_c: np.ndarray, discharge_current_a=None, load_w=None,
              charge_voltage_v_per_cell: np.ndarray | None = None) -> Terminal:
        """The series circuit of every string now: one current per string, each jar's voltage and heat.

        ``mode`` is each string's :class:`Mode`. A string in DISCHARGE delivers ``load_w`` (W, per
        string; its current solved at the voltage it causes) or ``discharge_current_a`` (A, per
        string). On charge the rectifier holds the compensated float or boost setpoint (probe: each
        jar's ambient; ``charge_voltage_v_per_cell`` per jar instead) up to its current limit.
        """
        capacity = self.capacity_ah()
        surface = self._surface(capacity)
        soc = np.minimum((self.available_ah + self.bound_ah) / capacity, 1.0)
        ocv = physics.OCV_EMPTY_V_PER_CELL + physics.OCV_SPAN_V_PER_CELL * surface
        temperature_c = self.temperature_c
        doubling = physics.doubling_per_10k(temperature_c)
        resistance_mohm = self._resistance_mohm(soc)
        float_v = self.float_setpoint_v_per_cell(jar_ambient_c)
        jar_string = self.jar_string
        mode = np.asarray(mode)

        charging = mode <= EQUALIZE
        if self.thermal_protection:
            # The charger stops at the cut-off and resumes only once the jar has cooled well below it.
            self.charge_cut = (temperature_c >= self.charge_cutoff_c) | (
                self.charge_cut & (temperature_c > self.charge_cutoff_c - CHARGE_CUTOFF_HYSTERESIS_C))
            charging = charging & (np.maximum.reduceat(self.charge_cut, self.string_start) == 0)
        discharging = mode == DISCHARGE
        all_charging = bool(charging.all())

        if charge_voltage_v_per_cell is None:
            charge_voltage_v_per_cell = float_v
            if (mode == BOOST).any() or (mode == EQUALIZE).any():
                boost_v = physics.compensated_charge_voltage_v_per_cell(
                    self.boost_v_per_cell, self.boost_compensation_mv_per_c, jar_ambient_c)
                charge_voltage_v_per_cell = np.where(mode[jar_string] == FLOAT, float_v, boost_v)
        setpoint_v = np.add.reduceat(self.cells * charge_voltage_v_per_cell, self.string_start)
        acceptance = physics.charge_acceptance_a_per_v(self.rated_capacity_ah, surface)
        gassing_reference_a = (self.float_reference_a * self.float_current_multiplier * (2.0 - self.soh_pct * 0.01)
                               * doubling)
        cell_v, charge_a, limited, main_a, gassing_a = circuit.solve_charging(
            self.string_start, jar_string, self.live_cells, ocv, acceptance, surface, gassing_reference_a,
            self.float_v_per_cell, setpoint_v, self.string_current_limit_a, self.cell_v, self.string_charge_a,
            self.string_current_limited)
        self.cell_v, self.string_charge_a, self.string_current_limited = cell_v, charge_a, limited
        # A main reaction running backwards (a cell pulled below its OCV) takes all it delivers from storage.
        stored_share = physics.charge_efficiency(surface)
        discharging_cells = main_a < 0.0
        if discharging_cells.any():
            stored_share = np.where(discharging_cells, 1.0, stored_share)
        string_current_a = charge_a
        if not all_charging:
            jar_charging = charging[jar_string]
            string_current_a = np.where(charging, charge_a, 0.0)
            if discharging.any():
                kinetics = physics.kinetics_temperature_factor(temperature_c)
                resistance_ohm = resistance_mohm * 1e-3

                def string_voltage_at_v(current_a):
                    cell = self._discharge_v_per_cell(current_a[jar_string], surface, ocv, resistance_ohm, kinetics)
                    return np.add.reduceat(cell * self.live_cells, self.string_start)

                if load_w is not None:
                    delivering_a = circuit.string_discharge_current_a(
                        np.where(discharging, load_w, 0.0), string_voltage_at_v,
                        np.where(discharging, self.string_discharge_a, 0.0))
                else:
                    delivering_a = np.where(discharging, discharge_current_a, 0.0)
                self.string_discharge_a = delivering_a
                string_current_a = np.where(discharging, -delivering_a, string_current_a)
                discharge_v = self._discharge_v_per_cell(delivering_a[jar_string], surface, ocv, resistance_ohm,
                                                         kinetics)
            else:
                discharge_v = ocv
            # Resting strings (disconnected, cut off) carry nothing and read their open-circuit voltage,
            # which the discharge law gives at zero current.
            cell_v = np.where(jar_charging, cell_v, discharge_v)
            main_a = np.where(jar_charging, main_a, string_current_a[jar_string])
            gassing_a = np.where(jar_charging, gassing_a, 0.0)
            stored_share = np.where(jar_charging, stored_share, 1.0)
        else:
            jar_charging = charging[jar_string]
        self_discharge_a = (capacity * soc * self.self_discharge_a_per_ah * self.self_discharge_multiplier
                            * doubling)
        voltage_v = cell_v * self.live_cells
        return Terminal(
            voltage_v=voltage_v,
            current_a=string_current_a[jar_string],
            heat_w=physics.heat_w(self.live_cells, main_a, gassing_a, stored_share, cell_v, ocv),
            cell_v=cell_v,
            main_a=main_a,
            gassing_a=gassing_a,
            stored_share=stored_share,
            self_discharge_a=self_discharge_a,
            charging=jar_charging,
            discharging=discharging[jar_string],
            float_setpoint_v_per_cell=float_v,
            soc=soc,
            capacity_ah=capacity,
            resistance_mohm=resistance_mohm,
            string_current_a=string_current_a,
            string_voltage_v=np.add.reduceat(voltage_v, self.string_start),
        )

    # ---------------------------------------------------------------------------------- step
    def step(self, dt_s, terminal: Terminal, jar_ambient_c: np.ndarray) -> None:
        """Move the state on by ``dt_s`` seconds (scalar or per jar) at the currents of ``terminal``."""
        capacity = terminal.capacity_ah
        stored_a = terminal.stored_share * terminal.main_a - terminal.self_discharge_a
        rate_per_h = self.kibam_rate_per_h * physics.kinetics_temperature_factor(self.temperature_c)
        self.available_ah, self.bound_ah = physics.kibam_step(
            self.available_ah, self.bound_ah, capacity, self.available_fraction, rate_per_h, stored_a, dt_s)
        soc_after = np.minimum((self.available_ah + self.bound_ah) / capacity, 1.0)
        self.soh_pct = self.ageing_step(dt_s, terminal, soc_after)
        self.temperature_c = physics.thermal_step_c(self.temperature_c, jar_ambient_c, terminal.heat_w,
                                                    self.heat_transfer_w_per_k, self._thermal_decay(dt_s))

    def _thermal_decay(self, dt_s):
        """exp(-dt/τ) of every jar; a run uses one or two step lengths, so the last one is kept."""
        if np.ndim(dt_s) or dt_s != self._thermal_decay_dt_s:
            self._thermal_decay_dt_s = dt_s if np.ndim(dt_s) == 0 else None
            self._thermal_decay_value = np.exp(-np.asarray(dt_s) / self.thermal_time_constant_s)
        return self._thermal_decay_value

    def ageing_step(self, dt_s, terminal: Terminal, soc_after: np.ndarray) -> np.ndarray:
        """State of health after ``dt_s``: calendar fade at the instantaneous temperature and voltage
        stress, plus cycle fade as the depth of discharge deepens; a jar off charge sulfates as it sits
        discharged. Updates the depth of discharge; returns the new state of health."""
        temperature_c = self.temperature_c
        charging = terminal.charging
        acceleration = physics.ageing_acceleration(temperature_c, terminal.cell_v - terminal.float_setpoint_v_per_cell)
        if not charging.all():
            sitting = physics.ageing_acceleration(temperature_c) * (1.0 + DISCHARGED_STRESS_AT_EMPTY * (1.0 - soc_after))
            acceleration = np.where(charging, acceleration, sitting)
        fade_pct = self.calendar_fade_pct_per_s * acceleration * dt_s
        discharging = terminal.discharging
        if discharging.any() or self.depth_of_discharge.any():
            depth_before = self.depth_of_discharge
            self.depth_of_discharge = np.where(discharging, np.maximum(depth_before, 1.0 - soc_after), 0.0)
            fade_pct = fade_pct + physics.cycle_fade_pct(depth_before, self.depth_of_discharge, FADE_PCT_PER_FULL_CYCLE)
        soh_pct = ageing.soh_after_fade_pct(self.soh_pct, fade_pct * self.fade_multiplier, self.knee_soh_pct,
                                            self.knee_wear_scale)
        return np.maximum(soh_pct, SOH_FLOOR_PCT)

    def advance(
        self,
        dt_s,
        mode: np.ndarray,
        discharge_current_a: np.ndarray,
        jar_ambient_c: np.ndarray,
        charge_voltage_v_per_cell: np.ndarray | None = None,
        load_w: np.ndarray | None = None,
    ) -> Terminal:
        """Solve the circuit now and move every jar on by ``dt_s`` seconds at that solution; returns it.

        ``mode`` is each string's :class:`Mode` (with the default strings, each jar's); see
        :meth:`solve` for the loads and charger voltages.
        """
        terminal = self.solve(mode, jar_ambient_c, discharge_current_a, load_w, charge_voltage_v_per_cell)
        self.step(dt_s, terminal, jar_ambient_c)
        return terminal
