"""What `battsim run` and `battsim serve` read alike about sinks: --sink-file and the convenience flags."""

from __future__ import annotations

from pathlib import Path

from rich.markup import escape

from battsim.service.terminal import fail
from battsim.sinks import SinkConfigError, sinks_from_options


def sink_configs(sink_file: Path | None, webhook: list[str] | None, mqtt: list[str] | None,
                 postgres: list[str] | None) -> list:
    """The sinks the flags ask for, checked (a bad one exits 2 naming its flag, section and field)."""
    try:
        return sinks_from_options(sink_file, webhook, mqtt, postgres)
    except SinkConfigError as error:
        fail(error.flag, escape(str(error)))


def sink_summary(statuses) -> list[tuple[str, str]]:
    """A summary line per sink: what it delivered and what it could not."""
    return [(f"sink {status['name']}", f"{status['sent']:,} sent, {status['dropped']:,} dropped, "
             f"{status['retried']:,} retried" + (f" (last error: {status['last_error']})" if status["last_error"]
                                                 else "")) for status in statuses]
