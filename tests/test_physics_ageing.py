"""Ageing against vrla-facts.md: life vs temperature, resistance at end of life, profiles, and
independence from the time step."""

import numpy as np
import pytest

from battsim.engine import lab, physics
from battsim.engine.battery import Mode
from battsim.engine.fleet import build_fleet, get_preset
from battsim.engine.models import get_model
from battsim.engine.world import World

MODEL = get_model("USF12-100A")


@pytest.fixture(scope="module")
def life_at_25():
    return lab.life(MODEL, 25.0)


def test_design_life_at_25_c(life_at_25):
    assert life_at_25.years_to_eol == pytest.approx(MODEL.design_life_years, rel=0.05)


def test_life_at_35_and_45_c_relative_to_25_c(life_at_25):
    assert 0.35 <= lab.life(MODEL, 35.0).years_to_eol / life_at_25.years_to_eol <= 0.55
    assert 0.12 <= lab.life(MODEL, 45.0).years_to_eol / life_at_25.years_to_eol <= 0.30


def test_resistance_at_end_of_life(life_at_25):
    assert 1.3 <= life_at_25.resistance_at_eol_x <= 1.6


def test_profiles_age_faster_and_raise_resistance_faster_within_the_published_band(life_at_25):
    accelerated = lab.life(MODEL, 25.0, "accelerated")
    failing = lab.life(MODEL, 25.0, "failing")
    assert failing.years_to_eol < accelerated.years_to_eol < 0.5 * life_at_25.years_to_eol
    assert 1.0 < failing.years_to_eol < 2.5  # not the original's 100 × too fast
    assert life_at_25.resistance_at_eol_x < accelerated.resistance_at_eol_x < failing.resistance_at_eol_x <= 1.6


def test_hot_hours_weigh_more_than_their_average():
    """Integrate the rate, do not average the temperature: 12 h at 35 °C + 12 h at 15 °C ages faster than 25 °C."""
    def soh_after_a_year(temperatures):
        bank = lab.bench(MODEL)
        mode = np.zeros(1, dtype=np.uint8)
        for _ in range(365):
            for room in temperatures:
                bank.advance(86_400 / len(temperatures), mode, np.zeros(1), np.full(1, room))
        return 100.0 - bank.soh_pct[0]
    assert soh_after_a_year([35.0, 15.0]) > 1.1 * soh_after_a_year([25.0])


def year_of_days(dt_s: float) -> float:
    """State of health lost in a year of seasonal and daily temperature cycles with a 40-minute
    outage and a boost recharge once a week: one jar per day of the year, advanced side by side
    (ageing adds up day by day, so the sum over the jars is the year's loss)."""
    days = 365
    bank = lab.bench(MODEL, jars=days)
    day_start_s = np.arange(days) * 86_400.0
    outage_day = np.arange(days) % 7 == 2
    for step in range(int(86_400 / dt_s)):
        t = step * dt_s
        room = (27.0 + 4.0 * np.sin(2 * np.pi * (day_start_s + t) / physics.SECONDS_PER_YEAR)
                + 3.0 * np.sin(2 * np.pi * t / 86_400))
        hour = t / 3600.0
        today = Mode.DISCHARGE if 2.0 <= hour < 2.0 + 40 / 60 else Mode.BOOST if 2.0 + 40 / 60 <= hour < 14.0 else Mode.FLOAT
        mode = np.where(outage_day, today, Mode.FLOAT).astype(np.uint8)
        bank.advance(dt_s, mode, np.full(days, 30.0), room)
    return float(np.sum(100.0 - bank.soh_pct))


def test_a_year_ends_at_the_same_state_of_health_at_10_60_and_300_s_steps():
    lost = {dt: year_of_days(dt) for dt in (10.0, 60.0, 300.0)}
    assert 1.0 < lost[60.0] < 5.0
    assert max(lost.values()) - min(lost.values()) < 0.5, lost


def test_the_world_ages_jars_alike_at_10_60_and_300_s_intervals():
    class Discard:
        def readings(self, batch): pass
        def event(self, event): pass

    soh = {}
    for interval_s in (10, 60, 300):
        world = World(build_fleet(get_preset("single-string"), seed=3), Discard(), seed=3, interval_s=interval_s)
        world.lose_input([0], "test")
        world.run_until(3600)
        world.restore_input([0], "test")
        world.run_until(86_400)
        soh[interval_s] = world.bank.soh_pct.copy()
    assert np.max(np.abs(soh[10] - soh[300])) < 0.01
    assert np.max(np.abs(soh[10] - soh[60])) < 0.01
