"""DuckDB recordings of runs: the file format, the recorder, and reading them back.

``open_recording`` and ``Recording`` are loaded on first use: reading a recording back needs polars, and
``battsim run`` (which imports the recorder from this package) should not pay for polars' import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from battsim.recordings.recording import NotARecordingError, Recording, open_recording

__all__ = ["NotARecordingError", "Recording", "open_recording"]


def __getattr__(name: str):
    if name in __all__:
        from battsim.recordings import recording

        return getattr(recording, name)
    raise AttributeError(f"module 'battsim.recordings' has no attribute {name!r}")
