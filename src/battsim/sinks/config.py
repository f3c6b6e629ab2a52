"""`[[sink]]` sections of a TOML file (and the CLI's --webhook/--mqtt/--postgres), checked field by field so an
error names the section, the field and what is allowed."""

from __future__ import annotations

import dataclasses
import ssl
import tomllib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse


class SinkConfigError(ValueError):
    """A sink section is wrong; the message names the section, the field and what is allowed, ``flag`` the
    command-line flag it came from."""

    def __init__(self, message: str, flag: str = "--sink-file"):
        super().__init__(message)
        self.flag = flag


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
    name: str = "webhook"
    kind: str = "webhook"


@dataclass(frozen=True)
class MqttConfig:
    host: str = "127.0.0.1"
    port: int = 1883
    topic_prefix: str = "battsim"
    per: str = "jar"  # one message per jar per tick, or per string per tick
    qos: int = 1
    client_id: str | None = None  # default: battsim-<prefix>; fixed, so the broker keeps the session across restarts
    username: str | None = None
    password: str | None = None
    tls: bool = False
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    keepalive_s: int = 30
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 30.0
    buffer_messages: int = 50_000  # messages published, not yet acknowledged (QoS 1) or written (QoS 0)
    queue_batches: int = 64
    homeassistant: bool = False
    discovery_prefix: str = "homeassistant"
    name: str = "mqtt"
    kind: str = "mqtt"


@dataclass(frozen=True)
class PostgresConfig:
    dsn: str
    create: bool = False  # create the telemetry and battery tables (and the battery rows) if missing
    connections: int = 1  # COPY over this many connections at once (a back-fill's batches in parallel)
    queue_batches: int = 64
    max_retries: int = 5
    backoff_s: float = 0.5
    name: str = "postgres"
    kind: str = "postgres"


SinkConfig = WebhookConfig | MqttConfig | PostgresConfig
_KINDS: dict[str, type] = {"webhook": WebhookConfig, "mqtt": MqttConfig, "postgres": PostgresConfig}
# Lower bounds of numeric fields (a field not here has none); allowed values of the fields that have a list.
_LOW = {"batch_rows": 1, "timeout_s": 0.001, "max_retries": 0, "backoff_s": 0, "queue_batches": 1, "port": 1,
        "keepalive_s": 5, "reconnect_min_s": 0.01, "reconnect_max_s": 0.01, "buffer_messages": 1, "connections": 1}
_HIGH = {"port": 65535, "connections": 16, "buffer_messages": 60_000}  # below MQTT's 65,535 message ids
_CHOICES = {"per": ("jar", "string"), "qos": (0, 1)}
_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}


_PYTHON_TYPES = {"str": str, "int": int, "float": float, "bool": bool}


def _field_types(config: type) -> dict[str, tuple[type, ...]]:
    """Each field's allowed Python types, from its annotation ("str | None" → (str,))."""
    types = {}
    for item in dataclasses.fields(config):
        kinds = tuple(_PYTHON_TYPES[part] for part in str(item.type).split(" | ") if part in _PYTHON_TYPES)
        types[item.name] = (int, float) if kinds == (float,) else kinds  # a TOML 5 is a fine number of seconds
    return types


def _check(where: str, name: str, value, expected: tuple[type, ...]) -> None:
    names = _TYPE_NAMES[float] if float in expected else _TYPE_NAMES[expected[0]]
    # bool is an int in Python; a `batch_rows = true` is a mistake, not 1.
    if isinstance(value, bool) and bool not in expected:
        raise SinkConfigError(f"{where}: '{name}' must be {names}, not a boolean")
    if not isinstance(value, expected):
        raise SinkConfigError(f"{where}: '{name}' must be {names}, got {value!r}")
    if name in _CHOICES and value not in _CHOICES[name]:
        raise SinkConfigError(f"{where}: '{name}' must be one of {', '.join(map(str, _CHOICES[name]))}, got {value!r}")
    if name in _LOW and value < _LOW[name]:
        raise SinkConfigError(f"{where}: '{name}' must be at least {_LOW[name]}, got {value!r}")
    if name in _HIGH and value > _HIGH[name]:
        raise SinkConfigError(f"{where}: '{name}' must be at most {_HIGH[name]}, got {value!r}")


def _url(where: str, url: str, schemes: tuple[str, ...]) -> object:
    parsed = urlparse(url)
    if parsed.scheme not in schemes or not parsed.hostname:
        raise SinkConfigError(f"{where}: 'url' must be a {' or '.join(s + '://' for s in schemes)} URL, got {url!r}")
    try:
        parsed.port  # noqa: B018 - raises on a port that is not a number in range
    except ValueError:
        raise SinkConfigError(f"{where}: 'url' has a bad port: {url!r}") from None
    return parsed


def mqtt_url_fields(where: str, url: str) -> dict:
    """mqtt://[user:password@]host[:port][/prefix][?qos=0|1&per=jar|string], mqtts:// for TLS (port 8883)."""
    parsed = _url(where, url, ("mqtt", "mqtts"))
    fields = {"host": parsed.hostname, "tls": parsed.scheme == "mqtts",
              "port": parsed.port or (8883 if parsed.scheme == "mqtts" else 1883)}
    if parsed.username:
        fields["username"] = unquote(parsed.username)
    if parsed.password:
        fields["password"] = unquote(parsed.password)
    if parsed.path.strip("/"):
        fields["topic_prefix"] = parsed.path.strip("/")
    for key, values in parse_qs(parsed.query).items():
        if key not in ("qos", "per"):
            raise SinkConfigError(f"{where}: 'url' query may set qos or per, not {key!r}")
        fields[key] = int(values[-1]) if key == "qos" and values[-1].isdigit() else values[-1]
    return fields


def _section(where: str, section: dict) -> SinkConfig:
    kind = section.get("kind")
    if kind not in _KINDS:
        raise SinkConfigError(f"{where}: 'kind' must be one of {', '.join(sorted(_KINDS))}, got {kind!r}")
    config = _KINDS[kind]
    types = _field_types(config)
    values = {name: value for name, value in section.items() if name != "kind"}
    if kind == "mqtt" and "url" in values:
        _check(where, "url", values["url"], (str,))
        values = {**mqtt_url_fields(where, values.pop("url")), **values}
    unknown = sorted(set(values) - set(types) - {"kind"})
    if unknown:
        allowed = ", ".join(sorted(set(types) - {"kind"} | ({"url"} if kind == "mqtt" else set())))
        raise SinkConfigError(f"{where}: unknown field '{unknown[0]}' for kind {kind!r} (allowed: {allowed})")
    required = {"webhook": ("url", "an http:// or https:// URL"), "postgres": ("dsn", "a libpq connection string or "
                "postgresql:// URL")}.get(kind)
    if required and required[0] not in values:
        raise SinkConfigError(f"{where}: '{required[0]}' is required ({required[1]})")
    for name, value in values.items():
        _check(where, name, value, types[name])
    if kind == "webhook":
        _url(where, values["url"], ("http", "https"))
    if kind == "mqtt":
        _mqtt_checks(where, values)
    return config(**values)


def _mqtt_checks(where: str, values: dict) -> None:
    for name in ("ca_file", "cert_file", "key_file"):
        if name in values and not Path(values[name]).is_file():
            raise SinkConfigError(f"{where}: '{name}' {values[name]!r} is not a readable file")
    if any(name in values for name in ("ca_file", "cert_file", "key_file")):
        _tls_files(where, values)
    if ("cert_file" in values) != ("key_file" in values):
        raise SinkConfigError(f"{where}: 'cert_file' and 'key_file' go together (a client certificate and its key)")
    if any(name in values for name in ("ca_file", "cert_file")) and values.get("tls") is False:
        raise SinkConfigError(f"{where}: 'ca_file'/'cert_file' need 'tls = true' (or an mqtts:// url)")
    if "password" in values and "username" not in values:
        raise SinkConfigError(f"{where}: 'password' needs a 'username'")
    prefix = values.get("topic_prefix", "battsim")
    if not prefix or any(char in prefix for char in "#+\0") or prefix.startswith("/") or prefix.endswith("/"):
        raise SinkConfigError(f"{where}: 'topic_prefix' must be a topic without wildcards (# +) or a leading or "
                              f"trailing /, got {prefix!r}")
    if values.get("homeassistant") and values.get("per", "jar") != "jar":
        raise SinkConfigError(f"{where}: 'homeassistant' discovery needs per = \"jar\" (a sensor per jar)")
    if values.get("reconnect_max_s", 30.0) < values.get("reconnect_min_s", 0.5):
        raise SinkConfigError(f"{where}: 'reconnect_max_s' must be at least 'reconnect_min_s'")


def _tls_files(where: str, values: dict) -> None:
    """Load the CA and the client certificate now, so a wrong file is refused here, not at the first connect."""
    try:
        context = ssl.create_default_context(cafile=values.get("ca_file"))
    except (ssl.SSLError, OSError) as error:
        raise SinkConfigError(f"{where}: 'ca_file' {values.get('ca_file')!r} is not a PEM CA certificate: "
                              f"{error}") from None
    if "cert_file" in values and "key_file" in values:
        try:
            context.load_cert_chain(values["cert_file"], values["key_file"])
        except (ssl.SSLError, OSError) as error:
            raise SinkConfigError(f"{where}: 'cert_file'/'key_file' are not a PEM certificate and its key: "
                                  f"{error}") from None


def parse_sinks(document: dict) -> list[SinkConfig]:
    """The sinks of a parsed TOML document's `[[sink]]` array, in order; names made unique (mqtt, mqtt-2)."""
    sections = document.get("sink", [])
    if not isinstance(sections, list) or not all(isinstance(section, dict) for section in sections):
        raise SinkConfigError("'sink' must be an array of tables: write [[sink]], not [sink]")
    return unique_names([_section(f"sink[{index}]", section) for index, section in enumerate(sections)])


def unique_names(configs: list[SinkConfig]) -> list[SinkConfig]:
    seen: dict[str, int] = {}
    named = []
    for config in configs:
        seen[config.name] = seen.get(config.name, 0) + 1
        count = seen[config.name]
        named.append(config if count == 1 else dataclasses.replace(config, name=f"{config.name}-{count}"))
    return named


def load_sink_file(path: Path) -> list[SinkConfig]:
    """The `[[sink]]` sections of a TOML file; errors name the file, the section and the field."""
    try:
        document = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        return parse_sinks(document)
    except OSError as error:
        raise SinkConfigError(f"cannot read {path}: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise SinkConfigError(f"{path} is not valid TOML: {error}") from None
    except UnicodeDecodeError:
        raise SinkConfigError(f"{path} is not UTF-8 text") from None
    except SinkConfigError as error:
        raise SinkConfigError(f"{path}: {error}") from None


def sinks_from_options(sink_file: Path | None = None, webhook: list[str] | None = None, mqtt: list[str] | None = None,
                       postgres: list[str] | None = None) -> list[SinkConfig]:
    """The sinks of ``--sink-file`` then of the convenience flags (defaults for everything but the address;
    ``--postgres`` creates the tables). A SinkConfigError's ``flag`` says which flag was wrong."""
    configs: list[SinkConfig] = load_sink_file(sink_file) if sink_file is not None else []
    for flag, kind, field_name, values, extra in (("--webhook", "webhook", "url", webhook, {}),
                                                  ("--mqtt", "mqtt", "url", mqtt, {}),
                                                  ("--postgres", "postgres", "dsn", postgres, {"create": True})):
        for value in values or ():
            try:
                configs.append(_section(flag, {"kind": kind, field_name: value, **extra}))
            except SinkConfigError as error:
                raise SinkConfigError(str(error).removeprefix(f"{flag}: "), flag) from None
    return unique_names(configs)
