"""`battsim serve`: flags checked and turned into the app's options, then uvicorn on a socket bound here."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from battsim.engine.fleet import PRESETS
from battsim.scenarios.default_outages import with_random_outages
from battsim.service.fleet_options import RANDOM_OUTAGES_HELP, load_timelines, resolve_fleet
from battsim.service.sink_options import sink_configs
from battsim.service.terminal import console, fail, print_summary


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on (127.0.0.1: this machine only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port, 1-65535.")] = 8003,
    data_dir: Annotated[Path, typer.Option("--data-dir", help="Where live recordings are written.")] = Path("recordings"),
    preset: Annotated[str | None, typer.Option(help=f"Start this fleet at boot: {', '.join(PRESETS)}.")] = None,
    fleet: Annotated[Path | None, typer.Option("--fleet", help="Start this fleet TOML file at boot (instead of "
                                               "--preset).")] = None,
    timeline: Annotated[list[str] | None, typer.Option(
        "--timeline", help="Install this timeline (TOML file or shipped name) in the boot fleet; repeatable, the "
        "files merge. Needs --preset or --fleet.")] = None,
    interval: Annotated[int, typer.Option(help="Seconds between readings of the boot fleet, 1-60.")] = 5,
    speed: Annotated[float, typer.Option(help="Virtual seconds per wall second of the boot fleet.")] = 1.0,
    seed: Annotated[int, typer.Option(help="Random seed of the boot fleet.")] = 0,
    random_outages: Annotated[bool, typer.Option(help="Boot fleet: " + RANDOM_OUTAGES_HELP)] = True,
    backfill: Annotated[str | None, typer.Option(
        help="Boot fleet: start this long before now (30d, 12h, 90min; at most 366d), run that history at batch "
             "speed into the recording, then go on at --speed from now.", show_default=False)] = None,
    token: Annotated[str | None, typer.Option(
        envvar="BATTSIM_TOKEN", show_envvar=True,
        help="Bearer token every request must carry (not /health, the dashboard's files, /docs); required beyond "
             "loopback. Prefer the environment variable: a flag shows in ps.")] = None,
    allowed_origin: Annotated[list[str] | None, typer.Option(
        "--allowed-origin", envvar="BATTSIM_ALLOWED_ORIGINS", show_envvar=True,
        help="Another origin (scheme://host[:port]) whose pages may call the API; repeatable (env: space-separated). "
             "Always allowed: this server's own and localhost dev ports 3000 4200 5173 8000 8080.")] = None,
    allowed_host: Annotated[list[str] | None, typer.Option(
        "--allowed-host", envvar="BATTSIM_ALLOWED_HOSTS", show_envvar=True,
        help="Another name clients reach this server by (Host header); repeatable. Always allowed: the --host "
             "address (all interfaces' for 0.0.0.0), localhost, 127.0.0.1, [::1].")] = None,
    insecure: Annotated[bool, typer.Option(
        "--insecure", help="Listen beyond loopback without a token (anyone who can reach the port can drive it).")] = False,
    sink_file: Annotated[Path | None, typer.Option(
        "--sink-file", envvar="BATTSIM_SINK_FILE", show_envvar=True,
        help="TOML file of \\[\\[sink]] sections: every live session also delivers its readings to these (MQTT, "
             "webhook, PostgreSQL); state at GET /api/v1/sinks.")] = None,
    webhook: Annotated[list[str] | None, typer.Option("--webhook", metavar="URL", help="Also POST live readings to this URL; "
                                                      "repeatable.")] = None,
    mqtt: Annotated[list[str] | None, typer.Option(
        "--mqtt", metavar="URL", help="Also publish live readings to this broker: mqtt://user:pass@host:port/prefix?qos=1 "
        "(all but the host optional; mqtts:// for TLS); "
        "repeatable.")] = None,
    postgres: Annotated[list[str] | None, typer.Option(
        "--postgres", metavar="DSN", help="Also COPY live readings into this database's telemetry table (created if missing); "
        "repeatable.")] = None,
    modbus_port: Annotated[int | None, typer.Option(
        envvar="BATTSIM_MODBUS_PORT", show_envvar=True,
        help="Serve the live fleet as a battery monitor over Modbus TCP on this port (one unit id per string; map at "
             "GET /api/v1/modbus/map). Off by default.", show_default=False)] = None,
    modbus_host: Annotated[str, typer.Option(
        envvar="BATTSIM_MODBUS_HOST", show_envvar=True,
        help="Address the Modbus server listens on; Modbus has no authentication, so beyond loopback it needs "
             "--insecure.")] = "127.0.0.1",
) -> None:
    """Serve the REST and WebSocket API and the dashboard; every live reading is recorded in --data-dir."""
    from battsim.service.security import SecurityError, access_policy, check_exposure, listening_socket, served_hosts, url_host

    try:
        access = access_policy(token, allowed_origin or (), [*(allowed_host or ()), *served_hosts(host)])
        loopback = check_exposure(host, access, insecure)
    except SecurityError as error:
        fail(error.flag, str(error))
    if preset is not None and preset not in PRESETS:
        fail("--preset", f"unknown preset {preset!r}; presets: {', '.join(PRESETS)}")
    if timeline and preset is None and fleet is None:
        fail("--timeline", "needs a fleet to boot: give --preset or --fleet")
    # The boot fleet is loaded and checked exactly as `battsim run` does it (same errors, exit 2).
    spec, boot_name = resolve_fleet(preset, fleet) if preset is not None or fleet is not None else (None, None)
    timelines = with_random_outages(load_timelines(timeline or [], spec, seed), random_outages) if spec is not None else []
    if not 1 <= port <= 65535:
        fail("--port", f"{port} is outside 1-65535")
    listeners, attachments, modbus_line = _modbus(modbus_host, modbus_port, insecure)
    if not 1 <= interval <= 60:
        fail("--interval", f"{interval} is outside 1-60 seconds")
    sinks = sink_configs(sink_file, webhook, mqtt, postgres)
    if not 0 < speed <= 1e6:
        fail("--speed", f"{speed} must be more than 0 and at most 1000000")
    if backfill is not None and spec is None:
        fail("--backfill", "needs a fleet to boot: give --preset or --fleet")
    from battsim.service.live import parse_backfill

    try:
        backfill_s = parse_backfill(backfill)
    except ValueError as error:
        fail("--backfill", str(error))
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        fail("--data-dir", f"cannot create {data_dir}: {error.strerror}")
    if not os.access(data_dir, os.W_OK):
        fail("--data-dir", f"directory {data_dir} is not writable")

    import uvicorn

    from battsim.service.app import create_app
    from battsim.service.limits import MAX_WS_MESSAGE_BYTES

    web = create_app(data_dir, boot_name, interval_s=interval, speed=speed, seed=seed, access=access, fleet=spec,
                     timelines=timelines, backfill_s=backfill_s, attachments=attachments, listeners=listeners,
                     sinks=sinks)
    try:  # bound now: the banner shows the real address, and a port in use is an error, not a traceback
        sock = listening_socket(host, port)
    except OSError as error:
        fail("--host/--port", f"cannot listen on {host}:{port}: {error.strerror or error}")
    # Listening on all interfaces, the URLs are this machine's addresses (the bound 0.0.0.0 is not one).
    addresses = [sock.getsockname()[0]] if loopback or host not in ("0.0.0.0", "::", "") else served_hosts(host)
    base = f"http://{url_host(addresses[0] if addresses else '127.0.0.1')}:{port}"
    if not loopback:
        console.print(f"[yellow]warning:[/yellow] listening on {host or 'all interfaces'}: other machines can reach "
                      f"this server at {', '.join(f'http://{url_host(a)}:{port}/' for a in addresses) or 'its addresses'}",
                      soft_wrap=True, highlight=False)
    if access.token is None and not loopback:
        console.print("[yellow]warning:[/yellow] no token (--insecure): anyone who can reach the port can start and "
                      "stop simulations and read every recording", soft_wrap=True, highlight=False)
    print_summary([
        ("API", f"{base}/api/v1/"),
        ("docs", f"{base}/docs"),
        ("dashboard", f"{base}/" + ("  (with the token: open /#token=<token>)" if access.token else "")),
        ("WebSocket", f"ws://{base.removeprefix('http://')}/api/v1/ws/telemetry"),
        ("token", "required on every request (Authorization: Bearer <token>)" if access.token else "none"),
        ("recordings", str(data_dir.resolve())),
        *([("sinks", ", ".join(f"{config.name} ({config.kind})" for config in sinks) + f"; state: {base}/api/v1/sinks")]
          if sinks else []),
        ("metrics", f"{base}/metrics"),
        *([("Modbus TCP", f"{modbus_line}; map: {base}/api/v1/modbus/map")] if modbus_line else []),
        ("running", f"{boot_name or spec.name} (interval {interval} s, speed {speed:g}x, seed {seed})"
         + "".join(f", timeline {t.source}" for t in timelines)
         + (f", back-filling {backfill} first" if backfill_s else "") if spec is not None else
         "nothing yet: POST /api/v1/simulation/start"),
    ])
    # Per-message compression costs more CPU than loopback bandwidth is worth at telemetry rates.
    server = uvicorn.Server(uvicorn.Config(web, ws_per_message_deflate=False, ws_max_size=MAX_WS_MESSAGE_BYTES,
                                           log_level="info"))
    server.run(sockets=[sock])
    if not server.started:
        raise typer.Exit(code=3)  # the app did not start (its error is logged above); uvicorn.run exits 3 too


def _modbus(host: str, port: int | None, insecure: bool):
    """The Modbus TCP listener and the attachment that feeds it (none without a port), and the banner's line."""
    if port is None:
        return [], [], None
    from battsim.service.security import SecurityError, is_loopback, listening_socket

    if not 1 <= port <= 65535:
        fail("--modbus-port", f"{port} is outside 1-65535")
    try:
        loopback = is_loopback(host)
    except SecurityError as error:
        fail("--modbus-host", str(error))
    if not loopback and not insecure:
        fail("--modbus-host", f"Modbus has no authentication: listening on {host or 'all interfaces'} lets any machine "
                              "that reaches the port read the fleet and start tests; pass --insecure to do it anyway")
    if not loopback:
        console.print(f"[yellow]warning:[/yellow] Modbus on {host or 'all interfaces'}:{port}: other machines can read "
                      "the fleet and start tests (Modbus has no authentication)", soft_wrap=True, highlight=False)
    try:  # a port in use is a clear error now, not a traceback once the app starts
        listening_socket(host, port).close()
    except OSError as error:
        fail("--modbus-host/--modbus-port", f"cannot listen on {host}:{port}: {error.strerror or error}")
    from battsim.devices.modbus import modbus_listener
    from battsim.devices.snapshot import DeviceHub

    hub = DeviceHub()
    return [lambda: modbus_listener(hub, host, port)], [hub], f"{host}:{port}, unit id n = the fleet's string n"
