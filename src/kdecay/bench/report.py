"""The benchmark's report: the sweep's device-hours from measured seconds per epoch, and the
Markdown table (``bench.md``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from kdecay.bench.targets import BenchTarget
from kdecay.config import resolve_run, row_names
from kdecay.report.aggregate import expected_runs

__all__ = ["render_markdown", "sweep_estimate"]


def sweep_estimate(
    params: dict[str, Any],
    targets: Sequence[BenchTarget],
    seconds_per_epoch: dict[str, dict[str, float]],
    device: torch.device,
) -> dict[str, Any]:
    """Device-hours of every run the pipeline trains: epochs x seconds/epoch of its model.

    ``seconds_per_epoch`` maps a target name to ``{"ours": s, "standard": s}``. Runs whose row
    was not benchmarked are left out (``complete`` is then false). Evaluation is excluded.
    """
    datasets = params.get("datasets") or ["cifar10"]
    by_row = {row: t for t in targets for row in t.rows}
    epochs = {
        row: resolve_run(params, datasets[0], row, "original", None, 0).epochs
        for row in row_names(params)
    }
    runs = expected_runs(params)
    covered = [r for r in runs if r["row"] in by_row]
    hours = {
        kind: sum(
            epochs[r["row"]] * seconds_per_epoch[by_row[r["row"]].name][kind] for r in covered
        )
        / 3600
        for kind in ("ours", "standard")
    }
    unit = "GPU-hours" if device.type == "cuda" else "CPU-hours"
    return {
        "unit": unit,
        "measured_on": device.type,
        "runs_total": len(runs),
        "runs_covered": len(covered),
        "complete": len(covered) == len(runs),
        "rows_missing": sorted({r["row"] for r in runs} - set(by_row)),
        "epochs_covered": sum(epochs[r["row"]] for r in covered),
        "ours_hours": hours["ours"],
        "standard_hours": hours["standard"],
        "row_epochs": epochs,
        "row_target": {row: t.name for row, t in by_row.items()},
        "note": "sum over expected runs of epochs x seconds per 50,000-image epoch of the "
        "run's model; test-set evaluation, checkpointing and start-up excluded",
    }


def _fmt_mem(b: int | None) -> str:
    return "n/a" if b is None else f"{b / 2**30:.2f} GiB"


def _fmt_mfu(x: float) -> str:
    return f"{100 * x:.1f}%" if x >= 0.001 else f"{100 * x:.3f}%"


def _model_lines(report: dict[str, Any]) -> list[str]:
    dev, cmd, peak = report["device"], report["settings"], report["peak"]
    lines = [
        "# Training throughput: kdecay vs a standard PyTorch pipeline",
        "",
        f"- device: **{dev['name']}** ({dev['type']}), torch {dev['torch']}, "
        f"CUDA {dev['cuda'] or 'n/a'}, measured {report['timestamp']}",
        f"- settings: steps {cmd['steps']} (timed), warmup {cmd['warmup']}, compile "
        f"{cmd['compile']}, params `{cmd['params_file']}`; synthetic CIFAR-shaped uint8 images, "
        "random labels",
        f"- ours: {report['ours_pipeline']}",
        f"- standard: {report['standard_pipeline']}",
        f"- peak (measured): **{peak['flops'] / 1e12:.3f} TFLOP/s**, {peak['method']}",
        "",
        "| model | rows | batch | params | ours img/s | standard img/s | ours/standard "
        "| ours s/epoch | standard s/epoch | ours MFU | standard MFU | ours peak mem "
        "| standard peak mem |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for m in report["models"]:
        o, s = m["ours"], m["standard"]
        lines.append(
            f"| {m['name']} | {', '.join(m['rows'])} | {m['batch_size']} "
            f"| {m['params'] / 1e6:.2f}M | {o['images_per_s']:.1f} | {s['images_per_s']:.1f} "
            f"| {m['ratio']:.2f}x | {o['seconds_per_epoch']:.1f} | {s['seconds_per_epoch']:.1f} "
            f"| {_fmt_mfu(o['mfu'])} | {_fmt_mfu(s['mfu'])} "
            f"| {_fmt_mem(o['peak_memory_bytes'])} | {_fmt_mem(s['peak_memory_bytes'])} |"
        )
    return lines


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
    return [
        "",
        f"**Sweep estimate ({unit})**: {scope}, {sweep['epochs_covered']} epochs in total -> "
        f"ours **{sweep['ours_hours']:.2f} {unit}**, standard "
        f"**{sweep['standard_hours']:.2f} {unit}**.{cpu_note} Training only: "
        "epochs x seconds per 50,000-image epoch; evaluation, checkpoints and start-up "
        "excluded.",
        "",
        "MFU = 3 x forward MACs x 2 FLOP x images/s / measured peak (the peak of the row above "
        "for both pipelines). Seconds per epoch = 50,000 / images/s. Peak memory includes the "
        "device-resident training set of ours.",
    ]


def _shared_lines(shared: dict[str, Any] | None) -> list[str]:
    lines: list[str] = []
    if shared:
        lines.append("")
        if "skipped" in shared:
            lines.append(f"Shared-GPU test: skipped ({shared['skipped']}).")
        elif "error" in shared:
            lines.append(f"Shared-GPU test on {shared['model']}: failed ({shared['error']}).")
        else:
            lines += [
                f"Shared GPU, {shared['model']} (batch {shared['batch_size']}), ours pipeline in "
                "N concurrent processes:",
                "",
                "| processes | total img/s | vs one | per process img/s |",
                "|--:|--:|--:|---|",
            ]
            for r in shared["runs"]:
                per = ", ".join(f"{v:.0f}" for v in r["per_process_images_per_s"])
                lines.append(
                    f"| {r['processes']} | {r['total_images_per_s']:.1f} "
                    f"| {r['speedup_vs_one']:.2f}x | {per} |"
                )
    return lines


def render_markdown(report: dict[str, Any]) -> str:
    """The human-readable report (``bench.md``)."""
    lines = _model_lines(report) + _sweep_lines(report["sweep"]) + _shared_lines(report["shared"])
    return "\n".join(lines) + "\n"
