"""Shard sets (battsim run --workers N): the plan, identical readings for any N, readers, crashes and Ctrl-C."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from datetime import timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest
from tests.test_service_helpers import battsim_command

from battsim.engine.fleet import build_fleet, get_preset
from battsim.engine.world import DEFAULT_START
from battsim.recordings import NotARecordingError, open_recording
from battsim.recordings.batch import BatchRun
from battsim.recordings.diff import attached
from battsim.recordings.digest import recording_digest
from battsim.recordings.format import DamagedRecordingError
from battsim.scale.manifest import CONFIG_NAME, MANIFEST_NAME, read_manifest
from battsim.scale.plan import assign, part_spec, plan_parts, restrict_timeline
from battsim.scale.runner import ShardedRun, record_shards
from battsim.scenarios.timeline import parse_timeline

SPEC = get_preset("thailand-9x24")  # 9 sites of 24 jars
# One outage at two named sites (two parts), so events, alarms and mode changes differ between parts.
TIMELINE = parse_timeline("""
[[event]]
scenario = "power_outage"
at = "2026-01-01T10:00+07:00"
duration = "90min"
sites = ["CNX_DC1", "HKT_DC1"]
""", source="outage.toml")


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*battsim_command(), *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "COLUMNS": "250"})


def sharded(out: Path, workers: int, part_jars: int = 48, days: float = 1.0) -> ShardedRun:
    batch = BatchRun(fleet=SPEC, out=out, seed=3, end=DEFAULT_START + timedelta(days=days), interval_s=300,
                     preset="thailand-9x24", timelines=[TIMELINE])
    return ShardedRun(batch, workers=workers, max_part_jars=part_jars)


def digest(path: Path):
    with attached({"a": path}) as connection:
        return recording_digest(connection, "a")


def readings(path: Path) -> pl.DataFrame:
    with open_recording(path) as recording:
        return recording.readings().collect()


@pytest.fixture(scope="module")
def sets(tmp_path_factory) -> dict[int, Path]:
    directory = tmp_path_factory.mktemp("shards")
    made = {}
    for workers in (1, 2, 3):
        made[workers] = directory / f"w{workers}"
        record_shards(sharded(made[workers], workers))
    return made


# ----------------------------------------------------------------------------------------------- the plan
def test_parts_are_whole_contiguous_sites_fixed_by_the_fleet_and_part_size():
    parts = plan_parts(SPEC, 48)
    assert [(p.site_start, p.site_stop, p.jars) for p in parts] == [(0, 2, 48), (2, 4, 48), (4, 6, 48), (6, 8, 48), (8, 9, 24)]
    assert [p.file for p in parts][:2] == ["part-000.duckdb", "part-001.duckdb"]
    assert len(plan_parts(SPEC, 10)) == 9  # a site bigger than the limit is a part of its own
    assert len(plan_parts(SPEC)) == 1
    with pytest.raises(ValueError, match="max_jars 0"):
        plan_parts(SPEC, 0)
    spec = part_spec(SPEC, parts[1])
    assert [s.site_id for s in spec.sites] == ["NBI_DC1", "BKK_DC1"] and spec.profile_mix == SPEC.profile_mix


def test_parts_shared_out_by_jar_count_biggest_first():
    parts = plan_parts(get_preset("thailand-full"), 300)  # 9 parts of 216 jars
    shares = assign(parts, 2)
    assert sorted(len(s) for s in shares) == [4, 5]
    assert sorted(p.index for s in shares for p in s) == list(range(9))
    assert len(assign(parts[:1], 4)) == 1  # no idle workers


def test_timeline_narrowed_to_a_parts_sites():
    parts = plan_parts(SPEC, 48)
    first = restrict_timeline(TIMELINE, build_fleet(part_spec(SPEC, parts[0]), 3))
    assert [e.entry.sites for e in first.events] == [["CNX_DC1"]]
    assert restrict_timeline(TIMELINE, build_fleet(part_spec(SPEC, parts[1]), 3)).events == ()
    everywhere = parse_timeline('[[event]]\nscenario = "power_outage"\nat = "14:00"\nduration = "1h"\nsites = "all"\n')
    assert restrict_timeline(everywhere, build_fleet(part_spec(SPEC, parts[1]), 3)).events[0].entry.sites == "all"


# --------------------------------------------------------------------------------------- determinism
def test_same_seed_same_readings_for_any_number_of_workers(sets):
    digests = {workers: digest(path) for workers, path in sets.items()}
    assert digests[1].sha256 == digests[2].sha256 == digests[3].sha256
    assert digests[1].tables["reading_samples"].rows == 216 * 288
    first = readings(sets[1])
    assert first.height == 216 * 288 and first["battery_id"].n_unique() == 216
    assert first.equals(readings(sets[2])) and first.equals(readings(sets[3]))
    assert first.filter(pl.col("mode") == "discharge")["site_id"].unique().sort().to_list() == ["CNX_DC1", "HKT_DC1"]


def test_events_and_alarms_keep_their_per_site_order(sets):
    def per_site(path: Path) -> dict:
        with open_recording(path) as recording:
            # The set's events view lists each part's events in the order they were written.
            rows = recording.sql("SELECT site_id, kind, epoch_us(timestamp) AS t, detail FROM events").rows()
            alarms = recording.alarms()
        order: dict = {}
        for site, kind, t, detail in rows:
            order.setdefault(site, []).append((kind, t, detail))
        return order, alarms

    one, alarms_one = per_site(sets[1])
    three, alarms_three = per_site(sets[3])
    assert one == three and {"outage_start", "outage_end", "mode_change"} <= {k for k, _, _ in one["CNX_DC1"]}
    assert alarms_one.height > 0 and alarms_one.sort(alarms_one.columns).equals(alarms_three.sort(alarms_three.columns))
    cnx = [kind for kind, _, _ in one["CNX_DC1"] if kind.startswith("outage")]
    assert cnx == ["outage_start", "outage_end"]


def test_a_one_part_set_has_a_plain_runs_readings(tmp_path):
    import battsim

    plain = battsim.simulate(preset="single-string", days=0.25, interval_s=300, seed=5, out=tmp_path / "plain.duckdb")
    plain.close()
    batch = BatchRun(fleet=get_preset("single-string"), out=tmp_path / "set", seed=5,
                     end=DEFAULT_START + timedelta(days=0.25), interval_s=300, preset="single-string",
                     timelines=list(plain_timelines()))
    record_shards(ShardedRun(batch, workers=2))
    assert readings(tmp_path / "plain.duckdb").equals(readings(tmp_path / "set"))


def plain_timelines():
    from battsim.scenarios.default_outages import with_random_outages

    return with_random_outages([], True)  # what battsim.simulate adds by default


# ------------------------------------------------------------------------------------------- readers
def test_the_set_opens_as_one_recording(sets):
    with open_recording(sets[2]) as recording:
        run = recording.run
        assert run.status == "complete" and run.readings == 216 * 288 and run.ticks == 288 and run.seed == 3
        keys = recording.sql("SELECT count(DISTINCT battery_key) AS n, max(battery_key) AS top FROM batteries").row(0)
        assert keys == (216, 215)
        joined = recording.sql("SELECT count(*) FROM reading_samples JOIN batteries USING (battery_key)").item()
        assert joined == 216 * 288
        parts = recording.sql("SELECT file, status FROM shard_parts ORDER BY part").rows()
        assert [status for _, status in parts] == ["complete"] * 5
        assert recording.daily_battery_summary(sites=["HDY_DC1"]).collect().height == 24  # one local day, 24 jars
    manifest = read_manifest(sets[2])
    assert manifest["status"] == "complete" and manifest["workers"] == 2
    assert [p["status"] for p in manifest["parts"]] == ["complete"] * 5


def test_query_export_report_replay_and_hash_read_the_set(sets, tmp_path):
    query = cli("query", str(sets[2]), "SELECT count(DISTINCT battery_id) AS jars, count(*) AS n FROM readings",
                "--format", "csv")
    assert query.returncode == 0, query.stderr
    assert query.stdout.splitlines()[1] == f"216,{216 * 288}"
    export = cli("export", str(sets[2]), "--format", "parquet", "--out", str(tmp_path / "exported"))
    assert export.returncode == 0, export.stderr
    assert pl.read_parquet(tmp_path / "exported" / "readings.parquet").height == 216 * 288
    report = cli("report", str(sets[2]), "--out", str(tmp_path / "report"))
    assert report.returncode == 0, report.stderr
    assert "9 sites, 9 strings, 216 jars" in (tmp_path / "report" / "index.html").read_text()
    replay = cli("replay", str(sets[2]), "--speed", "max", "--site", "HKT_DC1")
    assert replay.returncode == 0, replay.stderr
    frames = [json.loads(line) for line in replay.stdout.splitlines()]
    assert len(frames) == 288 and {r["site_id"] for f in frames for r in f["data"]} == {"HKT_DC1"}
    hashes = [cli("hash", str(sets[n])).stdout.splitlines()[-1] for n in (1, 3)]
    assert hashes[0] == hashes[1] and "recording" in hashes[0]


def test_a_manifest_of_another_version_or_a_part_outside_is_refused(sets, tmp_path):
    copy = tmp_path / "copy"
    copy.mkdir()
    for path in sets[1].iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    manifest = json.loads((copy / MANIFEST_NAME).read_text())
    (copy / MANIFEST_NAME).write_text(json.dumps({**manifest, "version": 99}))
    with pytest.raises(NotARecordingError, match="manifest version 99.*newer battsim"):
        open_recording(copy)
    manifest["parts"][0]["file"] = "../elsewhere.duckdb"
    (copy / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(NotARecordingError, match=r"parts\[0\].file"):
        open_recording(copy)
    (copy / MANIFEST_NAME).unlink()
    assert "without battsim-shards.json" in cli("query", str(copy), "SELECT 1").stderr


def test_a_set_without_its_run_config_still_reads_and_config_names_the_missing_file(sets, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(sets[2], copy)
    with open_recording(copy) as recording:
        config = recording.config
        assert config.fleet["name"] == SPEC.name and config.seed == 3 and config.timelines[0].source == "outage.toml"
    (copy / CONFIG_NAME).unlink()
    with open_recording(copy) as recording:
        assert recording.run.readings == 216 * 288
        with pytest.raises(DamagedRecordingError, match=f"{CONFIG_NAME}.*missing or unreadable"):
            _ = recording.config


# ---------------------------------------------------------------------------------------- bad flags
@pytest.mark.parametrize("flags, named", [
    (["--workers", "0"], "--workers"), (["--workers", "1000"], "--workers"),
    (["--workers", "2", "--part-jars", "0"], "--part-jars"), (["--workers", "2", "--engine", "spark"], "--engine"),
    (["--workers", "2", "--address", "127.0.0.1:6379"], "--address"),
])
def test_bad_shard_flags_are_refused_naming_the_flag(flags, named, tmp_path):
    result = cli("run", "--preset", "single-string", "--days", "0.1", "--out", str(tmp_path / "set"), *flags)
    assert result.returncode == 2 and named in result.stderr, result.stderr
    assert not (tmp_path / "set").exists()


def test_out_that_is_a_file_or_a_foreign_directory_is_refused(tmp_path):
    (tmp_path / "file.duckdb").write_text("x")
    result = cli("run", "--preset", "single-string", "--days", "0.1", "--workers", "2", "--out", str(tmp_path / "file.duckdb"))
    assert result.returncode == 2 and "--out" in result.stderr and "is a file" in result.stderr
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    result = cli("run", "--preset", "single-string", "--days", "0.1", "--workers", "2", "--out", str(tmp_path / "mine"),
                 "--overwrite")
    assert result.returncode == 2 and "not a shard set" in result.stderr
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_overwrite_replaces_a_set_only_when_the_new_one_is_complete(sets, tmp_path):
    out = tmp_path / "set"
    first = cli("run", "--preset", "single-string", "--days", "0.1", "--interval", "300", "--workers", "1",
                "--out", str(out), "--no-progress")
    assert first.returncode == 0, first.stderr
    again = cli("run", "--preset", "single-string", "--days", "0.1", "--interval", "300", "--workers", "1",
                "--out", str(out), "--no-progress")
    assert again.returncode == 2 and "--overwrite" in again.stderr
    replaced = cli("run", "--preset", "single-string", "--days", "0.2", "--interval", "300", "--workers", "1",
                   "--out", str(out), "--no-progress", "--overwrite")
    assert replaced.returncode == 0, replaced.stderr
    with open_recording(out) as recording:
        assert recording.run.ticks == 58  # 0.2 days at 300 s
    assert [p.name for p in tmp_path.iterdir()] == ["set"]


# ---------------------------------------------------------------------------------- crash and Ctrl-C
def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()] if path.exists() else []


def _workers(pid: int) -> list[int]:
    found = []
    for child in _children(pid):
        try:
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                found.append(child)
        except OSError:
            pass
    return found


def _wait_for(condition, timeout_s: float = 120.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def _statuses(out: Path) -> list[str]:
    try:
        return [p["status"] for p in json.loads((out / MANIFEST_NAME).read_text())["parts"]]
    except (OSError, json.JSONDecodeError):
        return []


def _writing(out: Path) -> list[str]:
    """Parts the manifest says are running that have committed something (DuckDB's log is there)."""
    parts = json.loads((out / MANIFEST_NAME).read_text())["parts"] if _statuses(out) else []
    return [p["file"] for p in parts if p["status"] == "running" and (out / f"{p['file']}.wal").exists()]


def _start(out: Path) -> subprocess.Popen:
    return subprocess.Popen([*battsim_command(), "run", "--preset", "thailand-9x24", "--days", "4", "--workers", "2",
                             "--part-jars", "24", "--batch-rows", "2400", "--out", str(out), "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def _check_parts_readable(out: Path) -> list[str]:
    statuses = _statuses(out)
    for part, status in zip(json.loads((out / MANIFEST_NAME).read_text())["parts"], statuses):
        path = out / part["file"]
        if status == "missing":
            assert not path.exists()
            continue
        with duckdb.connect(str(path), read_only=True) as connection:
            assert connection.execute("SELECT status FROM runs").fetchall()[0][0] == status
    return statuses


def test_a_killed_worker_leaves_finished_parts_readable_and_says_which_are_incomplete(tmp_path):
    out = tmp_path / "set"
    process = _start(out)
    try:
        _wait_for(lambda: "complete" in _statuses(out) and _statuses(out).count("running") == 2)
        os.kill(_wait_for(lambda: _workers(process.pid))[0], signal.SIGKILL)
        _, stderr = process.communicate(timeout=300)
    finally:
        process.kill()
    assert process.returncode == 1, stderr
    assert "did not complete" in stderr
    statuses = _check_parts_readable(out)
    assert "complete" in statuses and {"incomplete", "missing"} & set(statuses)
    with open_recording(out) as recording:
        assert recording.run.status == "incomplete"
        assert recording.run.readings == recording.sql("SELECT count(*) FROM reading_samples").item() > 0
    assert read_manifest(out)["status"] == "incomplete"


def test_ctrl_c_stops_every_worker_and_marks_the_parts_it_cut(tmp_path):
    out = tmp_path / "set"
    process = _start(out)
    try:
        _wait_for(lambda: len(_writing(out)) == 2 and len(_workers(process.pid)) == 2)
        os.killpg(process.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole process group
        stdout, stderr = process.communicate(timeout=300)
    finally:
        process.kill()
    assert process.returncode == 130, stderr
    statuses = _check_parts_readable(out)
    assert statuses.count("complete") < len(statuses) and "incomplete" in statuses
    assert "parts did not complete" in stderr and "shard set" in stdout
    with open_recording(out) as recording:
        assert recording.run.status == "incomplete"
