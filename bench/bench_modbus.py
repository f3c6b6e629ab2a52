"""Modbus TCP under load: N clients polling the whole full fleet every second against the live world.

    .venv/bin/python bench/bench_modbus.py [--clients 50] [--seconds 30]

Starts `battsim serve --preset thailand-full --interval 1 --speed 1 --modbus-port P` (81 strings of 24 jars: unit
ids 1-81) as its own process, then measures two phases of --seconds each:
  0. no client: the simulation, alarms and recording alone (the baseline),
  N. --clients pymodbus asyncio clients (in this process, one connection each), each starting a poll of the
     whole fleet every second: per unit the string block, the five jar blocks and the alarm bits (7 requests,
     567 per poll), and a poll that overruns its second is followed by the next at once; a poll still running
     when the phase ends is not counted (its requests are).
Reported: the server's CPU share (user + system time over wall time, from /proc; 100 % = one core) in both
phases and their ratio, the server's CPU per poll and per request (the phase's CPU over the baseline's,
divided by what was answered), polls completed against polls due, poll duration p50/p99, errors, and
whether the simulation kept pace: ticks simulated during the phase against wall seconds (1.0 at 1x), and the
virtual clock's lag behind the wall clock at the end. Bounded: 2 phases × --seconds, at most --clients.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from datetime import datetime

import httpx
import numpy as np
from pymodbus.client import AsyncModbusTcpClient

from battsim.devices.register_map import fields
from harness import cpu_seconds, free_port, served_full_fleet
from results_file import Measurement

UNITS = 81
JARS = 24
BLOCKS = [(0, 16)] + [(field.address, JARS) for field in fields("input") if field.per_jar]
REQUESTS_PER_POLL = UNITS * (len(BLOCKS) + 1)


class Poller:
    def __init__(self):
        self.polls = 0
        self.requests = 0
        self.errors = 0
        self.durations_s: list[float] = []

    async def run(self, port: int, stop_at: float) -> None:
        client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=30)
        await client.connect()
        try:
            next_at = time.monotonic()
            while next_at < stop_at:
                began = time.monotonic()
                for unit in range(1, UNITS + 1):
                    if time.monotonic() > stop_at:  # the phase is over: this poll is not finished, not counted
                        return
                    for address, count in BLOCKS:
                        answer = await client.read_input_registers(address, count=count, device_id=unit)
                        self.errors += answer.isError()
                    self.errors += (await client.read_discrete_inputs(0, count=7, device_id=unit)).isError()
                    self.requests += len(BLOCKS) + 1
                self.polls += 1
                self.durations_s.append(time.monotonic() - began)
                next_at += 1.0
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        finally:
            client.close()


async def status(http: httpx.AsyncClient) -> dict:
    return (await http.get("/api/v1/simulation/status")).json()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    if not 1 <= args.clients <= 200 or not 1 <= args.seconds <= 120:
        parser.error("--clients must be 1-200 and --seconds 1-120")

    measurement = Measurement("bench_modbus")
    port, modbus_port = free_port(), free_port()
    async with served_full_fleet(port, "--modbus-port", str(modbus_port)) as (server, http):
        await asyncio.sleep(2.0)
        cpu0, wall0 = cpu_seconds(server.pid), time.monotonic()
        await asyncio.sleep(args.seconds)
        baseline_cpu = (cpu_seconds(server.pid) - cpu0) / (time.monotonic() - wall0)

        pollers = [Poller() for _ in range(args.clients)]
        ticks0 = (await status(http))["ticks"]
        cpu0, own0, wall0 = cpu_seconds(server.pid), time.process_time(), time.monotonic()
        await asyncio.gather(*(p.run(modbus_port, wall0 + args.seconds) for p in pollers))
        cpu1, own1, wall1 = cpu_seconds(server.pid), time.process_time(), time.monotonic()
        after = await status(http)
        await http.post("/api/v1/simulation/stop")

    wall = wall1 - wall0
    loaded_cpu = (cpu1 - cpu0) / wall
    polls, due = sum(p.polls for p in pollers), int(args.clients * args.seconds)  # one per client per second
    requests = sum(p.requests for p in pollers)
    errors = sum(p.errors for p in pollers)
    durations = np.array([d for p in pollers for d in p.durations_s])
    extra_cpu_s = max(0.0, (loaded_cpu - baseline_cpu) * wall)
    ticks_per_s = (after["ticks"] - ticks0) / wall
    lag_s = time.time() - datetime.fromisoformat(after["sim_time"]).timestamp()
    figures = {
        "clients": args.clients, "seconds": args.seconds, "requests_per_poll": REQUESTS_PER_POLL,
        "baseline_server_cpu": round(baseline_cpu, 4), "loaded_server_cpu": round(loaded_cpu, 4),
        "cpu_ratio": round(loaded_cpu / baseline_cpu, 2) if baseline_cpu else None,
        "polls": polls, "polls_due": due, "errors": errors,
        "cpu_ms_per_poll": round(extra_cpu_s / polls * 1e3, 2) if polls else None,
        "requests": requests, "requests_per_s": round(requests / wall),
        "cpu_us_per_request": round(extra_cpu_s / requests * 1e6, 1) if requests else None,
        "poll_p50_s": round(float(np.percentile(durations, 50)), 3) if len(durations) else None,
        "poll_p99_s": round(float(np.percentile(durations, 99)), 3) if len(durations) else None,
        "client_cpu": round((own1 - own0) / wall, 4),
        "ticks_per_wall_s": round(ticks_per_s, 3), "sim_lag_s": round(lag_s, 2),
    }
    print(f"full fleet (81 strings, 1,944 jars) at a 1 s interval, speed 1x, on {os.cpu_count()} cores "
          f"(load average {os.getloadavg()[0]:.1f}: other work on the machine inflates every figure)")
    print(f"  server CPU: {baseline_cpu:.1%} with no client, {loaded_cpu:.1%} with {args.clients} "
          f"(× {figures['cpu_ratio']})")
    print(f"  polls of the whole fleet ({REQUESTS_PER_POLL} requests each): {polls} done of {due} due in "
          f"{wall:.1f} s, {errors} errors; poll p50 {figures['poll_p50_s']} s, p99 {figures['poll_p99_s']} s")
    print(f"  requests answered: {requests:,} ({figures['requests_per_s']:,} per second)")
    print(f"  server CPU per poll: {figures['cpu_ms_per_poll']} ms ({figures['cpu_us_per_request']} µs per request); "
          f"clients' own CPU {figures['client_cpu']:.1%}")
    print(f"  simulation: {ticks_per_s:.3f} ticks per wall second (1.000 = kept pace), virtual clock {lag_s:.2f} s "
          "behind the wall clock at the end")
    measurement.save(figures)


if __name__ == "__main__":
    asyncio.run(main())
