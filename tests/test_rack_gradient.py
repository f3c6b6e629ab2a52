"""Rack temperature gradient (engine/rack.py): higher shelves and the middle of a row warmer, a string within 3 K."""

import numpy as np
import pytest
from tests.helpers import CollectingSink

from battsim.engine import rack
from battsim.engine.fleet import FleetSpec, JarSpec, SiteSpec, build_fleet, get_preset
from battsim.engine.world import World


def offsets_24() -> np.ndarray:
    return rack.jar_ambient_offset_c(np.arange(1, 25), 24)


def test_a_string_averages_the_room_and_spans_a_few_kelvin():
    offsets = offsets_24()
    assert np.mean(offsets) == pytest.approx(0.0, abs=1e-12)
    assert 1.5 <= np.ptp(offsets) <= rack.MAX_STRING_SPREAD_C - 2 * rack.LOCAL_LIMIT_C + 1e-9


def test_higher_shelves_are_warmer():
    by_shelf = offsets_24().reshape(rack.SHELVES_PER_RACK, rack.JARS_PER_SHELF)
    assert np.all(np.diff(by_shelf.mean(axis=1)) == pytest.approx(rack.VERTICAL_GRADIENT_C_PER_SHELF))
    assert np.all(by_shelf.min(axis=1)[1:] > by_shelf.min(axis=1)[:-1])


def test_the_middle_of_a_row_is_warmer_than_its_ends():
    row = offsets_24()[: rack.JARS_PER_SHELF]
    assert row[0] == pytest.approx(row[-1]) and row[1] == pytest.approx(row[-2])  # symmetric
    assert row[0] < row[1] < row[2] and row[2] == pytest.approx(row[3])
    assert row[2] - row[0] < rack.ROW_MIDDLE_WARMING_C + 1e-12


def test_short_long_and_lonely_strings():
    assert rack.jar_ambient_offset_c(np.array([1]), 1) == pytest.approx([0.0])  # a jar alone: the room's air
    four = rack.jar_ambient_offset_c(np.arange(1, 5), 4)  # one shelf: only the row effect
    assert four[0] == pytest.approx(four[3]) and four[1] > four[0]
    long = rack.jar_ambient_offset_c(np.arange(1, 401), 400)  # many racks: bounded by one rack's height
    assert np.ptp(long) <= rack.VERTICAL_GRADIENT_C_PER_SHELF * (rack.SHELVES_PER_RACK - 1) + rack.ROW_MIDDLE_WARMING_C
    # A last, partly filled shelf is a row of its own length (its ends are its own ends).
    seven = rack.jar_ambient_offset_c(np.arange(1, 8), 7)
    assert seven[6] - seven[0] == pytest.approx(rack.VERTICAL_GRADIENT_C_PER_SHELF)


def test_bad_positions_are_refused_by_name():
    with pytest.raises(ValueError, match="position_in_string must be between 1 and jars_in_string"):
        rack.jar_ambient_offset_c(np.array([0, 1]), 24)
    with pytest.raises(ValueError, match="position_in_string"):
        rack.jar_ambient_offset_c(25, 24)
    with pytest.raises(ValueError, match="jars_in_string"):
        rack.jar_ambient_offset_c(1, 0)


def test_the_fleet_offsets_every_jar_within_3_k_a_string():
    fleet = build_fleet(get_preset("thailand-full"), seed=2)
    by_string = fleet.rack_offset_c.reshape(len(fleet.string_ids), 24)
    assert np.ptp(by_string, axis=1).max() <= rack.MAX_STRING_SPREAD_C
    assert np.abs(by_string.mean(axis=1)).max() < 0.25
    # The layout shows through each jar's own air-flow offset: top shelf warmer than bottom in every string.
    assert np.all(by_string[:, 18:].mean(axis=1) > by_string[:, :6].mean(axis=1) + 1.0)
    local = by_string - offsets_24()
    assert np.abs(local).max() <= rack.LOCAL_LIMIT_C + 1e-12
    assert 0.15 < np.std(local) < 0.22


def test_the_offsets_are_deterministic_and_a_jar_keeps_its_own():
    full = build_fleet(get_preset("thailand-full"), seed=5)
    assert np.array_equal(full.rack_offset_c, build_fleet(get_preset("thailand-full"), seed=5).rack_offset_c)
    small = build_fleet(get_preset("single-string"), seed=5)
    start = full.battery_ids.index(small.battery_ids[0])
    assert np.array_equal(small.rack_offset_c, full.rack_offset_c[start:start + 24])
    other = build_fleet(get_preset("single-string"), seed=6)
    assert not np.array_equal(small.rack_offset_c, other.rack_offset_c)


def test_named_jars_each_on_their_own_string_sit_in_the_room_air():
    spec = FleetSpec(sites=[SiteSpec(site_id="LAB", jars=[JarSpec(battery_id="A"), JarSpec(battery_id="B")])])
    assert np.array_equal(build_fleet(spec, seed=1).rack_offset_c, [0.0, 0.0])


def test_jars_of_a_string_record_the_rack_gradient():
    fleet = build_fleet(get_preset("single-string"), seed=3)
    sink = CollectingSink(keep_batches=True)
    world = World(fleet, sink, seed=3, interval_s=600)
    world.run_until(2 * 86_400)
    world.flush()
    ambient = np.concatenate([b.columns["ambient_c"] for b in sink.batches]).reshape(-1, 24)
    true_c = np.concatenate([b.columns["true_temperature_c"] for b in sink.batches]).reshape(-1, 24)
    offsets = fleet.rack_offset_c - fleet.rack_offset_c.mean()
    # Since issue 15 ambient_c is the room's one probe (the same for every jar); the air beside each jar is the
    # room's true air plus its rack offset, which the jars' true temperatures follow on float.
    assert (ambient == ambient[:, :1]).all()
    last_day = true_c[-144:] - true_c[-144:].mean(axis=1, keepdims=True)
    assert np.allclose(last_day.mean(axis=0), offsets, atol=0.5) and np.corrcoef(last_day.mean(axis=0), offsets)[0, 1] > 0.9
    # Jars follow their own air: the top shelf runs warmer than the bottom on float.
    assert true_c[-1, 18:].mean() > true_c[-1, :6].mean() + 1.0
