"""How the SLURM engine follows its jobs, without a cluster (fast): the job registry a killed
driver leaves behind, the jobs of an earlier sweep it follows instead of submitting again, and
a job lost from the queue reported failed. `tests/test_slurm.py` runs the same paths through a
real cluster."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from kdecay.sweep import slurm
from kdecay.sweep.engines import StageCommand

pytest.importorskip("submitit")


def _job(name: str, config_hash: str = "h1") -> StageCommand:
    return StageCommand(name, f"kdecay train --row {name}", ".", f"{name}.log", {}, config_hash)


def test_the_registry_keeps_each_stages_last_job_and_skips_a_cut_line(tmp_path: Path) -> None:
    registry = slurm.JobRegistry(tmp_path)
    registry.add([("7_0", _job("a")), ("7_1", _job("b"))])
    registry.add([("9_0", _job("a", "h2"))])
    with registry.path.open("a") as f:
        f.write('{"job_id": "9_1", "sta')  # a driver killed in the middle of a line
    latest = registry.latest()
    assert latest == {
        "a": {"job_id": "9_0", "stage": "a", "config_hash": "h2"},
        "b": {"job_id": "7_1", "stage": "b", "config_hash": "h1"},
    }
    assert slurm.JobRegistry(tmp_path / "none").latest() == {}


def _engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> slurm.SlurmEngine:
    """The engine with a stand-in executor: submitit's SLURM executor needs `srun` on the
    machine, and these paths never submit."""
    folder = tmp_path / "submitit"
    monkeypatch.setattr(slurm, "slurm_executor", lambda *a: SimpleNamespace(folder=folder))
    return slurm.SlurmEngine(folder, "slurm", {"partition": "debug"})


def test_jobs_of_an_earlier_sweep_still_queued_are_followed_not_resubmitted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = _engine(tmp_path, monkeypatch)
    engine.registry.add([("5_0", _job("a")), ("5_1", _job("b", "old")), ("5_2", _job("c"))])
    queue = {"5_0": "RUNNING", "5_1": "PENDING", "3_0": "RUNNING"}  # 5_2 has ended
    monkeypatch.setattr(slurm, "squeue_states", lambda: queue)
    followed, todo = engine._earlier_jobs([_job("a"), _job("b"), _job("c"), _job("d")])
    assert {job_id: name for job_id, (_, name) in followed.items()} == {"5_0": "a"}
    assert followed["5_0"][0].paths.result_pickle.name == "5_0_0_result.pkl"
    assert [job.name for job in todo] == ["b", "c", "d"]
    out = capsys.readouterr().out
    assert "following 1 SLURM jobs of an earlier sweep" in out and "5_0" in out
    assert "b: SLURM job 5_1 of an earlier sweep still trains it with other params" in out
    monkeypatch.setattr(slurm, "squeue_states", lambda: None)  # squeue failed: submit all
    assert engine._earlier_jobs([_job("a")]) == ({}, [_job("a")])


class _FakeJob:
    """A submitit job that never writes a result (SLURM cancelled it)."""

    def __init__(self, tmp_path: Path) -> None:
        self.paths = type("Paths", (), {"stdout": tmp_path / "7_0_0_log.out"})()

    def done(self) -> bool:
        return False


def test_a_job_gone_from_the_queue_without_a_result_is_reported_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = _engine(tmp_path, monkeypatch)
    engine.STATE_EVERY_S = 0.0
    polls: list[int] = []

    def queue() -> dict[str, str]:
        polls.append(1)
        return {"7_0": "RUNNING"} if len(polls) == 1 else {}  # then gone

    monkeypatch.setattr(slurm, "squeue_states", queue)
    monkeypatch.setattr(slurm.time, "sleep", lambda s: None)
    finished: list[tuple[str, dict[str, Any]]] = list(
        engine._follow({"7_0": (_FakeJob(tmp_path), "a")})
    )
    assert len(polls) == 1 + slurm.GONE_POLLS  # seen, then missing on two polls in a row
    [(name, result)] = finished
    assert name == "a" and result["rc"] == -1 and result["job_id"] == "7_0"
    assert "left SLURM's queue without a result" in result["error"]
    assert "7_0_0_log.out" in result["error"]
