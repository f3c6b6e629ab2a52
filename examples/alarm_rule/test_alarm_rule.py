"""The discharge alarm against the shipped daily-outage timeline (14:00-16:00 Bangkok time every day).

    pytest examples/alarm_rule                          # the plugin comes with battsim
    pytest examples/alarm_rule --battsim-update-golden  # after an intended change to the simulation
"""

from datetime import time
from zoneinfo import ZoneInfo

import polars as pl
from alarm_rule import DischargeAlarm

from battsim.testing import virtual_time

BANGKOK = ZoneInfo("Asia/Bangkok")
TWO_DAYS = dict(preset="single-string", days=2, timeline="daily-outage", seed=42, random_outages=False)


def test_the_recording_is_the_golden_one(battsim_recording, battsim_golden):
    battsim_golden(battsim_recording(**TWO_DAYS))  # fails with battsim diff's summary if the simulation changed


def test_every_jar_discharges_from_the_first_tick_after_14_00_bangkok_each_day(battsim_recording):
    readings = battsim_recording(**TWO_DAYS).readings(columns=["timestamp", "battery_id", "mode"]).collect()
    first = (readings.filter(pl.col("mode") == "discharge")
             .with_columns(pl.col("timestamp").dt.convert_time_zone("Asia/Bangkok").alias("local"))
             .group_by(pl.col("local").dt.date().alias("day"), "battery_id").agg(pl.col("local").min().dt.time()))
    # The grid fails at 14:00; the 14:00 reading closes the minute before it, so 14:01 is the first on battery.
    assert first.height == 2 * 24 and set(first["local"]) == {time(14, 1)}


def test_the_alarm_is_raised_ten_minutes_into_each_outage(battsim_recording):
    rule = DischargeAlarm()
    with virtual_time(battsim_recording(**TWO_DAYS)) as frames:  # datetime.now() is each frame's instant
        for frame in frames:
            rule.update(frame.readings)
    assert len(rule.raised) == 2 * 24
    assert {at.astimezone(BANGKOK).time() for _, at in rule.raised} == {time(14, 11)}  # 10 min after 14:01
