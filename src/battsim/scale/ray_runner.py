"""The same parts as Ray tasks (``battsim run --engine ray [--address HOST:PORT]``), past one machine.

Each part is one task running :meth:`battsim.scale.runner.PartJob.run`, exactly what a worker process
runs, so a part written by Ray is the part written by ``--workers`` (same plan, same seed, same rows).
The task writes its DuckDB file itself, at the set's directory: on a cluster of several machines that
directory must be a path every node sees (a shared file system); Ray moves only each job's description
and each part's count of readings. Without ``--address`` a local Ray is started for the run, with
``--workers`` CPUs (default 2), and stopped after it; with one, the run joins that cluster and leaves
it running. Ray schedules the tasks on the cluster's CPUs, one CPU a task.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

from battsim.scale.runner import PartJob, ShardedRun, peak_rss_mb


def _run_part(job: PartJob) -> tuple[int, float]:
    summary = job.run()
    return summary.readings, peak_rss_mb()


# Ray itself retries an address that does not answer for minutes; a plain connection says it at once.
CONNECT_TIMEOUT_S = 5.0


def check_address(address: str) -> None:
    """Refuse (RuntimeError) a HOST:PORT nobody listens on, before anything is written or Ray starts retrying
    it ("auto" and ray:// addresses are Ray's to resolve)."""
    host, colon, port = address.rpartition(":")
    if not colon or "://" in address or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as error:
        raise RuntimeError(f"cannot reach the Ray cluster at {address}: nothing answers there "
                           f"({error.strerror or error})") from None


def run_on_ray(jobs: list[PartJob], run: ShardedRun, note: Callable[..., None]) -> None:
    """Run every job as a Ray task; ``note(kind, part, readings, error, peak_rss_mb)`` as each ends."""
    try:
        import ray
    except ImportError:
        raise RuntimeError("Ray is not installed; install it with pip install 'battsim[ray]' "
                           "(or use --workers N without --engine ray)") from None
    started_here = not ray.is_initialized()
    if started_here:
        try:
            if run.address is None:  # "local": a new instance, never one a stale session file points at
                ray.init(address="local", num_cpus=run.workers, include_dashboard=False, log_to_driver=False)
            else:
                ray.init(address=run.address, log_to_driver=False)
        except (ConnectionError, ValueError, RuntimeError) as error:
            raise RuntimeError(f"cannot reach the Ray cluster at {run.address}: {str(error).splitlines()[0]}") from None
    task = ray.remote(num_cpus=1, max_retries=0)(_run_part)
    pending = {}
    try:
        for job in jobs:  # queued on the cluster: the manifest says pending until each ends
            pending[task.remote(job)] = job
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                job = pending.pop(ref)
                try:
                    readings, peak_mb = ray.get(ref)
                except ray.exceptions.RayError as error:
                    note("incomplete", job.part.index, 0, str(error).strip().splitlines()[-1][:300])
                else:
                    note("complete", job.part.index, readings, None, peak_mb)
    finally:
        for ref in pending:  # Ctrl-C: a running task gets KeyboardInterrupt and marks its part incomplete
            ray.cancel(ref)
        if pending:
            ray.wait(list(pending), num_returns=len(pending), timeout=60)
        if started_here:
            ray.shutdown()
