"""``proof.md``: the conclusions of a ``kdecay proof`` report first (each target met or
missed, the figures to put in ``params.yaml``, the plan's GPU-hours at the measured speeds),
then a line per step, then each step's result as JSON."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["conclusions", "render"]

STEP_ORDER = ("environment", "correctness", "bench", "fused", "epoch", "training", "shared",
              "sweep")  # fmt: skip
BUDGET_TARGET_S = 540  # one call of a lent GPU: 10 minutes, less the machine's start


def _result(report: dict[str, Any], step: str) -> dict[str, Any]:
    entry = report["steps"].get(step) or {}
    result = entry.get("result")
    return result if isinstance(result, dict) else {}


def _met(ok: bool) -> str:
    return "met" if ok else "**missed**"


def _budget_line(report: dict[str, Any]) -> str:
    elapsed, budget = report.get("elapsed_seconds", 0), report["budget_seconds"]
    calls = len(report["calls"])
    return (
        f"- Time: {elapsed:.0f} s in {calls} call{'s' if calls > 1 else ''} (budget "
        f"{budget:g} s; target <= {BUDGET_TARGET_S} s in one call): "
        f"{_met(calls == 1 and elapsed <= min(budget, BUDGET_TARGET_S) + 5)}"
    )


def _correctness_line(report: dict[str, Any]) -> str:
    res = _result(report, "correctness")
    planned = res.get("planned", [])
    ran = [c for c in planned if c in res]
    bad = [c for c in ran if not res[c]["within_tolerance"]]
    gap = max((res[c]["max_abs_gap"] for c in ran), default=float("nan"))
    text = (
        f"- Correctness: {len(ran)} of {len(planned)} checks ran, "
        f"{len(ran) - len(bad)} within tolerance"
    )
    text += f" (largest loss gap {gap:.4f})" if ran else ""
    return (
        text
        + (f"; outside: {', '.join(bad)}" if bad else "")
        + f": {_met(bool(ran) and not bad and len(ran) == len(planned))}"
    )


def _model_line(model: dict[str, Any], targets: dict[str, float]) -> str:
    names = ("ours_compiled", "ours_graph", "ours_eager", "standard_amp", "standard")
    cols = [(c, model[c]["seconds_per_epoch"]) for c in names if model.get(c)]
    figures = ", ".join(f"{c} {s:.2f}" for c, s in cols) or "nothing measured"
    target = min((targets[r] for r in model.get("rows", []) if r in targets), default=None)
    line = f"- {model['name']} ({', '.join(model.get('rows', []))}): s/epoch {figures}"
    if model.get("ratio"):
        line += f"; {model['ratio']:.2f}x the standard pipeline"
    fused = model.get("fused")
    if fused and "vs_ours_step" in fused:
        line += (
            f"; {fused['members']} fused {fused['vs_ours_step']:.2f}x the same runs compiled "
            "one by one"
        )
    if model.get("status") != "done":
        why = f": {model['why']}" if model.get("why") else ""
        line += f" [{model.get('status', 'not reached')}{why}]"
    for column, error in (model.get("errors") or {}).items():
        line += f" [{column} failed: {error[:160]}]"
    if target is not None and model.get("ours_compiled"):
        ok = model["ours_compiled"]["seconds_per_epoch"] <= target
        line += f": target <= {target:g} s/epoch {_met(ok)}"
    return line


def _fused_lines(report: dict[str, Any]) -> list[str]:
    res = _result(report, "fused")
    lines = []
    for name, row in res.items():
        if not isinstance(row, dict) or not row.get("groups"):
            continue
        parts = [f"G={g}: {'equal' if r['within_tolerance'] else '**not equal**'} to runs alone "
                 f"(gap {r['max_abs_gap']:.2g}), {r['speedup_vs_alone_eager']:.2f}x them"
                 for g, r in row["groups"].items()]  # fmt: skip
        lines.append(f"- Fused on the device, {name}: " + "; ".join(parts))
    return lines


def _epoch_line(report: dict[str, Any]) -> list[str]:
    res = _result(report, "epoch")
    if "metrics" not in res:
        return []
    m = res["metrics"]
    return [
        f"- One epoch of `kdecay train` ({res['row']}, {res['train_images']} + "
        f"{res['test_images']} images): {res['wall_seconds']:.1f} s with evaluation and "
        f"checkpoint, test error {m.get('final_test_error')}%, files {', '.join(res['files'])}"
        f", checkpoint {'written' if res['checkpoint_written'] else '**missing**'}"
    ]


def _training_lines(report: dict[str, Any]) -> list[str]:
    res = _result(report, "training")
    lines = []
    for form, r in res.items():
        if isinstance(r, dict) and "graph_breaks" in r:
            skips = {k: v for k, v in r["cudagraph_events"].items() if "skip" in k}
            per = ", ".join(f"{k} {v:g}" for k, v in r.get("per_step", {}).items())
            lines.append(f"- Step form {form}: {r['graph_breaks']} graph breaks, "
                         f"{r['graphs_compiled']} graphs, per step {per}"
                         + (f", CUDA graph skips {skips}" if skips else ""))  # fmt: skip
    return lines


def _sweep_lines(report: dict[str, Any]) -> list[str]:
    res = _result(report, "sweep")
    if "seconds_per_epoch" not in res:
        return []
    yaml = ["```yaml", "sweep:", "  seconds_per_epoch:"]
    yaml += [f"    {row}: {s:.2f}  # {res['measured_with'][row]}"
             for row, s in res["seconds_per_epoch"].items()]  # fmt: skip
    before = res["plan_hours_at_params_figures"]
    before_text = "none in the params" if before is None else f"{before:.1f}"
    return [
        f"- The plan's first look at the measured speeds: {res['plan_hours']:.1f} {res['unit']} "
        f"(at the params' figures: {before_text}); rows not measured: "
        f"{', '.join(res['rows_at_params_figure']) or 'none'}",
        "",
        "Put in `params.yaml` (then `make plan` recomputes the estimate):",
        "",
        *yaml,
        "```",
    ]


def conclusions(report: dict[str, Any], targets: dict[str, float] | None = None) -> list[str]:
    """The report's conclusions, one line per target or finding."""
    bench = _result(report, "bench")
    lines = ["## Conclusions", "", _budget_line(report), _correctness_line(report)]
    lines += [_model_line(m, targets or bench.get("targets", {})) for m in bench.get("models", [])]
    lines += _fused_lines(report) + _epoch_line(report) + _training_lines(report)
    return lines + _sweep_lines(report)


def render(report: dict[str, Any]) -> str:
    """The report as Markdown: conclusions, a line per step, then each step's result."""
    lines = [f"# kdecay proof ({report['device']})", "", f"`{report['command']}`", ""]
    lines += conclusions(report)
    lines += ["", "## Steps", "", "| step | status | seconds |", "|---|---|--:|"]
    for name in STEP_ORDER:
        entry = report["steps"].get(name, {"status": "not reached"})
        lines.append(
            f"| {name} | {entry['status']} {entry.get('why', '')} | {entry.get('seconds', '')} |"
        )
    for name, entry in report["steps"].items():
        if entry["status"] != "skipped":
            body = entry.get("result", entry.get("error"))
            text = json.dumps(body, indent=1, default=str)
            lines += ["", f"## {name}", "", "```", text[:6000], "```"]
    return "\n".join(lines) + "\n"
