"""`battsim serve`: flags checked and turned into the app's options, then uvicorn on a socket bound here."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from battsim.engine.fleet import PRESETS
from battsim.scenarios.default_outages import with_random_outages
from battsim.service import device_options
from battsim.service.fleet_options import RANDOM_OUTAGES_HELP, load_timelines, resolve_fleet
from battsim.service.sink_options import sink_configs
from battsim.service.terminal import console, fail, print_summary

# Platforms set PORT (and some HOST) for the process; ours win over theirs, a flag over both.
HOST_VARIABLES = ("BATTSIM_HOST", "HOST")
PORT_VARIABLES = ("BATTSIM_PORT", "PORT")


def refuse(ctx: typer.Context, parameter: str, flag: str, message: str) -> NoReturn:
    """``fail`` naming the flag, and the environment variable too when the value came from one."""
    fail(flag, message + (f" (set by {variable})" if (variable := _variable(ctx, parameter)) else ""))


def _variable(ctx: typer.Context, parameter: str) -> str | None:
    source = ctx.get_parameter_source(parameter)
    option = next((p for p in ctx.command.params if p.name == parameter), None)
    # typer's click or its own copy of it: the same enum, compared by name
    if getattr(source, "name", None) != "ENVIRONMENT" or option is None or not option.envvar:
        return None
    names = [option.envvar] if isinstance(option.envvar, str) else list(option.envvar)
    return next((name for name in names if os.environ.get(name)), names[0])  # click takes the first one set


def _trusted_proxies(ctx: typer.Context, text: str) -> str:
    """--forwarded-allow-ips checked: "*", or addresses and networks separated by commas."""
    if text.strip() == "*":
        return "*"
    entries = [entry.strip() for entry in text.split(",") if entry.strip()]
    for entry in entries:
        try:
            ipaddress.ip_network(entry, strict=False) if "/" in entry else ipaddress.ip_address(entry)
        except ValueError:
            refuse(ctx, "forwarded_allow_ips", "--forwarded-allow-ips",
                   f"{entry!r} is not an IP address or network; give e.g. 127.0.0.1,10.0.0.0/8 or * (any proxy)")
    if not entries:
        refuse(ctx, "forwarded_allow_ips", "--forwarded-allow-ips", "empty; give e.g. 127.0.0.1 or *")
    return ",".join(entries)


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(envvar=list(HOST_VARIABLES), show_envvar=True,
                                      help="Address to listen on (127.0.0.1: this machine only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar=list(PORT_VARIABLES), show_envvar=True, help="TCP port, 1-65535.")] = 8003,
    data_dir: Annotated[Path, typer.Option("--data-dir", envvar="BATTSIM_DATA_DIR", show_envvar=True,
                                           help="Where live recordings are written.")] = Path("recordings"),
    preset: Annotated[str | None, typer.Option(envvar="BATTSIM_PRESET", show_envvar=True,
                                               help=f"Start this fleet at boot: {', '.join(PRESETS)}.")] = None,
    fleet: Annotated[Path | None, typer.Option("--fleet", envvar="BATTSIM_FLEET", show_envvar=True,
                                               help="Start this fleet TOML file at boot (instead of --preset).")] = None,
    timeline: Annotated[list[str] | None, typer.Option(
        "--timeline", envvar="BATTSIM_TIMELINE", show_envvar=True,
        help="Install this timeline (TOML file or shipped name) in the boot fleet; repeatable (env: space-separated), "
        "the files merge. Needs --preset or --fleet.")] = None,
    interval: Annotated[int, typer.Option(envvar="BATTSIM_INTERVAL", show_envvar=True,
                                          help="Seconds between readings of the boot fleet, 1-60.")] = 5,
    speed: Annotated[float, typer.Option(envvar="BATTSIM_SPEED", show_envvar=True,
                                         help="Virtual seconds per wall second of the boot fleet.")] = 1.0,
    seed: Annotated[int, typer.Option(envvar="BATTSIM_SEED", show_envvar=True, help="Random seed of the boot fleet.")] = 0,
    random_outages: Annotated[bool, typer.Option(envvar="BATTSIM_RANDOM_OUTAGES", show_envvar=True,
                                                 help="Boot fleet: " + RANDOM_OUTAGES_HELP)] = True,
    backfill: Annotated[str | None, typer.Option(
        envvar="BATTSIM_BACKFILL", show_envvar=True,
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
        "--insecure", envvar="BATTSIM_INSECURE", show_envvar=True,
        help="Listen beyond loopback without a token (anyone who can reach the port can drive it).")] = False,
    sink_file: Annotated[Path | None, typer.Option(
        "--sink-file", envvar="BATTSIM_SINK_FILE", show_envvar=True,
        help="TOML file of \\[\\[sink]] sections: every live session also delivers its readings to these (MQTT, "
             "webhook, PostgreSQL); state at GET /api/v1/sinks.")] = None,
    webhook: Annotated[list[str] | None, typer.Option("--webhook", metavar="URL", envvar="BATTSIM_WEBHOOK",
                                                      show_envvar=True, help="Also POST live readings to this URL; "
                                                      "repeatable.")] = None,
    mqtt: Annotated[list[str] | None, typer.Option(
        "--mqtt", metavar="URL", envvar="BATTSIM_MQTT", show_envvar=True,
        help="Also publish live readings to this broker: mqtt://user:pass@host:port/prefix?qos=1 "
        "(all but the host optional; mqtts:// for TLS); "
        "repeatable.")] = None,
    postgres: Annotated[list[str] | None, typer.Option(
        "--postgres", metavar="DSN", envvar="BATTSIM_POSTGRES", show_envvar=True,
        help="Also COPY live readings into this database's telemetry table (created if missing); "
        "repeatable.")] = None,
    modbus_port: Annotated[int | None, typer.Option(
        envvar="BATTSIM_MODBUS_PORT", show_envvar=True,
        help="Serve the live fleet as a battery monitor over Modbus TCP on this port (one unit id per string; map at "
             "GET /api/v1/modbus/map). Off by default.", show_default=False)] = None,
    modbus_host: Annotated[str, typer.Option(
        envvar="BATTSIM_MODBUS_HOST", show_envvar=True,
        help="Address the Modbus server listens on; Modbus has no authentication, so beyond loopback it needs "
             "--insecure.")] = "127.0.0.1",
    snmp_port: Annotated[int | None, typer.Option(
        envvar="BATTSIM_SNMP_PORT", show_envvar=True,
        help="Serve the live fleet over SNMP (UDP) on this port: RFC 7577 BATTERY-MIB, one row per string, and the "
             "RFC 1628 UPS-MIB battery group per string (community <community>@n). Off by default.",
        show_default=False)] = None,
    snmp_host: Annotated[str, typer.Option(
        envvar="BATTSIM_SNMP_HOST", show_envvar=True,
        help="Address the SNMP agent listens on; beyond loopback it needs --insecure.")] = "127.0.0.1",
    snmp_trap: Annotated[list[str] | None, typer.Option(
        "--snmp-trap", metavar="HOST:PORT", envvar="BATTSIM_SNMP_TRAP", show_envvar=True,
        help="Send alarm notifications (SNMPv2c traps, rate-limited as RFC 7577 says) to this receiver; repeatable, "
             "at most 8 (env: space-separated). Needs --snmp-port.")] = None,
    snmp_community: Annotated[str, typer.Option(
        envvar="BATTSIM_SNMP_COMMUNITY", show_envvar=True,
        help="SNMPv2c community to read with (string n alone: <community>@n) and to send traps with.")] = "public",
    forwarded_allow_ips: Annotated[str, typer.Option(
        "--forwarded-allow-ips", envvar="BATTSIM_FORWARDED_ALLOW_IPS", show_envvar=True,
        help="Proxies (comma-separated addresses or networks, or * for any) whose X-Forwarded-For/-Proto headers are "
             "believed: the client address and https scheme they report are used (logs, URLs). Set it to the "
             "platform's proxy when it is not on this machine.")] = "127.0.0.1",
) -> None:
    """Serve the REST and WebSocket API and the dashboard; every live reading is recorded in --data-dir."""
    from battsim.service.security import SecurityError, access_policy, check_exposure, listening_socket, served_hosts, url_host

    try:
        access = access_policy(token, allowed_origin or (), [*(allowed_host or ()), *served_hosts(host)])
        loopback = check_exposure(host, access, insecure)
    except SecurityError as error:
        refuse(ctx, error.flag.removeprefix("--").replace("-", "_"), error.flag, str(error))
    if preset is not None and preset not in PRESETS:
        refuse(ctx, "preset", "--preset", f"unknown preset {preset!r}; presets: {', '.join(PRESETS)}")
    if timeline and preset is None and fleet is None:
        refuse(ctx, "timeline", "--timeline", "needs a fleet to boot: give --preset or --fleet")
    # The boot fleet is loaded and checked exactly as `battsim run` does it (same errors, exit 2).
    spec, boot_name = resolve_fleet(preset, fleet) if preset is not None or fleet is not None else (None, None)
    timelines = with_random_outages(load_timelines(timeline or [], spec, seed), random_outages) if spec is not None else []
    if not 1 <= port <= 65535:
        refuse(ctx, "port", "--port", f"{port} is outside 1-65535")
    devices = device_options.devices(modbus_host, modbus_port, snmp_host, snmp_port, snmp_trap or [], snmp_community,
                                     insecure, lambda parameter, flag, message: refuse(ctx, parameter, flag, message))
    if not 1 <= interval <= 60:
        refuse(ctx, "interval", "--interval", f"{interval} is outside 1-60 seconds")
    sinks = sink_configs(sink_file, webhook, mqtt, postgres)
    trusted_proxies = _trusted_proxies(ctx, forwarded_allow_ips)
    if not 0 < speed <= 1e6:
        refuse(ctx, "speed", "--speed", f"{speed} must be more than 0 and at most 1000000")
    if backfill is not None and spec is None:
        refuse(ctx, "backfill", "--backfill", "needs a fleet to boot: give --preset or --fleet")
    from battsim.service.live import parse_backfill

    try:
        backfill_s = parse_backfill(backfill)
    except ValueError as error:
        refuse(ctx, "backfill", "--backfill", str(error))
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        refuse(ctx, "data_dir", "--data-dir", f"cannot create {data_dir}: {error.strerror}")
    if not os.access(data_dir, os.W_OK):
        refuse(ctx, "data_dir", "--data-dir", f"directory {data_dir} is not writable")

    import uvicorn

    from battsim.service.app import create_app
    from battsim.service.limits import MAX_WS_MESSAGE_BYTES

    web = create_app(data_dir, boot_name, interval_s=interval, speed=speed, seed=seed, access=access, fleet=spec,
                     timelines=timelines, backfill_s=backfill_s, attachments=devices.attachments,
                     listeners=devices.listeners, sinks=sinks)
    try:  # bound now: the banner shows the real address, and a port in use is an error, not a traceback
        sock = listening_socket(host, port)
    except OSError as error:
        refuse(ctx, "port", "--host/--port", f"cannot listen on {host}:{port}: {error.strerror or error}")
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
        *[(what, f"{line}; map: {base}/api/v1/modbus/map" if what == "Modbus TCP" else line)
          for what, line in devices.banner],
        ("running", f"{boot_name or spec.name} (interval {interval} s, speed {speed:g}x, seed {seed})"
         + "".join(f", timeline {t.source}" for t in timelines)
         + (f", back-filling {backfill} first" if backfill_s else "") if spec is not None else
         "nothing yet: POST /api/v1/simulation/start"),
    ])
    # Per-message compression costs more CPU than loopback bandwidth is worth at telemetry rates.
    server = uvicorn.Server(uvicorn.Config(web, ws_per_message_deflate=False, ws_max_size=MAX_WS_MESSAGE_BYTES,
                                           log_level="info", proxy_headers=True, forwarded_allow_ips=trusted_proxies))
    server.run(sockets=[sock])
    if not server.started:
        raise typer.Exit(code=3)  # the app did not start (its error is logged above); uvicorn.run exits 3 too

