"""Ageing of a population of jars: per-jar rates, a knee towards end of life, loose resistance coupling.

Three pure functions and one draw, composed by the battery bank:

* :func:`soh_after_fade_pct` turns the *linear-equivalent* fade of a step (the points the published
  linear law, 20 points over the design life at 25 °C, would take; temperature and voltage stress
  already applied) into the jar's new state of health along its own trajectory: slow before the
  jar's knee, accelerating past it. The trajectory is a function of accumulated wear, so a step
  of any length is exact and two steps equal one (ageing stays independent of the time step), and
  the temperature law is untouched (wear accrues at the Arrhenius rate; only its mapping to
  capacity is bent). Every jar reaches 80 % at the same wear as the linear law, so life to end of
  life is set by the fade rate alone, and the population median stays at the profile's life.
* :func:`resistance_ageing_factor` is the jar's ohmic resistance over its new value from ageing:
  its own coupling to the capacity lost plus its own noise process (a random walk over capacity
  lost), so resistance follows capacity loosely, as in field data, not as one function.
* :func:`population_soh_from_resistance_pct` is what a monitor can do: invert the *population*
  relation (the median jar's) from a measured resistance ratio.
* :func:`population_from_normals` / :func:`draw_ageing_population` draw each jar's fade-rate
  multiplier, knee and resistance coupling and noise from standard normals that come from the
  jar's own random stream (``fleet.entity_rng(seed, jar, "ageing")``).

Distributions and their sources: ``docs/physics.md`` §11.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from battsim.engine.physics import END_OF_LIFE_SOH_PCT, RESISTANCE_RISE_AT_END_OF_LIFE

# Per-jar fade-rate multiplier: lognormal, median 1 (the profile's rate), σ(ln) 0.25, so life to
# end of life at one temperature has a coefficient of variation of about 25 % (5-95 %: 0.66-1.51 ×
# the median life). Argued, not fitted: wear-out lives of stationary lead-acid populations are
# usually described by a Weibull shape of about 4-5 (CV 0.22-0.26), and capacity tests of large
# AGM populations in controlled rooms (Cantor et al., INTELEC 1998, ~15,000 cells) show jars of
# one product and age spread from healthy to failed.
FADE_RATE_SIGMA_LN = 0.25
# Knee: the state of health past which fade accelerates. Published float-life curves of AGM blocks
# hold 90-100 % for most of the life, then fall; the knee sits at about 90 % (N(90, 2) per jar,
# kept within 85-95 %).
KNEE_SOH_MEAN_PCT = 90.0
KNEE_SOH_SIGMA_PCT = 2.0
KNEE_SOH_MIN_PCT = 85.0
KNEE_SOH_MAX_PCT = 95.0
# Past the knee the fade rate grows by the pre-knee rate for every KNEE_WIDTH_PCT points lost below
# it (capacity loss exponential in time): 6 × the pre-knee rate at 80 % for a knee at 90 %, so the
# last 10 points take about a quarter of the life, the shape of the published curves.
KNEE_WIDTH_PCT = 2.0
# Resistance coupling: each jar's rise per point of capacity lost, lognormal around the profile's
# (σ(ln) 0.2). Its own noise: a random walk over capacity lost, knots every 2 points up to 40
# points, with σ 0.08 × the new resistance at end of life (20 points). Together: resistance at end
# of life 1.45 ± 0.12 × new for healthy jars (5-95 % about 1.25-1.65; vrla-facts.md: typically
# 1.3-1.6 ×), and ohmic values that explain capacity only loosely (IEEE 1188 Annex: ohmic readings
# are a trend indicator, not a capacity measurement).
RESISTANCE_COUPLING_SIGMA_LN = 0.2
RESISTANCE_NOISE_KNOT_PCT = 2.0
RESISTANCE_NOISE_KNOTS = 21
RESISTANCE_NOISE_AT_END_OF_LIFE = 0.08

LIFE_POINTS = 100.0 - END_OF_LIFE_SOH_PCT  # 20 points of linear-equivalent wear to end of life
# Standard normals a jar draws, in this order: fade rate, knee, coupling, noise steps.
NORMALS_PER_JAR = 3 + RESISTANCE_NOISE_KNOTS - 1


@dataclass(frozen=True)
class AgeingPopulation:
    """Per-jar ageing parameters (arrays over jars; ``resistance_noise`` is [jar, knot])."""

    fade_rate_multiplier: np.ndarray  # × the calendar and cycle fade (profile included)
    knee_soh_pct: np.ndarray
    knee_wear_scale: np.ndarray  # knee_wear_scale_of(knee_soh_pct), kept: the bank needs it every tick
    resistance_coupling: np.ndarray  # × the population's resistance rise per point lost (profile included)
    resistance_noise: np.ndarray  # resistance / new added at each knot of capacity lost

    def __len__(self) -> int:
        return len(self.fade_rate_multiplier)


def population_from_normals(normals: np.ndarray, profile_fade_multiplier, profile_resistance_rise) -> AgeingPopulation:
    """Per-jar parameters from each jar's ``NORMALS_PER_JAR`` standard normals (rows of ``normals``)
    and its profile's fade multiplier and resistance rise (``battery.PROFILE_*[profile]``)."""
    normals = np.atleast_2d(np.asarray(normals, dtype=np.float64))
    if normals.shape[1] != NORMALS_PER_JAR:
        raise ValueError(f"normals must have {NORMALS_PER_JAR} columns, not {normals.shape[1]}")
    step_sigma = RESISTANCE_NOISE_AT_END_OF_LIFE / np.sqrt(LIFE_POINTS / RESISTANCE_NOISE_KNOT_PCT)
    walk = np.cumsum(normals[:, 3:] * step_sigma, axis=1)
    knee_soh_pct = np.clip(KNEE_SOH_MEAN_PCT + KNEE_SOH_SIGMA_PCT * normals[:, 1], KNEE_SOH_MIN_PCT, KNEE_SOH_MAX_PCT)
    return AgeingPopulation(
        fade_rate_multiplier=np.asarray(profile_fade_multiplier) * np.exp(FADE_RATE_SIGMA_LN * normals[:, 0]),
        knee_soh_pct=knee_soh_pct,
        knee_wear_scale=knee_wear_scale_of(knee_soh_pct),
        resistance_coupling=np.asarray(profile_resistance_rise) * np.exp(RESISTANCE_COUPLING_SIGMA_LN * normals[:, 2]),
        resistance_noise=np.concatenate([np.zeros((len(normals), 1)), walk], axis=1),
    )


def draw_ageing_population(rng: np.random.Generator, profile_fade_multiplier, profile_resistance_rise,
                           n: int) -> AgeingPopulation:
    """``n`` jars from one stream (a bench population; the fleet gives each jar its own stream)."""
    return population_from_normals(rng.standard_normal((n, NORMALS_PER_JAR)),
                                   profile_fade_multiplier, profile_resistance_rise)


def median_jar(profile_fade_multiplier, profile_resistance_rise, n: int = 1) -> AgeingPopulation:
    """``n`` jars at the population's median: the deterministic jar of the bench experiments."""
    return population_from_normals(np.zeros((n, NORMALS_PER_JAR)), profile_fade_multiplier, profile_resistance_rise)


# ------------------------------------------------------------------------------ capacity fade
def knee_wear_scale_of(knee_soh_pct):
    """Capacity points lost per point of wear before the knee, so that 20 points of wear reach 80 %."""
    knee = np.asarray(knee_soh_pct, dtype=np.float64)
    return ((100.0 - knee) + KNEE_WIDTH_PCT * np.log1p((knee - END_OF_LIFE_SOH_PCT) / KNEE_WIDTH_PCT)) / LIFE_POINTS



def wear_pct(soh_pct, knee_soh_pct):
    """Linear-equivalent points of wear a jar with this knee has accumulated at ``soh_pct``.

    Before the knee capacity falls in proportion to wear; past it the fade rate grows linearly with
    the depth below the knee, so ``knee - SOH = width · (exp(excess / width) - 1)``.
    """
    return _capacity_points(soh_pct, knee_soh_pct) / knee_wear_scale_of(knee_soh_pct)


def _capacity_points(soh_pct, knee_soh_pct):
    """Wear times the pre-knee scale: points lost before the knee plus the stretched points past it."""
    soh = np.asarray(soh_pct, dtype=np.float64)
    knee = np.asarray(knee_soh_pct, dtype=np.float64)
    past_knee = np.maximum(knee - soh, 0.0)
    return np.minimum(100.0 - soh, 100.0 - knee) + KNEE_WIDTH_PCT * np.log1p(past_knee / KNEE_WIDTH_PCT)


def soh_after_fade_pct(soh_pct, linear_fade_pct, knee_soh_pct, knee_wear_scale=None):
    """State of health after ``linear_fade_pct`` points of linear-equivalent fade, %.

    Exact for any step: the jar's wear advances by ``linear_fade_pct`` and the state of health is
    read off its trajectory, so the result is the same in one step or many. A state of health lost
    suddenly (a failure) moves the jar along its trajectory too, closer to or past its knee.
    ``knee_wear_scale`` is :func:`knee_wear_scale_of` the knees, when the caller keeps it.
    """
    knee = np.asarray(knee_soh_pct, dtype=np.float64)
    scale = knee_wear_scale_of(knee) if knee_wear_scale is None else knee_wear_scale
    # Before the knee the trajectory is straight: most jars on most steps need nothing more (this runs
    # every tick over every jar).
    after = np.asarray(soh_pct - linear_fade_pct * scale, dtype=np.float64)
    past = np.flatnonzero(after < knee)
    if past.size:
        def at_past(values):
            if np.shape(values) != after.shape:
                values = np.broadcast_to(values, after.shape)
            return np.asarray(values).ravel()[past]
        knee_past = at_past(knee)
        capacity_points = _capacity_points(at_past(soh_pct), knee_past) + at_past(linear_fade_pct) * at_past(scale)
        excess = capacity_points - (100.0 - knee_past)
        after.flat[past] = knee_past - KNEE_WIDTH_PCT * np.expm1(excess / KNEE_WIDTH_PCT)
    return after


def fade_rate_factor(soh_pct, knee_soh_pct):
    """Capacity points lost per point of wear at ``soh_pct``: the slope of the trajectory (for plots
    and tests; :func:`soh_after_fade_pct` integrates it exactly)."""
    past_knee = np.maximum(np.asarray(knee_soh_pct) - np.asarray(soh_pct), 0.0)
    return knee_wear_scale_of(knee_soh_pct) * (1.0 + past_knee / KNEE_WIDTH_PCT)


# ------------------------------------------------------------------------------- resistance
def resistance_ageing_factor(soh_pct, resistance_coupling, resistance_noise):
    """Ohmic resistance over its new value from ageing (full, 25 °C), never below 1.

    ``1 + 0.45 · coupling · lost / 20 + noise(lost)``: the population's 1.45 × at end of life scaled
    by the jar's coupling, plus its own random walk over capacity lost (``resistance_noise``, one row
    of knots per jar, interpolated), so a jar's resistance does not move while its capacity holds.
    """
    # (np.maximum and a flat take: this runs every tick over every jar.)
    lost_pct = np.maximum(100.0 - np.asarray(soh_pct, dtype=np.float64), 0.0)
    noise = np.atleast_2d(resistance_noise)
    jars, knots = noise.shape
    position = np.minimum(lost_pct * (1.0 / RESISTANCE_NOISE_KNOT_PCT), knots - 1.0)
    below = np.minimum(position.astype(np.intp), knots - 2)
    fraction = position - below
    if jars > 1:  # one row of knots per jar (else one row for all)
        below += np.arange(0, jars * knots, knots)
    flat = noise.ravel()
    low = flat.take(below)
    wander = low + (flat.take(below + 1) - low) * fraction
    coupled = (RESISTANCE_RISE_AT_END_OF_LIFE / LIFE_POINTS) * np.asarray(resistance_coupling) * lost_pct
    return np.maximum(1.0 + coupled + wander, 1.0)


def resistance_ageing_segment(soh_pct, resistance_coupling, resistance_noise):
    """The straight piece of :func:`resistance_ageing_factor` each jar is on now, for callers that
    evaluate it every step: ``(offset, slope, soh_low_pct, soh_high_pct)`` such that the factor is
    ``max(offset + slope · (100 - SOH), 1)`` for ``soh_low_pct < SOH <= soh_high_pct``.

    Between two knots of its noise walk a jar's factor is linear in capacity lost, and a jar crosses
    a knot every 2 points, so the piece holds for years of ageing (the same values up to rounding).
    """
    lost_pct = np.maximum(100.0 - np.asarray(soh_pct, dtype=np.float64), 0.0)
    noise = np.atleast_2d(resistance_noise)
    jars, knots = noise.shape
    # Knot interval of each jar; past the last knot the walk stays at its last value (a piece of its own).
    below = np.minimum((lost_pct * (1.0 / RESISTANCE_NOISE_KNOT_PCT)).astype(np.intp), knots - 1)
    last = below == knots - 1
    rows = np.arange(0, jars * knots, knots) if jars > 1 else 0
    flat = noise.ravel()
    low = flat.take(below + rows)
    rise = np.where(last, 0.0, flat.take(np.minimum(below + 1, knots - 1) + rows) - low)
    slope_per_pct = rise * (1.0 / RESISTANCE_NOISE_KNOT_PCT)
    offset = 1.0 + low - slope_per_pct * below * RESISTANCE_NOISE_KNOT_PCT
    slope = slope_per_pct + (RESISTANCE_RISE_AT_END_OF_LIFE / LIFE_POINTS) * np.asarray(resistance_coupling)
    soh_high_pct = 100.0 - below * RESISTANCE_NOISE_KNOT_PCT
    soh_low_pct = np.where(last, -np.inf, 100.0 - (below + 1) * RESISTANCE_NOISE_KNOT_PCT)
    return offset, slope, soh_low_pct, soh_high_pct


def population_soh_from_resistance_pct(resistance_ratio):
    """State of health a monitor infers from resistance / baseline (at 25 °C, full) with the
    population's relation, the median jar's ``1 + 0.45 · lost / 20``, %."""
    return 100.0 - (np.asarray(resistance_ratio) - 1.0) * LIFE_POINTS / RESISTANCE_RISE_AT_END_OF_LIFE
