"""``kdecay sweep`` with real engines on this CPU: Ray with 2 logical GPUs, submitit's local
executor, a kill -9 of the driver, and two clones merged through DVC's run-cache.

Every test works on a git clone of one mini smoke workspace (CIFAR-10, k = 1, one seed: 11
training stages of tiny models). Every start of a stage's command appends a header line to its
log (``results/logs/<stage>.log``), so each test knows exactly which ``kdecay train`` commands
ran, and how often.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from kdecay.sweep.tools import tool_env
from tiny_runs import clone, mini_workspace

ROOT = Path(__file__).resolve().parents[1]
THIN = ("preact_resnet110", "preact_resnet164", "densenet_bc100_k12")
pytestmark = pytest.mark.slow
N_RUNS = 11


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The mini workspace, committed to its git repository."""
    return mini_workspace(tmp_path_factory.mktemp("sweep"))


def env_for(ws: Path) -> dict[str, str]:
    return tool_env() | {"RAY_AUTH_MODE": "disabled"}


def kdecay(ws: Path, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "kdecay", *args]
    return subprocess.run(cmd, cwd=ws, env=env_for(ws), capture_output=True, text=True, **kw)


def dvc(ws: Path, *args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "dvc", *args],
        cwd=ws,
        env=env_for(ws),
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout + out.stderr


def trained(ws: Path) -> list[str]:
    """The stage of every ``kdecay train`` command a sweep started in ``ws`` (with repeats)."""
    logs = sorted((ws / "results" / "logs").glob("train_*.log"))
    return [
        line.split()[1]
        for log in logs
        for line in log.read_text().splitlines()
        if line.startswith("# train_")
    ]


def results(ws: Path) -> dict[str, dict[str, Any]]:
    """Each run's metrics without its timings."""
    out = {}
    for path in sorted((ws / "results" / "runs").glob("*/*/*/*/metrics.json")):
        m = json.loads(path.read_text())
        out[str(path.parent.relative_to(ws))] = {
            k: v for k, v in m.items() if k not in ("wall_seconds", "images_per_second")
        }
    return out


@pytest.fixture(scope="module")
def reference(base: Path) -> Path:
    """An uninterrupted Ray sweep with 2 logical GPUs."""
    ws = clone(base, "ray")
    out = kdecay(ws, "sweep", "--gpus", "2", "--cpus", "4")
    assert out.returncode == 0, out.stdout + out.stderr
    return ws


def _overlap(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return a["start"] < b["end"] and b["start"] < a["end"]


def test_ray_runs_every_stale_stage_packing_thin_rows(reference: Path) -> None:
    ws = reference
    assert len(trained(ws)) == N_RUNS
    assert "Data and pipelines are up to date" in dvc(ws, "status")
    assert (ws / "paper_figures" / "tables" / "cifar10.md").is_file()
    events = [json.loads(x) for x in (ws / "results/logs/sweep.jsonl").read_text().splitlines()]
    assert len(events) == N_RUNS and all(e["ok"] for e in events)
    assert {e["cuda_visible_devices"] for e in events} <= {"0", "1"}
    for e in events:  # the run itself saw (and recorded) the GPU Ray gave it
        run = json.loads((ws / e["out"] / "run.json").read_text())
        assert run["cuda_visible_devices"] == e["cuda_visible_devices"]
        assert (ws / e["out"] / "model.pt").is_file()  # the weights are a DVC output
    thin = [e for e in events if any(f"-{r}-" in e["stage"] for r in THIN)]
    wide = [e for e in events if e not in thin]
    assert any(  # thin rows shared a GPU at the same time
        _overlap(a, b) and a["cuda_visible_devices"] == b["cuda_visible_devices"]
        for i, a in enumerate(thin)
        for b in thin[i + 1 :]
    )
    for w in wide:  # WRN rows always had their GPU alone
        others = [e for e in events if e is not w]
        assert not any(
            _overlap(w, o) and o["cuda_visible_devices"] == w["cuda_visible_devices"]
            for o in others
        ), w["stage"]


def test_ray_fused_sweep_records_every_member(base: Path, reference: Path) -> None:
    """``--fuse 4``: the two runs of each row (original, k = 1) train as one network, one
    Ray task per row (the SGDR row has one run: alone); every member is recorded with the
    outputs of its run alone (losses within test_step's tolerance), and dvc status is clean."""
    ws = clone(base, "fused")
    out = kdecay(ws, "sweep", "--gpus", "2", "--cpus", "4", "--fuse", "4")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "11 runs (10 of them in 5 fused groups)" in out.stdout
    assert "Data and pipelines are up to date" in dvc(ws, "status")
    events = [json.loads(x) for x in (ws / "results/logs/sweep.jsonl").read_text().splitlines()]
    assert len(events) == N_RUNS and all(e["ok"] for e in events)
    units = {e["unit"] for e in events}
    assert len(units) == 6 and sum(u.startswith("fused@") for u in units) == 5
    alone = results(reference)
    for e in events:
        run = json.loads((ws / e["out"] / "run.json").read_text())
        members = [x["stage"] for x in events if x["unit"] == e["unit"]]
        if e["unit"].startswith("fused@"):
            assert run["fused_with"] == members and run["step"] == "fused-eager"
        else:
            assert "fused_with" not in run and "sgdr" in e["stage"]
        got, ref = results(ws)[e["out"]], alone[e["out"]]
        assert got["status"] == ref["status"] == "completed"
        for key in ("final_train_loss", "final_test_loss"):
            assert abs(got[key] - ref[key]) <= 0.01 + 0.01 * abs(ref[key]), (e["out"], key)
    assert (ws / "paper_figures" / "tables" / "cifar10.md").is_file()


def _our_training_pids(ws: Path) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes()
            if b"kdecay\x00train" in cmd and Path(os.readlink(proc / "cwd")) == ws:
                pids.append(int(proc.name))
        except (OSError, ValueError):
            continue
    return pids


def test_kill_9_loses_no_finished_run(base: Path, reference: Path) -> None:
    ws = clone(base, "killed")
    proc = subprocess.Popen(
        [sys.executable, "-m", "kdecay", "sweep", "--gpus", "2", "--cpus", "4"],
        cwd=ws,
        env=env_for(ws),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.endswith("done, recorded in dvc.lock\n"):
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 30  # the training children die with their Ray workers
    while _our_training_pids(ws) and time.time() < deadline:
        time.sleep(0.5)
    assert not _our_training_pids(ws)
    events = (ws / "results/logs/sweep.jsonl").read_text().splitlines()
    finished = {json.loads(e)["stage"] for e in events if json.loads(e)["ok"]}
    first = trained(ws)
    assert finished and len(first) < N_RUNS

    out = kdecay(ws, "sweep", "--gpus", "2", "--cpus", "4")
    assert out.returncode == 0, out.stdout + out.stderr
    second = list(trained(ws))
    for stage in first:
        second.remove(stage)
    assert not finished & set(second)  # no finished run was trained again
    assert sorted(set(first) | set(second)) == sorted(trained(reference))
    assert "Data and pipelines are up to date" in dvc(ws, "status")
    assert results(ws) == results(reference)  # equal to an uninterrupted sweep


def test_a_fused_sweep_killed_at_ten_random_points_loses_no_epoch(
    base: Path, reference: Path
) -> None:
    """``kdecay sweep --fuse 4`` SIGKILLed ten times: nine at seeded random times of each try
    (start-up, training, final writes, commits alike) and once as soon as a member's
    metrics.json is written (its group's other outputs and its ``dvc commit`` not yet). Each
    rerun resumes; in the end every run is recorded (``dvc status`` clean), each follows its
    run alone (test_step's tolerance) and no run trained an epoch twice beyond one checkpoint
    interval per kill."""
    import random

    ws = clone(base, "killed_fused")
    cmd = [sys.executable, "-m", "kdecay", "sweep", "--gpus", "2", "--cpus", "4", "--fuse", "4"]
    written = "results/runs/*/*/*/*/metrics.json"
    rng = random.Random(20261205)
    kills = 0
    while True:
        before = set(ws.glob(written))
        proc = subprocess.Popen(cmd, cwd=ws, env=env_for(ws), stdout=subprocess.DEVNULL)
        at = time.monotonic() + rng.uniform(3.0, 30.0) if kills < 9 else None
        while proc.poll() is None and kills < 10:
            if (at is not None and time.monotonic() >= at) or (
                at is None and set(ws.glob(written)) - before
            ):
                proc.kill()
                kills += 1
                break
            time.sleep(0.02)
        proc.wait()
        deadline = time.time() + 30  # the training children die with their Ray workers
        while _our_training_pids(ws) and time.time() < deadline:
            time.sleep(0.5)
        assert not _our_training_pids(ws)
        if proc.returncode == 0:
            break
        assert proc.returncode == -signal.SIGKILL, proc.returncode
    assert kills >= 5, f"the sweep finished after {kills} kills: draw the kill times earlier"
    assert "Data and pipelines are up to date" in dvc(ws, "status")
    alone, got = results(reference), results(ws)
    assert got.keys() == alone.keys()
    logs = [
        line
        for log in sorted((ws / "results" / "logs").glob("*.log"))
        for line in log.read_text().splitlines()
    ]
    for out, ref in alone.items():
        assert got[out]["status"] == ref["status"] == "completed", out
        for key in ("final_train_loss", "final_test_loss"):
            assert abs(got[out][key] - ref[key]) <= 0.01 + 0.01 * abs(ref[key]), (out, key)
        label = "/".join(Path(out).parts[2:])  # results/runs/<dataset>/<row>/<method>/<seed>
        epochs = sum(f"{label}] epoch " in line for line in logs)
        # at most one interval (1 epoch) again per kill; at least one line (a kill may take
        # an epoch's line with the process's unflushed output, never its checkpoint)
        assert 1 <= epochs <= ref["epochs_completed"] + kills, (out, epochs)


def test_run_cache_merges_two_clones_without_retraining(base: Path, reference: Path) -> None:
    remote = base.parent / "remote"
    halves = [clone(base, f"half{i}") for i in range(2)]
    for i, ws in enumerate(halves):
        dvc(ws, "remote", "add", "-d", "shared", str(remote))
        out = kdecay(ws, "sweep", "--gpus", "1", "--cpus", "2", "--shard", f"{i}/2")
        assert out.returncode == 0, out.stdout + out.stderr
        assert "dvc push --run-cache" in out.stdout
        dvc(ws, "push", "--run-cache")
    assert sorted(trained(halves[0]) + trained(halves[1])) == sorted(trained(reference))
    merged = clone(base, "merged")
    dvc(merged, "remote", "add", "-d", "shared", str(remote))
    log = dvc(merged, "repro", "--pull")
    assert "Running stage 'train_" not in log  # every run came from the run-cache
    assert results(merged) == results(reference)


def submitit_tasks(folder: Path) -> list[int]:
    """The pids of the submitit job processes running from ``folder`` (read from /proc)."""
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().split(b"\0")
        except OSError:  # the process ended while we looked
            continue
        if b"submitit.core._submit" in argv and str(folder).encode() in argv:
            pids.append(int(cmdline.parent.name))
    return pids


def preempt_after_first_checkpoint(ws: Path, folder: Path, sweep: threading.Thread) -> int:
    """Wait until the run has saved a checkpoint, then send submitit's preemption signal
    (SIGUSR2) to its job, as SLURM does before a preemption; return how many jobs got it."""
    deadline = time.monotonic() + 600
    while sweep.is_alive() and time.monotonic() < deadline:
        if any((ws / ".cache" / "checkpoints").rglob("checkpoint.pt")):
            pids = submitit_tasks(folder)
            for pid in pids:
                os.kill(pid, signal.SIGUSR2)
            if pids:
                return len(pids)
        time.sleep(0.05)
    return 0


def test_submitit_requeues_a_preempted_job_which_resumes(
    base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """submitit's local executor: one stage (wrn16_8, 40 epochs) whose job gets the
    preemption signal once the run has saved its first checkpoint, whatever the machine's
    speed: the job is requeued and its ``kdecay train`` resumes from that checkpoint."""
    from kdecay.sweep.driver import SweepOptions, run_sweep

    ws = clone(base, "slurm")
    params = yaml.safe_load((ws / "params.yaml").read_text())
    params["rows"]["wrn16_8"]["epochs"] = 40
    (ws / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    monkeypatch.chdir(ws)
    for key, value in env_for(ws).items():
        monkeypatch.setenv(key, value)
    logs = ws / "results" / "logs"
    opts = SweepOptions(
        engine="slurm",
        cluster="local",
        shard=(2, N_RUNS),  # the third training stage alone: train_original@cifar10-wrn16_8-0
        slurm={"timeout_min": 30},
        log_dir=logs,
    )
    rc: list[int] = []
    sweep = threading.Thread(target=lambda: rc.append(run_sweep(opts)))
    sweep.start()
    signalled = preempt_after_first_checkpoint(ws, logs / "submitit", sweep)
    sweep.join()
    assert signalled == 1
    assert rc == [0]
    out = "results/runs/cifar10/wrn16_8/original/seed0"
    assert trained(ws).count("train_original@cifar10-wrn16_8-0") == 2  # requeued: ran again
    log = (ws / "results/logs/train_original_cifar10-wrn16_8-0.log").read_text()
    assert "resuming from" in log
    history = (ws / out / "history.csv").read_text().splitlines()
    assert len(history) == 1 + 40
    assert json.loads((ws / out / "metrics.json").read_text())["status"] == "completed"
    assert "train_original@cifar10-wrn16_8-0" in (ws / "dvc.lock").read_text()


def test_without_the_extra_sweep_names_it_and_exits_2(base: Path) -> None:
    ws = clone(base, "noextra")
    blocker = ws / "blocker"
    blocker.mkdir()
    (blocker / "submitit.py").write_text("raise ImportError('submitit is not installed')\n")
    env = env_for(ws)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(blocker), env.get("PYTHONPATH")) if p)
    out = subprocess.run(
        [sys.executable, "-m", "kdecay", "sweep", "--engine", "slurm"],
        cwd=ws,
        env=env,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2
    assert 'pip install -e ".[slurm]"' in out.stderr
    assert trained(ws) == []


def test_the_fused_step_form_reaches_each_group_and_needs_fuse() -> None:
    """``kdecay sweep --fuse G --step compiled``: each fused group's command carries the
    form; a run alone keeps its dvc.yaml command; ``--step`` without ``--fuse`` is refused."""
    from kdecay.checks import ConfigError
    from kdecay.sweep.driver import SweepOptions, check_engine_options
    from kdecay.sweep.fusing import Unit
    from kdecay.sweep.stages import TrainStage

    stages = [
        TrainStage(f"s{i}", f"kdecay train s{i}", "row", Path(f"r{i}"), None)  # type: ignore[arg-type]
        for i in (0, 1)
    ]
    group, single = Unit(tuple(stages)), Unit(tuple(stages[:1]))
    cmd = group.command(Path("params.yaml"), "compiled")
    assert cmd.split() == [
        "kdecay", "train-group", "--params", "params.yaml", "--step", "compiled",
        "--stage", "s0", "--stage", "s1",
    ]  # fmt: skip
    assert "--step" not in group.command(Path("params.yaml"))
    assert single.command(Path("params.yaml"), "compiled") == "kdecay train s0"
    with pytest.raises(ConfigError, match="--fuse 1 fuses no run"):
        check_engine_options(SweepOptions(fuse=1, fused_step="compiled"))
    check_engine_options(SweepOptions(fuse=4, fused_step="compiled"))


def test_fuse_auto_takes_each_rows_g_from_the_params(tmp_path: Path) -> None:
    """``--fuse auto``: the groups of each row hold at most that row's ``sweep.fuse`` runs
    (a row not listed trains alone); a G below 1 in the params is refused with its key."""
    import yaml

    from kdecay.checks import ConfigError
    from kdecay.config import load_config
    from kdecay.sweep.fusing import units
    from kdecay.sweep.stages import TrainStage

    config = load_config(ROOT / "params.yaml")
    assert config.sweep.fuse["preact_resnet110"] == 8 and config.sweep.fuse["wrn28_10"] == 1
    runs = [r for r in config.runs() if r.dataset == "cifar10"]
    stages = [TrainStage(r.stage, "", r.row, r.out_dir(), config.spec(r)) for r in runs]
    sizes: dict[str, list[int]] = {}
    for unit in units(stages, config.sweep.fuse):
        sizes.setdefault(unit.stages[0].row, []).append(len(unit.stages))
    assert max(sizes["preact_resnet110"]) == 8 and sum(sizes["preact_resnet110"]) == 13
    assert set(sizes["wrn28_10"]) == {1} and set(sizes["wrn16_8"]) == {1}
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["sweep"]["fuse"]["wrn16_8"] = 0
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(ConfigError, match=r"sweep\.fuse\.wrn16_8"):
        load_config(tmp_path / "bad.yaml")
