"""Every jar of the fleet as numpy arrays, advanced one tick at a time.

:class:`BatteryBank` holds the state of all jars (charge in a two-well kinetic battery model,
temperature, state of health, resistance) and the parameters that come from each jar's model,
manufacturing spread and degradation profile. :meth:`BatteryBank.advance` moves all of them over
one time step under the charger or load that the rectifiers impose; it has no Python loop over jars.

The charge model is the kinetic battery model (KiBaM, Manwell & McGowan 1993): an *available*
well feeds the terminals, a *bound* well refills it at a finite rate. It gives the rate-dependent
capacity of the datasheet tables and the recovery of voltage after a discharge, and its exact
solution for a constant current makes each step independent of its length.
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
# in about 40 % of its design life, a failing one in about 15 % (field experience of early failures).
PROFILE_FADE_MULTIPLIER = np.array([1.0, 2.5, 6.5])

# Specific heat of a VRLA block (lead, acid, plastic), J/(kg·K) (typical published 0.7-0.9 kJ/(kg·K)).
SPECIFIC_HEAT_J_PER_KG_K = 800.0
# Natural convection and radiation from a block in an open rack, W/K for a 30 kg block, scaling
# with surface area (mass^2/3): about 10 W/(m²·K) over the 0.34 m² of a 100 Ah block.
HEAT_TRANSFER_W_PER_K_30KG = 3.6

# Cycle ageing: a UPS AGM block gives about 250 full-depth cycles to 80 % (datasheet cycle-life curves).
FADE_PCT_PER_FULL_CYCLE = 20.0 / 250.0

# Charge acceptance falls as the available well fills; this resistance (per unit C10, V/cell per C)
# sets how fast the boost current tapers near full.
CHARGE_TAPER_V_PER_C_RATE = 0.08


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
        self.live_cells = self.cells.copy()
        self.rated_capacity_ah = per_jar("capacity_ah_c10") * capacity_spread
        self.new_resistance_mohm = per_jar("internal_resistance_mohm") * resistance_spread
        self.design_life_years = per_jar("design_life_years")
        self.float_v_per_cell = per_jar("float_v_per_cell")
        self.boost_v_per_cell = per_jar("boost_v_per_cell")
        self.float_compensation_mv_per_c = per_jar("float_compensation_mv_per_c")
        self.boost_compensation_mv_per_c = per_jar("boost_compensation_mv_per_c")
        self.current_limit_c10 = per_jar("boost_current_limit_c10")
        self.end_voltage_v_per_cell = per_jar("end_voltage_v_per_cell")
        self.float_current_ma_per_ah = per_jar("float_current_ma_per_ah")
        self.self_discharge_pct_per_month = per_jar("self_discharge_pct_per_month")
        self.available_fraction = per_jar("available_charge_fraction")
        self.diffusion_rate_per_h = per_jar("diffusion_rate_per_h")
        self.polarization_v_per_c = per_jar("polarization_v_per_c_rate")
        self.depletion_v_per_cell = per_jar("depletion_v_per_cell")
        mass_kg = np.array([model.block_mass_kg for model in models])[model_index]
        self.heat_capacity_j_per_k = mass_kg * SPECIFIC_HEAT_J_PER_KG_K
        self.heat_transfer_w_per_k = HEAT_TRANSFER_W_PER_K_30KG * np.power(mass_kg / 30.0, 2.0 / 3.0)

        # Causes that scenarios and failures change (1.0 / 0 = normal).
        self.fade_multiplier = PROFILE_FADE_MULTIPLIER[self.profile].copy()
        self.resistance_multiplier = np.ones(self.size)
        self.float_current_multiplier = np.ones(self.size)

        # State.
        self.soh_pct = np.asarray(initial_soh_pct, dtype=np.float64).copy()
        self.temperature_c = np.asarray(initial_temperature_c, dtype=np.float64).copy()
        capacity = self.capacity_ah()
        self.available_ah = capacity * self.available_fraction
        self.bound_ah = capacity * (1.0 - self.available_fraction)
        self.depth_of_discharge = np.zeros(self.size)

    # ----------------------------------------------------------------------------------------
    def capacity_ah(self) -> np.ndarray:
        """Capacity at the 10 h rate, after ageing and at the jar's temperature, Ah."""
        return self.rated_capacity_ah * self.soh_pct / 100.0 * physics.capacity_temperature_factor(self.temperature_c)

    def state_of_charge(self) -> np.ndarray:
        return np.clip((self.available_ah + self.bound_ah) / self.capacity_ah(), 0.0, 1.0)

    def surface_state_of_charge(self) -> np.ndarray:
        """Fill of the available well, which the terminal voltage follows."""
        return np.clip(self.available_ah / (self.capacity_ah() * self.available_fraction), 0.0, 1.0)

    def resistance_mohm(self) -> np.ndarray:
        return physics.resistance_mohm(
            self.new_resistance_mohm * self.resistance_multiplier, self.soh_pct, self.temperature_c,
            self.state_of_charge(),
        )

    def charge_setpoint_v_per_cell(self, mode: np.ndarray) -> np.ndarray:
        """Temperature-compensated charger voltage the jar's mode asks for, V/cell."""
        float_v = physics.compensated_charge_voltage_v_per_cell(
            self.float_v_per_cell, self.float_compensation_mv_per_c, self.temperature_c
        )
        boost_v = physics.compensated_charge_voltage_v_per_cell(
            self.boost_v_per_cell, self.boost_compensation_mv_per_c, self.temperature_c
        )
        return np.where(mode == Mode.FLOAT, float_v, boost_v)

    # ----------------------------------------------------------------------------------------
    def _kibam_step(self, current_a: np.ndarray, dt_s: float) -> None:
        """Exact KiBaM solution for a constant current (+ discharge here) over ``dt_s``."""
        c = self.available_fraction
        k_prime = self.diffusion_rate_per_h / (c * (1.0 - c))
        t_h = dt_s / 3600.0
        decay = np.exp(-k_prime * t_h)
        ramp = k_prime * t_h - 1.0 + decay
        total = self.available_ah + self.bound_ah
        available = (
            self.available_ah * decay
            + (total * k_prime * c - current_a) * (1.0 - decay) / k_prime
            - current_a * c * ramp / k_prime
        )
        bound = self.bound_ah * decay + total * (1.0 - c) * (1.0 - decay) - current_a * (1.0 - c) * ramp / k_prime
        capacity = self.capacity_ah()
        self.available_ah = np.clip(available, 0.0, capacity * c)
        self.bound_ah = np.clip(bound, 0.0, capacity * (1.0 - c))

    def discharge_voltage_v(self, discharge_current_a: np.ndarray) -> np.ndarray:
        """Block terminal voltage while delivering ``discharge_current_a`` (positive), V."""
        c_rate = discharge_current_a / self.rated_capacity_ah
        surface = self.surface_state_of_charge()
        per_cell = (
            physics.open_circuit_voltage_v_per_cell(surface)
            - discharge_current_a * self.resistance_mohm() * 1e-3 / self.cells
            - self.polarization_v_per_c * c_rate
            - self.depletion_v_per_cell * c_rate * (1.0 / np.maximum(surface, 1e-3) - 1.0)
        )
        return per_cell * self.live_cells

    def advance(
        self,
        dt_s: float,
        mode: np.ndarray,
        discharge_current_a: np.ndarray,
        room_temperature_c: np.ndarray,
        charge_voltage_v_per_cell: np.ndarray | None = None,
    ) -> Terminal:
        """Advance every jar by ``dt_s`` seconds.

        ``mode`` is each jar's :class:`Mode`; ``discharge_current_a`` the load current (positive)
        of jars in DISCHARGE; ``charge_voltage_v_per_cell`` the charger voltage of jars on charge
        (default: the jar's own compensated float or boost setpoint).
        """
        charging = mode <= Mode.EQUALIZE
        discharging = mode == Mode.DISCHARGE
        if charge_voltage_v_per_cell is None:
            charge_voltage_v_per_cell = self.charge_setpoint_v_per_cell(mode)
        capacity = self.capacity_ah()
        ocv = physics.open_circuit_voltage_v_per_cell(self.surface_state_of_charge())

        # Charger side: acceptance into the available well (current-limited, tapering as it fills)
        # plus the overcharge current that only makes heat.
        current_limit_a = self.current_limit_c10 * self.rated_capacity_ah
        taper_ohm = CHARGE_TAPER_V_PER_C_RATE / self.rated_capacity_ah
        room_in_well_a = (capacity * self.available_fraction - self.available_ah) / max(dt_s / 3600.0, 1e-9)
        acceptance_a = np.clip((charge_voltage_v_per_cell - ocv) / taper_ohm, 0.0, current_limit_a)
        acceptance_a = np.minimum(acceptance_a, room_in_well_a)
        overcharge_a = physics.float_current_a(
            self.rated_capacity_ah * self.soh_pct / 100.0,
            self.float_current_ma_per_ah * self.float_current_multiplier * (2.0 - self.soh_pct / 100.0),
            charge_voltage_v_per_cell,
            self.float_v_per_cell,
            self.temperature_c,
        )
        charge_current_a = np.where(charging, np.minimum(acceptance_a + overcharge_a, current_limit_a), 0.0)
        overcharge_a = np.where(charging, charge_current_a - np.minimum(acceptance_a, charge_current_a), 0.0)
        stored_a = charge_current_a - overcharge_a

        self_discharge_a = capacity * self.state_of_charge() * physics.self_discharge_fraction_per_s(
            self.self_discharge_pct_per_month, self.temperature_c
        ) * 3600.0
        load_a = np.where(discharging, discharge_current_a, 0.0)

        if discharging.any():
            voltage_v = np.where(discharging, self.discharge_voltage_v(load_a), 0.0)
        else:
            voltage_v = np.zeros(self.size)
        resistance_ohm = self.resistance_mohm() * 1e-3
        # The charger holds its voltage unless the current limit pulls the jar below it.
        limited_voltage_v = (ocv + stored_a * taper_ohm) * self.live_cells + charge_current_a * resistance_ohm
        charge_voltage_v = np.where(
            charge_current_a >= current_limit_a,
            np.minimum(limited_voltage_v, charge_voltage_v_per_cell * self.live_cells),
            charge_voltage_v_per_cell * self.live_cells,
        )
        voltage_v = np.where(charging, charge_voltage_v, voltage_v)
        voltage_v = np.where(mode == Mode.DISCONNECTED, ocv * self.live_cells, voltage_v)

        heat_w = (
            np.square(load_a + stored_a) * resistance_ohm
            + load_a * np.maximum(ocv * self.live_cells - voltage_v, 0.0)
            + overcharge_a * voltage_v
        )

        depth_before = self.depth_of_discharge
        self._kibam_step(load_a + self_discharge_a - stored_a, dt_s)
        soc_after = self.state_of_charge()
        self.depth_of_discharge = np.where(discharging, np.maximum(depth_before, 1.0 - soc_after), 0.0)

        stress = np.where(
            charging,
            np.exp2((charge_voltage_v_per_cell - self.float_v_per_cell) / 0.1),
            1.0 + 2.0 * (1.0 - soc_after),  # sulfation while discharged
        )
        fade_pct = (
            physics.calendar_fade_pct_per_s(self.design_life_years, self.temperature_c, stress) * dt_s
            + physics.cycle_fade_pct(depth_before, self.depth_of_discharge, FADE_PCT_PER_FULL_CYCLE)
        ) * self.fade_multiplier
        self.soh_pct = np.maximum(self.soh_pct - fade_pct, 0.0)

        equilibrium_c = room_temperature_c + heat_w / self.heat_transfer_w_per_k
        self.temperature_c = physics.relax_towards(
            self.temperature_c, equilibrium_c, dt_s, self.heat_capacity_j_per_k / self.heat_transfer_w_per_k
        )
        return Terminal(voltage_v=voltage_v, current_a=charge_current_a - load_a, heat_w=heat_w)
