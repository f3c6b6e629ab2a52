"""Support for the service tests (no tests here): a real uvicorn server on a free loopback port, and
WebSocket helpers that wait on conditions rather than sleeping."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvicorn
from websockets.sync.client import connect

from battsim.service.app import create_app

WAIT_S = 30.0  # the most any condition may take before a test fails


@dataclass
class Running:
    base: str
    ws: str
    data_dir: Path
    http: httpx.Client

    def telemetry(self, query: str = "", **kwargs):
        return self.connect(f"/api/v1/ws/telemetry{query}", **kwargs)

    def connect(self, path: str, **kwargs):
        """A WebSocket to ``path`` on this server."""
        return connect(f"{self.ws}{path}", open_timeout=WAIT_S, max_size=None, **kwargs)


@contextmanager
def serve(data_dir: Path, **app_options):
    """Run the app with uvicorn in a thread on 127.0.0.1 and a free port; stop it (cleanly) after."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(data_dir, **app_options), log_level="warning", ws_per_message_deflate=False,
                            lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + WAIT_S
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.01)
    base = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=base, timeout=WAIT_S) as http:
        try:
            yield Running(base, f"ws://127.0.0.1:{port}", data_dir, http)
        finally:
            server.should_exit = True
            thread.join(WAIT_S)
            sock.close()
            # A server left running would go on simulating in this process and slow every later test down.
            assert not thread.is_alive(), f"the server did not stop within {WAIT_S:.0f} s"


def receive(ws, timeout: float = WAIT_S) -> dict:
    return json.loads(ws.recv(timeout=timeout))


def next_of(ws, kind: str, predicate=lambda message: True, timeout: float = WAIT_S) -> dict:
    """The next message of type ``kind`` that satisfies ``predicate`` (others are skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no {kind} message within {timeout} s"
        message = receive(ws, remaining)
        if message["type"] == kind and predicate(message):
            return message


def reading_of(frame: dict, battery_id: str) -> dict:
    return next(reading for reading in frame["data"] if reading["battery_id"] == battery_id)


def wait_until(check, timeout: float = WAIT_S, every_s: float = 0.02):
    """Poll ``check`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(every_s)
    return result


# --------------------------------------------------------------------------- `battsim` as a subprocess
def battsim_command() -> list[str]:
    script = Path(sys.executable).parent / "battsim"
    return [str(script)] if script.exists() else [sys.executable, "-c", "from battsim.service.cli import main; main()"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def json_once_listening(process: subprocess.Popen, url: str):
    """GET ``url`` as JSON, or None while the server in ``process`` is not listening yet (it must not have died)."""
    try:
        return httpx.get(url, timeout=1).json()
    except httpx.TransportError:
        assert process.poll() is None, process.stdout.read()
        return None
