"""A report of a recording: PNG charts and an ``index.html`` with the headline figures.

    battsim report year.duckdb --out year-report/

Charts: block voltage, current and temperature per string over time (one panel per site; the line
is the mean of the string's jars, the band their minimum to maximum), state of health per jar,
outage autonomy, and the alarm timeline. Everything is aggregated in DuckDB; Python only receives
a few thousand points per string, so a year of the full fleet (a billion readings) is two scans
of the file.
"""

from __future__ import annotations

import html
import math
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure

from battsim.engine.physics import END_OF_LIFE_SOH_PCT
from battsim.recordings.format import reading
from battsim.recordings.outputs import OutputError, discard, staging_path
from battsim.recordings.query import spill_privately

HOT_C = 35  # the operators' alarm level (vrla-facts.md)
# Points per string line: enough to see a day's cycle in a week, few enough to draw fast. State
# of health changes slowly, and there is a line per jar, so it gets fewer.
TARGET_POINTS = 1000
SOH_TARGET_POINTS = 200
BUCKETS_S = (60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86_400, 7 * 86_400)


@dataclass
class Report:
    out: Path
    charts: list[Path]
    index: Path
    headline: dict[str, str]
    wall_s: float
    timings_s: dict[str, float] = field(default_factory=dict)
    summary: dict[str, str] = field(default_factory=dict)


def bucket_seconds(span_s: float, interval_s: int, points: int = TARGET_POINTS) -> int:
    """The smallest bucket, the interval itself or one of :data:`BUCKETS_S` above it, giving at most ``points``."""
    for bucket in sorted({interval_s} | {b for b in BUCKETS_S if b > interval_s}):
        if span_s / bucket <= points:
            return bucket
    return BUCKETS_S[-1]


def write_report(recording: str | Path, out: str | Path) -> Report:
    began = time.perf_counter()
    out = Path(out)
    timings: dict[str, float] = {}
    # The recording is checked and read in full before ``out`` is touched; a damaged block names the file.
    with reading([recording]), spill_privately([recording]) as connection:
        run = _run(connection)
        span_s = max((run["end"] - run["start"]).total_seconds(), run["interval_s"])
        bucket_s = bucket_seconds(span_s, run["interval_s"])
        step = time.perf_counter()
        strings = _string_series(connection, bucket_s)
        timings["strings_scan_s"] = time.perf_counter() - step
        step = time.perf_counter()
        soh = _soh_series(connection, run, max(bucket_seconds(span_s, run["interval_s"], SOH_TARGET_POINTS), 3600))
        timings["soh_scan_s"] = time.perf_counter() - step
        step = time.perf_counter()
        outages = _fetch(connection, "SELECT * FROM outage_autonomy")
        alarms = _fetch(connection, "SELECT rule, severity, site_id, string_id, battery_id, raised_at, cleared_at, duration_s "
                                     "FROM alarms")
        events = dict(connection.execute("SELECT kind, count(*) FROM events GROUP BY kind ORDER BY kind").fetchall())
        sites = [row[0] for row in connection.execute("SELECT site_id FROM sites ORDER BY site_key").fetchall()]
        worst = _worst_strings(connection)
        timings["views_s"] = time.perf_counter() - step

    step = time.perf_counter()
    staged = staging_path(out)
    try:
        staged.mkdir()
        charts = _charts(staged, strings, sites, soh, outages, alarms, run)
        timings["charts_s"] = time.perf_counter() - step
        headline = _headline(run, strings, soh, outages, alarms, events, bucket_s)
        summary = _summary(headline, outages, alarms, worst)
        (staged / "index.html").write_text(_html(run, summary, headline, events, charts, Path(recording).name),
                                           encoding="utf-8")
        _publish(staged, out)
    except OSError as error:
        raise OutputError(f"cannot write {out} ({error.strerror or error})") from None
    finally:
        discard(staged)
    return Report(out, [out / chart.name for chart in charts], out / "index.html", headline,
                  time.perf_counter() - began, timings, summary)


def _publish(staged: Path, out: Path) -> None:
    """Move a finished report into ``out``: the directory itself if it is new, else file by file (other
    files already in ``out`` stay)."""
    if not out.exists():
        os.rename(staged, out)
        return
    for path in staged.iterdir():
        os.replace(path, out / path.name)


def _charts(out: Path, strings: dict, sites: list[str], soh: dict, outages: dict, alarms: dict, run: dict) -> list[Path]:
    return [
        _series_chart(out / "voltage.png", strings, sites, "voltage", "Block voltage, V", "Jar voltage per string"),
        _series_chart(out / "current.png", strings, sites, "current", "Current, A (+ charge, − discharge)",
                      "Current per string"),
        _series_chart(out / "temperature.png", strings, sites, "temperature", "Jar temperature, °C",
                      "Jar temperature per string", hline=HOT_C),
        _soh_chart(out / "soh.png", soh, sites),
        _outage_chart(out / "outage_autonomy.png", outages),
        _alarm_chart(out / "alarms.png", alarms, outages, run),
    ]


# ------------------------------------------------------------------------------------ data
def _fetch(connection: duckdb.DuckDBPyConnection, query: str) -> dict[str, np.ndarray]:
    cursor = connection.execute(query)
    names = [d[0] for d in cursor.description]
    rows = cursor.fetchall()
    return {name: np.array([row[i] for row in rows], dtype=object) for i, name in enumerate(names)}


def _run(connection: duckdb.DuckDBPyConnection) -> dict:
    row = connection.execute(
        'SELECT id, seed, preset, start, coalesce("end", start), interval_s, status, readings, version, '
        "(SELECT count(*) FROM sites), (SELECT count(DISTINCT string_id) FROM batteries), "
        "(SELECT count(*) FROM batteries) FROM runs"
    ).fetchone()
    keys = ("id", "seed", "preset", "start", "end", "interval_s", "status", "readings", "version", "sites", "strings",
            "jars")
    run = dict(zip(keys, row))
    if run["status"] == "running":  # we could open it, so its writer is gone
        run["status"] = "incomplete"
    return run


# Each chart is one pass over the readings, grouped by small integer keys (a string's rank, a jar's
# key) and an integer time bucket, with names joined only to the few thousand result rows: this is
# what keeps a year of the full fleet fast (per-row string keys or time-zone conversions are not).
def _string_series(connection: duckdb.DuckDBPyConnection, bucket_s: int) -> dict[str, np.ndarray]:
    """Per string and time bucket: mean, min and max of the jars' voltage, current and temperature."""
    aggregates = []
    for name, column in (("voltage", "voltage_v"), ("current", "current_a"), ("temperature", "temperature_c")):
        value = f"r.{column}"
        aggregates += [f"avg({value}) AS {name}_mean", f"min({value}) AS {name}_min", f"max({value}) AS {name}_max"]
    query = f"""
        WITH strings AS (SELECT battery_key, dense_rank() OVER (ORDER BY string_id)::USMALLINT AS string_rank,
                                string_id, site_id FROM batteries),
        buckets AS (
            SELECT k.string_rank, epoch_us(r.timestamp) // {bucket_s * 1_000_000} AS bucket, {', '.join(aggregates)},
                   count_if(r.temperature_c > {HOT_C}) AS hot_readings
            FROM reading_samples r JOIN strings k USING (battery_key) GROUP BY ALL)
        SELECT n.site_id, n.string_id, b.bucket * {bucket_s} AS t, b.* EXCLUDE (string_rank, bucket),
               b.hot_readings * (SELECT max(interval_s) FROM runs) / 3600.0 AS hot_jar_hours
        FROM buckets b JOIN (SELECT DISTINCT string_rank, string_id, site_id FROM strings) n USING (string_rank)
        ORDER BY n.string_id, t"""
    return _columns(connection.execute(query).fetchnumpy())


def _soh_series(connection: duckdb.DuckDBPyConnection, run: dict, step_s: int) -> dict[str, np.ndarray]:
    """Each jar's true state of health at ticks ``step_s`` apart, and the monitor's mean estimate over
    the last step (``soh_pct``, on the last row of each jar).

    State of health changes over weeks, so sampled ticks draw it faithfully; each tick is found
    through the timestamp's zone maps, so this costs the same for a day as for a year.
    """
    interval_s = run["interval_s"]
    step_s = max(1, step_s // interval_s) * interval_s
    ticks = int((run["end"] - run["start"]).total_seconds() // step_s) + 1
    moments = [run["start"] + timedelta(seconds=k * step_s) for k in range(ticks)]
    if moments[-1] < run["end"]:
        moments.append(run["end"])
    points = " UNION ALL ".join(
        "SELECT battery_key, timestamp, true_soh_pct FROM reading_samples "
        f"WHERE timestamp = '{moment.isoformat()}'::TIMESTAMPTZ" for moment in moments
    )
    query = f"""
        WITH measured AS (
            SELECT battery_key, avg(soh_pct) AS soh_pct
            FROM reading_samples WHERE timestamp > '{moments[-2 if len(moments) > 1 else -1].isoformat()}'::TIMESTAMPTZ
            GROUP BY battery_key),
        sampled AS ({points})
        SELECT j.site_id, j.battery_id, epoch_us(p.timestamp) // 1000000 AS t, p.true_soh_pct,
               CASE WHEN p.timestamp = max(p.timestamp) OVER (PARTITION BY p.battery_key) THEN m.soh_pct END AS soh_pct
        FROM sampled p JOIN batteries j USING (battery_key) LEFT JOIN measured m USING (battery_key)
        ORDER BY j.battery_id, t"""
    return _columns(connection.execute(query).fetchnumpy())


def _columns(arrays: dict) -> dict[str, np.ndarray]:
    columns = {name: np.asarray(values) for name, values in arrays.items()}
    if "t" in columns:
        columns["t"] = columns["t"].astype("int64").astype("datetime64[s]")
    return columns


def _groups(keys: np.ndarray) -> list[tuple[str, slice]]:
    """(key, rows) of each run of equal keys in a sorted column."""
    if len(keys) == 0:
        return []
    starts = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))
    ends = np.append(starts[1:], len(keys))
    return [(str(keys[a]), slice(int(a), int(b))) for a, b in zip(starts, ends)]


# ------------------------------------------------------------------------------------ charts
def _site_grid(title: str, count: int) -> tuple[Figure, list]:
    columns = min(3, max(1, count))
    rows = math.ceil(count / columns)
    figure = Figure(figsize=(max(9.0, 5.2 * columns), 2.9 * rows + 0.8), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False, sharex=True).ravel()
    for extra in axes[count:]:
        extra.set_visible(False)
    figure.suptitle(title)
    for ax in axes[:count]:
        _date_axis(ax)
    return figure, list(axes[:count])


def _date_axis(ax) -> None:
    locator = AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))


def _series_chart(path: Path, data: dict, sites: list[str], quantity: str, ylabel: str, title: str,
                  hline: float | None = None) -> Path:
    figure, axes = _site_grid(f"{title} (UTC; lines: mean of each string's jars; band: the site's lowest to "
                              "highest jar)", max(len(sites), 1))
    panel = {site: axes[i] for i, site in enumerate(sites)}
    for site, ax in panel.items():
        # One band per site: a band per string would pile up into a smear on a site of nine strings.
        mine = data["site_id"] == site
        if mine.any():
            order = np.argsort(data["t"][mine], kind="stable")
            t = data["t"][mine][order]
            moments, first = np.unique(t, return_index=True)
            low = np.fmin.reduceat(data[f"{quantity}_min"][mine][order].astype(float), first)
            high = np.fmax.reduceat(data[f"{quantity}_max"][mine][order].astype(float), first)
            ax.fill_between(moments, low, high, color="0.85", linewidth=0)
    for string_id, rows in _groups(data["string_id"]):
        ax = panel[str(data["site_id"][rows.start])]
        ax.plot(data["t"][rows], data[f"{quantity}_mean"][rows].astype(float), linewidth=0.8,
                label=string_id.rsplit("_", 1)[-1])
    for site, ax in panel.items():
        ax.set_title(site, fontsize=9)
        ax.set_ylabel(ylabel, fontsize=8)
        ax.tick_params(labelsize=7)
        if hline is not None:
            ax.axhline(hline, color="red", linewidth=0.8, linestyle="--")
        if ax.get_lines() and len(ax.get_lines()) <= 12:
            ax.legend(fontsize=6, ncols=3, loc="upper left")
    figure.savefig(path, dpi=90)
    return path


def _soh_chart(path: Path, data: dict, sites: list[str]) -> Path:
    figure, axes = _site_grid("State of health per jar (lines: true; dots: the monitor's estimate at the end)",
                              max(len(sites), 1))
    panel = {site: axes[i] for i, site in enumerate(sites)}
    segments: dict[str, list] = {site: [] for site in sites}
    colors: dict[str, list] = {site: [] for site in sites}
    ends: dict[str, list] = {site: [] for site in sites}
    t_num = data["t"].astype("datetime64[s]").astype("int64") / 86_400.0  # matplotlib's date unit: days
    for _, rows in _groups(data["battery_id"]):
        site = str(data["site_id"][rows.start])
        true = data["true_soh_pct"][rows].astype(float)
        segments[site].append(np.column_stack([t_num[rows], true]))
        colors[site].append("tab:red" if true[-1] < END_OF_LIFE_SOH_PCT else "tab:blue")
        ends[site].append((t_num[rows.stop - 1], float(data["soh_pct"][rows.stop - 1])))
    for site, ax in panel.items():
        if segments[site]:
            ax.add_collection(LineCollection(segments[site], colors=colors[site], linewidths=0.5, alpha=0.6))
            ax.scatter(*np.array(ends[site]).T, s=3, color="0.35", zorder=3)
            ax.autoscale_view()
        ax.axhline(END_OF_LIFE_SOH_PCT, color="red", linewidth=0.8, linestyle="--")
        ax.set_title(site, fontsize=9)
        ax.set_ylabel("State of health, %", fontsize=8)
        ax.tick_params(labelsize=7)
    figure.savefig(path, dpi=90)
    return path


def _message(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=11, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


def autonomy_points(outages: dict) -> dict[str, np.ndarray]:
    """One point per row of ``outage_autonomy``: the string, the outage's duration and the string's autonomy
    in it, in minutes. A string that held to the end ran at least the outage's length (its autonomy is the
    duration, a lower bound); one that hit low-voltage disconnect ran ``time_to_disconnect_s``."""
    lvd = outages["lvd_reached"].astype(bool)
    duration_min = outages["duration_s"].astype(float) / 60.0
    to_disconnect = np.array([np.nan if t is None else float(t) for t in outages["time_to_disconnect_s"]], dtype=float)
    return {
        "string_id": outages["string_id"].astype(str),
        "duration_min": duration_min,
        "autonomy_min": np.where(lvd, to_disconnect / 60.0, duration_min),
        "lvd": lvd,
        "min_block_voltage_v": outages["min_block_voltage_v"].astype(float),
    }


def _outage_chart(path: Path, outages: dict) -> Path:
    """One row per string, one mark per outage at its duration; a disconnect is a red cross at the
    string's autonomy with a line on to the outage's end (the load it dropped). The outages of a string
    sit side by side in its row, in order, so a fleet of equal outages does not collapse into one dot."""
    points = autonomy_points(outages)
    strings = sorted(set(points["string_id"]))
    figure = Figure(figsize=(9, 1.6 + 0.32 * max(len(strings), 3)), layout="constrained")
    ax = figure.subplots()
    ax.set_title("Autonomy per string in each outage (circle: held to the end, colour: lowest block voltage; "
                 "red ×: low-voltage disconnect)", fontsize=9)
    if not strings:
        _message(ax, "no outages in this recording")
        figure.savefig(path, dpi=90)
        return path
    row = {string_id: i for i, string_id in enumerate(strings)}
    y = np.array([row[s] for s in points["string_id"]], dtype=float)
    for string_id in strings:  # spread a string's outages over its row, in the view's (start) order
        mine = np.flatnonzero(points["string_id"] == string_id)
        y[mine] += np.linspace(-0.3, 0.3, len(mine)) if len(mine) > 1 else 0.0
    held, lvd = ~points["lvd"], points["lvd"]
    if held.any():
        dots = ax.scatter(points["duration_min"][held], y[held], c=points["min_block_voltage_v"][held], cmap="viridis",
                          s=16, edgecolors="0.2", linewidths=0.3)
        figure.colorbar(dots, ax=ax, label="Lowest block voltage, V", shrink=0.8)
    if lvd.any():
        ax.hlines(y[lvd], points["autonomy_min"][lvd], points["duration_min"][lvd], color="tab:red", linewidth=0.8)
        ax.scatter(points["autonomy_min"][lvd], y[lvd], s=28, color="tab:red", marker="x", zorder=3,
                   label="low-voltage disconnect (line: to the outage's end)")
        ax.legend(fontsize=7, loc="lower right")
    ax.set_yticks(range(len(strings)), strings, fontsize=7)
    ax.set_ylim(-0.6, len(strings) - 0.4)
    ax.invert_yaxis()
    ax.set_xlim(0, max(float(np.nanmax(points["duration_min"])), 1.0) * 1.05)
    ax.set_xlabel("Outage duration (circles) and autonomy to disconnect (×), minutes")
    ax.grid(axis="x", color="0.9")
    figure.savefig(path, dpi=90)
    return path


SEVERITIES = ("critical", "warning", "info")  # the rules' severities, worst first (alarms view, detail->>'severity')


def alarm_bin_seconds(span_s: float) -> int:
    """Bins for the alarm counts: a few dozen over the run (an hour for a day, three hours for a week, a week for a year)."""
    return bucket_seconds(span_s, 3600, points=60)


def alarm_counts(alarms: dict, start: datetime, end: datetime,
                 bin_s: int) -> tuple[np.ndarray, dict[tuple[str, str], np.ndarray]]:
    """Alarms raised per ``bin_s`` bin from ``start``, per (severity, rule): the bins' left edges (UTC) and
    the counts. An alarm counts once, in the bin where it was raised."""
    bins = max(1, math.ceil((end - start).total_seconds() / bin_s))
    edges = _as_utc(start) + np.arange(bins) * np.timedelta64(bin_s, "s")
    counts: dict[tuple[str, str], np.ndarray] = {}
    if len(alarms["rule"]):
        index = np.array([int((raised - start).total_seconds() // bin_s) for raised in alarms["raised_at"]])
        index = np.clip(index, 0, bins - 1)
        keys = [(str(severity or "unspecified"), str(rule)) for severity, rule in zip(alarms["severity"], alarms["rule"])]
        for key in sorted(set(keys), key=lambda k: (_severity_rank(k[0]), k[1])):
            chosen = np.array([k == key for k in keys])
            counts[key] = np.bincount(index[chosen], minlength=bins)
    return edges, counts


def _severity_rank(severity: str) -> int:
    return SEVERITIES.index(severity) if severity in SEVERITIES else len(SEVERITIES)


def _alarm_chart(path: Path, alarms: dict, outages: dict, run: dict) -> Path:
    """Alarms raised over time: a panel per severity, stacked bars per rule; grid outages shaded."""
    bin_s = alarm_bin_seconds((run["end"] - run["start"]).total_seconds())
    edges, counts = alarm_counts(alarms, run["start"], run["end"], bin_s)
    severities = sorted({severity for severity, _ in counts}, key=_severity_rank) or ["none"]
    figure = Figure(figsize=(10, 0.8 + 2.3 * len(severities)), layout="constrained")
    axes = figure.subplots(len(severities), 1, squeeze=False, sharex=True).ravel()
    figure.suptitle(f"Alarms raised per {_duration(bin_s)} (UTC), by severity and rule; grey: grid outages", fontsize=10)
    rules = sorted({rule for _, rule in counts})
    colors = {rule: f"C{i % 10}" for i, rule in enumerate(rules)}  # one colour per rule in every panel
    left = edges.astype("int64") / 86_400.0
    width = bin_s / 86_400.0
    outage_spans = sorted({(_as_utc(s), _as_utc(e if e is not None else run["end"]))
                           for s, e in zip(outages["start"], outages["end"])})
    for ax, severity in zip(axes, severities):
        for begin, finish in outage_spans:
            ax.axvspan(begin.astype("int64") / 86_400.0, finish.astype("int64") / 86_400.0, color="0.92", linewidth=0)
        bottom = np.zeros(len(edges))
        for (level, rule), count in counts.items():
            if level == severity:
                ax.bar(left, count, width=width * 0.9, bottom=bottom, align="edge", label=rule, color=colors[rule])
                bottom += count
        ax.set_title(severity, fontsize=9, loc="left")
        ax.set_ylabel("Alarms raised", fontsize=8)
        ax.tick_params(labelsize=7)
        if counts:
            ax.legend(fontsize=7, loc="upper right")
        _date_axis(ax)
    if not counts:
        axes[0].text(0.5, 0.5, "no alarms in this recording", ha="center", va="center", transform=axes[0].transAxes,
                     color="0.4")
    axes[-1].set_xlim(left[0], _as_utc(run["end"]).astype("int64") / 86_400.0)
    figure.savefig(path, dpi=90)
    return path


def _duration(seconds: int) -> str:
    for unit, size in (("week", 7 * 86_400), ("day", 86_400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            n = seconds // size
            return unit if n == 1 else f"{n} {unit}s"
    return f"{seconds} s"


def _as_utc(moment: datetime) -> np.datetime64:
    return np.datetime64(int(moment.timestamp()), "s")


# ------------------------------------------------------------------------------------ figures
def _headline(run: dict, strings: dict, soh: dict, outages: dict, alarms: dict, events: dict,
              bucket_s: int) -> dict[str, str]:
    figures = {
        "Readings": f"{run['readings']:,}",
        "Fleet": f"{_count(run['sites'], 'site')}, {_count(run['strings'], 'string')}, {_count(run['jars'], 'jar')}",
        "Span": f"{run['start'].astimezone(UTC):%Y-%m-%d %H:%M} → "
                f"{run['end'].astimezone(UTC):%Y-%m-%d %H:%M} UTC "
                f"({(run['end'] - run['start']).total_seconds() / 86_400:.1f} days, every {run['interval_s']} s)",
        "Status": run["status"],
    }
    if len(strings["string_id"]):
        hottest = int(np.nanargmax(strings["temperature_max"]))
        figures["Hottest jar reading"] = (f"{strings['temperature_max'][hottest]:.1f} °C on "
                                          f"{strings['string_id'][hottest]} (within {bucket_s // 60} min of "
                                          f"{strings['t'][hottest].astype(datetime):%Y-%m-%d %H:%M} UTC)")
        figures[f"Jar-hours above {HOT_C} °C"] = f"{float(np.nansum(strings['hot_jar_hours'])):,.1f}"
    if len(soh["battery_id"]):
        first, last = _first_last(soh)
        figures["True state of health, fleet mean"] = f"{np.mean(first):.2f} % → {np.mean(last):.2f} %"
        figures[f"Jars below {END_OF_LIFE_SOH_PCT:.0f} % (true) at the end"] = (
            f"{int(np.sum(last < END_OF_LIFE_SOH_PCT))} of {len(last)}")
    count = len(outages["string_id"])
    figures["Outages (string × outage)"] = str(count)
    if count:
        duration_h = outages["duration_s"].astype(float) / 3600.0
        lvd = outages["lvd_reached"].astype(bool)
        figures["Outage hours, total / longest"] = f"{duration_h.sum():.1f} h / {duration_h.max():.2f} h"
        figures["Low-voltage disconnects"] = f"{int(lvd.sum())}"
        if lvd.any():
            shortest = np.min(outages["time_to_disconnect_s"][lvd].astype(float)) / 60.0
            figures["Shortest autonomy (to disconnect)"] = f"{shortest:.0f} min"
        figures["Most charge delivered in one outage"] = f"{np.max(outages['ah_delivered'].astype(float)):.1f} Ah"
    raised = len(alarms["rule"])
    figures["Alarms raised"] = str(raised)
    if raised:
        rules, counts = np.unique(alarms["rule"].astype(str), return_counts=True)
        figures["Alarms by rule"] = ", ".join(f"{r}: {c}" for r, c in zip(rules, counts))
        figures["Alarms still active at the end"] = str(int(sum(c is None for c in alarms["cleared_at"])))
    return figures


WORST_STRINGS = 3


def _worst_strings(connection: duckdb.DuckDBPyConnection) -> list[tuple]:
    """The strings with the lowest true state of health (their weakest jar) at the last reading: (string_id,
    weakest jar's true SOH %, the string's mean true SOH %). A string is as good as its weakest jar."""
    return connection.execute(f"""
        SELECT b.string_id, min(r.true_soh_pct), avg(r.true_soh_pct)
        FROM reading_samples r JOIN batteries b USING (battery_key)
        WHERE r.timestamp = (SELECT max(timestamp) FROM reading_samples)
        GROUP BY b.string_id ORDER BY 2, 1 LIMIT {WORST_STRINGS}""").fetchall()


def _summary(headline: dict[str, str], outages: dict, alarms: dict, worst: list[tuple]) -> dict[str, str]:
    """The table ``index.html`` opens with: fleet, span, readings, outages, alarms, worst strings."""
    count = len(outages["string_id"])
    lvd = int(outages["lvd_reached"].astype(bool).sum()) if count else 0
    distinct = len({(s, e) for s, e in zip(outages["start"], outages["end"])})
    severities, per_severity = np.unique(np.array([str(s) for s in alarms["severity"]], dtype=str), return_counts=True)
    by_severity = ", ".join(f"{n:,} {s}" for s, n in sorted(zip(severities, per_severity), key=lambda p: _severity_rank(p[0])))
    disconnects = {}
    for string_id, reached in zip(outages["string_id"], outages["lvd_reached"]):
        disconnects[str(string_id)] = disconnects.get(str(string_id), 0) + int(bool(reached))
    return {
        "Fleet": headline["Fleet"],
        "Span": headline["Span"],
        "Readings": headline["Readings"],
        "Outages": f"{distinct} grid outages, {count} string outages, {lvd} low-voltage disconnects",
        "Alarms": f"{len(alarms['rule']):,} raised" + (f" ({by_severity})" if len(alarms["rule"]) else ""),
        "Worst strings": "; ".join(
            f"{string_id}: weakest jar {weakest:.1f} %, mean {mean:.1f} % SOH, "
            f"{_count(disconnects.get(string_id, 0), 'disconnect')}" for string_id, weakest, mean in worst) or "none",
    }


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _first_last(soh: dict) -> tuple[np.ndarray, np.ndarray]:
    groups = _groups(soh["battery_id"])
    true = soh["true_soh_pct"].astype(float)
    return (np.array([true[rows.start] for _, rows in groups]), np.array([true[rows.stop - 1] for _, rows in groups]))


def _table(figures: dict[str, str]) -> str:
    return "\n".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in figures.items())


def _html(run: dict, summary: dict[str, str], headline: dict[str, str], events: dict, charts: list[Path],
          name: str) -> str:
    rows = _table(headline)
    kinds = "".join(f"<li>{html.escape(k)}: {v:,}</li>" for k, v in events.items()) or "<li>none</li>"
    images = "\n".join(
        f'<figure><img src="{c.name}" alt="{html.escape(c.stem)}"><figcaption>{html.escape(c.stem)}</figcaption>'
        "</figure>" for c in charts
    )
    title = f"battsim report: {name}"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1600px; color: #222; }}
table {{ border-collapse: collapse; margin-bottom: 1.5em; }}
th, td {{ text-align: left; padding: .25em 1em .25em 0; border-bottom: 1px solid #ddd; vertical-align: top; }}
img {{ max-width: 100%; border: 1px solid #eee; }} figure {{ margin: 0 0 2em 0; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<h2>Summary</h2>
<table id="summary">
{_table(summary)}
</table>
<p>Run <code>{html.escape(str(run['id']))}</code>, preset {html.escape(str(run['preset']))}, seed {run['seed']},
battsim {html.escape(str(run['version']))}. Generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC.</p>
<h2>Headline figures</h2>
<table>
{rows}
</table>
<h2>Events</h2><ul>{kinds}</ul>
<h2>Charts</h2>
{images}
</body></html>
"""
