"""SLURM through submitit: one job array over the stale stages, followed by the driver.

- A job SLURM stops (``scontrol requeue``, preemption) or warns of its time limit (SIGUSR2,
  submitit's ``--signal=USR2@90``) is requeued, and its ``kdecay train`` resumes from the
  run's own checkpoint (:class:`StageJob`).
- Every submitted job is written to ``jobs.jsonl`` in the submitit folder (job id, stage, the
  run's config hash). A sweep started while jobs of a killed one still run follows those jobs
  (found with ``squeue``) instead of submitting their runs a second time.
- Every ``STATE_EVERY_S`` the driver reads SLURM's own job states (``squeue``) and prints
  them; a job that has left the queue without writing a result (cancelled, its node lost) on
  ``GONE_POLLS`` polls in a row is reported failed, where submitit would wait for it forever
  on a cluster without accounting (it asks ``sacct``).
"""

from __future__ import annotations

import contextlib
import getpass
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from kdecay.sweep.engines import Finished, Resources, StageCommand, run_stage_command

__all__ = ["JobRegistry", "SlurmEngine", "StageJob", "slurm_executor", "squeue_states"]

DEFAULT_TIMEOUT_MIN = 24 * 60  # --time 24:00:00
STOPPED_BY_SLURM_WAIT_S = 300  # how long a job whose command SLURM stopped waits to be ended
GONE_POLLS = 2  # polls a job must be missing from squeue, without a result, to count as lost

Followed = dict[str, tuple[Any, str]]
"""SLURM job id -> (submitit job, stage name) of the jobs the driver waits for."""


class StageJob:
    """A submitit job running one stage; requeued with the same arguments on preemption or
    timeout (its ``kdecay train`` then resumes from the run's checkpoint).

    SLURM stops a job it preempts or requeues (``scontrol requeue``) with SIGTERM, then
    SIGKILL: the command dies of the SIGTERM, and this job then writes no result (which the
    driver would record as a failure) but waits to be ended, so that the requeued job's result
    is the one the driver reads. A time-limit warning (SIGUSR2) is submitit's own requeue: the
    command ignores that signal (:func:`kdecay.sweep.engines.run_stage_command`)."""

    def __call__(self, job: StageCommand) -> dict[str, Any]:
        result = run_stage_command(job)
        if result["rc"] == -signal.SIGTERM and os.environ.get("SLURM_JOB_ID"):
            time.sleep(STOPPED_BY_SLURM_WAIT_S)  # SLURM's SIGKILL ends this job first
        return result

    def checkpoint(self, job: StageCommand) -> Any:
        import submitit

        return submitit.helpers.DelayedSubmission(StageJob(), job)


def slurm_executor(folder: Path, cluster: str, options: dict[str, Any]) -> Any:
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


def _submitit_warnings_once() -> None:
    """submitit prints warnings on stdout and stderr, the sacct one on every poll: show each
    once, on stderr. Its stdout handler is found by name: importing dvc wraps sys.stdout
    (colorama), so the stream object the handler holds is no longer ``sys.stdout`` by then."""
    log = logging.getLogger("submitit")
    log.addFilter(_OnceFilter("Bypassing sacct error"))
    for handler in log.handlers:
        if handler.get_name() == "submitit_out" or getattr(handler, "stream", None) in (
            sys.stdout,
            sys.__stdout__,
        ):
            handler.addFilter(lambda record: record.levelno < logging.WARNING)


def squeue_states() -> dict[str, str] | None:
    """SLURM's state of this user's jobs, one line per array task (``squeue -r``): job id
    (``<array>_<task>``) -> state (PENDING, RUNNING, ...); None if ``squeue`` failed."""
    cmd = ["squeue", "-h", "-r", "-u", getpass.getuser(), "-o", "%i %T"]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    return dict(line.split(maxsplit=1) for line in done.stdout.splitlines() if " " in line)


class JobRegistry:
    """``jobs.jsonl``: one line per submitted job (``job_id``, ``stage``, ``config_hash``),
    appended and synced at submission, so a driver killed at any moment leaves it behind."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / "jobs.jsonl"

    def add(self, submitted: list[tuple[str, StageCommand]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            for job_id, job in submitted:
                entry = {"job_id": job_id, "stage": job.name, "config_hash": job.config_hash}
                f.write(json.dumps(entry) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def latest(self) -> dict[str, dict[str, str]]:
        """Stage -> its last submitted job; a line cut short by a kill is skipped."""
        jobs: dict[str, dict[str, str]] = {}
        with contextlib.suppress(FileNotFoundError):
            for line in self.path.read_text(errors="replace").splitlines():
                with contextlib.suppress(ValueError, TypeError, KeyError):
                    entry = json.loads(line)
                    jobs[str(entry["stage"])] = entry
        return jobs


def _result(job: Any) -> dict[str, Any]:
    try:
        return job.result()
    except Exception as err:  # the job failed outside the command
        return {"rc": -1, "error": f"{type(err).__name__}: {err}"}


class SlurmEngine:
    """One submitit job array over the stages (``cluster``: ``slurm``, or ``local``/``debug``
    to run the same jobs on this machine)."""

    STATE_EVERY_S = 30.0  # a line of job states this often while jobs run

    def __init__(self, folder: Path, cluster: str, options: dict[str, Any]) -> None:
        self.executor = slurm_executor(folder, cluster, options)
        self.cluster = cluster
        self.registry = JobRegistry(Path(folder))
        _submitit_warnings_once()

    def describe(self) -> str:
        return f"submitit ({self.cluster}), logs in {self.executor.folder}"

    def finished(self, jobs: list[StageCommand], resources: Resources) -> Finished:
        """Follow the earlier sweep's jobs still queued for these runs, submit the others as
        one job array, and yield each job as it ends (``resources`` unused: a SLURM job gets
        ``--gpus-per-job`` GPUs, whatever its row)."""
        del resources
        pending, todo = self._earlier_jobs(jobs)
        if todo:
            submitted = self.executor.map_array(StageJob(), todo)
            self.registry.add([(j.job_id, job) for j, job in zip(submitted, todo, strict=True)])
            pending |= {j.job_id: (j, job.name) for j, job in zip(submitted, todo, strict=True)}
            array = submitted[0].job_id.split("_")[0]
            print(f"[sweep] submitted job array {array}: {len(submitted)} jobs", flush=True)
        yield from self._follow(pending)

    def _earlier_jobs(self, jobs: list[StageCommand]) -> tuple[Followed, list[StageCommand]]:
        """The jobs of an earlier (killed) sweep still in SLURM's queue for these very runs,
        to be followed, not submitted again; and the stages still to submit."""
        earlier = self.registry.latest() if self.cluster == "slurm" else {}
        queued = squeue_states() if earlier else {}
        if queued is None:
            print("[sweep] squeue failed: jobs of an earlier sweep, if any, are not followed")
            return {}, jobs
        import submitit

        followed: Followed = {}
        todo = []
        for job in jobs:
            entry = earlier.get(job.name)
            if entry is None or entry["job_id"] not in queued:
                todo.append(job)
            elif entry.get("config_hash") != job.config_hash:
                print(
                    f"[sweep] {job.name}: SLURM job {entry['job_id']} of an earlier sweep "
                    "still trains it with other params; the new job waits for the run's lock, "
                    f"then fails: `scancel {entry['job_id']}` and rerun to train the new ones"
                )
                todo.append(job)
            else:
                slurm_job = submitit.SlurmJob(folder=self.executor.folder, job_id=entry["job_id"])
                followed[entry["job_id"]] = (slurm_job, job.name)
        if followed:
            print(
                f"[sweep] following {len(followed)} SLURM jobs of an earlier sweep, still "
                f"queued or running (not submitted again): {', '.join(sorted(followed))}",
                flush=True,
            )
        return followed, todo

    def _follow(self, pending: Followed) -> Finished:
        """Yield each pending job as it ends or is found lost; a line of states meanwhile."""
        missing: Counter[str] = Counter()
        last_states = time.monotonic()
        while pending:
            for job_id, (job, name) in list(pending.items()):
                if job.done():
                    del pending[job_id]
                    yield name, {**_result(job), "job_id": job_id}
            if pending and time.monotonic() - last_states > self.STATE_EVERY_S:
                last_states = time.monotonic()
                for job_id in self._poll(pending, missing):
                    job, name = pending.pop(job_id)
                    why = (
                        f"it left SLURM's queue without a result (cancelled, or its node "
                        f"failed); its output: {job.paths.stdout}"
                    )
                    yield name, {"rc": -1, "error": why, "job_id": job_id}
            time.sleep(0.5)

    def _poll(self, pending: Followed, missing: Counter[str]) -> list[str]:
        """Print the pending jobs' states (SLURM's own, from ``squeue``, which stays right on
        a cluster without accounting, where submitit says UNKNOWN); return the jobs missing
        from the queue, still without a result, on ``GONE_POLLS`` polls in a row."""
        if self.cluster != "slurm":
            counts = Counter(job.state for job, _ in pending.values())
            print(f"[sweep] jobs: {_fmt(counts)}", flush=True)
            return []
        queued = squeue_states()
        if queued is None:
            print("[sweep] squeue failed: job states unknown for now", flush=True)
            return []
        states = Counter(queued.get(job_id, "ENDED") for job_id in pending)
        print(f"[sweep] SLURM jobs: {_fmt(states)}", flush=True)
        gone = []
        for job_id, (job, _) in pending.items():
            if job_id in queued:
                missing.pop(job_id, None)
                continue
            missing[job_id] += 1
            if missing[job_id] >= GONE_POLLS and not job.done():
                gone.append(job_id)
        return gone

    def close(self) -> None:
        pass


def _fmt(counts: Counter[str]) -> str:
    return ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
