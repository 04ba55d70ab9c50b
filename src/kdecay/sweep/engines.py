"""The engines that run the stale training stages: Ray (one machine or a Ray cluster, here)
and SLURM through submitit (:mod:`kdecay.sweep.slurm`). Each engine runs a stage's own
``dvc.yaml`` command in a child process (:func:`run_stage_command`) and reports every finished
stage to the driver as soon as it ends; the driver records it.

Ray: each run is a task asking for ``sweep.gpu_fraction.<row>`` of a GPU; Ray packs the tasks
onto the GPUs and sets ``CUDA_VISIBLE_DEVICES`` for each.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shlex
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "Finished",
    "RayEngine",
    "Resources",
    "StageCommand",
    "run_stage_command",
    "stop_stage_commands",
]

Resources = dict[str, tuple[float, float]]
"""Per stage name: (fraction of a GPU, CPUs) the run asks for."""
Finished = Iterator[tuple[str, dict[str, Any]]]
"""(stage name, result of :func:`run_stage_command`) as each stage ends."""


def _child_setup() -> None:
    """Child set-up (Linux): SIGTERM when the parent (the Ray worker or submitit job) dies, so
    a killed engine never leaves a training process behind; SIGUSR2 ignored: SLURM sends its
    time-limit warning (submitit's ``--signal=USR2@90``) to every process of the job, and it
    is the submitit job's to handle (checkpoint, requeue, then it ends this child), where
    SIGUSR2's default action would kill the run first and have its failure recorded."""
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    with contextlib.suppress(OSError):  # not glibc: the child may outlive a killed parent
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass(frozen=True)
class StageCommand:
    """What a worker needs to run one stage: name, shell command, workspace, log file, env,
    and the run's config hash (a SLURM job of an earlier sweep is followed only if it trains
    this very configuration)."""

    name: str
    cmd: str
    cwd: str
    log: str
    env: dict[str, str] = field(default_factory=dict)
    config_hash: str = ""


def run_stage_command(job: StageCommand) -> dict[str, Any]:
    """Run the stage's command (output to its log); return exit code, the
    ``CUDA_VISIBLE_DEVICES`` it saw, host and start/end times."""
    env = {**os.environ, **job.env}
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")  # set by Ray / SLURM for this task
    if visible is not None:
        env["CUDA_VISIBLE_DEVICES"] = visible
    start = time.time()
    Path(job.log).parent.mkdir(parents=True, exist_ok=True)
    pid_file = Path(f"{job.log}.pid")
    with open(job.log, "a") as log:
        log.write(f"# {job.name} on {socket.gethostname()}, CUDA_VISIBLE_DEVICES={visible}\n")
        log.flush()
        child = subprocess.Popen(
            shlex.split(job.cmd),  # no shell between: the child must get the death signal
            cwd=job.cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_child_setup,
        )
        pid_file.write_text(f"{socket.gethostname()} {child.pid}\n")  # for stop_stage_commands
        try:
            rc = child.wait()
        finally:
            pid_file.unlink(missing_ok=True)
    return {
        "rc": rc,
        "cuda_visible_devices": visible,
        "host": socket.gethostname(),
        "start": start,
        "end": time.time(),
        "log": job.log,
    }


def stop_stage_commands(logs: list[Path], wait_s: float = 10.0) -> int:
    """Stop the stage commands still running on this host (an interrupted sweep): SIGTERM to
    each process named by a ``<log>.pid`` file of :func:`run_stage_command`, SIGKILL to any
    left after ``wait_s``. Engines run commands in processes of their own sessions (Ray's
    workers), which a Ctrl-C in the terminal never reaches. Returns how many were stopped."""
    host, pids = socket.gethostname(), []
    for log in logs:
        with contextlib.suppress(OSError, ValueError):
            where, pid = Path(f"{log}.pid").read_text().split()
            if where == host and _is_kdecay(int(pid)):
                pids.append(int(pid))
    found = len(pids)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait_s
        while pids and time.monotonic() < deadline:
            pids = [pid for pid in pids if _is_kdecay(pid)]
            time.sleep(0.1)
    return found


def _is_kdecay(pid: int) -> bool:
    """Whether ``pid`` is a live (not zombie) process running kdecay (a reused pid is not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z" and b"kdecay" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, IndexError):
        return False


class RayEngine:
    """Ray tasks on this machine (``ray.init()``) or an existing cluster (``address``)."""

    def __init__(
        self, address: str | None = None, gpus: int | None = None, cpus: int | None = None
    ) -> None:
        import ray

        self.ray = ray
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_gpus=gpus, num_cpus=cpus, include_dashboard=False, log_to_driver=False)
        self.gpus = float(ray.cluster_resources().get("GPU", 0))

    def describe(self) -> str:
        res = self.ray.cluster_resources()
        return f"Ray: {res.get('CPU', 0):g} CPUs, {res.get('GPU', 0):g} GPUs"

    def finished(self, jobs: list[StageCommand], resources: Resources) -> Finished:
        """Submit every job as a task; yield each as it ends, in completion order."""
        task = self.ray.remote(max_retries=0)(run_stage_command)
        pending: dict[Any, str] = {}
        for job in jobs:
            gpu, cpus = resources[job.name]
            ref = task.options(num_gpus=gpu if self.gpus else 0, num_cpus=cpus).remote(job)
            pending[ref] = job.name
        while pending:
            done, _ = self.ray.wait(list(pending), num_returns=1)
            name = pending.pop(done[0])
            try:
                result = self.ray.get(done[0])
            except Exception as err:  # the task itself died (worker lost, ...)
                result = {"rc": -1, "error": f"{type(err).__name__}: {err}"}
            yield name, result

    def close(self) -> None:
        self.ray.shutdown()
