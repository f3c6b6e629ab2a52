"""A jar on charge pulled below its OCV discharges only what it holds; empty, it passes the string current
as gassing and makes no energy from nothing (docs/physics.md §3 "Below the OCV", §4 "Runaway in a string").

The hardest case the catalogue allows: ``thermal_runaway`` at its largest dry-out on a string in a room held
at the ``high_temperature`` maximum (60 °C), the rectifier at its current limit for days.
"""

import numpy as np
import pytest
from tests.helpers import CollectingSink

from battsim.engine.fleet import build_fleet, get_preset
from battsim.engine.physics import SECONDS_PER_HOUR
from battsim.engine.world import World
from battsim.scenarios import Scenarios
from battsim.scenarios.catalogue import MAX_DRY_OUT_MULTIPLIER, HighTemperatureParams

ROOM_C = next(rule.le for rule in HighTemperatureParams.model_fields["ambient_c"].metadata if hasattr(rule, "le"))
DAYS = 3


def hot_runaway_world(dry_out_multiplier: float, ageing: bool = True) -> World:
    world = World(build_fleet(get_preset("single-string"), 0), CollectingSink(keep_batches=True), seed=0,
                  interval_s=60)
    if not ageing:  # wells of a constant size, so what they hold changes only by current
        world.bank.fade_multiplier[:] = 0.0
    scenarios = Scenarios(world)
    scenarios.apply("high_temperature", params={"ambient_c": ROOM_C})
    scenarios.apply("thermal_runaway", params={"dry_out_multiplier": dry_out_multiplier})
    return world


def steady_bound_c(bank) -> np.ndarray:
    """An empty jar on a current-held string makes I·V of heat with V below its float voltage, so it cannot
    settle above T_room + I_limit·cells·V_float/G (≈ 108 °C for the HX12-120 at 11.9 A in a 60 °C room)."""
    current_a = bank.string_current_limit_a[bank.jar_string]
    return ROOM_C + current_a * bank.cells * bank.float_v_per_cell / bank.heat_transfer_w_per_k


def test_the_room_maximum_is_60_c():
    assert ROOM_C == 60


@pytest.mark.parametrize("dry_out_multiplier", [150.0, MAX_DRY_OUT_MULTIPLIER])
def test_a_hot_runaway_string_held_at_its_limit_stays_finite_and_bounded(dry_out_multiplier):
    with np.errstate(all="raise"):
        world = hot_runaway_world(dry_out_multiplier)
        world.run_until(2 * 86_400)
        late_peak_c = np.zeros(world.bank.size)
        for hour in range(2 * 24 + 1, DAYS * 24 + 1):
            world.run_until(hour * 3600)
            late_peak_c = np.maximum(late_peak_c, world.bank.temperature_c)
        world.flush()
    bank = world.bank
    columns = {name: np.concatenate([batch.columns[name] for batch in world.sink.batches])
               for name in ("true_voltage_v", "true_temperature_c", "current_a", "soc_pct")}
    for name, values in columns.items():
        assert np.isfinite(values).all(), name
    assert world.string_current_a[0] == pytest.approx(bank.string_current_limit_a[0], rel=1e-6)
    soc = (bank.available_ah + bank.bound_ah) / bank.capacity_ah()
    assert soc.min() < 0.01  # the string has emptied jars: the case this is about
    # Empty, a jar gasses at a positive voltage (heat I·V, no reversal on charge), its temperature settled
    # under the current-limit bound; on the way the stored charge it burns adds a bounded transient.
    assert columns["true_voltage_v"].min() > 0.0
    assert (late_peak_c <= steady_bound_c(bank)).all()
    assert columns["true_temperature_c"].max() < steady_bound_c(bank).max() + 30.0


def test_a_jar_discharging_on_charge_gives_exactly_the_charge_it_held():
    world = hot_runaway_world(MAX_DRY_OUT_MULTIPLIER, ageing=False)
    bank = world.bank
    capacity_ah = bank.capacity_ah()
    into_ah = np.zeros(bank.size)
    changed_ah = np.zeros(bank.size)
    lowest_ah = np.full(bank.size, np.inf)
    step = bank.step

    def counted_step(dt_s, terminal, jar_ambient_c):
        before_ah = bank.available_ah + bank.bound_ah
        step(dt_s, terminal, jar_ambient_c)
        after_ah = bank.available_ah + bank.bound_ah
        lowest_ah[:] = np.minimum(lowest_ah, np.minimum(bank.available_ah, bank.bound_ah))
        # Charge beyond a full jar is not stored (it gasses): count the steps below full only.
        below_full = (before_ah < capacity_ah) & (after_ah < capacity_ah)
        stored_a = terminal.stored_share * terminal.main_a - terminal.self_discharge_a
        into_ah[:] += np.where(below_full, stored_a * dt_s / SECONDS_PER_HOUR, 0.0)
        changed_ah[:] += np.where(below_full, after_ah - before_ah, 0.0)

    bank.step = counted_step
    with np.errstate(all="raise"):
        world.run_until(DAYS * 86_400)
    soc = (bank.available_ah + bank.bound_ah) / capacity_ah
    assert soc.min() < 0.01
    assert lowest_ah.min() >= 0.0
    emptied = into_ah < -0.5 * capacity_ah  # jars whose main reaction delivered most of their charge
    assert emptied.sum() >= 12
    np.testing.assert_allclose(changed_ah[emptied], into_ah[emptied], rtol=0.01)
