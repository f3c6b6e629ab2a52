"""The manifest of a shard set: ``battsim-shards.json`` in the set's directory, beside its parts.

    {"format": "battsim-shards", "version": 1, "run_id": "…", "status": "running|complete|incomplete",
     "engine": "processes|ray", "workers": 2, "max_part_jars": 4096, "seed": 0, "preset": "…",
     "start": "…", "end": "…", "interval_s": 60, "created_at": "…", "wall_seconds": 1.2,
     "config_file": "run-config.json",
     "parts": [{"file": "part-000.duckdb", "sites": [0, 9], "first_site": "CNX_DC1", "last_site": "HDY_DC1",
                "jars": 216, "status": "pending|running|complete|incomplete|missing", "readings": 0,
                "error": null, "worker_peak_rss_mb": 180.5}, …]}

``run-config.json`` beside it holds the run's configuration (a single recording's ``runs.config``: the
whole fleet, which for a big one is megabytes), written once, so the manifest stays small to rewrite.
The runner writes the manifest before any part starts (every part ``pending``) and again, atomically (a temporary
file renamed over it), whenever a part starts or ends, so after a crash it still lists every part and
says which finished. ``worker_peak_rss_mb`` is the peak memory of the worker that wrote the part, as
it finished it (a worker's parts run one after another, so this shows memory flat per process). A part's
own ``runs.status`` in its file is the final word: readers go by the file. Every reader checks ``format``
and ``version`` first (:func:`read_manifest`) and refuses a part file name that would leave the directory.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from battsim.recordings.format import NotARecordingError

MANIFEST_NAME = "battsim-shards.json"
CONFIG_NAME = "run-config.json"
MANIFEST_FORMAT = "battsim-shards"
MANIFEST_VERSION = 1
PART_STATUSES = ("pending", "running", "complete", "incomplete", "missing")
_PART_FILE = re.compile(r"^part-\d{3,6}\.duckdb$")


def manifest_path(directory: str | Path) -> Path:
    return Path(directory) / MANIFEST_NAME


def is_shard_set(path: str | Path) -> bool:
    """Whether ``path`` is a directory with a shard-set manifest."""
    return manifest_path(path).is_file()


def read_manifest(directory: str | Path) -> dict:
    """The checked manifest of the set at ``directory``; :class:`NotARecordingError` naming it if it is missing,
    not JSON, of another format or version, or lists a part by a name outside the directory."""
    path = manifest_path(directory)
    if not Path(directory).is_dir():
        raise FileNotFoundError(f"{directory}: no such recording or shard set")
    if not path.is_file():
        raise NotARecordingError(f"{directory}: a directory without {MANIFEST_NAME}, so not a shard set "
                                 "(battsim run --workers N --out DIR writes one)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise NotARecordingError(f"{path}: not a readable shard-set manifest ({error})") from None
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        raise NotARecordingError(f"{path}: format is not {MANIFEST_FORMAT!r}")
    version = data.get("version")
    if version != MANIFEST_VERSION:
        newer = isinstance(version, int) and version > MANIFEST_VERSION
        raise NotARecordingError(f"{path}: manifest version {version!r}, but this battsim reads version "
                                 f"{MANIFEST_VERSION}" + (" (written by a newer battsim: upgrade to read it)" if newer else ""))
    parts = data.get("parts")
    if not isinstance(parts, list) or not parts:
        raise NotARecordingError(f"{path}: parts must be a non-empty list")
    for index, part in enumerate(parts):
        if not isinstance(part, dict) or not isinstance(part.get("file"), str) or not _PART_FILE.match(part["file"]):
            raise NotARecordingError(f"{path}: parts[{index}].file must be a name like part-000.duckdb")
        if part.get("status") not in PART_STATUSES:
            raise NotARecordingError(f"{path}: parts[{index}].status must be one of {', '.join(PART_STATUSES)}")
    return data


def write_manifest(directory: str | Path, manifest: dict) -> None:
    """Write the manifest atomically: a reader sees the old one or the new one, never half of one."""
    path = manifest_path(directory)
    staged = path.with_name(f".{MANIFEST_NAME}.tmp")
    staged.write_text(json.dumps(manifest, indent=1, default=str) + "\n", encoding="utf-8")
    os.replace(staged, path)


def write_config(directory: str | Path, config: dict) -> None:
    """The run's configuration, beside the manifest (written once, before any part)."""
    (Path(directory) / CONFIG_NAME).write_text(json.dumps(config, default=str) + "\n", encoding="utf-8")


def read_config(directory: str | Path, manifest: dict) -> dict:
    """The run's configuration the manifest points at; {} if the file is gone (the parts still say theirs)."""
    name = manifest.get("config_file")
    if name != CONFIG_NAME:
        return {}
    try:
        return json.loads((Path(directory) / name).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
