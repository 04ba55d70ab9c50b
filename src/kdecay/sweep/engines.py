"""The engines that run the stale training stages: Ray (one machine or a Ray cluster) and
SLURM through submitit. Each engine runs a stage's own ``dvc.yaml`` command in a child process
and reports every finished stage to the driver as soon as it ends; the driver records it.

Ray: each run is a task asking for ``sweep.gpu_fraction.<row>`` of a GPU; Ray packs the tasks
onto the GPUs and sets ``CUDA_VISIBLE_DEVICES`` for each. submitit: one job array over the
stages; a preempted or timed-out job is requeued (submitit's ``Checkpointable``) and its
``kdecay train`` resumes from the run's own checkpoint.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["RayEngine", "SlurmEngine", "StageCommand", "run_stage_command"]

Resources = dict[str, tuple[float, float]]
"""Per stage name: (fraction of a GPU, CPUs) the run asks for."""
Finished = Iterator[tuple[str, dict[str, Any]]]
"""(stage name, result of :func:`run_stage_command`) as each stage ends."""


def _die_with_parent() -> None:
    """Child set-up (Linux): SIGTERM when the parent (the Ray worker or submitit job) dies, so
    a killed engine never leaves a training process behind."""
    with contextlib.suppress(OSError):  # not glibc: the child may outlive a killed parent
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass(frozen=True)
class StageCommand:
    """What a worker needs to run one stage: name, shell command, workspace, log file, env."""

    name: str
    cmd: str
    cwd: str
    log: str
    env: dict[str, str] = field(default_factory=dict)


def run_stage_command(job: StageCommand) -> dict[str, Any]:
    """Run the stage's command (output to its log); return exit code, the
    ``CUDA_VISIBLE_DEVICES`` it saw, host and start/end times."""
    env = {**os.environ, **job.env}
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")  # set by Ray / SLURM for this task
    if visible is not None:
        env["CUDA_VISIBLE_DEVICES"] = visible
    start = time.time()
    Path(job.log).parent.mkdir(parents=True, exist_ok=True)
    with open(job.log, "a") as log:
        log.write(f"# {job.name} on {socket.gethostname()}, CUDA_VISIBLE_DEVICES={visible}\n")
        log.flush()
        rc = subprocess.run(
            shlex.split(job.cmd),  # no shell between: the child must get the death signal
            cwd=job.cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        ).returncode
    return {
        "rc": rc,
        "cuda_visible_devices": visible,
        "host": socket.gethostname(),
        "start": start,
        "end": time.time(),
        "log": job.log,
    }


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


DEFAULT_TIMEOUT_MIN = 24 * 60  # --time 24:00:00


STOPPED_BY_SLURM_WAIT_S = 300  # how long a job whose command SLURM stopped waits to be ended


class StageJob:
    """A submitit job running one stage; requeued with the same arguments on preemption or
    timeout (its ``kdecay train`` then resumes from the run's checkpoint).

    SLURM stops a job it preempts or requeues (``scontrol requeue``) with SIGTERM, then
    SIGKILL: the command dies of the SIGTERM, and this job then writes no result (which the
    driver would record as a failure) but waits to be ended, so that the requeued job's result
    is the one the driver reads. A time-limit warning (SIGUSR2) is submitit's own requeue."""

    def __call__(self, job: StageCommand) -> dict[str, Any]:
        result = run_stage_command(job)
        if result["rc"] == -signal.SIGTERM and os.environ.get("SLURM_JOB_ID"):
            time.sleep(STOPPED_BY_SLURM_WAIT_S)  # SLURM's SIGKILL ends this job first
        return result

    def checkpoint(self, job: StageCommand) -> Any:
        import submitit

        return submitit.helpers.DelayedSubmission(StageJob(), job)


def _executor(folder: Path, cluster: str, options: dict[str, Any]) -> Any:
    """The submitit executor: SLURM (``--partition``, ``--time``, ``--gpus-per-job``,
    ``--cpus-per-job``, ``--array-parallelism``), or the same jobs as local processes
    (``local``: ``--time``, then requeued; ``--gpus-per-job`` N gives each job
    ``CUDA_VISIBLE_DEVICES=0..N-1``) or in this process (``debug``)."""
    import submitit

    timeout_min = int(options.get("timeout_min", DEFAULT_TIMEOUT_MIN))
    # default 1, as --help says, for local jobs too: submitit's LocalExecutor sets
    # CUDA_VISIBLE_DEVICES to the first gpus_per_node GPUs, so its own default 0 hides them all
    gpus = options.get("gpus_per_job", 1)
    if cluster == "slurm":
        executor = submitit.AutoExecutor(folder=str(folder), cluster="slurm")
        settings = {
            "timeout_min": timeout_min,
            "gpus_per_node": gpus,
            "cpus_per_task": options.get("cpus_per_job", 4),
            "slurm_array_parallelism": options.get("array_parallelism", 64),
        }
        if options.get("partition"):
            settings["slurm_partition"] = options["partition"]
        executor.update_parameters(**settings)
        return executor
    if cluster == "local":
        executor = submitit.LocalExecutor(folder=str(folder))
        executor.update_parameters(timeout_min=timeout_min, gpus_per_node=gpus)
        return executor
    return submitit.DebugExecutor(folder=str(folder))


class _OnceFilter(logging.Filter):
    """Let a repeated warning through once: submitit logs "Bypassing sacct error" on every
    poll of a cluster without accounting."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text, self.seen = text, False

    def filter(self, record: logging.LogRecord) -> bool:
        if self.text not in record.getMessage():
            return True
        if self.seen:
            return False
        self.seen = True
        return True


class SlurmEngine:
    """One submitit job array over the stages (``cluster``: ``slurm``, or ``local``/``debug``
    to run the same jobs on this machine)."""

    STATE_EVERY_S = 30.0  # a line of job states this often while jobs run

    def __init__(self, folder: Path, cluster: str, options: dict[str, Any]) -> None:
        self.executor = _executor(folder, cluster, options)
        self.cluster = cluster
        log = logging.getLogger("submitit")
        log.addFilter(_OnceFilter("Bypassing sacct error"))
        # submitit prints warnings on stdout and stderr: once, on stderr. Its stdout handler
        # is found by name: importing dvc later wraps sys.stdout (colorama), so the stream
        # object it holds is no longer ``sys.stdout`` by then
        for handler in log.handlers:
            if handler.get_name() == "submitit_out" or getattr(handler, "stream", None) in (
                sys.stdout,
                sys.__stdout__,
            ):
                handler.addFilter(lambda record: record.levelno < logging.WARNING)

    def describe(self) -> str:
        return f"submitit ({self.cluster}), logs in {self.executor.folder}"

    def _states(self, array: str, pending: dict[str, tuple[Any, str]]) -> str:
        """Counts of the pending jobs by state: SLURM's own (``squeue``), which stays right on
        a cluster without accounting, where submitit (through ``sacct``) says UNKNOWN."""
        counts: Counter[str] = Counter()
        if self.cluster == "slurm":
            cmd = ["squeue", "-h", "-r", "-j", array, "-o", "%i %T"]
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
            queued = dict(line.split() for line in done.stdout.splitlines() if " " in line)
            counts.update(queued.get(job_id, "ENDED") for job_id in pending)
        else:
            counts.update(job.state for job, _ in pending.values())
        return ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))

    def finished(self, jobs: list[StageCommand], resources: Resources) -> Finished:
        """Submit one job array; yield each job as it ends (``resources`` unused: a SLURM job
        gets ``--gpus-per-job`` GPUs, whatever its row)."""
        del resources
        submitted = self.executor.map_array(StageJob(), jobs)
        pending = {j.job_id: (j, job.name) for j, job in zip(submitted, jobs, strict=True)}
        array = submitted[0].job_id.split("_")[0] if submitted else "?"
        print(f"[sweep] submitted job array {array}: {len(submitted)} jobs", flush=True)
        last_states = time.monotonic()
        while pending:
            for job_id, (job, name) in list(pending.items()):
                if not job.done():
                    continue
                del pending[job_id]
                try:
                    result = job.result()
                except Exception as err:  # the job failed outside the command
                    result = {"rc": -1, "error": f"{type(err).__name__}: {err}"}
                yield name, {**result, "job_id": job_id}
            if pending and time.monotonic() - last_states > self.STATE_EVERY_S:
                print(f"[sweep] job array {array}: {self._states(array, pending)}", flush=True)
                last_states = time.monotonic()
            time.sleep(0.5)

    def close(self) -> None:
        pass
