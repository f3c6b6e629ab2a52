"""Live service: CPU share and tick-to-receive latency of the full fleet at a 1 s interval.

    .venv/bin/python bench/bench_live.py [--subscribers 50] [--seconds 15]

Starts `battsim serve --preset thailand-full --interval 1 --speed 1` (1,944 jars, one ~570 kB
telemetry frame a second) as its own process, then measures in three phases of --seconds each:
  0. no subscriber: the simulation, alarms and recording alone (the baseline),
  1. one WebSocket subscriber,
  N. --subscribers subscribers,
the server's CPU share (its user + system time over wall time, from /proc; 100 % = one core) and, for
the subscribers, the latency from the moment a tick is due (its virtual time, which at 1x equals the
wall clock) to the moment a client has received its frame: p50 and p99 over all frames of all
subscribers. Also reported: frames lost (dropped or gaps in seq), the client process's own CPU share
(clients share the machine), and the in-process cost of one tick of the world (simulate + measure)
as a floor for the server's share. Bounded: 3 phases × --seconds, at most --subscribers clients.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from datetime import datetime

import numpy as np
from websockets.asyncio.client import connect

from battsim.engine.fleet import build_fleet, get_preset
from battsim.engine.world import World
from harness import cpu_seconds, free_port, served_full_fleet
from results_file import Measurement


def tick_cost_ms(ticks: int = 60) -> float:
    """Wall ms per tick of the full fleet simulated in this process, one tick per batch as live mode does."""
    class Discard:
        def readings(self, batch):
            pass

        def event(self, event):
            pass

    fleet = build_fleet(get_preset("thailand-full"), seed=0)
    world = World(fleet, Discard(), interval_s=1, batch_rows=fleet.size)
    world.run_until(5)
    began = time.perf_counter()
    world.run_until(5 + ticks)
    return (time.perf_counter() - began) / ticks * 1e3


class Subscriber:
    def __init__(self):
        self.latencies_s: list[float] = []
        self.seqs: list[int] = []
        self.dropped = 0

    async def run(self, url: str, ready: asyncio.Event, stop: asyncio.Event) -> None:
        async with connect(url, max_size=None, compression=None) as ws:
            ready.set()
            while not stop.is_set():
                try:
                    text = await asyncio.wait_for(ws.recv(), 0.5)
                except TimeoutError:
                    continue
                received = time.time()
                # Read the header only: parsing 570 kB of JSON per frame in 50 clients would measure the clients.
                if text.startswith('{"type":"telemetry"'):
                    seq_end = text.index(",", 26)
                    self.seqs.append(int(text[26:seq_end]))
                    sim_time = text[seq_end + 13:text.index('"', seq_end + 13)]
                    self.latencies_s.append(received - datetime.fromisoformat(sim_time).timestamp())
                elif text.startswith('{"type": "dropped"') or text.startswith('{"type":"dropped"'):
                    self.dropped += 1


async def phase(url: str, pid: int, subscribers: int, seconds: float) -> dict:
    stop = asyncio.Event()
    clients = [Subscriber() for _ in range(subscribers)]
    readies = [asyncio.Event() for _ in clients]
    tasks = [asyncio.create_task(c.run(url, r, stop)) for c, r in zip(clients, readies)]
    await asyncio.gather(*(r.wait() for r in readies))
    await asyncio.sleep(2.0)  # let every subscriber settle in
    for client in clients:
        client.latencies_s.clear()
        client.seqs.clear()
    cpu0, own0, wall0 = cpu_seconds(pid), time.process_time(), time.monotonic()
    await asyncio.sleep(seconds)
    cpu1, own1, wall1 = cpu_seconds(pid), time.process_time(), time.monotonic()
    stop.set()
    await asyncio.gather(*tasks)
    latencies = np.array([lat for c in clients for lat in c.latencies_s])
    gaps = sum(int(np.sum(np.diff(c.seqs) - 1)) for c in clients if len(c.seqs) > 1)
    return {
        "subscribers": subscribers,
        "server_cpu": (cpu1 - cpu0) / (wall1 - wall0),
        "client_cpu": (own1 - own0) / (wall1 - wall0),
        "frames": len(latencies),
        "p50_ms": float(np.percentile(latencies, 50) * 1e3) if len(latencies) else float("nan"),
        "p99_ms": float(np.percentile(latencies, 99) * 1e3) if len(latencies) else float("nan"),
        "lost": gaps + sum(c.dropped for c in clients),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subscribers", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=15.0)
    args = parser.parse_args()
    if not 1 <= args.subscribers <= 200 or not 1 <= args.seconds <= 120:
        parser.error("--subscribers must be 1-200 and --seconds 1-120")

    measurement = Measurement("bench_live")
    floor_ms = tick_cost_ms()
    port = free_port()
    async with served_full_fleet(port) as (server, http):
        url = f"ws://127.0.0.1:{port}/api/v1/ws/telemetry"
        await asyncio.sleep(2.0)
        cpu0, wall0 = cpu_seconds(server.pid), time.monotonic()
        await asyncio.sleep(args.seconds)
        baseline = {"subscribers": 0, "server_cpu": (cpu_seconds(server.pid) - cpu0) / (time.monotonic() - wall0)}
        one = await phase(url, server.pid, 1, args.seconds)
        many = await phase(url, server.pid, args.subscribers, args.seconds)
        stopped = (await http.post("/api/v1/simulation/stop")).json()

    print(f"full fleet (1,944 jars) at a 1 s interval, speed 1x, on {os.cpu_count()} cores "
          f"(load average {os.getloadavg()[0]:.1f}: other work on the machine inflates latency)")
    print(f"  one tick simulated and measured in-process: {floor_ms:.2f} ms (floor: {floor_ms / 10:.2f} % of a core)")
    print(f"  {'subscribers':>11} {'server CPU':>11} {'× baseline':>10} {'frames':>7} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'lost':>5} {'client CPU':>11}")
    for row in (baseline, one, many):
        ratio = row["server_cpu"] / baseline["server_cpu"]
        print(f"  {row['subscribers']:>11} {row['server_cpu']:>10.1%} {ratio:>10.2f} {row.get('frames', 0):>7} "
              f"{row.get('p50_ms', float('nan')):>8.1f} {row.get('p99_ms', float('nan')):>8.1f} "
              f"{row.get('lost', 0):>5} {row.get('client_cpu', float('nan')):>10.1%}")
    print(f"  p99 latency with {args.subscribers} subscribers / with 1: {many['p99_ms'] / one['p99_ms']:.2f}")
    print(f"  recording: {stopped['readings_generated']:,} readings ({stopped['recording_id']})")
    measurement.save({"tick_ms": round(floor_ms, 2), "seconds": args.seconds, "phases": [
        {key: (round(value, 4) if isinstance(value, float) else value) for key, value in row.items()}
        for row in (baseline, one, many)]})


if __name__ == "__main__":
    asyncio.run(main())
