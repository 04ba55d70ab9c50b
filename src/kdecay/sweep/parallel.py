"""``kdecay parallel``: run the stale training stages of ``dvc repro`` several at a time.

``dvc repro`` holds a lock on the workspace, so two of them cannot share one. This command asks
DVC which stages are stale and what they run (``dvc repro --dry``), brings the cheap data
stages up to date, runs the stale ``train_*`` commands on a pool of slots (each slot pinned to
one GPU with ``CUDA_VISIBLE_DEVICES``; several slots per GPU let thin models share it),
records the finished ones with ``dvc commit`` and lets ``dvc repro`` finish aggregate, tables
and figures. An interrupted run resumes from its checkpoint the next time.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path

from kdecay.checks import ConfigError, check_int
from kdecay.sweep.tools import tool_env

STAGE_RE = re.compile(r"^Running stage '([^']+)':\s*$")
TRAIN_PREFIXES = ("train_original@", "train_kdecay@")


def _dvc(*args: str, capture: bool = False) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "dvc", *args], env=tool_env(), text=True, capture_output=capture
    )
    if proc.returncode != 0:
        detail = (proc.stdout or "") + (proc.stderr or "") if capture else ""
        raise ConfigError(f"`dvc {' '.join(args)}` failed (exit {proc.returncode}) {detail}")
    return proc.stdout or ""


def stale_commands(dry_run_output: str) -> list[tuple[str, str]]:
    """(stage, command) of every training stage in the output of ``dvc repro --dry``."""
    out, stage = [], None
    for line in dry_run_output.splitlines():
        m = STAGE_RE.match(line.strip())
        if m:
            stage = m.group(1)
        elif stage and line.startswith("> "):
            if stage.startswith(TRAIN_PREFIXES):
                out.append((stage, line[2:].strip()))
            stage = None
    return out


def parse_slots(gpus: str | None, per_gpu: int) -> list[str]:
    """``"0,1"`` x 2 -> ["0", "0", "1", "1"]; ``"cpu"`` -> CPU slots (no visible GPU);
    None -> every GPU torch sees."""
    if gpus is None:
        import torch

        n = torch.cuda.device_count()
        if n == 0:
            raise ConfigError("no GPU visible: pass --gpus cpu to run on the CPU, or --gpus 0,1")
        gpus = ",".join(str(i) for i in range(n))
    check_int(per_gpu, "--per-gpu", low=1, error=ConfigError)
    if gpus == "cpu":
        return [""] * per_gpu
    ids = [g.strip() for g in gpus.split(",") if g.strip()]
    if not ids or not all(g.isdigit() for g in ids):
        raise ConfigError(
            f"--gpus must be a comma-separated list of GPU indices (e.g. 0,1,2,3) "
            f"or 'cpu', got {gpus!r}"
        )
    return [g for g in ids for _ in range(per_gpu)]


def run_pool(
    commands: list[tuple[str, str]], slots: list[str], log_dir: Path
) -> tuple[list[str], list[str]]:
    """Run the commands on the slots; returns (stages that succeeded, stages that failed)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    queue: deque[tuple[str, str]] = deque(commands)
    lock = threading.Lock()
    ok: list[str] = []
    failed: list[str] = []
    total, start = len(commands), time.perf_counter()

    def worker(slot: str) -> None:
        while True:
            with lock:
                if not queue:
                    return
                stage, cmd = queue.popleft()
            log = log_dir / f"{stage.replace('@', '_')}.log"
            with open(log, "w") as f:
                rc = subprocess.run(
                    cmd, shell=True, env=tool_env(slot), stdout=f, stderr=subprocess.STDOUT
                ).returncode
            with lock:
                (ok if rc == 0 else failed).append(stage)
                done = len(ok) + len(failed)
                where = f"GPU {slot}" if slot else "CPU"
                print(
                    f"[{done}/{total}] {stage} on {where}: "
                    f"{'done' if rc == 0 else f'FAILED (exit {rc}), see {log}'} "
                    f"({time.perf_counter() - start:.0f}s elapsed)",
                    flush=True,
                )

    threads = [threading.Thread(target=worker, args=(s,), daemon=True) for s in slots]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return ok, failed


def run_parallel(gpus: str | None, per_gpu: int, log_dir: Path = Path("results/logs")) -> int:
    """The whole pipeline with training stages in parallel; returns the number of failures."""
    slots = parse_slots(gpus, per_gpu)
    datasets_stages = ["download", "prepare"]
    print(f"bringing {' and '.join(datasets_stages)} up to date", flush=True)
    _dvc("repro", *datasets_stages)
    commands = stale_commands(_dvc("repro", "--dry", capture=True))
    print(
        f"{len(commands)} stale training runs on {len(slots)} slots "
        f"({', '.join(s or 'cpu' for s in slots)})",
        flush=True,
    )
    ok, failed = run_pool(commands, slots, log_dir)
    if ok:
        _dvc("commit", "--force", "--quiet", *ok)
    if failed:
        print(
            f"{len(failed)} runs failed: {', '.join(failed)}; their logs are in {log_dir}; "
            "rerun `kdecay parallel` to retry (they resume from their checkpoints)"
        )
        return len(failed)
    _dvc("repro")
    return 0
