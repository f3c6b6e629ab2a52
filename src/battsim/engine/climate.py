"""Outdoor climate and battery-room temperature of each site, as pure functions.

The outdoor temperature is Bangkok's monthly normal scaled and shifted per region, a daily cycle in
local *solar* time (peak at 15:00, minimum near dawn) and a day-to-day weather anomaly. The battery
room is a first-order thermal mass heated by outdoor air through the walls and by the equipment,
cooled by HVAC up to its capacity.
"""

from __future__ import annotations

import numpy as np

# Bangkok monthly mean air temperature, °C (Thai Meteorological Department normals 1991-2020,
# rounded): hot season Mar-May, rainy season Jun-Oct, cool season Nov-Feb.
BANGKOK_MONTHLY_MEAN_C = np.array([27.0, 28.3, 29.6, 30.5, 30.0, 29.4, 29.0, 28.8, 28.3, 28.1, 27.8, 26.6])
BANGKOK_ANNUAL_MEAN_C = float(BANGKOK_MONTHLY_MEAN_C.mean())
_MID_MONTH_DAY = (np.arange(12) + 0.5) * 365.25 / 12.0

# Hour of the daily maximum in solar time (typical of tropical stations).
DAILY_PEAK_SOLAR_HOUR = 15.0

# Battery room: a 7 h thermal time constant and 8 K of equipment heat above outdoor make a room
# whose HVAC fails at 24 °C climb about 2 °C/h towards 38 °C (vrla-facts.md: HVAC failure ramp).
ROOM_TIME_CONSTANT_S = 7.0 * 3600.0
EQUIPMENT_HEAT_RISE_C = 8.0
# How fast a working HVAC pulls the room back to its setpoint.
HVAC_CONTROL_TIME_CONSTANT_S = 600.0
# A healthy HVAC can hold the room this far below its uncooled equilibrium.
HVAC_CAPACITY_C = 25.0


def seasonal_mean_c(day_of_year, offset_c, seasonal_scale):
    """Monthly-normal mean temperature on a (fractional) day of the year, °C."""
    day = np.asarray(day_of_year, dtype=np.float64) % 365.25
    bangkok = np.interp(day, _MID_MONTH_DAY, BANGKOK_MONTHLY_MEAN_C, period=365.25)
    return BANGKOK_ANNUAL_MEAN_C + offset_c + seasonal_scale * (bangkok - BANGKOK_ANNUAL_MEAN_C)


def outdoor_temperature_c(unix_s, longitude_deg, offset_c, seasonal_scale, diurnal_range_c, anomaly_c):
    """Outdoor air temperature at a UTC instant (seconds since the epoch), °C, one value per site."""
    solar_hour = (np.asarray(unix_s) / 3600.0 + np.asarray(longitude_deg) / 15.0) % 24.0
    day_of_year = (np.asarray(unix_s) / 86_400.0) % 365.25
    daily = 0.5 * diurnal_range_c * np.cos(2.0 * np.pi * (solar_hour - DAILY_PEAK_SOLAR_HOUR) / 24.0)
    return seasonal_mean_c(day_of_year, offset_c, seasonal_scale) + daily + anomaly_c


def room_temperature_step_c(room_c, outdoor_c, setpoint_c, hvac_capacity_fraction, dt_s):
    """Battery-room temperature after ``dt_s`` seconds, °C.

    Without cooling the room relaxes towards ``outdoor + equipment heat``; the HVAC removes up to
    ``hvac_capacity_fraction × HVAC_CAPACITY_C`` of that rise and holds the setpoint when it can.
    """
    uncooled_c = outdoor_c + EQUIPMENT_HEAT_RISE_C
    cooling_c = np.clip(uncooled_c - setpoint_c, 0.0, hvac_capacity_fraction * HVAC_CAPACITY_C)
    target_c = uncooled_c - cooling_c
    holding = cooling_c < hvac_capacity_fraction * HVAC_CAPACITY_C
    time_constant_s = np.where(holding & (hvac_capacity_fraction > 0), HVAC_CONTROL_TIME_CONSTANT_S,
                               ROOM_TIME_CONSTANT_S)
    return target_c + (room_c - target_c) * np.exp(-dt_s / time_constant_s)
