"""DuckDB recordings of runs: the file format, the recorder, and reading them back."""

from battsim.recordings.recording import NotARecordingError, Recording, open_recording

__all__ = ["NotARecordingError", "Recording", "open_recording"]
