"""Who may talk to the server: allowed hosts and origins, an optional bearer token, security headers.

What this defends against (issue 11):

- a web page on another origin driving the API from the user's own browser: cross-origin requests,
  WebSocket handshakes and "simple" POSTs (no preflight) from an origin not on the list are refused,
  and a body on a state-changing request must be JSON (a ``text/plain`` body skips the preflight);
- DNS rebinding (a hostile name that resolves to 127.0.0.1, so the page counts as same-origin): the
  Host header must name this server (its bound address, loopback, or a host the user allowed);
- anyone on the network, when listening beyond loopback: a bearer token on every request, compared
  in constant time (``battsim serve`` refuses to listen beyond loopback without one unless ``--insecure``).

The rules are here, as small pure functions over an :class:`AccessPolicy`, so they can be tested without a
server (and ``battsim serve`` checks its flags without importing the web stack); one ASGI middleware applies
them to every request (:class:`battsim.service.guard.Guard`).
"""

from __future__ import annotations

import hmac
import ipaddress
import re
import socket
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

if TYPE_CHECKING:
    from starlette.datastructures import Headers

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})
# The default ports of the usual front-end dev servers, so a dashboard being developed on this machine can
# call the API without flags: Create React App / Next.js 3000, Angular 4200, Vite 5173, Django and
# uvicorn 8000, webpack-dev-server and Vue CLI 8080.
DEV_PORTS = (3000, 4200, 5173, 8000, 8080)
DEV_ORIGINS = frozenset(f"http://{host}:{port}" for host in ("localhost", "127.0.0.1", "[::1]") for port in DEV_PORTS)

# Token characters: those valid in a WebSocket subprotocol name (RFC 6455 4.1: an RFC 2616 token), so a
# browser can send it as one; 16 characters at least (secrets.token_urlsafe(32) gives 43).
TOKEN_PATTERN = re.compile(r"[A-Za-z0-9._~+-]{16,512}")
TOKEN_HINT = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
# A browser's WebSocket cannot set headers: it offers these two subprotocols instead, and the server
# selects the first (never echoing the token back).
WS_SUBPROTOCOL = "battsim"
WS_TOKEN_PREFIX = "battsim.token."

# Paths served without the token: they hold no data (the dashboard's files, the API's description, a
# health check), and a browser loads them by navigation, which cannot carry an Authorization header.
OPEN_PATHS = frozenset({"/", "/health", "/docs", "/openapi.json"})
OPEN_PREFIXES = ("/static/",)
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})

# The dashboard runs only its own files. Inline style attributes are allowed (the heat-map scales and
# swatches are drawn as styled spans); inline scripts, other hosts, frames and plugins are not. 'self'
# covers the page's own ws:// and wss:// (CSP level 3).
DASHBOARD_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; style-src-attr 'unsafe-inline'; "
                 "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
                 "frame-ancestors 'none'")
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}


class SecurityError(ValueError):
    """A bad security setting; ``flag`` names the ``battsim serve`` option it came from."""

    def __init__(self, flag: str, message: str):
        super().__init__(message)
        self.flag = flag


# ---------------------------------------------------------------------------------------- settings
def normalize_origin(text: str) -> str:
    """``scheme://host[:port]`` as a browser sends it in an Origin header (lower case, no default port)."""
    if text == "null":
        return text  # what a file:// page or a sandboxed frame sends; allowed only when listed
    parts = urlsplit(text.strip())
    try:
        port = parts.port
    except ValueError:
        port = -1
    if (parts.scheme not in ("http", "https") or not parts.hostname or port == -1 or parts.username
            or parts.path not in ("", "/") or parts.query or parts.fragment):
        raise SecurityError("--allowed-origin", f"{text!r} is not an origin; give scheme://host[:port] "
                                                "(e.g. http://dashboard.example:3000), without a path, or null")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    default = {"http": 80, "https": 443}[parts.scheme]
    return f"{parts.scheme}://{host}" + (f":{port}" if port not in (None, default) else "")


def normalize_host(text: str) -> str:
    """A host name or IP address as :func:`host_of` reads it from a Host header (lower case, no brackets)."""
    host = text.strip().lower()
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if not re.fullmatch(r"[a-z0-9_]([a-z0-9_-]{0,62})(\.[a-z0-9_]([a-z0-9_-]{0,62}))*\.?", host):
        raise SecurityError("--allowed-host", f"{text!r} is not a host name or IP address (give it without a "
                                              "scheme or port, e.g. battsim.lan or 192.168.1.20)")
    return host.rstrip(".")


def check_token(token: str) -> str:
    if not TOKEN_PATTERN.fullmatch(token):
        raise SecurityError("--token", f"a token is 16 to 512 of the characters A-Z a-z 0-9 . _ ~ + - "
                                       f"(got {len(token)} characters); make one with: {TOKEN_HINT}")
    return token


@dataclass(frozen=True)
class AccessPolicy:
    """Who may talk to the server. Build it with :func:`access_policy`, which checks and normalises.

    Hosts always allowed: loopback and the address the server is bound to; origins always allowed:
    the server's own (any allowed host at the server's port, or exactly the Host header) and
    :data:`DEV_ORIGINS`.
    """

    token: str | None = None
    allowed_origins: frozenset[str] = field(default_factory=frozenset)
    allowed_hosts: frozenset[str] = field(default_factory=frozenset)


def access_policy(token: str | None = None, allowed_origins: Iterable[str] = (),
                  allowed_hosts: Iterable[str] = ()) -> AccessPolicy:
    """An :class:`AccessPolicy` from user settings; :class:`SecurityError` names the bad one."""
    return AccessPolicy(token=None if token is None else check_token(token),
                        allowed_origins=frozenset(normalize_origin(o) for o in allowed_origins),
                        allowed_hosts=frozenset(normalize_host(h) for h in allowed_hosts))


# ---------------------------------------------------------------------------------------- the checks
def split_host_port(netloc: str) -> tuple[str, int | None]:
    """``("example.com", 8003)`` from ``example.com:8003``; IPv6 literals in brackets; hosts lower-cased."""
    netloc = netloc.strip().lower()
    if netloc.startswith("["):
        host, _, rest = netloc[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif netloc.count(":") == 1:
        host, port_text = netloc.split(":")
    else:
        host, port_text = netloc, ""
    port = int(port_text) if port_text.isdigit() else None
    return host.rstrip("."), port


def hosts_allowed(policy: AccessPolicy, bound_host: str | None) -> frozenset[str]:
    bound = set() if bound_host in WILDCARD_HOSTS or bound_host is None else {normalize_host_quietly(bound_host)}
    return LOOPBACK_HOSTS | policy.allowed_hosts | bound


def normalize_host_quietly(host: str) -> str:
    try:
        return normalize_host(host)
    except SecurityError:
        return host.lower()


def host_allowed(policy: AccessPolicy, host_header: str | None, bound_host: str | None) -> bool:
    """The DNS-rebinding check: does the Host header name this server?"""
    if not host_header:
        return False
    host, _ = split_host_port(host_header)
    return normalize_host_quietly(host) in hosts_allowed(policy, bound_host)


def origin_allowed(policy: AccessPolicy, origin: str, host_header: str | None, server: tuple | None) -> bool:
    """May a page from ``origin`` talk to this server (reached as ``host_header``, bound to ``server``)?"""
    if origin in policy.allowed_origins or origin in DEV_ORIGINS:
        return True
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https"):
        return False
    if host_header and parts.netloc.lower() == host_header.strip().lower():
        return True  # same origin as the page was served from (the Host header is checked first)
    bound_host, bound_port = server if server else (None, None)
    host, port = split_host_port(parts.netloc)
    port = port or {"http": 80, "https": 443}[parts.scheme]
    return port == bound_port and normalize_host_quietly(host) in hosts_allowed(policy, bound_host)


def tokens_match(given: str | None, expected: str) -> bool:
    """Compared in constant time, so the time taken does not tell how much of a guess was right."""
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def bearer_token(headers: Headers, query_string: bytes = b"", subprotocols: Iterable[str] = ()) -> str | None:
    """The token a request carries: ``Authorization: Bearer``, else (WebSockets) a subprotocol or ``?token=``."""
    scheme, _, credentials = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    for protocol in subprotocols:
        if protocol.startswith(WS_TOKEN_PREFIX):
            return protocol.removeprefix(WS_TOKEN_PREFIX)
    values = parse_qs(query_string.decode("latin-1")).get("token")
    return values[0] if values else None


def is_open_path(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


def has_body(headers: Headers) -> bool:
    return headers.get("content-length", "0").strip() not in ("", "0") or "transfer-encoding" in headers


def is_json(content_type: str | None) -> bool:
    media_type = (content_type or "").split(";")[0].strip().lower()
    return media_type == "application/json" or (media_type.startswith("application/") and media_type.endswith("+json"))


# ---------------------------------------------------------------------------------------- listening
def is_loopback(host: str) -> bool:
    """Does listening on ``host`` keep the server on this machine? Wildcards do not; names are resolved."""
    if host in WILDCARD_HOSTS:
        return False
    try:
        infos = socket.getaddrinfo(host.strip("[]"), None, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise SecurityError("--host", f"cannot resolve {host!r}: {error.strerror}") from None
    return all(ipaddress.ip_address(info[4][0].split("%")[0]).is_loopback for info in infos)


def listening_socket(host: str, port: int) -> socket.socket:
    """Bind ``host:port`` now, so the banner shows the real address and a port in use is a clear error."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    if host not in WILDCARD_HOSTS and ":" not in host:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    dualstack = host == "::" and socket.has_dualstack_ipv6()
    return socket.create_server((host.strip("[]") or "0.0.0.0", port), family=family, dualstack_ipv6=dualstack)


def interface_addresses() -> list[str]:
    """This machine's IPv4 addresses, one per interface that has one (Linux's SIOCGIFADDR), loopback last."""
    import fcntl  # POSIX only, and only needed here

    SIOCGIFADDR = 0x8915  # linux/sockios.h
    found = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        for _, name in socket.if_nameindex():
            try:
                packed = fcntl.ioctl(probe.fileno(), SIOCGIFADDR, struct.pack("256s", name.encode()[:15]))
            except OSError:
                continue  # no IPv4 address on this interface
            found.append(socket.inet_ntoa(packed[20:24]))
    return sorted(set(found), key=lambda address: (ipaddress.ip_address(address).is_loopback, address))


def url_host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def served_hosts(host: str) -> list[str]:
    """Host names a client may use for a server listening on ``host``, beyond loopback: the name or address
    it was given, or, listening on all interfaces, every interface's address and this machine's name."""
    if host not in WILDCARD_HOSTS:
        return [host.strip("[]")]
    names = [address for address in interface_addresses() if not ipaddress.ip_address(address).is_loopback]
    return names + [name for name in (socket.gethostname(),) if is_host_name(name)]


def is_host_name(name: str) -> bool:
    try:
        normalize_host(name)
    except SecurityError:
        return False
    return True


def check_exposure(host: str, policy: AccessPolicy, insecure: bool) -> bool:
    """Refuse to listen beyond loopback without a token (unless ``insecure``); True when on loopback only."""
    loopback = is_loopback(host)
    if not loopback and policy.token is None and not insecure:
        where = "all interfaces" if host in WILDCARD_HOSTS else host
        raise SecurityError("--token", f"listening on {where} lets other machines in, so a token is required: set "
                                       f"BATTSIM_TOKEN (make one with: {TOKEN_HINT}) or pass --token; --insecure "
                                       "serves without one (anyone who can reach the port can drive it)")
    return loopback
