"""Where battsim writes (``--out``): checked before anything runs, written beside, renamed into place.

Every writer (``battsim run``, ``export``, ``report``) follows the same rules, so no command can
destroy what it did not make:

* :func:`check_out` runs first, before anything is read or written. An existing ``out`` needs
  ``overwrite``; even then it may not be an input, hold an input, or be (or hold) the working
  directory; a directory is replaced only if battsim made it (an export directory carries
  :data:`EXPORT_MARKER`) or it is empty; a file target is never a directory.
* Output goes to a hidden temporary name beside ``out`` (:func:`staging_path`), on the same file
  system, and :func:`replace_file` / :func:`replace_directory` rename it into place only when it is
  complete, so a failed run leaves the previous ``out`` exactly as it was.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

# A file inside every directory ``battsim export`` writes: how --overwrite knows the directory is ours.
EXPORT_MARKER = ".battsim-export"


class OutputError(ValueError):
    """An ``--out`` that cannot or may not be written; the message names the path and why."""


def check_out(out: Path, overwrite: bool, inputs: Sequence[Path] = (),
              kind: Literal["file", "directory"] = "file") -> None:
    """Refuse an ``out`` that cannot be written or that ``overwrite`` may not replace (see the module docstring)."""
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"directory {parent} is not writable")
    if not (out.exists() or out.is_symlink()):
        return
    target = out.resolve()
    for source in inputs:
        source = Path(source).resolve()
        if source == target:
            raise OutputError(f"{out} is the input {source.name}; give another path")
        if source.is_relative_to(target):
            raise OutputError(f"{out} holds the input {source.name}; give another path")
    if Path.cwd().resolve().is_relative_to(target):
        raise OutputError(f"{out} is the working directory or holds it; give another path")
    if not overwrite:
        raise OutputError(f"{out} exists; pass --overwrite to replace it")
    if kind == "file":
        if target.is_dir():
            raise OutputError(f"{out} is a directory; --overwrite replaces a file, never a directory")
        if not target.is_file():
            raise OutputError(f"{out} is not a regular file")
    else:
        if not target.is_dir():
            raise OutputError(f"{out} is a file; give a directory")
        if any(target.iterdir()) and not (target / EXPORT_MARKER).is_file():
            raise OutputError(f"{out} is a directory battsim did not make (no {EXPORT_MARKER} in it); "
                              "--overwrite replaces only battsim's own export directories; give a new or empty one")


def staging_path(out: Path) -> Path:
    """A hidden, unique name beside ``out`` (same directory, so the final rename is atomic)."""
    return out.parent / f".{out.name}.partial-{uuid.uuid4().hex[:8]}"


def wal_path(path: Path) -> Path:
    """DuckDB's write-ahead log beside a database file: it belongs to that file and moves with it."""
    return Path(str(path) + ".wal")


def replace_file(staged: Path, out: Path) -> None:
    """Rename a finished file over ``out``. A DuckDB log left by an older ``out`` is removed, since it would
    otherwise be replayed into the new file."""
    stale, aside = wal_path(out), None
    if stale.exists():
        aside = staging_path(stale)
        os.replace(stale, aside)
    try:
        os.replace(staged, out)
    except OSError:
        if aside is not None:
            os.replace(aside, stale)
        raise
    if aside is not None:
        aside.unlink()


def replace_directory(staged: Path, out: Path) -> None:
    """Put a finished directory at ``out``, replacing an empty or battsim-made one (checked by :func:`check_out`)."""
    if not out.exists():
        os.rename(staged, out)
        return
    retired = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
    os.rename(out, retired)
    try:
        os.rename(staged, out)
    except OSError:
        os.rename(retired, out)
        raise
    shutil.rmtree(retired, ignore_errors=True)


def discard(path: Path) -> None:
    """Remove a staging file or directory (and a DuckDB log beside it), if it is there."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
    wal_path(path).unlink(missing_ok=True)
