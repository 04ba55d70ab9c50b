"""`kdecay sweep --engine slurm` against a real single-node SLURM cluster (slurmctld + slurmd +
munge, one partition `debug`, two GPU gres that are plain files): `sbatch`, a job array, the
gres packing, the scheduler's requeue, a failing job, and what the user sees. `.ci/run` starts
the cluster (`tests/slurm/start.sh`) and the tests use it; without a running cluster they skip
in one line, except in CI, where they fail."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from kdecay.config.yaml_io import read_yaml_mapping
from kdecay.sweep.tools import tool_env
from needs import need
from tiny_runs import clone, mini_workspace

pytestmark = pytest.mark.slow
N_RUNS = 11
SWEEP = ["sweep", "--engine", "slurm", "--partition", "debug", "--gpus-per-job", "1"]
SWEEP += ["--cpus-per-job", "1", "--time", "00:20:00"]


def _cluster_up(env: dict[str, str]) -> bool:
    if shutil.which("sinfo") is None:
        return False
    done = subprocess.run(["sinfo", "-h", "-o", "%T"], env=env, capture_output=True, text=True)
    return done.returncode == 0 and any(s in done.stdout for s in ("idle", "mixed"))


need(
    "a running SLURM cluster",
    bool(os.environ.get("SLURM_CONF")) and _cluster_up(dict(os.environ)),
    'start one with `eval "$(bash tests/slurm/start.sh /tmp/slurm)"`, as CI does',
)


@pytest.fixture(scope="session")
def slurm_conf() -> str:
    """SLURM_CONF of the running cluster `.ci/run` starts (`tests/slurm/start.sh DIR`, which
    installs Debian's packages as root)."""
    return os.environ["SLURM_CONF"]


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The mini smoke workspace (11 runs on CIFAR-10, k = 1), committed to git."""
    return mini_workspace(tmp_path_factory.mktemp("slurm_ws"))


def kdecay(ws: Path, conf: str, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    env = tool_env() | {"SLURM_CONF": conf}
    cmd = [sys.executable, "-m", "kdecay", *args]
    return subprocess.run(cmd, cwd=ws, env=env, capture_output=True, text=True, **kw)


def events(ws: Path) -> list[dict[str, Any]]:
    lines = (ws / "results" / "logs" / "sweep.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_one_job_array_packed_by_the_gres(base: Path, slurm_conf: str) -> None:
    ws = clone(base, "happy")
    done = kdecay(ws, slurm_conf, *SWEEP, timeout=1500)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    assert out.count("[sweep] submitted job array") == 1 and f": {N_RUNS} jobs" in out
    assert out.count("(SLURM job ") == N_RUNS  # each recorded run names its job
    assert out.count("Bypassing sacct error") <= 1  # no accounting here: said once at most
    runs = events(ws)
    assert len(runs) == N_RUNS and all(e["ok"] for e in runs)
    # at most two runs at once (each job holds one of the node's two GPU gres), and two did
    # run together: the array was packed, not serialised
    edges = sorted([(e["start"], 1) for e in runs] + [(e["end"], -1) for e in runs])
    running, most = 0, 0
    for _, step in edges:
        running += step
        most = max(most, running)
    assert most == 2, most
    assert "2 RUNNING" in out  # the state lines show SLURM's own states (squeue)
    logs = list((ws / "results" / "logs" / "submitit").glob("*_log.out"))
    assert len(logs) >= N_RUNS
    status = subprocess.run(
        [sys.executable, "-m", "dvc", "status"], cwd=ws, env=tool_env(), capture_output=True,
        text=True,
    )  # fmt: skip
    assert "Data and pipelines are up to date" in status.stdout


def _running_jobs(env: dict[str, str]) -> list[str]:
    """The ids of the running jobs (``squeue``): ``<array>_<task>``."""
    done = subprocess.run(
        ["squeue", "-h", "-t", "R", "-o", "%i"], env=env, capture_output=True, text=True
    )
    return done.stdout.split()


def _wrn_only(base: Path, name: str, epochs: int = 30) -> Path:
    """A clone of ``base`` with one row (wrn16_8, ``epochs`` epochs): two runs, the original
    recipe and k = 1, so two jobs that hold the node's two GPU gres."""
    ws = clone(base, name)
    params = read_yaml_mapping(ws / "params.yaml")
    params["rows"] = {"wrn16_8": params["rows"]["wrn16_8"] | {"epochs": epochs}}
    params["rows"]["wrn16_8"]["original"]["milestones"] = [epochs // 3, 2 * epochs // 3]
    params["sweep"] = {"gpu_fraction": {"wrn16_8": 1}, "cpus_per_run": 1}
    params["claims"]["cells"] = []
    (ws / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    dvc_yaml = re.sub(r"row: \[[^\]]*\]", "row: [wrn16_8]", (ws / "dvc.yaml").read_text())
    (ws / "dvc.yaml").write_text(dvc_yaml)
    subprocess.run(["git", "commit", "-qam", "two long runs"], cwd=ws, check=True)
    return ws


WRN_STAGES = {  # stage -> (its run folder, the `kdecay train` flags of that run)
    "train_original@cifar10-wrn16_8-0": ("original", ["--original"]),
    "train_kdecay@cifar10-wrn16_8-1-0": ("k1", ["--k", "1"]),
}


def test_a_fused_group_is_one_slurm_job(base: Path, slurm_conf: str) -> None:
    """``--fuse 2``: the row's two runs are one job (``kdecay train-group``); both are
    recorded with that job's id, each with its own outputs, and dvc status is clean."""
    ws = _wrn_only(base, "fused", epochs=3)
    done = kdecay(ws, slurm_conf, *SWEEP, "--fuse", "2", timeout=900)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    assert "submitted job array" in out and ": 1 jobs" in out
    runs = events(ws)
    assert {e["stage"] for e in runs} == set(WRN_STAGES) and all(e["ok"] for e in runs)
    assert len({e["job_id"] for e in runs}) == 1 and out.count("(SLURM job ") == 2
    for e in runs:
        info = json.loads((ws / e["out"] / "run.json").read_text())
        assert sorted(info["fused_with"]) == sorted(WRN_STAGES)
        metrics = json.loads((ws / e["out"] / "metrics.json").read_text())
        assert metrics["status"] == "completed" and metrics["epochs_completed"] == 3
    status = subprocess.run(
        [sys.executable, "-m", "dvc", "status"], cwd=ws, env=tool_env(), capture_output=True,
        text=True,
    )  # fmt: skip
    assert "Data and pipelines are up to date" in status.stdout


def _start_sweep(ws: Path, conf: str, *extra: str) -> subprocess.Popen[str]:
    """``kdecay sweep`` on SLURM in the background, its output in ``ws/sweep.out``."""
    out = (ws / "sweep.out").open("w")
    return subprocess.Popen(
        [sys.executable, "-m", "kdecay", *SWEEP, *extra],
        cwd=ws, env=tool_env() | {"SLURM_CONF": conf}, stdout=out, stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip


def _wait_for(what: str, ready: Any, timeout: float = 300) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = ready()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _stage_log(ws: Path, stage: str) -> str:
    return (ws / "results" / "logs" / f"{stage.replace('@', '_')}.log").read_text()


def test_a_requeued_job_resumes_from_its_checkpoint(base: Path, slurm_conf: str) -> None:
    """Two runs stopped in the middle by SLURM's two signals: `scontrol requeue` (what
    preemption does) on one job, the time-limit warning (SIGUSR2 to the job's processes, as
    submitit's `--signal=USR2@90` has SLURM send it) on the other. SLURM starts both again,
    each run resumes from its checkpoint and ends with the metrics of an uninterrupted run."""
    ws = _wrn_only(base, "requeue")
    env = tool_env() | {"SLURM_CONF": slurm_conf}
    sweep = _start_sweep(ws, slurm_conf)
    checkpoints = ws / ".cache" / "checkpoints"
    # both runs (two jobs, two gres) have saved a checkpoint
    _wait_for("two checkpoints", lambda: len(list(checkpoints.glob("*/checkpoint.pt"))) == 2)
    jobs = _running_jobs(env)
    assert len(jobs) == 2, jobs
    for cmd in (["scontrol", "requeue", jobs[0]], ["scancel", "--signal=USR2", jobs[1]]):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        assert done.returncode == 0, (cmd, done.stderr)
    assert sweep.wait(timeout=1500) == 0, (ws / "sweep.out").read_text()[-4000:]
    submitit_logs = "".join(
        p.read_text() for p in (ws / "results" / "logs" / "submitit").glob("*_log.*")
    )
    assert "Caught signal SIGUSR2" in submitit_logs  # submitit's own requeue
    for stage, (folder, flags) in WRN_STAGES.items():
        assert "resuming from" in _stage_log(ws, stage), stage
        run = ws / "results" / "runs" / "cifar10" / "wrn16_8" / folder / "seed0"
        resumed = json.loads((run / "metrics.json").read_text())
        alone = kdecay(ws, slurm_conf, "train", "--dataset", "cifar10", "--row", "wrn16_8",
                       *flags, "--seed", "0", "--out", str(ws / "alone" / folder))  # fmt: skip
        assert alone.returncode == 0, alone.stderr[-2000:]
        uninterrupted = json.loads((ws / "alone" / folder / "metrics.json").read_text())
        for key in ("final_test_error", "best_test_error", "final_train_loss", "epochs_completed"):
            assert resumed[key] == uninterrupted[key], (stage, key)


def _squeue_empty(env: dict[str, str]) -> bool:
    done = subprocess.run(["squeue", "-h", "-o", "%i"], env=env, capture_output=True, text=True)
    return done.returncode == 0 and not done.stdout.strip()


def test_a_killed_driver_neither_retrains_nor_submits_twice(base: Path, slurm_conf: str) -> None:
    """The driver killed (SIGKILL) while its two jobs run. Started again after they end, it
    records both runs without training them; started again while they are still in the queue
    (held there: `scontrol suspend`), it follows those jobs instead of submitting the runs a
    second time, and records them when they end."""
    env = tool_env() | {"SLURM_CONF": slurm_conf}
    ws = _wrn_only(base, "killed_then_ended", epochs=10)
    sweep = _start_sweep(ws, slurm_conf)
    _wait_for("two running jobs", lambda: len(_running_jobs(env)) == 2)
    sweep.kill()
    sweep.wait()
    _wait_for("the jobs to end", lambda: _squeue_empty(env))
    again = kdecay(ws, slurm_conf, *SWEEP, timeout=900)
    out = again.stdout + again.stderr
    assert again.returncode == 0, out[-4000:]
    assert out.count("already finished, recorded without training") == 2, out[-4000:]
    assert "0 training runs to do" in out and "submitted job array" not in out

    ws = _wrn_only(base, "killed_then_followed")
    sweep = _start_sweep(ws, slurm_conf)
    jobs = _wait_for("two running jobs", lambda: (j := _running_jobs(env)) and len(j) == 2 and j)
    sweep.kill()
    sweep.wait()
    for job in jobs:
        subprocess.run(["scontrol", "suspend", job], env=env, check=True)
    sweep = _start_sweep(ws, slurm_conf)
    _wait_for("the new driver", lambda: "[sweep] following 2 SLURM jobs" in _text(ws))
    for job in jobs:
        subprocess.run(["scontrol", "resume", job], env=env, check=True)
    assert sweep.wait(timeout=900) == 0, _text(ws)[-4000:]
    out = _text(ws)
    assert "submitted job array" not in out, out[-4000:]
    assert out.count(", recorded in dvc.lock") == 2  # the [sweep] done lines
    for stage in WRN_STAGES:  # each run trained by one job, once
        assert _stage_log(ws, stage).count(f"# {stage} on ") == 1, stage
    registry = (ws / "results" / "logs" / "submitit" / "jobs.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["job_id"] for line in registry) == sorted(jobs)
    status = subprocess.run(
        [sys.executable, "-m", "dvc", "status"], cwd=ws, env=tool_env(), capture_output=True,
        text=True,
    )  # fmt: skip
    assert "Data and pipelines are up to date" in status.stdout


def _text(ws: Path) -> str:
    return (ws / "sweep.out").read_text()


def test_a_cancelled_job_is_reported_failed(base: Path, slurm_conf: str) -> None:
    """`scancel` of a running job: it ends without a result, which submitit alone would wait
    for forever on a cluster without accounting; the driver sees it gone from `squeue` and
    lists it as failed (exit 1)."""
    env = tool_env() | {"SLURM_CONF": slurm_conf}
    ws = _wrn_only(base, "cancelled")
    sweep = _start_sweep(ws, slurm_conf, "--shard", "0/2")  # one run
    jobs = _wait_for("the running job", lambda: _running_jobs(env))
    subprocess.run(["scancel", jobs[0]], env=env, check=True)
    assert sweep.wait(timeout=600) == 1, _text(ws)[-4000:]
    out = _text(ws)
    assert f"FAILED (SLURM job {jobs[0]}) (it left SLURM's queue without a result" in out
    assert "1 run(s) failed; the others are recorded" in out


def test_a_failing_job_is_listed_with_its_log_and_the_sweep_exits_1(
    base: Path, slurm_conf: str
) -> None:
    ws = clone(base, "failing")
    blocked = ws / "results" / "runs" / "cifar10" / "wrn16_8" / "k1" / "seed0"
    blocked.parent.mkdir(parents=True)
    blocked.write_text("a file where the run's folder goes: its job fails")
    done = kdecay(ws, slurm_conf, *SWEEP, "--shard", "7/11", timeout=1500)  # that run alone
    out = done.stdout + done.stderr
    assert done.returncode == 1, out[-4000:]
    assert "train_kdecay@cifar10-wrn16_8-1-0: FAILED (SLURM job " in out
    assert "1 run(s) failed; the others are recorded" in out
    assert "train_kdecay@cifar10-wrn16_8-1-0: log " in out
    assert [e["ok"] for e in events(ws)] == [False]
