"""The benchmark's report: the sweep's device-hours from measured seconds per epoch, and the
Markdown table (``bench.md``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from kdecay.bench.pipelines import PIPELINES
from kdecay.bench.targets import BenchTarget
from kdecay.config import Config

__all__ = ["render_markdown", "sweep_estimate"]


def sweep_estimate(
    config: Config,
    targets: Sequence[BenchTarget],
    results: Sequence[dict[str, Any]],
    device: torch.device,
) -> dict[str, Any]:
    """Device-hours of every run the pipeline trains, per pipeline.

    Training: epochs x seconds per epoch of the run's model. ``ours_step_with_eval`` adds one
    evaluation of the 10,000 test images per ``train.eval_every`` epochs (as ``train_run``
    evaluates). Runs whose row was not benchmarked are left out (``complete`` is then false).
    """
    by_row = {row: t for t in targets for row in t.rows}
    measured = {m["name"]: m for m in results}
    epochs = {row: recipe.epochs for row, recipe in config.rows.items()}
    runs = config.runs()
    covered = [measured[by_row[r.row].name] | {"row": r.row} for r in runs if r.row in by_row]
    hours = {
        kind: sum(epochs[m["row"]] * m[kind]["seconds_per_epoch"] for m in covered) / 3600
        for kind in PIPELINES
    }
    evals = sum(
        (epochs[m["row"]] // config.train.eval_every) * m["ours_step"]["eval_seconds"]
        for m in covered
    )
    unit = "GPU-hours" if device.type == "cuda" else "CPU-hours"
    return {
        "unit": unit,
        "measured_on": device.type,
        "runs_total": len(runs),
        "runs_covered": len(covered),
        "complete": len(covered) == len(runs),
        "rows_missing": sorted({r.row for r in runs} - set(by_row)),
        "epochs_covered": sum(epochs[m["row"]] for m in covered),
        "hours": hours,
        "eval_hours": evals / 3600,
        "ours_step_with_eval_hours": hours["ours_step"] + evals / 3600,
        "row_epochs": epochs,
        "row_target": {row: t.name for row, t in by_row.items()},
        "note": "sum over expected runs of epochs x seconds per 50,000-image epoch of the "
        "run's model (+ one 10,000-image evaluation per eval_every epochs for ours_step); "
        "checkpointing and start-up excluded",
    }


def _fmt_mem(b: int | None) -> str:
    return "n/a" if b is None else f"{b / 2**30:.2f} GiB"


def _fmt_mfu(x: float) -> str:
    return f"{100 * x:.1f}%" if x >= 0.001 else f"{100 * x:.3f}%"


def _model_lines(report: dict[str, Any]) -> list[str]:
    dev, cmd, peak = report["device"], report["settings"], report["peak"]
    lines = [
        "# Training throughput: seconds per epoch, kdecay's step vs standard PyTorch",
        "",
        f"- device: **{dev['name']}** ({dev['type']}), torch {dev['torch']}, "
        f"CUDA {dev['cuda'] or 'n/a'}, measured {report['timestamp']}",
        f"- settings: {cmd['passes']} timed passes of "
        f"{cmd['steps']} full batches + the epoch's partial batch, {cmd['warmup']} untimed "
        f"pass(es) first; params `{cmd['params_file']}`; synthetic CIFAR-shaped uint8 images, "
        "random labels",
        *(f"- {name}: {text}" for name, text in report["pipelines"].items()),
        f"- peak (measured): **{peak['flops'] / 1e12:.3f} TFLOP/s**, {peak['method']}",
        "",
        "| model | batch | params | "
        + " | ".join(f"{p} s/epoch" for p in PIPELINES)
        + " | ours_step vs standard | ours_step MFU | ours_step peak mem | eval s |",
        "|---|--:|--:|" + "--:|" * (len(PIPELINES) + 4),
    ]
    for m in report["models"]:
        cells = " | ".join(_fmt_spread(m[p]) for p in PIPELINES)
        o = m["ours_step"]
        lines.append(
            f"| {m['name']} | {m['batch_size']} | {m['params'] / 1e6:.2f}M | {cells} "
            f"| {m['ratio']:.2f}x | {_fmt_mfu(o['mfu'])} | {_fmt_mem(o['peak_memory_bytes'])} "
            f"| {o['eval_seconds']:.2f} |"
        )
    return lines


def _fmt_spread(r: dict[str, Any]) -> str:
    """``median (min-max)`` seconds per epoch."""
    return (
        f"{r['seconds_per_epoch']:.2f} ({r['seconds_per_epoch_min']:.2f}-"
        f"{r['seconds_per_epoch_max']:.2f})"
    )


def _sweep_lines(sweep: dict[str, Any]) -> list[str]:
    unit = sweep["unit"]
    cpu_note = (
        " **Measured on a CPU: these are CPU-hours, not GPU-hours.**"
        if sweep["measured_on"] != "cuda"
        else ""
    )
    scope = (
        f"all {sweep['runs_total']} runs"
        if sweep["complete"]
        else f"{sweep['runs_covered']} of {sweep['runs_total']} runs (rows not benchmarked: "
        f"{', '.join(sweep['rows_missing'])})"
    )
    per = ", ".join(f"{p} {sweep['hours'][p]:.2f}" for p in PIPELINES)
    return [
        "",
        f"**Sweep estimate ({unit})**: {scope}, {sweep['epochs_covered']} epochs in total -> "
        f"training {per}; ours_step with its evaluations **{sweep['ours_step_with_eval_hours']:.2f}"
        f" {unit}**.{cpu_note} Checkpoints and start-up excluded.",
        "",
        "Seconds per epoch: median (min-max) over the timed passes of 50,000 // batch x seconds "
        "per full step + the partial step. MFU = 3 x forward MACs x 2 FLOP x images/s / measured "
        "peak. Peak memory includes the device-resident training set of ours.",
    ]


def _shared_lines(shared: list[dict[str, Any]] | dict[str, Any] | None) -> list[str]:
    if not shared:
        return []
    if isinstance(shared, dict):
        return ["", f"Shared-GPU test: skipped ({shared['skipped']})."]
    lines: list[str] = []
    for one in shared:
        lines.append("")
        if "error" in one:
            lines.append(f"Shared-GPU test on {one['model']}: failed ({one['error']}).")
            continue
        lines += [
            f"Shared GPU, {one['model']} (batch {one['batch_size']}), our training step in "
            "N concurrent processes:",
            "",
            "| processes | total img/s | vs one | per process img/s |",
            "|--:|--:|--:|---|",
        ]
        for r in one["runs"]:
            per = ", ".join(f"{v:.0f}" for v in r["per_process_images_per_s"])
            lines.append(
                f"| {r['processes']} | {r['total_images_per_s']:.1f} "
                f"| {r['speedup_vs_one']:.2f}x | {per} |"
            )
    return lines


def _ops(f: dict[str, Any]) -> str:
    ops = f["ops_per_member_step"]
    return f"{ops['cuda_kernels']:.0f} kernels" if "cuda_kernels" in ops else f"{ops['ops']:.0f}"


def fused_lines(models: list[dict[str, Any]]) -> list[str]:
    """The ``--fuse G`` table: G runs fused in one network vs the same runs one by one, in
    the eager form and the ``ours_step`` column's form."""
    fused = [m for m in models if m.get("fused")]
    if not fused:
        return []
    lines = [
        "",
        "Fused runs (`--fuse G`): G runs of one model in one network (`torch.func.vmap` over "
        "the stacked members; eager, and in the form of the ours_step column: forward, "
        "backward and update in one compiled graph) vs the same G runs one after another (G x "
        "the column's seconds per epoch, measured in the same process). Ops: operators (CPU) "
        "or CUDA kernels per member-step, from the profiler:",
        "",
        "| model | G | form | group s/epoch | s per member-epoch | ops per member-step "
        "| vs G x one by one | peak mem |",
        "|---|--:|---|--:|--:|--:|--:|--:|",
    ]
    for m in fused:
        f = m["fused"]
        forms = [("eager", f["eager"], f["vs_ours_eager"], "ours_eager")]
        if f["step"].split()[0] != "eager":
            forms.append((f["step"].split()[0], f, f["vs_ours_step"], "ours_step"))
        for form, r, speedup, col in forms:
            lines.append(
                f"| {m['name']} | {f['members']} | {form} | {_fmt_spread(r)} "
                f"| {r['seconds_per_member_epoch']:.2f} | {_ops(r)} "
                f"| {speedup:.2f}x ({col}) | {_fmt_mem(r['peak_memory_bytes'])} |"
            )
    return lines


def render_markdown(report: dict[str, Any]) -> str:
    """The human-readable report (``bench.md``)."""
    lines = _model_lines(report) + fused_lines(report["models"]) + _sweep_lines(report["sweep"])
    lines += _shared_lines(report["shared"])
    return "\n".join(lines) + "\n"
