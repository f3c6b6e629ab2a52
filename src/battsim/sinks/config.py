"""`[[sink]]` sections of a TOML file, checked field by field so an error names the field and what is allowed."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse


class SinkConfigError(ValueError):
    """A sink section is wrong; the message names the section, the field and what is allowed."""


@dataclass(frozen=True)
class WebhookConfig:
    url: str
    batch_rows: int = 1000
    gzip: bool = False
    bearer_token: str | None = None
    timeout_s: float = 5.0
    max_retries: int = 5
    backoff_s: float = 0.5
    queue_batches: int = 64
    kind: str = "webhook"


_KINDS = {"webhook": WebhookConfig}


def _check(where: str, name: str, value, expected: type | tuple[type, ...], low=None) -> None:
    # bool is an int in Python; a `batch_rows = true` is a mistake, not 1.
    if isinstance(value, bool) and bool not in (expected if isinstance(expected, tuple) else (expected,)):
        raise SinkConfigError(f"{where}: '{name}' must be {_type_name(expected)}, not a boolean")
    if not isinstance(value, expected):
        raise SinkConfigError(f"{where}: '{name}' must be {_type_name(expected)}, got {value!r}")
    if low is not None and value < low:
        raise SinkConfigError(f"{where}: '{name}' must be at least {low}, got {value!r}")


def _type_name(expected) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}
    kinds = expected if isinstance(expected, tuple) else (expected,)
    return " or ".join(names.get(kind, kind.__name__) for kind in kinds)


def _webhook(where: str, section: dict) -> WebhookConfig:
    url = section.get("url")
    if url is None:
        raise SinkConfigError(f"{where}: 'url' is required (an http:// or https:// URL)")
    _check(where, "url", url, str)
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise SinkConfigError(f"{where}: 'url' must be an http:// or https:// URL, got {url!r}")
    limits = {"batch_rows": (int, 1), "timeout_s": ((int, float), 0.001), "max_retries": (int, 0),
              "backoff_s": ((int, float), 0), "queue_batches": (int, 1)}
    values = {"url": url}
    for name, (expected, low) in limits.items():
        if name in section:
            _check(where, name, section[name], expected, low)
            values[name] = section[name]
    if "gzip" in section:
        _check(where, "gzip", section["gzip"], bool)
        values["gzip"] = section["gzip"]
    if "bearer_token" in section:
        _check(where, "bearer_token", section["bearer_token"], str)
        values["bearer_token"] = section["bearer_token"]
    unknown = sorted(set(section) - set(values) - {"kind"})
    if unknown:
        allowed = ", ".join(sorted(set(limits) | {"url", "gzip", "bearer_token", "kind"}))
        raise SinkConfigError(f"{where}: unknown field '{unknown[0]}' (allowed: {allowed})")
    return WebhookConfig(**values)


def parse_sinks(document: dict) -> list[WebhookConfig]:
    """The sinks of a parsed TOML document's `[[sink]]` array, in order."""
    sections = document.get("sink", [])
    if not isinstance(sections, list):
        raise SinkConfigError("'sink' must be an array of tables: write [[sink]], not [sink]")
    sinks = []
    for index, section in enumerate(sections):
        where = f"sink[{index}]"
        kind = section.get("kind")
        if kind not in _KINDS:
            raise SinkConfigError(f"{where}: 'kind' must be one of {', '.join(sorted(_KINDS))}, got {kind!r}")
        sinks.append(_webhook(where, section))
    return sinks


def load_sink_file(path: Path) -> list[WebhookConfig]:
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise SinkConfigError(f"--sink-file: cannot read {path}: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise SinkConfigError(f"--sink-file: {path} is not valid TOML: {error}") from None
    return parse_sinks(document)
