"""The stage commands an engine runs can be stopped by the driver: `run_stage_command` leaves
a `<log>.pid` file while its command runs, and `stop_stage_commands` ends those commands (what
an interrupted sweep does with the runs of the Ray it started, whose workers a terminal's
Ctrl-C never reaches)."""

from __future__ import annotations

import shlex
import sys
import threading
import time
from pathlib import Path

from kdecay.sweep.engines import StageCommand, run_stage_command, stop_stage_commands


def test_a_running_stage_command_is_stopped_by_its_pid_file(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "train_x.log"
    sleeper = f"{shlex.quote(sys.executable)} -c 'import time; time.sleep(60)  # kdecay'"
    job = StageCommand("train_x", sleeper, str(tmp_path), str(log))
    results: list[dict] = []
    thread = threading.Thread(target=lambda: results.append(run_stage_command(job)))
    thread.start()
    pid_file = Path(f"{log}.pid")
    deadline = time.monotonic() + 20
    while not pid_file.is_file() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pid_file.is_file(), "no pid file while the command runs"
    start = time.monotonic()
    assert stop_stage_commands([log, tmp_path / "logs" / "never_ran.log"]) == 1
    thread.join(timeout=20)
    assert time.monotonic() - start < 10
    assert results and results[0]["rc"] == -15  # SIGTERM
    assert not pid_file.exists()  # removed when the command ended
    assert stop_stage_commands([log]) == 0


def test_a_pid_file_of_another_process_is_left_alone(tmp_path: Path) -> None:
    """A stale pid file (a worker killed before it could remove it) whose pid now belongs to
    a process that is not kdecay's, or to another host, is never signalled."""
    import socket
    import subprocess

    stranger = subprocess.Popen(["sleep", "30"])
    try:
        log = tmp_path / "a.log"
        Path(f"{log}.pid").write_text(f"{socket.gethostname()} {stranger.pid}\n")
        other = tmp_path / "b.log"
        Path(f"{other}.pid").write_text(f"another-host {stranger.pid}\n")
        assert stop_stage_commands([log, other]) == 0
        assert stranger.poll() is None  # still running
    finally:
        stranger.kill()
        stranger.wait()
