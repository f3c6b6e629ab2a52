"""Every jar of the fleet as numpy arrays, advanced one tick at a time.

:class:`BatteryBank` holds the state of all jars (charge in a two-well kinetic battery model,
temperature, state of health) and the parameters that come from each jar's model, manufacturing
spread and degradation profile. :meth:`BatteryBank.advance` moves all of them over one time step
under the charger or load that the rectifiers impose; it has no Python loop over jars. The fleet,
``battsim lab`` and the failure hazards all drive this same code.

The charge model is the kinetic battery model (KiBaM, Manwell & McGowan 1993): an *available*
well feeds the terminals, a *bound* well refills it at a finite rate. It gives the rate-dependent
capacity of the datasheet tables and the recovery of voltage after a discharge, and its exact
solution for a constant current makes each step independent of its length. The jar is one thermal
mass heated by its own losses (ohmic, overpotential and the overcharge current that oxygen
recombination turns wholly into heat) and cooled by the room; the float current grows with
temperature, which is where thermal runaway comes from. Equations: ``docs/physics.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from battsim.engine import physics
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

# Charge acceptance falls as the available well fills; this resistance (per unit C10, V/cell per C)
# sets how fast the boost current tapers near full.
CHARGE_TAPER_V_PER_C_RATE = 0.08

# A charger's thermal cut-off resumes charging 10 K below the cut-off (hysteresis, as thermostat
# relays do; the figure is an assumption, UPS manuals give 5-10 K).
CHARGE_CUTOFF_HYSTERESIS_C = 10.0

# A jar is never modelled as holding nothing: a floor keeps its capacity positive.
SOH_FLOOR_PCT = 1.0
# Sulfation while a jar sits discharged: stress rises to 3 × at empty.
DISCHARGED_STRESS_AT_EMPTY = 2.0


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
    """What a tick produces for every jar."""

    voltage_v: np.ndarray  # block terminal voltage, V
    current_a: np.ndarray  # + charging, − discharging, A
    heat_w: np.ndarray  # heat generated in the block, W


class BatteryBank:
    """State and parameters of every jar, as arrays indexed by jar."""

    def __init__(
        self,
        models: list[BatteryModel],
        model_index: np.ndarray,
        profile: np.ndarray,
        capacity_spread: np.ndarray,
        resistance_spread: np.ndarray,
        initial_soh_pct: np.ndarray,
        initial_temperature_c: np.ndarray,
    ):
        def per_jar(attribute: str) -> np.ndarray:
            return np.array([getattr(model, attribute) for model in models], dtype=np.float64)[model_index]

        self.size = len(model_index)
        self.model_index = np.asarray(model_index)
        self.profile = np.asarray(profile, dtype=np.int8)
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
        self.end_voltage_v_per_cell = per_jar("end_voltage_v_per_cell")
        self.available_fraction = per_jar("available_charge_fraction")
        self.diffusion_rate_per_h = per_jar("diffusion_rate_per_h")
        self.tafel_v_per_cell = per_jar("tafel_v_per_cell")
        self.tafel_reference_c_rate = per_jar("tafel_reference_c_rate")
        self.depletion_v_per_cell = per_jar("depletion_v_per_cell")
        mass_kg = np.array([model.block_mass_kg for model in models])[model_index]
        self.heat_capacity_j_per_k = mass_kg * per_jar("specific_heat_j_per_kg_k")
        self.heat_transfer_w_per_k = np.array([model.block_heat_transfer_w_per_k for model in models])[model_index]
        self.thermal_time_constant_s = self.heat_capacity_j_per_k / self.heat_transfer_w_per_k
        self.taper_siemens_per_cell = self.rated_capacity_ah / CHARGE_TAPER_V_PER_C_RATE
        self.float_reference_a = self.rated_capacity_ah * per_jar("float_current_ma_per_ah") * 1e-3
        # Self-discharge current per Ah held at 25 °C, A/Ah.
        self.self_discharge_a_per_ah = physics.self_discharge_fraction_per_s(
            per_jar("self_discharge_pct_per_month"), physics.REFERENCE_TEMPERATURE_C) * physics.SECONDS_PER_HOUR
        self.calendar_fade_pct_per_s = physics.calendar_fade_pct_per_s(self.design_life_years, 25.0, 1.0)
        self._step_cache: dict[float, tuple] = {}
        self.resistance_rise = PROFILE_RESISTANCE_RISE[self.profile]
        # KiBaM constant k' = k / (c (1 - c)) (Manwell & McGowan 1993), 1/h.
        self.kibam_rate_per_h = self.diffusion_rate_per_h / (self.available_fraction * (1.0 - self.available_fraction))

        # Causes that scenarios and failures change (1.0 / inf = normal).
        self.live_cells = self.cells.copy()  # a shorted cell no longer counts (failures.py)
        self.fade_multiplier = PROFILE_FADE_MULTIPLIER[self.profile].copy()
        self.resistance_multiplier = np.ones(self.size)
        self.float_current_multiplier = np.ones(self.size)
        self.self_discharge_multiplier = np.ones(self.size)
        # The charger regulates a whole string: when cells of the string are shorted, the others share
        # its voltage and each sees this much more than its setpoint (string cells / live string cells).
        self.charge_voltage_share = np.ones(self.size)
        self.string_has_short = False
        # Rectifier thermal protection: stop charging a jar above this temperature (inf = never; UPS
        # defaults stop at 50 °C, vrla-facts.md). Leaving it off lets a runaway reach its charger limit.
        self.charge_cutoff_c = np.full(self.size, np.inf)
        self.charge_cut = np.zeros(self.size, dtype=bool)

        # State.
        self.soh_pct = np.asarray(initial_soh_pct, dtype=np.float64).copy()
        self.temperature_c = np.asarray(initial_temperature_c, dtype=np.float64).copy()
        capacity = self.capacity_ah()
        self.available_ah = capacity * self.available_fraction
        self.bound_ah = capacity * (1.0 - self.available_fraction)
        self.depth_of_discharge = np.zeros(self.size)

    @property
    def thermal_protection(self) -> bool:
        """Whether any jar's charger has a thermal cut-off (set ``charge_cutoff_c`` to enable it)."""
        return bool(np.isfinite(self.charge_cutoff_c).any())

    # ---------------------------------------------------------------------------------- state
    def capacity_ah(self) -> np.ndarray:
        """Charge a full jar holds now (after ageing, at its temperature), Ah."""
        return self.full_capacity_ah * self.soh_pct * 0.01 * physics.capacity_temperature_factor(self.temperature_c)

    def state_of_charge(self) -> np.ndarray:
        return np.minimum((self.available_ah + self.bound_ah) / self.capacity_ah(), 1.0)

    def resistance_mohm(self) -> np.ndarray:
        return self._resistance_mohm(self.state_of_charge())

    def state_of_charge_and_resistance_mohm(self) -> tuple[np.ndarray, np.ndarray]:
        """Both at once (what a tick records), sharing the state-of-charge computation."""
        soc = self.state_of_charge()
        return soc, self._resistance_mohm(soc)

    def _resistance_mohm(self, soc: np.ndarray) -> np.ndarray:
        # Ageing rise scaled by the profile: the capacity lost counts resistance_rise times.
        effective_soh = 100.0 - self.resistance_rise * (100.0 - self.soh_pct)
        return self.new_resistance_mohm * self.resistance_multiplier * physics.resistance_factor(
            effective_soh, self.temperature_c, soc
        )

    # The rectifier compensates its voltage from one probe per string, in the rack air beside the
    # jars: it follows the room, not the one jar that heats itself (which is why a runaway jar does
    # not pull its own charge voltage down). Setpoints therefore take the probe's temperature.
    def float_setpoint_v_per_cell(self, probe_temperature_c) -> np.ndarray:
        """Temperature-compensated float voltage at the charger probe's temperature, V/cell."""
        return physics.compensated_charge_voltage_v_per_cell(
            self.float_v_per_cell, self.float_compensation_mv_per_c, probe_temperature_c
        )

    def charge_setpoint_v_per_cell(self, mode: np.ndarray, probe_temperature_c=None) -> np.ndarray:
        """Temperature-compensated charger voltage the jar's mode asks for, V/cell (probe: the room)."""
        probe_c = self.temperature_c if probe_temperature_c is None else probe_temperature_c
        float_v = self.float_setpoint_v_per_cell(probe_c)
        if not (mode == Mode.BOOST).any() and not (mode == Mode.EQUALIZE).any():
            return float_v
        boost_v = physics.compensated_charge_voltage_v_per_cell(
            self.boost_v_per_cell, self.boost_compensation_mv_per_c, probe_c
        )
        return np.where(mode == Mode.FLOAT, float_v, boost_v)


    # ------------------------------------------------------------------------------ discharge
    def discharge_voltage_v(self, discharge_current_a: np.ndarray) -> np.ndarray:
        """Block terminal voltage while delivering ``discharge_current_a`` (positive), V."""
        capacity = self.capacity_ah()
        surface = np.minimum(self.available_ah / (capacity * self.available_fraction), 1.0)
        soc = np.minimum((self.available_ah + self.bound_ah) / capacity, 1.0)
        return self._discharge_v_per_cell(
            discharge_current_a, surface, physics.open_circuit_voltage_v_per_cell(surface),
            self._resistance_mohm(soc) * 1e-3,
        ) * self.live_cells

    def _discharge_v_per_cell(self, current_a, surface, ocv, resistance_ohm):
        c_rate = current_a / self.rated_capacity_ah
        # Floored at 0 V: a cell driven past empty by its string reverses, and does not go on
        # falling as the depletion term would.
        return np.maximum(
            ocv
            - current_a * resistance_ohm / self.cells
            - physics.discharge_overpotential_v_per_cell(c_rate, self.tafel_v_per_cell, self.tafel_reference_c_rate)
            - physics.depletion_overpotential_v_per_cell(c_rate, surface, self.depletion_v_per_cell),
            0.0,
        )

    # ------------------------------------------------------------------------------- failures
    # Sudden failures (failures.py draws when they happen) change causes, never readings.
    def corrode_grid(self, jars) -> None:
        self.resistance_multiplier[jars] *= CORROSION_RESISTANCE_FACTOR
        self.fade_multiplier[jars] *= CORROSION_FADE_FACTOR

    def dry_out(self, jars) -> None:
        self.resistance_multiplier[jars] *= DRY_OUT_RESISTANCE_FACTOR
        self.float_current_multiplier[jars] *= DRY_OUT_FLOAT_CURRENT_FACTOR
        self.soh_pct[jars] = np.maximum(self.soh_pct[jars] - DRY_OUT_CAPACITY_LOSS_PCT, 0.0)

    def sulfate(self, jars) -> None:
        self.soh_pct[jars] = np.maximum(self.soh_pct[jars] - SULFATION_CAPACITY_LOSS_PCT, 0.0)
        self.resistance_multiplier[jars] *= SULFATION_RESISTANCE_FACTOR

    def short_cell(self, jars, string_of_jar: np.ndarray | None = None) -> None:
        """One cell of each jar shorts: the jar loses a cell's voltage (about 2 V), and the charger's
        string voltage is shared by the cells left, each getting a little more.

        ``string_of_jar`` gives each jar's string (default: every jar alone on its own charger).
        """
        jars = np.atleast_1d(jars)
        self.live_cells[jars] = np.maximum(self.live_cells[jars] - 1.0, 0.0)
        strings = np.arange(self.size) if string_of_jar is None else np.asarray(string_of_jar)
        cells = np.bincount(strings, weights=self.cells)
        live = np.bincount(strings, weights=self.live_cells)
        self.charge_voltage_share = (cells / np.maximum(live, 1.0))[strings]
        self.string_has_short = bool((self.charge_voltage_share != 1.0).any())

    def start_thermal_runaway(self, jars) -> None:
        self.float_current_multiplier[jars] = np.maximum(self.float_current_multiplier[jars],
                                                         RUNAWAY_FLOAT_CURRENT_FACTOR)

    # ---------------------------------------------------------------------------------- step
    def _step_constants(self, dt_s) -> tuple:
        """Factors that depend only on the step length, cached (a run uses one or two step lengths).

        KiBaM (exact solution for a constant current I over t, Manwell & McGowan 1993):
        ``A' = A·e + (A+B)·c·(1-e) - I·[(1-e)/k' + c·r]`` and ``B' = B·e + (A+B)·(1-c)·(1-e) - I·(1-c)·r``
        with ``e = exp(-k't)`` and ``r = (k't - 1 + e)/k'``; and the jar's thermal lag ``exp(-t/τ)``.
        """
        key = float(dt_s) if np.ndim(dt_s) == 0 else None
        cached = self._step_cache.get(key) if key is not None else None
        if cached is not None:
            return cached
        c, k_prime = self.available_fraction, self.kibam_rate_per_h
        t_h = np.asarray(dt_s, dtype=np.float64) / physics.SECONDS_PER_HOUR
        decay = np.exp(-k_prime * t_h)
        ramp = (k_prime * t_h - 1.0 + decay) / k_prime
        constants = (
            np.maximum(t_h, 1e-9),
            decay,
            c * (1.0 - decay),  # share of the total that flows into the available well
            (1.0 - c) * (1.0 - decay),  # and into the bound well
            (1.0 - decay) / k_prime + c * ramp,  # Ah drawn from the available well per A
            (1.0 - c) * ramp,  # Ah drawn from the bound well per A
            np.exp(-np.asarray(dt_s) / self.thermal_time_constant_s),
        )
        if key is not None:
            if len(self._step_cache) > 8:
                self._step_cache.clear()
            self._step_cache[key] = constants
        return constants

    def advance(
        self,
        dt_s,
        mode: np.ndarray,
        discharge_current_a: np.ndarray,
        room_temperature_c: np.ndarray,
        charge_voltage_v_per_cell: np.ndarray | None = None,
    ) -> Terminal:
        """Advance every jar by ``dt_s`` seconds (a scalar, or one value per jar).

        ``mode`` is each jar's :class:`Mode`; ``discharge_current_a`` the load current (positive)
        of jars in DISCHARGE; ``charge_voltage_v_per_cell`` the charger voltage of jars on charge
        (default: the compensated float or boost setpoint at the room's temperature, times the
        jar's share of its string). Branches that no jar needs this tick are skipped.
        """
        dt_h, decay, to_available, to_bound, draw_available, draw_bound, thermal_decay = self._step_constants(dt_s)
        temperature_c = self.temperature_c
        capacity = self.full_capacity_ah * self.soh_pct * 0.01 * physics.capacity_temperature_factor(temperature_c)
        well_ah = capacity * self.available_fraction
        total_ah = self.available_ah + self.bound_ah
        surface = np.minimum(self.available_ah / well_ah, 1.0)  # wells are never negative
        soc = np.minimum(total_ah / capacity, 1.0)
        ocv = physics.OCV_EMPTY_V_PER_CELL + physics.OCV_SPAN_V_PER_CELL * surface
        float_v = self.float_setpoint_v_per_cell(room_temperature_c)
        doubling = physics.doubling_per_10k(temperature_c)

        charging = mode <= Mode.EQUALIZE
        if self.thermal_protection:
            # The charger stops at the cut-off and resumes only once the jar has cooled well below it.
            self.charge_cut = (temperature_c >= self.charge_cutoff_c) | (
                self.charge_cut & (temperature_c > self.charge_cutoff_c - CHARGE_CUTOFF_HYSTERESIS_C))
            charging &= ~self.charge_cut
        all_charging = charging.all()
        discharging = mode == Mode.DISCHARGE
        any_discharging = not all_charging and discharging.any()

        # Charger side: the setpoint drives acceptance into the available well (tapering as it
        # fills) and the overcharge current that only makes heat. When the sum passes the current
        # limit the charger's voltage sags to where the jar takes just the limit.
        if charge_voltage_v_per_cell is None:
            on_float = (mode == Mode.FLOAT).all()
            charge_voltage_v_per_cell = float_v if on_float else self.charge_setpoint_v_per_cell(mode, room_temperature_c)
            if self.string_has_short:
                charge_voltage_v_per_cell = charge_voltage_v_per_cell * self.charge_voltage_share
        self_discharge_a = capacity * soc * self.self_discharge_a_per_ah * doubling
        # What the available well can take in this step: the space left plus what self-discharge
        # takes out meanwhile (a jar that lost capacity may hold more than its well; none then).
        room_in_well_a = np.maximum(well_ah - self.available_ah, 0.0) / dt_h + self_discharge_a
        acceptance_a = np.minimum(
            np.maximum(charge_voltage_v_per_cell - ocv, 0.0) * self.taper_siemens_per_cell, room_in_well_a
        )
        float_reference_a = self.float_reference_a * self.float_current_multiplier * (2.0 - self.soh_pct * 0.01)
        overcharge_a = physics.float_current_a(float_reference_a, charge_voltage_v_per_cell,
                                               self.float_v_per_cell, temperature_c, doubling)
        cell_v = charge_voltage_v_per_cell
        limited = acceptance_a + overcharge_a > self.current_limit_a
        if not all_charging:
            limited &= charging
        if limited.any():
            # A jar with room in its available well takes the limit as charge (bulk charging);
            # a full one turns what it cannot store into overcharge, at the voltage where the
            # recombination current equals the rest of the limit (a runaway jar on a current-
            # limited charger).
            limit_a = self.current_limit_a
            overcharge_share_a = np.maximum(limit_a - room_in_well_a, 1e-3 * limit_a)
            sagged_v = np.minimum(cell_v, np.where(
                room_in_well_a >= limit_a,
                ocv + limit_a / self.taper_siemens_per_cell,
                physics.float_voltage_for_current_v_per_cell(
                    overcharge_share_a, float_reference_a, self.float_v_per_cell, temperature_c),
            ))
            cell_v = np.where(limited, sagged_v, cell_v)
            overcharge_a = np.where(limited, np.minimum(
                physics.float_current_a(float_reference_a, cell_v, self.float_v_per_cell, temperature_c,
                                        doubling), limit_a), overcharge_a)
            acceptance_a = np.where(limited, np.minimum(limit_a - overcharge_a, room_in_well_a), acceptance_a)

        if all_charging:
            stored_a, voltage_v = acceptance_a, cell_v
        else:
            stored_a = np.where(charging, acceptance_a, 0.0)
            overcharge_a = np.where(charging, overcharge_a, 0.0)
            voltage_v = np.where(charging, cell_v, ocv)
        net_discharge_a = self_discharge_a - stored_a
        if any_discharging:
            load_a = np.where(discharging, discharge_current_a, 0.0)
            resistance_ohm = self._resistance_mohm(soc) * 1e-3
            voltage_v = np.where(discharging, self._discharge_v_per_cell(load_a, surface, ocv, resistance_ohm),
                                 voltage_v)
            net_discharge_a = net_discharge_a + load_a
        voltage_v = voltage_v * self.live_cells
        ocv_v = ocv * self.live_cells

        # Heat: what goes into storage or comes out loses (V - OCV) per ampere (ohmic and
        # overpotential); the overcharge current's whole power becomes heat (oxygen recombination).
        heat_w = stored_a * (voltage_v - ocv_v) + overcharge_a * voltage_v
        if any_discharging:
            heat_w = heat_w + load_a * (ocv_v - voltage_v)

        # Charge: the exact KiBaM step (see _step_constants).
        # (np.minimum/np.maximum: np.clip's Python wrapper costs more than the arithmetic here.)
        self.available_ah = np.maximum(np.minimum(
            self.available_ah * decay + total_ah * to_available - net_discharge_a * draw_available, well_ah), 0.0)
        self.bound_ah = np.maximum(np.minimum(
            self.bound_ah * decay + total_ah * to_bound - net_discharge_a * draw_bound, capacity - well_ah), 0.0)

        # Ageing: calendar fade at the instantaneous temperature and voltage stress, plus cycle
        # fade as the depth of discharge deepens; a jar off charge sulfates as it sits discharged.
        acceleration = physics.ageing_acceleration(temperature_c, cell_v - float_v)
        if not all_charging:
            soc_after = np.minimum((self.available_ah + self.bound_ah) / capacity, 1.0)
            sitting = physics.ageing_acceleration(temperature_c) * (
                1.0 + DISCHARGED_STRESS_AT_EMPTY * (1.0 - soc_after))
            acceleration = np.where(charging, acceleration, sitting)
        fade_pct = self.calendar_fade_pct_per_s * acceleration * dt_s
        if any_discharging or self.depth_of_discharge.any():
            if all_charging:
                soc_after = np.minimum((self.available_ah + self.bound_ah) / capacity, 1.0)
            depth_before = self.depth_of_discharge
            self.depth_of_discharge = np.where(discharging, np.maximum(depth_before, 1.0 - soc_after), 0.0)
            fade_pct = fade_pct + physics.cycle_fade_pct(depth_before, self.depth_of_discharge, FADE_PCT_PER_FULL_CYCLE)
        self.soh_pct = np.maximum(self.soh_pct - fade_pct * self.fade_multiplier, SOH_FLOOR_PCT)

        # Temperature: exact first-order step towards the room plus the jar's own heat.
        equilibrium_c = room_temperature_c + heat_w / self.heat_transfer_w_per_k
        self.temperature_c = equilibrium_c + (temperature_c - equilibrium_c) * thermal_decay
        current_a = stored_a + overcharge_a
        if any_discharging:
            current_a = current_a - load_a
        return Terminal(voltage_v=voltage_v, current_a=current_a, heat_w=heat_w)
