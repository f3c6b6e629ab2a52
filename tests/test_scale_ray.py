"""battsim run --engine ray: the same parts as Ray tasks, the same readings as --workers.

The test's Ray is a local one the run starts and stops itself (ray.init with 2 CPUs). Ray advertises the
machine's address unless told it is a single-machine instance, so the test says so
(RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0: Ray then binds its servers to 127.0.0.1 only).
"""

from __future__ import annotations

import os
import subprocess

import pytest
from tests.test_scale_shards import digest, readings
from tests.test_service_helpers import battsim_command, free_port

pytest.importorskip("ray")

LOOPBACK_ONLY = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
RUN = ["run", "--preset", "thailand-9x24", "--days", "1", "--interval", "300", "--seed", "11", "--part-jars", "48",
       "--timeline", "daily-outage", "--no-progress"]


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*battsim_command(), *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "COLUMNS": "250", **LOOPBACK_ONLY})


def test_ray_tasks_write_the_same_parts_as_worker_processes(tmp_path):
    ray_out, processes_out = tmp_path / "ray", tmp_path / "processes"
    on_ray = cli(*RUN, "--engine", "ray", "--workers", "2", "--out", str(ray_out))
    assert on_ray.returncode == 0, on_ray.stderr
    assert "5 (ray, 2 workers" in on_ray.stdout
    by_processes = cli(*RUN, "--workers", "2", "--out", str(processes_out))
    assert by_processes.returncode == 0, by_processes.stderr
    assert digest(ray_out).sha256 == digest(processes_out).sha256
    frame = readings(ray_out)
    assert frame.height == 216 * 288 and frame.equals(readings(processes_out))
    assert "discharge" in frame["mode"].unique().to_list()  # the daily outage reached every part


def test_an_address_nobody_answers_is_refused_before_anything_is_written(tmp_path):
    address = f"127.0.0.1:{free_port()}"
    result = cli("run", "--preset", "single-string", "--days", "0.1", "--engine", "ray", "--address", address,
                 "--out", str(tmp_path / "set"))
    assert result.returncode == 2 and "--engine" in result.stderr and address in result.stderr
    assert not (tmp_path / "set").exists()
