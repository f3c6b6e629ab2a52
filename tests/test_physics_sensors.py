"""The battery monitor: true state plus noise and quantisation, labelled injectable faults."""

import numpy as np

from battsim.engine.readings import ReadingBuffer
from battsim.engine.sensors import BatteryMonitor, SensorFault

JARS = 6


def batch_of(ticks: int, voltage=13.5, temperature=25.0, current=0.02, resistance=4.3):
    buffer = ReadingBuffer(JARS, ticks)
    for tick in range(ticks):
        buffer.tick_view("timestamp_us")[:] = tick * 60_000_000
        buffer.tick_view("true_voltage_v")[:] = voltage
        buffer.tick_view("true_temperature_c")[:] = temperature
        buffer.tick_view("current_a")[:] = current
        buffer.tick_view("internal_resistance_mohm")[:] = resistance
        buffer.commit_tick()
    return buffer.take()


def monitor(seed=1):
    slices = [slice(0, 3), slice(3, 6)]
    rngs = [np.random.default_rng([seed, site]) for site in range(2)]
    return BatteryMonitor(slices, rngs, np.full(JARS, 4.3))


def test_measured_values_are_the_truth_plus_noise_at_the_monitor_resolution():
    batch = batch_of(500)
    monitor().measure(batch)
    columns = batch.columns
    voltage_error = columns["voltage_v"] - columns["true_voltage_v"]
    assert 0.001 < np.std(voltage_error) < 0.01 and abs(np.mean(voltage_error)) < 0.001
    assert np.allclose(columns["voltage_v"] * 1000, np.round(columns["voltage_v"] * 1000), atol=0.02)
    assert np.allclose(columns["temperature_c"] * 10, np.round(columns["temperature_c"] * 10), atol=0.01)
    assert np.allclose(columns["current_a"] * 1000, np.round(columns["current_a"] * 1000), atol=0.01)
    assert np.allclose(columns["internal_resistance_mohm"] * 100, np.round(columns["internal_resistance_mohm"] * 100),
                       atol=0.01)
    assert np.all(columns["true_voltage_v"] == np.float32(13.5))  # ground truth untouched
    assert np.all(columns["sensor_fault"] == SensorFault.NONE)


def test_faults_are_applied_and_labelled():
    sensors = monitor()
    sensors.inject(np.array([0]), SensorFault.STUCK, 0, np.array([12.9]), np.array([24.0]))
    sensors.inject(np.array([1]), SensorFault.DROPOUT, 0, np.array([0.0]), np.array([0.0]))
    sensors.inject(np.array([2]), SensorFault.DRIFT, 0, np.array([0.0]), np.array([0.0]), drift_c_per_h=1.0)
    batch = batch_of(120)
    sensors.measure(batch)
    columns = {name: column.reshape(120, JARS) for name, column in batch.columns.items()}
    assert np.allclose(columns["voltage_v"][:, 0], 12.9, atol=1e-5)  # frozen, not noisy
    assert np.all(np.isnan(columns["voltage_v"][:, 1]))
    drift = columns["temperature_c"][-1, 2] - columns["temperature_c"][0, 2]
    assert 1.5 < drift < 2.5  # 1 °C/h over two hours
    assert list(columns["sensor_fault"][0]) == [SensorFault.STUCK, SensorFault.DROPOUT, SensorFault.DRIFT, 0, 0, 0]
    assert np.all(columns["true_voltage_v"] == np.float32(13.5))


def test_measurement_does_not_depend_on_how_ticks_are_batched():
    whole = batch_of(10)
    monitor().measure(whole)
    sensors = monitor()
    first, second = batch_of(4), batch_of(6)
    second.columns["timestamp_us"][:] += 4 * 60_000_000
    sensors.measure(first)
    sensors.measure(second)
    assert np.array_equal(np.concatenate([first.columns["voltage_v"], second.columns["voltage_v"]]),
                          whole.columns["voltage_v"])


def test_the_soh_estimate_is_a_steady_trend_that_follows_the_truth():
    from battsim.engine.fleet import build_fleet, get_preset
    from battsim.engine.world import World

    class Keep:
        def __init__(self):
            self.batches = []

        def readings(self, batch):
            self.batches.append({name: column.copy() for name, column in batch.columns.items()})

        def event(self, event):
            pass

    sink = Keep()
    world = World(build_fleet(get_preset("single-string"), seed=2), sink, seed=2, interval_s=60, batch_rows=24 * 60)
    world.run_until(20 * 3600)
    world.lose_input([0], "test")  # two hours on battery: resistance rises as the jars empty
    world.run_until(22 * 3600)
    world.restore_input([0], "test")
    world.run_until(48 * 3600)
    world.flush()
    estimate = np.concatenate([b["soh_pct"] for b in sink.batches]).reshape(-1, 24)
    truth = np.concatenate([b["true_soh_pct"] for b in sink.batches]).reshape(-1, 24)
    # Ticks one minute apart never differ by more than the 0.1 % resolution: nothing for an alarm to chatter on.
    assert np.abs(np.diff(estimate, axis=0)).max() <= 0.1 + 1e-4
    # After a day of trending, the estimate is within a few points of the truth for every jar.
    assert np.abs(estimate[-1] - truth[-1]).max() < 4.0
