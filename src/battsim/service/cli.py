"""The ``battsim`` command line: a thin edge that parses flags and calls the core.

Bad input is refused before anything runs, with a message naming the flag and what is allowed,
and exit code 2.
"""

from __future__ import annotations

from contextlib import ExitStack
from datetime import datetime, timedelta
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from battsim.engine.fleet import PRESETS, FleetFileError, with_sites
from battsim.engine.world import DEFAULT_BATCH_ROWS, DEFAULT_START
from battsim.recordings.batch import BatchRun, RecordingWriteError, RunInterrupted, record_run
from battsim.recordings.outputs import OutputError, check_out
from battsim.recordings.schema import MAX_RECORDING_JARS
from battsim.scale.plan import DEFAULT_PART_JARS
from battsim.scenarios import CATALOGUE, load_timeline, shipped_timelines
from battsim.scenarios.default_outages import with_random_outages
from battsim.service.digest_cli import diff, hash_command
from battsim.service.fleet_options import RANDOM_OUTAGES_HELP, load_timelines, parse_instant, resolve_fleet
from battsim.service.lab_cli import fleet_with_model_file, lab_app
from battsim.service.replay_cli import replay
from battsim.service.serve_cli import serve
from battsim.service.shards_cli import check_shard_options, run_sharded
from battsim.service.sink_options import sink_configs, sink_summary
from battsim.service.terminal import console, fail, print_summary, stdout

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Simulate stationary VRLA battery fleets.")
app.add_typer(lab_app, name="lab")


def _print_version(requested: bool) -> None:
    if requested:
        stdout.print(f"battsim {package_version('battsim')}", highlight=False, markup=False)
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[bool, typer.Option("--version", is_eager=True, callback=_print_version,
                                          help="Print the installed battsim version and exit.")] = False,
) -> None:
    """Simulate stationary VRLA battery fleets."""


@app.command()
def run(
    out: Annotated[Path, typer.Option("--out", help="Recording to write (a .duckdb file).")],
    preset: Annotated[str | None, typer.Option(help=f"Fleet preset: {', '.join(PRESETS)}.")] = None,
    fleet: Annotated[Path | None, typer.Option("--fleet", help="Fleet TOML file.")] = None,
    model_file: Annotated[Path | None, typer.Option(
        "--model-file", help="Battery model TOML file (e.g. from battsim lab fit): every jar of the fleet is this block.")
    ] = None,
    start: Annotated[str | None, typer.Option(help="Start, ISO 8601 (default 2026-01-01T00:00+07:00).")] = None,
    days: Annotated[float | None, typer.Option(help="Virtual days to simulate (default 7).")] = None,
    until: Annotated[str | None, typer.Option(help="End, ISO 8601, instead of --days.")] = None,
    interval: Annotated[int, typer.Option(help="Seconds between readings, 1-3600.")] = 60,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same recording.")] = 0,
    overwrite: Annotated[bool, typer.Option(help="Replace --out if it exists.")] = False,
    batch_rows: Annotated[int, typer.Option(help="Readings per write to DuckDB (changes speed, not data).")] = DEFAULT_BATCH_ROWS,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    timeline: Annotated[list[str] | None, typer.Option(
        "--timeline", help="Timeline TOML file, or the name of a shipped one (battsim scenarios); repeatable, "
        "the files merge.")] = None,
    alarms: Annotated[bool, typer.Option(help="Evaluate the alarm rules and record their events.")] = True,
    random_outages: Annotated[bool, typer.Option(help=RANDOM_OUTAGES_HELP)] = True,
    sink_file: Annotated[Path | None, typer.Option(
        "--sink-file", help="TOML file of \\[\\[sink]] sections: also deliver every reading to these (MQTT, webhook, "
        "PostgreSQL); the run waits for a slow sink rather than dropping.")] = None,
    webhook: Annotated[list[str] | None, typer.Option(
        "--webhook", metavar="URL", help="Also POST readings to this URL; repeatable.")] = None,
    mqtt: Annotated[list[str] | None, typer.Option(
        "--mqtt", metavar="URL", help="Also publish readings to this broker: mqtt://user:pass@host:port/prefix?qos=1 "
        "(all but the host optional; mqtts:// for TLS); "
        "repeatable.")] = None,
    postgres: Annotated[list[str] | None, typer.Option(
        "--postgres", metavar="DSN", help="Also COPY readings into this database's telemetry table (created if missing): a libpq "
        "DSN or postgresql:// URL; repeatable.")] = None,
    sites: Annotated[int | None, typer.Option(
        help="Scale the fleet to this many sites: a procedural preset (national-telecom) is made with them, any "
        "other fleet repeats its sites (ids suffixed -2, -3 …).")] = None,
    workers: Annotated[int | None, typer.Option(
        help="Run the fleet as parts of whole sites in this many worker processes; --out is then a directory "
        "(part-000.duckdb … and a manifest) that every reader opens as one recording.")] = None,
    part_jars: Annotated[int, typer.Option(
        help="With --workers or --engine ray: most jars in one part. The parts, and so the readings, depend on "
        "this and the fleet, never on the number of workers.")] = DEFAULT_PART_JARS,
    engine: Annotated[str, typer.Option(help="processes (--workers on this machine) or ray (Ray tasks).")] = "processes",
    address: Annotated[str | None, typer.Option(
        help="With --engine ray: the cluster's address (e.g. 127.0.0.1:6379); default a local Ray.")] = None,
) -> None:
    """Simulate a fleet over virtual time as fast as possible and record every reading."""
    spec, preset_name = resolve_fleet(preset, fleet)
    if model_file is not None:  # the fleet is no longer the preset: its blocks are the file's
        spec, preset_name = fleet_with_model_file(spec, model_file), None
    if sites is not None:
        try:
            spec = with_sites(spec, sites)
        except FleetFileError as error:
            fail("--sites", escape(str(error)))
    if not 1 <= interval <= 3600:
        fail("--interval", f"{interval} is outside 1-3600 seconds")
    if seed < 0 or seed >= 2**63:
        fail("--seed", "must be between 0 and 2^63-1")
    if batch_rows < 1:
        fail("--batch-rows", "must be at least 1")
    begin = parse_instant("--start", start) if start else DEFAULT_START
    if days is not None and until is not None:
        fail("--days/--until", "give one of them, not both")
    if until is not None:
        end = parse_instant("--until", until)
        if end <= begin:
            fail("--until", f"{end.isoformat()} is not after the start {begin.isoformat()}")
    else:
        days = 7.0 if days is None else days
        if not days > 0:
            fail("--days", f"{days} must be more than 0")
        if days > 36_525:
            fail("--days", f"{days} is more than 100 years")
        end = begin + timedelta(days=days)
    timelines = with_random_outages(load_timelines(timeline or [], spec, seed), random_outages)
    sinks = sink_configs(sink_file, webhook, mqtt, postgres)
    sharded = workers is not None or engine != "processes"
    if sharded:
        check_shard_options(workers, part_jars, engine, address)
        if sinks:
            fail("--workers", "sinks (--sink-file, --webhook, --mqtt, --postgres) are not delivered from shard "
                 "workers yet; run without --workers to feed them")
        run_sharded(BatchRun(fleet=spec, out=out, seed=seed, start=begin, end=end, interval_s=interval,
                             preset=preset_name, overwrite=overwrite, batch_rows=batch_rows, timelines=timelines,
                             alarms=alarms), workers, part_jars, engine, address, progress)
        return
    if spec.jar_count > MAX_RECORDING_JARS:
        fail("--workers", f"the fleet has {spec.jar_count:,} jars and one recording holds at most "
             f"{MAX_RECORDING_JARS:,}; give --workers N to record it as a shard set")
    try:
        check_out(out, overwrite, inputs=[p for p in [fleet, model_file, *(Path(t) for t in timeline or [])]
                                          if p and p.exists()])
    except OutputError as error:
        fail("--out", escape(str(error)))

    batch = BatchRun(fleet=spec, out=out, seed=seed, start=begin, end=end, interval_s=interval,
                     preset=preset_name, overwrite=overwrite, batch_rows=batch_rows, timelines=timelines,
                     alarms=alarms, sinks=sinks)
    span_s = batch.span_s
    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[virtual]}"),
        TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), console=console, disable=not progress,
    ) as bar:
        task = bar.add_task("simulating", total=span_s, virtual="", rate="")
        began = datetime.now()

        def show(done_s: float, readings: int) -> None:
            elapsed = (datetime.now() - began).total_seconds() or 1e-9
            moment = begin + timedelta(seconds=done_s)
            bar.update(task, completed=done_s, virtual=moment.strftime("%Y-%m-%d %H:%M %Z"),
                       rate=f"{readings / elapsed:,.0f} readings/s")

        interrupted: RunInterrupted | None = None
        try:
            summary = record_run(batch, progress=show)
        except RecordingWriteError as error:
            bar.stop()
            fail("--out", escape(str(error)))
        except RunInterrupted as stopped:
            bar.stop()
            interrupted, summary = stopped, stopped.summary

    if interrupted is not None:
        # 130 = 128 + SIGINT, what a shell reports for a command stopped by Ctrl-C.
        moment = begin + timedelta(seconds=interrupted.stopped_s)
        print_summary([
            ("recording", str(summary.path) if interrupted.kept else "nothing readable was written"),
            ("run id", summary.run_id),
            ("readings", f"{summary.readings:,}"),
            ("virtual span", f"{begin.isoformat()} → {end.isoformat()} ({span_s / 86400:g} days)"),
            ("wall time", f"{summary.wall_s:.2f} s"),
        ])
        console.print(f"interrupted at {moment.isoformat()}, recording marked incomplete", soft_wrap=True,
                      highlight=False, markup=False)
        raise typer.Exit(code=130)
    print_summary([
        ("recording", str(summary.path)),
        ("run id", summary.run_id),
        ("readings", f"{summary.readings:,}"),
        ("virtual span", f"{begin.isoformat()} → {end.isoformat()} ({span_s / 86400:g} days)"),
        ("wall time", f"{summary.wall_s:.2f} s"),
        ("rate", f"{summary.readings_per_s:,.0f} readings/s"),
        *sink_summary(summary.sinks),
        ("try", f"battsim query {summary.path} \"SELECT site_id, mode, count(*) FROM readings GROUP BY ALL\""),
    ])


@app.command()
def presets() -> None:
    """List the built-in fleet presets."""
    table = Table("preset", "sites", "strings", "jars", "description")
    for name, spec in PRESETS.items():
        strings = sum(site.strings for site in spec.sites)
        jars = sum(site.strings * site.jars_per_string for site in spec.sites)
        table.add_row(name, str(len(spec.sites)), str(strings), str(jars), spec.description)
    stdout.print(table)


@app.command()
def scenarios(
    json_output: Annotated[bool, typer.Option("--json", help="Print the catalogue as JSON.")] = False,
) -> None:
    """List the scenario catalogue with its parameters, and the shipped timelines."""
    if json_output:
        catalogue = [
            {"scenario": spec.name, "name": spec.title, "scope": spec.scope.value, "bit": spec.bit,
             "description": spec.description, "typical_conditions": spec.typical_conditions,
             "parameters": spec.parameter_table()}
            for spec in CATALOGUE.values()
        ]
        stdout.print_json(data={"scenarios": catalogue,
                                "timelines": {name: str(path) for name, path in shipped_timelines().items()}})
        return
    table = Table("scenario", "acts on", "parameters (default)", "description", show_lines=True)
    for spec in CATALOGUE.values():
        parameters = "\n".join(f"{row['name']} = {row['default']!r}: {row['description']}"
                                for row in spec.parameter_table()) or "-"
        table.add_row(f"[bold]{spec.name}[/bold]\n{spec.title}", spec.scope.value, parameters, spec.description)
    stdout.print(table)
    shipped = Table("timeline", "description", title="shipped timelines (battsim run --timeline NAME)")
    for name, path in shipped_timelines().items():
        shipped.add_row(name, load_timeline(path).description)
    stdout.print(shipped)


# ---------------------------------------------------------------------------------------- analysis
@app.command()
def query(
    args: Annotated[list[str], typer.Argument(metavar="FILE.duckdb... SQL",
                                              help="One or more recordings, then the SQL.")],
    output_format: Annotated[str, typer.Option("--format", help="table, csv, json or parquet (needs --out).")] = "table",
    max_rows: Annotated[int, typer.Option(help="Rows shown by --format table (csv and json print every row).")] = 1000,
    max_width: Annotated[int | None, typer.Option(
        "--max-width", help="Widest the table may be, in characters (default: the terminal's width; unlimited when "
        "not a terminal). Ids, times and numbers are never cut: the table is wider if they need it.",
        show_default=False)] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write the result to this file instead of stdout "
                                             "(csv, json, parquet).", show_default=False)] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace --out if it exists.")] = False,
) -> None:
    """SQL over recordings; several files are attached under their names (year.duckdb -> year.readings)."""
    import duckdb

    from battsim.recordings.format import NotARecordingError, RecordingBusyError, reading
    from battsim.recordings.query import (
        FORMATS,
        QueryError,
        check_single_statement,
        execute,
        spill_privately,
    )

    if output_format not in FORMATS:
        fail("--format", f"{output_format!r} is not one of {', '.join(FORMATS)}")
    if max_rows < 1:
        fail("--max-rows", "must be at least 1")
    if max_width is not None and max_width < 20:
        fail("--max-width", f"{max_width} is less than 20 characters")
    if output_format == "parquet" and out is None:
        fail("--out", "--format parquet writes a file: give --out FILE.parquet")
    if output_format == "table" and out is not None:
        fail("--out", "--format table is for the terminal; give --format csv, json or parquet with --out")
    if len(args) < 2:
        fail("FILE/SQL", "give one or more recordings and then the SQL, e.g. battsim query run.duckdb "
                         "\"SELECT count(*) FROM readings\"")
    *files, sql = args
    if sql.endswith(".duckdb"):
        fail("SQL", f"the last argument is the SQL, but {sql!r} looks like a file")
    if out is not None:
        try:
            check_out(out, overwrite, inputs=[Path(f) for f in files])
        except OutputError as error:
            fail("--out", escape(str(error)))
    try:
        check_single_statement(sql)
    except QueryError as error:
        fail("SQL", escape(str(error)))
    except duckdb.Error as error:
        fail("SQL", escape(str(error)))
    with ExitStack() as stack:
        try:
            connection = stack.enter_context(spill_privately([Path(f) for f in files]))
        except (FileNotFoundError, NotARecordingError, RecordingBusyError) as error:
            fail("FILE", escape(str(error)))
        try:
            with reading(files):
                if out is not None:
                    _write_query(connection, sql, output_format, out)
                else:
                    _print_query(execute(connection, sql), output_format, max_rows, files, max_width)
        except NotARecordingError as error:
            fail("FILE", escape(str(error)))
        except duckdb.Error as error:
            fail("SQL", escape(str(error)))


def _print_query(result, output_format: str, max_rows: int, files: list[str], max_width: int | None) -> None:
    import sys

    from battsim.recordings.presentation import table_layout
    from battsim.recordings.query import run_names, table_rows, write_csv, write_json

    if output_format == "csv":
        write_csv(result, sys.stdout)
    elif output_format == "json":
        write_json(result, sys.stdout)
    else:
        rows, more = table_rows(result, max_rows)
        layout = table_layout(result.columns, rows, max_width or (stdout.width if stdout.is_terminal else None))
        table = Table(*result.columns)
        for column, min_width, wraps in zip(table.columns, layout.min_widths, layout.wraps):
            column.min_width, column.no_wrap, column.overflow = min_width, not wraps, "fold"
        for row in rows:
            table.add_row(*(escape(v) for v in row))
        stdout.print(table, width=layout.width, crop=False)
        attached = ", ".join(f"{escape(f)} as {n}" for f, n in zip(files, run_names(files)))
        console.print(f"{len(rows)} rows{' (more not shown; use --max-rows or --format csv)' if more else ''}"
                      f" · {attached}")


def _write_query(connection, sql: str, output_format: str, out: Path) -> None:
    """The result into ``out``, written beside it and renamed into place when complete."""
    from battsim.recordings.outputs import discard, replace_file, staging_path
    from battsim.recordings.query import execute, write_csv, write_json, write_parquet

    staged = staging_path(out)
    try:
        if output_format == "parquet":
            rows = write_parquet(connection, sql, staged)
        else:
            with staged.open("w", encoding="utf-8", newline="") as handle:
                rows = (write_csv if output_format == "csv" else write_json)(execute(connection, sql), handle)
        replace_file(staged, out)
    except OSError as error:
        discard(staged)
        fail("--out", escape(f"cannot write {out}: {error.strerror or error}"))
    except BaseException:
        discard(staged)
        raise
    print_summary([("written", str(out)), ("rows", f"{rows:,}")])


@app.command()
def export(
    recording: Annotated[Path, typer.Argument(metavar="FILE.duckdb", help="The recording to export.")],
    out: Annotated[Path, typer.Option("--out", help="A .parquet, .csv or .json file (readings only) or a directory "
                                                    "(readings, events, batteries, sites, runs).")],
    output_format: Annotated[str, typer.Option("--format", help="parquet, csv or json.")] = "parquet",
    partition: Annotated[bool, typer.Option("--partition", help="Parquet readings partitioned by site_id and "
                                                                "local date (Hive layout).")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace --out if it exists.")] = False,
    layout: Annotated[str, typer.Option("--layout", help="battsim (the tables), or original: the original "
                                        "project's battery_sensors_<site>.csv.gz and string_sensors_<site>.csv.gz "
                                        "in the directory --out.")] = "battsim",
) -> None:
    """Export a recording to Parquet or CSV for other tools (DuckDB, polars, pandas, Spark)."""
    from battsim.recordings.export import ExportError, export_recording
    from battsim.recordings.format import RecordingBusyError
    from battsim.recordings.recording import NotARecordingError

    try:
        summary = export_recording(recording, out, output_format, partition=partition, overwrite=overwrite,
                                   layout=layout)
    except ExportError as error:
        fail(f"--{error.option}", escape(error.message))
    except (FileNotFoundError, NotARecordingError, RecordingBusyError) as error:
        fail("FILE", escape(str(error)))
    print_summary([("exported", str(summary.out)),
                   *((name, f"{rows:,} rows") for name, rows in summary.rows.items()),
                   ("wall time", f"{summary.wall_s:.2f} s")])


@app.command()
def report(
    recording: Annotated[Path, typer.Argument(metavar="FILE.duckdb", help="The recording to report on.")],
    out: Annotated[Path, typer.Option("--out", help="Directory for the PNG charts and index.html.")],
) -> None:
    """Charts (voltage, current, temperature per string; state of health; outages; alarms) and index.html."""
    from battsim.recordings.format import RecordingBusyError
    from battsim.recordings.outputs import OutputError
    from battsim.recordings.recording import NotARecordingError
    from battsim.recordings.report import write_report

    if out.exists() and not out.is_dir():
        fail("--out", f"{out} is a file; give a directory")
    if not out.exists() and not (out.parent if str(out.parent) else Path(".")).is_dir():
        fail("--out", f"directory {out.parent} does not exist")
    try:
        summary = write_report(recording, out)
    except (FileNotFoundError, NotARecordingError, RecordingBusyError) as error:
        fail("FILE", escape(str(error)))
    except OutputError as error:
        fail("--out", escape(str(error)))
    print_summary([*summary.headline.items(), ("report", str(summary.index)),
                   ("wall time", f"{summary.wall_s:.1f} s")])


app.command()(serve)
app.command()(replay)
app.command("hash")(hash_command)
app.command()(diff)


def main() -> None:
    app()

