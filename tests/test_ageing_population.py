"""Ageing of a population (engine/ageing.py): per-jar fade rates, a knee towards end of life, resistance
coupled loosely and per jar, and the monitor's estimate from the population relation."""

import numpy as np
import pytest
from tests.helpers import CollectingSink

from battsim.engine import ageing, lab, physics
from battsim.engine.battery import PROFILE_FADE_MULTIPLIER, PROFILE_NAMES, PROFILE_RESISTANCE_RISE
from battsim.engine.fleet import build_fleet, get_preset
from battsim.engine.models import get_model
from battsim.engine.readings import ReadingBuffer
from battsim.engine.sensors import BatteryMonitor
from battsim.engine.world import World

MODEL = get_model("USF12-100A")
DAY_S = 86_400.0


def population(profile: int, n: int = 4000, seed: int = 7) -> ageing.AgeingPopulation:
    return ageing.draw_ageing_population(np.random.default_rng(seed), PROFILE_FADE_MULTIPLIER[profile],
                                         PROFILE_RESISTANCE_RISE[profile], n)


def years_to_end_of_life(jars: ageing.AgeingPopulation, temperature_c: float, design_life_years: float,
                         step_s: float = 7 * DAY_S) -> np.ndarray:
    """Step the state of health of every jar on float at a constant temperature until it passes 80 %."""
    rate_pct_per_s = physics.calendar_fade_pct_per_s(design_life_years, temperature_c, 1.0) * jars.fade_rate_multiplier
    soh, years = np.full(len(jars), 100.0), np.full(len(jars), np.nan)
    for step in range(1, 2000):
        previous, soh = soh, ageing.soh_after_fade_pct(soh, rate_pct_per_s * step_s, jars.knee_soh_pct)
        crossed = np.isnan(years) & (soh < physics.END_OF_LIFE_SOH_PCT)
        fraction = (previous - physics.END_OF_LIFE_SOH_PCT) / (previous - soh)
        years[crossed] = ((step - 1 + fraction) * step_s / physics.SECONDS_PER_YEAR)[crossed]
        if not np.isnan(years).any():
            return years
    raise AssertionError("some jars never reached end of life")


# ------------------------------------------------------------------------------ trajectory
def test_a_step_of_any_length_is_exact():
    knee = np.array([85.0, 88.0, 90.0, 93.0, 95.0])
    one_step = ageing.soh_after_fade_pct(99.0, 17.0, knee)
    many = np.full(5, 99.0)
    for _ in range(1700):
        many = ageing.soh_after_fade_pct(many, 0.01, knee)
    assert many == pytest.approx(one_step, abs=1e-9)


def test_every_knee_reaches_end_of_life_at_the_wear_of_the_linear_law():
    knees = np.linspace(ageing.KNEE_SOH_MIN_PCT, ageing.KNEE_SOH_MAX_PCT, 11)
    assert ageing.soh_after_fade_pct(100.0, ageing.LIFE_POINTS, knees) == pytest.approx(80.0, abs=1e-9)
    assert ageing.wear_pct(np.array([100.0, 80.0]), 90.0) == pytest.approx([0.0, ageing.LIFE_POINTS])


def test_capacity_fade_has_a_knee():
    wear = np.linspace(0.0, 26.0, 2601)
    soh = ageing.soh_after_fade_pct(100.0, wear, 90.0)
    assert np.all(np.diff(soh) < 0)  # always losing
    rate = ageing.fade_rate_factor(soh, 90.0)
    before = soh > 90.0
    assert np.ptp(rate[before]) < 1e-12  # straight before the knee
    assert np.all(np.diff(rate[~before]) > 0)  # accelerating after it
    assert ageing.fade_rate_factor(80.0, 90.0) == pytest.approx(6.0 * ageing.fade_rate_factor(95.0, 90.0))
    # The last ten points to end of life take about a quarter of the life, not half as a straight line would.
    wear_at_knee = float(np.interp(-90.0, -soh, wear))
    assert 0.2 < (ageing.LIFE_POINTS - wear_at_knee) / ageing.LIFE_POINTS < 0.35
    # Past end of life the jar goes on falling fast but finitely (no cliff to zero): 80 to 60 % in 5-20 % of its life.
    wear_to_60 = float(ageing.wear_pct(60.0, 90.0)) - ageing.LIFE_POINTS
    assert 0.05 < wear_to_60 / ageing.LIFE_POINTS < 0.2


def test_a_sudden_loss_moves_a_jar_along_its_trajectory():
    """A jar that lost ten points to sulfation near its knee fades faster from then on."""
    fresh = 95.0 - ageing.soh_after_fade_pct(95.0, 1.0, 90.0)
    sulfated = 85.0 - ageing.soh_after_fade_pct(85.0, 1.0, 90.0)
    assert sulfated > 2.0 * fresh


# -------------------------------------------------------------------------------- population
def test_fade_rate_and_knee_distributions():
    jars = population(0, n=20_000)
    log_rate = np.log(jars.fade_rate_multiplier)
    assert np.median(jars.fade_rate_multiplier) == pytest.approx(1.0, abs=0.01)
    assert np.std(log_rate) == pytest.approx(ageing.FADE_RATE_SIGMA_LN, rel=0.03)
    assert jars.knee_soh_pct.min() >= ageing.KNEE_SOH_MIN_PCT and jars.knee_soh_pct.max() <= ageing.KNEE_SOH_MAX_PCT
    assert np.mean(jars.knee_soh_pct) == pytest.approx(ageing.KNEE_SOH_MEAN_PCT, abs=0.1)
    assert 1.5 < np.std(jars.knee_soh_pct) < 2.1
    # Rate and knee are drawn independently: the knee says nothing about how fast the jar ages.
    assert abs(np.corrcoef(log_rate, jars.knee_soh_pct)[0, 1]) < 0.03


@pytest.mark.parametrize("profile", [0, 1, 2])
def test_median_life_by_profile_stays_at_the_lab_life(profile):
    """The population median at 25 °C stays within a few % of `battsim lab life` (9.95 / 3.98 / 1.53 years)."""
    jars = population(profile, n=2000)
    years = years_to_end_of_life(jars, 25.0, MODEL.design_life_years, step_s=DAY_S * (7 if profile == 0 else 2))
    bench_years = lab.life(MODEL, 25.0, PROFILE_NAMES[profile]).years_to_eol
    assert np.median(years) == pytest.approx(bench_years, rel=0.03)
    # ... and the jars of one model and profile now spread: the middle 90 % span a factor of about 2.
    p5, p95 = np.percentile(years, [5, 95])
    assert 1.8 < p95 / p5 < 2.6


def test_life_still_halves_per_10_k():
    jars = population(0, n=500)
    ratio = years_to_end_of_life(jars, 35.0, 10.0) / years_to_end_of_life(jars, 25.0, 10.0)
    assert ratio == pytest.approx(0.5, abs=0.01)


def test_draws_depend_only_on_the_normals():
    rng_a, rng_b = np.random.default_rng(3), np.random.default_rng(3)
    a = ageing.draw_ageing_population(rng_a, 1.0, 1.0, 10)
    b = ageing.population_from_normals(rng_b.standard_normal((10, ageing.NORMALS_PER_JAR)), 1.0, 1.0)
    assert np.array_equal(a.fade_rate_multiplier, b.fade_rate_multiplier)
    assert np.array_equal(a.resistance_noise, b.resistance_noise)
    with pytest.raises(ValueError, match="normals must have"):
        ageing.population_from_normals(np.zeros((2, 3)), 1.0, 1.0)


# -------------------------------------------------------------------------------- resistance
def test_the_median_jar_keeps_the_published_relation():
    median = ageing.median_jar(1.0, 1.0)
    assert ageing.resistance_ageing_factor(80.0, median.resistance_coupling, median.resistance_noise)[0] == (
        pytest.approx(1.0 + physics.RESISTANCE_RISE_AT_END_OF_LIFE))
    soh = np.linspace(75.0, 100.0, 26)
    factor = ageing.resistance_ageing_factor(soh, np.ones(26), np.zeros((1, ageing.RESISTANCE_NOISE_KNOTS)))
    assert ageing.population_soh_from_resistance_pct(factor) == pytest.approx(soh)


def test_resistance_at_end_of_life_spreads_within_the_published_band():
    jars = population(0, n=20_000)
    at_end = ageing.resistance_ageing_factor(np.full(len(jars), 80.0), jars.resistance_coupling, jars.resistance_noise)
    assert np.median(at_end) == pytest.approx(1.45, abs=0.01)
    assert 0.09 < np.std(at_end) < 0.15
    p5, p95 = np.percentile(at_end, [5, 95])
    assert 1.2 < p5 < 1.3 and 1.6 < p95 < 1.7  # vrla-facts.md: typically 1.3-1.6 ×
    assert at_end.min() >= 1.0


def test_resistance_follows_capacity_loosely():
    jars = population(0, n=5000)
    lost_pct = np.random.default_rng(11).uniform(0.0, 20.0, len(jars))
    factor = ageing.resistance_ageing_factor(100.0 - lost_pct, jars.resistance_coupling, jars.resistance_noise)
    correlation = np.corrcoef(lost_pct, factor)[0, 1]
    assert 0.6 < correlation < 0.95  # related, not one function
    # A jar whose capacity holds keeps its resistance: the noise is a process over capacity lost, not time.
    again = ageing.resistance_ageing_factor(100.0 - lost_pct, jars.resistance_coupling, jars.resistance_noise)
    assert np.array_equal(factor, again)
    # Accelerated and failing jars raise resistance faster per point lost (grid corrosion, dry-out).
    medians = [np.median(population(p, n=4000).resistance_coupling) for p in range(3)]
    assert medians == pytest.approx(list(PROFILE_RESISTANCE_RISE), rel=0.03)


def test_the_population_relation_misjudges_each_jar_as_a_real_monitor_does():
    """The fleet at its start (up to 3 years old): SOH inferred from each jar's true resistance with the
    population relation. Today's generator is its exact inverse (RMSE 0.035 points, noise only)."""
    fleet = build_fleet(get_preset("thailand-full"), seed=1)
    jars = fleet.ageing
    ratio = ageing.resistance_ageing_factor(fleet.initial_soh_pct, jars.resistance_coupling, jars.resistance_noise)
    error = ageing.population_soh_from_resistance_pct(ratio) - fleet.initial_soh_pct
    rmse = float(np.sqrt(np.mean(np.square(error))))
    assert 0.5 < rmse < 3.0
    # Failing jars' resistance has risen faster than the population's: the monitor thinks them older.
    failing = fleet.profile == 2
    assert np.mean(error[failing]) < np.mean(error[fleet.profile == 0]) - 0.5


def test_the_monitor_estimates_with_the_population_relation():
    jars, ticks = 3, 2
    buffer = ReadingBuffer(jars, ticks)
    ratio = np.array([1.0, 1.2, 1.45])
    for tick in range(ticks):
        buffer.tick_view("timestamp_us")[:] = tick * 60_000_000
        buffer.tick_view("true_voltage_v")[:] = 13.5
        buffer.tick_view("true_temperature_c")[:] = 25.0
        buffer.tick_view("current_a")[:] = 0.02
        buffer.tick_view("internal_resistance_mohm")[:] = 4.0 * ratio
        buffer.tick_view("mode")[:] = 0
        buffer.commit_tick()
    batch = buffer.take()
    # The monitor adds its own noise; the first reading sets the trend, so its estimate is the relation
    # applied to what it measured.
    BatteryMonitor([slice(0, jars)], [np.random.default_rng(0)], np.full(jars, 4.0)).measure(batch)
    measured = batch.columns["internal_resistance_mohm"].reshape(ticks, jars)
    temperature = batch.columns["temperature_c"].reshape(ticks, jars)
    corrected = measured[0] / (1.0 + physics.RESISTANCE_TEMPERATURE_COEFF_PER_C * (temperature[0] - 25.0))
    expected = ageing.population_soh_from_resistance_pct(corrected / 4.0)
    assert batch.columns["soh_pct"].reshape(ticks, jars)[0] == pytest.approx(np.clip(expected, 0, 100), abs=0.06)
    assert batch.columns["soh_pct"][2] == pytest.approx(80.0, abs=1.5)


# ------------------------------------------------------------------------------ after wiring
def test_a_year_of_the_full_fleet_ages_jars_of_one_model_and_profile_differently():
    fleet = build_fleet(get_preset("thailand-9x24"), seed=4)
    world = World(fleet, CollectingSink(), seed=4, interval_s=3600)
    start_soh = world.bank.soh_pct.copy()
    world.run_until(365.25 * DAY_S)
    lost = start_soh - world.bank.soh_pct
    same = (fleet.profile == 0) & (fleet.battery_model == 0) & (start_soh > 95.0)
    # Today 0.6-1.2 points a year within one model and profile; now the per-jar rates spread it.
    assert np.std(np.log(lost[same])) > 0.15
    assert np.median(world.bank.resistance_mohm() / world.bank.new_resistance_mohm) > 1.0
