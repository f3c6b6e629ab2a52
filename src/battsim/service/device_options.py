"""`battsim serve`'s device flags (--modbus-*, --snmp-*) checked and turned into listeners and one attachment.

Both agents serve the same :class:`~battsim.devices.snapshot.DeviceHub`, so a Modbus read and an SNMP GET of
the same tick see the same values. Each listens on loopback unless told otherwise; neither protocol (Modbus,
SNMPv2c) authenticates, so another address needs ``--insecure``. A port in use is refused now, by name.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NoReturn

from battsim.service.security import SecurityError, is_loopback, listening_socket
from battsim.service.terminal import console

Refuse = Callable[[str, str, str], NoReturn]  # (parameter, flag, message): exits naming the flag (and variable)


@dataclass
class Devices:
    listeners: list = field(default_factory=list)
    attachments: list = field(default_factory=list)
    banner: list[tuple[str, str]] = field(default_factory=list)


def _exposure(host: str, port: int, what: str, parameter: str, insecure: bool, refuse: Refuse) -> None:
    try:
        loopback = is_loopback(host)
    except SecurityError as error:
        refuse(parameter, f"--{parameter.replace('_', '-')}", str(error))
    if not loopback and not insecure:
        refuse(parameter, f"--{parameter.replace('_', '-')}",
               f"{what} has no authentication: listening on {host or 'all interfaces'} lets any machine that reaches "
               "the port read the fleet (and, over Modbus, start tests); pass --insecure to do it anyway")
    if not loopback:
        console.print(f"[yellow]warning:[/yellow] {what} on {host or 'all interfaces'}:{port}: other machines can "
                      f"read the fleet ({what} has no authentication)", soft_wrap=True, highlight=False)


def _port(port: int, parameter: str, refuse: Refuse) -> None:
    if not 1 <= port <= 65535:
        refuse(parameter, f"--{parameter.replace('_', '-')}", f"{port} is outside 1-65535")


def devices(modbus_host: str, modbus_port: int | None, snmp_host: str, snmp_port: int | None,
            snmp_traps: list[str], snmp_community: str, insecure: bool, refuse: Refuse) -> Devices:
    """The listeners and the attachment of the device flags given (none when neither port is)."""
    from battsim.devices.snapshot import DeviceHub

    if snmp_traps and snmp_port is None:
        refuse("snmp_trap", "--snmp-trap", "needs the SNMP agent: give --snmp-port")
    if modbus_port is None and snmp_port is None:
        return Devices()
    hub, out = DeviceHub(), Devices()
    out.attachments.append(hub)
    if modbus_port is not None:
        _port(modbus_port, "modbus_port", refuse)
        _exposure(modbus_host, modbus_port, "Modbus", "modbus_host", insecure, refuse)
        try:  # a port in use is a clear error now, not a traceback once the app starts
            listening_socket(modbus_host, modbus_port).close()
        except OSError as error:
            refuse("modbus_port", "--modbus-host/--modbus-port",
                   f"cannot listen on {modbus_host}:{modbus_port}: {error.strerror or error}")
        from battsim.devices.modbus import modbus_listener

        out.listeners.append(lambda: modbus_listener(hub, modbus_host, modbus_port))
        out.banner.append(("Modbus TCP", f"{modbus_host}:{modbus_port}, unit id n = the fleet's string n"))
    if snmp_port is not None:
        from battsim.devices.snmp import MAX_RECEIVERS, parse_receiver, snmp_listener

        _port(snmp_port, "snmp_port", refuse)
        _exposure(snmp_host, snmp_port, "SNMP", "snmp_host", insecure, refuse)
        if not snmp_community or len(snmp_community) > 64 or not snmp_community.isprintable():
            refuse("snmp_community", "--snmp-community", "give 1-64 printable characters (default: public)")
        if len(snmp_traps) > MAX_RECEIVERS:
            refuse("snmp_trap", "--snmp-trap", f"at most {MAX_RECEIVERS} trap receivers")
        try:
            receivers = [parse_receiver(text) for text in snmp_traps]
        except ValueError as error:
            refuse("snmp_trap", "--snmp-trap", str(error))
        try:
            with socket.socket(socket.AF_INET6 if ":" in snmp_host else socket.AF_INET, socket.SOCK_DGRAM) as probe:
                probe.bind((snmp_host.strip("[]"), snmp_port))
        except OSError as error:
            refuse("snmp_port", "--snmp-host/--snmp-port",
                   f"cannot listen on {snmp_host}:{snmp_port} (UDP): {error.strerror or error}")
        out.listeners.append(lambda: snmp_listener(hub, snmp_host, snmp_port, snmp_community, receivers))
        traps = ", ".join(f"{r.host}:{r.port}" for r in receivers) or "none"
        out.banner.append(("SNMP", f"udp {snmp_host}:{snmp_port}, community {snmp_community} (string n: "
                                   f"{snmp_community}@n); traps to {traps}"))
    return out
