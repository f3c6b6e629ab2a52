"""The random thermal-runaway failure in a series string: it dries out the failed jar's whole string, whose one
current then climbs with the heat of all its jars (docs/physics.md "Runaway in a string")."""

import numpy as np
from tests.helpers import CollectingSink

from battsim.engine.failures import fail_jars
from battsim.engine.fleet import build_fleet, get_preset
from battsim.engine.world import World


def test_a_thermal_runaway_failure_takes_its_string_to_the_current_limit_and_leaves_the_others():
    world = World(build_fleet(get_preset("thailand-9x24"), 0), CollectingSink(), seed=0, interval_s=3600)
    world.run_until(3600)
    jar = world.fleet.battery_ids.index("BKK_DC1_SYS01_STR01_BAT007")
    string = world.fleet.battery_string[jar]
    before_a = world.string_current_a.copy()
    fail_jars(world, "thermal_runaway", [jar])
    world.run_until(24 * 3600)
    in_string = world.fleet.battery_string == string
    assert world.string_current_a[string] > 100 * before_a[string]
    assert world.string_current_a[string] >= 0.99 * world.bank.string_current_limit_a[string]
    assert world.bank.temperature_c[in_string].min() > 55.0
    others = np.arange(world.string_count) != string
    np.testing.assert_allclose(world.string_current_a[others], before_a[others], rtol=0.5)
    assert world.bank.temperature_c[~in_string].max() < 30.0
