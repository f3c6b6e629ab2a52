"""Battery physics as small pure functions over numpy arrays.

Every function takes arrays (or scalars) with the unit in the argument name and returns arrays.
Voltages are per cell unless the name says otherwise; currents are positive when charging unless the
name says ``discharge``. Rates are expressed per unit of capacity (C-rate = A / Ah) so that a block of
another size scales like a real one. Figures and their sources are in ``docs/physics.md`` and
``reference/vrla-facts.md``.
"""

from __future__ import annotations

import numpy as np

REFERENCE_TEMPERATURE_C = 25.0
KELVIN_OFFSET = 273.15
GAS_CONSTANT_J_PER_MOL_K = 8.314462618

# Float life halves for every 10 K above 25 °C (C&D; vrla-facts.md "Ageing"): an Arrhenius
# activation energy of about 53 kJ/mol gives exactly that between 25 and 35 °C.
AGEING_ACTIVATION_ENERGY_J_PER_MOL = 53_000.0

# Ageing stress doubles per 100 mV/cell away from the temperature-compensated float voltage
# (vrla-facts.md "Ageing": overcharge speeds grid corrosion, undercharge causes sulfation).
VOLTAGE_STRESS_DOUBLING_V = 0.100
VOLTAGE_STRESS_LN2_PER_V = np.log(2.0) / VOLTAGE_STRESS_DOUBLING_V
# The law is calibrated within a few hundred mV of float; a jar far outside it (reversed, or a dead
# jar driven by its string) is past the law, so its stress is held at 2^5 = 32 × instead of
# overflowing (a jar at its SOH floor in a 10-year run reached tens of volts per cell off float).
VOLTAGE_STRESS_MAX_OFFSET_V = 0.5

# Open-circuit voltage of a rested AGM cell, linear in state of charge (vrla-facts.md: full
# 2.13-2.15 V/cell, empty about 1.93-1.97 V/cell; gel table 1.96 + 0.18·SOC).
OCV_EMPTY_V_PER_CELL = 1.95
OCV_FULL_V_PER_CELL = 2.14
OCV_SPAN_V_PER_CELL = OCV_FULL_V_PER_CELL - OCV_EMPTY_V_PER_CELL

# Float current doubles per +10 °C and triples per +100 mV/cell (vrla-facts.md "Float current").
FLOAT_CURRENT_DOUBLING_C = 10.0
FLOAT_CURRENT_TRIPLING_V = 0.100
LN3_PER_TRIPLING = np.log(3.0) / FLOAT_CURRENT_TRIPLING_V

# Temperature compensation applies only between 5 and 40 °C (Narada Acme; Yuasa).
COMPENSATION_MIN_C = 5.0
COMPENSATION_MAX_C = 40.0

# Resistance at end of life (80 % capacity) is 1.3-1.6 × the new value (vrla-facts.md); 1.45 ×.
RESISTANCE_RISE_AT_END_OF_LIFE = 0.45
# End of life: capacity below 80 % of rated, when IEEE 1188 says to replace a jar; also the label of
# remaining-useful-life models (the recordings' rul view).
END_OF_LIFE_SOH_PCT = 80.0

# Electrolyte conductivity falls about 1.2 %/K below 25 °C (lead-acid, typical); floor at half.
RESISTANCE_TEMPERATURE_COEFF_PER_C = -0.012
# Ohmic resistance of a discharged block is about 40 % above that of a full one (lead sulphate in
# the plates; field impedance-vs-SOC curves of AGM blocks).
RESISTANCE_RISE_WHEN_EMPTY = 0.4

# Capacity at the 10 h rate relative to 25 °C (vrla-facts.md: -15 °C 65 %, 0 °C 86 %, 40 °C 103 %;
# the 60 °C point extends the flattening trend of the published curves). Temperature changes what
# can be *delivered*, not the charge stored: cold slows the acid's diffusion into the plates (the
# kinetic battery model's rate k) and steepens the end-of-discharge knee. KINETICS_TABLE_FACTOR
# multiplies k (and, below 1, divides the knee; warmth does not soften the knee, or a block heating
# 7 K in a 10-minute discharge would outrun the datasheet); it is fitted
# (tools/fit_discharge.py --temperature) so that a 10 h discharge delivers CAPACITY_TABLE_FACTOR of
# its 25 °C charge.
CAPACITY_TABLE_C = np.array([-15.0, 0.0, 25.0, 40.0, 60.0])
CAPACITY_TABLE_FACTOR = np.array([0.65, 0.86, 1.00, 1.03, 1.05])
KINETICS_TABLE_FACTOR = np.array([0.07007, 0.4048, 1.0, 1.44, 2.116])

# Charge acceptance of the main (sulphate-converting) reaction: a cell charging at C-rate x sits at
# OCV(s) + x·(r0 + r1·s/(1 - s)). r0 sets the constant-current voltage of a partly charged cell
# (about 2.2 V/cell at 0.1 C10 and half charge; charge curves of AGM blocks, e.g. Yuasa NP/ CSB
# application manuals), r1 how acceptance collapses towards full, which is what tapers a
# constant-voltage charge and holds a full cell on float with only its self-discharge replaced.
CHARGE_RESISTANCE_V_PER_C_RATE = 1.8
CHARGE_SATURATION_V_PER_C_RATE = 0.1
# Charge efficiency of the main reaction, 1 - L·s²: near full a growing share of the charge
# current evolves oxygen (which recombines to heat) instead of converting sulphate, so a boost
# recharge puts back about 110 % of the Ah discharged (vrla-facts.md "recharge needed": about 110 %;
# L = 0.2 gives 109-111 % for 40 min-2 h UPS outages, tests/test_conservation.py).
CHARGE_LOSS_AT_FULL = 0.2

# A cell driven past empty by the rest of its string reverses: with no active material left to
# discharge, the current electrolyses water the wrong way round (1.23 V thermodynamic plus the
# overpotentials of gassing at these rates, about 1.5 V/cell), and the whole I·V is heat.
REVERSAL_V_PER_CELL = 1.5

# Self-discharge also doubles per +10 °C (vrla-facts.md "Self-discharge"), like float current.

SECONDS_PER_HOUR = 3600.0
SECONDS_PER_YEAR = 365.25 * 86_400.0
SECONDS_PER_MONTH = SECONDS_PER_YEAR / 12.0


def arrhenius_factor(temperature_c, activation_energy_j_per_mol=AGEING_ACTIVATION_ENERGY_J_PER_MOL):
    """Rate multiplier relative to 25 °C for a process with the given activation energy."""
    temperature_k = np.asarray(temperature_c, dtype=np.float64) + KELVIN_OFFSET
    reference_k = REFERENCE_TEMPERATURE_C + KELVIN_OFFSET
    return np.exp(activation_energy_j_per_mol / GAS_CONSTANT_J_PER_MOL_K * (1.0 / reference_k - 1.0 / temperature_k))


def open_circuit_voltage_v_per_cell(soc):
    """Rested open-circuit voltage at a state of charge ``soc`` (0..1), V/cell."""
    return OCV_EMPTY_V_PER_CELL + (OCV_FULL_V_PER_CELL - OCV_EMPTY_V_PER_CELL) * np.clip(soc, 0.0, 1.0)


def compensated_charge_voltage_v_per_cell(setpoint_v_per_cell, compensation_mv_per_c, temperature_c):
    """Charger voltage after temperature compensation, clamped to the 5-40 °C window, V/cell."""
    clamped_c = np.clip(temperature_c, COMPENSATION_MIN_C, COMPENSATION_MAX_C)
    return setpoint_v_per_cell + compensation_mv_per_c * 1e-3 * (clamped_c - REFERENCE_TEMPERATURE_C)


def doubling_per_10k(temperature_c):
    """exp2((T - 25 °C) / 10 K): how float current and self-discharge scale with temperature."""
    return np.exp2((np.asarray(temperature_c) - REFERENCE_TEMPERATURE_C) / FLOAT_CURRENT_DOUBLING_C)


def float_current_a(reference_a, voltage_v_per_cell, float_v_per_cell, temperature_c, temperature_factor=None):
    """Overcharge (oxygen-recombination) current of a full cell held at a voltage, A.

    ``reference_a`` is the float current at 25 °C and ``float_v_per_cell`` (capacity × mA/Ah); the
    current doubles per +10 °C and triples per +100 mV (vrla-facts.md). ``temperature_factor`` is
    :func:`doubling_per_10k` of ``temperature_c`` when the caller already has it.
    """
    if temperature_factor is None:
        temperature_factor = doubling_per_10k(temperature_c)
    return reference_a * temperature_factor * np.exp(
        LN3_PER_TRIPLING * (np.asarray(voltage_v_per_cell) - float_v_per_cell))


def resistance_factor(soh_pct, temperature_c, soc):
    """Ohmic resistance relative to a new, full block at 25 °C.

    Rises linearly with capacity lost (1.45 × at 80 % state of health), about 1.2 %/K below 25 °C
    (falling above it, floored at half), and by 40 % towards empty.
    """
    ageing = 1.0 + RESISTANCE_RISE_AT_END_OF_LIFE * (100.0 - soh_pct) / (100.0 - END_OF_LIFE_SOH_PCT)
    temperature = np.maximum(
        1.0 + RESISTANCE_TEMPERATURE_COEFF_PER_C * (temperature_c - REFERENCE_TEMPERATURE_C), 0.5
    )
    depletion = 1.0 + RESISTANCE_RISE_WHEN_EMPTY * np.square(1.0 - soc)
    return ageing * temperature * depletion


def kinetics_temperature_factor(temperature_c):
    """Multiplier on the kinetic battery model's rate (and divisor of the discharge knee) relative to
    25 °C; fitted so the 10 h capacity is 86 % at 0 °C and 103 % at 40 °C (vrla-facts.md)."""
    return np.interp(temperature_c, CAPACITY_TABLE_C, KINETICS_TABLE_FACTOR)


def kibam_step(available_ah, bound_ah, capacity_ah, available_fraction, rate_per_h, current_a, dt_s):
    """The kinetic battery model's exact step for a constant current (``current_a`` + charge) over ``dt_s``.

    Manwell & McGowan 1993: with ``k'`` = ``rate_per_h``, ``e = exp(-k't)`` and ``r = (k't - 1 + e)/k'``,
    ``A' = A·e + (A+B)·c·(1-e) + I·[(1-e)/k' + c·r]`` and ``B' = B·e + (A+B)·(1-c)·(1-e) + I·(1-c)·r``.
    The wells are bounded by their size: charge beyond a full well is not stored (the caller counts
    it as gassing), charge drawn from an empty one is not there (the cell reverses).
    """
    c = available_fraction
    t_h = dt_s / SECONDS_PER_HOUR
    decay = np.exp(-rate_per_h * t_h)
    ramp = (rate_per_h * t_h - 1.0 + decay) / rate_per_h
    total_ah = available_ah + bound_ah
    well_ah = capacity_ah * c
    available = available_ah * decay + total_ah * c * (1.0 - decay) + current_a * ((1.0 - decay) / rate_per_h + c * ramp)
    bound = bound_ah * decay + total_ah * (1.0 - c) * (1.0 - decay) + current_a * (1.0 - c) * ramp
    # (np.minimum/np.maximum: np.clip's Python wrapper costs more than the arithmetic here.)
    return (np.maximum(np.minimum(available, well_ah), 0.0),
            np.maximum(np.minimum(bound, capacity_ah - well_ah), 0.0))


def charge_acceptance_a_per_v(rated_capacity_ah, surface_soc):
    """Conductance of the main charge reaction of a cell, A per V/cell: C10 / (r0 + r1·s/(1-s))."""
    saturation = surface_soc / np.maximum(1.0 - surface_soc, 1e-9)
    return rated_capacity_ah / (CHARGE_RESISTANCE_V_PER_C_RATE + CHARGE_SATURATION_V_PER_C_RATE * saturation)


def charge_efficiency(surface_soc):
    """Share of the main charge current that is stored, 1 - 0.2·s² (the rest gasses and recombines)."""
    return 1.0 - CHARGE_LOSS_AT_FULL * np.square(surface_soc)


def rate_reference_ah(rated_capacity_ah, rate_capability):
    """The capacity a cell's current density is measured against, Ah: C10 × its rate capability.

    The overpotential and the knee grow with the current per unit of plate area, not per Ah: a
    high-rate block packs more, thinner plates into each Ah, so at the same C-rate its plates carry
    ``1 / rate_capability`` of the current density of the USF12-100A the constants were fitted on
    (rate capability 1). Fitted from a block's own discharge table (``battsim lab fit``).
    """
    return np.asarray(rated_capacity_ah) * rate_capability


def discharge_voltage_v_per_cell(current_a, surface_soc, ocv_v_per_cell, resistance_ohm, cells, rated_capacity_ah,
                                 tafel_v_per_cell, tafel_reference_c_rate, depletion_v_per_cell):
    """Cell voltage while delivering ``current_a`` (positive), V/cell: OCV, ohmic drop, overpotential and the
    knee; past empty the cell reverses, to about -1.5 V/cell plus its ohmic drop. ``rated_capacity_ah`` is
    what the rate is taken against: :func:`rate_reference_ah` (C10 × rate capability)."""
    c_rate = current_a / rated_capacity_ah
    ohmic_v = current_a * resistance_ohm / cells
    discharging = (ocv_v_per_cell - ohmic_v
                   - discharge_overpotential_v_per_cell(c_rate, tafel_v_per_cell, tafel_reference_c_rate)
                   - depletion_overpotential_v_per_cell(c_rate, surface_soc, depletion_v_per_cell))
    return np.maximum(discharging, -REVERSAL_V_PER_CELL - ohmic_v)


def heat_w(cells, main_a, gassing_a, stored_share, cell_v, ocv_v_per_cell):
    """Heat made in a block, W: the main reaction's current loses (V - OCV) on what it stores and all of
    V on what it gasses (charging; ``stored_share`` = efficiency) or (OCV - V) delivering (``main_a`` < 0,
    share 1); the gassing (oxygen-recombination) current's whole power is heat."""
    return cells * (main_a * (cell_v - stored_share * ocv_v_per_cell) + gassing_a * cell_v)


def thermal_step_c(temperature_c, room_temperature_c, heat_w, heat_transfer_w_per_k, thermal_decay):
    """Exact first-order step of a block towards the air plus its own heat, °C; ``thermal_decay`` is
    ``exp(-dt/τ)`` for the step's length and the block's time constant ``τ = C_th / G``."""
    equilibrium_c = room_temperature_c + heat_w / heat_transfer_w_per_k
    return equilibrium_c + (temperature_c - equilibrium_c) * thermal_decay


def discharge_overpotential_v_per_cell(c_rate, tafel_v_per_cell, reference_c_rate):
    """Activation and concentration overpotential of a cell delivering ``c_rate`` (A per Ah of C10), V/cell.

    A Tafel-like ``b · ln(1 + I/I0)``: linear at trickle rates, logarithmic at UPS rates, which is
    what lets one set of constants follow the datasheet from the 20 h to the 10 min rate.
    """
    return tafel_v_per_cell * np.log1p(c_rate / reference_c_rate)


def depletion_overpotential_v_per_cell(c_rate, surface_soc, depletion_v_per_cell):
    """The knee at the end of discharge: acid next to the plates runs out, V/cell.

    Proportional to the rate and to how empty the available (surface) charge is, diverging as it
    empties, so the cut-off arrives within minutes of the available well running dry.
    """
    return depletion_v_per_cell * c_rate * (1.0 / np.maximum(surface_soc, 1e-3) - 1.0)


def ageing_acceleration(temperature_c, voltage_offset_v_per_cell=0.0):
    """Calendar-ageing rate relative to 25 °C on the compensated float voltage.

    The Arrhenius factor of the temperature times a voltage stress that doubles per 100 mV/cell
    away from the compensated float voltage (above: grid corrosion; below: sulfation; vrla-facts.md
    "Ageing"), computed as one exponential.
    """
    temperature_k = np.asarray(temperature_c, dtype=np.float64) + KELVIN_OFFSET
    exponent = AGEING_ACTIVATION_ENERGY_J_PER_MOL / GAS_CONSTANT_J_PER_MOL_K * (
        1.0 / (REFERENCE_TEMPERATURE_C + KELVIN_OFFSET) - 1.0 / temperature_k)
    offset_v = np.minimum(np.abs(voltage_offset_v_per_cell), VOLTAGE_STRESS_MAX_OFFSET_V)
    return np.exp(exponent + VOLTAGE_STRESS_LN2_PER_V * offset_v)


def calendar_fade_pct_per_s(design_life_years, temperature_c, stress_factor):
    """Loss of state of health on float, percentage points per second.

    A block loses 20 points (to end of life at 80 %) over its design life at 25 °C; the rate follows
    the Arrhenius factor of the *instantaneous* temperature, so integrating it over time weights
    hot hours correctly (vrla-facts.md: integrate the rate, do not average the temperature).
    """
    base = (100.0 - END_OF_LIFE_SOH_PCT) / (np.asarray(design_life_years) * SECONDS_PER_YEAR)
    return base * arrhenius_factor(temperature_c) * stress_factor


def cycle_fade_pct(depth_of_discharge_before, depth_of_discharge_after, fade_pct_per_full_cycle):
    """State of health lost while the depth of discharge deepens from one value to another.

    A cycle to depth D costs ``fade_pct_per_full_cycle · D²`` (vrla-facts.md: roughly with depth of
    discharge squared). Charging it as the increment of D² makes it independent of the time step.
    """
    before = np.clip(depth_of_discharge_before, 0.0, 1.0)
    after = np.clip(depth_of_discharge_after, 0.0, 1.0)
    return fade_pct_per_full_cycle * np.maximum(np.square(after) - np.square(before), 0.0)


def self_discharge_fraction_per_s(self_discharge_pct_per_month, temperature_c, temperature_factor=None):
    """Open-circuit self-discharge, fraction of capacity per second; doubles per +10 °C
    (``temperature_factor``: :func:`doubling_per_10k` of ``temperature_c`` if already computed)."""
    if temperature_factor is None:
        temperature_factor = doubling_per_10k(temperature_c)
    return np.asarray(self_discharge_pct_per_month) / 100.0 / SECONDS_PER_MONTH * temperature_factor
