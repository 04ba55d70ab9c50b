"""``kdecay sweep``: every stale training stage of the DVC pipeline on Ray or SLURM, each
finished run recorded in DVC at once, then ``dvc repro`` for aggregate, tables and figures.

1. ``dvc repro download prepare`` brings the data up to date.
2. DVC's Python API names the stale training stages (:mod:`kdecay.sweep.stages`); a stage
   whose run already finished with the current params is only recorded (``dvc commit``).
3. The engine (:mod:`kdecay.sweep.engines`: Ray; :mod:`kdecay.sweep.slurm`) runs the others'
   ``dvc.yaml`` commands; each run is committed by this driver the moment it ends, so a killed
   sweep loses no finished run and the next ``kdecay sweep`` resumes the interrupted ones from
   their checkpoints.
4. Progress after every run: done / running / pending / failed and an ETA from the epochs
   timed so far; failed runs do not stop the others and are listed with their logs at the end.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kdecay.checks import ConfigError, check_int
from kdecay.config import Config, load_config
from kdecay.fileio import exclusive_lock
from kdecay.sweep.engines import StageCommand, stop_stage_commands
from kdecay.sweep.fusing import Unit, units
from kdecay.sweep.stages import TrainStage, adoptable, commit_stage, stale_training_stages
from kdecay.sweep.tools import tool_env
from kdecay.train.provenance import fmt_seconds

__all__ = ["ExtraMissingError", "SweepOptions", "run_sweep"]

EXTRAS = {"ray": ("ray", "ray"), "slurm": ("submitit", "slurm")}


class ExtraMissingError(ConfigError):
    """The engine's optional dependency is not installed."""


@dataclass
class SweepOptions:
    """Command-line choices of ``kdecay sweep`` (see ``kdecay sweep --help``)."""

    engine: str = "ray"
    params_file: Path = Path("params.yaml")
    log_dir: Path = Path("results/logs")
    address: str | None = None
    gpus: int | None = None
    cpus: int | None = None
    shard: tuple[int, int] = (0, 1)
    cluster: str | None = None  # submitit's executor (default slurm); --engine slurm only
    fuse: int | str = 1  # at most G runs of one row as one fused network; "auto": sweep.fuse
    fused_step: str | None = None  # the fused groups' step form (None: train.step)
    slurm: dict[str, Any] = field(default_factory=dict)


def require_extra(engine: str) -> None:
    """Raise :class:`ExtraMissingError` naming the extra to install if the engine is missing."""
    module, extra = EXTRAS[engine]
    try:
        __import__(module)
    except ImportError as err:
        raise ExtraMissingError(
            f'kdecay sweep --engine {engine} needs {module}: pip install -e ".[{extra}]" ({err})'
        ) from err


# the submitit options each executor reads (``SweepOptions.slurm`` keys, CLI flag names)
SLURM_FLAGS = {
    "partition": "--partition",
    "timeout_min": "--time",
    "gpus_per_job": "--gpus-per-job",
    "cpus_per_job": "--cpus-per-job",
    "array_parallelism": "--array-parallelism",
}
EXECUTOR_READS = {
    "slurm": set(SLURM_FLAGS),
    "local": {"timeout_min", "gpus_per_job"},
    "debug": set(),
}


def check_engine_options(opts: SweepOptions) -> None:
    """Refuse (ConfigError, exit 2) an option the chosen engine or executor would not use."""
    if opts.fused_step is not None and opts.fuse == 1:
        raise ConfigError(
            f"--step {opts.fused_step} sets the fused groups' step, and --fuse 1 fuses no "
            "run (runs alone follow train.step): add --fuse G or drop --step"
        )
    ray_given = [
        flag
        for flag, value in (
            ("--address", opts.address),
            ("--gpus", opts.gpus),
            ("--cpus", opts.cpus),
        )
        if value is not None
    ]
    if opts.engine == "ray":
        slurm_given = [SLURM_FLAGS[key] for key in opts.slurm]
        slurm_given += ["--cluster"] if opts.cluster is not None else []
        if slurm_given:
            raise ConfigError(
                f"{'/'.join(slurm_given)}: options of --engine slurm, unused by "
                "--engine ray: drop them or add --engine slurm"
            )
        if opts.address and (opts.gpus is not None or opts.cpus is not None):
            raise ConfigError(
                "--gpus/--cpus declare the resources of a Ray started here; with --address "
                "the cluster's come from `ray start --num-gpus ...` on its nodes: drop "
                "--gpus/--cpus"
            )
        return
    if ray_given:
        raise ConfigError(
            f"{'/'.join(ray_given)}: options of --engine ray, unused by --engine slurm: drop them"
        )
    cluster = opts.cluster or "slurm"
    if cluster == "slurm" and shutil.which("sbatch") is None:
        raise ConfigError(
            "kdecay sweep --engine slurm: no `sbatch` on this machine's PATH: run it on a "
            "SLURM login node, or use --cluster local (the same jobs as local processes)"
        )
    unused = [SLURM_FLAGS[key] for key in opts.slurm if key not in EXECUTOR_READS[cluster]]
    if unused:
        reads = sorted(SLURM_FLAGS[key] for key in EXECUTOR_READS[cluster]) or ["none of them"]
        raise ConfigError(
            f"{'/'.join(unused)}: no effect with --cluster {cluster} (it reads "
            f"{', '.join(reads)}): drop them, or use --cluster slurm"
        )


def _dvc(root: Path, *args: str) -> None:
    print(f"$ dvc {' '.join(args)}", flush=True)
    proc = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=root, env=tool_env())
    if proc.returncode != 0:
        raise ConfigError(f"`dvc {' '.join(args)}` failed (exit {proc.returncode}), see above")


class Progress:
    """Counts of the sweep and its ETA from the epochs already timed."""

    def __init__(self, units: list[Unit], log_dir: Path) -> None:
        self.epochs = {s.name: s.spec.epochs for u in units for s in u.stages}
        self.logs = {s.name: log_dir / f"{u.log_name}.log" for u in units for s in u.stages}
        self.events = log_dir / "sweep.jsonl"
        self.done: list[str] = []
        self.failed: list[str] = []
        self.start = time.time()

    def line(self) -> str:
        finished = set(self.done) | set(self.failed)
        running = [
            n
            for n in self.epochs
            if n not in finished
            and self.logs[n].is_file()
            and self.logs[n].stat().st_mtime >= self.start
        ]
        pending = len(self.epochs) - len(finished) - len(running)
        done_epochs = sum(self.epochs[n] for n in self.done)
        left = sum(e for n, e in self.epochs.items() if n not in finished)
        elapsed = time.time() - self.start
        eta = fmt_seconds(left * elapsed / done_epochs) if done_epochs else "?"
        return (
            f"[sweep] done {len(self.done)}, running {len(running)}, pending {pending}, "
            f"failed {len(self.failed)} of {len(self.epochs)}; ETA {eta}"
        )


def _engine(opts: SweepOptions) -> Any:
    if opts.engine == "ray":
        from kdecay.sweep.engines import RayEngine

        return RayEngine(opts.address, opts.gpus, opts.cpus)
    from kdecay.sweep.slurm import SlurmEngine

    return SlurmEngine(opts.log_dir / "submitit", opts.cluster or "slurm", opts.slurm)


def _adopt_finished(root: Path, stages: list[TrainStage]) -> list[TrainStage]:
    """Record the runs that already finished with the current params; return the others."""
    todo = []
    for stage in stages:
        if adoptable(stage):
            commit_stage(root, stage.name)
            print(f"[sweep] {stage.name}: already finished, recorded without training")
        else:
            todo.append(stage)
    return todo


def _jobs(root: Path, units: list[Unit], opts: SweepOptions) -> list[StageCommand]:
    env = {k: v for k, v in tool_env().items() if k in ("PATH", "PYTHONPATH", "DVC_NO_ANALYTICS")}
    return [
        StageCommand(
            u.name,
            u.command(opts.params_file, opts.fused_step),
            str(root),
            str(opts.log_dir / f"{u.log_name}.log"),
            env,
            u.config_hash,
        )
        for u in units
    ]


def _record(root: Path, unit: Unit, result: dict[str, Any], progress: Progress) -> None:
    """Record every stage of a finished unit in dvc.lock (a failed group's members whose
    outputs are complete too); one line and one sweep.jsonl event per stage."""
    job = f" (SLURM job {result['job_id']})" if result.get("job_id") else ""
    for stage in unit.stages:
        outcome = dict(result)
        ok = result.get("rc") == 0 or (unit.fused and adoptable(stage))
        if ok:
            try:
                commit_stage(root, stage.name)
            except Exception as err:  # outputs missing or damaged: a failure, not a crash
                ok, outcome["error"] = False, f"dvc commit failed: {err}"
        (progress.done if ok else progress.failed).append(stage.name)
        out = str(stage.out_dir.relative_to(root))
        with progress.events.open("a") as f:
            event = {"stage": stage.name, "out": out, "ok": ok, "unit": unit.name, **outcome}
            f.write(json.dumps(event) + "\n")
        if ok:
            status = f"done{job}, recorded in dvc.lock"
        else:
            why = outcome.get("error") or f"exit {outcome.get('rc')}"
            status = f"FAILED{job} ({why}), log {progress.logs[stage.name]}"
        print(f"[sweep] {stage.name}: {status}", flush=True)
    print(progress.line(), flush=True)


def _run_stages(
    root: Path, stages: list[TrainStage], opts: SweepOptions, config: Config
) -> Progress:
    """Run the stages on the engine (fused groups as one task each with ``--fuse``),
    committing each finished one at once."""
    work = units(stages, config.sweep.fuse if opts.fuse == "auto" else int(opts.fuse))
    fractions, cpus = config.sweep.gpu_fraction, config.sweep.cpus_per_run
    # a fused group asks for its members' GPU shares together, at most one GPU
    resources = {u.name: (min(1.0, fractions[u.stages[0].row] * len(u.stages)), cpus) for u in work}
    progress = Progress(work, opts.log_dir)
    opts.log_dir.mkdir(parents=True, exist_ok=True)
    by_name = {u.name: u for u in work}
    engine = _engine(opts)
    fused = sum(len(u.stages) for u in work if u.fused)
    groups = f" ({fused} of them in {sum(u.fused for u in work)} fused groups)" if fused else ""
    print(f"[sweep] {len(stages)} runs{groups} on {engine.describe()}", flush=True)
    try:
        for name, result in engine.finished(_jobs(root, work, opts), resources):
            _record(root, by_name[name], result, progress)
    except BaseException as err:  # Ctrl-C or a crash: a Ray started here takes its runs along
        if opts.engine == "ray" and opts.address is None:
            stopped = stop_stage_commands(list(set(progress.logs.values())))
            print(f"[sweep] stopped {stopped} running training commands", flush=True)
        if isinstance(err, KeyboardInterrupt):
            raise KeyboardInterrupt(
                f"kdecay sweep stopped: {len(progress.done)} finished runs are recorded in "
                "dvc.lock; rerun the same command and the others resume from their last "
                "checkpoints"
            ) from None
        raise
    finally:
        engine.close()
    return progress


def _preflight(opts: SweepOptions) -> Config:
    """``kdecay check``'s checks before any work: params, dvc.yaml against the runs, and,
    where the runs train on this machine (a Ray started here), the GPU refusal. On SLURM or
    an existing Ray cluster the runs train on other machines, whose GPUs this one cannot see."""
    from kdecay.sweep.preflight import check_config, check_machine

    config = load_config(opts.params_file)
    check_config(config, params_file=opts.params_file)
    if opts.engine == "ray" and opts.address is None:
        check_machine(config)
    return config


def run_sweep(opts: SweepOptions) -> int:
    """The whole pipeline with the training stages on an engine; returns the failed runs.
    One sweep per workspace at a time (a lock in the log folder); DVC's own lock, held by a
    `dvc repro` here, is named in one line."""
    require_extra(opts.engine)
    index, count = opts.shard
    check_int(count, "--shard (N of I/N)", low=1, error=ConfigError)
    check_int(index, "--shard (I of I/N)", low=0, high=count - 1, error=ConfigError)
    if opts.fuse != "auto":
        check_int(opts.fuse, "--fuse", low=1, error=ConfigError)
    check_engine_options(opts)
    config = _preflight(opts)  # bad params or no GPU: fails before any download
    with exclusive_lock(opts.log_dir / "sweep.lock", "a kdecay sweep of this workspace"):
        try:
            return _sweep(opts, config, index, count)
        except Exception as err:
            # imported here, not above: importing dvc binds its log handlers to the streams
            # of the moment; the sweep has imported it by the time DVC raises this
            from dvc.lock import LockError

            if not isinstance(err, LockError):
                raise
            raise ConfigError(
                f"DVC's lock of this workspace is held by another DVC process (a `dvc repro` "
                f"or `dvc commit` here: {err}): wait for it to end, then rerun `kdecay sweep`"
            ) from err


def _sweep(opts: SweepOptions, config: Config, index: int, count: int) -> int:
    root = Path.cwd()
    _dvc(root, "repro", "download", "prepare")
    stages = _adopt_finished(root, stale_training_stages(root, opts.params_file))
    stages = stages[index::count]
    print(
        f"[sweep] {len(stages)} training runs to do"
        + (f" (shard {index}/{count})" if count > 1 else ""),
        flush=True,
    )
    progress = _run_stages(root, stages, opts, config) if stages else None
    if progress and progress.failed:
        print(f"[sweep] {len(progress.failed)} run(s) failed; the others are recorded:")
        for name in progress.failed:
            print(f"  {name}: log {progress.logs[name]}")
        print("[sweep] rerun `kdecay sweep` to retry them (they resume from their checkpoints)")
        return len(progress.failed)
    if count > 1:
        print(
            f"[sweep] shard {index}/{count} done: publish it with `dvc push --run-cache`; "
            "once every shard is pushed, `dvc repro --pull` in one clone fetches all runs"
        )
        return 0
    _dvc(root, "repro")
    subprocess.run([sys.executable, "-m", "kdecay", "clean-checkpoints"], cwd=root, env=tool_env())
    return 0
