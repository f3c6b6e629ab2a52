"""Strings as series circuits: one current per string, jar voltages that add up to the string's.

Every string is solved at once, as numpy arrays over jars with ``np.add.reduceat`` over strings
(jars of a string are contiguous); loops here run over solver iterations, never over jars or strings.

On charge each cell follows its own characteristic (``docs/physics.md`` §3): the current it takes at
a cell voltage ``v`` is the main reaction's ``G(s)·(v − OCV(s))`` plus the oxygen cycle's
``B·exp(ln3/0.1 V · (v − V_float))``, increasing and convex in ``v``. Below its OCV the main reaction
runs backwards, discharging the cell into heat, and only as far as the cell holds charge: there its
conductance is ``G·s`` (``s`` the available well's fill), so an empty cell passes the string current as
gassing alone (the slope only steps up at the OCV, which keeps the curve convex). With a string voltage held by
the rectifier (float, equalize, the voltage phase of a boost) the unknowns are the string current
and every cell voltage: :func:`solve_charging` runs Newton's method on all of them together (the
jar equations are independent given the current, so each iteration is closed form per string). With
the current held (the current-limited phase of a boost) only the cell voltages are unknown. In
discharge the jar voltage is a closed-form function of the current and :func:`string_discharge_current_a`
finds the current at which the string delivers the load's power.
"""

from __future__ import annotations

import numpy as np

from battsim.engine.physics import LN3_PER_TRIPLING

# Newton stops when no cell voltage moved by more than this (V/cell): the error left after such an
# update is second order, (ln 3 / 0.1 V)·δ²/2 < 1e-7 V, so from the last step's solution one iteration
# usually does it. One update never moves a cell by more than the cap, which keeps the exponential in
# range from a poor starting point.
VOLTAGE_TOLERANCE_V = 1e-4
MAX_NEWTON_STEP_V = 0.1
MAX_ITERATIONS = 40
# Fixed-point iterations for the discharge current: each shrinks the error by the string's
# relative voltage drop (a few per cent), so a handful converges to far below the sensors' noise.
DISCHARGE_ITERATIONS = 6
DISCHARGE_TOLERANCE = 1e-9


def main_reaction(cell_v, ocv_v, acceptance_a_per_v, surface_soc):
    """Main-reaction current of each cell at a cell voltage (A, + charge) and its slope (A per V/cell).

    Above the OCV it charges at the acceptance ``G``; below it the reaction discharges the cell at
    ``G·s``, what the available well still holds, so an empty cell (``s`` = 0) delivers nothing and a
    step of ``dt`` draws at most ``G·ΔV·dt`` per unit of fill (docs/physics.md §3 "Below the OCV").
    The common float case (every cell above its OCV) costs one comparison.
    """
    overpotential_v = cell_v - ocv_v
    below = overpotential_v < 0.0
    if not below.any():
        return acceptance_a_per_v * overpotential_v, acceptance_a_per_v
    slope_a_per_v = np.where(below, acceptance_a_per_v * surface_soc, acceptance_a_per_v)
    return slope_a_per_v * overpotential_v, slope_a_per_v


def solve_charging(string_start, jar_string, live_cells, ocv_v, acceptance_a_per_v, surface_soc, gassing_reference_a,
                   float_v, setpoint_v, limit_a, cell_v, current_a, current_limited):
    """The current of every charging string and the voltage of every cell in it.

    ``setpoint_v`` is each string's rectifier voltage (V) and ``limit_a`` its current limit; the
    string is voltage-held while that takes no more than the limit, else current-held at the limit
    (its voltage then below the setpoint). ``cell_v``, ``current_a`` and ``current_limited`` are the
    previous solution (the start of Newton's method). Returns the new cell voltages, string currents
    and regimes, and each cell's main-reaction and gassing currents at those voltages.
    """
    current_a = current_a.copy()
    for _ in range(3):  # the regime of a string can change once in a step; a third pass confirms
        any_limited = current_limited.any()
        for _ in range(MAX_ITERATIONS):
            main_a, main_slope_a_per_v = main_reaction(cell_v, ocv_v, acceptance_a_per_v, surface_soc)
            gassing_a = gassing_reference_a * np.exp(LN3_PER_TRIPLING * (cell_v - float_v))
            excess_a = main_a + gassing_a - current_a[jar_string]
            slope_a_per_v = main_slope_a_per_v + LN3_PER_TRIPLING * gassing_a
            weight = live_cells / slope_a_per_v
            # Voltage-held strings: the current change that makes the linearised cell voltages add up
            # to the setpoint. Current-held: straight to the limit.
            shortfall_v = setpoint_v - np.add.reduceat(live_cells * cell_v, string_start)
            delta_a = (shortfall_v + np.add.reduceat(weight * excess_a, string_start)) / np.add.reduceat(weight, string_start)
            if any_limited:
                delta_a = np.where(current_limited, limit_a - current_a, delta_a)
            delta_v = np.minimum(np.maximum((delta_a[jar_string] - excess_a) / slope_a_per_v, -MAX_NEWTON_STEP_V),
                                 MAX_NEWTON_STEP_V)
            cell_v = cell_v + delta_v
            current_a += delta_a
            if np.abs(delta_v).max() < VOLTAGE_TOLERANCE_V:
                # The cells' currents at the updated voltages, to the same (second) order.
                main_a += main_slope_a_per_v * delta_v
                gassing_a += LN3_PER_TRIPLING * gassing_a * delta_v
                break
        string_v = np.add.reduceat(live_cells * cell_v, string_start)
        regime = np.where(current_limited, string_v < setpoint_v, current_a > limit_a)
        if (regime == current_limited).all():
            break
        current_limited = regime
    return cell_v, current_a, current_limited, main_a, gassing_a


def string_discharge_current_a(load_w, string_voltage_at_v, current_a):
    """Current at which each string delivers ``load_w`` at the voltage that current causes, A.

    ``string_voltage_at_v(current_a)`` gives every string's voltage at a discharge current; the
    fixed point ``I = P / V(I)`` starts from ``current_a`` (the previous step's).
    """
    for _ in range(DISCHARGE_ITERATIONS):
        updated_a = load_w / np.maximum(string_voltage_at_v(current_a), 1e-3)
        converged = np.abs(updated_a - current_a).max() <= DISCHARGE_TOLERANCE * max(float(np.abs(updated_a).max()), 1.0)
        current_a = updated_a
        if converged:
            break
    return current_a
