"""`battsim serve` configured from the environment (issue 24): every flag also from a BATTSIM_* variable, PORT and
HOST as platforms set them (flag > BATTSIM_PORT > PORT > default), bad values named by their variable, and
forwarded headers believed from the proxies --forwarded-allow-ips names. Real subprocesses on 127.0.0.1."""

from __future__ import annotations

import asyncio
import os
import subprocess
import threading
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import typer.main
from typer.testing import CliRunner

from battsim.service.cli import app
from test_service_helpers import WAIT_S, battsim_command, free_port, wait_until


def clean_environment(**variables: str) -> dict[str, str]:
    """This process's environment without any battsim or platform setting, plus ``variables``."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("BATTSIM_") and key not in ("PORT", "HOST")}
    return {**env, **variables}


@contextmanager
def serving(*args: str, **variables: str):
    """`battsim serve ARGS` with the environment ``variables``; yields (process, log lines), stopped after."""
    process = subprocess.Popen([*battsim_command(), "serve", *args], env=clean_environment(**variables),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True)
    reader.start()
    try:
        yield process, lines
    finally:
        process.terminate()
        process.wait(WAIT_S)
        reader.join(WAIT_S)


def health_on(process, port: int):
    def answer():
        assert process.poll() is None, "battsim serve exited"
        try:
            return httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
        except httpx.TransportError:
            return None
    return wait_until(answer, timeout=WAIT_S, every_s=0.1)


def test_port_from_the_platform_s_port_variable(tmp_path):
    port = free_port()
    with serving(PORT=str(port), BATTSIM_DATA_DIR=str(tmp_path / "data")) as (process, lines):
        assert health_on(process, port).json()["status"] == "healthy"
        wait_until(lambda: any(f"http://127.0.0.1:{port}/api/v1/" in line for line in lines))  # the banner says so
    assert (tmp_path / "data").is_dir()


def test_a_flag_beats_battsim_port_which_beats_port(tmp_path):
    flag, ours, platform = free_port(), free_port(), free_port()
    with serving("--port", str(flag), "--data-dir", str(tmp_path), BATTSIM_PORT=str(ours), PORT=str(platform)) as (process, _):
        assert health_on(process, flag).status_code == 200
    with serving("--data-dir", str(tmp_path), BATTSIM_PORT=str(ours), PORT=str(platform)) as (process, _):
        assert health_on(process, ours).status_code == 200
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{platform}/health", timeout=2)


def test_the_boot_fleet_from_the_environment(tmp_path):
    port = free_port()
    with serving("--speed", "2", PORT=str(port), BATTSIM_PRESET="single-string", BATTSIM_SPEED="30",
                 BATTSIM_INTERVAL="10", BATTSIM_SEED="7", BATTSIM_RANDOM_OUTAGES="false",
                 BATTSIM_DATA_DIR=str(tmp_path), BATTSIM_TIMELINE="daily-outage") as (process, _):
        health_on(process, port)
        status = httpx.get(f"http://127.0.0.1:{port}/api/v1/simulation/status", timeout=WAIT_S).json()
    assert (status["preset"], status["interval_seconds"], status["seed"]) == ("single-string", 10, 7)
    assert status["speed"] == 2  # the flag, not BATTSIM_SPEED
    assert status["timelines"] == ["daily-outage"]  # and no random outages (BATTSIM_RANDOM_OUTAGES=false)
    assert status["recording_path"].startswith(str(tmp_path))


@pytest.mark.parametrize(("variables", "named", "words"), [
    ({"PORT": "70000"}, "PORT", "outside 1-65535"),
    ({"BATTSIM_PORT": "0", "PORT": "8080"}, "BATTSIM_PORT", "outside 1-65535"),
    ({"PORT": "eighty"}, "PORT", "valid integer"),
    ({"BATTSIM_INTERVAL": "99"}, "BATTSIM_INTERVAL", "outside 1-60"),
    ({"BATTSIM_SPEED": "0"}, "BATTSIM_SPEED", "more than 0"),
    ({"BATTSIM_PRESET": "mars"}, "BATTSIM_PRESET", "unknown preset"),
    ({"BATTSIM_BACKFILL": "2d"}, "BATTSIM_BACKFILL", "needs a fleet"),
    ({"BATTSIM_FORWARDED_ALLOW_IPS": "10.0.0.1,proxy.lan"}, "BATTSIM_FORWARDED_ALLOW_IPS", "not an IP address"),
    ({"BATTSIM_RANDOM_OUTAGES": "perhaps"}, "BATTSIM_RANDOM_OUTAGES", "valid boolean"),
    ({"HOST": "0.0.0.0"}, "--token", "BATTSIM_TOKEN"),  # beyond loopback a token is required, wherever the host came from
])
def test_a_bad_value_in_a_variable_is_refused_naming_the_variable(tmp_path, variables, named, words):
    # In process (typer's runner): the same command and checks, without a Python start per case.
    unset = {key: None for key in os.environ if key.startswith("BATTSIM_") or key in ("PORT", "HOST")}
    result = CliRunner().invoke(app, ["serve", "--data-dir", str(tmp_path)],
                                env={**unset, **variables, "COLUMNS": "200"})
    output = " ".join(result.output.split())
    assert result.exit_code == 2, output
    assert named in output and words in output, output


def test_a_flag_beats_a_bad_variable(tmp_path):
    port = free_port()
    with serving("--port", str(port), "--interval", "5", "--data-dir", str(tmp_path),
                 PORT="not-a-port", BATTSIM_INTERVAL="99") as (process, _):
        assert health_on(process, port).status_code == 200


def test_every_serve_flag_has_a_battsim_variable():
    command = typer.main.get_command(app).commands["serve"]
    options = [param for param in command.params if param.param_type_name == "option" and param.name != "help"]
    assert len(options) >= 20
    for option in options:
        names = [option.envvar] if isinstance(option.envvar, str) else list(option.envvar or [])
        assert names and names[0].startswith("BATTSIM_"), option.name
        assert names[0] == "BATTSIM_" + option.name.upper() or option.name in ("allowed_origin", "allowed_host"), names
        assert option.show_envvar, option.name
    assert {tuple(o.envvar) for o in options if o.name in ("host", "port")} == {("BATTSIM_HOST", "HOST"),
                                                                                ("BATTSIM_PORT", "PORT")}


@pytest.mark.parametrize(("trusted", "logged"), [(None, "203.0.113.7"), ("10.9.9.9", "127.0.0.1")])
def test_forwarded_headers_are_believed_from_trusted_proxies_only(tmp_path, trusted, logged):
    port = free_port()
    variables = {"BATTSIM_FORWARDED_ALLOW_IPS": trusted} if trusted else {}
    with serving("--port", str(port), "--data-dir", str(tmp_path), **variables) as (process, lines):
        health_on(process, port)
        answer = httpx.get(f"http://127.0.0.1:{port}/api/v1/simulation/status", timeout=WAIT_S,
                           headers={"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"})
        assert answer.status_code == 200
        # uvicorn's access log names the client as the proxy reported it, when it trusts the proxy (127.0.0.1 here).
        line = wait_until(lambda: next((x for x in lines if "GET /api/v1/simulation/status" in x), None))
    assert f"{logged}:" in line, line


# ------------------------------------------------------------------------------------------ deployment files
ROOT = Path(__file__).resolve().parent.parent
TOKEN = "t" * 32


def test_the_procfile_start_command_serves_on_port_with_a_token(tmp_path):
    """The Procfile's web command as a platform runs it (bash, PORT set), on loopback here: BATTSIM_HOST is the one
    thing changed, and only through the environment, as the command leaves it to."""
    [command] = [line.removeprefix("web:").strip() for line in (ROOT / "Procfile").read_text().splitlines()
                 if line.startswith("web:")]
    port = free_port()
    environment = clean_environment(PORT=str(port), BATTSIM_HOST="127.0.0.1", BATTSIM_TOKEN=TOKEN,
                                    BATTSIM_DATA_DIR=str(tmp_path),
                                    PATH=f"{Path(battsim_command()[0]).parent}{os.pathsep}{os.environ['PATH']}")
    process = subprocess.Popen(["bash", "-c", command], env=environment, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        assert health_on(process, port).status_code == 200
        base = f"http://127.0.0.1:{port}/api/v1/simulation/status"
        assert httpx.get(base, timeout=WAIT_S).status_code == 401
        assert httpx.get(base, timeout=WAIT_S, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    finally:
        process.terminate()
        output = process.communicate(timeout=WAIT_S)[0]
    assert "Application shutdown complete" in output


def test_the_dockerfile_healthcheck_command_probes_health(tmp_path):
    """The image is not built here; its HEALTHCHECK command is run as Docker would (sh -c) against a real server."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    [healthcheck] = [line for line in text.splitlines() if line.startswith("HEALTHCHECK")]
    probe = healthcheck.split(" CMD ", 1)[1].strip()
    assert "USER battsim" in text and 'VOLUME ["/data"]' in text and 'CMD ["battsim", "serve"]' in text
    port = free_port()
    with serving("--data-dir", str(tmp_path), PORT=str(port)) as (process, _):
        health_on(process, port)
        assert subprocess.run(["sh", "-c", probe], env=clean_environment(PORT=str(port)), timeout=WAIT_S).returncode == 0
    assert subprocess.run(["sh", "-c", probe], env=clean_environment(PORT=str(port)), timeout=WAIT_S,
                          capture_output=True).returncode != 0  # and fails once nothing answers


def test_the_readme_deployment_table_lists_every_flag_and_variable():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Deployment\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `--")]
    command = typer.main.get_command(app).commands["serve"]
    for option in (p for p in command.params if p.param_type_name == "option" and p.name != "help"):
        variables = [option.envvar] if isinstance(option.envvar, str) else list(option.envvar)
        [row] = [row for row in rows if f"`{option.opts[0]}" in row.split("|")[1]]
        assert all(f"`{variable}`" in row for variable in variables), row


# ------------------------------------------------------------------------------------------ behind a reverse proxy
class PrefixProxy:
    """A reverse proxy on 127.0.0.1 for a server under a path prefix, as a platform's router would be: /battsim/X is
    the server's /X, with X-Forwarded-For and X-Forwarded-Proto added; a WebSocket upgrade is tunnelled. One request
    per connection (it asks the server to close after each), which browsers handle as any server's close."""

    def __init__(self, upstream_port: int, prefix: str = "/battsim", client: str = "203.0.113.9"):
        self.upstream_port, self.prefix, self.client = upstream_port, prefix, client
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    async def _pipe(self, reader, writer):
        try:
            while chunk := await reader.read(65536):
                writer.write(chunk)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _handle(self, reader, writer):
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return
        request, *headers = head[:-4].split("\r\n")
        method, target, version = request.split(" ", 2)
        if target != self.prefix and not target.startswith(self.prefix + "/"):
            writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            writer.close()
            return
        upgrade = any(line.lower().startswith("upgrade:") for line in headers)
        kept = [line for line in headers if upgrade or not line.lower().startswith("connection:")]
        forwarded = [f"{method} {target[len(self.prefix):] or '/'} {version}", *kept,
                     *([] if upgrade else ["Connection: close"]),
                     f"X-Forwarded-For: {self.client}", "X-Forwarded-Proto: http", "", ""]
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        upstream_writer.write("\r\n".join(forwarded).encode("latin-1"))
        await asyncio.gather(self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer))

    def __enter__(self):
        self.thread.start()
        self.server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._handle, "127.0.0.1", self.port), self.loop).result(WAIT_S)
        return self

    def __exit__(self, *exc):
        async def stop():
            self.server.close()
            for task in asyncio.all_tasks() - {asyncio.current_task()}:
                task.cancel()
        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(WAIT_S)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(WAIT_S)


CHROMIUM = Path("/usr/bin/chromium")


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")
def test_the_dashboard_and_its_websocket_work_behind_a_reverse_proxy_under_a_path_prefix(tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    port = free_port()
    with serving("--data-dir", str(tmp_path), PORT=str(port)) as (process, lines), PrefixProxy(port) as proxy:
        health_on(process, port)
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM),
                                                 args=["--headless", "--no-sandbox", "--disable-gpu"])
            try:
                page = browser.new_page()
                page.set_default_timeout(20_000)
                errors = []
                page.on("pageerror", lambda error: errors.append(str(error)))
                page.goto(f"http://127.0.0.1:{proxy.port}/battsim/")
                # The page, its scripts and the live WebSocket all came through the proxy, under its prefix.
                page.wait_for_function("() => window.__battsim && window.__battsim.feeds().live.state === 'open' "
                                       "&& document.querySelectorAll('#preset option').length > 0")
                page.select_option("#preset", "single-string")
                page.fill("#interval", "1")
                page.fill("#speed", "60")
                page.click("#start")
                page.wait_for_function("() => window.__battsim.framesParsed >= 3 && window.__battsim.jars === 24")
                assert errors == []
            finally:
                browser.close()
        # The server believed the local proxy's forwarded client address (--forwarded-allow-ips defaults to it).
        line = wait_until(lambda: next((x for x in lines if "\"POST /api/v1/simulation/start HTTP" in x), None))
        assert "203.0.113.9:" in line, line
