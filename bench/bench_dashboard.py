"""Dashboard: what the page costs the browser with the full fleet (1,944 jars) at a 1 s interval.

    .venv/bin/python bench/bench_dashboard.py [--seconds 15] [--speeds 1 10 60]

Starts `battsim serve --preset thailand-full --interval 1` as its own process, opens the dashboard in
Debian's headless chromium (Playwright, /usr/bin/chromium) and, for each speed in turn (changed with
POST /simulation/speed), measures over --seconds from the page's own counters (window.__battsim):
the main-thread time spent parsing telemetry and updating the page's store, and drawing the charts,
heat maps and detail; the telemetry frames received, parsed and skipped by the page; the frames the
server dropped for it; and the animation frames the browser ran.

Baseline, measured in the same run and the same browser: JSON.parse alone of a real telemetry frame,
times the frames received per second (the least any page showing every frame must spend). The ratio
is the page's main-thread time over that baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright
from websockets.sync.client import connect

from results_file import Measurement

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
COUNTERS = """() => { const b = window.__battsim, f = b.feeds().live;
  return {parse_ms: b.parseMs, draw_ms: b.drawMs, chart_ms: b.chartMs, heat_ms: b.heatMs,
          parsed: b.framesParsed, received: f.received,
          skipped: f.decimated, server_dropped: f.serverDropped, animation_frames: b.animationFrames, draws: b.draws}; }"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def one_frame(ws_url: str) -> str:
    with connect(ws_url, max_size=None, open_timeout=30) as ws:
        while True:
            text = ws.recv(timeout=30)
            if text.startswith('{"type":"telemetry"'):
                return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--speeds", type=float, nargs="+", default=[1.0, 10.0, 60.0])
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"needs Debian's chromium at {CHROMIUM} (`make test` installs it)")
    measurement = Measurement("bench_dashboard")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    battsim = Path(sys.executable).parent / "battsim"
    rows = []
    with tempfile.TemporaryDirectory() as data_dir:
        server = subprocess.Popen([str(battsim), "serve", "--port", str(port), "--data-dir", data_dir, "--preset",
                                   "thailand-full", "--interval", "1", "--speed", str(args.speeds[0]),
                                   "--no-random-outages"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            with httpx.Client(base_url=base, timeout=30) as http:
                deadline = time.monotonic() + 60
                while True:
                    try:
                        if http.get("/api/v1/simulation/status").json().get("ticks", 0) >= 2:
                            break
                    except httpx.TransportError:
                        pass
                    if time.monotonic() > deadline:
                        raise SystemExit("the server did not start")
                    time.sleep(0.2)
                frame = one_frame(f"ws://127.0.0.1:{port}/api/v1/ws/telemetry")
                with sync_playwright() as playwright:
                    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                    page = browser.new_page(viewport={"width": 1600, "height": 1000})
                    page.goto(base + "/")
                    page.wait_for_function("() => window.__battsim && window.__battsim.jars === 1944", timeout=60_000)
                    # The baseline: JSON.parse alone of a real frame, in this browser.
                    parse_ms_per_frame = page.evaluate("""(text) => { const t = performance.now();
                        for (let k = 0; k < 20; k++) JSON.parse(text); return (performance.now() - t) / 20; }""", frame)
                    for speed in args.speeds:
                        http.post("/api/v1/simulation/speed", json={"speed": speed}).raise_for_status()
                        time.sleep(2)  # let the new rate settle before measuring (not a pass/fail wait)
                        before, wall0 = page.evaluate(COUNTERS), time.monotonic()
                        time.sleep(args.seconds)
                        after, wall = page.evaluate(COUNTERS), time.monotonic() - wall0
                        rate = {key: (after[key] - before[key]) / wall for key in after}
                        baseline_ms = parse_ms_per_frame * rate["received"]
                        rows.append({"speed": speed, **{k: round(v, 2) for k, v in rate.items()},
                                     "baseline_ms": round(baseline_ms, 2),
                                     "ratio": round((rate["parse_ms"] + rate["draw_ms"]) / baseline_ms, 2)
                                     if baseline_ms else None})
                    browser.close()
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(30)
    print(f"dashboard, full fleet (1,944 jars) at a 1 s interval, one ~{len(frame) / 1e3:.0f} kB frame per tick, "
          f"on {os.cpu_count()} cores; per wall second over {args.seconds:g} s:")
    print(f"  baseline: JSON.parse of one frame {parse_ms_per_frame:.2f} ms in this browser")
    header = ("speed", "received", "parsed", "skipped", "srv drop", "rAF", "draws", "parse ms", "draw ms",
              "busy %", "× baseline")
    print("  " + " ".join(f"{h:>10}" for h in header))
    for row in rows:
        busy = (row["parse_ms"] + row["draw_ms"]) / 10  # ms per 1000 ms, in %
        values = (row["speed"], row["received"], row["parsed"], row["skipped"], row["server_dropped"],
                  row["animation_frames"], row["draws"], row["parse_ms"], row["draw_ms"], busy, row["ratio"])
        print("  " + " ".join(f"{v:>10.2f}" if isinstance(v, float) else f"{str(v):>10}" for v in values))
    print(json.dumps(rows))
    measurement.save({"seconds": args.seconds, "parse_ms_per_frame": round(parse_ms_per_frame, 3), "speeds": rows})


if __name__ == "__main__":
    main()
