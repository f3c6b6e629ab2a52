"""The analysis views every recording carries: plain SQL, so any DuckDB client can use them.

    daily_battery_summary    min, max and mean voltage, temperature and current per jar per local day
    soh_trend                state of health and resistance per jar per local day, measured beside true
    time_above_temperature   hours a jar's measured temperature spent above 25, 30, 35 and 40 °C per local day
    outage_autonomy          per outage and string: duration, minimum voltage, Ah delivered, low-voltage disconnect
    alarms                   each alarm raised, when (and whether) it cleared, and for how long it was active
    jar_string_readings      each jar's readings beside its string's channels at the same tick (string voltage,
                             Hall current, ripple current and voltage) and the true air beside the jar
    capacity_tests           each capacity test of a string: when, Ah delivered, capacity %, passed, jars replaced
    rul                      per jar and local day: days to end of life (true SOH below 80 %), ``censored`` when the
                             jar's readings end first (the run ended, or the jar was replaced before it got there)

Examples (``battsim query run.duckdb "..."``)::

    SELECT battery_id, day, max_temperature_c FROM daily_battery_summary ORDER BY max_temperature_c DESC LIMIT 5
    SELECT battery_id, first(true_soh_pct ORDER BY day) - last(true_soh_pct ORDER BY day) AS soh_lost_pct
        FROM soh_trend GROUP BY battery_id ORDER BY soh_lost_pct DESC LIMIT 10
    SELECT site_id, sum(hours_above_35c) FROM time_above_temperature GROUP BY site_id
    SELECT string_id, start, duration_s / 60 AS minutes, ah_delivered, lvd_reached FROM outage_autonomy
    SELECT rule, count(*), avg(duration_s) FROM alarms GROUP BY rule
    SELECT battery_id, day, true_soh_pct, days_to_end_of_life, censored FROM rul WHERE NOT censored LIMIT 10

"Local day" is the calendar day in the site's own time zone (``sites.timezone``), so DST days have 23
or 25 hours of readings. Sensor dropouts (NULL in ``reading_samples`` and ``readings``) are skipped by
the aggregates.

The SQL of the per-day views is written over a *samples source* so that
:class:`~battsim.recordings.recording.Recording` can narrow the scan (time, jar keys) before it
aggregates: the stored view reads the whole ``reading_samples`` table.
"""

from __future__ import annotations

import duckdb

from battsim.engine.battery import Mode
from battsim.engine.physics import END_OF_LIFE_SOH_PCT

# Thresholds of time_above_temperature: 25 °C is the rating temperature of VRLA jars; every 10 °C
# above it roughly halves their life (vrla-facts.md), so 35 °C is the usual alarm level.
TEMPERATURE_THRESHOLDS_C = (25, 30, 35, 40)

ALARM_RAISED = "alarm_raised"
ALARM_CLEARED = "alarm_cleared"

# The per-day views aggregate the stored samples by the jar's integer key and join ids to the
# per-day rows only: grouping a year of readings by string ids costs a third more.
#
# The local day of a reading. Converting each reading's time zone is most of the cost of a per-day
# view over a year, so the days are looked up instead, per site and UTC quarter-hour (every UTC
# offset and DST change in use is a multiple of 15 minutes), from a table of a few thousand rows
# made for the run's span; a reading outside that span is converted directly.
_QUARTER_US = 900_000_000
_LOCAL_DAY = "coalesce(d.day, timezone(j.timezone, r.timestamp)::DATE)"


def _per_day_prelude(db: str) -> str:
    """CTEs ``local_days`` (site, quarter-hour -> local date) and ``jars`` (key -> site, time zone)."""
    return f"""WITH local_days AS (
    SELECT z.site_key, q.range AS quarter, timezone(z.timezone, make_timestamptz(q.range * {_QUARTER_US}))::DATE AS day
    FROM {db}sites z, range((SELECT epoch_us(min(start)) // {_QUARTER_US} FROM {db}runs),
                            (SELECT epoch_us(max(coalesce("end", start))) // {_QUARTER_US} + 1 FROM {db}runs)) q
), jars AS (
    SELECT b.battery_key, z.site_key, z.timezone FROM {db}batteries b JOIN {db}sites z USING (site_id)
)"""


def _with_days(source: str) -> str:
    return (f"FROM {source} r JOIN jars j USING (battery_key) LEFT JOIN local_days d ON d.site_key = j.site_key "
            f"AND d.quarter = epoch_us(r.timestamp) // {_QUARTER_US}")


def _with_ids(db: str, columns: str = "p.* EXCLUDE (battery_key)") -> str:
    return (f"SELECT b.site_id, b.string_id, b.battery_id, {columns} "
            f"FROM per_day p JOIN {db}batteries b USING (battery_key)")


def _hours_per_sample(db: str) -> str:
    # Each sample stands for the interval before it (the tick advanced the jar over it).
    return f"((SELECT max(interval_s) FROM {db}runs) / 3600.0)"


def daily_battery_summary_sql(db: str = "", source: str | None = None) -> str:
    """``source``: the samples to summarise (default every row of ``reading_samples``)."""
    source = source or f"{db}reading_samples"
    v, t, i = "r.voltage_v", "r.temperature_c", "r.current_a"  # NULL where the monitor had none
    return f"""{_per_day_prelude(db)}, per_day AS (
    SELECT r.battery_key, {_LOCAL_DAY} AS day, count(*) AS readings,
           min({v}) AS min_voltage_v, max({v}) AS max_voltage_v, avg({v}) AS mean_voltage_v,
           min({t}) AS min_temperature_c, max({t}) AS max_temperature_c, avg({t}) AS mean_temperature_c,
           min({i}) AS min_current_a, max({i}) AS max_current_a, avg({i}) AS mean_current_a,
           avg(r.ambient_c) AS mean_ambient_c
    {_with_days(source)}
    GROUP BY ALL
)
{_with_ids(db)}"""


def soh_trend_sql(db: str = "", source: str | None = None) -> str:
    # The recording keeps the true state of health but not the true resistance, so resistance is
    # shown beside the jar's own baseline (its as-new value) instead.
    source = source or f"{db}reading_samples"
    return f"""{_per_day_prelude(db)}, per_day AS (
    SELECT r.battery_key, {_LOCAL_DAY} AS day, avg(r.soh_pct) AS soh_pct,
           avg(r.true_soh_pct) AS true_soh_pct, avg(r.internal_resistance_mohm) AS internal_resistance_mohm
    {_with_days(source)}
    GROUP BY ALL
)
{_with_ids(db, "p.day, p.soh_pct, p.true_soh_pct, p.soh_pct - p.true_soh_pct AS soh_error_pct, "
               "p.internal_resistance_mohm, b.baseline_resistance_mohm, "
               "100.0 * (p.internal_resistance_mohm / b.baseline_resistance_mohm - 1.0) AS resistance_rise_pct")}"""


def time_above_temperature_sql(db: str = "", source: str | None = None) -> str:
    source = source or f"{db}reading_samples"
    t = "r.temperature_c"
    counts = "".join(f"count_if({t} > {c}) AS above_{c}, " for c in TEMPERATURE_THRESHOLDS_C)
    hours = "".join(f"p.above_{c} * h AS hours_above_{c}c, " for c in TEMPERATURE_THRESHOLDS_C)
    # Readings are counted per day first and turned into hours after: the hours per reading must
    # not become part of the per-reading grouping.
    return f"""{_per_day_prelude(db)}, per_day AS (
    SELECT r.battery_key, {_LOCAL_DAY} AS day, count({t}) AS readings, max({t}) AS max_temperature_c,
           {counts}count_if(r.true_temperature_c > 35) AS true_above_35
    {_with_days(source)}
    GROUP BY ALL
)
{_with_ids(db, f"p.day, p.readings, p.max_temperature_c, {hours}p.true_above_35 * h AS true_hours_above_35c")},
    (SELECT {_hours_per_sample(db)} AS h)"""


def outage_autonomy_sql(db: str = "", source: str | None = None) -> str:
    """One row per outage and string, from the outage_start/outage_end events.

    Only samples taken while the string was on its batteries (mode discharge or disconnected) are
    read, which keeps this cheap on a year of readings. A string's voltage at a tick is the sum of
    its jars' measured voltages; its current the mean of theirs (the jars are in series). Ah
    delivered sums −current × interval over the discharge samples. An outage still going on when
    the recording ends has no ``end`` and ``ended`` false; its duration runs to the last reading.
    """
    source = source or f"{db}reading_samples"
    return f"""
WITH transitions AS (
    SELECT timestamp, kind, site_id, string_id, detail->>'cause' AS cause,
           lead(kind) OVER w AS next_kind, lead(timestamp) OVER w AS next_timestamp
    FROM {db}events
    WHERE kind IN ('outage_start', 'outage_end') AND string_id IS NOT NULL
    WINDOW w AS (PARTITION BY string_id ORDER BY timestamp, rowid)
), outages AS (
    SELECT site_id, string_id, cause, timestamp AS start,
           CASE WHEN next_kind = 'outage_end' THEN next_timestamp END AS "end",
           coalesce("end", (SELECT max("end") FROM {db}runs)) AS until
    FROM transitions WHERE kind = 'outage_start'
), on_battery AS (
    SELECT o.string_id, o.start, r.timestamp, r.mode,
           sum(r.voltage_v) AS string_voltage_v,
           min(r.voltage_v) AS block_voltage_v,
           avg(r.current_a) AS string_current_a
    FROM {source} r JOIN {db}batteries b USING (battery_key)
         JOIN outages o ON o.string_id = b.string_id AND r.timestamp >= o.start AND r.timestamp <= o.until
    WHERE r.mode IN ({int(Mode.DISCHARGE)}, {int(Mode.DISCONNECTED)})
    GROUP BY ALL
), per_outage AS (
    SELECT string_id, start, min(string_voltage_v) AS min_string_voltage_v,
           min(block_voltage_v) AS min_block_voltage_v,
           sum(CASE WHEN mode = {int(Mode.DISCHARGE)} THEN -string_current_a END) * {_hours_per_sample(db)}
               AS ah_delivered
    FROM on_battery GROUP BY ALL
), disconnects AS (
    SELECT o.string_id, o.start, min(e.timestamp) AS disconnected_at
    FROM outages o JOIN {db}events e ON e.kind = 'low_voltage_disconnect' AND e.string_id = o.string_id
         AND e.timestamp >= o.start AND e.timestamp <= o.until
    GROUP BY ALL
)
SELECT o.site_id, o.string_id, o.cause, o.start, o."end", o."end" IS NOT NULL AS ended,
       epoch(o.until) - epoch(o.start) AS duration_s,
       p.min_string_voltage_v, p.min_block_voltage_v, coalesce(p.ah_delivered, 0.0) AS ah_delivered,
       d.disconnected_at IS NOT NULL AS lvd_reached, d.disconnected_at,
       epoch(d.disconnected_at) - epoch(o.start) AS time_to_disconnect_s
FROM outages o LEFT JOIN per_outage p USING (string_id, start) LEFT JOIN disconnects d USING (string_id, start)
ORDER BY o.start, o.string_id"""


def alarms_sql(db: str = "") -> str:
    """Each alarm_raised event paired with the alarm_cleared that follows it for the same rule and
    subject (jar, string or site). An alarm never cleared has no ``cleared_at`` and ``active`` true."""
    return f"""
WITH transitions AS (
    SELECT timestamp, kind, site_id, string_id, battery_id, detail->>'rule' AS rule, detail,
           lead(kind) OVER w AS next_kind, lead(timestamp) OVER w AS next_timestamp,
           lead(detail) OVER w AS next_detail
    FROM {db}events
    WHERE kind IN ('{ALARM_RAISED}', '{ALARM_CLEARED}')
    WINDOW w AS (PARTITION BY detail->>'rule', site_id, string_id, battery_id ORDER BY timestamp, rowid)
)
SELECT rule, site_id, string_id, battery_id, timestamp AS raised_at,
       CASE WHEN next_kind = '{ALARM_CLEARED}' THEN next_timestamp END AS cleared_at,
       cleared_at IS NULL AS active,
       epoch(coalesce(cleared_at, (SELECT max("end") FROM {db}runs))) - epoch(timestamp) AS duration_s,
       TRY_CAST(detail->>'value' AS DOUBLE) AS value, TRY_CAST(detail->>'threshold' AS DOUBLE) AS threshold,
       detail->>'unit' AS unit, detail->>'severity' AS severity, detail->>'message' AS message,
       detail, CASE WHEN next_kind = '{ALARM_CLEARED}' THEN next_detail END AS cleared_detail
FROM transitions WHERE kind = '{ALARM_RAISED}'
ORDER BY raised_at, rule, battery_id"""


def jar_string_readings_sql(db: str = "") -> str:
    """``readings`` (by jar) joined to ``string_readings`` (by string) at the same tick."""
    return f"""
SELECT r.*, s.voltage_v AS string_voltage_v, s.current_a AS string_current_a,
       s.ripple_current_rms_a, s.ripple_voltage_rms_v, s.true_voltage_v AS true_string_voltage_v,
       s.true_current_a AS true_string_current_a, s.true_room_c + b.rack_offset_c AS true_ambient_c
FROM {db}readings r JOIN {db}strings t USING (string_id) JOIN {db}batteries b USING (battery_id)
     JOIN {db}string_readings s ON s.string_key = t.string_key AND s.timestamp = r.timestamp"""


def capacity_tests_sql(db: str = "") -> str:
    return f"""
SELECT timestamp AS ended_at, site_id, string_id, detail->>'state' AS state,
       TRY_CAST(detail->>'ah_delivered' AS DOUBLE) AS ah_delivered,
       TRY_CAST(detail->>'capacity_pct' AS DOUBLE) AS capacity_pct,
       TRY_CAST(detail->>'duration_s' AS DOUBLE) AS duration_s,
       TRY_CAST(detail->>'current_c10' AS DOUBLE) AS current_c10,
       TRY_CAST(detail->>'end_v_per_cell' AS DOUBLE) AS end_v_per_cell,
       TRY_CAST(detail->>'passed' AS BOOLEAN) AS passed, CAST(detail->'replace' AS VARCHAR[]) AS replaced
FROM {db}events WHERE kind = 'capacity_test' AND detail->>'state' IN ('completed', 'aborted')
ORDER BY ended_at, string_id"""


def rul_sql(db: str = "", source: str | None = None) -> str:
    """Per jar (battery_key: a replacement is a new jar) and local day: its true state of health, and the days
    from that day to the first local day on which its true SOH fell below 80 %; if it never did within its
    readings, the days to its last day with ``censored`` true (a lower bound)."""
    source = source or f"{db}reading_samples"
    return f"""{_per_day_prelude(db)}, per_day AS (
    SELECT r.battery_key, {_LOCAL_DAY} AS day, avg(r.true_soh_pct) AS true_soh_pct,
           min(r.true_soh_pct) AS min_true_soh_pct
    {_with_days(source)}
    GROUP BY ALL
), per_jar AS (
    SELECT battery_key, min(day) FILTER (WHERE min_true_soh_pct < {END_OF_LIFE_SOH_PCT}) AS end_of_life_day,
           max(day) AS last_day
    FROM per_day GROUP BY battery_key
), labelled AS (
    SELECT p.battery_key, p.day, p.true_soh_pct, j.end_of_life_day,
           coalesce(j.end_of_life_day, j.last_day) - p.day AS days_to_end_of_life,
           j.end_of_life_day IS NULL AS censored
    FROM per_day p JOIN per_jar j USING (battery_key)
    WHERE j.end_of_life_day IS NULL OR p.day <= j.end_of_life_day
)
SELECT b.site_id, b.string_id, b.battery_id, l.day, l.true_soh_pct, l.days_to_end_of_life, l.censored,
       l.end_of_life_day
FROM labelled l JOIN {db}batteries b USING (battery_key)
ORDER BY b.battery_id, l.day"""


_BUILDERS = {
    "daily_battery_summary": daily_battery_summary_sql,
    "soh_trend": soh_trend_sql,
    "time_above_temperature": time_above_temperature_sql,
    "outage_autonomy": outage_autonomy_sql,
    "alarms": alarms_sql,
    "jar_string_readings": jar_string_readings_sql,
    "capacity_tests": capacity_tests_sql,
    "rul": rul_sql,
}
VIEW_NAMES: tuple[str, ...] = tuple(_BUILDERS)
# Written into every recording as COMMENT ON VIEW (see the module's docstring for the columns).
VIEW_DESCRIPTIONS: dict[str, str] = {
    "daily_battery_summary": "Min, max and mean voltage, temperature and current per jar per local day",
    "soh_trend": "State of health and resistance per jar per local day, measured beside true",
    "time_above_temperature": "Hours a jar's measured temperature spent above 25, 30, 35 and 40 °C per local day",
    "outage_autonomy": "Per outage and string: duration, minimum voltage, Ah delivered, low-voltage disconnect",
    "alarms": "Each alarm raised, when (and whether) it cleared, and for how long it was active",
    "jar_string_readings": "Each jar's readings beside its string's channels at the same tick and the air beside it",
    "capacity_tests": "Each capacity test of a string: when, Ah delivered, capacity %, passed, jars replaced",
    "rul": "Per jar and local day: days to end of life (true SOH below 80 %), censored when the readings end first",
}


def view_sql(name: str, db: str = "") -> str:
    """The SELECT of view ``name``; ``db`` qualifies the tables it reads (e.g. ``'"raw".main.'``)."""
    return _BUILDERS[name](db)


def view_statements(db: str = "") -> list[str]:
    """CREATE statements of the analysis views, in the order they can be created."""
    return [f"CREATE OR REPLACE VIEW {name} AS {view_sql(name, db)}" for name in VIEW_NAMES]


def missing_views(connection: duckdb.DuckDBPyConnection, catalog: str | None = None) -> list[str]:
    present = {row[0] for row in connection.execute(
        "SELECT view_name FROM duckdb_views() WHERE database_name = coalesce(?, current_database()) AND NOT internal",
        [catalog],
    ).fetchall()}
    return [name for name in VIEW_NAMES if name not in present]


def ensure_views(connection: duckdb.DuckDBPyConnection) -> list[str]:
    """Give a recording made before these views existed its views; returns the names added.

    Needs a writable connection; a read-only file gets them in memory from
    :func:`battsim.recordings.query.attach_recording` instead.
    """
    missing = missing_views(connection)
    if missing:
        connection.begin()
        for name in missing:
            connection.execute(f"CREATE OR REPLACE VIEW {name} AS {view_sql(name)}")
        connection.commit()
    return missing
