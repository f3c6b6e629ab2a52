"""Figures of the ageing population and the rack gradient quoted in docs/physics.md §6a-6b.

    .venv/bin/python tools/ageing_figures.py

Life to end of life of 4,000 jars a profile on float at a constant temperature (the pure functions of
engine/ageing.py stepped a day at a time), resistance at end of life, the monitor's error with the
population relation on the thailand-full fleet as built, and the rack offsets of that fleet.
"""

from __future__ import annotations

import numpy as np

from battsim.engine import ageing, physics
from battsim.engine.battery import PROFILE_FADE_MULTIPLIER, PROFILE_NAMES, PROFILE_RESISTANCE_RISE
from battsim.engine.fleet import build_fleet, get_preset
from battsim.engine.models import get_model

JARS = 4000
DAY_S = 86_400.0


def years_to_end_of_life(jars: ageing.AgeingPopulation, temperature_c: float, design_life_years: float) -> np.ndarray:
    rate_pct_per_day = physics.calendar_fade_pct_per_s(design_life_years, temperature_c, 1.0) * DAY_S
    soh, years = np.full(len(jars), 100.0), np.full(len(jars), np.nan)
    day = 0
    while np.isnan(years).any():
        day += 1
        previous = soh
        soh = ageing.soh_after_fade_pct(soh, rate_pct_per_day * jars.fade_rate_multiplier, jars.knee_soh_pct)
        crossed = np.isnan(years) & (soh < physics.END_OF_LIFE_SOH_PCT)
        fraction = (previous - physics.END_OF_LIFE_SOH_PCT) / (previous - soh)
        years[crossed] = ((day - 1 + fraction) * DAY_S / physics.SECONDS_PER_YEAR)[crossed]
    return years


def main() -> None:
    model = get_model("USF12-100A")
    for profile, name in enumerate(PROFILE_NAMES):
        jars = ageing.draw_ageing_population(np.random.default_rng(7), PROFILE_FADE_MULTIPLIER[profile],
                                             PROFILE_RESISTANCE_RISE[profile], JARS)
        life = years_to_end_of_life(jars, 25.0, model.design_life_years)
        hot = years_to_end_of_life(jars, 35.0, model.design_life_years)
        at_end = ageing.resistance_ageing_factor(np.full(JARS, 80.0), jars.resistance_coupling, jars.resistance_noise)
        p5, p50, p95 = np.percentile(life, [5, 50, 95])
        r5, r50, r95 = np.percentile(at_end, [5, 50, 95])
        print(f"{name:12s} life at 25 °C median {p50:5.2f} y (5-95 %: {p5:5.2f}-{p95:5.2f}); "
              f"35/25 °C {np.median(hot / life):.3f}; R at end of life {r50:.3f} × ({r5:.3f}-{r95:.3f})")

    fleet = build_fleet(get_preset("thailand-full"), seed=1)
    population = fleet.ageing
    ratio = ageing.resistance_ageing_factor(fleet.initial_soh_pct, population.resistance_coupling,
                                            population.resistance_noise)
    error = ageing.population_soh_from_resistance_pct(ratio) - fleet.initial_soh_pct
    print(f"thailand-full seed 1 as built: SOH {np.percentile(fleet.initial_soh_pct, 5):.2f}-"
          f"{fleet.initial_soh_pct.max():.2f} %; population-relation estimate RMSE {np.sqrt(np.mean(error ** 2)):.2f} "
          f"points, by profile mean error {[round(float(error[fleet.profile == p].mean()), 2) for p in range(3)]}")
    by_string = fleet.rack_offset_c.reshape(len(fleet.string_ids), -1)
    spread = np.ptp(by_string, axis=1)
    print(f"rack offsets: {fleet.rack_offset_c.min():+.2f} to {fleet.rack_offset_c.max():+.2f} K; spread within a string "
          f"median {np.median(spread):.2f} K, max {spread.max():.2f} K; bottom shelf {by_string[:, :6].mean():+.2f} K, "
          f"top {by_string[:, 18:].mean():+.2f} K")


if __name__ == "__main__":
    main()
