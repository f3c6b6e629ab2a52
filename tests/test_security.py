"""Who may talk to the server (issue 11): allowed hosts and origins, the bearer token, JSON bodies,
security headers, offline docs and the endpoint map.

The rules are unit-tested as pure functions; what a client sees is tested against a real uvicorn server
on a free loopback port (the WebSocket handshake included), and ``battsim serve`` in a subprocess.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess

import httpx
import pytest
from starlette.datastructures import Headers
from typer.testing import CliRunner
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from battsim.service.cli import app as cli
from battsim.service.docs import docs_csp
from battsim.service.security import (
    DEV_ORIGINS,
    AccessPolicy,
    SecurityError,
    access_policy,
    bearer_token,
    check_exposure,
    host_allowed,
    is_loopback,
    normalize_host,
    normalize_origin,
    origin_allowed,
    tokens_match,
)
from test_service_helpers import WAIT_S, battsim_command, free_port, json_once_listening, receive, serve, wait_until

TOKEN = "s3cret-token-for-tests-0123456789"
EVIL = "http://evil.example"


# ---------------------------------------------------------------------------------------------- rules
def test_origins_are_normalised_as_browsers_send_them_and_bad_ones_refused_naming_the_flag():
    assert normalize_origin("HTTPS://Dash.Example:443") == "https://dash.example"
    assert normalize_origin("http://dash.example:3000/") == "http://dash.example:3000"
    assert normalize_origin("http://[::1]:8080") == "http://[::1]:8080"
    assert normalize_origin("null") == "null"
    for bad in ("*", "dash.example", "ftp://dash.example", "http://dash.example/app", "http://x:99999", "http://u@x"):
        with pytest.raises(SecurityError) as refused:
            normalize_origin(bad)
        assert refused.value.flag == "--allowed-origin"


def test_hosts_are_names_or_addresses_without_scheme_or_port():
    assert normalize_host("Battsim.LAN.") == "battsim.lan"
    assert normalize_host("[::1]") == "::1"
    for bad in ("http://battsim.lan", "battsim.lan:8003", "", "a b"):
        with pytest.raises(SecurityError) as refused:
            normalize_host(bad)
        assert refused.value.flag == "--allowed-host"


def test_a_token_must_be_long_and_subprotocol_safe():
    for bad in ("short", "x" * 15, "has space in it 123", "slash/in/the/token/0123", "é" * 20):
        with pytest.raises(SecurityError) as refused:
            access_policy(token=bad)
        assert refused.value.flag == "--token"
    assert access_policy(token=TOKEN).token == TOKEN


def test_host_header_check_defeats_dns_rebinding():
    policy = access_policy(allowed_hosts=["battsim.lan"])
    for host in ("127.0.0.1:8003", "localhost:8003", "[::1]:8003", "LOCALHOST", "battsim.lan:8003", "10.0.0.5:8003"):
        assert host_allowed(policy, host, bound_host="10.0.0.5"), host
    # A hostile name that resolves to 127.0.0.1 arrives with its own name in Host.
    for host in ("evil.example", "evil.example:8003", "127.0.0.1.evil.example", "", None):
        assert not host_allowed(policy, host, bound_host="127.0.0.1"), host
    assert not host_allowed(AccessPolicy(), "0.0.0.0:8003", bound_host="0.0.0.0")  # a wildcard is no name


def test_origins_allowed_are_the_servers_own_local_dev_servers_and_the_configured():
    policy = access_policy(allowed_origins=["https://dash.example"])
    server = ("127.0.0.1", 8003)
    allowed = ["http://127.0.0.1:8003", "http://localhost:8003", "http://[::1]:8003", "https://dash.example",
               "http://localhost:5173", "http://127.0.0.1:3000"]
    for origin in allowed:
        assert origin_allowed(policy, origin, "127.0.0.1:8003", server), origin
    # Same origin as the Host header (behind a proxy that keeps it) is the server's own.
    assert origin_allowed(policy, "https://proxy.lan", "proxy.lan", server)
    for origin in (EVIL, "http://localhost:9999", "http://127.0.0.1:8004", "null", "http://dash.example",
                   "file://", "chrome-extension://abc"):
        assert not origin_allowed(policy, origin, "127.0.0.1:8003", server), origin
    assert "http://localhost:5173" in DEV_ORIGINS


def test_the_token_is_read_from_the_header_a_subprotocol_or_the_query():
    assert bearer_token(Headers({"authorization": f"Bearer {TOKEN}"})) == TOKEN
    assert bearer_token(Headers({"authorization": f"bearer  {TOKEN} "})) == TOKEN
    assert bearer_token(Headers({"authorization": f"Basic {TOKEN}"})) is None
    assert bearer_token(Headers(), subprotocols=["battsim", f"battsim.token.{TOKEN}"]) == TOKEN
    assert bearer_token(Headers(), query_string=f"battery_id=B1&token={TOKEN}".encode()) == TOKEN
    assert bearer_token(Headers()) is None
    assert tokens_match(TOKEN, TOKEN) and not tokens_match(TOKEN[:-1], TOKEN) and not tokens_match(None, TOKEN)


def test_listening_beyond_loopback_needs_a_token_unless_insecure():
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1") and is_loopback("127.0.0.2")
    assert not is_loopback("0.0.0.0") and not is_loopback("::")
    with pytest.raises(SecurityError) as refused:
        check_exposure("0.0.0.0", AccessPolicy(), insecure=False)
    assert refused.value.flag == "--token" and "BATTSIM_TOKEN" in str(refused.value)
    assert check_exposure("0.0.0.0", AccessPolicy(), insecure=True) is False
    assert check_exposure("0.0.0.0", access_policy(token=TOKEN), insecure=False) is False
    assert check_exposure("127.0.0.1", AccessPolicy(), insecure=False) is True


def test_the_docs_policy_allows_exactly_the_inline_script_of_the_page():
    policy = docs_csp("<script src='/x.js'></script><script>\nconst ui = 1\n</script>")
    # sha256 of "\nconst ui = 1\n", base64.
    assert "'sha256-" in policy and policy.count("'sha256-") == 1
    assert "'unsafe-inline'" not in policy.split("script-src")[1].split(";")[0]


# ---------------------------------------------------------------------------------------------- a real server
@pytest.fixture
def server(tmp_path):
    with serve(tmp_path / "recordings", access=access_policy(allowed_origins=["https://dash.example"])) as running:
        yield running


@pytest.fixture
def locked(tmp_path):
    """A server with a token."""
    with serve(tmp_path / "recordings", access=access_policy(token=TOKEN)) as running:
        yield running


def port_of(running) -> int:
    return int(running.base.rsplit(":", 1)[1])


def test_cors_answers_allowed_origins_only_and_never_with_credentials(server):
    for origin in ("https://dash.example", "http://localhost:5173", f"http://localhost:{port_of(server)}"):
        response = server.http.options("/api/v1/simulation/start", headers={
            "Origin": origin, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type"})
        assert response.status_code == 204, origin
        assert response.headers["access-control-allow-origin"] == origin
        assert "authorization" in response.headers["access-control-allow-headers"]
        assert "access-control-allow-credentials" not in response.headers
        assert server.http.get("/api/v1/presets", headers={"Origin": origin}).headers[
            "access-control-allow-origin"] == origin
    preflight = server.http.options("/api/v1/simulation/start", headers={
        "Origin": EVIL, "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 403 and "access-control-allow-origin" not in preflight.headers
    assert "--allowed-origin" in preflight.json()["detail"]


def test_a_hostile_page_cannot_drive_the_api_with_simple_requests(server):
    # No preflight for these in a browser; the Origin header gives the page away.
    started = server.http.post("/api/v1/simulation/start", headers={"Origin": EVIL},
                               json={"preset": "single-string", "paused": True})
    assert started.status_code == 403
    assert server.http.get("/api/v1/simulation/status").json()["is_running"] is False
    assert server.http.post("/api/v1/simulation/stop", headers={"Origin": EVIL}).status_code == 403
    assert server.http.get("/api/v1/recordings", headers={"Origin": "null"}).status_code == 403


def test_a_text_plain_body_on_a_state_changing_endpoint_is_415(server):
    server.http.post("/api/v1/simulation/start", json={"preset": "single-string", "paused": True}).raise_for_status()
    server.http.post("/api/v1/scenarios/apply", json={"scenario": "power_outage"}).raise_for_status()
    # A text/plain POST is a "simple" request: a browser sends it cross-site without a preflight.
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None):
        headers = {"Content-Type": content_type} if content_type else {}
        refused = server.http.post("/api/v1/scenarios/clear", content=b"[]", headers=headers)
        assert refused.status_code == 415, content_type
        assert "application/json" in refused.json()["detail"]
    assert server.http.get("/api/v1/scenarios/active").json() != []  # nothing was cleared
    assert server.http.post("/api/v1/scenarios/clear", content=b"[]",
                            headers={"Content-Type": "application/json; charset=utf-8"}).status_code == 200
    assert server.http.post("/api/v1/simulation/pause").status_code == 200  # no body: nothing to check
    server.http.post("/api/v1/simulation/stop").raise_for_status()


def test_a_rebound_host_name_is_refused_on_http_and_websocket(server):
    refused = server.http.get("/api/v1/recordings", headers={"Host": f"evil.example:{port_of(server)}"})
    assert refused.status_code == 400 and "--allowed-host" in refused.json()["detail"]
    assert server.http.get("/health", headers={"Host": f"localhost:{port_of(server)}"}).status_code == 200
    # The browser connects to 127.0.0.1 but names the rebound host.
    with socket.create_connection(("127.0.0.1", port_of(server))) as sock, pytest.raises(InvalidStatus) as rejected:
        connect(f"ws://evil.example:{port_of(server)}/api/v1/ws/telemetry", sock=sock, open_timeout=WAIT_S)
    assert rejected.value.response.status_code == 400


def test_the_websocket_checks_the_origin(server):
    with pytest.raises(InvalidStatus) as rejected:
        server.telemetry(origin=EVIL)
    assert rejected.value.response.status_code == 403
    assert b"--allowed-origin" in rejected.value.response.body
    for origin in (f"http://127.0.0.1:{port_of(server)}", "https://dash.example"):
        with server.telemetry(origin=origin) as ws:
            assert receive(ws)["type"] == "status"
    with server.telemetry() as ws:  # no Origin: not a browser (the token, when set, is what keeps it out)
        assert receive(ws)["type"] == "status"


def test_with_a_token_every_endpoint_needs_it_but_health_and_the_dashboards_files(locked):
    http = locked.http
    for path in ("/api/v1/presets", "/api/v1/simulation/status", "/api/v1/recordings", "/api/v1/", "/api/v1/alarms"):
        missing = http.get(path)
        assert missing.status_code == 401, path
        assert missing.headers["www-authenticate"].startswith("Bearer")
        assert http.get(path, headers={"Authorization": f"Bearer {TOKEN}x"}).status_code == 401
        assert http.get(path, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200, path
    assert http.post("/api/v1/simulation/start", json={"preset": "single-string"}).status_code == 401
    assert http.get(f"/api/v1/presets?token={TOKEN}").status_code == 401  # HTTP: the header only (URLs get logged)
    assert http.get("/api/v1/simulation/status", headers={"Authorization": f"Bearer {TOKEN}"}).json()["is_running"] is False
    assert http.post("/api/v1/query", json={"recording": "x", "sql": "SELECT 1"}).status_code == 401
    for path in ("/health", "/docs", "/openapi.json", "/static/dashboard/main.js", "/static/docs/swagger-ui.css"):
        assert http.get(path).status_code == 200, path
    assert http.get("/", headers={"Accept": "text/html"}).status_code == 200
    # /docs can send it: the OpenAPI document declares the scheme (and /health needs none).
    schema = http.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer", "description": "battsim serve --token / BATTSIM_TOKEN"}
    assert schema["paths"]["/health"]["get"]["security"] == []


def test_with_a_token_the_websocket_takes_it_as_a_header_a_subprotocol_or_a_query_parameter(locked):
    for attempt in ({}, {"additional_headers": {"Authorization": "Bearer wrong-token-0123456789"}},
                    {"subprotocols": ["battsim", "battsim.token.wrong-token-0123456789"]}):
        with pytest.raises(InvalidStatus) as rejected:
            locked.telemetry(**attempt)
        assert rejected.value.response.status_code == 401
    with locked.telemetry(additional_headers={"Authorization": f"Bearer {TOKEN}"}) as ws:
        assert receive(ws)["type"] == "status"
    with locked.telemetry(subprotocols=["battsim", f"battsim.token.{TOKEN}"]) as ws:
        assert ws.subprotocol == "battsim"  # the token is never echoed back
        assert receive(ws)["type"] == "status"
    with locked.telemetry(f"?token={TOKEN}") as ws:
        assert receive(ws)["type"] == "status"
    with pytest.raises(InvalidStatus):
        connect(f"{locked.ws}/api/v1/ws/replay", open_timeout=WAIT_S)
    with connect(f"{locked.ws}/api/v1/ws/replay?token={TOKEN}", open_timeout=WAIT_S) as ws:
        assert receive(ws)["type"] == "playback_state"


def test_the_dashboard_and_docs_carry_security_headers(server):
    for path in ("/", "/docs", "/api/v1/presets", "/static/dashboard/main.js"):
        headers = server.http.get(path, headers={"Accept": "text/html"}).headers
        assert headers["x-frame-options"] == "DENY", path
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
    dashboard = server.http.get("/", headers={"Accept": "text/html"}).headers["content-security-policy"]
    assert "script-src 'self';" in dashboard and "unsafe-eval" not in dashboard


def test_docs_are_served_from_the_package_and_work_offline(server):
    page = server.http.get("/docs")
    assert page.status_code == 200
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert "/static/docs/swagger-ui-bundle.js" in sources and "/static/docs/swagger-ui.css" in sources
    assert all(source.startswith("/") or source.startswith("data:") for source in sources), sources
    assert "cdn" not in page.text
    bundle = server.http.get("/static/docs/swagger-ui-bundle.js")
    assert bundle.status_code == 200 and "SwaggerUIBundle" in bundle.text
    assert server.http.get("/static/docs/LICENSE").status_code == 200
    assert server.http.get("/redoc").status_code == 404  # ReDoc came from a CDN: gone rather than blank
    # The page's own inline script is allowed by hash; nothing else inline.
    assert page.headers["content-security-policy"] == docs_csp(page.text)


def test_the_api_root_answers_with_the_map_of_every_endpoint(server):
    answer = server.http.get("/api/v1/")
    assert answer.status_code == 200
    endpoints = answer.json()["endpoints"]
    assert all(set(endpoint) == {"method", "path", "summary"} and endpoint["summary"] for endpoint in endpoints)
    listed = {(endpoint["method"], endpoint["path"]) for endpoint in endpoints}
    documented = {(method.upper(), path) for path, operations in server.http.get("/openapi.json").json()["paths"].items()
                  for method in operations}
    assert documented <= listed
    assert {("WS", "/api/v1/ws/telemetry"), ("WS", "/api/v1/ws/replay"), ("GET", "/docs")} <= listed
    assert server.http.get("/api/v1", follow_redirects=True).json() == answer.json()


# ---------------------------------------------------------------------------------------------- battsim serve
def test_serve_refuses_to_listen_beyond_loopback_without_a_token(tmp_path):
    runner = CliRunner()
    env = {"BATTSIM_TOKEN": ""}
    for args, flag in ((["--host", "0.0.0.0"], "--token"), (["--host", "::"], "--token"),
                       (["--token", "short"], "--token"), (["--allowed-origin", "http://x/app"], "--allowed-origin"),
                       (["--allowed-host", "http://x"], "--allowed-host"), (["--host", "no-such-host.invalid"], "--host")):
        result = runner.invoke(cli, ["serve", "--data-dir", str(tmp_path), *args], env=env)
        assert result.exit_code == 2, (args, result.output)
        assert f"error: {flag}:" in result.output, result.output
        assert "Traceback" not in result.output
    # The lists also come from the environment, space-separated; a bad entry is named.
    for variable, flag, value in (("BATTSIM_ALLOWED_ORIGINS", "--allowed-origin", "http://fine.example http://bad.example/x"),
                                  ("BATTSIM_ALLOWED_HOSTS", "--allowed-host", "fine.example bad.example:80")):
        result = runner.invoke(cli, ["serve", "--data-dir", str(tmp_path)], env={**env, variable: value})
        assert result.exit_code == 2 and f"error: {flag}:" in result.output, result.output
        assert "fine.example'" not in result.output and "bad.example" in result.output


def test_serve_says_when_its_port_is_taken(tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = CliRunner().invoke(cli, ["serve", "--data-dir", str(tmp_path), "--port", str(port)])
    assert result.exit_code == 2, result.output
    assert f"error: --host/--port: cannot listen on 127.0.0.1:{port}" in result.output


def test_serve_with_a_token_from_the_environment_guards_every_endpoint_and_keeps_it_out_of_the_banner(tmp_path):
    port = free_port()
    process = subprocess.Popen(battsim_command() + ["serve", "--port", str(port), "--data-dir", str(tmp_path)],
                               env={**os.environ, "BATTSIM_TOKEN": TOKEN}, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: json_once_listening(process, f"{base}/health"))
        assert httpx.get(f"{base}/api/v1/presets").status_code == 401
        assert httpx.get(f"{base}/api/v1/presets", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=WAIT_S)
    finally:
        if process.poll() is None:
            process.kill()
    assert f"{base}/api/v1/" in output and "required on every request" in output
    assert TOKEN not in output
