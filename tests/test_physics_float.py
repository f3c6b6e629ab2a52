"""Charge voltages, open-circuit voltage, float current and self-discharge against vrla-facts.md."""

import numpy as np
import pytest

from battsim.engine import lab, physics
from battsim.engine.battery import Mode
from battsim.engine.models import get_model

MODEL = get_model("USF12-100A")


def float_v(temperature_c: float) -> float:
    return lab.float_charge(MODEL, temperature_c, hours=2).voltage_v_per_cell


def test_float_voltage_at_25_c():
    assert float_v(25.0) == pytest.approx(2.25, abs=0.02)


def test_float_compensation_is_about_minus_3_mv_per_c_per_cell_between_5_and_40_c():
    slope_mv_per_c = (float_v(35.0) - float_v(15.0)) / 20.0 * 1e3
    assert -4.0 <= slope_mv_per_c <= -2.0


def test_no_compensation_outside_5_to_40_c():
    assert float_v(45.0) == pytest.approx(float_v(40.0), abs=1e-4)
    assert float_v(0.0) == pytest.approx(float_v(5.0), abs=1e-4)
    assert float_v(40.0) < float_v(30.0)


def test_boost_voltage_of_a_full_jar():
    bank = lab.bench(MODEL)
    terminal = bank.advance(60.0, np.full(1, Mode.BOOST, dtype=np.uint8), np.zeros(1), np.full(1, 25.0))
    assert terminal.voltage_v[0] / MODEL.cells == pytest.approx(2.35, abs=0.05)


def rested_ocv_v_per_cell(bank, hours: float) -> float:
    mode = np.full(bank.size, Mode.DISCONNECTED, dtype=np.uint8)
    for _ in range(int(hours * 60)):
        terminal = bank.advance(60.0, mode, np.zeros(bank.size), np.full(bank.size, 25.0))
    return float(terminal.voltage_v[0] / MODEL.cells)


def test_rested_ocv_full():
    assert 2.12 <= rested_ocv_v_per_cell(lab.bench(MODEL), 5) <= 2.16


def test_rested_ocv_empty_after_a_full_discharge_and_5_h_rest():
    """vrla-facts.md: a 100 Ah AGM block reads 11.55 V (1.925 V/cell) 5 h after a full discharge."""
    bank = lab.bench(MODEL)
    mode = np.full(1, Mode.DISCHARGE, dtype=np.uint8)
    current = np.full(1, MODEL.capacity_ah_c10 / 10.0)
    while bank.discharge_voltage_v(current)[0] > 1.75 * MODEL.cells:
        bank.advance(30.0, mode, current, np.full(1, 25.0))
    ocv = rested_ocv_v_per_cell(bank, 5)
    assert 1.90 <= ocv <= 1.98
    # The rest recovers the voltage: the bound charge flows back into the available well.
    assert ocv > 1.75 + 0.1


def test_float_current_at_25_c_and_its_rise_at_35_c():
    at_25 = lab.float_charge(MODEL, 25.0, voltage_v_per_cell=2.25)
    at_35 = lab.float_charge(MODEL, 35.0, voltage_v_per_cell=2.25)
    assert 0.05 <= at_25.float_current_ma_per_ah <= 1.0
    assert 1.6 <= at_35.float_current_a / at_25.float_current_a <= 2.3
    # A healthy jar on float sits within a fraction of a degree of the room (vrla-facts: < 3 °C).
    assert at_25.battery_temperature_c - 25.0 < 0.5


def test_float_current_triples_per_100_mv():
    low = lab.float_charge(MODEL, 25.0, voltage_v_per_cell=2.25, hours=2).float_current_a
    high = lab.float_charge(MODEL, 25.0, voltage_v_per_cell=2.35, hours=2).float_current_a
    assert 2.4 <= high / low <= 3.3


def self_discharge_pct_per_month(temperature_c: float) -> float:
    bank = lab.bench(MODEL, temperature_c=temperature_c)
    mode = np.full(1, Mode.DISCONNECTED, dtype=np.uint8)
    month_s = physics.SECONDS_PER_MONTH
    for _ in range(30):
        bank.advance(month_s / 30, mode, np.zeros(1), np.full(1, temperature_c))
    return (1.0 - float(bank.state_of_charge()[0])) * 100.0


def test_self_discharge_on_open_circuit_and_its_doubling_per_10_c():
    at_25 = self_discharge_pct_per_month(25.0)
    assert 1.0 <= at_25 <= 5.0
    assert 1.7 <= self_discharge_pct_per_month(35.0) / at_25 <= 2.3
    assert 1.7 <= at_25 / self_discharge_pct_per_month(15.0) <= 2.3
