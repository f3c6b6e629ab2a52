"""The battsim pytest plugin: recordings simulated once per configuration, and golden digests.

Installed with battsim (entry point ``pytest11``), so every pytest session of a project with battsim
installed has the fixtures; without the entry point, ``pytest -p battsim.testing.plugin``.

    def test_outages(battsim_recording, battsim_golden):
        rec = battsim_recording(preset="single-string", days=2, timeline="daily-outage", seed=42)
        battsim_golden(rec)                     # compares with golden/test_outages.json beside the test

``battsim_recording(**arguments)`` takes :func:`battsim.simulate`'s arguments (not ``out``) and returns the
recording, read-only. It is cached in pytest's cache directory (``.pytest_cache/d/battsim/``) under a hash
of the arguments, the contents of the timeline and fleet files they name, and battsim's version: a second
session (and every later test in this one) opens the file instead of simulating. ``pytest --cache-clear``
empties it. ``battsim_golden(rec, name=None)`` compares the recording's digest (:mod:`battsim.recordings.digest`)
with ``golden/NAME.json`` beside the test module (NAME defaults to the test's name); it fails when they
differ, with ``battsim diff``'s summary, or when there is no golden file; ``--battsim-update-golden``
writes it instead.

This module imports nothing of battsim until a fixture is used, and adds no hooks that change a session
which does not use the fixtures (the summary line appears only when something was simulated or read).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import pytest

CACHE_DIRECTORY = "battsim"
_counts = {"simulated": 0, "cached": 0}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("battsim")
    group.addoption("--battsim-update-golden", action="store_true", default=False,
                    help="battsim_golden: write the recordings' digests to their golden files instead of comparing.")


def pytest_terminal_summary(terminalreporter) -> None:
    if any(_counts.values()):
        terminalreporter.write_line(f"battsim: {_counts['simulated']} recording(s) simulated, "
                                    f"{_counts['cached']} read from the cache")


def _file_text(value) -> str | None:
    """The text of a timeline or fleet file an argument names, so editing the file invalidates the cache."""
    if isinstance(value, str | os.PathLike) and "\n" not in str(value) and Path(value).is_file():
        return Path(value).read_text(encoding="utf-8")
    return None


def cache_key(arguments: dict) -> str:
    """A hash of what determines a recording: the arguments, the files they name, battsim's version."""
    from battsim import __version__
    from battsim.recordings.schema import FORMAT_VERSION
    from battsim.scenarios.timeline import Timeline

    def canonical(value):
        if isinstance(value, list | tuple):
            return [canonical(item) for item in value]
        if isinstance(value, Timeline):
            return {"timeline": value.text}
        if hasattr(value, "model_dump"):  # a FleetSpec
            return value.model_dump(mode="json")
        return {"value": str(value), "file": _file_text(value)}

    text = json.dumps({"battsim": __version__, "format": FORMAT_VERSION,
                       "arguments": {name: canonical(value) for name, value in sorted(arguments.items())}},
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class RecordingFactory:
    """``factory(**simulate_arguments)``: the recording, from the cache when it holds one."""

    def __init__(self, directory: Path):
        self.directory = directory
        self._open: dict[str, object] = {}

    def __call__(self, **arguments):
        if "out" in arguments:
            raise TypeError("battsim_recording: out: the fixture chooses where the recording is cached")
        from battsim.api import open_recording, simulate
        from battsim.recordings.format import NotARecordingError

        key = cache_key(arguments)
        if key in self._open:
            return self._open[key]
        path = self.directory / f"{key}.duckdb"
        recording = None
        if path.is_file():
            try:
                recording = open_recording(path)
            except NotARecordingError:
                path.unlink()  # damaged or from another format: simulate it again
            else:
                _counts["cached"] += 1
        if recording is None:
            # Written under a name of this process's, then renamed: parallel workers never see half a file.
            staged = self.directory / f".{key}.{os.getpid()}.partial.duckdb"
            simulate(**arguments, out=staged, overwrite=True).close()
            os.replace(staged, path)
            _counts["simulated"] += 1
            recording = open_recording(path)
        self._open[key] = recording
        return recording

    def close(self) -> None:
        for recording in self._open.values():
            recording.close()
        self._open.clear()


@pytest.fixture(scope="session")
def battsim_recording(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """A factory of recordings, ``battsim_recording(preset=..., days=..., timeline=..., seed=...)``, cached by
    configuration in pytest's cache directory."""
    cache = getattr(request.config, "cache", None)  # None under -p no:cacheprovider
    directory = Path(cache.mkdir(CACHE_DIRECTORY)) if cache is not None else tmp_path_factory.mktemp(CACHE_DIRECTORY)
    factory = RecordingFactory(directory)
    yield factory
    factory.close()


class GoldenMismatch(AssertionError):
    pass


def _golden_name(request: pytest.FixtureRequest) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name).strip("_")


@pytest.fixture
def battsim_golden(request: pytest.FixtureRequest):
    """``battsim_golden(recording, name=None)``: the recording's digest must equal ``golden/NAME.json`` beside
    the test module; ``--battsim-update-golden`` writes it."""
    update = request.config.getoption("battsim_update_golden")
    cache = getattr(request.config, "cache", None)  # None under -p no:cacheprovider

    def check(recording, name: str | None = None) -> None:
        from battsim.recordings.digest import RecordingDigest, recording_digest

        golden = Path(request.node.path).parent / "golden" / f"{name or _golden_name(request)}.json"
        digest = recording_digest(recording.connection)
        if update:
            golden.parent.mkdir(parents=True, exist_ok=True)
            golden.write_text(json.dumps(digest.to_json(), indent=2) + "\n", encoding="utf-8")
            _keep_for_diff(cache, recording, digest.sha256)
            return
        if not golden.is_file():
            raise GoldenMismatch(f"no golden digest at {golden}; run pytest --battsim-update-golden to write it")
        expected = RecordingDigest.from_json(json.loads(golden.read_text(encoding="utf-8")))
        if expected.sha256 == digest.sha256:
            return
        raise GoldenMismatch(f"the recording differs from its golden digest {golden}:\n"
                             + _mismatch(cache, recording, expected, digest)
                             + "\nif the change is intended, run pytest --battsim-update-golden")

    return check


def _kept_path(cache, sha256: str) -> Path | None:
    return Path(cache.mkdir(CACHE_DIRECTORY)) / "golden" / f"{sha256}.duckdb" if cache is not None else None


def _keep_for_diff(cache, recording, sha256: str) -> None:
    """Keep the golden recording in the cache, so a later mismatch on this machine can show the rows."""
    kept = _kept_path(cache, sha256)
    if kept is None or kept.exists() or recording.path is None:
        return
    kept.parent.mkdir(parents=True, exist_ok=True)
    kept.write_bytes(Path(recording.path).read_bytes())


def _mismatch(cache, recording, expected, actual) -> str:
    """Per table: same or different with the row counts; with the golden recording at hand, the first rows."""
    kept = _kept_path(cache, expected.sha256)
    if kept is not None and kept.is_file() and recording.path is not None:
        from battsim.recordings.diff import attached, diff_recordings

        with attached({"a": kept, "b": recording.path}) as connection:
            result = diff_recordings(connection, limit=3)
        lines = []
        for name, table in result.tables.items():
            lines.append(f"  {name}: {table.status} ({table.rows_a} golden | {table.rows_b} now"
                         + (f", {table.differing_rows} rows differ)" if not table.equal else ")"))
            for row in table.first:
                key = " ".join(f"{k}={v}" for k, v in row.key.items())
                changes = ", ".join(f"{c} {a} vs {b}" for c, (a, b) in row.columns.items())
                lines.append(f"    {key}: " + (f"only in {'golden' if row.only_in == 'a' else 'now'}"
                                                if row.only_in else changes))
        return "\n".join(lines)
    lines = []
    for name in sorted(set(expected.tables) | set(actual.tables)):
        was, now = expected.tables.get(name), actual.tables.get(name)
        status = "same" if was == now else "different"
        lines.append(f"  {name}: {status} ({was.rows if was else '-'} golden | {now.rows if now else '-'} now)")
    return "\n".join(lines) + "\n  (the golden recording is not in this machine's cache: rerun with it to see the rows)"
