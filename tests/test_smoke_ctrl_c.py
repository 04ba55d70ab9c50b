"""Ctrl-C of `kdecay smoke --fuse 4` (what `make smoke` runs) as a terminal sends it: SIGINT
to the whole foreground process group. Every process it started stops within seconds, the
training commands that Ray's workers run (in sessions of their own) included, and the one line
it ends with says that the workspace is kept and the rerun resumes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from kdecay.config.yaml_io import read_yaml_mapping
from kdecay.sweep.tools import tool_env
from tiny_runs import narrow

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def kdecay_processes(workspace: Path) -> list[str]:
    """Command lines of the live processes running kdecay in ``workspace``."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            cwd = Path(os.readlink(proc / "cwd"))
        except (OSError, IndexError, ValueError):
            continue
        if state != "Z" and "kdecay" in cmdline and cwd.is_relative_to(workspace):
            found.append(cmdline)
    return found


def wait_for(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


def test_ctrl_c_of_smoke_stops_every_process_it_started(tmp_path: Path) -> None:
    params = narrow(read_yaml_mapping(ROOT / "params.smoke.yaml"), ["cifar10"], [0], [])
    params["kdecay"]["ks"] = [1]
    for row in params["rows"].values():
        row["epochs"] = 200  # long enough to be interrupted in the middle
    (tmp_path / "long.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    ws = tmp_path / "ws"
    cmd = [sys.executable, "-m", "kdecay", "smoke", "--workdir", str(ws), "--fuse", "4"]
    cmd += ["--params", str(tmp_path / "long.yaml")]
    smoke = subprocess.Popen(
        cmd,
        cwd=tmp_path,
        env=tool_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own foreground group, as under a terminal
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:

        def training() -> bool:
            return smoke.poll() is not None or any(" train" in c for c in kdecay_processes(ws))

        assert wait_for(training, 240) and smoke.poll() is None, "no training process started"
        time.sleep(2)
        os.killpg(smoke.pid, signal.SIGINT)  # the terminal's Ctrl-C
        out, err = smoke.communicate(timeout=120)
    finally:
        if smoke.poll() is None:
            os.killpg(smoke.pid, signal.SIGKILL)
    assert smoke.returncode == 130, out + err
    last = err.strip().splitlines()[-1]
    assert "is kept" in last and "make smoke" in last and "resume" in last, err
    assert "Traceback" not in err
    assert wait_for(lambda: not kdecay_processes(ws), 10), kdecay_processes(ws)
