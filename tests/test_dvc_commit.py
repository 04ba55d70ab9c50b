"""`kdecay sweep` records each finished run with `dvc commit`; a DVC command started beside it
(a plain `dvc repro`) holds the workspace's lock for a while: the commit waits for it and then
records the stage, instead of reporting the run as failed; it gives up, with DVC's own error,
only after its wait."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import pytest
import yaml

pytest.importorskip("dvc")

from dvc.lock import LockError
from dvc.repo import Repo

from kdecay.sweep.stages import commit_stage


def _workspace(root: Path) -> Path:
    """A git + DVC workspace with one stage whose output exists but is not recorded."""
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    subprocess.run(["dvc", "init", "-q"], cwd=root, check=True)
    stage = {"cmd": "echo done > out.txt", "outs": ["out.txt"]}
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"run": stage}}))
    (root / "out.txt").write_text("done\n")
    return root


def _hold_lock(root: Path, seconds: float, held: threading.Event) -> None:
    repo = Repo(str(root))
    with repo.lock:
        held.set()
        time.sleep(seconds)
    repo.close()


def test_a_commit_waits_for_another_dvc_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _workspace(tmp_path)
    monkeypatch.chdir(root)  # as the sweep runs it
    held = threading.Event()
    holder = threading.Thread(target=_hold_lock, args=(root, 3.0, held))
    holder.start()
    assert held.wait(30)
    t0 = time.monotonic()
    commit_stage(root, "run", wait_s=60)
    waited = time.monotonic() - t0
    holder.join()
    assert waited > 1.0  # it did wait for the other command
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    assert lock["stages"]["run"]["outs"][0]["path"] == "out.txt"


def test_a_commit_gives_up_after_its_wait(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _workspace(tmp_path)
    monkeypatch.chdir(root)
    held = threading.Event()
    holder = threading.Thread(target=_hold_lock, args=(root, 8.0, held))
    holder.start()
    assert held.wait(30)
    with pytest.raises(LockError):
        commit_stage(root, "run", wait_s=1.0)
    holder.join()
    assert not (root / "dvc.lock").exists()
