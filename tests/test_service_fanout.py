"""WebSocket fan-out under a stalled subscriber, and a clean shutdown of `battsim serve` by signal."""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess

from typer.testing import CliRunner

from battsim.recordings import open_recording
from battsim.service import cli
from test_service_helpers import (
    WAIT_S,
    battsim_command,
    free_port,
    json_once_listening,
    next_of,
    receive,
    serve,
    wait_until,
)


def stalled_subscriber(port: int) -> socket.socket:
    """A WebSocket client that completes the handshake and then never reads a byte."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET /api/v1/ws/telemetry HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    return sock


def test_a_subscriber_that_never_reads_does_not_slow_the_others(tmp_path):
    # Ten seconds of frames of slack for the healthy client however busy the machine; the stalled one
    # is cut off by the send timeout once its socket buffers are full.
    settings = {"max_frames": 400, "max_bytes": 2**30, "send_timeout_s": 3.0, "lag_limit_s": WAIT_S}
    with serve(tmp_path, broadcaster=settings) as server:
        http = server.http
        port = int(server.base.rsplit(":", 1)[1])
        with server.telemetry() as healthy:
            stalled = stalled_subscriber(port)
            wait_until(lambda: len(http.get("/api/v1/ws/subscribers").json()["subscribers"]) == 2)
            # 216 jars a frame (about 60 kB), 40 frames a second: the stalled client's buffers fill in seconds.
            http.post("/api/v1/simulation/start", json={"preset": "thailand-9x24", "interval_seconds": 1,
                                                        "speed": 40}).raise_for_status()
            seqs, checks = [], 0

            def stalled_fell_behind() -> bool:
                stats = http.get("/api/v1/ws/subscribers").json()
                return stats["disconnected_slow"] > 0 or any(s["dropped"] > 0 for s in stats["subscribers"])

            while True:
                message = receive(healthy)
                assert message["type"] != "dropped", "the healthy subscriber must not lose frames"
                if message["type"] == "telemetry":
                    seqs.append(message["seq"])
                    assert len(message["data"]) == 216
                    checks += 1
                    if checks % 20 == 0 and stalled_fell_behind():
                        break
                assert len(seqs) < 40 * WAIT_S, "the stalled subscriber never fell behind"
            # The simulation and the healthy subscriber keep going at full pace after that.
            for _ in range(80):
                seqs.append(next_of(healthy, "telemetry")["seq"])
            stalled.close()
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
        http.post("/api/v1/simulation/stop").raise_for_status()


def test_a_slow_subscriber_is_told_how_many_frames_it_lost(tmp_path):
    # A tiny queue and a client that pauses: it gets a "dropped" message with the count, then frames again.
    with serve(tmp_path, broadcaster={"max_frames": 2}) as server:
        with server.telemetry(max_queue=1) as slow:
            receive(slow)  # the greeting
            server.http.post("/api/v1/simulation/start", json={"preset": "thailand-9x24", "interval_seconds": 1,
                                                               "speed": 200}).raise_for_status()
            wait_until(lambda: any(s["dropped"] > 0 for s in
                                   server.http.get("/api/v1/ws/subscribers").json()["subscribers"]))
            notice = next_of(slow, "dropped")
            assert notice["dropped"] > 0 and notice["dropped_total"] >= notice["dropped"]
            after = next_of(slow, "telemetry")
            assert after["seq"] > 0
        server.http.post("/api/v1/simulation/stop").raise_for_status()


def test_serve_prints_its_urls_and_a_sigterm_completes_the_recording(tmp_path):
    port = free_port()
    process = subprocess.Popen(
        battsim_command() + ["serve", "--port", str(port), "--data-dir", str(tmp_path), "--preset", "single-string",
                             "--interval", "1", "--speed", "100"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        status = wait_until(lambda: (s := json_once_listening(process, f"{base}/api/v1/simulation/status"))
                            and s["readings_generated"] >= 24 * 5 and s)
        assert status["is_running"] and status["preset"] == "single-string"
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=WAIT_S)
    finally:
        if process.poll() is None:
            process.kill()
    # uvicorn shuts down gracefully, then re-raises the signal it caught (so the exit status says SIGTERM).
    assert process.returncode in (0, -signal.SIGTERM), output
    assert "Application shutdown complete" in output
    for url in (f"{base}/api/v1/", f"{base}/docs", f"{base}/", f"ws://127.0.0.1:{port}/api/v1/ws/telemetry"):
        assert url in output
    with open_recording(status["recording_path"]) as recording:
        assert recording.run.status == "complete"
        assert recording.run.readings >= 24 * 5 and recording.run.readings % 24 == 0


def test_serve_refuses_bad_flags(tmp_path):
    runner = CliRunner()
    for flags, named in ((["--preset", "atlantis"], "--preset"), (["--interval", "0"], "--interval"),
                         (["--port", "70000"], "--port"), (["--speed", "0"], "--speed")):
        result = runner.invoke(cli.app, ["serve", "--data-dir", str(tmp_path), *flags])
        assert result.exit_code == 2 and named in result.output, (flags, result.output)
