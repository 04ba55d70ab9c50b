"""What ``kdecay smoke`` shows while its tools run: their whole output goes to the workspace's
``results/logs/smoke.log``; the screen gets a tqdm progress bar of the training runs, one line
per other stage, the failures, and on a failure the end of the log. Ctrl-C is forwarded once
to the tool's own process group (the sweep then stops the runs it started) and waited for."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections import deque
from pathlib import Path
from typing import TextIO

from tqdm import tqdm

from kdecay.checks import CommandFailedError
from kdecay.sweep.tools import tool_env

__all__ = ["LOG", "run_quietly"]

LOG = Path("results/logs/smoke.log")
STOP_WAIT_S = 60.0  # how long an interrupted tool gets to stop its runs before it is killed
# exit statuses of a child stopped by Ctrl-C: SIGINT (-2, or 130 through a shell) and DVC's
# own "interrupted by the user" status (252)
INTERRUPTED = (-2, 130, 252)
SHOWN = re.compile(
    r"^(\[sweep\] (\d+ training runs to do|\d+ runs\b.* on |.*FAILED|\d+ run\(s\) failed"
    r"|rerun|stopped|shard)|error:|interrupted|generating synthetic)"
)
PROGRESS = re.compile(r"^\[sweep\] done (\d+), running \d+, pending \d+, failed (\d+) of (\d+)")
STAGE = re.compile(r"^Running stage '([^']+)'")


class _Screen:
    """The progress bar and the lines worth showing, from the tool's output lines."""

    def __init__(self, progress: bool) -> None:
        self.progress = progress
        self.tty = sys.stderr.isatty()  # a log file gets a line per quarter, not a bar
        self.bar: tqdm | None = None  # made when the first run trains
        self.quarter = 0

    def _bar(self, total: int | None = None) -> tqdm:
        if self.bar is None:
            self.bar = tqdm(
                total=total,
                desc="training runs",
                unit="run",
                disable=not (self.progress and self.tty),
            )
        return self.bar

    def _advance(self, done: int, total: int | None) -> None:
        bar = self._bar(total)
        bar.n = done
        bar.refresh()
        quarter = 4 * done // total if total else 0
        if self.progress and not self.tty and quarter > self.quarter:
            self.quarter = quarter
            print(f"training runs: {done}/{total} done", flush=True)

    def see(self, line: str) -> None:
        line = line.rstrip()
        done = PROGRESS.match(line)
        stage = STAGE.match(line)
        if done:
            self._advance(int(done[1]) + int(done[2]), int(done[3]))
        elif stage and stage[1].startswith("train_"):
            self._advance(self._bar().n + 1, None)  # dvc repro trains one run at a time
        elif stage and not stage[1].startswith(("download", "prepare")):
            self.close()  # training is over once a report stage runs
            tqdm.write(f"stage {stage[1]}")
        if SHOWN.match(line):
            tqdm.write(line)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _shown(cmd: list[str]) -> str:
    return " ".join(Path(c).name if c == sys.executable else c for c in cmd)


def _stop(child: subprocess.Popen[str], log: TextIO) -> None:
    """Forward one SIGINT to the child's process group, drain its output to the log, and
    wait for it (killed after :data:`STOP_WAIT_S`)."""
    try:
        os.killpg(child.pid, signal.SIGINT)
    except ProcessLookupError:
        return
    try:
        out, _ = child.communicate(timeout=STOP_WAIT_S)
        log.write(out or "")
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()


def run_quietly(cmd: list[str], workdir: Path, progress: bool = False) -> None:
    """Run one tool in ``workdir``, its output appended to :data:`LOG` there.

    Raises:
        KeyboardInterrupt: on Ctrl-C (or the tool's own interruption), with one line saying
            that the workspace is kept and a rerun resumes it.
        CommandFailedError: when the tool fails, after the end of its output.
    """
    shown = _shown(cmd)
    log_path = workdir / LOG
    log_path.parent.mkdir(parents=True, exist_ok=True)
    tail: deque[str] = deque(maxlen=15)
    screen = _Screen(progress)
    kept = f"the smoke workspace {workdir} is kept: `make smoke` resumes it"
    with log_path.open("a") as log:
        log.write(f"$ {shown}\n")
        log.flush()
        child = subprocess.Popen(
            cmd,
            cwd=workdir,
            env=tool_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            process_group=0,  # Ctrl-C reaches it once, through _stop
        )
        try:
            for line in child.stdout or ():
                log.write(line)
                tail.append(line.rstrip())
                screen.see(line)
            status = child.wait()
        except KeyboardInterrupt:
            screen.close()
            _stop(child, log)
            raise KeyboardInterrupt(
                f"`{shown}` stopped; finished runs are recorded and {kept}, the others from "
                "their last checkpoints"
            ) from None
        finally:
            screen.close()
    if status in INTERRUPTED:
        raise KeyboardInterrupt(f"`{shown}` stopped; {kept}")
    if status != 0:
        print("\n".join(["...", *tail]), file=sys.stderr)
        raise CommandFailedError(
            f"`{shown}` failed with exit status {status} (the end of its output is above, all "
            f"of it in {log_path}); {kept} once the cause is fixed"
        )
